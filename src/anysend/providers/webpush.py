"""``WebPush``: browser push notifications (the ``push`` channel, device kind ``webpush``).

Sends to a browser's ``PushSubscription`` through its push service (Mozilla autopush, Google
FCM, Apple, Microsoft WNS) with the three IETF standards every browser speaks: the Web Push
protocol ([RFC 8030](https://www.rfc-editor.org/rfc/rfc8030)), message encryption
([RFC 8291](https://www.rfc-editor.org/rfc/rfc8291), ``aes128gcm`` of
[RFC 8188](https://www.rfc-editor.org/rfc/rfc8188)) and VAPID
([RFC 8292](https://www.rfc-editor.org/rfc/rfc8292)). Needs ``cryptography``
(``pip install "anysend[push]"``).

Example:
    ```python
    import anysend
    from anysend.providers.webpush import WebPush, vapid_keys

    private_key, public_key = vapid_keys()  # once; public_key goes to pushManager.subscribe()
    push = WebPush(vapid_private_key=private_key, vapid_subject="mailto:ops@example.com")
    browser = anysend.PushTarget.webpush(subscription_json)  # PushSubscription.toJSON()
    with anysend.Client([push]) as client:
        client.send(anysend.Message(subject="Order shipped", text="It is on its way"),
                    to=anysend.Recipient(push=(browser,)))
    ```

Settings:
    * ``vapid_private_key`` (secret): the application server's P-256 key, as PEM or as the
      base64url 32-byte private scalar (what :func:`vapid_keys` and the ``web-push`` tools
      print). Its public key (:attr:`WebPush.application_server_key`) is the
      ``applicationServerKey`` the page subscribes with.
    * ``vapid_subject``: a ``mailto:`` or ``https:`` contact for the push service operator.
    * ``ttl``: seconds the push service keeps an undelivered message (default one day).
    * ``urgency``: ``very-low``, ``low``, ``normal`` or ``high``; unset sends no header
      (the service then assumes ``normal``).

The request: ``POST <subscription endpoint>`` (``message.to``) with ``TTL``, ``Urgency`` and
``Topic`` when set, ``Content-Encoding: aes128gcm``, ``Content-Type:
application/octet-stream``, ``Authorization: vapid t=<JWT>, k=<public key>`` and one
encrypted record as the body. The plaintext is the compact UTF-8 JSON
``{"title": ..., "body": ..., "data": {...}}`` (see :func:`payload`); provider options
(``Message(provider_options={"webpush": {...}})``): ``ttl``, ``urgency``, ``topic`` (at most
32 base64url characters), ``collapse_key`` (any text, turned into a topic) and ``payload``
(a dict or list sent as JSON, a str as UTF-8, bytes as they are). Other options are refused.

Limits and quirks:
    * The body is at most 4096 bytes (what every push service must accept, RFC 8030 §7.2): 86
      bytes of header, the plaintext, a 1-byte delimiter and a 16-byte tag, so the plaintext
      is at most :data:`MAX_PLAINTEXT` = 3993 bytes. Larger ones fail before any request.
    * The VAPID JWT (ES256, ``aud`` = the endpoint's origin, ``exp`` 12 hours ahead) is cached
      per push service and renewed one hour before it expires (:attr:`WebPush.now` is the
      clock). Every message gets a fresh salt and ECDH key.
    * No idempotency key exists in RFC 8030, and no delivery callbacks reach the sender.

Errors (:data:`ERROR_CODES`, by HTTP status; then the shared mapping: 5xx ``unavailable``):
404 and 410 mean the subscription is gone: ``invalid_recipient`` with ``contact_invalid`` and
reason ``token_unregistered``, so the client's ``on_invalid_address`` hooks can delete it.
401 and 403 are ``auth`` (VAPID missing or invalid, or the subscription belongs to another
VAPID key: fail over to the next provider). 400 is ``content_rejected`` (a malformed request),
413 ``payload_too_large``, 429 ``rate_limited`` with ``Retry-After``. The ``code`` is
autopush's ``errno`` or Apple's ``reason`` when the body has one.

Status mapping: none; a 201 or 202 is ``accepted``, with the ``Location`` header (the push
message resource) as the provider message id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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
    "CONTACT_INVALID_STATUSES",
    "ERROR_CODES",
    "MAX_BODY",
    "MAX_PLAINTEXT",
    "REASONS",
    "TOKEN_LIFETIME",
    "TOKEN_RENEW_BEFORE",
    "URGENCIES",
    "KeySchedule",
    "WebPush",
    "WebPushSettings",
    "b64url",
    "b64url_decode",
    "encrypt",
    "key_schedule",
    "load_vapid_key",
    "origin",
    "payload",
    "vapid_keys",
    "vapid_token",
]

Urgency = Literal["very-low", "low", "normal", "high"]
URGENCIES: tuple[str, ...] = ("very-low", "low", "normal", "high")

#: The largest body every push service must accept (RFC 8030 §7.2), and the record size used.
MAX_BODY = 4096
#: Header (salt 16, rs 4, idlen 1, key 65) + padding delimiter 1 + AEAD tag 16 = 103 bytes.
MAX_PLAINTEXT = MAX_BODY - 86 - 1 - 16
#: How long a VAPID JWT is valid (RFC 8292 allows at most 24 hours) and when it is renewed.
TOKEN_LIFETIME = 12 * 3600
TOKEN_RENEW_BEFORE = 3600
_MAX_CACHED_TOKENS = 256

#: What an error status means (anything else: the shared mapping, 5xx ``unavailable``).
ERROR_CODES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,  # malformed request: headers, encryption
    401: ErrorCategory.AUTH,  # no VAPID authorization
    403: ErrorCategory.AUTH,  # invalid JWT, or a subscription bound to another VAPID key
    404: ErrorCategory.INVALID_RECIPIENT,  # subscription expired (RFC 8030 §7.3)
    410: ErrorCategory.INVALID_RECIPIENT,  # unsubscribed or expired (all major services)
    413: ErrorCategory.PAYLOAD_TOO_LARGE,
    429: ErrorCategory.RATE_LIMITED,  # with Retry-After (RFC 8030 §8.4)
}
#: The reason each status carries.
REASONS: dict[int, Reason] = {
    404: Reason.TOKEN_UNREGISTERED,
    410: Reason.TOKEN_UNREGISTERED,
    429: Reason.RATE_LIMITED,
}
#: Statuses that mean the subscription is dead for good (``on_invalid_address`` hooks).
CONTACT_INVALID_STATUSES = frozenset({404, 410})

_DESCRIPTIONS = {
    400: "the push service refused the request as malformed",
    401: "the push service wants VAPID authorization",
    403: "the push service refused the VAPID authorization (another key subscribed?)",
    404: "the push subscription is gone: delete it",
    410: "the push subscription is gone (unsubscribed or expired): delete it",
    413: "the push service refused the payload as too large",
    429: "the push service is throttling requests",
}
_OPTIONS = frozenset({"ttl", "urgency", "topic", "collapse_key", "payload"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


# -- RFC 8291 message encryption ------------------------------------------------------------------


def b64url(data: bytes) -> str:
    """Base64url without padding, as Web Push writes keys and tokens."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str | bytes) -> bytes:
    """Decode base64url (padding optional; the standard alphabet is accepted too).

    Raises:
        ValueError: not base64.
    """
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = text.strip().rstrip("=").replace("+", "-").replace("/", "_")
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError("not base64url") from exc


