"""``SendGrid``: email through the Twilio SendGrid v3 Mail Send API, with its Event Webhook.

Example:
    ```python
    import os

    import anysend
    from anysend.providers.sendgrid import SendGrid

    sendgrid = SendGrid(
        api_key="SG.xxxx",
        sender="Shop <shop@example.com>",
        webhook_public_key=os.environ["SENDGRID_WEBHOOK_KEY"],  # Signed Event Webhook
    )
    with anysend.Client([sendgrid]) as client:
        client.send(anysend.Message(subject="Hi", text="Hello"), to={"email": "ann@example.com"})
    ```

Settings:
    * ``api_key`` (secret): an API key with the Mail Send permission (a bearer token).
    * ``sender``: the default ``From`` (``"Shop <shop@example.com>"``); ``Message.sender`` wins.
    * ``region``: ``"global"`` (``api.sendgrid.com``) or ``"eu"`` (``api.eu.sendgrid.com``, for
      EU regional subusers).
    * ``webhook_public_key``: the Signed Event Webhook's verification key, as SendGrid shows it
      (base64 DER SubjectPublicKeyInfo; PEM is accepted too). Needs ``cryptography``
      (``pip install "anysend[sendgrid]"``).
    * ``replay_window``: seconds a signed callback's timestamp may be from now (300).

The request: ``POST {base}/v3/mail/send`` with ``Authorization: Bearer <api_key>`` and a JSON
body: one ``personalizations`` entry (``to`` with the recipient's name, ``cc``, ``bcc``),
``from``, ``reply_to`` (``reply_to_list`` for several), ``subject``, ``content``
(``text/plain`` first, then ``text/html``), ``attachments`` (base64; inline images with
``disposition: inline`` and ``content_id``), ``headers`` (with one-click ``List-Unsubscribe``
for ``unsubscribe_url``), ``categories`` from the tags, ``custom_args`` with anysend's
message id (:data:`MESSAGE_ID_ARG`) and the metadata, and ``send_at`` in unix seconds.
``provider_options`` are merged into the body as given (``template_id``, ``asm``,
``mail_settings``, ...); ``dynamic_template_data`` and ``substitutions`` go into the
personalization. SendGrid answers ``202 Accepted`` with an empty body and the message id in the
``X-Message-Id`` header.

Batch sends (``client.send_batch``;
https://www.twilio.com/docs/sendgrid/for-developers/sending-email/personalizations): up to
:data:`MAX_PERSONALIZATIONS` messages in one request, the first message's body with one
personalization per message: ``to`` alone, ``custom_args`` with its anysend id (SendGrid
merges them over the shared ``custom_args``, the metadata), its ``subject`` where it differs,
and ``dynamic_template_data`` / ``substitutions``. Every receipt has the request's
``X-Message-Id``; events tell the recipients apart by the id in their custom arguments.

Limits and quirks (https://www.twilio.com/docs/sendgrid/api-reference/mail-send):
    * No idempotency key: an ambiguous timeout is not retried.
    * The email must stay under 30 MB with base64 attachments, so attachments over 22.5 MB in
      total are refused before sending; at most 10 categories (ASCII, 255 characters each);
      ``send_at`` at most 72 hours ahead (further is ``unsupported``); a subject and a body are
      required unless ``provider_options`` name a ``template_id``; some headers are reserved
      (:data:`RESERVED_HEADERS`).
    * cc and bcc addresses that repeat the recipient or each other are dropped (SendGrid
      refuses duplicates in a personalization).
    * Metadata keys that are Event Webhook fields (``email``, ``event``, ...) are overwritten by
      SendGrid in events.

Errors: a 4xx answer carries ``{"errors": [{"message", "field", "help"}]}``. The first error
whose message (:data:`ERROR_MESSAGES`) or field (:data:`ERROR_CODES`, array indexes removed,
longest prefix) is known decides the category; else :data:`ERROR_STATUSES`, then the shared
HTTP mapping (401/403 ``auth``, 413 ``payload_too_large``, 429 ``rate_limited``, 5xx
``unavailable``). A 429 without ``Retry-After`` waits until ``X-RateLimit-Reset``.

Callbacks (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event): a JSON
array of events per POST, one DeliveryEvent each. :data:`STATUS_MAP` and :data:`EVENT_MAP` map
the ``event`` field; reasons come from :data:`DROP_REASONS` (``dropped``) and
:data:`BOUNCE_REASONS` (``bounce``; ``type: blocked`` is ``policy_blocked``). The provider
message id is ``sg_message_id`` without its ``.filter…``/``.recvd-…`` suffix, which is the
``X-Message-Id`` of the send (:func:`message_id_of`). The Signed Event Webhook is ECDSA P-256
with SHA-256 over the ``X-Twilio-Email-Event-Webhook-Timestamp`` header followed by the raw
body; the signature is base64 DER in ``X-Twilio-Email-Event-Webhook-Signature``
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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
    InvalidRecipientError,
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
    error_from_response,
    response_body,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

__all__ = [
    "BASE_URLS",
    "BOUNCE_REASONS",
    "DROP_REASONS",
    "ERROR_CODES",
    "ERROR_MESSAGES",
    "ERROR_STATUSES",
    "EVENT_MAP",
    "MAX_PERSONALIZATIONS",
    "MESSAGE_ID_ARG",
    "RESERVED_HEADERS",
    "SIGNATURE_HEADER",
    "STATUS_MAP",
    "TIMESTAMP_HEADER",
    "SendGrid",
    "SendGridSettings",
    "load_public_key",
    "message_id_of",
    "sign",
]

#: The API host per ``region`` setting.
BASE_URLS: dict[str, str] = {
    "global": "https://api.sendgrid.com",
    "eu": "https://api.eu.sendgrid.com",
}

#: The custom argument that carries anysend's message id (echoed in every event).
MESSAGE_ID_ARG = "anysend_message_id"

#: The Signed Event Webhook's headers.
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

#: Headers SendGrid refuses in ``headers`` (lower case), per its Mail Send errors page.
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)

#: The most personalizations (and recipients, to + cc + bcc) one Mail Send request may have.
MAX_PERSONALIZATIONS = 1000
_MAX_CATEGORIES = 10
_MAX_CATEGORY_LENGTH = 255
_MAX_SEND_AT_AHEAD = 72 * 3600
#: 30 MB for the whole email with base64 attachments: 3/4 of it for the raw bytes.
_MAX_ATTACHMENT_BYTES = 30_000_000 * 3 // 4
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_PIP_HINT = 'verifying SendGrid webhooks needs cryptography: pip install "anysend[sendgrid]"'

_E = ErrorCategory

#: Error fields (``errors[].field`` with array indexes removed) and their categories; the
#: longest matching prefix wins.
ERROR_CODES: dict[str, ErrorCategory] = {
    "personalizations.to": _E.INVALID_RECIPIENT,
    "personalizations.cc": _E.CONTENT_REJECTED,
    "personalizations.bcc": _E.CONTENT_REJECTED,
    "personalizations": _E.CONTENT_REJECTED,
    "from": _E.CONFIGURATION,
    "reply_to": _E.CONTENT_REJECTED,
    "reply_to_list": _E.CONTENT_REJECTED,
    "subject": _E.CONTENT_REJECTED,
    "content": _E.CONTENT_REJECTED,
    "attachments": _E.CONTENT_REJECTED,
    "headers": _E.CONTENT_REJECTED,
    "categories": _E.CONTENT_REJECTED,
    "custom_args": _E.CONTENT_REJECTED,
    "send_at": _E.CONTENT_REJECTED,
    "template_id": _E.CONFIGURATION,
    "asm": _E.CONFIGURATION,
    "ip_pool_name": _E.CONFIGURATION,
    "batch_id": _E.CONFIGURATION,
    "mail_settings": _E.CONFIGURATION,
    "tracking_settings": _E.CONFIGURATION,
}

#: Error messages (lower-case fragments of ``errors[].message``) that decide the category
#: before the field does.
ERROR_MESSAGES: dict[str, ErrorCategory] = {
    "maximum credits exceeded": _E.QUOTA,
    "does not match a verified sender identity": _E.CONFIGURATION,
}

#: HTTP statuses with a meaning of their own at SendGrid (then the shared mapping).
ERROR_STATUSES: dict[int, ErrorCategory] = {
    404: _E.CONFIGURATION,  # no such endpoint: a wrong base URL
    415: _E.CONTENT_REJECTED,  # "Invalid UTF8 in request"
}

#: Event Webhook ``event`` values that are delivery statuses.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "processed": DeliveryStatus.ACCEPTED,
    "deferred": DeliveryStatus.DEFERRED,
    "delivered": DeliveryStatus.DELIVERED,
    "bounce": DeliveryStatus.UNDELIVERABLE,
    "dropped": DeliveryStatus.REJECTED,
}

#: Event Webhook ``event`` values that are engagement events.
EVENT_MAP: dict[str, EventType] = {
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.OPTED_OUT,
    "group_unsubscribe": EventType.OPTED_OUT,
    "group_resubscribe": EventType.OPTED_IN,
}

#: ``dropped`` reasons (lower case) and anysend's reason; others are ``other``.
DROP_REASONS: dict[str, Reason] = {
    "bounced address": Reason.SUPPRESSED_BOUNCE,
    "unsubscribed address": Reason.OPTED_OUT,
    "spam reporting address": Reason.SUPPRESSED_COMPLAINT,
    "invalid": Reason.INVALID_RECIPIENT,
    "spam content": Reason.CONTENT_REJECTED,
    "recipient list over package quota": Reason.INSUFFICIENT_FUNDS,
    "expired": Reason.TIMED_OUT,
}

#: Enhanced status codes of ``bounce`` events (the most specific prefix wins).
BOUNCE_REASONS: dict[str, Reason] = {
    "5.1.1": Reason.UNKNOWN_RECIPIENT,
    "5.1.10": Reason.UNKNOWN_RECIPIENT,
    "5.1": Reason.INVALID_RECIPIENT,
    "5.2.1": Reason.UNKNOWN_RECIPIENT,
    "5.2.2": Reason.RECIPIENT_UNREACHABLE,
    "5.2": Reason.RECIPIENT_UNREACHABLE,
    "5.3.4": Reason.CONTENT_REJECTED,
    "5.4": Reason.RECIPIENT_UNREACHABLE,
    "5.7": Reason.POLICY_BLOCKED,
    "4": Reason.RECIPIENT_UNREACHABLE,
}

_OPT_OUT_REASONS = {
    "unsubscribe": Reason.OPTED_OUT,
    "group_unsubscribe": Reason.OPTED_OUT,
    "spamreport": Reason.SUPPRESSED_COMPLAINT,
}
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
#: Where SendGrid's suffix to the X-Message-Id begins (``.filterdrecv-``, ``.recvd-``, ...).
_SUFFIX = re.compile(r"\.(?:st)?(?:filter|recvd)", re.IGNORECASE)
_INDEX = re.compile(r"\.\d+(?=\.|$)|\[\d+\]")


def message_id_of(sg_message_id: str) -> str:
    """The ``X-Message-Id`` of the send that an event's ``sg_message_id`` belongs to.

    SendGrid appends a per-recipient suffix (``.filterdrecv-…``, ``.recvd-…``, ``.filter0001…``)
    to the id it answered the send with; without a known suffix, the part before the first dot.
    """
    found = _SUFFIX.search(sg_message_id)
    if found is not None and found.start() > 0:
        return sg_message_id[: found.start()]
    return sg_message_id.split(".", 1)[0] or sg_message_id


def load_public_key(value: str) -> EllipticCurvePublicKey:
    """The P-256 public key of a Signed Event Webhook, from base64 DER (as shown) or PEM.

    Raises:
        ConfigurationError: cryptography is missing.
        ValueError: the value is not a P-256 public key.
    """
    try:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import (
            load_der_public_key,
            load_pem_public_key,
        )
    except ImportError:  # pragma: no cover - cryptography is installed in the test setup
        raise ConfigurationError(_PIP_HINT) from None
    text = value.strip()
    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
        raise ValueError(f"not a base64 DER or PEM public key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the Signed Event Webhook key must be an ECDSA P-256 public key")
    return key


def sign(body: bytes, timestamp: int | str, private_key: EllipticCurvePrivateKey) -> str:
    """The ``X-Twilio-Email-Event-Webhook-Signature`` value SendGrid would send.

    For tests: SendGrid signs with its own private key, whose public half is the setting.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signed = str(timestamp).encode("ascii") + body
    return base64.b64encode(private_key.sign(signed, ec.ECDSA(hashes.SHA256()))).decode("ascii")


