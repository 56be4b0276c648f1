r"""``APNs``: the ``push`` channel to Apple devices, through Apple Push Notification service.

Token-based authentication (a ``.p8`` signing key) over HTTP/2, the only protocol APNs
speaks: the adapter sets ``http2 = True`` and the client sends its requests through an
HTTP/2 connection pool (``pip install "anysend[push]"`` installs ``h2`` and ``cryptography``).
It serves devices of kind ``apns`` (``PushTarget(kind="apns", token=...)``).

Example:
    ```python
    from pathlib import Path

    import anysend
    from anysend.providers.apns import APNs

    apns = APNs(
        team_id="ABCDE12345",
        key_id="KEY1234567",
        private_key=Path("AuthKey_KEY1234567.p8").read_text(),
        topic="com.example.shop",
    )
    ann = anysend.Recipient(push=[anysend.PushTarget(kind="apns", token="a1b2...")])
    with anysend.Client([apns]) as client:
        client.send(anysend.Message(subject="Order 42", text="It has shipped"), to=ann)
    ```

Settings (:class:`APNsSettings`): ``team_id``, ``key_id``, ``private_key`` (secret: the
``.p8`` PEM), ``topic`` (the app's bundle id), ``sandbox`` (development builds), and defaults
for every message: ``push_type``, ``priority``, ``ttl``, ``sound``.

The request (Apple, "Sending notification requests to APNs",
https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns):
``POST https://api.push.apple.com/3/device/<device token>`` (``api.sandbox.push.apple.com``
with ``sandbox=True``) with ``authorization: bearer <provider token>``, ``apns-topic``,
``apns-push-type`` (``alert`` when there is a title or body, else ``background``),
``apns-priority`` (``10`` for alerts, ``5`` for background), ``apns-id`` (anysend's message id
as a UUID), and ``apns-expiration`` / ``apns-collapse-id`` when set. The body is compact JSON
``{"aps": {"alert": {"title", "body"}, "sound", ...}, <data keys>}``; a background push gets
``"content-available": 1`` and no alert. Provider options (:data:`OPTIONS`) override headers
and add ``aps`` keys or top-level keys. APNs answers ``200`` with an empty body and the
``apns-id`` header, which becomes the receipt's ``provider_message_id``.

The provider token (Apple, "Establishing a token-based connection to APNs") is a JWT signed
with ES256: header ``{"alg": "ES256", "kid": key_id}``, claims ``{"iss": team_id, "iat":
now}``. Apple rejects a token older than an hour and answers ``429
TooManyProviderTokenUpdates`` when tokens change more often than every 20 minutes, so one token
is cached per adapter and replaced after :data:`TOKEN_REFRESH_SECONDS` (40 minutes), never per
request; a lock makes concurrent sends share it. ``403 ExpiredProviderToken`` and
``InvalidProviderToken`` drop the cached token so that the next try signs a new one.

Limits and quirks:
    * The payload may hold 4096 bytes (5120 for ``voip``); a larger one fails before any
      request with ``payload_too_large``. ``apns-collapse-id`` holds at most 64 bytes.
    * Device tokens are hex strings; anything else is refused before any request.
    * A sandbox token sent to production (or the reverse) is answered ``BadDeviceToken``,
      which marks the token dead: check ``sandbox`` first when many tokens fail at once.
    * APNs takes no idempotency key (``apns-id`` labels a notification, it does not
      deduplicate), so an ambiguous timeout is not retried.
    * No delivery callbacks: APNs reports nothing after the ``200``.

Errors (Apple, "Handling notification responses from APNs"): the JSON body's ``reason``
(:data:`ERROR_CODES`), else the HTTP status (:data:`STATUS_CATEGORIES`, then the shared
mapping). ``410 Unregistered``/``ExpiredToken`` and ``400 BadDeviceToken`` mark the token dead
(``contact_invalid``; :data:`CONTACT_INVALID_REASONS`) with the reasons in :data:`REASONS`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, ClassVar

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pydantic import Field, SecretStr, field_validator

from anysend import (
    Channel,
    ConfigurationError,
    ErrorCategory,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
)
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    error_from_response,
    response_body,
)

__all__ = [
    "CONTACT_INVALID_REASONS",
    "ERROR_CODES",
    "OPTIONS",
    "REASONS",
    "STATUS_CATEGORIES",
    "APNs",
    "APNsSettings",
    "apns_id",
    "provider_token",
]

HOSTS = {False: "https://api.push.apple.com", True: "https://api.sandbox.push.apple.com"}
#: Seconds a provider token is reused: Apple wants between 20 and 60 minutes.
TOKEN_REFRESH_SECONDS = 40 * 60
#: Payload limits in bytes: every push type, and VoIP.
MAX_PAYLOAD = 4096
MAX_VOIP_PAYLOAD = 5120
MAX_COLLAPSE_ID = 64
#: ``apns-id`` for a message id that is not 32 hex digits: ``uuid5(APNS_ID_NAMESPACE, id)``.
APNS_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://anysend.dev/apns-id")

#: APNs ``reason`` strings and their categories.
ERROR_CODES: dict[str, ErrorCategory] = {
    # the device token: dead for good (see CONTACT_INVALID_REASONS)
    "BadDeviceToken": ErrorCategory.INVALID_RECIPIENT,
    "Unregistered": ErrorCategory.INVALID_RECIPIENT,
    "ExpiredToken": ErrorCategory.INVALID_RECIPIENT,
    "MissingDeviceToken": ErrorCategory.INVALID_RECIPIENT,
    # the token belongs to another app: another APNs provider (another topic) may serve it
    "DeviceTokenNotForTopic": ErrorCategory.CONFIGURATION,
    "BadTopic": ErrorCategory.CONFIGURATION,
    "MissingTopic": ErrorCategory.CONFIGURATION,
    "TopicDisallowed": ErrorCategory.CONFIGURATION,
    "BadPath": ErrorCategory.CONFIGURATION,
    "MethodNotAllowed": ErrorCategory.CONFIGURATION,
    # the notification's own options and content (provider options)
    "BadCollapseId": ErrorCategory.CONTENT_REJECTED,
    "BadExpirationDate": ErrorCategory.CONTENT_REJECTED,
    "BadPriority": ErrorCategory.CONTENT_REJECTED,
    "InvalidPushType": ErrorCategory.CONTENT_REJECTED,
    "PayloadEmpty": ErrorCategory.CONTENT_REJECTED,
    "PayloadTooLarge": ErrorCategory.PAYLOAD_TOO_LARGE,
    # headers the adapter makes itself: a bug, not retried
    "BadMessageId": ErrorCategory.UNKNOWN,
    "DuplicateHeaders": ErrorCategory.UNKNOWN,
    # credentials: the key, its id, the team, the environment
    "ExpiredProviderToken": ErrorCategory.AUTH,
    "InvalidProviderToken": ErrorCategory.AUTH,
    "MissingProviderToken": ErrorCategory.AUTH,
    "BadCertificate": ErrorCategory.AUTH,
    "BadCertificateEnvironment": ErrorCategory.AUTH,
    "Forbidden": ErrorCategory.AUTH,
    "UnrelatedKeyIdInToken": ErrorCategory.AUTH,
    "BadEnvironmentKeyIdInToken": ErrorCategory.AUTH,
    "BadEnvironmentKeyInToken": ErrorCategory.AUTH,
    # passing trouble
    "TooManyProviderTokenUpdates": ErrorCategory.RATE_LIMITED,
    "TooManyRequests": ErrorCategory.RATE_LIMITED,
    "IdleTimeout": ErrorCategory.UNAVAILABLE,
    "InternalServerError": ErrorCategory.UNAVAILABLE,
    "ServiceUnavailable": ErrorCategory.UNAVAILABLE,
    "Shutdown": ErrorCategory.UNAVAILABLE,
}

#: HTTP statuses whose meaning differs from the shared mapping (used for an unknown reason).
STATUS_CATEGORIES: dict[int, ErrorCategory] = {
    404: ErrorCategory.CONFIGURATION,
    405: ErrorCategory.CONFIGURATION,
    410: ErrorCategory.INVALID_RECIPIENT,
}

#: Reasons that mean the device token is dead: stop sending to it (``contact_invalid``).
CONTACT_INVALID_REASONS = frozenset({"BadDeviceToken", "Unregistered", "ExpiredToken"})

#: The :class:`~anysend.Reason` each APNs reason carries.
REASONS: dict[str, Reason] = {
    "BadDeviceToken": Reason.INVALID_RECIPIENT,
    "MissingDeviceToken": Reason.INVALID_RECIPIENT,
    "Unregistered": Reason.TOKEN_UNREGISTERED,
    "ExpiredToken": Reason.TOKEN_UNREGISTERED,
    "TooManyRequests": Reason.RATE_LIMITED,
    "TooManyProviderTokenUpdates": Reason.RATE_LIMITED,
}

#: Reasons after which the cached provider token is dropped; a fresh one fixes the first.
_TOKEN_REJECTED = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
_RETRYABLE = {"ExpiredProviderToken": True}

#: Provider options (``Message(provider_options={"apns": {...}})``) and what each sets.
OPTIONS: dict[str, str] = {
    "push_type": "apns-push-type (default: the push_type setting, else alert or background)",
    "priority": "apns-priority: 10, 5 or 1",
    "expiration": "apns-expiration as given: a UNIX time in seconds, 0 for deliver-once",
    "ttl": "apns-expiration as now + ttl seconds (0: deliver once)",
    "collapse_id": "apns-collapse-id, at most 64 bytes",
    "topic": "apns-topic instead of the topic setting (such as <bundle id>.voip)",
    "sound": "aps.sound instead of the sound setting",
    "badge": "aps.badge (0 clears the badge)",
    "mutable_content": "aps.mutable-content = 1 when true",
    "aps": "a dict merged into aps last (alert dicts are merged key by key)",
    "payload": "a dict of top-level keys added beside aps, after the data",
}

_HEX = re.compile(r"[0-9A-Fa-f]+")
_PUSH_TYPE = re.compile(r"[a-z][a-z0-9.-]*")
_TOPIC = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PRIORITIES = (1, 5, 10)


class APNsSettings(ProviderSettings):
    r"""Settings of :class:`APNs`.

    Attributes:
        team_id: the 10-character Team ID of the developer account (the token's ``iss``).
        key_id: the 10-character Key ID of the signing key (the token's ``kid``).
        private_key: the signing key: the ``.p8`` file's PEM text (secret). ``\n`` escapes
            (from an environment variable) are read as line breaks.
        topic: the app's bundle id, sent as ``apns-topic``.
        sandbox: send to the development environment (``api.sandbox.push.apple.com``).
        push_type: ``apns-push-type`` for every message; ``None`` picks ``alert`` when there
            is a title or body and ``background`` otherwise.
        priority: ``apns-priority`` for every message (10, 5 or 1); ``None``: 10 for alerts,
            5 for background pushes.
        ttl: seconds APNs keeps trying to deliver (``apns-expiration`` = now + ttl; 0 delivers
            once, without storing); ``None`` sends no header (APNs stores per its own policy).
        sound: ``aps.sound`` for alerts, such as ``"default"``.
    """

    team_id: str = Field(pattern=r"^[A-Za-z0-9]+$")
    key_id: str = Field(pattern=r"^[A-Za-z0-9]+$")
    private_key: SecretStr
    topic: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    sandbox: bool = False
    push_type: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9.-]*$")
    priority: int | None = None
    ttl: int | None = Field(default=None, ge=0)
    sound: str | None = None

    @field_validator("priority")
    @classmethod
    def _known_priority(cls, value: int | None) -> int | None:
        if value is not None and value not in _PRIORITIES:
            raise ValueError("priority must be 10, 5 or 1")
        return value


class APNs(Provider):
    """Sends push notifications to Apple devices with token-based authentication.

    Attributes:
        now: the clock the provider token's ``iat`` and age are read from (override it per
            instance in tests: ``apns.now = lambda: 1_700_000_000.0``).
    """

    name: ClassVar[str] = "apns"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.PUSH})
    capabilities: ClassVar[Capabilities] = Capabilities()
    Settings: ClassVar[type[ProviderSettings]] = APNsSettings
    default_base_url: ClassVar[str | None] = HOSTS[False]
    push_kinds: ClassVar[frozenset[str]] = frozenset({"apns"})
    http2: ClassVar[bool] = True
    now: Callable[[], float] = time.time
    settings: APNsSettings

    def __init__(self, settings: APNsSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._key = _load_key(self.settings.private_key.get_secret_value())
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    # -- the provider token ---------------------------------------------------------------------

    def provider_token(self) -> str:
        """The cached provider token, signed afresh once it is :data:`TOKEN_REFRESH_SECONDS` old."""
        with self._lock:  # signing is CPU only: hold the lock so that threads sign once
            now = self.now()
            if self._token is None or now - self._token[1] >= TOKEN_REFRESH_SECONDS:
                token = provider_token(self._key, self.settings.team_id, self.settings.key_id, now)
                self._token = (token, now)
            return self._token[0]

    def _drop_token(self, token: str | None) -> None:
        """Forget ``token`` (unless another thread has replaced it already)."""
        with self._lock:
            if self._token is not None and token in (None, self._token[0]):
                self._token = None

    # -- sending --------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a malformed device token, bad options and a payload over the limit."""
        super().check_supported(message)
        self._prepare(message)

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """``POST /3/device/<token>`` with the provider token and the apns-* headers."""
        headers, body = self._prepare(message)
        headers["authorization"] = f"bearer {self.provider_token()}"
        host = HOSTS[self.settings.sandbox]
        return httpx.Request("POST", f"{host}/3/device/{message.to}", headers=headers, content=body)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt with the ``apns-id`` for 2xx; otherwise a ProviderError by the reason."""
        if response.is_success:
            raw = {
                k: response.headers[k]
                for k in ("apns-id", "apns-unique-id")
                if k in response.headers
            }
            return Receipt(provider_message_id=response.headers.get("apns-id"), raw=raw or None)
        body = response_body(response)
        reason = body.get("reason") if isinstance(body, dict) else None
        reason = reason if isinstance(reason, str) else None
        status = response.status_code
        dead = reason in CONTACT_INVALID_REASONS or (status == 410 and reason not in ERROR_CODES)
        text = f"apns refused the notification: {reason or f'HTTP {status}'}"
        since = _timestamp(body.get("timestamp")) if isinstance(body, dict) else None
        if since is not None:
            text += f" (the token is inactive since {since.isoformat()})"
        error = error_from_response(
            response,
            self.name,
            message=text,
            category=ERROR_CODES.get(reason or "") or STATUS_CATEGORIES.get(status),
            code=reason,
            retryable=_RETRYABLE.get(reason or ""),
        )
        error.contact_invalid = dead
        error.reason = REASONS.get(reason or "") or (Reason.TOKEN_UNREGISTERED if dead else None)
        if reason in _TOKEN_REJECTED:
            sent = response.request.headers.get("authorization") if _has_request(response) else None
            self._drop_token(sent.removeprefix("bearer ") if sent else None)
        raise error

    # -- the notification -----------------------------------------------------------------------

    def _prepare(self, message: OutboundMessage) -> tuple[dict[str, str], bytes]:
        """The apns-* headers (without authorization) and the JSON body, checked."""
        if not _HEX.fullmatch(message.to):
            raise self._refuse(
                f"{message.to[:16]!r}… is not an APNs device token (hex digits)",
                ErrorCategory.INVALID_RECIPIENT,
            )
        options = message.provider_options
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise self._refuse(f"unknown apns provider options: {', '.join(unknown)}")
        push = message.push
        title = push.title if push is not None else message.subject
        text = push.body if push is not None else message.text
        data = dict(push.data) if push is not None else {}
        push_type = options.get("push_type") or self.settings.push_type
        if push_type is None:
            push_type = "alert" if title or text else "background"
        if not isinstance(push_type, str) or not _PUSH_TYPE.fullmatch(push_type):
            raise self._refuse(f"apns push_type {push_type!r} is not a push type")
        payload = {"aps": self._aps(push_type, title, text, options)}
        extra = options.get("payload", {})
        if not isinstance(extra, dict):
            raise self._refuse("the apns option 'payload' must be a dict")
        if "aps" in data or "aps" in extra:
            raise self._refuse("'aps' is APNs' own key: it cannot be a data key")
        payload.update(data)
        payload.update(extra)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        limit = MAX_VOIP_PAYLOAD if push_type == "voip" else MAX_PAYLOAD
        if len(body) > limit:
            raise self._refuse(
                f"the APNs payload is {len(body)} bytes; the limit is {limit}",
                ErrorCategory.PAYLOAD_TOO_LARGE,
            )
        return self._headers(message, push_type, options), body

    def _aps(
        self, push_type: str, title: str | None, text: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        aps: dict[str, Any] = {}
        if push_type == "background":
            aps["content-available"] = 1
        else:
            alert = {k: v for k, v in (("title", title), ("body", text)) if v}
            if alert:
                aps["alert"] = alert
            sound = options.get("sound", self.settings.sound)
            if sound is not None:
                aps["sound"] = sound
        if "badge" in options:
            aps["badge"] = options["badge"]
        if options.get("mutable_content"):
            aps["mutable-content"] = 1
        given = options.get("aps", {})
        if not isinstance(given, dict):
            raise self._refuse("the apns option 'aps' must be a dict")
        for key, value in given.items():
            if key == "alert" and isinstance(value, dict) and isinstance(aps.get("alert"), dict):
                aps["alert"] = {**aps["alert"], **value}
            else:
                aps[key] = value
        return aps

    def _headers(
        self, message: OutboundMessage, push_type: str, options: dict[str, Any]
    ) -> dict[str, str]:
        topic = options.get("topic", self.settings.topic)
        priority = options.get("priority", self.settings.priority)
        if priority is None:
            priority = 5 if push_type == "background" else 10
        if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
            raise self._refuse("the apns option 'topic' must be a bundle id")
        if type(priority) is not int or priority not in _PRIORITIES:
            raise self._refuse(f"apns priority {priority!r} is not 10, 5 or 1")
        headers = {
            "apns-topic": topic,
            "apns-push-type": push_type,
            "apns-priority": str(priority),
            "apns-id": apns_id(message.id),
        }
        expiration = self._expiration(options)
        if expiration is not None:
            headers["apns-expiration"] = str(expiration)
        collapse = options.get("collapse_id")
        if collapse is not None:
            if not isinstance(collapse, str) or not collapse.isprintable():
                raise self._refuse("the apns option 'collapse_id' must be printable text")
            if len(collapse.encode()) > MAX_COLLAPSE_ID:
                raise self._refuse(f"apns collapse_id is over {MAX_COLLAPSE_ID} bytes")
            headers["apns-collapse-id"] = collapse
        return headers

    def _expiration(self, options: dict[str, Any]) -> int | None:
        if "expiration" in options:
            return self._seconds(options["expiration"], "expiration")
        ttl = self._seconds(options["ttl"], "ttl") if "ttl" in options else self.settings.ttl
        if ttl is None:
            return None
        return 0 if ttl == 0 else int(self.now()) + ttl

    def _seconds(self, value: object, option: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._refuse(f"the apns option {option!r} must be a whole number >= 0")
        return value

    def _refuse(
        self, text: str, category: ErrorCategory = ErrorCategory.CONTENT_REJECTED
    ) -> ProviderError:
        reason = Reason.INVALID_RECIPIENT if category is ErrorCategory.INVALID_RECIPIENT else None
        return ProviderError(text, category=category, provider=self.name, reason=reason)


def apns_id(message_id: str) -> str:
    """The ``apns-id`` for a message: its id as a UUID when it is 32 hex digits, else uuid5."""
    if len(message_id) == 32 and _HEX.fullmatch(message_id):
        return str(uuid.UUID(hex=message_id))
    return str(uuid.uuid5(APNS_ID_NAMESPACE, message_id))


def provider_token(key: ec.EllipticCurvePrivateKey, team_id: str, key_id: str, now: float) -> str:
    """A provider token: a JWT signed with ES256 (RFC 7515, raw ``r || s`` signature)."""
    header = _b64(json.dumps({"alg": "ES256", "kid": key_id}, separators=(",", ":")).encode())
    claims = _b64(json.dumps({"iss": team_id, "iat": int(now)}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode("ascii")
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{claims}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 signing key from the ``.p8`` PEM text; ConfigurationError otherwise."""
    if "\n" not in pem and "\\n" in pem:
        pem = pem.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(
            "apns private_key is not a PEM private key (the .p8 file's text)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigurationError("apns private_key must be an EC P-256 key (ES256)")
    return key


def _timestamp(value: object) -> datetime | None:
    """A 410 body's ``timestamp`` (milliseconds since the epoch) as a datetime, if valid."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises RuntimeError when the response has none
    except RuntimeError:
        return False
    return True
