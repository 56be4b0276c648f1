r"""``Vonage``: SMS through the Vonage SMS API (the legacy ``rest.nexmo.com`` API).

Example:
    ```python
    import anysend
    from anysend.providers.vonage import Vonage

    vonage = Vonage(api_key="abcd1234", api_secret="...", sender="AcmeInc")
    with anysend.Client([vonage]) as client:
        client.send(anysend.Message(text="Your code is 1234"), to={"phone": "+48600700800"})
    ```

Settings:
    * ``api_key``; ``api_secret`` (secret) and/or ``signature_secret`` (secret) with its
      ``signature_method``: ``md5hash`` (the dashboard's default "MD5 hash"), or the HMAC
      variants ``md5``, ``sha1``, ``sha256``, ``sha512``.
    * ``sign_requests``: send with ``timestamp`` + ``sig`` instead of ``api_secret`` (always
      so when no ``api_secret`` is set; Vonage refuses a request with both, status 32).
    * ``sender``: the default ``from`` (an alphanumeric sender id or a number).
    * ``callback_url``: the delivery-receipt URL sent with every message (``callback``).
    * ``webhook_token`` (secret): for unsigned callbacks, a token that must be a path segment
      of the webhook URL. ``replay_window``: seconds a signed callback stays valid (300).

The request (https://developer.vonage.com/en/api/sms): ``POST https://rest.nexmo.com/sms/json``,
form-encoded: ``api_key``, ``api_secret`` (or ``timestamp`` and ``sig``), ``from``, ``to``
(E.164 without ``+``), ``text``, ``type`` (``unicode`` when the text is not GSM-7, else
``text``), ``client-ref`` (anysend's message id, echoed in receipts; left out when it is longer
than Vonage's 40 characters) and ``callback``. Provider options are added verbatim
(``{"vonage": {"ttl": 900000}}``) and signed with the rest; they may not set the credentials.

Answers are HTTP 200 even on errors: each entry of ``messages`` has a ``status``; ``"0"`` is
success (:data:`ERROR_CODES` maps the others, from
https://developer.vonage.com/en/messaging/sms/guides/troubleshooting-sms). A long text is
split by Vonage and answered with one entry per part; the receipt takes the first part's
``message-id``. When some parts were accepted and others refused, part of the text is on its
way: the error is ``ambiguous_timeout``, so it is not sent again anywhere.

Callbacks (delivery receipts and inbound SMS) come as a GET query, a form POST or a JSON
POST, per the dashboard setting. Vonage signs them only when support enables signed webhooks:
a ``sig`` parameter over the sorted parameters and a ``timestamp``
(https://developer.vonage.com/en/getting-started/concepts/signing-messages), checked with
:func:`signature`; or, Messages-API style, ``Authorization: Bearer <JWT>`` (HS256 with the
signature secret, ``iat`` and a ``payload_hash`` claim, the SHA-256 of the body; a bodiless
GET with a JWT is refused, as nothing signs its query). Without a
signature secret, set ``webhook_token`` and put it in the webhook URL's path. Receipts map by
:data:`STATUS_MAP` and their ``err-code`` by :data:`REASONS`; err-codes 3 and 9 also give a
``contact_invalid`` or ``opted_out`` event (:data:`EVENT_MAP`). An inbound SMS that is only a
keyword of :data:`KEYWORDS` (``STOP``, ``START``, ...) also gives an opt-out or opt-in event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
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
    check_replay_window,
    compare_signatures,
    error_from_response,
    response_body,
)
from anysend.sms import is_gsm7

__all__ = [
    "ERROR_CODES",
    "EVENT_MAP",
    "KEYWORDS",
    "REASONS",
    "REPLAY_WINDOW",
    "STATUS_MAP",
    "Vonage",
    "VonageSettings",
    "decode_jwt",
    "signature",
]

#: How Vonage signs: ``md5hash`` (MD5 of the parameter string and the secret), or an HMAC.
SignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]

#: The in-body ``status`` of a refused message and its category (0 is success).
ERROR_CODES: dict[str, ErrorCategory] = {
    "1": ErrorCategory.RATE_LIMITED,  # Throttled
    "2": ErrorCategory.CONFIGURATION,  # Missing Parameters
    "3": ErrorCategory.CONFIGURATION,  # Invalid Parameters
    "4": ErrorCategory.AUTH,  # Invalid Credentials
    "5": ErrorCategory.UNAVAILABLE,  # Internal Error
    "6": ErrorCategory.INVALID_RECIPIENT,  # Invalid Message (an unrecognised number prefix)
    "7": ErrorCategory.INVALID_RECIPIENT,  # Number Barred
    "8": ErrorCategory.CONFIGURATION,  # Partner Account Barred (account suspended)
    "9": ErrorCategory.QUOTA,  # Partner Quota Violation (no credit)
    "10": ErrorCategory.RATE_LIMITED,  # Too Many Existing Binds
    "11": ErrorCategory.CONFIGURATION,  # Account Not Enabled For HTTP
    "12": ErrorCategory.PAYLOAD_TOO_LARGE,  # Message Too Long
    "14": ErrorCategory.AUTH,  # Invalid Signature
    "15": ErrorCategory.CONFIGURATION,  # Invalid Sender Address
    "22": ErrorCategory.CONFIGURATION,  # Invalid Network Code
    "23": ErrorCategory.CONFIGURATION,  # Invalid Callback Url
    "29": ErrorCategory.CONFIGURATION,  # Non-Whitelisted Destination (demo account)
    "32": ErrorCategory.CONFIGURATION,  # Signature And API Secret Disallowed
    "33": ErrorCategory.INVALID_RECIPIENT,  # Number De-activated
}

#: Delivery-receipt ``status`` values and what they mean in anysend's vocabulary.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "accepted": DeliveryStatus.SENT,  # the carrier took it, not yet delivered
    "buffered": DeliveryStatus.DEFERRED,  # held for later delivery
    "delivered": DeliveryStatus.DELIVERED,
    "expired": DeliveryStatus.EXPIRED,
    "failed": DeliveryStatus.UNDELIVERABLE,
    "rejected": DeliveryStatus.REJECTED,  # the downstream carrier refused it
    "unknown": DeliveryStatus.UNKNOWN,
}

#: Delivery-receipt ``err-code`` values and their reasons (0 is no error).
REASONS: dict[str, Reason] = {
    "1": Reason.OTHER,  # Unknown
    "2": Reason.RECIPIENT_UNREACHABLE,  # Absent Subscriber - Temporary
    "3": Reason.UNKNOWN_RECIPIENT,  # Absent Subscriber - Permanent (number no longer active)
    "4": Reason.BLOCKED_BY_RECIPIENT,  # Call Barred by User
    "5": Reason.OTHER,  # Portability Error
    "6": Reason.CONTENT_REJECTED,  # Anti-Spam Rejection
    "7": Reason.RECIPIENT_UNREACHABLE,  # Handset Busy
    "8": Reason.OTHER,  # Network Error
    "9": Reason.OPTED_OUT,  # Illegal Number: the recipient asked not to get this sender's SMS
    "10": Reason.CONTENT_REJECTED,  # Illegal Message (a wrong parameter, such as the encoding)
    "11": Reason.OTHER,  # Unroutable
    "12": Reason.UNKNOWN_RECIPIENT,  # Destination Unreachable
    "13": Reason.POLICY_BLOCKED,  # Subscriber Age Restriction
    "14": Reason.POLICY_BLOCKED,  # Number Blocked by Carrier
    "15": Reason.RECIPIENT_UNREACHABLE,  # Prepaid Insufficient Funds (the recipient's)
    "16": Reason.RATE_LIMITED,  # Gateway Quota Exceeded
    "50": Reason.POLICY_BLOCKED,  # Entity Filter
    "51": Reason.POLICY_BLOCKED,  # Header Filter (the sender id)
    "52": Reason.CONTENT_REJECTED,  # Content Filter
    "53": Reason.POLICY_BLOCKED,  # Consent Filter
    "54": Reason.POLICY_BLOCKED,  # Regulation Error
    "99": Reason.OTHER,  # General Error
}

#: Receipt ``err-code`` values that also say something about the number itself.
EVENT_MAP: dict[str, EventType] = {
    "3": EventType.CONTACT_INVALID,  # the number is no longer active
    "9": EventType.OPTED_OUT,  # the recipient opted out of this sender
}

#: Inbound texts that are only one of these words opt the sender out or back in.
KEYWORDS: dict[str, EventType] = {
    "STOP": EventType.OPTED_OUT,
    "STOPALL": EventType.OPTED_OUT,
    "UNSUBSCRIBE": EventType.OPTED_OUT,
    "CANCEL": EventType.OPTED_OUT,
    "END": EventType.OPTED_OUT,
    "QUIT": EventType.OPTED_OUT,
    "START": EventType.OPTED_IN,
    "UNSTOP": EventType.OPTED_IN,
}

#: Seconds a signed callback stays valid either side of now, by default.
REPLAY_WINDOW = 300.0

_HMACS: dict[str, Callable[..., Any]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
_AUTH_FIELDS = frozenset({"api_key", "api_secret", "sig", "timestamp"})
_CLIENT_REF_MAX = 40


def signature(
    params: Mapping[str, object], secret: str, method: SignatureMethod = "md5hash"
) -> str:
    """The hex ``sig`` Vonage computes over ``params`` (any ``sig`` among them is left out).

    Each ``&key=value`` pair, sorted by key, with ``&`` and ``=`` in values replaced by ``_``;
    ``md5hash`` appends the secret and takes the MD5, the others are HMACs keyed with it.
    """
    text = "".join(
        f"&{key}={_clean(value)}" for key, value in sorted(params.items()) if key != "sig"
    )
    if method == "md5hash":
        # Vonage's documented default ("MD5 hash"); the HMAC methods are stronger.
        return hashlib.md5((text + secret).encode()).hexdigest()  # noqa: S324
    return hmac.new(secret.encode(), text.encode(), _HMACS[method]).hexdigest()


def decode_jwt(token: str, secret: str) -> dict[str, Any]:
    """The claims of an HS256 JWT whose signature ``secret`` makes; raise if it is not.

    Raises:
        WebhookVerificationError: the token is malformed, not HS256, or signed otherwise.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise WebhookVerificationError("the vonage JWT does not have three parts")
    header = _jwt_json(parts[0])
    if header.get("alg") != "HS256":
        raise WebhookVerificationError("the vonage JWT is not signed with HS256")
    signed = f"{parts[0]}.{parts[1]}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    if not compare_signatures(base64.urlsafe_b64encode(expected).rstrip(b"="), parts[2]):
        raise WebhookVerificationError("the vonage JWT signature does not match")
    return _jwt_json(parts[1])


