"""``Postmark``: email through Postmark's Email API, with its webhooks and inbound email.

Example:
    ```python
    import anysend
    from anysend.providers.postmark import Postmark

    postmark = Postmark(
        server_token="...",
        sender="Shop <shop@example.com>",
        webhook_username="postmark",
        webhook_password="a-long-random-password",
    )
    with anysend.Client([postmark]) as client:
        client.send(anysend.Message(subject="Hi", text="Hello"), to={"email": "ann@example.com"})
    ```

Settings:
    * ``server_token`` (secret): the server's API token, sent as ``X-Postmark-Server-Token``.
    * ``sender``: the default ``From``; ``Message.sender`` wins. It needs a confirmed sender
      signature or domain at Postmark.
    * ``message_stream``: the stream messages go to (default ``"outbound"``, the default
      transactional stream); ``broadcast_stream`` (default ``"broadcast"``) is used for
      ``category="marketing"``. The provider option ``MessageStream`` wins over both.
    * ``webhook_username``, ``webhook_password`` (secret): HTTP basic-auth credentials that
      ``verify_webhook`` requires. Postmark signs nothing: put them in the webhook URL you give
      Postmark (``https://user:password@example.com/hooks/postmark``).

The request (https://postmarkapp.com/developer/api/email-api): ``POST
https://api.postmarkapp.com/email`` with ``X-Postmark-Server-Token``, ``Accept`` and
``Content-Type: application/json``, and ``From``, ``To`` (with the recipient's name), ``Cc``,
``Bcc``, ``ReplyTo``, ``Subject``, ``TextBody``, ``HtmlBody``, ``Headers`` (``[{Name,
Value}]``, with ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for ``unsubscribe_url``),
``Attachments`` (``[{Name, Content (base64), ContentType}]``, plus ``ContentID: "cid:..."``
for inline images), ``Tag`` (the first tag), ``Metadata`` (the message's metadata plus
``anysend_message_id``, echoed in every webhook) and ``MessageStream``. Provider options
(``TrackOpens``, ``TrackLinks``, ``MessageStream``, any other field of the API) are merged
into the body verbatim; a ``Metadata`` option is merged key by key. Postmark answers 200
``{"ErrorCode": 0, "MessageID": "..."}``; ``MessageID`` is the receipt's id.

Limits and quirks:
    * No scheduling (``send_at`` is refused) and no idempotency key: an ambiguous timeout is
      not retried.
    * One tag per message: only the first of ``tags`` is sent.
    * A line break or NUL in anything Postmark writes into a header (addresses, names, the
      subject, custom headers, attachment names and types, tags, metadata) is refused with
      :class:`~anysend.ContentError` before any request (header injection).
    * A body is required: a message with attachments only is refused (``content_rejected``).
    * At most 50 recipients (To, Cc and Bcc together) and 10 MB per message after base64:
      attachments over :data:`MAX_ATTACHMENT_BYTES` are refused before any request.
    * Marketing goes to the broadcast stream, where Postmark adds its own unsubscribe link and
      ``List-Unsubscribe`` headers. A marketing message sent to the transactional stream needs
      ``unsubscribe_url``.
    * Inline images: ``ContentID`` is ``cid:`` plus the attachment's content id, which must be
      ASCII without spaces (Postmark's "Upcoming changes to attachment validation" notice).
    * Webhooks are not signed: see "Callbacks" below and protect the URL with basic auth
      (https://postmarkapp.com/developer/webhooks/webhooks-overview).

Errors: a failure is HTTP 422 with ``{"ErrorCode": n, "Message": "..."}`` (HTTP 401 with
``ErrorCode`` 10 for a bad token). :data:`ERROR_CODES` maps the codes; ``ErrorCode`` 300 is
refined by the field its message names (:data:`INVALID_REQUEST_FIELDS`). HTTP 413, 429 and 5xx
follow the shared mapping whatever the body says.

Callbacks (https://postmarkapp.com/developer/webhooks/webhooks-overview): one JSON record per
request. ``RecordType`` ``Delivery`` is a status (:data:`STATUS_MAP`); ``Open``, ``Click`` and
``SpamComplaint`` are events (:data:`EVENT_MAP`); a ``Bounce`` is read by its ``Type``
(:data:`BOUNCE_TYPES`, :data:`REASONS`, plus ``contact_invalid`` for
:data:`CONTACT_INVALID_TYPES`); a ``SubscriptionChange`` is ``opted_in`` when sending resumes,
else by its ``SuppressionReason`` (:data:`SUPPRESSION_REASONS`). A post without ``RecordType``
(Postmark's inbound webhook) becomes an :class:`~anysend.InboundMessage`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr, model_validator

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
    Reason,
    Receipt,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._email import check_header_safety, unsafe
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    category_for_status,
    compare_signatures,
    error_from_response,
    response_body,
)

__all__ = [
    "BOUNCE_TYPES",
    "CONTACT_INVALID_TYPES",
    "ERROR_CODES",
    "EVENT_MAP",
    "INVALID_REQUEST_FIELDS",
    "MAX_ATTACHMENT_BYTES",
    "MESSAGE_ID_KEY",
    "REASONS",
    "STATUS_MAP",
    "SUPPRESSION_REASONS",
    "Postmark",
    "PostmarkSettings",
    "basic_auth",
]

#: The metadata key that carries anysend's message id to Postmark and back in webhooks.
MESSAGE_ID_KEY = "anysend_message_id"

#: Attachment bytes per message: 10 MB once base64-encoded (Postmark's limit is on the
#: encoded message; the bodies count too).
MAX_ATTACHMENT_BYTES = 7_500_000

#: Recipients per message, To, Cc and Bcc together.
MAX_RECIPIENTS = 50

#: Postmark's API ``ErrorCode`` values and their categories
#: (https://postmarkapp.com/developer/api/overview#error-codes).
ERROR_CODES: dict[int, ErrorCategory] = {
    10: ErrorCategory.AUTH,  # bad or missing server token
    100: ErrorCategory.UNAVAILABLE,  # maintenance
    300: ErrorCategory.CONTENT_REJECTED,  # invalid email request (see INVALID_REQUEST_FIELDS)
    400: ErrorCategory.CONFIGURATION,  # sender signature not found
    401: ErrorCategory.CONFIGURATION,  # sender signature not confirmed
    402: ErrorCategory.CONFIGURATION,  # invalid JSON
    403: ErrorCategory.CONFIGURATION,  # incompatible JSON (a provider option of a wrong type)
    405: ErrorCategory.QUOTA,  # not allowed to send: out of credits
    406: ErrorCategory.OPTED_OUT,  # inactive recipient: bounced, complained or suppressed
    409: ErrorCategory.CONFIGURATION,  # JSON required
    411: ErrorCategory.CONTENT_REJECTED,  # forbidden attachment type
    412: ErrorCategory.CONFIGURATION,  # account pending approval
    413: ErrorCategory.CONFIGURATION,  # account may not send
    429: ErrorCategory.RATE_LIMITED,  # rate limit exceeded
    1221: ErrorCategory.CONFIGURATION,  # the stream's type cannot send
    1226: ErrorCategory.CONFIGURATION,  # message stream not found
    1235: ErrorCategory.CONFIGURATION,  # message stream does not exist on this server
    1236: ErrorCategory.CONFIGURATION,  # sending not supported on this stream (inbound)
}

#: ``ErrorCode`` 300 messages name the field at fault (``Invalid 'To' address: ...``,
#: ``Error parsing 'Cc': ...``); these fields change the category.
INVALID_REQUEST_FIELDS: dict[str, ErrorCategory] = {
    "To": ErrorCategory.INVALID_RECIPIENT,
    "Cc": ErrorCategory.INVALID_RECIPIENT,
    "Bcc": ErrorCategory.INVALID_RECIPIENT,
    "From": ErrorCategory.CONFIGURATION,
}

#: Record types that report a lifecycle status (``Bounce``: see :data:`BOUNCE_TYPES`).
STATUS_MAP: dict[str, DeliveryStatus] = {"Delivery": DeliveryStatus.DELIVERED}

#: Record types that report an event.
EVENT_MAP: dict[str, EventType] = {
    "Open": EventType.OPENED,
    "Click": EventType.CLICKED,
    "SpamComplaint": EventType.COMPLAINED,
}

#: A bounce's ``Type`` and what it means
#: (https://postmarkapp.com/developer/api/bounce-api#bounce-types). Types that say nothing
#: certain about delivery (auto-replies, relay tests, unclassified) are ``unknown``.
BOUNCE_TYPES: dict[str, DeliveryStatus | EventType] = {
    "HardBounce": DeliveryStatus.UNDELIVERABLE,
    "Transient": DeliveryStatus.DEFERRED,
    "Unsubscribe": EventType.OPTED_OUT,
    "Subscribe": EventType.OPTED_IN,
    "AutoResponder": DeliveryStatus.UNKNOWN,
    "AddressChange": DeliveryStatus.UNKNOWN,
    "DnsError": DeliveryStatus.DEFERRED,
    "SpamNotification": DeliveryStatus.UNDELIVERABLE,
    "OpenRelayTest": DeliveryStatus.UNKNOWN,
    "Unknown": DeliveryStatus.UNKNOWN,
    "SoftBounce": DeliveryStatus.DEFERRED,
    "VirusNotification": DeliveryStatus.UNDELIVERABLE,
    "ChallengeVerification": DeliveryStatus.DEFERRED,
    "BadEmailAddress": DeliveryStatus.REJECTED,
    "SpamComplaint": EventType.COMPLAINED,
    "ManuallyDeactivated": DeliveryStatus.REJECTED,
    "Unconfirmed": DeliveryStatus.REJECTED,
    "Blocked": DeliveryStatus.UNDELIVERABLE,
    "SMTPApiError": DeliveryStatus.FAILED,
    "InboundError": DeliveryStatus.FAILED,
    "DMARCPolicy": DeliveryStatus.UNDELIVERABLE,
    "TemplateRenderingFailed": DeliveryStatus.FAILED,
}

#: A bounce's ``Type`` and the reason it gives.
REASONS: dict[str, Reason] = {
    "HardBounce": Reason.UNKNOWN_RECIPIENT,
    "Transient": Reason.RECIPIENT_UNREACHABLE,
    "Unsubscribe": Reason.OPTED_OUT,
    "DnsError": Reason.RECIPIENT_UNREACHABLE,
    "SpamNotification": Reason.CONTENT_REJECTED,
    "SoftBounce": Reason.RECIPIENT_UNREACHABLE,
    "VirusNotification": Reason.CONTENT_REJECTED,
    "ChallengeVerification": Reason.OTHER,
    "BadEmailAddress": Reason.INVALID_RECIPIENT,
    "ManuallyDeactivated": Reason.POLICY_BLOCKED,
    "Unconfirmed": Reason.OTHER,
    "Blocked": Reason.POLICY_BLOCKED,
    "SMTPApiError": Reason.OTHER,
    "InboundError": Reason.OTHER,
    "DMARCPolicy": Reason.POLICY_BLOCKED,
    "TemplateRenderingFailed": Reason.TEMPLATE_ERROR,
}

#: Bounce types that mean the address is dead: they also give a ``contact_invalid`` event.
CONTACT_INVALID_TYPES: frozenset[str] = frozenset({"HardBounce", "BadEmailAddress"})

#: A ``SubscriptionChange`` that stops sending, by its ``SuppressionReason``
#: (https://postmarkapp.com/developer/webhooks/subscription-change-webhook).
SUPPRESSION_REASONS: dict[str, tuple[EventType, Reason]] = {
    "ManualSuppression": (EventType.OPTED_OUT, Reason.OPTED_OUT),
    "SpamComplaint": (EventType.OPTED_OUT, Reason.SUPPRESSED_COMPLAINT),
    "HardBounce": (EventType.CONTACT_INVALID, Reason.SUPPRESSED_BOUNCE),
}

_TRACK_LINKS = frozenset({"None", "HtmlAndText", "HtmlOnly", "TextOnly"})
_RESERVED_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "subject"})
_UNSUBSCRIBE_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
_FIELD_AT_FAULT = re.compile(r"^\s*(?:Invalid|Error\s+parsing)\s+'([A-Za-z-]+)'", re.IGNORECASE)
_PLAIN_NAME = re.compile(r"[\w!#$%&'*+\-/=?^`{|}~ ]+")
_ISO_TIME = re.compile(r"^(.*?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value Postmark sends for ``https://username:password@...`` URLs."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class PostmarkSettings(ProviderSettings):
    """Settings of :class:`Postmark`.

    Attributes:
        server_token: the server API token.
        sender: the default ``From``.
        message_stream: the stream for messages (Postmark's default transactional stream).
        broadcast_stream: the stream for ``category="marketing"``.
        webhook_username: the basic-auth user name in the webhook URL.
        webhook_password: the basic-auth password in the webhook URL.
    """

    server_token: SecretStr
    sender: str | None = None
    message_stream: str = "outbound"
    broadcast_stream: str = "broadcast"
    webhook_username: str | None = None
    webhook_password: SecretStr | None = None

    @model_validator(mode="after")
    def _check(self) -> PostmarkSettings:
        if not self.server_token.get_secret_value().strip():
            raise ValueError("server_token is empty")
        if (self.webhook_username is None) != (self.webhook_password is None):
            raise ValueError("give webhook_username and webhook_password together")
        if self.webhook_username is not None and self.webhook_password is not None:
            if not self.webhook_username or ":" in self.webhook_username:
                raise ValueError("webhook_username must be non-empty and hold no ':'")
            if not self.webhook_password.get_secret_value():
                raise ValueError("webhook_password is empty")
        for value in (self.sender, self.message_stream, self.broadcast_stream):
            if value is not None and _unsafe(value):
                raise ValueError("sender and stream names may not hold CR, LF or NUL")
        return self


class Postmark(Provider):
    """Sends email through Postmark and reads its webhooks and inbound email.

    Attributes:
        error_codes: Postmark's ``ErrorCode`` values and their categories.
    """

    name: ClassVar[str] = "postmark"
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
        webhooks=True,
        inbound=True,
        max_attachment_bytes=MAX_ATTACHMENT_BYTES,
    )
    Settings: ClassVar[type[ProviderSettings]] = PostmarkSettings
    default_base_url: ClassVar[str | None] = "https://api.postmarkapp.com"
    url_fields: ClassVar[dict[str, str]] = {"password": "server_token"}
    error_codes: ClassVar[dict[int, ErrorCategory]] = ERROR_CODES
    settings: PostmarkSettings

    # -- sending --------------------------------------------------------------------------------

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to ``/email``.

        Raises:
            ConfigurationError: no sender in the message or the settings.
            ContentError: the message breaks a Postmark rule (see the module docstring).
        """
        payload = self.payload(message)
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "X-Postmark-Server-Token": self.settings.server_token.get_secret_value(),
        }
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return httpx.Request(
            "POST", f"{self.default_base_url}/email", content=content, headers=headers
        )

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON body for ``message`` (see :meth:`build_request`)."""
        sender = message.sender or self.settings.sender
        if not sender:
            raise ConfigurationError("postmark needs a sender: set Message.sender or sender")
        if message.text is None and message.html is None:
            raise ContentError("postmark needs a text or HTML body (attachments alone are refused)")
        if 1 + len(message.cc) + len(message.bcc) > MAX_RECIPIENTS:
            raise ContentError(f"postmark takes at most {MAX_RECIPIENTS} recipients per message")
        # Line breaks in anything Postmark turns into a header (tags and metadata too).
        check_header_safety(message)
        if _unsafe(sender):
            raise ContentError("the sender holds a line break or NUL (header injection refused)")
        payload: dict[str, Any] = {
            "From": sender,
            "To": _mailbox(message.to, message.recipient.name),
        }
        for field, values in (("Cc", message.cc), ("Bcc", message.bcc)):
            if values:
                payload[field] = ", ".join(values)
        if message.reply_to:
            payload["ReplyTo"] = ", ".join(message.reply_to)
        if message.subject is not None:
            payload["Subject"] = message.subject
        if message.text is not None:
            payload["TextBody"] = message.text
        if message.html is not None:
            payload["HtmlBody"] = message.html
        headers = self._headers(message)
        if headers:
            payload["Headers"] = headers
        if message.attachments:
            payload["Attachments"] = [self._attachment(a) for a in message.attachments]
        if message.tags:
            payload["Tag"] = message.tags[0]
        payload["Metadata"] = {**message.metadata, MESSAGE_ID_KEY: message.id}
        marketing = message.category == "marketing"
        payload["MessageStream"] = (
            self.settings.broadcast_stream if marketing else self.settings.message_stream
        )
        self._merge_options(payload, message.provider_options)
        if (
            marketing
            and not message.unsubscribe_url
            and payload["MessageStream"] == self.settings.message_stream
        ):
            raise ContentError(
                "marketing email on the transactional stream needs unsubscribe_url "
                "(RFC 8058 one-click unsubscribe)"
            )
        return payload

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for ``ErrorCode`` 0; otherwise a ProviderError (see :data:`ERROR_CODES`)."""
        body = response_body(response)
        code = _error_code(body)
        if response.is_success and not code:
            found = body.get("MessageID") if isinstance(body, dict) else None
            raw = body if isinstance(body, (dict, list, str)) and body != "" else None
            return Receipt(provider_message_id=found if isinstance(found, str) else None, raw=raw)
        text = body.get("Message") if isinstance(body, dict) else None
        status = response.status_code
        category: ErrorCategory | None = None
        if status >= 500 or status in (413, 429):
            category = category_for_status(status)
        elif code is not None and code in self.error_codes:
            category = self.error_codes[code]
            if code == 300 and isinstance(text, str):
                field = _FIELD_AT_FAULT.match(text)
                if field:
                    category = INVALID_REQUEST_FIELDS.get(field.group(1).title(), category)
        raise error_from_response(
            response,
            self.name,
            message=f"postmark refused the message: {text}" if isinstance(text, str) else None,
            category=category,
            code=str(code) if code is not None else None,
        )

    def _headers(self, message: OutboundMessage) -> list[dict[str, str]]:
        headers: list[dict[str, str]] = []
        for name, value in message.headers.items():
            lowered = name.lower()
            if _unsafe(name) or _unsafe(value):
                raise ContentError(f"header {name!r} holds a line break or NUL")
            if lowered in _RESERVED_HEADERS or (
                message.unsubscribe_url and lowered in _UNSUBSCRIBE_HEADERS
            ):
                raise ContentError(f"header {name!r} is set by anysend; use the message's fields")
            headers.append({"Name": name, "Value": value})
        if message.unsubscribe_url:
            headers.append({"Name": "List-Unsubscribe", "Value": f"<{message.unsubscribe_url}>"})
            headers.append({"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"})
        return headers

    @staticmethod
    def _attachment(attachment: Attachment) -> dict[str, str]:
        item = {
            "Name": attachment.filename,
            "Content": base64.b64encode(attachment.content).decode("ascii"),
            "ContentType": attachment.content_type,
        }
        if attachment.inline:
            cid = (attachment.content_id or attachment.filename).strip().strip("<>")
            cid = cid[4:] if cid.lower().startswith("cid:") else cid
            if not cid or not cid.isascii() or any(c.isspace() for c in cid):
                raise ContentError(f"postmark content ids are ASCII without spaces: {cid!r}")
            item["ContentID"] = f"cid:{cid}"
        return item

    @staticmethod
    def _merge_options(payload: dict[str, Any], options: dict[str, Any]) -> None:
        for key, value in options.items():
            if key == "Metadata" and isinstance(value, dict):
                payload["Metadata"] = {**value, **payload["Metadata"]}
            else:
                payload[key] = value
        track_links = payload.get("TrackLinks")
        if track_links is not None and track_links not in _TRACK_LINKS:
            raise ContentError(f"postmark TrackLinks is one of {sorted(_TRACK_LINKS)}")
        if "TrackOpens" in payload and not isinstance(payload["TrackOpens"], bool):
            raise ContentError("postmark TrackOpens is true or false")

    # -- callbacks ------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the ``Authorization: Basic`` credentials against the settings.

        Raises:
            WebhookVerificationError: no credentials are configured, or the request's are
                missing or wrong.
        """
        username, password = self.settings.webhook_username, self.settings.webhook_password
        if username is None or password is None:
            raise WebhookVerificationError(
                "postmark signs nothing: set webhook_username and webhook_password and put "
                "them in the webhook URL"
            )
        scheme, _, token = (request.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise WebhookVerificationError("postmark callback has no basic-auth credentials")
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("postmark callback credentials are malformed") from None
        given_user, _, given_password = given.partition(b":")
        user_ok = compare_signatures(username.encode(), given_user)
        password_ok = compare_signatures(password.get_secret_value().encode(), given_password)
        if not (user_ok & password_ok):
            raise WebhookVerificationError("postmark callback credentials do not match")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """The events of one webhook record, or the InboundMessage of an inbound post."""
        data = request.json_body()
        if not isinstance(data, dict):
            raise WebhookParseError("postmark webhook body is not a JSON object")
        record_type = data.get("RecordType")
        if record_type is None or record_type == "Inbound":
            if "FromFull" in data or "From" in data:
                return [self._inbound(data)]
            raise WebhookParseError("postmark webhook has neither RecordType nor From")
        if not isinstance(record_type, str) or not record_type:
            raise WebhookParseError("postmark webhook RecordType is not a string")
        if record_type == "Bounce":
            return self._bounce(data)
        if record_type == "SubscriptionChange":
            return [self._subscription_change(data)]
        event = EVENT_MAP.get(record_type)
        if event is not None:
            return [self._event(data, record_type, event=event)]
        status = STATUS_MAP.get(record_type, DeliveryStatus.UNKNOWN)
        return [self._event(data, record_type, status=status)]

    def _bounce(self, data: dict[str, Any]) -> list[DeliveryEvent]:
        kind = data.get("Type")
        if not isinstance(kind, str) or not kind:
            raise WebhookParseError("postmark bounce has no string Type")
        meaning = BOUNCE_TYPES.get(kind, DeliveryStatus.UNKNOWN)
        reason = REASONS.get(kind)
        if isinstance(meaning, EventType):
            events = [self._event(data, kind, event=meaning, reason=reason)]
        else:
            events = [self._event(data, kind, status=meaning, reason=reason)]
        if kind in CONTACT_INVALID_TYPES:
            events.append(
                self._event(
                    data, kind, event=EventType.CONTACT_INVALID, reason=reason, suffix=":contact"
                )
            )
        return events

    def _subscription_change(self, data: dict[str, Any]) -> DeliveryEvent:
        suppress = data.get("SuppressSending")
        if not isinstance(suppress, bool):
            raise WebhookParseError("postmark SubscriptionChange has no boolean SuppressSending")
        if not suppress:
            return self._event(data, "SubscriptionChange", event=EventType.OPTED_IN)
        why = data.get("SuppressionReason")
        event, reason = SUPPRESSION_REASONS.get(
            why if isinstance(why, str) else "", (EventType.OPTED_OUT, Reason.OTHER)
        )
        return self._event(data, "SubscriptionChange", event=event, reason=reason)

    def _event(
        self,
        data: dict[str, Any],
        raw_status: str,
        *,
        status: DeliveryStatus | None = None,
        event: EventType | None = None,
        reason: Reason | None = None,
        suffix: str = "",
    ) -> DeliveryEvent:
        metadata = data.get("Metadata")
        ours = metadata.get(MESSAGE_ID_KEY) if isinstance(metadata, dict) else None
        recipient = _text(data.get("Recipient")) or _text(data.get("Email"))
        when = next(
            (data[k] for k in ("DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt") if k in data),
            None,
        )
        bounce_id = data.get("ID")
        if isinstance(bounce_id, int) and not isinstance(bounce_id, bool):
            event_id = f"bounce:{bounce_id}{suffix}"
        else:
            digest = hashlib.sha256(
                json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()
            ).hexdigest()
            event_id = f"{data.get('RecordType')}:{digest[:32]}{suffix}"
        description = _text(data.get("Description")) or _text(data.get("Details"))
        if data.get("RecordType") == "Click":
            description = _text(data.get("OriginalLink")) or description
        return DeliveryEvent(
            provider=self.name,
            provider_message_id=_text(data.get("MessageID")),
            message_id=ours if isinstance(ours, str) else None,
            recipient=recipient,
            channel=Channel.EMAIL,
            status=status,
            event=event,
            raw_status=raw_status,
            reason=reason,
            description=description,
            occurred_at=_iso_time(when),
            event_id=event_id,
            raw=data,
        )

    def _inbound(self, data: dict[str, Any]) -> InboundMessage:
        full = data.get("FromFull")
        sender = _text(full.get("Email")) if isinstance(full, dict) else None
        sender = sender or _text(data.get("From"))
        if not sender:
            raise WebhookParseError("postmark inbound email has no From address")
        recipients = data.get("ToFull")
        first = recipients[0] if isinstance(recipients, list) and recipients else None
        recipient = _text(data.get("OriginalRecipient"))
        recipient = recipient or (_text(first.get("Email")) if isinstance(first, dict) else None)
        media = []
        attachments = data.get("Attachments")
        for item in attachments if isinstance(attachments, list) else []:
            if isinstance(item, dict):
                media.append(
                    Media(
                        filename=_text(item.get("Name")),
                        content_type=_text(item.get("ContentType")),
                        provider_media_id=_text(item.get("ContentID")),
                    )
                )
        reply = _text(data.get("StrippedTextReply"))
        return InboundMessage(
            provider=self.name,
            channel=Channel.EMAIL,
            sender=sender,
            recipient=recipient,
            text=reply or _text(data.get("TextBody")),
            subject=_text(data.get("Subject")),
            media=tuple(media),
            provider_message_id=_text(data.get("MessageID")),
            received_at=_rfc822_time(data.get("Date")),
            raw=data,
        )


def _unsafe(value: str) -> bool:
    """A line break or NUL (see :data:`anysend._email.LINE_BREAKS`): never in a header."""
    return unsafe(value)


def _text(value: object) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _mailbox(address: str, name: str | None) -> str:
    """``address`` (its domain in IDNA) with ``name`` quoted as RFC 5322 needs."""
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        try:
            address = f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError as exc:
            raise ContentError(f"postmark cannot encode the domain of {address!r}") from exc
    if not name:
        return address
    if _PLAIN_NAME.fullmatch(name):
        return f"{name} <{address}>"
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{address}>'


def _error_code(body: object) -> int | None:
    code = body.get("ErrorCode") if isinstance(body, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def _iso_time(value: object) -> datetime | None:
    """A Postmark ISO 8601 time (up to 7 fraction digits, ``Z`` or an offset); UTC if naive."""
    if not isinstance(value, str):
        return None
    match = _ISO_TIME.match(value.strip())
    if match is None:
        return None
    stamp, fraction, zone = match.groups()
    text = stamp + (f".{(fraction + '000000')[:6]}" if fraction else "")
    if zone == "Z":
        text += "+00:00"
    elif zone:
        text += zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _rfc822_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