def _key_bytes(value: str | bytes) -> bytes:
    return b64url_decode(value) if isinstance(value, str) else bytes(value)


def _public_key(p256dh: str | bytes) -> ec.EllipticCurvePublicKey:
    """The user agent's P-256 public key (65 bytes, uncompressed point)."""
    raw = _key_bytes(p256dh)
    if len(raw) != 65 or raw[0] != 0x04:
        raise ValueError("p256dh is not an uncompressed P-256 public key (65 bytes)")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)


def _auth_secret(auth: str | bytes) -> bytes:
    raw = _key_bytes(auth)
    if len(raw) != 16:
        raise ValueError("auth is not a 16-byte authentication secret")
    return raw


def _private_key(key: ec.EllipticCurvePrivateKey | bytes) -> ec.EllipticCurvePrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the private key is not on P-256")
        return key
    if len(key) != 32:
        raise ValueError("a raw private key is 32 bytes")
    return ec.derive_private_key(int.from_bytes(key, "big"), ec.SECP256R1())


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


@dataclass(frozen=True)
class KeySchedule:
    r"""The values RFC 8291 §3.3-3.4 and RFC 8188 §2.2-2.3 derive for one message.

    Attributes:
        as_public: the sender's (application server's) ephemeral public key, 65 bytes.
        ecdh_secret: the P-256 ECDH shared secret.
        prk_key: HKDF-Extract(auth_secret, ecdh_secret).
        key_info: ``"WebPush: info\0" || ua_public || as_public``.
        ikm: HKDF-Expand(prk_key, key_info, 32).
        prk: HKDF-Extract(salt, ikm).
        cek: the content encryption key, HKDF-Expand(prk, "Content-Encoding: aes128gcm\0", 16).
        nonce: HKDF-Expand(prk, "Content-Encoding: nonce\0", 12).
    """

    as_public: bytes
    ecdh_secret: bytes
    prk_key: bytes
    key_info: bytes
    ikm: bytes
    prk: bytes
    cek: bytes
    nonce: bytes