class VonageSettings(ProviderSettings):
    """Settings of :class:`Vonage`.

    Attributes:
        api_key: the account's API key.
        api_secret: the API secret (secret); needed unless requests are signed.
        signature_secret: the signature secret (secret) for signed requests and callbacks.
        signature_method: the dashboard's signing algorithm: ``md5hash`` (its default),
            ``md5``, ``sha1``, ``sha256`` or ``sha512`` (HMACs).
        sign_requests: sign sends with ``signature_secret`` instead of sending the API secret.
        sender: the default ``from``: an alphanumeric sender id or a number.
        callback_url: the delivery-receipt URL sent with each message.
        webhook_token: a token the callback URL's path must hold (secret), for unsigned
            callbacks.
        replay_window: seconds a signed callback's ``timestamp`` or ``iat`` may be from now.
    """

    api_key: str = Field(min_length=1)
    api_secret: SecretStr | None = None
    signature_secret: SecretStr | None = None
    signature_method: SignatureMethod = "md5hash"
    sign_requests: bool = False
    sender: str | None = None
    callback_url: str | None = None
    webhook_token: SecretStr | None = None
    replay_window: float = Field(default=REPLAY_WINDOW, gt=0)

    @field_validator("api_secret", "signature_secret", "webhook_token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("a secret may not be empty (leave it out instead)")
        return value

    @field_validator("callback_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("callback_url must be an absolute http(s) URL")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> VonageSettings:
        if self.api_secret is None and self.signature_secret is None:
            raise ValueError("give api_secret, signature_secret or both")
        if self.sign_requests and self.signature_secret is None:
            raise ValueError("sign_requests needs signature_secret")
        return self


class Vonage(Provider):
    """Sends SMS through the Vonage SMS API and reads its receipts and inbound SMS.

    Attributes:
        now: the clock for request timestamps and the replay window (override it per
            instance in tests: ``vonage.now = lambda: 1_700_000_000.0``).
        error_codes: the in-body statuses and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "vonage"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(webhooks=True, inbound=True)
    Settings: ClassVar[type[ProviderSettings]] = VonageSettings
    default_base_url: ClassVar[str | None] = "https://rest.nexmo.com"
    url_fields: ClassVar[dict[str, str]] = {"username": "api_key", "password": "api_secret"}
    error_codes: ClassVar[dict[str, ErrorCategory]] = ERROR_CODES
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})
    #: Vonage support, "What is the Throughput Limit for Outbound SMS?": every API key is
    #: limited to 30 API requests a second by default (status 1, Throttled, beyond).
    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=30, burst=1)
    settings: VonageSettings
    now: Callable[[], float] = time.time

    # -- sending ------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse, before any request, a message without text or sender, or bad options."""
        super().check_supported(message)
        self._fields(message)

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The form POST to ``/sms/json``, with the API secret or signed."""
        settings = self.settings
        fields = {"api_key": settings.api_key}
        if settings.sign_requests or settings.api_secret is None:
            fields.update(self._fields(message))
            fields["timestamp"] = str(int(self.now()))
            secret = _reveal(settings.signature_secret)
            fields["sig"] = signature(fields, secret, settings.signature_method)
        else:
            fields["api_secret"] = _reveal(settings.api_secret)
            fields.update(self._fields(message))
        return httpx.Request("POST", f"{self.default_base_url}/sms/json", data=fields)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt when every part has status 0; otherwise a ProviderError."""
        if not response.is_success:
            raise error_from_response(response, self.name)
        body = response_body(response)
        entries = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(entries, list) or not entries:
            raise error_from_response(
                response,
                self.name,
                message="vonage answered 200 with a body that has no messages",
                category=ErrorCategory.AMBIGUOUS_TIMEOUT,
                retryable=False,
            )
        statuses = [str(e.get("status")) if isinstance(e, dict) else "" for e in entries]
        refused = [i for i, status in enumerate(statuses) if status != "0"]
        if not refused:
            first = entries[0].get("message-id")
            return Receipt(provider_message_id=first if isinstance(first, str) else None, raw=body)
        entry, code = entries[refused[0]], statuses[refused[0]]
        text = entry.get("error-text") if isinstance(entry, dict) else None
        reason = f"status {code}" + (f": {text}" if isinstance(text, str) else "")
        if len(refused) < len(entries):
            raise error_from_response(
                response,
                self.name,
                message=(
                    f"vonage accepted {len(entries) - len(refused)} of {len(entries)} parts "
                    f"and refused the rest ({reason})"
                ),
                category=ErrorCategory.AMBIGUOUS_TIMEOUT,
                code=code,
                retryable=False,
            )
        raise error_from_response(
            response,
            self.name,
            message=f"vonage refused the message ({reason})",
            category=self.error_codes.get(code, ErrorCategory.UNKNOWN),
            code=code,
        )

    def _fields(self, message: OutboundMessage) -> dict[str, str]:
        """The message's form fields, without credentials (raises on what cannot be sent)."""
        if not message.text:
            raise self._refuse("vonage needs a text to send", ErrorCategory.CONTENT_REJECTED)
        sender = message.sender or self.settings.sender
        if not sender:
            raise self._refuse("vonage needs a sender: set sender", ErrorCategory.CONFIGURATION)
        fields = {
            "from": sender,
            "to": message.to.removeprefix("+"),
            "text": message.text,
            "type": "text" if is_gsm7(message.text) else "unicode",
        }
        if len(message.id) <= _CLIENT_REF_MAX:
            fields["client-ref"] = message.id
        if self.settings.callback_url:
            fields["callback"] = self.settings.callback_url
        for key, value in message.provider_options.items():
            if key in _AUTH_FIELDS:
                raise self._refuse(
                    f"vonage provider option {key!r} would replace a credential",
                    ErrorCategory.CONFIGURATION,
                )
            if isinstance(value, bool):
                fields[key] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                fields[key] = str(value)
            else:
                raise self._refuse(
                    f"vonage provider option {key!r} must be a string, number or bool",
                    ErrorCategory.CONFIGURATION,
                )
        return fields

    def _refuse(self, text: str, category: ErrorCategory) -> ProviderError:
        return ProviderError(text, category=category, provider=self.name)

    # -- callbacks ----------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the webhook token and/or the signature (``sig`` or a bearer JWT).

        Raises:
            WebhookVerificationError: nothing to verify with, or a missing, wrong or stale
                token or signature.
        """
        settings = self.settings
        if settings.signature_secret is None and settings.webhook_token is None:
            raise WebhookVerificationError(
                "vonage needs signature_secret or webhook_token to verify callbacks"
            )
        if settings.webhook_token is not None:
            token = settings.webhook_token.get_secret_value()
            found = False
            for segment in urlsplit(request.url).path.split("/"):
                found |= compare_signatures(token, segment)
            if not found:
                raise WebhookVerificationError("the vonage callback URL lacks the webhook token")
        if settings.signature_secret is None:
            return
        secret = settings.signature_secret.get_secret_value()
        authorization = request.header("Authorization") or ""
        if authorization[:7].lower() == "bearer ":
            if not request.body.strip() and urlsplit(request.url).query:
                # The JWT's payload_hash covers the body only: a bodiless callback's fields
                # come from the query, which nothing signs.
                raise WebhookVerificationError("a vonage JWT does not sign a callback's query")
            self._check_jwt(authorization[7:].strip(), secret, request.body)
        else:
            self._check_sig(request, secret)

    def _check_sig(self, request: WebhookRequest, secret: str) -> None:
        try:
            params = _params(request)
        except WebhookParseError as exc:
            raise WebhookVerificationError(f"vonage callback cannot be read: {exc}") from None
        given = params.get("sig")
        if not isinstance(given, str) or not given:
            raise WebhookVerificationError("the vonage callback has no sig parameter")
        stamp = _number(params.get("timestamp"))
        if stamp is None:
            raise WebhookVerificationError("the vonage callback has no valid timestamp")
        expected = signature(params, secret, self.settings.signature_method)
        if not compare_signatures(expected, given.lower()):
            raise WebhookVerificationError("the vonage callback signature does not match")
        self._check_time(stamp)

    def _check_jwt(self, token: str, secret: str, body: bytes) -> None:
        claims = decode_jwt(token, secret)
        issued = _number(claims.get("iat"))
        if issued is None:
            raise WebhookVerificationError("the vonage JWT has no iat claim")
        digest = claims.get("payload_hash")
        if not isinstance(digest, str):
            raise WebhookVerificationError("the vonage JWT has no payload_hash claim")
        if not compare_signatures(hashlib.sha256(body).hexdigest(), digest.lower()):
            raise WebhookVerificationError("the vonage callback body does not match its JWT")
        key = claims.get("api_key")
        if key is not None and key != self.settings.api_key:
            raise WebhookVerificationError("the vonage JWT was issued for another API key")
        self._check_time(issued)

    def _check_time(self, stamp: float) -> None:
        check_replay_window(self.name, stamp, self.now(), self.settings.replay_window)

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """A delivery receipt's events, or an inbound SMS (and its opt-out or opt-in)."""
        params = _params(request)
        if "status" in params:
            return self._receipt(params)
        if "msisdn" in params and ("text" in params or "type" in params):
            return self._inbound(params)
        raise WebhookParseError("vonage callback is neither a delivery receipt nor an inbound SMS")

    def _receipt(self, params: dict[str, Any]) -> list[DeliveryEvent | InboundMessage]:
        provider_id, raw_status = _text(params, "messageId"), _text(params, "status")
        if not provider_id or not raw_status:
            raise WebhookParseError("a vonage delivery receipt needs messageId and status")
        status = STATUS_MAP.get(raw_status, DeliveryStatus.UNKNOWN)
        code = _text(params, "err-code")
        reason: Reason | None = None
        if code and code != "0":
            reason = REASONS.get(code, Reason.OTHER)
        elif status is DeliveryStatus.EXPIRED:
            reason = Reason.TIMED_OUT
        elif status.is_terminal:
            reason = Reason.OTHER
        when = _text(params, "scts") or _text(params, "message-timestamp") or ""
        common: dict[str, Any] = {
            "provider": self.name,
            "provider_message_id": provider_id,
            "message_id": _text(params, "client-ref"),
            "recipient": _e164(_text(params, "msisdn")),
            "channel": Channel.SMS,
            "raw_status": raw_status,
            "description": f"err-code {code}" if code and code != "0" else None,
            "occurred_at": _when(params),
            "raw": params,
        }
        event_id = f"{provider_id}:{raw_status}:{code or ''}:{when}"
        events: list[DeliveryEvent | InboundMessage] = [
            DeliveryEvent(status=status, reason=reason, event_id=event_id, **common)
        ]
        signal = EVENT_MAP.get(code or "")
        if signal is not None and status.is_terminal:
            events.append(
                DeliveryEvent(
                    event=signal, reason=reason, event_id=f"{event_id}:{signal.value}", **common
                )
            )
        return events

    def _inbound(self, params: dict[str, Any]) -> list[DeliveryEvent | InboundMessage]:
        sender = _e164(_text(params, "msisdn"))
        if not sender:
            raise WebhookParseError("a vonage inbound SMS needs msisdn")
        provider_id, text = _text(params, "messageId"), _text(params, "text")
        occurred = _when(params)
        events: list[DeliveryEvent | InboundMessage] = [
            InboundMessage(
                provider=self.name,
                channel=Channel.SMS,
                sender=sender,
                recipient=_e164(_text(params, "to")),
                text=text,
                provider_message_id=provider_id,
                received_at=occurred,
                raw=params,
            )
        ]
        word = (text or "").strip().strip(".!").upper()
        signal = KEYWORDS.get(word)
        if signal is not None:
            events.append(
                DeliveryEvent(
                    provider=self.name,
                    provider_message_id=provider_id,
                    recipient=sender,
                    channel=Channel.SMS,
                    event=signal,
                    raw_status=word,
                    reason=Reason.OPTED_OUT if signal is EventType.OPTED_OUT else None,
                    occurred_at=occurred,
                    event_id=f"{provider_id or sender}:{word}",
                    raw=params,
                )
            )
        return events


def _reveal(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


def _clean(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("&", "_").replace("=", "_")


def _jwt_json(part: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise WebhookVerificationError("the vonage JWT is malformed") from None
    if not isinstance(data, dict):
        raise WebhookVerificationError("the vonage JWT is malformed")
    return data


def _params(request: WebhookRequest) -> dict[str, Any]:
    """The callback's parameters: the JSON or form body, or the query of a bodiless GET."""
    body = request.body.strip()
    if body:
        content_type = (request.header("Content-Type") or "").lower()
        if "json" in content_type or body[:1] in (b"{", b"["):
            data = request.json_body()
            if not isinstance(data, dict):
                raise WebhookParseError("vonage callback body is not a JSON object")
            return data
        return dict(request.form_body())
    query = urlsplit(request.url).query
    return {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}


def _text(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value)
    return None


def _e164(number: str | None) -> str | None:
    return f"+{number}" if number is not None and number.isdigit() else number


def _when(params: Mapping[str, Any]) -> datetime | None:
    """When it happened: ``message-timestamp`` (UTC), else the carrier's ``scts``."""
    for key, layout in (("message-timestamp", "%Y-%m-%d %H:%M:%S"), ("scts", "%y%m%d%H%M")):
        value = _text(params, key)
        if value:
            try:
                return datetime.strptime(value, layout).replace(tzinfo=timezone.utc)
            except ValueError:
                continue
    return None
