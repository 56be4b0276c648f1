"""What an application hands to ``send()``: the message, the recipient, and the channels.

:class:`Message` is channel-agnostic: plain fields (``text``, ``subject``, ``html``) or a
``template`` rendered per channel. :class:`Recipient` holds one person's addresses on every
channel. :class:`OutboundMessage` is what an adapter receives: one channel, one normalised
address, rendered content. All are immutable pydantic models; user input forbids unknown fields.
"""

from __future__ import annotations

import base64
import enum
import mimetypes
import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Attachment",
    "Channel",
    "ChatTemplate",
    "Message",
    "OutboundMessage",
    "Preferences",
    "PushContent",
    "PushTarget",
    "QuietHours",
    "Recipient",
]


class Channel(str, enum.Enum):
    """The ways anysend reaches a person.

    Without ``via``, a send tries the channels the recipient has an address for in this
    order: email, sms, push, whatsapp, telegram, messenger, viber, chat, webhook.

    * ``email``: email (SMTP or an email API).
    * ``sms``: text message to a phone number.
    * ``push``: mobile and web push (FCM, APNs, Web Push) to every device of the recipient.
    * ``whatsapp``, ``telegram``, ``messenger``, ``viber``: chat apps.
    * ``chat``: team chat (Slack, Microsoft Teams, Discord incoming webhooks).
    * ``webhook``: a JSON POST to a system of yours (a CRM, a call-centre queue).
    """

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    MESSENGER = "messenger"
    VIBER = "viber"
    CHAT = "chat"
    WEBHOOK = "webhook"


_FROZEN = ConfigDict(frozen=True, extra="forbid")
#: Replaced by ``_`` in attachment file names: path separators and what Windows forbids, every
#: control character (C0, DEL, C1 such as NEL), line and paragraph separators, and the
#: invisible bidirectional controls that make ``invoice\u202efdp.exe`` look like a PDF.
_UNSAFE_FILENAME = re.compile(
    '[\x00-\x1f\x7f-\x9f/\\\\:*?"<>|\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]+'
)
#: Device names Windows will not open as files, whatever the extension (``con.txt``).
_RESERVED_FILENAME = re.compile(r"(?i)(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?")
#: The longest file name most file systems take, in UTF-8 bytes.
MAX_FILENAME_BYTES = 255