def key_schedule(
    p256dh: str | bytes,
    auth: str | bytes,
    *,
    salt: bytes,
    sender_private_key: ec.EllipticCurvePrivateKey | bytes,
) -> KeySchedule:
    """Derive the keys of one message (HKDF-SHA-256; each expansion is one HMAC block).

    Raises:
        ValueError: a key or the salt is malformed.
    """
    ua_public = _public_key(p256dh)
    secret = _auth_secret(auth)
    if len(salt) != 16:
        raise ValueError("the salt is 16 bytes")
    sender = _private_key(sender_private_key)
    as_public = _uncompressed(sender.public_key())
    ecdh_secret = sender.exchange(ec.ECDH(), ua_public)
    prk_key = _hmac(secret, ecdh_secret)
    key_info = b"WebPush: info\x00" + _uncompressed(ua_public) + as_public
    ikm = _hmac(prk_key, key_info + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    return KeySchedule(as_public, ecdh_secret, prk_key, key_info, ikm, prk, cek, nonce)


def encrypt(
    plaintext: bytes,
    p256dh: str | bytes,
    auth: str | bytes,
    *,
    salt: bytes | None = None,
    sender_private_key: ec.EllipticCurvePrivateKey | bytes | None = None,
    record_size: int = MAX_BODY,
) -> bytes:
    """Encrypt ``plaintext`` for one subscription as one ``aes128gcm`` record (RFC 8291).

    Args:
        plaintext: the message bytes.
        p256dh: the subscription's public key (base64url text, or the 65 raw bytes).
        auth: the subscription's authentication secret (base64url text, or 16 raw bytes).
        salt: 16 bytes; random when not given.
        sender_private_key: the ephemeral P-256 key (a ``cryptography`` key or the raw
            32-byte scalar); a fresh one when not given. Given both, the output is
            deterministic (for test vectors); never reuse them for real messages.
        record_size: the ``rs`` header field; the record (plaintext, delimiter, tag) must fit.

    Returns:
        salt (16) || rs (4, big-endian) || idlen (1) = 65 || sender public key (65) ||
        AES-128-GCM(plaintext || 0x02).

    Raises:
        ValueError: a malformed key, or a plaintext larger than one record.
    """
    if not 18 <= record_size < 2**32:
        raise ValueError("record_size must be between 18 and 2**32 - 1")
    if len(plaintext) + 17 > record_size:
        raise ValueError(f"{len(plaintext)} bytes do not fit one record of {record_size}")
    salt = os.urandom(16) if salt is None else salt
    if sender_private_key is None:
        sender_private_key = ec.generate_private_key(ec.SECP256R1())
    keys = key_schedule(p256dh, auth, salt=salt, sender_private_key=sender_private_key)
    header = salt + record_size.to_bytes(4, "big") + bytes([65]) + keys.as_public
    return header + AESGCM(keys.cek).encrypt(keys.nonce, plaintext + b"\x02", None)


# -- RFC 8292 VAPID -------------------------------------------------------------------------------


def vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: ``(private_key, public_key)``, both base64url.

    The private key (the 32-byte scalar) is the ``vapid_private_key`` setting; the public key
    (the 65-byte uncompressed point) is the ``applicationServerKey`` for
    ``pushManager.subscribe()``. Generate once and keep: subscriptions are bound to it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(scalar), b64url(_uncompressed(key.public_key()))


def load_vapid_key(value: str) -> ec.EllipticCurvePrivateKey:
    r"""A VAPID private key from PEM (``\n`` escapes allowed) or base64url raw 32 bytes.

    Raises:
        ValueError: neither, or not a P-256 key.
    """
    text = value.strip()
    if text.startswith("-----BEGIN"):
        pem = text.replace("\\n", "\n").encode()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the PEM key is not an EC key")
        return _private_key(key)
    return _private_key(b64url_decode(text))


def vapid_token(
    key: ec.EllipticCurvePrivateKey, *, audience: str, subject: str, expires: int
) -> str:
    """The VAPID JWT: ES256 over ``{"typ":"JWT","alg":"ES256"}`` and {aud, exp, sub}."""
    header = b64url(b'{"typ":"JWT","alg":"ES256"}')
    claims = {"aud": audience, "exp": expires, "sub": subject}
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{header}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def origin(endpoint: str) -> str:
    """The ``aud`` of an endpoint: ``scheme://host[:port]`` (RFC 6454), lower case."""
    url = httpx.URL(endpoint)
    host = url.raw_host.decode("ascii").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port is not None else "")