class SendGridSettings(ProviderSettings):
    """Settings of :class:`SendGrid`.

    Attributes:
        api_key: an API key with the Mail Send permission.
        sender: the default ``From``, one address (``"Shop <shop@example.com>"``).
        region: ``"global"`` or ``"eu"`` (EU regional subusers).
        webhook_public_key: the Signed Event Webhook verification key (base64 DER or PEM).
        replay_window: seconds a signed callback's timestamp may lie from now.
    """

    api_key: SecretStr
    sender: str | None = None
    region: Literal["global", "eu"] = "global"
    webhook_public_key: str | None = None
    replay_window: float = Field(default=300.0, gt=0)

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key or any(c.isspace() for c in key):
            raise ValueError("the API key is empty or contains whitespace")
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None:
            _mailbox(value, "sender", ValueError)
        return value

    @field_validator("webhook_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is not None:
            load_public_key(value)
        return value


class SendGrid(Provider):
    """Sends email through SendGrid's v3 Mail Send API and reads its Event Webhook.

    Attributes:
        now: the clock for the replay window, ``send_at`` and ``X-RateLimit-Reset`` (override
            it per instance in tests: ``sendgrid.now = lambda: 1_700_000_000.0``).
    """

    name: ClassVar[str] = "sendgrid"
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
        max_attachment_bytes=_MAX_ATTACHMENT_BYTES,
    )
    Settings: ClassVar[type[ProviderSettings]] = SendGridSettings
    default_base_url: ClassVar[str | None] = BASE_URLS["global"]
    max_batch: ClassVar[int] = MAX_PERSONALIZATIONS
    batch_varies: ClassVar[frozenset[str]] = frozenset({"subject"})
    settings: SendGridSettings
    now: Callable[[], float] = time.time

    def __init__(self, settings: SendGridSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        key = self.settings.webhook_public_key
        self._public_key = load_public_key(key) if key is not None else None

    @property
    def base_url(self) -> str:
        """The API host of the configured region."""
        return BASE_URLS[self.settings.region]

    # -- sending --------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a ``send_at`` more than 72 hours ahead (SendGrid cannot schedule it)."""
        super().check_supported(message)
        send_at = _unix(message.send_at)
        if send_at is not None and send_at - self.now() > _MAX_SEND_AT_AHEAD:
            raise UnsupportedFeatureError(
                "sendgrid schedules at most 72 hours ahead", provider=self.name, feature="send_at"
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to ``/v3/mail/send`` (see the module for the body).

        Raises:
            ContentError: the message breaks one of SendGrid's rules (no subject or body,
                reserved headers, categories, marketing email without ``unsubscribe_url``).
            ConfigurationError: there is no sender.
            InvalidRecipientError: a cc or bcc entry is not one address.
        """
        return self._request(self.payload(message))

    def _request(self, payload: dict[str, Any]) -> httpx.Request:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = {
            "Authorization": f"Bearer {self.settings.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }
        return httpx.Request(
            "POST", f"{self.base_url}/v3/mail/send", content=body.encode(), headers=headers
        )

    # -- batch sends ---------------------------------------------------------------------------

    def batchable(self, message: OutboundMessage) -> bool:
        """Also no ``personalizations`` of the message's own in ``provider_options``.

        (No cc or bcc either: SendGrid refuses an address twice in one request.)
        """
        return super().batchable(message) and "personalizations" not in message.provider_options

    def build_batch_request(self, messages: Sequence[OutboundMessage]) -> httpx.Request:
        """One Mail Send request with a personalization per message (see :meth:`batch_payload`)."""
        return self._request(self.batch_payload(messages))

    def batch_payload(self, messages: Sequence[OutboundMessage]) -> dict[str, Any]:
        """The Mail Send body for several messages that differ only in recipient and subject.

        The first message gives the shared body (:meth:`payload`); each message becomes one
        personalization with its own ``to`` (so each recipient sees only their own address),
        ``custom_args`` with its anysend id (SendGrid merges them over the shared
        ``custom_args`` and echoes both in every event), its ``subject`` where it differs, and
        the ``dynamic_template_data`` / ``substitutions`` of its provider options.

        Raises:
            ContentError: as :meth:`payload`, or a message has no subject and no template.
            UnsupportedFeatureError: more than :attr:`max_batch` messages.
        """
        if not messages:
            raise ContentError("a sendgrid batch needs at least one message")
        if len(messages) > self.max_batch:
            raise UnsupportedFeatureError(
                f"sendgrid takes at most {self.max_batch} personalizations a request",
                provider=self.name,
                feature="batch",
            )
        first = messages[0]
        payload = self.payload(first)
        shared_args = dict(payload.pop("custom_args"))
        del shared_args[MESSAGE_ID_ARG]
        if shared_args:
            payload["custom_args"] = shared_args
        subject = payload.get("subject")
        templated = "template_id" in first.provider_options
        personalizations: list[dict[str, Any]] = []
        for message in messages:
            if not message.subject and not templated:
                raise ContentError("sendgrid needs a subject (or a template_id provider option)")
            personalization: dict[str, Any] = {
                "to": [_address(message.to, message.recipient.name)],
                "custom_args": {MESSAGE_ID_ARG: message.id},
            }
            if message.subject and message.subject != subject:
                personalization["subject"] = message.subject
            for key in ("dynamic_template_data", "substitutions"):
                if key in message.provider_options:
                    personalization[key] = message.provider_options[key]
            personalizations.append(personalization)
        payload["personalizations"] = personalizations
        return payload

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[Receipt]:
        """The same receipt for every message: the request's ``X-Message-Id``.

        SendGrid answers a request once; each recipient's events carry that id with a suffix
        of their own (``sg_message_id``) and the personalization's ``custom_args``.
        """
        receipt = self.parse_response(response, messages[0])
        return [receipt] * len(messages)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Mail Send body for ``message``, as a dict."""
        check_header_safety(message)  # line breaks anywhere a header is made (issue #8)
        options = dict(message.provider_options)
        templated = "template_id" in options
        if not message.subject and not templated:
            raise ContentError("sendgrid needs a subject (or a template_id provider option)")
        content = [
            {"type": kind, "value": value}
            for kind, value in (("text/plain", message.text), ("text/html", message.html))
            if value
        ]
        if not content and not templated:
            raise ContentError("sendgrid needs a text or HTML body (or a template_id)")
        if message.category == "marketing" and not message.unsubscribe_url:
            raise ContentError("marketing email needs unsubscribe_url (RFC 8058 one-click)")
        sender = message.sender or self.settings.sender
        if not sender:
            raise ConfigurationError("sendgrid needs a sender: set Message.sender or sender")

        personalization: dict[str, Any] = {"to": [_address(message.to, message.recipient.name)]}
        seen = {message.to.lower()}
        for field in ("cc", "bcc"):
            found = []
            for value in getattr(message, field):
                mailbox = _mailbox(value, field, InvalidRecipientError)
                if mailbox["email"].lower() not in seen:  # SendGrid refuses repeats
                    seen.add(mailbox["email"].lower())
                    found.append(mailbox)
            if found:
                personalization[field] = found
        for key in ("dynamic_template_data", "substitutions"):
            if key in options:
                personalization[key] = options.pop(key)

        payload: dict[str, Any] = {
            "personalizations": [personalization],
            "from": _mailbox(sender, "sender", ContentError),
        }
        replies = [_mailbox(value, "reply_to", ContentError) for value in message.reply_to]
        if len(replies) == 1:
            payload["reply_to"] = replies[0]
        elif replies:
            payload["reply_to_list"] = replies
        if message.subject:
            payload["subject"] = message.subject
        if content:
            payload["content"] = content
        if message.attachments:
            payload["attachments"] = [_attachment(a) for a in message.attachments]
        headers = self._headers(message)
        if headers:
            payload["headers"] = headers
        categories = _categories(message.tags)
        if categories:
            payload["categories"] = categories
        custom_args = {**message.metadata, MESSAGE_ID_ARG: message.id}
        extra_args = options.pop("custom_args", None)
        if isinstance(extra_args, Mapping):
            custom_args = {**extra_args, **custom_args}
        payload["custom_args"] = custom_args
        send_at = _unix(message.send_at)
        if send_at is not None:
            payload["send_at"] = int(send_at)
        payload.update(options)  # the escape hatch, verbatim
        return payload

    def _headers(self, message: OutboundMessage) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in message.headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ContentError(f"{name!r} is not a valid header name")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS:
                raise ContentError(f"sendgrid does not allow the header {name!r}")
            if message.unsubscribe_url and lowered.startswith("list-unsubscribe"):
                raise ContentError(f"header {name!r} is set from unsubscribe_url")
            if _unsafe(value):
                raise ContentError(f"header {name!r} contains CR, LF or NUL")
            headers[name] = value
        if message.unsubscribe_url:
            if _unsafe(message.unsubscribe_url):
                raise ContentError("unsubscribe_url contains CR, LF or NUL")
            headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return headers

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for a 2xx (the id from ``X-Message-Id``); otherwise a ProviderError."""
        body = response_body(response)
        if response.is_success:
            # ``accepted`` even with a future ``send_at``: SendGrid has taken the message, and
            # a ``scheduled`` receipt would not count as a success (SendResult.ok).
            raw = body if isinstance(body, (dict, list, str)) and body != "" else None
            return Receipt(
                provider_message_id=response.headers.get("x-message-id") or None, raw=raw
            )
        raise self.error_for(response)

    def error_for(self, response: httpx.Response) -> ProviderError:
        """The ProviderError a failed answer means (see the module's error mapping)."""
        body = response_body(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        items = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        texts = [e["message"] for e in items if isinstance(e.get("message"), str)]
        category: ErrorCategory | None = None
        code: str | None = None
        if 400 <= response.status_code < 500:
            for item in items:
                found = _category_of(item)
                if found is not None:
                    category, field = found, item.get("field")
                    code = field if isinstance(field, str) else None
                    break
        if code is None:
            fields = [e["field"] for e in items if isinstance(e.get("field"), str)]
            code = fields[0] if fields else None
        if category is None:
            category = ERROR_STATUSES.get(response.status_code)
        status = f"HTTP {response.status_code}"
        text = "; ".join(texts) if texts else f"{status} {response.reason_phrase}".strip()
        error = error_from_response(
            response,
            self.name,
            message=f"sendgrid refused the message: {text}",
            category=category,
            code=code,
        )
        if error.retry_after is None and response.status_code == 429:
            error.retry_after = _reset_delay(response.headers.get("x-ratelimit-reset"), self.now())
        return error

    # -- callbacks --------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the Signed Event Webhook signature and that its timestamp is recent.

        Raises:
            WebhookVerificationError: no key is configured, a header is missing, the signature
                does not match the timestamp and body, or the timestamp is outside
                ``replay_window``.
        """
        if self._public_key is None:
            raise WebhookVerificationError(
                "sendgrid has no webhook_public_key to verify the Signed Event Webhook with"
            )
        signature = request.header(SIGNATURE_HEADER)
        stamp = request.header(TIMESTAMP_HEADER)
        if not signature or not stamp:
            raise WebhookVerificationError(
                f"sendgrid callback lacks {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}"
            )
        if not stamp.isascii() or not stamp.isdigit():
            raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is not a unix time")
        if not _signature_matches(self._public_key, stamp.encode() + request.body, signature):
            raise WebhookVerificationError("sendgrid callback signature does not match")
        check_replay_window(self.name, int(stamp), self.now(), self.settings.replay_window)

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One DeliveryEvent per event of the batch, in the order SendGrid sent them."""
        data = request.json_body()
        if not isinstance(data, list):
            raise WebhookParseError("sendgrid Event Webhook body is not a JSON array")
        return [self._event(item) for item in data]

    def _event(self, item: object) -> DeliveryEvent:
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            raise WebhookParseError("a sendgrid event is not an object with a string 'event'")
        raw_status: str = item["event"]
        event_type = EVENT_MAP.get(raw_status)
        status = None if event_type else STATUS_MAP.get(raw_status, DeliveryStatus.UNKNOWN)
        text = _first_text(item, "reason", "response")
        ours = item.get(MESSAGE_ID_ARG)
        recipient = item.get("email")
        event_id = item.get("sg_event_id")
        if not isinstance(event_id, str) or not event_id:
            canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
            event_id = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        return DeliveryEvent(
            provider=self.name,
            provider_message_id=_provider_id(item),
            message_id=ours if isinstance(ours, str) and ours else None,
            recipient=recipient if isinstance(recipient, str) else None,
            channel=Channel.EMAIL,
            status=status,
            event=event_type,
            raw_status=raw_status,
            reason=_reason(raw_status, item, text),
            description=text,
            occurred_at=_when(item.get("timestamp")),
            event_id=event_id,
            raw=item,
        )


# -- helpers --------------------------------------------------------------------------------------


def _unsafe(value: str) -> bool:
    return unsafe(value)  # CR, LF, every other line break and NUL (anysend._email)


def _address(email: str, name: str | None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _mailbox(value: str, field: str, error: type[Exception]) -> dict[str, str]:
    """``{"email", "name"}`` from one address such as ``Ann <ann@example.com>``."""
    parsed = getaddresses([value]) if not _unsafe(value) else []
    if len(parsed) != 1 or "@" not in parsed[0][1] or parsed[0][1].startswith("@"):
        text = f"{field} {value!r} is not one email address"
        if error is InvalidRecipientError:
            raise InvalidRecipientError(text, field=field, value=value)
        raise error(text)
    name, email = parsed[0]
    return _address(email, name or None)


def _attachment(attachment: Attachment) -> dict[str, str]:
    part = {
        "content": base64.b64encode(attachment.content).decode("ascii"),
        "filename": attachment.filename,
        "type": attachment.content_type,
        "disposition": "inline" if attachment.inline else "attachment",
    }
    if attachment.inline and attachment.content_id:
        part["content_id"] = attachment.content_id
    return part


def _categories(tags: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(tags))
    if len(unique) > _MAX_CATEGORIES:
        raise ContentError(f"sendgrid takes at most {_MAX_CATEGORIES} categories (tags)")
    for tag in unique:
        if not tag.isascii() or not 0 < len(tag) <= _MAX_CATEGORY_LENGTH:
            raise ContentError(f"sendgrid categories are 1 to 255 ASCII characters: {tag!r}")
    return unique


def _unix(when: datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _category_of(item: Mapping[str, Any]) -> ErrorCategory | None:
    text = item.get("message")
    if isinstance(text, str):
        lowered = text.lower()
        for fragment, category in ERROR_MESSAGES.items():
            if fragment in lowered:
                return category
    field = item.get("field")
    if not isinstance(field, str) or not field:
        return None
    path = _INDEX.sub("", field)
    while path:
        if path in ERROR_CODES:
            return ERROR_CODES[path]
        path = path.rpartition(".")[0]
    return None


def _reset_delay(value: str | None, now: float) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (a unix time)."""
    try:
        reset = float(value) if value else None
    except ValueError:
        return None
    if reset is None or not math.isfinite(reset):
        return None
    return max(0.0, reset - now)


def _signature_matches(key: EllipticCurvePublicKey, signed: bytes, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def _provider_id(item: Mapping[str, Any]) -> str | None:
    sg_message_id = item.get("sg_message_id")
    if isinstance(sg_message_id, str) and sg_message_id:
        return message_id_of(sg_message_id)
    smtp_id = item.get("smtp-id")  # "<X-Message-Id@host>" on events without sg_message_id
    if isinstance(smtp_id, str) and "@" in smtp_id:
        local = smtp_id.strip().strip("<>").rpartition("@")[0]
        return local or None
    return None


def _first_text(item: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _reason(raw_status: str, item: Mapping[str, Any], text: str | None) -> Reason | None:
    if raw_status == "dropped":
        return DROP_REASONS.get((text or "").strip().lower(), Reason.OTHER)
    if raw_status == "bounce":
        if item.get("type") == "blocked":
            return Reason.POLICY_BLOCKED
        status = item.get("status")
        for source in (status, text):
            found = _ENHANCED.search(source) if isinstance(source, str) else None
            if found is None:
                continue
            klass, subject, detail = found.groups()
            for key in (f"{klass}.{subject}.{detail}", f"{klass}.{subject}", klass):
                if key in BOUNCE_REASONS:
                    return BOUNCE_REASONS[key]
            return Reason.OTHER
        return Reason.OTHER
    return _OPT_OUT_REASONS.get(raw_status)


def _when(timestamp: object) -> datetime | None:
    if isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit():
        timestamp = int(timestamp)
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None
