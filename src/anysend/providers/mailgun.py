"""``Mailgun``: the ``email`` channel through Mailgun's Messages API, webhooks and routes.

Example:
    ```python
    import anysend
    from anysend.providers.mailgun import Mailgun

    mailgun = Mailgun(
        api_key="key-...",
        domain="mg.example.com",
        sender="Shop <shop@mg.example.com>",
        region="eu",
        webhook_signing_key="...",
    )
    with anysend.Client([mailgun]) as client:
        client.send(anysend.Message(subject="Hi", text="Hello"), to={"email": "ann@example.com"})
    ```

Settings:
    * ``api_key`` (secret): a Mailgun API key, sent as HTTP basic auth ``api:<key>``.
    * ``domain``: the sending domain (``POST /v3/<domain>/messages``).
    * ``sender``: the default ``From`` when the message gives none.
    * ``region``: ``"us"`` (``api.mailgun.net``) or ``"eu"`` (``api.eu.mailgun.net``).
    * ``webhook_signing_key`` (secret): the "HTTP webhook signing key", which signs
      webhooks and route POSTs (it is not the API key).
    * ``replay_window``: seconds a signed timestamp stays valid, either way (300).
    * ``reject_reused_tokens``: refuse a token this process has seen with another body (on).

The request (https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages):
``multipart/form-data`` with ``from``, ``to`` (with the recipient's name), ``cc``, ``bcc``,
``subject``, ``text``, ``html``, ``h:Reply-To``, ``h:<header>`` (``List-Unsubscribe`` and
``List-Unsubscribe-Post`` for ``unsubscribe_url``), ``o:tag`` per tag, ``o:deliverytime``
(RFC 2822) for ``send_at``, ``v:<key>`` per metadata entry, ``v:anysend-id`` (anysend's
message id, echoed in callbacks' ``user-variables``), then ``attachment`` and ``inline`` files.
``provider_options`` fields (``{"o:tracking": False}``) replace fields of the same name:
booleans become ``yes``/``no``, lists repeat the field, dicts go as JSON, ``None`` removes it.
Mailgun answers ``200 {"id": "<...>", "message": "Queued. Thank you."}``; the receipt's id is
``id`` without angle brackets, as webhooks give it in ``message.headers.message-id``.

Batch sends (``client.send_batch``;
https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending):
up to :data:`MAX_BATCH_RECIPIENTS` messages in one call, the first message's fields with a
``to`` per message and ``recipient-variables`` mapping each plain address to
``{"anysend_id": <its id>}``, so Mailgun sends each recipient a copy of their own;
``v:anysend-id`` is ``%recipient.anysend_id%``, which Mailgun substitutes per copy, so each
recipient's webhooks carry their own id. Every receipt has the call's ``id``.

Limits and quirks:
    * 25 MB per message; at most 3 tags of up to 128 ASCII characters (more makes the
      adapter ``unsupported``); ``o:``, ``h:`` and ``v:`` fields 16 kB in all;
      ``o:deliverytime`` at most 3 days ahead (longer on some plans).
    * No idempotency key: an ambiguous timeout is not retried. A 5xx is retried, and Mailgun
      has been seen to send a message it answered with a 5xx.
    * An inline part's Content-ID is its file name, so inline parts go under ``content_id``.
    * Variables travel in the ``X-Mailgun-Variables`` header, which recipients can read.

Errors (https://documentation.mailgun.com/docs/mailgun/quickstart-guide/responses): the
``message`` of a 4xx answer is matched against :data:`ERROR_MESSAGES` first, then the status
against :data:`ERROR_CODES`, then the shared mapping (401/403 ``auth``, 402 ``quota``, 413
``payload_too_large``, 429 ``rate_limited`` with ``Retry-After``, 5xx ``unavailable``).

Callbacks: webhooks (JSON ``{"signature": {...}, "event-data": {...}}``) and route
``forward()`` POSTs (form fields with ``timestamp``, ``token`` and ``signature``) are verified
as https://documentation.mailgun.com/docs/mailgun/user-manual/events/webhooks#securing-webhooks
says: hex HMAC-SHA256 of ``timestamp + token`` with the signing key, compared in constant
time, and a timestamp inside the replay window. The signature does not cover the body, hence
the token check. Statuses: :data:`STATUS_MAP`, :data:`PERMANENT_FAILURES`, :data:`EVENT_MAP`;
reasons: :data:`REASONS`, refined by :data:`ENHANCED_REASONS`. An unknown event is status
``unknown`` with its raw name kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, format_datetime, getaddresses
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

import httpx
from pydantic import Field, SecretStr, field_validator

from anysend import (
    Attachment,
    Channel,
    ConfigurationError,
    ContentError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InboundMessage,
    Media,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._email import check_header_safety, unsafe
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    check_replay_window,
    compare_signatures,
    error_from_response,
    response_body,
)

__all__ = [
    "BASE_URLS",
    "ENHANCED_REASONS",
    "ERROR_CODES",
    "ERROR_MESSAGES",
    "EVENT_MAP",
    "ID_VARIABLE",
    "MAX_BATCH_RECIPIENTS",
    "PERMANENT_FAILURES",
    "REASONS",
    "RECIPIENT_ID",
    "STATUS_MAP",
    "Mailgun",
    "MailgunSettings",
    "sign",
]

#: The API host of each region.
BASE_URLS: dict[str, str] = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}

#: The user variable carrying anysend's message id (``v:anysend-id``).
ID_VARIABLE = "anysend-id"
#: The recipient variable carrying each recipient's anysend id in a batch send.
RECIPIENT_ID = "anysend_id"
RECIPIENT_VARIABLES = "recipient-variables"
#: The most recipients one batch send may have (Mailgun's batch sending limit).
MAX_BATCH_RECIPIENTS = 1000

MAX_TAGS = 3
MAX_TAG_LENGTH = 128
MAX_MESSAGE_BYTES = 25_000_000

#: ``event-data.event`` (``failed`` with its ``severity``) and the status it means.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "accepted": DeliveryStatus.ACCEPTED,
    "rejected": DeliveryStatus.REJECTED,
    "delivered": DeliveryStatus.DELIVERED,
    "failed:temporary": DeliveryStatus.DEFERRED,
    "failed:permanent": DeliveryStatus.UNDELIVERABLE,
    "failed:internal": DeliveryStatus.FAILED,
}

#: Permanent failures whose ``reason`` means another status: Mailgun did not try at all
#: (a suppression list) or gave up retrying.
PERMANENT_FAILURES: dict[str, DeliveryStatus] = {
    "suppress-bounce": DeliveryStatus.REJECTED,
    "suppress-complaint": DeliveryStatus.REJECTED,
    "suppress-unsubscribe": DeliveryStatus.REJECTED,
    "old": DeliveryStatus.FAILED,
}

#: Events that do not move the status.
EVENT_MAP: dict[str, EventType] = {
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
    "complained": EventType.COMPLAINED,
    "unsubscribed": EventType.OPTED_OUT,
}

#: A failure's ``reason`` (or a rejection's ``reject.reason``) and anysend's reason.
REASONS: dict[str, Reason] = {
    "suppress-bounce": Reason.SUPPRESSED_BOUNCE,
    "suppress-complaint": Reason.SUPPRESSED_COMPLAINT,
    "suppress-unsubscribe": Reason.OPTED_OUT,
    "espblock": Reason.POLICY_BLOCKED,
    "blacklisted": Reason.POLICY_BLOCKED,
    "greylisted": Reason.RECIPIENT_UNREACHABLE,
    "old": Reason.TIMED_OUT,
    "bounce": Reason.OTHER,
    "generic": Reason.OTHER,
    "hardfail": Reason.OTHER,
}

#: ``delivery-status.enhanced-code`` without its class digit (``5.1.1`` -> ``1.1``), which
#: refines a reason that is otherwise ``other``.
ENHANCED_REASONS: dict[str, Reason] = {
    "1.1": Reason.UNKNOWN_RECIPIENT,
    "1.2": Reason.UNKNOWN_RECIPIENT,
    "1.3": Reason.INVALID_RECIPIENT,
    "1.6": Reason.UNKNOWN_RECIPIENT,
    "1.10": Reason.UNKNOWN_RECIPIENT,
    "2.1": Reason.UNKNOWN_RECIPIENT,
    "2.2": Reason.RECIPIENT_UNREACHABLE,
    "4.7": Reason.TIMED_OUT,
    "7.1": Reason.POLICY_BLOCKED,
}

#: HTTP statuses whose meaning for Mailgun differs from the shared mapping.
ERROR_CODES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    404: ErrorCategory.CONFIGURATION,
}

#: Fragments of the ``message`` of a 4xx answer (case-insensitive), checked in this order.
ERROR_MESSAGES: dict[str, ErrorCategory] = {
    "'to' parameter is not a valid address": ErrorCategory.INVALID_RECIPIENT,
    "'from' parameter is not a valid address": ErrorCategory.CONFIGURATION,
    "'from' parameter is missing": ErrorCategory.CONFIGURATION,
    "sandbox subdomains are for test purposes only": ErrorCategory.CONFIGURATION,
    "free accounts are for test purposes only": ErrorCategory.CONFIGURATION,
    "is not allowed to send": ErrorCategory.CONFIGURATION,
    "domain not found": ErrorCategory.CONFIGURATION,
}

_RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "mime-version"}
    | {"list-unsubscribe", "list-unsubscribe-post", "x-mailgun-variables"}
)
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def sign(timestamp: str | int, token: str, signing_key: str) -> str:
    """Mailgun's ``signature``: hex HMAC-SHA256 of ``timestamp + token`` with the key."""
    signed = f"{timestamp}{token}".encode()
    return hmac.new(signing_key.encode(), signed, hashlib.sha256).hexdigest()