def payload(message: OutboundMessage) -> bytes:
    """The plaintext sent: compact UTF-8 JSON ``{"title", "body", "data"}`` (or the option)."""
    custom = message.provider_options.get("payload")
    if isinstance(custom, bytes):
        return custom
    if isinstance(custom, str):
        return custom.encode()
    if custom is None:
        push = message.push
        custom = {
            "title": push.title if push and push.title else message.subject,
            "body": push.body if push and push.body else message.text,
            "data": push.data if push else {},
        }
    return json.dumps(custom, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


# -- the adapter ----------------------------------------------------------------------------------


class WebPushSettings(ProviderSettings):
    """Settings of :class:`WebPush`.

    Attributes:
        vapid_private_key: the VAPID P-256 private key, PEM or base64url raw (secret).
        vapid_subject: a ``mailto:`` or ``https:`` contact URI sent in every JWT.
        ttl: seconds the push service keeps a message it cannot deliver yet.
        urgency: the ``Urgency`` header (``very-low``, ``low``, ``normal``, ``high``).
    """

    vapid_private_key: SecretStr
    vapid_subject: str
    ttl: int = Field(default=86400, ge=0)
    urgency: Urgency | None = None

    @field_validator("vapid_subject")
    @classmethod
    def _contact(cls, value: str) -> str:
        if not value.startswith(("mailto:", "https://")) or re.search(r"\s", value):
            raise ValueError("must be a mailto: or https: URI")
        return value


class WebPush(Provider):
    """Sends encrypted Web Push messages to browser subscriptions, signed with VAPID.

    Attributes:
        application_server_key: the VAPID public key, base64url (the ``applicationServerKey``).
        now: the clock the VAPID tokens' expiry is computed with (seconds since the epoch).
    """

    name: ClassVar[str] = "webpush"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.PUSH})
    capabilities: ClassVar[Capabilities] = Capabilities()
    Settings: ClassVar[type[ProviderSettings]] = WebPushSettings
    push_kinds: ClassVar[frozenset[str]] = frozenset({"webpush"})
    settings: WebPushSettings
    now: Callable[[], float] = time.time

    def __init__(self, settings: WebPushSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        try:
            self._vapid_key = load_vapid_key(self.settings.vapid_private_key.get_secret_value())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigurationError(
                "invalid settings for WebPush: vapid_private_key is neither a PEM P-256 "
                "private key nor a base64url 32-byte private key"
            ) from None
        self.application_server_key = b64url(_uncompressed(self._vapid_key.public_key()))
        self._tokens: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    # -- VAPID ---------------------------------------------------------------------------------

    def authorization(self, endpoint: str) -> str:
        """The ``Authorization`` header for ``endpoint``: a cached or fresh VAPID JWT."""
        audience = origin(endpoint)
        now = self.now()
        with self._lock:
            cached = self._tokens.get(audience)
        if cached is None or cached[1] - now <= TOKEN_RENEW_BEFORE:
            expires = int(now) + TOKEN_LIFETIME
            token = vapid_token(
                self._vapid_key,
                audience=audience,
                subject=self.settings.vapid_subject,
                expires=expires,
            )
            with self._lock:
                if len(self._tokens) >= _MAX_CACHED_TOKENS:
                    self._tokens.pop(next(iter(self._tokens)))
                self._tokens[audience] = (token, expires)
        else:
            token = cached[0]
        return f"vapid t={token}, k={self.application_server_key}"

    # -- sending -------------------------------------------------------------------------------

    def _refuse(self, text: str, category: ErrorCategory, **extra: Any) -> ProviderError:
        return ProviderError(f"webpush: {text}", category=category, provider=self.name, **extra)

    def _prepare(self, message: OutboundMessage) -> tuple[bytes, dict[str, str]]:
        """The plaintext and the headers other than Authorization; checks everything."""
        target = message.push_target
        if target is None or target.kind != "webpush":
            raise self._refuse(
                "the message has no web push subscription (PushTarget of kind 'webpush')",
                ErrorCategory.INVALID_RECIPIENT,
                reason=Reason.INVALID_RECIPIENT,
            )
        try:
            url = httpx.URL(message.to)
            _public_key(target.keys["p256dh"])
            _auth_secret(target.keys["auth"])
        except (httpx.InvalidURL, ValueError, KeyError) as exc:
            raise self._refuse(
                f"the subscription is malformed: {exc}",
                ErrorCategory.INVALID_RECIPIENT,
                reason=Reason.INVALID_RECIPIENT,
            ) from None
        if url.scheme != "https" or not url.host:
            raise self._refuse(
                "the subscription endpoint is not an https URL",
                ErrorCategory.INVALID_RECIPIENT,
                reason=Reason.INVALID_RECIPIENT,
            )
        options = message.provider_options
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise self._refuse(
                f"unknown provider options {unknown} (known: {sorted(_OPTIONS)})",
                ErrorCategory.CONTENT_REJECTED,
            )
        ttl = options.get("ttl", self.settings.ttl)
        urgency = options.get("urgency", self.settings.urgency)
        topic = options.get("topic")
        collapse_key = options.get("collapse_key")
        custom = options.get("payload")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise self._refuse("ttl must be an int >= 0", ErrorCategory.CONTENT_REJECTED)
        if urgency is not None and urgency not in URGENCIES:
            raise self._refuse(
                f"urgency must be one of {URGENCIES}", ErrorCategory.CONTENT_REJECTED
            )
        if topic is None and isinstance(collapse_key, str) and collapse_key:
            topic = collapse_key
            if not _TOPIC.fullmatch(topic):
                topic = b64url(hashlib.sha256(topic.encode()).digest())[:32]
        elif collapse_key is not None and not (isinstance(collapse_key, str) and collapse_key):
            raise self._refuse(
                "collapse_key must be a non-empty str", ErrorCategory.CONTENT_REJECTED
            )
        if topic is not None and not (isinstance(topic, str) and _TOPIC.fullmatch(topic)):
            raise self._refuse(
                "topic must be 1 to 32 characters of the base64url alphabet (RFC 8030 §5.4)",
                ErrorCategory.CONTENT_REJECTED,
            )
        if custom is not None and not isinstance(custom, (dict, list, str, bytes)):
            raise self._refuse(
                "payload must be a dict, list, str or bytes", ErrorCategory.CONTENT_REJECTED
            )
        try:
            plaintext = payload(message)
        except (TypeError, ValueError) as exc:
            raise self._refuse(
                f"the payload is not JSON-serialisable: {exc}", ErrorCategory.CONTENT_REJECTED
            ) from None
        if len(plaintext) > MAX_PLAINTEXT:
            raise self._refuse(
                f"the payload is {len(plaintext)} bytes; web push takes at most {MAX_PLAINTEXT} "
                f"(a {MAX_BODY}-byte encrypted body)",
                ErrorCategory.PAYLOAD_TOO_LARGE,
            )
        headers = {
            "TTL": str(ttl),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        if urgency is not None:
            headers["Urgency"] = urgency
        if topic is not None:
            headers["Topic"] = topic
        return plaintext, headers

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a missing or malformed subscription, bad options, a payload too large."""
        super().check_supported(message)
        self._prepare(message)

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The encrypted POST to the subscription's endpoint, with a VAPID authorization."""
        plaintext, headers = self._prepare(message)
        keys = message.push_target.keys if message.push_target else {}
        body = encrypt(plaintext, keys["p256dh"], keys["auth"])
        headers["Authorization"] = self.authorization(message.to)
        return httpx.Request("POST", message.to, headers=headers, content=body)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for 2xx (id: the ``Location`` header); otherwise a ProviderError."""
        if response.is_success:
            ttl = response.headers.get("ttl", "")
            raw = {
                "status": response.status_code,
                "ttl": int(ttl) if ttl.isascii() and ttl.isdigit() else None,
                "body": response_body(response) if response.content else None,
            }
            return Receipt(provider_message_id=response.headers.get("location") or None, raw=raw)
        status = response.status_code
        body = response_body(response)
        code = None
        if isinstance(body, dict):
            found = body.get("errno", body.get("reason"))
            code = str(found) if isinstance(found, (int, str)) and found != "" else None
        description = _DESCRIPTIONS.get(status)
        error = error_from_response(
            response,
            self.name,
            message=f"webpush: {description} (HTTP {status})" if description else None,
            category=ERROR_CODES.get(status),
            code=code,
        )
        if status in REASONS:
            error.reason = REASONS[status]
        error.contact_invalid = status in CONTACT_INVALID_STATUSES
        raise error
