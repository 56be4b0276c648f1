"""The push-service side of Web Push: subscriptions, VAPID checks and RFC 8291 decryption.

A :class:`Subscription` is what a browser would make: a P-256 key pair and an auth secret,
with an endpoint on the sandbox. :func:`check_vapid` checks a request's ``Authorization:
vapid t=..., k=...`` (RFC 8292) and :func:`decrypt` opens its ``aes128gcm`` body (RFC 8291,
RFC 8188) with the subscription's private key, as a push service and browser would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anysend._models import PushTarget

__all__ = ["PushRefused", "Subscription", "check_vapid", "decrypt"]


class PushRefused(Exception):
    """A push request the service refuses: the HTTP status, autopush's errno, the text."""

    def __init__(self, status: int, errno: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.errno = errno
        self.text = text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    text = text.strip().rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass
class Subscription:
    """A browser's push subscription, made by the sandbox (it keeps the private key).

    Attributes:
        name: the name given (``"ann-laptop"``).
        endpoint: the push endpoint (an ``https`` URL on the sandbox's host).
        key: the subscription's P-256 private key.
        auth: the 16-byte authentication secret.
        server_key: the VAPID public key the subscription is bound to, if any (base64url).
        gone: unsubscribed: pushes are answered ``410 Gone``.
    """

    name: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    server_key: str | None = None
    gone: bool = False

    def keys(self) -> dict[str, str]:
        """The ``p256dh`` and ``auth`` keys, base64url, as ``PushSubscription.toJSON()``."""
        return {"p256dh": _b64(_point(self.key.public_key())), "auth": _b64(self.auth)}

    def target(self) -> PushTarget:
        """The subscription as an anysend push target."""
        return PushTarget(kind="webpush", token=self.endpoint, keys=self.keys())

    def to_json(self) -> dict[str, object]:
        """``PushSubscription.toJSON()``: endpoint, expirationTime and keys."""
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": self.keys()}


def _origin(endpoint: str) -> str:
    scheme, _, rest = endpoint.partition("://")
    host = rest.split("/", 1)[0].lower()
    return f"{scheme.lower()}://{host}"


def check_vapid(authorization: str | None, subscription: Subscription, now: float) -> str:
    """Check a VAPID ``Authorization`` header for ``subscription``; returns the ``sub`` claim.

    Raises:
        PushRefused: 401 without VAPID, 403 for a bad signature, audience, expiry or a key
            the subscription is not bound to.
    """
    if not authorization or not authorization.lower().startswith("vapid "):
        raise PushRefused(401, 109, "Missing or invalid VAPID authorization")
    params: dict[str, str] = {}
    for part in authorization[6:].split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip().lower()] = value.strip()
    token, public = params.get("t", ""), params.get("k", "")
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        raw_key = _unb64(public)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except (ValueError, TypeError):
        raise PushRefused(401, 109, "The VAPID header cannot be read") from None
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise PushRefused(401, 109, "VAPID tokens are ES256 JWTs")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PushRefused(403, 109, "The VAPID signature does not match the key") from None
    if claims.get("aud") != _origin(subscription.endpoint):
        raise PushRefused(403, 109, "The VAPID aud is not the push service's origin")
    expires = claims.get("exp")
    if not isinstance(expires, int) or not now < expires <= now + 24 * 3600:
        raise PushRefused(403, 109, "The VAPID token has expired or lives over 24 hours")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.startswith(("mailto:", "https:")):
        raise PushRefused(403, 109, "The VAPID sub is not a mailto: or https: contact")
    if subscription.server_key is not None and _b64(raw_key) != subscription.server_key:
        raise PushRefused(403, 109, "The subscription belongs to another VAPID key")
    return subject


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def decrypt(body: bytes, subscription: Subscription) -> bytes:
    """Open one ``aes128gcm`` record sent to ``subscription`` (RFC 8291 section 3.4).

    Raises:
        PushRefused: 400 when the body is not a record this subscription can open.
    """
    if len(body) < 86 + 17:
        raise PushRefused(400, 110, "The body is too short for an aes128gcm record")
    salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    if id_length != 65 or len(body) - 86 > record_size:
        raise PushRefused(400, 110, "The aes128gcm header is not a Web Push header")
    sender_public, ciphertext = body[21:86], body[86:]
    try:
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    except ValueError:
        raise PushRefused(400, 110, "The sender key is not a P-256 point") from None
    ua_public = _point(subscription.key.public_key())
    secret = subscription.key.exchange(ec.ECDH(), sender)
    prk_key = _hmac(subscription.auth, secret)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + ua_public + sender_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    try:
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    except InvalidTag:
        raise PushRefused(400, 110, "The record does not decrypt with this subscription") from None
    stripped = padded.rstrip(b"\x00")
    if not stripped.endswith(b"\x02"):
        raise PushRefused(400, 110, "The record has no last-record delimiter")
    return stripped[:-1]
