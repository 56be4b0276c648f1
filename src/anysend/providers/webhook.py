"""``Webhook``: the ``webhook`` channel, a signed JSON POST to a system of yours.

Each message is POSTed as JSON to the recipient's ``webhook_url`` (``Recipient.webhook_url``,
already checked to be an absolute http(s) URL), or, when the recipient has none, to the
provider's configured ``url``. Use it to hand messages to a CRM, a ticket queue or a
call-centre system.

Example:
    ```python
    import anysend
    from anysend.providers.webhook import Webhook

    crm = Webhook(
        url="https://crm.example.com/hooks/anysend",
        secret="whsec_...",
        headers={"X-Api-Key": "crm-key"},
    )
    with anysend.Client([crm]) as client:
        client.send(anysend.Message(text="Call Ann back"), to={"id": "user-42"}, via=["webhook"])
    ```

Settings:
    * ``url``: where to POST when the recipient has no ``webhook_url``. With a ``url`` the
      adapter is *addressless* (``capabilities.addressless``): the ``webhook`` channel is
      used even for recipients without an address.
    * ``secret``: the HMAC-SHA256 key requests are signed with (no signature without one).
    * ``headers``: extra headers sent with every request (an API key for the receiver, say).
      Their values are secrets: they never print. They may not replace the headers below.

The request (version 1 of the body; new fields may be added, none removed or renamed):

* ``POST`` with ``Content-Type: application/json``, ``User-Agent: anysend/<version>`` and
  ``Idempotency-Key: <key>`` (the send's idempotency key, or the message id when none was
  given; the same on every retry of the send).
* A compact JSON object with sorted keys::

      {"category": "order", "channel": "webhook", "html": null, "id": "7f9c...",
       "metadata": {"order": "1042"}, "recipient": {"email": "ann@example.com", "id": "u-42"},
       "sent_at": "2023-11-14T22:13:20Z", "subject": null, "tags": ["vip"],
       "text": "Call Ann back", "type": "anysend.message", "version": 1}

  ``recipient`` holds only those of ``id``, ``email``, ``phone`` and ``locale`` that are set.
  ``category``, ``subject``, ``text`` and ``html`` are ``null`` when absent. ``id`` is
  anysend's message id: the same across retries and fallbacks, so receivers can deduplicate
  on it (or on ``Idempotency-Key``).

Signatures (when ``secret`` is set), for the receiving system to check:

* ``X-Anysend-Timestamp: <unix seconds>``
* ``X-Anysend-Signature: v1=<hex HMAC-SHA256, keyed with the secret, of
  "<timestamp>." followed by the raw body bytes>``

A receiver recomputes the HMAC over the exact bytes it received, compares in constant time,
and refuses timestamps more than a few minutes away from its clock. In Python,
:func:`verify_signature` does all of it::

    from anysend.providers.webhook import verify_signature

    verify_signature(request_body, request_headers, "whsec_...")  # raises if not authentic

Answers: any 2xx is success; the receipt's ``provider_message_id`` is the ``id`` field of a
JSON object answer, else anysend's message id. Errors: see :data:`ERROR_STATUSES`.

Limits and quirks:
    * The receiver is not assumed to deduplicate, so ``capabilities.idempotency`` is off: an
      ambiguous timeout is not retried (the send ends ``unknown``).
    * ``subject`` and ``html`` are sent when the message given to the adapter has them.
    * Each try is signed afresh, with the time of that try.
    * The adapter receives no callbacks (``capabilities.webhooks`` is off); its
      ``verify_webhook`` checks a request signed by another anysend, with this scheme.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from anysend import (
    Channel,
    ConfigurationError,
    ErrorCategory,
    OutboundMessage,
    ProviderError,
    Receipt,
    WebhookRequest,
    WebhookVerificationError,
    __version__,
)
from anysend._transport import RawRequest, RawResponse
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    compare_signatures,
    error_from_response,
    response_body,
)

__all__ = [
    "BODY_VERSION",
    "ERROR_STATUSES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "TOLERANCE",
    "Webhook",
    "WebhookSettings",
    "sign",
    "verify_signature",
]

#: The version of the JSON body (the ``version`` field).
BODY_VERSION = 1

#: The header carrying ``v1=<hex HMAC-SHA256>``.
SIGNATURE_HEADER = "X-Anysend-Signature"

#: The header carrying the signing time in unix seconds.
TIMESTAMP_HEADER = "X-Anysend-Timestamp"

#: Seconds a signature stays valid either side of the receiver's clock, by default.
TOLERANCE = 300.0

#: HTTP statuses of the receiver and what they mean (others: the shared mapping of
#: :func:`anysend.providers.error_from_response`: 401/403 ``auth``, 408 ``timeout``, 413
#: ``payload_too_large``, 429 ``rate_limited`` honouring ``Retry-After``, 504
#: ``ambiguous_timeout``, other 5xx ``unavailable``, anything else ``unknown``).
#: 404 and 410 from the configured ``url`` (not a recipient's) mean ``configuration``: the
#: endpoint every message goes to is gone, so the next provider of the channel is tried.
ERROR_STATUSES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    404: ErrorCategory.INVALID_RECIPIENT,
    410: ErrorCategory.INVALID_RECIPIENT,
    422: ErrorCategory.CONTENT_REJECTED,
}

#: Headers the adapter sets itself; ``headers`` may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "idempotency-key",
        "transfer-encoding",
        SIGNATURE_HEADER.lower(),
        TIMESTAMP_HEADER.lower(),
    }
)


#: The body's encoder: compact, sorted keys (``json.dumps`` makes a new encoder every call).
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_USER_AGENT = f"anysend/{__version__}"
_STRING = json.encoder.encode_basestring  # a str as JSON, non-ASCII kept (ensure_ascii=False)
#: The headers the adapter sets itself (``Host`` and ``Content-Length`` by httpx).
_OWN_HEADERS = (
    "Host",
    "Content-Type",
    "User-Agent",
    "Idempotency-Key",
    TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
    "Content-Length",
)
_TAIL = f',"type":"anysend.message","version":{BODY_VERSION}}}'
#: Parsed target URLs kept per adapter (recipients' URLs may be many: then it starts over).
_URL_CACHE = 1024


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-Anysend-Signature`` value for ``body`` signed at ``timestamp``.

    Args:
        body: the exact request body bytes.
        secret: the shared signing secret.
        timestamp: the unix time sent in ``X-Anysend-Timestamp``.

    Returns:
        ``"v1=<hex HMAC-SHA256 of '<timestamp>.' + body>"``.
    """
    return _sign(secret.encode(), body, timestamp)


