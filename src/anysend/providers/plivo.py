"""``Plivo``: SMS through Plivo's Message API, with signed status and inbound callbacks.

Sends each message with ``POST https://api.plivo.com/v1/Account/{auth_id}/Message/``
(HTTP Basic ``auth_id:auth_token``, a JSON body ``{"src", "dst", "text", "type": "sms"}``,
plus ``url`` and ``method`` for the status callback) and reads Plivo's form-encoded status
callbacks and inbound messages.
[Send a message](https://www.plivo.com/docs/messaging/api/message/send-a-message),
[status callbacks](https://www.plivo.com/docs/messaging/api/message/message-status-callbacks),
[incoming messages](https://www.plivo.com/docs/messaging/xml/request).

Example:
    ```python
    import anysend
    from anysend.providers.plivo import Plivo

    plivo = Plivo(
        auth_id="MAXXXXXXXXXXXXXXXXXX",
        auth_token="...",
        sender="+15555550100",
        status_callback_url="https://app.example.com/hooks/plivo",
    )
    with anysend.Client([plivo]) as client:
        client.send(anysend.Message(text="Your code is 1234"), to={"phone": "+15555550123"})
    ```

Settings:
    * ``auth_id``, ``auth_token`` (secret): the account's (or subaccount's) credentials. The
      URL form is ``plivo://AUTH_ID:AUTH_TOKEN@default?from=+15555550100``.
    * ``sender``: the default ``src`` (a Plivo number, short code or alphanumeric id);
      ``Message.sender`` wins. Or ``powerpack_uuid``: send through a Powerpack instead (Plivo
      refuses both; a message with its own sender uses ``src``).
    * ``status_callback_url``: where Plivo posts status changes (the ``url`` parameter). The
      adapter adds ``anysend_message_id=<id>`` to its query, so that callbacks name anysend's
      message (:attr:`DeliveryEvent.message_id`).
    * ``accept_v2_signatures``: also accept the older V2 signature when a callback carries no
      V3 one (default ``True``; see below).

Limits and quirks:
    * Plivo takes no idempotency key and has no reference field: an ambiguous timeout is not
      retried, and callbacks are matched by ``MessageUUID`` (or by the id in the URL).
    * ``dst`` is sent as digits without ``+`` (Plivo strips it anyway); numbers in callbacks
      come without ``+`` and are given back in E.164.
    * Plivo caps a text at 1600 GSM-7 characters or 737 UCS-2 characters; a longer text is
      refused before any request (``payload_too_large``). ``provider_options`` are merged into
      the JSON body verbatim (``log``, ``message_expiry``, ``dlt_template_id``, ...).
    * Callback times (``MessageTime``, ``DeliveryReportTime``, ...) carry no zone; they are
      read as UTC.
    * Callbacks come as a ``POST`` form or, when ``method`` (or the application) says so, as
      a ``GET`` query; both are read. Plivo expects XML in answer to an incoming message
      ([XML response](https://www.plivo.com/docs/messaging/xml/response)):
      :meth:`Plivo.webhook_response` gives an empty ``<Response></Response>``.

Signatures: Plivo signs callbacks with the auth token. V3 (``X-Plivo-Signature-V3`` or, with
the main account's token, ``X-Plivo-Signature-Ma-V3``, and ``X-Plivo-Signature-V3-Nonce``) is
the base64 HMAC-SHA256 of ``<url with sorted query>?<sorted body key+value pairs>.<nonce>``
(:func:`signature_v3`); the header may hold several comma-separated signatures (one per active
token). V2 (``X-Plivo-Signature-V2``/``-Ma-V2`` and ``-V2-Nonce``) signs only the URL without
its query plus the nonce (:func:`signature_v2`), so it does not protect the body: set
``accept_v2_signatures=False`` once your callbacks carry V3. Neither scheme signs a timestamp,
so there is no replay window: deduplicate on ``event_id`` (``MessageUUID``, status and
``Sequence``). [Signature validation](https://www.plivo.com/docs/voice/xml/request/validation).

Errors: Plivo answers ``{"api_id": ..., "error": "<text>"}`` with an HTTP status. The text is
matched against :data:`ERROR_MESSAGES` (after a check for the recipient's number in it), then
the status against :data:`ERROR_STATUSES`, then the shared mapping (401 ``auth``, 429
``rate_limited`` with ``Retry-After``, 5xx ``unavailable``).

Statuses: :data:`STATUS_MAP`; the callback's ``ErrorCode`` gives the reason (:data:`REASONS`,
described in :data:`ERROR_DESCRIPTIONS`), and code 420 makes the status ``expired``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import ConfigDict, SecretStr, field_validator, model_validator

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    InboundMessage,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._ratelimit import RateLimit
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    WebhookResponse,
    compare_signatures,
    error_from_response,
    response_body,
)
from anysend.sms import segments

__all__ = [
    "ERROR_DESCRIPTIONS",
    "ERROR_MESSAGES",
    "ERROR_STATUSES",
    "MESSAGE_ID_PARAM",
    "REASONS",
    "STATUS_MAP",
    "STATUS_OVERRIDES",
    "XML_EMPTY",
    "Plivo",
    "PlivoSettings",
    "signature_v2",
    "signature_v3",
]

#: The answer to every callback: an empty Plivo XML document (no reply to an incoming SMS).
XML_EMPTY = b"<Response></Response>"

#: The query parameter the adapter adds to ``status_callback_url`` (anysend's message id).
MESSAGE_ID_PARAM = "anysend_message_id"

#: Plivo's message states (the callback's ``Status``) in anysend's vocabulary.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "queued": DeliveryStatus.ACCEPTED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,  # WhatsApp only
    "undelivered": DeliveryStatus.UNDELIVERABLE,
    "failed": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.REJECTED,
}

#: Error codes that decide the status whatever ``Status`` says.
STATUS_OVERRIDES: dict[str, DeliveryStatus] = {"420": DeliveryStatus.EXPIRED}

#: Plivo's SMS error codes (the callback's ``ErrorCode``) and their reasons.
REASONS: dict[str, Reason] = {
    "10": Reason.CONTENT_REJECTED,
    "20": Reason.OTHER,
    "30": Reason.CONTENT_REJECTED,
    "40": Reason.OTHER,
    "50": Reason.INVALID_RECIPIENT,
    "60": Reason.POLICY_BLOCKED,
    "70": Reason.UNKNOWN_RECIPIENT,
    "80": Reason.RECIPIENT_UNREACHABLE,
    "90": Reason.OTHER,
    "100": Reason.POLICY_BLOCKED,
    "110": Reason.CONTENT_REJECTED,
    "200": Reason.OPTED_OUT,
    "201": Reason.POLICY_BLOCKED,
    "300": Reason.OTHER,
    "420": Reason.TIMED_OUT,
    "900": Reason.INSUFFICIENT_FUNDS,
    "910": Reason.POLICY_BLOCKED,
    "1000": Reason.OTHER,
}

#: What each error code means, per Plivo (the event's ``description``).
ERROR_DESCRIPTIONS: dict[str, str] = {
    "10": "Invalid message",
    "20": "Network error",
    "30": "Spam detected",
    "40": "Invalid source number",
    "50": "Invalid destination number",
    "60": "Loop detected",
    "70": "Destination permanently unavailable",
    "80": "Destination temporarily unavailable",
    "90": "No route available",
    "100": "Prohibited by carrier",
    "110": "Message too long",
    "200": "Source number blocked by STOP from destination number",
    "201": "US toll-free number to Canadian destination blocked",
    "300": "Failed to dispatch message",
    "420": "Message expired",
    "900": "Insufficient credit",
    "910": "Account disabled",
    "1000": "Unknown error",
}

#: Words in the ``error`` text of a refused request and their categories (first match wins;
#: a text that quotes the recipient's number is ``invalid_recipient`` before any of these).
ERROR_MESSAGES: dict[str, ErrorCategory] = {
    "insufficient credit": ErrorCategory.QUOTA,
    "insufficient balance": ErrorCategory.QUOTA,
    "powerpack": ErrorCategory.CONFIGURATION,
    "src": ErrorCategory.CONFIGURATION,
    "source": ErrorCategory.CONFIGURATION,
    "sender": ErrorCategory.CONFIGURATION,
    "dst": ErrorCategory.INVALID_RECIPIENT,
    "destination": ErrorCategory.INVALID_RECIPIENT,
    "phone number": ErrorCategory.INVALID_RECIPIENT,
    "too long": ErrorCategory.PAYLOAD_TOO_LARGE,
}

#: HTTP statuses whose meaning for Plivo differs from the shared mapping (used when the
#: ``error`` text matches nothing in :data:`ERROR_MESSAGES`).
ERROR_STATUSES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    404: ErrorCategory.CONFIGURATION,  # the auth_id names no account
}

_MAX_GSM7 = 1600
_MAX_UCS2 = 737
_TIME_FIELDS = ("DeliveryReportTime", "SentTime", "QueuedTime", "MessageTime")
_DIGITS = re.compile(r"\d{6,15}")


def signature_v3(
    url: str,
    nonce: str,
    auth_token: str,
    *,
    method: str = "POST",
    params: Mapping[str, str | Sequence[str]] | None = None,
) -> str:
    """The base64 HMAC-SHA256 Plivo sends in ``X-Plivo-Signature-V3``.

    Args:
        url: the full callback URL, with its query.
        nonce: the ``X-Plivo-Signature-V3-Nonce`` value.
        auth_token: the auth token that signs.
        method: ``"POST"`` (form parameters in ``params``) or ``"GET"`` (parameters in the
            URL's query).
        params: the POST body's parameters.

    Returns:
        The signature, as Plivo computes it.
    """
    signed = f"{_v3_base(url, method, params or {})}.{nonce}".encode()
    return _b64_hmac(auth_token, signed)


def signature_v2(url: str, nonce: str, auth_token: str) -> str:
    """The base64 HMAC-SHA256 Plivo sends in ``X-Plivo-Signature-V2`` (URL without query)."""
    parts = urlsplit(url)
    return _b64_hmac(auth_token, f"{parts.scheme}://{parts.netloc}{parts.path}{nonce}".encode())


def _b64_hmac(key: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), data, hashlib.sha256).digest()).decode()


def _v3_base(url: str, method: str, params: Mapping[str, str | Sequence[str]]) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = parse_qs(parts.query, keep_blank_values=True)
    body = {k: [v] if isinstance(v, str) else list(v) for k, v in params.items()}
    if method.upper() == "GET":
        query = {**body, **query}
        body = {}
    sorted_query = "&".join(f"{k}={v}" for k in sorted(query) for v in sorted(query[k]))
    if not body:
        return f"{base}?{sorted_query}" if sorted_query else base
    pairs = "".join(f"{k}{v}" for k in sorted(body) for v in sorted(body[k]))
    return f"{base}?{sorted_query}{'.' if sorted_query else ''}{pairs}"


class PlivoSettings(ProviderSettings):
    """Settings of :class:`Plivo`.

    Attributes:
        auth_id: the account or subaccount Auth ID.
        auth_token: the Auth Token (secret); it also signs callbacks.
        sender: the default ``src``.
        powerpack_uuid: a Powerpack to send through instead of ``src``.
        status_callback_url: where Plivo posts status changes.
        accept_v2_signatures: accept a V2 signature when a callback has no V3 one.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    auth_id: str
    auth_token: SecretStr
    sender: str | None = None
    powerpack_uuid: str | None = None
    status_callback_url: str | None = None
    accept_v2_signatures: bool = True

    @field_validator("auth_id")
    @classmethod
    def _plain_auth_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]+", value):
            raise ValueError("auth_id must be letters and digits (MA... or SA...)")
        return value

    @field_validator("status_callback_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("status_callback_url must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> PlivoSettings:
        if self.sender and self.powerpack_uuid:
            raise ValueError("give sender or powerpack_uuid, not both (Plivo refuses both)")
        return self


class Plivo(Provider):
    """Sends SMS through Plivo and reads its signed status and inbound callbacks.

    Attributes:
        error_messages: error-text fragments and their categories (:data:`ERROR_MESSAGES`).
        error_statuses: HTTP statuses and their categories (:data:`ERROR_STATUSES`).
    """

    name: ClassVar[str] = "plivo"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(webhooks=True, inbound=True)
    Settings: ClassVar[type[ProviderSettings]] = PlivoSettings
    default_base_url: ClassVar[str | None] = "https://api.plivo.com"
    url_fields: ClassVar[dict[str, str]] = {"username": "auth_id", "password": "auth_token"}
    error_messages: ClassVar[dict[str, ErrorCategory]] = ERROR_MESSAGES
    error_statuses: ClassVar[dict[int, ErrorCategory]] = ERROR_STATUSES
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})
    #: Plivo support: messages may be sent at any rate (Plivo queues them per sender), within
    #: the account's default API concurrency limit of 100 simultaneous requests.
    rate_limit: ClassVar[RateLimit | None] = RateLimit(concurrency=100)
    settings: PlivoSettings

    # -- sending --------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a message without text or sender, or longer than Plivo allows."""
        super().check_supported(message)
        if not message.text:
            raise ProviderError(
                "plivo needs a text", category=ErrorCategory.CONTENT_REJECTED, provider=self.name
            )
        split = segments(message.text)
        limit = _MAX_GSM7 if split.encoding == "GSM-7" else _MAX_UCS2
        if split.length > limit:
            raise ProviderError(
                f"the text is {split.length} {split.encoding} units; plivo takes at most {limit}",
                category=ErrorCategory.PAYLOAD_TOO_LARGE,
                provider=self.name,
            )
        if not (message.sender or self.settings.sender or self.settings.powerpack_uuid):
            raise ProviderError(
                "plivo needs a sender: set sender or powerpack_uuid, or Message.sender",
                category=ErrorCategory.CONFIGURATION,
                provider=self.name,
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to the Message resource, with Basic auth."""
        settings = self.settings
        body: dict[str, Any] = {}
        sender = message.sender or settings.sender
        if sender:
            body["src"] = sender
        elif settings.powerpack_uuid:
            body["powerpack_uuid"] = settings.powerpack_uuid
        body.update({"dst": message.to.lstrip("+"), "text": message.text or "", "type": "sms"})
        if settings.status_callback_url:
            body["url"] = _with_param(settings.status_callback_url, MESSAGE_ID_PARAM, message.id)
            body["method"] = "POST"
        body.update(message.provider_options)
        credentials = f"{settings.auth_id}:{settings.auth_token.get_secret_value()}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Accept": "application/json",
        }
        url = f"{self.default_base_url}/v1/Account/{quote(settings.auth_id)}/Message/"
        return httpx.Request("POST", url, json=body, headers=headers)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for a 2xx (the first ``message_uuid``); otherwise a ProviderError."""
        body = response_body(response)
        raw = body if isinstance(body, (dict, list, str)) and body != "" else None
        if response.is_success:
            uuids = body.get("message_uuid") if isinstance(body, dict) else None
            first = uuids[0] if isinstance(uuids, list) and uuids else uuids
            return Receipt(provider_message_id=first if isinstance(first, str) else None, raw=raw)
        error = body.get("error") if isinstance(body, dict) else None
        text = error if isinstance(error, str) else (str(error) if error else "")
        raise error_from_response(
            response,
            self.name,
            message=f"plivo refused the message: {text}" if text else None,
            category=self._category(response.status_code, text, message),
        )

    def _category(self, status: int, text: str, message: OutboundMessage) -> ErrorCategory | None:
        if status in (401, 429) or status >= 500:
            return None  # the shared mapping
        lowered = text.lower()
        number = message.to.lstrip("+")
        if number and any(number.endswith(d) for d in _DIGITS.findall(lowered)):
            return ErrorCategory.INVALID_RECIPIENT
        for fragment, category in self.error_messages.items():
            if fragment in lowered:
                return category
        return self.error_statuses.get(status)

    # -- callbacks ------------------------------------------------------------------------------

    def webhook_response(
        self, request: WebhookRequest, events: list[DeliveryEvent | InboundMessage]
    ) -> WebhookResponse:
        """An empty Plivo XML document (``<Response></Response>``) as ``application/xml``.

        Plivo expects XML from a ``message_url`` (an incoming message) and would send a
        ``<Message>`` in it as a reply; an empty document acknowledges without replying.
        Status callbacks ignore the body, so every callback gets the same answer.
        """
        return WebhookResponse(body=XML_EMPTY, content_type="application/xml")

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the V3 signature (or, when allowed and V3 is absent, the V2 one).

        Raises:
            WebhookVerificationError: no signature, a wrong one, or only V2 when V2 is off.
        """
        token = self.settings.auth_token.get_secret_value()
        nonce = request.header("X-Plivo-Signature-V3-Nonce")
        given = _candidates(request, "X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3")
        if nonce and given:
            params = {} if request.method.upper() == "GET" else _form_lists(request)
            expected = signature_v3(request.url, nonce, token, method=request.method, params=params)
            if not _any_match(expected, given):
                raise WebhookVerificationError("plivo callback V3 signature does not match")
            return
        nonce = request.header("X-Plivo-Signature-V2-Nonce")
        given = _candidates(request, "X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2")
        if not (nonce and given):
            raise WebhookVerificationError("plivo callback has no X-Plivo-Signature-V3 header")
        if not self.settings.accept_v2_signatures:
            raise WebhookVerificationError("plivo callback has only a V2 signature (refused)")
        if not _any_match(signature_v2(request.url, nonce, token), given):
            raise WebhookVerificationError("plivo callback V2 signature does not match")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One DeliveryEvent per status callback, or one InboundMessage per incoming SMS."""
        query = _query(request.url)
        params = query if request.method.upper() == "GET" else request.form_body()
        if params.get("Status"):
            return [self._status_event(params, query.get(MESSAGE_ID_PARAM) or None)]
        if params.get("From") and "Text" in params:
            return [self._inbound(params)]
        raise WebhookParseError("plivo callback has neither Status nor From and Text")

    def _status_event(self, params: dict[str, str], message_id: str | None) -> DeliveryEvent:
        uuid = params.get("MessageUUID")
        if not uuid:
            raise WebhookParseError("plivo status callback has no MessageUUID")
        raw_status = params["Status"]
        code = params.get("ErrorCode") or None
        status = STATUS_MAP.get(raw_status.lower(), DeliveryStatus.UNKNOWN)
        if code in STATUS_OVERRIDES:
            status = STATUS_OVERRIDES[code]
        sequence = params.get("Sequence")
        return DeliveryEvent(
            provider=self.name,
            provider_message_id=uuid,
            message_id=message_id,
            recipient=_e164(params.get("To")),
            channel=_channel(params),
            status=status,
            raw_status=raw_status,
            reason=REASONS.get(code, Reason.OTHER) if code else None,
            description=ERROR_DESCRIPTIONS.get(code, f"error {code}") if code else None,
            occurred_at=_first_time(params),
            event_id=f"{uuid}:{raw_status}" + (f":{sequence}" if sequence else ""),
            raw=params,
        )

    def _inbound(self, params: dict[str, str]) -> InboundMessage:
        return InboundMessage(
            provider=self.name,
            channel=_channel(params),
            sender=_e164(params["From"]) or params["From"],
            recipient=_e164(params.get("To")),
            text=params.get("Text"),
            provider_message_id=params.get("MessageUUID") or None,
            raw=params,
        )


def _with_param(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` added to its query."""
    parts = urlsplit(url)
    extra = urlencode({name: value})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _form_lists(request: WebhookRequest) -> dict[str, list[str]]:
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError("plivo callback body is not UTF-8") from None
    return parse_qs(text, keep_blank_values=True)


def _candidates(request: WebhookRequest, *headers: str) -> list[str]:
    found: list[str] = []
    for header in headers:
        value = request.header(header)
        if value:
            found.extend(part.strip() for part in value.split(",") if part.strip())
    return found


def _any_match(expected: str, given: list[str]) -> bool:
    matched = False
    for candidate in given:  # compare every candidate, so the time does not tell which
        matched |= compare_signatures(expected, candidate)
    return matched


def _e164(number: str | None) -> str | None:
    """A callback's number (digits without ``+``) in E.164; other values as they are."""
    if not number:
        return None
    return f"+{number}" if number.isdigit() else number


def _channel(params: Mapping[str, str]) -> Channel:
    return Channel.WHATSAPP if params.get("Type") == "whatsapp" else Channel.SMS


def _first_time(params: Mapping[str, str]) -> datetime | None:
    """The latest time a status callback carries (delivery report, sent, queued, created)."""
    for field in _TIME_FIELDS:
        value = params.get(field)
        if not value:
            continue
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
            except ValueError:
                continue
    return None
