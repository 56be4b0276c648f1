"""``FCM``: push to Android, Apple and web apps through Firebase Cloud Messaging (HTTP v1).

Example:
    ```python
    import anysend
    from anysend.providers.fcm import FCM

    fcm = FCM(service_account_file="/etc/anysend/firebase-service-account.json")
    with anysend.Client([fcm]) as client:
        client.send(
            anysend.Message(push=anysend.PushContent(title="Order shipped", body="On its way")),
            to=anysend.Recipient(push=[anysend.PushTarget(kind="fcm", token="<device token>")]),
        )
    ```

Settings (needs ``cryptography``: ``pip install "anysend[push]"``):
    * ``service_account`` (secret): the service account's JSON key file, as text; or
    * ``service_account_file``: the path of that file, read once when the adapter is built.
      The key gives ``client_email``, ``private_key`` (an RSA key in PEM), ``private_key_id``,
      ``token_uri`` and ``project_id``.
    * ``project_id``: the Firebase project to send through, instead of the key's own.

Authentication (https://developers.google.com/identity/protocols/oauth2/service-account): a
JWT signed RS256 with the key (header ``kid`` = ``private_key_id``; claims ``iss`` =
``client_email``, ``scope`` = :data:`SCOPE`, ``aud`` = ``token_uri``, ``iat``, ``exp`` =
``iat`` + 3600) is exchanged at ``token_uri`` (``POST``, form-encoded
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``) for an access
token. The adapter instance keeps one token and shares it between all its sends, sync and
async alike; a send asks for a new one only when none is cached or the cached one expires
within :data:`REFRESH_MARGIN` seconds. Sends that start together on an empty cache each fetch
a token (a send never waits for another one); the cache then keeps the longest-lived one.

The request (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages/send):
``POST https://fcm.googleapis.com/v1/projects/{project_id}/messages:send`` with
``Authorization: Bearer <token>`` and JSON ``{"message": {"token": <to>, "notification":
{"title", "body"}, "data": {...}, "fcm_options": {"analytics_label": <first tag>}}}``. Data
values become strings (FCM takes only strings): a ``str`` as it is, numbers, booleans,
``None``, lists and dicts as compact JSON (``12`` -> ``"12"``, ``True`` -> ``"true"``),
anything else through ``str()``. Provider options: ``android``, ``apns``, ``webpush`` and any
other field of the Message resource are added to ``message``; ``notification``, ``data`` and
``fcm_options`` are merged key by key; ``validate_only: True`` asks FCM to check the message
without sending it. FCM answers ``{"name": "projects/<id>/messages/<id>"}``; the whole
``name`` is the receipt's ``provider_message_id``.

Limits and quirks:
    * At most :data:`MAX_PAYLOAD_BYTES` bytes per message: the adapter counts the ``message``
      object without its token, as compact JSON (platform overrides included), and refuses a
      larger one before any request (``payload_too_large``).
    * Data keys ``from`` and ``message_type`` and keys starting with ``google`` or ``gcm`` are
      reserved by FCM and refused before any request (``content_rejected``).
    * An analytics label must match ``[a-zA-Z0-9-_.~%]{1,50}``
      (https://firebase.google.com/docs/cloud-messaging/understand-delivery).
    * No idempotency key: an ambiguous timeout is not retried.
    * No delivery callbacks: FCM reports delivery only through its BigQuery export and the
      console, never to the sender.

Errors: FCM answers ``google.rpc.Status`` JSON whose ``details`` carry a
``google.firebase.fcm.v1.FcmError`` ``errorCode``
(https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode): :data:`ERROR_CODES`, else
the canonical ``status`` (:data:`STATUS_CODES`), else the shared HTTP mapping. ``UNREGISTERED``
and an ``INVALID_ARGUMENT`` about the token set ``contact_invalid``. A 401 without an FcmError
(the access token was refused) drops the cached token; when the token came from the cache, the
send fetches a new one and tries once more before it reports ``auth``. Token endpoint errors
(OAuth JSON ``{"error": "invalid_grant", ...}``) map through :data:`TOKEN_ERRORS`; any other
4xx there is ``auth``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr, model_validator

from anysend import (
    Channel,
    ConfigurationError,
    ContentError,
    ErrorCategory,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
)
from anysend._ratelimit import RateLimit
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    SendFlow,
    category_for_status,
    parse_retry_after,
    response_body,
)

__all__ = [
    "ERROR_CODES",
    "FCM",
    "MAX_PAYLOAD_BYTES",
    "REFRESH_MARGIN",
    "SCOPE",
    "STATUS_CODES",
    "TOKEN_ERRORS",
    "AccessToken",
    "FCMSettings",
    "sign_rs256",
    "stringify",
]

#: The OAuth scope the access token is asked for.
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
#: Where tokens come from when the key file names no ``token_uri``.
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
#: The OAuth grant type of a signed JWT assertion (RFC 7523).
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Seconds a JWT assertion is valid for (Google's maximum).
ASSERTION_LIFETIME = 3600
#: A cached access token is replaced this many seconds before it expires.
REFRESH_MARGIN = 300.0
#: The largest message FCM takes, in bytes ("4096 bytes for most messages").
MAX_PAYLOAD_BYTES = 4096

#: FCM's ``FcmError`` codes and their categories. ``INVALID_ARGUMENT`` about the token is
#: ``invalid_recipient`` instead (see the module docstring).
ERROR_CODES: dict[str, ErrorCategory] = {
    "UNSPECIFIED_ERROR": ErrorCategory.UNKNOWN,
    "INVALID_ARGUMENT": ErrorCategory.CONTENT_REJECTED,  # payload, data key, TTL, token
    "UNREGISTERED": ErrorCategory.INVALID_RECIPIENT,  # the token is gone: delete it
    "SENDER_ID_MISMATCH": ErrorCategory.CONFIGURATION,  # the token belongs to another project
    "QUOTA_EXCEEDED": ErrorCategory.RATE_LIMITED,
    "UNAVAILABLE": ErrorCategory.UNAVAILABLE,
    "INTERNAL": ErrorCategory.UNAVAILABLE,
    "THIRD_PARTY_AUTH_ERROR": ErrorCategory.CONFIGURATION,  # APNs or web push credentials
    "APNS_AUTH_ERROR": ErrorCategory.CONFIGURATION,  # the older name of the above
}

#: The canonical ``status`` of an error without an ``FcmError`` detail. ``NOT_FOUND`` alone
#: is a wrong project or URL: only FCM's own ``UNREGISTERED`` marks a token dead.
STATUS_CODES: dict[str, ErrorCategory] = {
    "INVALID_ARGUMENT": ErrorCategory.CONTENT_REJECTED,
    "UNAUTHENTICATED": ErrorCategory.AUTH,  # the access token was refused
    "PERMISSION_DENIED": ErrorCategory.CONFIGURATION,  # IAM role missing, API disabled
    "NOT_FOUND": ErrorCategory.CONFIGURATION,
    "RESOURCE_EXHAUSTED": ErrorCategory.RATE_LIMITED,
    "UNAVAILABLE": ErrorCategory.UNAVAILABLE,
    "INTERNAL": ErrorCategory.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ErrorCategory.AMBIGUOUS_TIMEOUT,
}

#: OAuth errors of the token endpoint (RFC 6749 section 5.2, and Google's retryable ones).
TOKEN_ERRORS: dict[str, ErrorCategory] = {
    "invalid_grant": ErrorCategory.AUTH,  # bad signature, deleted key, clock skew
    "invalid_client": ErrorCategory.AUTH,
    "unauthorized_client": ErrorCategory.AUTH,
    "access_denied": ErrorCategory.AUTH,
    "invalid_scope": ErrorCategory.CONFIGURATION,
    "invalid_request": ErrorCategory.CONFIGURATION,
    "unsupported_grant_type": ErrorCategory.CONFIGURATION,
    "server_error": ErrorCategory.UNAVAILABLE,
    "temporarily_unavailable": ErrorCategory.UNAVAILABLE,
    "internal_failure": ErrorCategory.UNAVAILABLE,
}

_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_TOKEN_FIELD = "message.token"  # noqa: S105 - a field name
_ABOUT_TOKEN = re.compile(r"registration[ -]token", re.IGNORECASE)
_RESERVED_KEYS = frozenset({"from", "message_type"})
_RESERVED_PREFIXES = ("google", "gcm")
_ANALYTICS_LABEL = re.compile(r"[A-Za-z0-9\-_.~%]{1,50}")
_PROJECT_ID = re.compile(r"[a-z0-9](?:[a-z0-9.:\-]{0,98}[a-z0-9])?")
_TARGETS = frozenset({"token", "topic", "condition"})
_MERGED = ("notification", "data", "fcm_options")
_ORDER = ("token", "notification", "data", "android", "apns", "webpush", "fcm_options")


class FCMSettings(ProviderSettings):
    """Settings of :class:`FCM`: give ``service_account`` or ``service_account_file``.

    Attributes:
        service_account: the service account's JSON key, as text (secret).
        service_account_file: the path of the JSON key file, read when the adapter is built.
        project_id: the Firebase project to send through (default: the key's ``project_id``).
    """

    service_account: SecretStr | None = None
    service_account_file: str | None = None
    project_id: str | None = None

    @model_validator(mode="after")
    def _check(self) -> FCMSettings:
        if (self.service_account is None) == (self.service_account_file is None):
            raise ValueError("give exactly one of service_account and service_account_file")
        if self.project_id is not None and not _PROJECT_ID.fullmatch(self.project_id):
            raise ValueError("project_id is not a Google Cloud project id")
        return self


class AccessToken(NamedTuple):
    """An OAuth access token and the ``FCM.now()`` time it expires at."""

    value: str
    expires_at: float


class FCM(Provider):
    """Sends push notifications through Firebase Cloud Messaging's HTTP v1 API.

    Attributes:
        now: the clock of the JWT's ``iat`` and of token expiry (tests pin it:
            ``fcm.now = lambda: 1.7e9``).
    """

    name: ClassVar[str] = "fcm"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.PUSH})
    capabilities: ClassVar[Capabilities] = Capabilities(tags=True)
    Settings: ClassVar[type[ProviderSettings]] = FCMSettings
    default_base_url: ClassVar[str | None] = "https://fcm.googleapis.com"
    push_kinds: ClassVar[frozenset[str]] = frozenset({"fcm"})
    #: Firebase "FCM throttling and quotas": 600,000 messages a minute per project by default.
    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=10_000, burst=1)
    settings: FCMSettings
    now: Callable[[], float] = time.time

    def __init__(self, settings: FCMSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        info = _read_service_account(self.settings)
        self._client_email = _field(info, "client_email")
        key_id = info.get("private_key_id")
        self._key_id = key_id if isinstance(key_id, str) and key_id else None
        self._token_uri = _token_uri(info.get("token_uri") or DEFAULT_TOKEN_URI)
        project = self.settings.project_id or info.get("project_id")
        if not isinstance(project, str) or not _PROJECT_ID.fullmatch(project):
            raise ConfigurationError("fcm needs a project_id: the key file has none or a bad one")
        self._project_id = project
        self._pem = _field(info, "private_key")
        self._key = _load_key(self._pem)
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    @property
    def project_id(self) -> str:
        """The Firebase project messages are sent through."""
        return self._project_id

    @property
    def client_email(self) -> str:
        """The service account's email (the JWT's issuer)."""
        return self._client_email

    def secrets(self) -> list[str]:
        """The secret settings, plus the private key read from the key file."""
        return [*super().secrets(), self._pem]

    # -- the message ----------------------------------------------------------------------------

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The JSON body of ``messages:send`` for ``message`` (see the module docstring).

        Raises:
            ContentError: a reserved data key, a malformed analytics label or provider option.
        """
        options = dict(message.provider_options)
        validate_only = options.pop("validate_only", False)
        if not isinstance(validate_only, bool):
            raise ContentError("fcm option validate_only must be true or false")
        if _TARGETS & options.keys():
            raise ContentError("fcm sends to the message's token: options may not set a target")
        push = message.push
        title, body = (push.title, push.body) if push else (message.subject, message.text)
        parts: dict[str, dict[str, Any]] = {
            "notification": {k: v for k, v in (("title", title), ("body", body)) if v},
            "data": dict(push.data) if push else {},
            "fcm_options": {},
        }
        for part in _MERGED:
            extra = options.pop(part, {})
            if not isinstance(extra, dict):
                raise ContentError(f"fcm option {part} must be an object")
            parts[part].update(extra)
        parts["data"] = {key: stringify(value) for key, value in parts["data"].items()}
        reserved = [k for k in parts["data"] if _reserved(k)]
        if reserved:
            raise ContentError(f"fcm reserves the data keys {', '.join(sorted(reserved))}")
        if message.tags and "analytics_label" not in parts["fcm_options"]:
            parts["fcm_options"]["analytics_label"] = message.tags[0]
        label = parts["fcm_options"].get("analytics_label")
        if label is not None and not (isinstance(label, str) and _ANALYTICS_LABEL.fullmatch(label)):
            raise ContentError("an fcm analytics label must match [a-zA-Z0-9-_.~%]{1,50}")
        fields: dict[str, Any] = {"token": message.to, **options}
        fields.update({part: value for part, value in parts.items() if value})
        ordered = {key: fields[key] for key in _ORDER if key in fields}
        ordered.update(fields)
        request: dict[str, Any] = {"message": ordered}
        if validate_only:
            request["validate_only"] = True
        return request

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse what :meth:`payload` refuses, and messages over the size limit."""
        super().check_supported(message)
        fields = dict(self.payload(message)["message"])
        fields.pop("token", None)
        size = len(_compact(fields))
        if size > MAX_PAYLOAD_BYTES:
            raise ProviderError(
                f"the fcm message is {size} bytes; FCM takes at most {MAX_PAYLOAD_BYTES}",
                category=ErrorCategory.PAYLOAD_TOO_LARGE,
                provider=self.name,
            )

    # -- sending --------------------------------------------------------------------------------

    def send_flow(self, message: OutboundMessage) -> SendFlow:
        """Fetch an access token when none is cached, then send (see the module docstring)."""
        content = _compact(self.payload(message))
        token = self._cached_token()
        cached = token is not None
        if token is None:
            token = yield from self._fetch_token()
        response = yield self._send_request(content, token)
        if cached and response.status_code == 401 and _fcm_code(_error(response)) is None:
            # The cached token was refused (revoked, or expired early): one try with a new one.
            self._drop_token(token)
            token = yield from self._fetch_token()
            response = yield self._send_request(content, token)
        return self.parse_send_response(response, token)

    def token_request(self, issued_at: float) -> httpx.Request:
        """The request that exchanges a JWT assertion made at ``issued_at`` for a token."""
        form = urlencode({"grant_type": GRANT_TYPE, "assertion": self.assertion(issued_at)})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return httpx.Request("POST", self._token_uri, content=form.encode(), headers=headers)

    def assertion(self, issued_at: float) -> str:
        """The signed JWT (RS256) that asks for an access token, issued at ``issued_at``."""
        iat = int(issued_at)
        header = {"alg": "RS256", "typ": "JWT"}
        if self._key_id:
            header["kid"] = self._key_id
        claims = {
            "iss": self._client_email,
            "scope": SCOPE,
            "aud": self._token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        }
        signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}".encode("ascii")
        return f"{signing_input.decode('ascii')}.{_b64(sign_rs256(self._key, signing_input))}"

    def parse_token_response(self, response: httpx.Response, issued_at: float) -> AccessToken:
        """The token of a token-endpoint answer, or the ProviderError it stands for."""
        body = response_body(response)
        if response.is_success:
            value = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(value, str) or not value:
                raise ProviderError(
                    "fcm: the token endpoint answered without an access token",
                    category=ErrorCategory.UNAVAILABLE,
                    provider=self.name,
                    status_code=response.status_code,
                )
            lifetime = body.get("expires_in")
            valid = isinstance(lifetime, (int, float)) and not isinstance(lifetime, bool)
            return AccessToken(value, issued_at + (float(lifetime) if valid else 0.0))
        code = body.get("error") if isinstance(body, dict) else None
        detail = body.get("error_description") if isinstance(body, dict) else None
        status = response.status_code
        if isinstance(code, str) and code in TOKEN_ERRORS:
            category = TOKEN_ERRORS[code]
        elif status == 429 or status >= 500:
            category = category_for_status(status)
        else:
            category = ErrorCategory.AUTH
        words = ": ".join(w for w in (code, detail) if isinstance(w, str) and w)
        raise ProviderError(
            f"fcm could not get an access token: {words or f'HTTP {status}'}",
            category=category,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            provider=self.name,
            status_code=status,
            code=code if isinstance(code, str) else None,
            raw=body,
        )

    def parse_send_response(self, response: httpx.Response, access_token: str) -> Receipt:
        """A receipt for FCM's answer, or the ProviderError it stands for.

        An ``auth`` error drops ``access_token`` from the cache.
        """
        if response.is_success:
            body = response_body(response)
            name = body.get("name") if isinstance(body, dict) else None
            raw = body if isinstance(body, (dict, list)) or body else None
            return Receipt(provider_message_id=name if isinstance(name, str) else None, raw=raw)
        error = self.error_for(response)
        if error.category is ErrorCategory.AUTH:
            self._drop_token(access_token)
        raise error

    def error_for(self, response: httpx.Response) -> ProviderError:
        """The ProviderError an FCM error answer stands for (see :data:`ERROR_CODES`)."""
        error = _error(response)
        fcm_code = _fcm_code(error)
        status = error.get("status") if isinstance(error.get("status"), str) else None
        text = error.get("message") if isinstance(error.get("message"), str) else None
        category: ErrorCategory | None = None
        if fcm_code in ERROR_CODES:
            category = ERROR_CODES[fcm_code]
        elif status in STATUS_CODES:
            category = STATUS_CODES[status]
        code = fcm_code or status
        reason: Reason | None = None
        dead = False
        if code == "UNREGISTERED":
            reason, dead = Reason.TOKEN_UNREGISTERED, True
        elif code == "INVALID_ARGUMENT" and _about_token(error, text):
            category, reason, dead = ErrorCategory.INVALID_RECIPIENT, Reason.INVALID_RECIPIENT, True
        category = category or category_for_status(response.status_code)
        if category is ErrorCategory.RATE_LIMITED:
            reason = Reason.RATE_LIMITED
        http = f"HTTP {response.status_code}"
        return ProviderError(
            f"fcm refused the message: {text or http}",
            category=category,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            provider=self.name,
            status_code=response.status_code,
            code=code,
            raw=response_body(response),
            reason=reason,
            contact_invalid=dead,
        )

    # -- the token cache (never held across a request) --------------------------------------------

    def _fetch_token(self) -> Generator[httpx.Request, httpx.Response, str]:
        issued_at = self.now()
        response = yield self.token_request(issued_at)
        token = self.parse_token_response(response, issued_at)
        with self._lock:
            if self._token is None or token.expires_at >= self._token.expires_at:
                self._token = token
        return token.value

    def _cached_token(self) -> str | None:
        with self._lock:
            token = self._token
        if token is not None and self.now() < token.expires_at - REFRESH_MARGIN:
            return token.value
        return None

    def _drop_token(self, value: str) -> None:
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    def _send_request(self, content: bytes, access_token: str) -> httpx.Request:
        url = f"{self.default_base_url}/v1/projects/{self._project_id}/messages:send"
        headers = {
            "Authorization": f"Bearer {access_token}",
            "Content-Type": "application/json",
            # As the Admin SDKs do: errors then carry the FcmError details.
            "X-GOOG-API-FORMAT-VERSION": "2",
        }
        return httpx.Request("POST", url, content=content, headers=headers)


def sign_rs256(key: rsa.RSAPrivateKey, signing_input: bytes) -> bytes:
    """The RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of a JWS signing input."""
    return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def stringify(value: Any) -> str:
    """A data value as the string FCM requires (see the module docstring)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float, list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _read_service_account(settings: FCMSettings) -> dict[str, Any]:
    if settings.service_account is not None:
        text, source = settings.service_account.get_secret_value(), "service_account"
    else:
        path = Path(str(settings.service_account_file))
        source = f"service_account_file {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"fcm cannot read {source}: {type(exc).__name__}") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"fcm: {source} is not JSON") from None
    if not isinstance(info, dict):
        raise ConfigurationError(f"fcm: {source} is not a JSON object")
    if info.get("type", "service_account") != "service_account":
        raise ConfigurationError(f"fcm: {source} is not a service account key")
    return info