def _sign(key: bytes, body: bytes, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(key, signed, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that a request really comes from anysend's ``Webhook`` adapter; raise if not.

    For the system receiving the webhook. Give it the raw body bytes (before any JSON
    parsing) and the request headers (any mapping; names are matched case-insensitively).

    Example:
        ```python
        from anysend import WebhookVerificationError
        from anysend.providers.webhook import verify_signature

        try:
            verify_signature(body, headers, "whsec_...")
        except WebhookVerificationError:
            ...  # answer 401 and drop the request
        ```

    Args:
        body: the raw request body.
        headers: the request headers.
        secret: the secret the adapter was configured with.
        tolerance: seconds the signing time may lie from ``now``, either way.
        now: the current unix time (default: ``time.time()``).

    Raises:
        WebhookVerificationError: a header is missing, the signature does not match (another
            secret, or a changed body), or the timestamp is outside the tolerance.
        ValueError: ``secret`` is empty.
    """
    if not secret:
        raise ValueError("the webhook secret is empty")
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    given = lowered.get(SIGNATURE_HEADER.lower())
    if not stamp:
        raise WebhookVerificationError(f"the webhook request has no {TIMESTAMP_HEADER} header")
    if not given:
        raise WebhookVerificationError(f"the webhook request has no {SIGNATURE_HEADER} header")
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError(
            f"{TIMESTAMP_HEADER} is not a unix time in seconds"
        ) from None
    expected = sign(bytes(body), secret, timestamp)
    # Several comma-separated signatures may come (a future scheme beside v1).
    candidates = [part.strip() for part in given.split(",") if part.strip().startswith("v1=")]
    if not any(compare_signatures(expected, candidate) for candidate in candidates):
        raise WebhookVerificationError("the webhook signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"the webhook timestamp is more than {tolerance:g} seconds from now (a replay?)"
        )


class WebhookSettings(ProviderSettings):
    """Settings of :class:`Webhook`.

    Attributes:
        url: where to POST when the recipient has no ``webhook_url`` (makes the adapter
            addressless).
        secret: the HMAC-SHA256 signing key; requests are unsigned without one.
        headers: extra headers for every request; values are secret (they never print).
    """

    url: str | None = None
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an absolute http(s) URL")
        return value

    @field_validator("secret")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("secret is empty (leave it out for unsigned requests)")
        return value

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, header in value.items():
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the adapter and cannot be replaced")
            if _has_crlf(name) or _has_crlf(header.get_secret_value()):
                raise ValueError(f"header {name!r} contains CR or LF")
        return value


class Webhook(Provider):
    """POSTs each message as signed JSON to the recipient's or the configured URL.

    Attributes:
        now: the clock the signing timestamp and ``verify_webhook`` read (override it per
            instance in tests: ``hook.now = lambda: 1_700_000_000.0``).
        error_statuses: HTTP statuses and their categories (:data:`ERROR_STATUSES`).
    """

    name: ClassVar[str] = "webhook"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.WEBHOOK})
    capabilities: ClassVar[Capabilities] = Capabilities(html=True, metadata=True, tags=True)
    Settings: ClassVar[type[ProviderSettings]] = WebhookSettings
    error_statuses: ClassVar[dict[int, ErrorCategory]] = ERROR_STATUSES
    settings: WebhookSettings
    now: Callable[[], float] = time.time

    def __init__(self, settings: WebhookSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        # Per instance: only a configured url lets the channel go without a recipient URL.
        self.capabilities = self.capabilities.model_copy(  # type: ignore[misc]
            update={"addressless": self.settings.url is not None}
        )
        # Worked out once: the extra headers, the signing key, parsed URLs, the last time.
        extra = {name: value.get_secret_value() for name, value in self.settings.headers.items()}
        self._extra = extra
        secret = self.settings.secret
        self._key = secret.get_secret_value().encode() if secret is not None else None
        # The raw path (raw_request) only for headers it sends as httpx does: ASCII (httpx
        # refuses others) and no two names that differ only in case (httpx sends both).
        names = [name.lower() for name in extra] + [name.lower() for name in _OWN_HEADERS]
        self._raw = len(set(names)) == len(names) and all(
            name.isascii() and value.isascii() for name, value in extra.items()
        )
        self._urls: dict[str, tuple[httpx.URL, str, str]] = {}
        self._stamp: tuple[int, str] = (0, "1970-01-01T00:00:00Z")

    def secrets(self) -> list[str]:
        """The signing secret and the values of the extra headers."""
        extra = [v.get_secret_value() for v in self.settings.headers.values()]
        return super().secrets() + [s for s in extra if s]

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a message with nowhere to go (no recipient URL and no ``url``)."""
        super().check_supported(message)
        self._target(message)

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST, signed when a secret is set."""
        timestamp = int(self.now())
        body = self.body(message, timestamp)
        url = self._url(self._target(message))[0]
        return httpx.Request(
            "POST", url, content=body, headers=self._headers(message, body, timestamp, {})
        )

    def raw_request(self, message: OutboundMessage) -> RawRequest | None:
        """:meth:`build_request`'s request as plain values (the fast path; see ``RawRequest``).

        ``None`` (use :meth:`build_request`) when a header value is not ASCII, which httpx
        refuses (the error stays the one it always was), or when two header names differ only
        in case (httpx sends both).
        """
        key = message.idempotency_key
        if not self._raw or (key is not None and not key.isascii()):
            return None
        timestamp = int(self.now())
        body = self.body(message, timestamp)
        _, url, host = self._url(self._target(message))
        headers = self._headers(message, body, timestamp, {"Host": host})
        headers["Content-Length"] = str(len(body))
        return RawRequest("POST", url, headers, body)

    def _headers(
        self, message: OutboundMessage, body: bytes, timestamp: int, headers: dict[str, str]
    ) -> dict[str, str]:
        """``headers`` with the request's own added (as httpx orders them, after ``Host``)."""
        headers.update(self._extra)
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = _USER_AGENT
        if message.idempotency_key:
            headers["Idempotency-Key"] = message.idempotency_key
        if self._key is not None:
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = _sign(self._key, body, timestamp)
        return headers

    def _url(self, target: str) -> tuple[httpx.URL, str, str]:
        """The target parsed once: the URL, as it goes on the wire, and its ``Host`` header."""
        found = self._urls.get(target)
        if found is None:
            url = httpx.URL(target)
            found = (url, str(url), url.netloc.decode("ascii"))
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            self._urls[target] = found
        return found

    def body(self, message: OutboundMessage, timestamp: int) -> bytes:
        """The request body for ``message`` sent at ``timestamp``: compact, sorted JSON.

        Exactly ``json.dumps(payload, sort_keys=True, separators=(",", ":"),
        ensure_ascii=False)`` of :meth:`_payload` (the tests hold it to that), written field
        by field: a sixth of the time, and every message pays it.
        """
        recipient = message.recipient
        person = {
            key: value
            for key, value in (
                ("email", recipient.email),
                ("id", recipient.id),
                ("locale", recipient.locale),
                ("phone", recipient.phone),
            )
            if value is not None
        }
        metadata = _ENCODE(message.metadata) if message.metadata else "{}"
        tags = _ENCODE(list(message.tags)) if message.tags else "[]"
        text = (
            f'{{"category":{_json(message.category)},"channel":"webhook",'
            f'"html":{_json(message.html)},"id":{_json(message.id)},"metadata":{metadata},'
            f'"recipient":{_ENCODE(person) if person else "{}"},'
            f'"sent_at":"{self._sent_at(timestamp)}","subject":{_json(message.subject)},'
            f'"tags":{tags},"text":{_json(message.text)}{_TAIL}'
        )
        return text.encode("utf-8")

    def _sent_at(self, timestamp: int) -> str:
        """``timestamp`` as ISO 8601 UTC (the last one kept: one per second to work out)."""
        stamp = self._stamp
        if stamp[0] != timestamp:
            sent_at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
            stamp = self._stamp = (timestamp, sent_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return stamp[1]

    def _payload(self, message: OutboundMessage, timestamp: int) -> dict[str, Any]:
        """What :meth:`body` writes, as a dict (version 1 of the body)."""
        recipient = message.recipient
        person = {
            key: value
            for key, value in (
                ("id", recipient.id),
                ("email", recipient.email),
                ("phone", recipient.phone),
                ("locale", recipient.locale),
            )
            if value is not None
        }
        return {
            "type": "anysend.message",
            "version": BODY_VERSION,
            "id": message.id,
            "channel": Channel.WEBHOOK.value,
            "category": message.category,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "recipient": person,
            "metadata": dict(message.metadata),
            "tags": list(message.tags),
            "sent_at": self._sent_at(timestamp),
        }

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for any 2xx; otherwise a ProviderError (see :data:`ERROR_STATUSES`)."""
        body = response_body(response)
        if response.is_success:
            return self._receipt(body, message)
        status = response.status_code
        category = self.error_statuses.get(status)
        if status in (404, 410) and not message.to:
            category = ErrorCategory.CONFIGURATION  # the configured url is gone
        code = None
        if isinstance(body, dict):
            found = body.get("code", body.get("error"))
            code = found if isinstance(found, str) else None
        raise error_from_response(
            response,
            self.name,
            message=f"the webhook endpoint answered HTTP {status} {response.reason_phrase}",
            category=category,
            code=code,
        )

    def raw_receipt(self, response: RawResponse, message: OutboundMessage) -> Receipt | None:
        """:meth:`parse_response`'s receipt for a 2xx :class:`RawResponse` (the fast path).

        ``None`` (let :meth:`parse_response` read it) for any other status, and for a body
        that is neither empty nor JSON (its text needs the charset httpx works out).
        """
        if not response.is_success:
            return None
        content = response.content
        if not content:
            return self._receipt("", message)
        try:
            body = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return self._receipt(body, message)

    @staticmethod
    def _receipt(body: Any, message: OutboundMessage) -> Receipt:
        """The receipt for a 2xx answer's body (JSON, or text)."""
        raw = body if isinstance(body, (dict, list, str)) and body != "" else None
        given = body.get("id") if isinstance(body, dict) else None
        if isinstance(given, int) and not isinstance(given, bool):
            given = str(given)
        message_id = given if isinstance(given, str) and given else message.id
        return Receipt(provider_message_id=message_id, raw=raw)

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check a request signed with this adapter's scheme and secret (see the module).

        Raises:
            WebhookVerificationError: no secret is configured, or the signature is missing,
                wrong or stale.
        """
        if self.settings.secret is None:
            raise WebhookVerificationError("the webhook provider has no secret to verify with")
        verify_signature(
            request.body,
            request.headers,
            self.settings.secret.get_secret_value(),
            now=self.now(),
        )

    def _target(self, message: OutboundMessage) -> str:
        """The recipient's URL, else the configured one."""
        target = message.to or self.settings.url
        if not target:
            raise ProviderError(
                "the recipient has no webhook_url and the webhook provider has no url",
                category=ErrorCategory.CONFIGURATION,
                provider=self.name,
            )
        return target


def _json(value: str | None) -> str:
    """A string field of the body, or ``null``."""
    return "null" if value is None else _STRING(value)


def _has_crlf(value: str) -> bool:
    return "\r" in value or "\n" in value


# -- shared by the incoming-webhook chat adapters (slack, teams, discord) -------------------------
#
# Their webhook URL is the credential: it must never show in an error, a result or a log.


def _require_url(provider: str, url: SecretStr) -> None:
    """Refuse a webhook URL that is not absolute http(s), without quoting it."""
    parts = urlsplit(url.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{provider} webhook_url must be an absolute http(s) URL")


def _secret_parts(url: str) -> list[str]:
    """The URL and its token-like pieces (long path segments and query values)."""
    split = urlsplit(url)
    pieces = {url, url.split("?", 1)[0]}
    pieces.update(segment for segment in split.path.split("/"))
    pieces.update(value for _, value in parse_qsl(split.query))
    pieces.update(item.partition("=")[2] for item in split.query.split("&"))
    # Long pieces only: "services" or "api" are not secret, a 24-character token is.
    return sorted((p for p in pieces if len(p) >= 16), key=len, reverse=True)


def _redact(error: ProviderError, url: str) -> ProviderError:
    """``error`` with the webhook URL and its tokens replaced by ``***`` (an echoing proxy)."""
    parts = _secret_parts(url)

    def clean(text: str) -> str:
        for part in parts:
            text = text.replace(part, "***")
        return text

    error.message = clean(error.message)
    error.args = (error.message,)
    if error.code is not None:
        error.code = clean(error.code)
    if isinstance(error.raw, str):
        error.raw = clean(error.raw)
    elif error.raw is not None:
        dumped = json.dumps(error.raw, ensure_ascii=False, default=str)
        if clean(dumped) != dumped:
            error.raw = clean(dumped)
    return error