class MailgunSettings(ProviderSettings):
    """Settings of :class:`Mailgun`.

    Attributes:
        api_key: the API key (secret).
        domain: the sending domain.
        sender: the default ``From`` address.
        region: ``"us"`` or ``"eu"``.
        webhook_signing_key: the HTTP webhook signing key (secret).
        replay_window: seconds a signed timestamp stays valid.
        reject_reused_tokens: refuse a seen token arriving with another body.
    """

    api_key: SecretStr
    domain: str
    sender: str | None = None
    region: Literal["us", "eu"] = "us"
    webhook_signing_key: SecretStr | None = None
    replay_window: float = Field(default=300.0, gt=0)
    reject_reused_tokens: bool = True

    @field_validator("domain")
    @classmethod
    def _plain_domain(cls, value: str) -> str:
        if not _DOMAIN.fullmatch(value):
            raise ValueError("domain must be a domain name such as mg.example.com")
        return value


@dataclass(frozen=True)
class _File:
    field: str
    filename: str | None
    content_type: str | None
    content: bytes


class Mailgun(Provider):
    """Sends email through Mailgun and reads its webhooks and inbound route POSTs.

    Attributes:
        now: the clock of the replay window (tests pin it: ``mailgun.now = lambda: 1.7e9``).
        token_cache_size: how many recent tokens ``reject_reused_tokens`` remembers.
    """

    name: ClassVar[str] = "mailgun"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.EMAIL})
    capabilities: ClassVar[Capabilities] = Capabilities(
        html=True,
        attachments=True,
        inline_images=True,
        cc_bcc=True,
        reply_to=True,
        headers=True,
        metadata=True,
        tags=True,
        send_at=True,
        webhooks=True,
        inbound=True,
        max_attachment_bytes=MAX_MESSAGE_BYTES,
    )
    Settings: ClassVar[type[ProviderSettings]] = MailgunSettings
    default_base_url: ClassVar[str | None] = BASE_URLS["us"]
    url_fields: ClassVar[dict[str, str]] = {"username": "api_key", "host": "domain"}
    token_cache_size: ClassVar[int] = 10_000
    max_batch: ClassVar[int] = MAX_BATCH_RECIPIENTS
    settings: MailgunSettings
    now: Callable[[], float] = time.time

    def __init__(self, settings: MailgunSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._tokens: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The messages endpoint of the configured region and domain."""
        return f"{BASE_URLS[self.settings.region]}/v3/{self.settings.domain}/messages"

    # -- sending ------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse more than 3 tags, or a tag Mailgun cannot take (long, not ASCII)."""
        super().check_supported(message)
        tags = message.tags
        if len(tags) > MAX_TAGS or any(
            not t.isascii() or len(t) > MAX_TAG_LENGTH or _unsafe(t) for t in tags
        ):
            raise UnsupportedFeatureError(
                f"mailgun takes at most {MAX_TAGS} ASCII tags of up to {MAX_TAG_LENGTH} characters",
                provider=self.name,
                feature="tags",
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The multipart POST to ``/v3/<domain>/messages`` with basic auth ``api:<key>``."""
        return self._request(self.form_fields(message), message)

    def _request(self, fields: list[tuple[str, str]], message: OutboundMessage) -> httpx.Request:
        files = [
            _File("inline", (a.content_id or a.filename).strip("<> "), a.content_type, a.content)
            if a.inline
            else _File("attachment", a.filename, a.content_type, a.content)
            for a in message.attachments
        ]
        boundary = secrets.token_hex(16)
        credentials = f"api:{self.settings.api_key.get_secret_value()}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        body = _multipart(fields, files, boundary)
        return httpx.Request("POST", self.url, content=body, headers=headers)

    def form_fields(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The form fields (without files) for ``message``, in the order they are sent.

        Raises:
            ContentError: CR, LF or NUL would reach a header, a custom header replaces one
                the adapter writes, or a marketing message has no ``unsubscribe_url``.
            ConfigurationError: neither the message nor the settings give a sender.
        """
        _check_content(message)
        sender = message.sender or self.settings.sender
        if not sender:
            raise ConfigurationError("mailgun needs a sender: set Message.sender or `sender`")
        fields = [("from", sender), ("to", _mailbox(message.to, message.recipient.name))]
        fields += [("cc", address) for address in message.cc]
        fields += [("bcc", address) for address in message.bcc]
        for key, value in (
            ("subject", message.subject),
            ("text", message.text),
            ("html", message.html),
        ):
            if value is not None:
                fields.append((key, value))
        if message.reply_to:
            fields.append(("h:Reply-To", ", ".join(message.reply_to)))
        fields += [(f"h:{name}", value) for name, value in message.headers.items()]
        if message.unsubscribe_url:
            fields.append(("h:List-Unsubscribe", f"<{message.unsubscribe_url}>"))
            fields.append(("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        fields += [("o:tag", tag) for tag in message.tags]
        if message.send_at is not None:
            when = message.send_at
            when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
            fields.append(("o:deliverytime", format_datetime(when.astimezone(timezone.utc), True)))
        fields += [(f"v:{k}", v) for k, v in message.metadata.items() if k != ID_VARIABLE]
        fields.append((f"v:{ID_VARIABLE}", message.id))
        for key, value in message.provider_options.items():
            values = _option_values(key, value)
            fields = [(k, v) for k, v in fields if k != key] + [(key, v) for v in values]
        return fields

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for a 2xx (the ``id`` without ``<>``); otherwise a ProviderError."""
        body = response_body(response)
        raw = body if isinstance(body, (dict, list, str)) and body != "" else None
        if response.is_success:
            given = body.get("id") if isinstance(body, dict) else None
            message_id = given.strip().strip("<>") if isinstance(given, str) else ""
            status = DeliveryStatus.SCHEDULED if message.send_at else DeliveryStatus.ACCEPTED
            return Receipt(provider_message_id=message_id or None, status=status, raw=raw)
        raise self.error_for(response)

    def error_for(self, response: httpx.Response) -> ProviderError:
        """The ProviderError a failed answer means (see the module's error mapping)."""
        body = response_body(response)
        text = body.get("message") if isinstance(body, dict) else body
        text = text.strip()[:500] if isinstance(text, str) else ""
        if not isinstance(body, dict) and text.startswith("<"):
            text = ""  # an HTML error page from a proxy says nothing useful
        category = ERROR_CODES.get(response.status_code)
        if response.status_code < 500:
            lowered = text.lower()
            category = next(
                (c for fragment, c in ERROR_MESSAGES.items() if fragment in lowered), category
            )
        return error_from_response(
            response,
            self.name,
            message=f"mailgun refused the message: {text}" if text else None,
            category=category,
        )

    # -- batch sends ---------------------------------------------------------------------------

    def batchable(self, message: OutboundMessage) -> bool:
        """Also no ``to`` or ``recipient-variables`` of the message's own in ``provider_options``.

        (No cc or bcc either: each recipient's copy would go to them.)
        """
        return super().batchable(message) and not (
            {"to", RECIPIENT_VARIABLES} & message.provider_options.keys()
        )

    def build_batch_request(self, messages: Sequence[OutboundMessage]) -> httpx.Request:
        """One batch-sending POST for several messages that differ only in recipient.

        The first message gives the fields (:meth:`batch_form_fields`) and the files.
        """
        return self._request(self.batch_form_fields(messages), messages[0])

    def batch_form_fields(self, messages: Sequence[OutboundMessage]) -> list[tuple[str, str]]:
        """The form fields of a batch send (Mailgun's "batch sending" with recipient variables).

        A ``to`` per message (with the recipient's name) where the first message has its
        ``to``, and ``recipient-variables``: a JSON object from each plain address to
        ``{"anysend_id": <its anysend id>}``. With recipient variables Mailgun sends every
        recipient a copy of their own, addressed to them alone. ``v:anysend-id`` is
        ``%recipient.anysend_id%``: Mailgun substitutes recipient variables in the other
        parameters too, so each copy's callbacks carry its own id in ``user-variables``.

        Raises:
            ContentError, ConfigurationError: as :meth:`form_fields`.
            UnsupportedFeatureError: more than :attr:`max_batch` messages.
        """
        if not messages:
            raise ContentError("a mailgun batch needs at least one message")
        if len(messages) > self.max_batch:
            raise UnsupportedFeatureError(
                f"mailgun takes at most {self.max_batch} recipients a batch",
                provider=self.name,
                feature="batch",
            )
        for message in messages[1:]:
            if _unsafe(message.to) or (message.recipient.name and _unsafe(message.recipient.name)):
                raise ContentError("CR, LF or NUL in an address (injection refused)")
        fields: list[tuple[str, str]] = []
        for key, value in self.form_fields(messages[0]):
            if key == "to":
                fields += [("to", _mailbox(m.to, m.recipient.name)) for m in messages]
            elif key == f"v:{ID_VARIABLE}":
                fields.append((key, f"%recipient.{RECIPIENT_ID}%"))
            else:
                fields.append((key, value))
        variables = {m.to: {RECIPIENT_ID: m.id} for m in messages}
        fields.append((RECIPIENT_VARIABLES, json.dumps(variables, ensure_ascii=False)))
        return fields

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[Receipt]:
        """The same receipt for every message: Mailgun answers one ``id`` for the batch.

        Every recipient's callbacks carry that id (``message.headers.message-id``) and their
        own anysend id (``user-variables``).
        """
        receipt = self.parse_response(response, messages[0])
        return [receipt] * len(messages)

    # -- callbacks ----------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the signature, the replay window and (if on) that the token is not reused."""
        key = self.settings.webhook_signing_key
        if key is None:
            raise WebhookVerificationError("mailgun: set webhook_signing_key to verify callbacks")
        try:
            timestamp, token, signature = _signature_fields(request)
        except WebhookVerificationError:
            raise
        except Exception as exc:
            raise WebhookVerificationError(
                f"mailgun callback signature cannot be read ({type(exc).__name__})"
            ) from None
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) < 16):
            raise WebhookVerificationError("mailgun callback timestamp is not unix seconds")
        if not compare_signatures(sign(timestamp, token, key.get_secret_value()), signature):
            raise WebhookVerificationError("mailgun callback signature does not match")
        stamp = int(timestamp)
        check_replay_window(self.name, stamp, self.now(), self.settings.replay_window)
        if self.settings.reject_reused_tokens:
            self._remember(token, stamp, hashlib.sha256(request.body).hexdigest())

    def _remember(self, token: str, stamp: int, digest: str) -> None:
        with self._lock:
            now = self.now()
            while self._tokens:
                oldest = next(iter(self._tokens.values()))[0]
                if abs(now - oldest) <= self.settings.replay_window:
                    break
                self._tokens.popitem(last=False)
            seen = self._tokens.get(token)
            if seen is not None and seen[1] != digest:
                raise WebhookVerificationError(
                    "mailgun callback reuses the token of another callback (a replay?)"
                )
            self._tokens[token] = (stamp, digest)
            while len(self._tokens) > self.token_cache_size:
                self._tokens.popitem(last=False)

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One DeliveryEvent per webhook, or one InboundMessage per route POST."""
        if _is_json(request):
            data = request.json_body()
            event_data = data.get("event-data") if isinstance(data, dict) else None
            if not isinstance(event_data, dict) or not isinstance(event_data.get("event"), str):
                raise WebhookParseError("mailgun webhook has no event-data object with an event")
            return [self._event(event_data)]
        fields, files = _form(request)
        if "event" in fields and not {"body-plain", "body-mime"} & fields.keys():
            raise WebhookParseError("mailgun legacy form webhooks are not supported; use JSON")
        return [self._inbound(fields, files)]

    def inbound_attachments(
        self, request: WebhookRequest, *, verify: bool = True
    ) -> tuple[Attachment, ...]:
        """The files of an inbound route POST, with their bytes (in ``media`` order).

        Raises:
            WebhookVerificationError: the request is not authentic (unless ``verify=False``).
            WebhookParseError: the body is not a route POST.
        """
        if verify:
            self.verify_webhook(request)
        if _is_json(request):
            raise WebhookParseError("a mailgun webhook is not a route POST; it has no files")
        try:
            fields, files = _form(request)
            inline = _content_ids(_first(fields, "content-id-map"))
            return tuple(_attachment(f, inline.get(f.field)) for f in _all_files(fields, files))
        except (WebhookParseError, WebhookVerificationError):
            raise
        except Exception as exc:
            raise WebhookParseError(f"mailgun inbound files cannot be read: {exc}") from exc

    def _event(self, data: dict[str, Any]) -> DeliveryEvent:
        name: str = data["event"]
        delivery = data.get("delivery-status")
        delivery = delivery if isinstance(delivery, dict) else {}
        rejection = data.get("reject")
        rejection = rejection if isinstance(rejection, dict) else {}
        mg_reason = _text(data.get("reason")) or _text(rejection.get("reason"))
        status: DeliveryStatus | None = None
        reason: Reason | None = None
        event = EVENT_MAP.get(name)
        if event is None:
            severity = _text(data.get("severity"))
            status = STATUS_MAP.get(f"failed:{severity}" if name == "failed" else name)
            if status is DeliveryStatus.UNDELIVERABLE and mg_reason in PERMANENT_FAILURES:
                status = PERMANENT_FAILURES[mg_reason]
            status = status or DeliveryStatus.UNKNOWN
            if name in ("failed", "rejected"):
                reason = REASONS.get(mg_reason or "", Reason.OTHER)
                if reason is Reason.OTHER:
                    reason = _enhanced_reason(delivery.get("enhanced-code")) or reason
        texts = (delivery.get("description"), delivery.get("message"), rejection.get("description"))
        description = next((t.strip() for t in texts if isinstance(t, str) and t.strip()), None)
        message = data.get("message")
        headers = message.get("headers") if isinstance(message, dict) else None
        provider_id = _text(headers.get("message-id")) if isinstance(headers, dict) else None
        variables = data.get("user-variables")
        ours = variables.get(ID_VARIABLE) if isinstance(variables, dict) else None
        payload_hash = json.dumps(data, sort_keys=True, default=str).encode()
        event_id = _text(data.get("id")) or hashlib.sha256(payload_hash).hexdigest()[:32]
        return DeliveryEvent(
            provider=self.name,
            provider_message_id=provider_id.strip("<>") if provider_id else None,
            message_id=str(ours) if isinstance(ours, (str, int)) and ours != "" else None,
            recipient=_text(data.get("recipient")),
            channel=Channel.EMAIL,
            status=status,
            event=event,
            raw_status=name,
            reason=reason,
            description=description,
            occurred_at=_when(data.get("timestamp")),
            event_id=event_id,
            raw=data,
        )

    def _inbound(self, fields: dict[str, list[str]], files: list[_File]) -> InboundMessage:
        mime = _mime(_first(fields, "body-mime"))
        headers = _message_headers(_first(fields, "message-headers"), mime)
        from_header = _first(fields, "from") or headers.get("from")
        sender = _address(from_header) or _first(fields, "sender")
        if not sender:
            raise WebhookParseError("mailgun inbound message has neither from nor sender")
        text = _first(fields, "stripped-text") or _first(fields, "body-plain")
        if not text and mime is not None:
            body = mime.get_body(("plain",))
            text = body.get_content() if isinstance(body, EmailMessage) else None
        media = [
            Media(filename=f.filename, content_type=f.content_type, provider_media_id=f.field)
            for f in _all_files(fields, files)
        ]
        stored = _json(_first(fields, "attachments"))
        for item in stored if isinstance(stored, list) else []:
            if isinstance(item, dict) and isinstance(item.get("url"), str):
                media.append(
                    Media(
                        url=item["url"],
                        filename=_text(item.get("name")),
                        content_type=_text(item.get("content-type")),
                    )
                )
        message_id = headers.get("message-id") or _first(fields, "Message-Id")
        in_reply_to = headers.get("in-reply-to")
        raw: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
        for file in files:
            raw[file.field] = {
                "filename": file.filename,
                "content-type": file.content_type,
                "size": len(file.content),
            }
        return InboundMessage(
            provider=self.name,
            channel=Channel.EMAIL,
            sender=sender,
            recipient=_first(fields, "recipient"),
            text=text,
            subject=_first(fields, "subject") or headers.get("subject"),
            media=tuple(media),
            provider_message_id=message_id.strip().strip("<>") if message_id else None,
            in_reply_to=in_reply_to.strip().strip("<>") if in_reply_to else None,
            received_at=_when(_first(fields, "timestamp")),
            raw=raw,
        )


# -- helpers ------------------------------------------------------------------------------------


def _unsafe(value: str) -> bool:
    return unsafe(value)  # CR, LF, every other line break and NUL (anysend._email)


def _check_content(message: OutboundMessage) -> None:
    check_header_safety(message)  # line breaks anywhere a header is made (issue #8)
    if message.category == "marketing" and not message.unsubscribe_url:
        raise ContentError("marketing email needs unsubscribe_url (RFC 8058 one-click unsubscribe)")
    values = [message.to, message.sender, message.subject, message.recipient.name]
    values += [message.unsubscribe_url, *message.cc, *message.bcc, *message.reply_to]
    values += [part for item in message.headers.items() for part in item]
    if any(v is not None and _unsafe(v) for v in values):
        raise ContentError("CR, LF or NUL in an address, subject or header (injection refused)")
    for name in message.headers:
        lowered = name.lower()
        if not _HEADER_NAME.fullmatch(name):
            raise ContentError(f"{name!r} is not a valid header name")
        if lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
            raise ContentError(f"header {name!r} is set by anysend; use the message's own fields")


def _mailbox(address: str, name: str | None) -> str:
    local, _, domain = address.rpartition("@")
    if not name or not local:
        return address
    try:
        return str(Address(display_name=name, username=local, domain=domain))
    except (ValueError, IndexError):
        return address


def _option_values(key: object, value: object) -> list[str]:
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"mailgun provider option {key!r} is not a field name")
    items = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("yes" if item else "no")
        elif isinstance(item, (str, int, float)):
            out.append(str(item))
        elif isinstance(item, dict):
            out.append(json.dumps(item, ensure_ascii=False))
        else:
            raise ConfigurationError(f"mailgun provider option {key!r} has an unusable value")
    return out


def _quote(value: str) -> str:
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _multipart(fields: list[tuple[str, str]], files: list[_File], boundary: str) -> bytes:
    """A ``multipart/form-data`` body (RFC 7578) of text fields, then files."""
    parts: list[bytes] = []
    for name, value in fields:
        head = f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
        parts.append(head.encode() + value.encode())
    for file in files:
        head = f'Content-Disposition: form-data; name="{file.field}"; '
        head += f'filename="{_quote(file.filename or file.field)}"\r\n'
        head += f"Content-Type: {file.content_type or 'application/octet-stream'}\r\n\r\n"
        parts.append(head.encode() + file.content)
    delimiter = f"--{boundary}\r\n".encode()
    return b"".join(delimiter + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()


def _is_json(request: WebhookRequest) -> bool:
    kind = (request.header("content-type") or "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        return True
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return False
    return request.body.lstrip()[:1] in (b"{", b"[")


def _signature_fields(request: WebhookRequest) -> tuple[str, str, str]:
    values: list[object]
    if _is_json(request):
        data = json.loads(request.body)
        block = data.get("signature") if isinstance(data, dict) else None
        block = block if isinstance(block, dict) else {}
        stamp = block.get("timestamp")
        if isinstance(stamp, int) and not isinstance(stamp, bool):
            stamp = str(stamp)
        values = [stamp, block.get("token"), block.get("signature")]
    else:
        fields, _ = _form(request)
        values = [fields.get(k, [None])[-1] for k in ("timestamp", "token", "signature")]
    timestamp, token, signature = values
    if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(signature, str)):
        raise WebhookVerificationError("mailgun callback has no timestamp, token and signature")
    if not (timestamp and token and signature):
        raise WebhookVerificationError(
            "mailgun callback has an empty timestamp, token or signature"
        )
    return timestamp, token, signature


def _form(request: WebhookRequest) -> tuple[dict[str, list[str]], list[_File]]:
    """The text fields (every value of each) and files of a form body."""
    kind = request.header("content-type") or ""
    fields: dict[str, list[str]] = {}
    files: list[_File] = []
    if not kind.lower().startswith("multipart/"):
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookParseError("mailgun form body is not UTF-8") from exc
        for key, value in parse_qsl(text, keep_blank_values=True):
            fields.setdefault(key, []).append(value)
        return fields, files
    if _unsafe(kind) or not kind.isascii():
        raise WebhookParseError("mailgun multipart body has an unusable Content-Type")
    head = f"Content-Type: {kind}\r\nMIME-Version: 1.0\r\n\r\n".encode("ascii")
    parsed = BytesParser(policy=policy.HTTP).parsebytes(head + request.body)
    if not parsed.is_multipart():
        raise WebhookParseError("mailgun multipart body has no parts")
    for part in parsed.get_payload():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        name = collapse_rfc2231_value(name)
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            kind_of = part.get_content_type() if part.get("content-type") else None
            files.append(_File(name, filename, kind_of, content))
            continue
        try:
            value = content.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:
            value = content.decode("utf-8", "replace")
        fields.setdefault(name, []).append(value)
    return fields, files


def _first(fields: dict[str, list[str]], key: str) -> str | None:
    values = fields.get(key)
    return values[0] if values else None


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _mime(text: str | None) -> EmailMessage | None:
    if not text:
        return None
    parsed = BytesParser(policy=policy.default).parsebytes(text.encode("utf-8", "replace"))
    return parsed if isinstance(parsed, EmailMessage) else None


def _message_headers(text: str | None, mime: EmailMessage | None) -> dict[str, str]:
    """The first value of each header (lower-case names) from ``message-headers`` or MIME."""
    found: dict[str, str] = {}
    pairs = _json(text)
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
            found.setdefault(pair[0].lower(), pair[1])
    if mime is not None:
        for name, value in mime.items():
            found.setdefault(name.lower(), str(value))
    return found


def _all_files(fields: dict[str, list[str]], files: list[_File]) -> list[_File]:
    """The posted files, or those of a raw MIME message (``body-mime``)."""
    mime = _mime(_first(fields, "body-mime"))
    if files or mime is None:
        return files
    found = []
    for number, part in enumerate(mime.iter_attachments(), start=1):
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        found.append(
            _File(f"attachment-{number}", part.get_filename(), part.get_content_type(), content)
        )
    return found


def _content_ids(text: str | None) -> dict[str, str]:
    """``content-id-map`` turned around: field name to Content-ID."""
    mapping = _json(text)
    if not isinstance(mapping, dict):
        return {}
    return {v: k.strip("<>") for k, v in mapping.items() if isinstance(v, str) and k}


def _attachment(file: _File, content_id: str | None) -> Attachment:
    try:
        filename = Attachment(filename=file.filename or file.field, content=b"").filename
    except ValueError:
        filename = file.field
    return Attachment(
        filename=filename,
        content=file.content,
        content_type=file.content_type or "",
        inline=content_id is not None,
        content_id=content_id,
    )


def _address(header: str | None) -> str | None:
    if not header:
        return None
    addresses = [address for _, address in getaddresses([header]) if "@" in address]
    return addresses[0] if addresses else None


def _enhanced_reason(code: object) -> Reason | None:
    if not isinstance(code, str) or code.count(".") != 2:
        return None
    return ENHANCED_REASONS.get(code.strip().split(".", 1)[1])


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