def _field(info: dict[str, Any], name: str) -> str:
    value = info.get(name)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"fcm service account: {name} is missing")
    return value


def _token_uri(value: object) -> str:
    try:
        secure = isinstance(value, str) and httpx.URL(value).scheme == "https"
    except httpx.InvalidURL:
        secure = False
    if not secure:
        raise ConfigurationError("fcm service account: token_uri must be an https URL")
    return str(value)


def _load_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            "fcm service account: private_key is not an unencrypted PEM key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("fcm service account: private_key is not an RSA key")
    return key


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _fcm_code(error: dict[str, Any]) -> str | None:
    for detail in _details(error):
        code = detail.get("errorCode")
        if detail.get("@type") == _FCM_ERROR and isinstance(code, str) and code:
            return code
    return None


def _about_token(error: dict[str, Any], text: str | None) -> bool:
    """Whether an ``INVALID_ARGUMENT`` is about the registration token, not the content.

    The ``google.rpc.BadRequest`` field violations decide when there are any; otherwise the
    message does ("The registration token is not a valid FCM registration token").
    """
    fields = [
        violation.get("field")
        for detail in _details(error)
        if detail.get("@type") == _BAD_REQUEST and isinstance(detail.get("fieldViolations"), list)
        for violation in detail["fieldViolations"]
        if isinstance(violation, dict)
    ]
    if fields:
        return _TOKEN_FIELD in fields
    return bool(text and _ABOUT_TOKEN.search(text))


def _reserved(key: str) -> bool:
    return key in _RESERVED_KEYS or key.startswith(_RESERVED_PREFIXES)


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