def safe_filename(value: str) -> str:
    """``value`` made safe to show and to save as an attachment's file name.

    Sanitised rather than refused (the file still goes out): path separators, characters
    Windows forbids and control, line-separator and bidirectional-control characters become
    ``_``; leading and trailing dots and spaces go (no hidden files, no ``..``); a Windows
    device name gets a ``_`` in front; a name over :data:`MAX_FILENAME_BYTES` UTF-8 bytes is
    shortened, keeping its extension. Non-ASCII letters stay: adapters encode them as their
    protocol needs (RFC 2231 in MIME).

    Raises:
        ValueError: nothing is left (``".."``, ``"///"``).
    """
    cleaned = _UNSAFE_FILENAME.sub("_", value).strip(" .")
    if _RESERVED_FILENAME.fullmatch(cleaned):
        cleaned = f"_{cleaned}"
    if len(cleaned.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, extension = cleaned.rpartition(".")
        if not dot or not stem or len(extension.encode("utf-8")) > 16:
            stem, extension = cleaned, ""
        suffix = f".{extension}" if extension else ""
        room = MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
        cleaned = f"{stem}{suffix}"
    if not cleaned or cleaned.startswith("."):
        raise ValueError("attachment filename is empty after removing unsafe characters")
    return cleaned


class Attachment(BaseModel):
    """A file attached to an email (or sent as media where a channel allows it).

    Attributes:
        filename: the name shown to the recipient, sanitised: path separators, control
            and bidirectional-control characters are replaced by ``_``, leading dots
            removed, over-long names shortened (see :func:`safe_filename`).
        content: the file's bytes (a ``str`` is encoded as UTF-8; use
            :meth:`from_base64` for base64 text).
        content_type: the MIME type; guessed from the file name when left out.
        inline: ``True`` for an inline image referenced from HTML as ``cid:<content_id>``.
        content_id: the Content-ID of an inline part (defaults to the file name).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )

    filename: str
    content: bytes
    content_type: str = ""
    inline: bool = False
    content_id: str | None = None

    @field_validator("filename")
    @classmethod
    def _safe_filename(cls, value: str) -> str:
        return safe_filename(value)

    @model_validator(mode="after")
    def _defaults(self) -> Attachment:
        if not self.content_type:
            guessed = mimetypes.guess_type(self.filename)[0] or "application/octet-stream"
            object.__setattr__(self, "content_type", guessed)
        if self.inline and not self.content_id:
            object.__setattr__(self, "content_id", self.filename)
        return self

    @classmethod
    def from_base64(cls, filename: str, data: str, **kwargs: Any) -> Attachment:
        """Build an attachment from base64 text (as many APIs and forms deliver files)."""
        return cls(filename=filename, content=base64.b64decode(data, validate=True), **kwargs)

    def __repr__(self) -> str:
        return (
            f"Attachment(filename={self.filename!r}, content_type={self.content_type!r}, "
            f"size={len(self.content)}, inline={self.inline})"
        )


class PushContent(BaseModel):
    """The parts of a push notification: title, body and a data payload for the app."""

    model_config = _FROZEN

    title: str | None = None
    body: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ChatTemplate(BaseModel):
    """A provider-side template (WhatsApp message templates and similar).

    Attributes:
        name: the template's name as approved at the provider.
        language: its language code, such as ``"en_US"`` or ``"pl"``.
        parameters: positional or named parameters, passed to the adapter as given.
    """

    model_config = _FROZEN

    name: str
    language: str = "en"
    parameters: list[Any] | dict[str, Any] = Field(default_factory=list)


class PushTarget(BaseModel):
    """One device or browser that can receive push.

    Attributes:
        kind: ``"fcm"`` (Firebase token), ``"apns"`` (Apple device token) or ``"webpush"``
            (a browser's PushSubscription).
        token: the FCM or APNs token; for web push, the subscription's endpoint URL.
        keys: web push only: the subscription's ``p256dh`` and ``auth`` keys.
    """

    model_config = _FROZEN

    kind: Literal["fcm", "apns", "webpush"]
    token: str = Field(min_length=1)
    keys: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _webpush_keys(self) -> PushTarget:
        if self.kind == "webpush" and not {"p256dh", "auth"} <= self.keys.keys():
            raise ValueError("a webpush target needs keys 'p256dh' and 'auth'")
        return self

    @classmethod
    def webpush(cls, subscription: Mapping[str, Any]) -> PushTarget:
        """Build a target from a browser's ``PushSubscription.toJSON()`` dictionary."""
        return cls(
            kind="webpush",
            token=subscription["endpoint"],
            keys=dict(subscription.get("keys", {})),
        )


class Preferences(BaseModel):
    """What a person agreed to receive.

    Attributes:
        opted_out: channels the person opted out of entirely.
        categories: per message category, per channel: ``False`` is an opt-out, ``True`` an
            explicit opt-in (consent), a missing entry means no preference.
    """

    model_config = _FROZEN

    opted_out: frozenset[Channel] = frozenset()
    categories: dict[str, dict[Channel, bool]] = Field(default_factory=dict)

    def allows(self, channel: Channel, category: str | None) -> bool:
        """Whether a message of ``category`` may go to this person on ``channel``."""
        if channel in self.opted_out:
            return False
        if category is None:
            return True
        return self.categories.get(category, {}).get(channel, True)


class QuietHours(BaseModel):
    """A daily window (in the recipient's time zone) in which messages wait.

    ``start`` may be later than ``end``: ``QuietHours(start=time(21), end=time(8))`` is the
    night. Messages of transactional categories are not held.
    """

    model_config = _FROZEN

    start: time
    end: time

    def next_allowed(self, now: datetime, zone: tzinfo) -> datetime | None:
        """``None`` when ``now`` is outside the window, else the end of the window (UTC)."""
        local = now.astimezone(zone)
        t = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        if self.start < self.end:
            inside = self.start <= t < self.end
        else:
            inside = t >= self.start or t < self.end
        if not inside:
            return None
        end_day = local.date()
        if self.start > self.end and t >= self.start:
            end_day = end_day + timedelta(days=1)
        naive_end = datetime.combine(end_day, self.end)
        return naive_end.replace(tzinfo=zone).astimezone(now.tzinfo)


class Recipient(BaseModel):
    """One person, with an address on each channel they can be reached on.

    Attributes:
        id: your id for the person (used by profiles, history and idempotency).
        email: an email address (normalised by email-validator).
        phone: a phone number in any common format; normalised to E.164 using the client's
            default region when it has no country code.
        push: the person's devices and browsers (each gets its own push).
        chat_ids: per channel, the person's id there: ``{"telegram": "123456"}``;
            WhatsApp falls back to ``phone``.
        webhook_url: where the ``webhook`` channel posts for this person.
        locale: a BCP 47 tag such as ``"pl-PL"``; picks template variants.
        timezone: an IANA zone name such as ``"Europe/Warsaw"``.
        preferences: opt-outs and consents (``True`` records consent; policies that require
            consent, such as marketing, read it).
        name: a display name (email ``To`` header).
        quiet_hours: this person's quiet hours (overrides the client's).
    """

    model_config = _FROZEN

    id: str | None = None
    email: str | None = None
    phone: str | None = None
    push: tuple[PushTarget, ...] = ()
    chat_ids: dict[Channel, str] = Field(default_factory=dict)
    webhook_url: str | None = None
    locale: str | None = None
    timezone: str | None = None
    preferences: Preferences = Field(default_factory=Preferences)
    name: str | None = None
    quiet_hours: QuietHours | None = None

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{key}={value!r}"
            for key, value in self.__dict__.items()
            if value not in (None, (), {}) and key != "preferences"
        )
        return f"Recipient({fields})"


class Message(BaseModel):
    """What to say, independent of the channel that carries it.

    Either give the content directly (``text``, ``subject``, ``html``, ``push``) or name a
    ``template`` and its ``data``; a template gives each channel its own parts and locale
    variants. Plain ``text`` is sent as it is, never rendered as a template.

    Attributes:
        text: plain text (the SMS and chat body; the email text part).
        subject: the email subject.
        html: the email HTML part.
        template: the name of a template folder (see the templates guide).
        data: the variables a template sees.
        sender: the ``From`` address or sender id; defaults to the provider's setting.
        reply_to: email ``Reply-To`` addresses.
        cc: email carbon copies.
        bcc: email blind carbon copies.
        headers: extra email headers (CR and LF are refused in names and values).
        attachments: files; an adapter that cannot send them refuses the message.
        push: push title, body and data; defaults to subject and text.
        chat_template: a provider-side template (WhatsApp outside the 24-hour window).
        metadata: your key/value data, passed to providers that echo it in callbacks.
        tags: labels for reports and provider analytics.
        category: the kind of message (``"marketing"``, ``"transactional"``, ``"otp"``, ...),
            used by preferences and, in later releases, by policies.
        unsubscribe_url: an https URL that unsubscribes the recipient in one click; email
            adapters send it as ``List-Unsubscribe`` with ``List-Unsubscribe-Post``
            (RFC 8058). Marketing email needs one.
        idempotency_key: the same key sent twice sends once; the second call gets the first
            result (the key alone identifies the send: keep keys unique per message and
            recipient, such as ``"order-42-shipped"``).
        send_at: ask the provider to send later (where it can).
        provider_options: per provider name, options passed to that adapter verbatim.
    """

    model_config = _FROZEN

    text: str | None = None
    subject: str | None = None
    html: str | None = None
    template: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    sender: str | None = None
    reply_to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    push: PushContent | None = None
    chat_template: ChatTemplate | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    category: str | None = None
    unsubscribe_url: str | None = None
    idempotency_key: str | None = None
    send_at: datetime | None = None
    provider_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _no_header_injection(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if _has_crlf(name) or _has_crlf(header):
                raise ValueError(f"header {name!r} contains CR or LF")
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _https_unsubscribe(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("https://") or _has_crlf(value)):
            raise ValueError("unsubscribe_url must be an https URL (RFC 8058)")
        return value

    @field_validator("subject", "sender")
    @classmethod
    def _no_crlf(cls, value: str | None) -> str | None:
        if value is not None and _has_crlf(value):
            raise ValueError("CR and LF are not allowed in subjects and senders")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> Message:
        if self.template is None and not (
            self.text or self.html or self.push or self.chat_template or self.attachments
        ):
            raise ValueError("a message needs text, html, push, chat_template or a template")
        return self


def _has_crlf(value: str) -> bool:
    return "\r" in value or "\n" in value


class OutboundMessage(BaseModel):
    """One message for one address on one channel: what an adapter receives.

    Built by the client from a :class:`Message` and a :class:`Recipient` after validation and
    rendering. Adapters read it and never change it.

    Attributes:
        id: anysend's id for this message (the same across fallbacks and retries).
        channel: the channel it goes out on.
        to: the normalised address: an E.164 number, an email address, a push token or
            web push endpoint, a chat id, or a webhook URL.
        push_target: for push, the full device target (kind and keys).
        recipient: the whole recipient, for adapters that need more (name, locale).
        subject: the rendered email subject.
        text: the rendered text (email text part, SMS, chat).
        html: the rendered email HTML.
        push: push title, body and data.
        chat_template: a provider-side template to use instead of text.
        sender: as in :class:`Message`.
        reply_to: as in :class:`Message`.
        cc: as in :class:`Message`.
        bcc: as in :class:`Message`.
        headers: as in :class:`Message`.
        attachments: as in :class:`Message`.
        metadata: as in :class:`Message`.
        tags: as in :class:`Message`.
        category: as in :class:`Message`.
        unsubscribe_url: as in :class:`Message`.
        idempotency_key: the message's key, or anysend's message id when it has none (with
            ``:<n>`` added per push device), for providers that deduplicate.
        send_at: as in :class:`Message`.
        provider_options: the options given for this adapter, verbatim.
        locale: the locale the content was rendered in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    channel: Channel
    to: str
    push_target: PushTarget | None = None
    recipient: Recipient = Field(default_factory=Recipient)
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    push: PushContent | None = None
    chat_template: ChatTemplate | None = None
    sender: str | None = None
    reply_to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    category: str | None = None
    unsubscribe_url: str | None = None
    idempotency_key: str | None = None
    send_at: datetime | None = None
    provider_options: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = None
