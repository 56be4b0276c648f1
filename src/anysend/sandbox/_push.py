"""FCM HTTP v1 (with Google's OAuth token exchange) and a Web Push service, in the sandbox.

FCM: ``POST /token`` takes the service account's RS256 JWT assertion, checks its signature
with the sandbox's own key, its issuer, audience, scope and times, and hands out an access
token; ``POST /v1/projects/{project}/messages:send`` takes it as a bearer token.

Web Push: ``POST /push/{subscription}`` checks the VAPID JWT and opens the ``aes128gcm``
body with the subscription's private key, as a browser would.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from anysend.sandbox._api import ProviderAPI, Refusal, json_response
from anysend.sandbox._state import SandboxMessage
from anysend.sandbox._webpush import PushRefused, check_vapid, decrypt

__all__ = ["FCMAPI", "WebPushAPI"]

_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
#: FCM's answer per failure: HTTP status, canonical status, FcmError code, message.
FCM_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "invalid_number": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "unsubscribed": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "bounce": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "rate_limited": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "auth": (
        401,
        "UNAUTHENTICATED",
        None,
        "Request had invalid authentication credentials. Expected OAuth 2 access token.",
    ),
    "outside_window": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid message."),
}


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _google_error(status: int, canonical: str, code: str | None, text: str) -> web.Response:
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append({"@type": _FCM_ERROR, "errorCode": code})
    if "registration token" in text:
        details.append(
            {
                "@type": _BAD_REQUEST,
                "fieldViolations": [{"field": "message.token", "description": text}],
            }
        )
    body = {"error": {"code": status, "message": text, "status": canonical, "details": details}}
    headers = {"Retry-After": "1"} if status == 429 else None
    return json_response(body, status, headers)


def _oauth_error(code: str, description: str) -> web.Response:
    return json_response({"error": code, "error_description": description}, 400)


class FCMAPI(ProviderAPI):
    """The token endpoint and ``messages:send``."""

    name: ClassVar[str] = "fcm"
    asynchronous: ClassVar[frozenset[str]] = frozenset()  # FCM answers at once

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self._tokens: dict[str, float] = {}

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """``token`` or ``v1/projects/{project}/messages:send``."""
        if request.method != "POST":
            return _google_error(404, "NOT_FOUND", None, "Not found.")
        if path == "token":
            return await self._token(request)
        from anysend.sandbox._keys import FCM_PROJECT

        if path != f"v1/projects/{FCM_PROJECT}/messages:send":
            if path.startswith("v1/projects/") and path.endswith("/messages:send"):
                return _google_error(
                    403, "PERMISSION_DENIED", None, "Permission denied on the project."
                )
            return _google_error(404, "NOT_FOUND", None, "Requested entity was not found.")
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if self._tokens.get(token, 0.0) <= self.engine.epoch():
            return self.refusal("auth", "")
        try:
            data = json.loads(await request.read())
            fields = data["message"]
            device = str(fields["token"])
        except (ValueError, KeyError, TypeError):
            return _google_error(
                400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received."
            )
        try:
            self.check_failure(device)
        except Refusal as refusal:
            return refusal.response
        number = self.engine.ids.randrange(10**15, 10**16)
        name = f"projects/{FCM_PROJECT}/messages/0:{number}%{self.engine.hex(16)}"
        if data.get("validate_only"):
            return json_response({"name": f"projects/{FCM_PROJECT}/messages/fake_message_id"})
        notification = fields.get("notification") or {}
        message = SandboxMessage(
            id=name,
            provider=self.name,
            channel="push",
            direction="outbound",
            to=device,
            sender=FCM_PROJECT,
            person=device,
            created_at=self.engine.now(),
            title=notification.get("title"),
            text=notification.get("body"),
            data={"data": fields.get("data") or {}},
        )
        self.engine.accept(self, message, None)
        return json_response({"name": name})

    async def _token(self, request: web.Request) -> web.Response:
        """Google's OAuth 2.0 token endpoint for a service account's JWT assertion."""
        from anysend.sandbox._keys import SCOPE

        creds = self.engine.credentials
        form = parse_qs((await request.read()).decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", [""])[0]
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_unb64(header_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(signature_b64)
        except ValueError:
            return _oauth_error("invalid_grant", "Invalid JWT: cannot be decoded.")
        if header.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "Invalid JWT: alg must be RS256.")
        try:
            creds.fcm_key.public_key().verify(
                signature,
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        now = self.engine.epoch()
        if claims.get("iss") != creds.client_email:
            return _oauth_error("invalid_grant", "Invalid JWT: unknown issuer.")
        if claims.get("aud") != creds.token_uri:
            return _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token "
                "(60 minutes) and in a reasonable timeframe. Check your aud.",
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "The firebase.messaging scope is missing.")
        issued, expires = claims.get("iat"), claims.get("exp")
        if not (
            isinstance(issued, int)
            and isinstance(expires, int)
            and issued - 300 <= now < expires
            and expires - issued <= 3600
        ):
            return _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        token = "ya29.sandbox-" + self.engine.hex(48)
        self._tokens[token] = now + 3599
        return json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def refusal(self, kind: str, address: str) -> web.Response:
        """FCM's ``google.rpc.Status`` error for ``kind``."""
        status, canonical, code, text = FCM_ERRORS.get(kind, FCM_ERRORS["invalid_number"])
        return _google_error(status, canonical, code, text)


#: The push service's answer per failure: HTTP status, autopush errno, text.
WEBPUSH_ERRORS: dict[str, tuple[int, int, str]] = {
    "invalid_number": (404, 102, "Not Found: invalid URL endpoint"),
    "unsubscribed": (410, 106, "Gone: the subscription is no longer valid"),
    "bounce": (410, 106, "Gone: the subscription is no longer valid"),
    "rate_limited": (429, 999, "Too Many Requests"),
    "unavailable": (503, 201, "Service Unavailable"),
    "auth": (403, 109, "Forbidden: VAPID authorization failed"),
    "outside_window": (400, 110, "Bad Request"),
}


def _push_error(status: int, errno: int, text: str) -> web.Response:
    body = {
        "code": status,
        "errno": errno,
        "error": text.split(":")[0],
        "message": text,
        "more_info": "http://autopush.readthedocs.io/en/latest/http.html#error-codes",
    }
    headers = {"Retry-After": "1"} if status == 429 else None
    return json_response(body, status, headers)


class WebPushAPI(ProviderAPI):
    """A push service: ``POST /push/{subscription}`` answers ``201`` with a ``Location``."""

    name: ClassVar[str] = "webpush"
    asynchronous: ClassVar[frozenset[str]] = frozenset()  # push services answer at once

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Check VAPID, decrypt the message, keep it."""
        kind, _, name = path.partition("/")
        subscription = self.engine.subscriptions.get(name) if kind == "push" else None
        if request.method != "POST" or subscription is None:
            return self.refusal("invalid_number", "")
        if subscription.gone:
            return self.refusal("unsubscribed", subscription.endpoint)
        body = await request.read()
        try:
            if not request.headers.get("TTL", "").isdigit():
                raise PushRefused(400, 111, "Bad Request: the TTL header is missing")
            if request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
                raise PushRefused(400, 110, "Bad Request: Content-Encoding must be aes128gcm")
            if len(body) > 4096:
                raise PushRefused(413, 104, "Payload Too Large")
            check_vapid(request.headers.get("Authorization"), subscription, self.engine.epoch())
            failure = self.check_failure(subscription.endpoint)
            plaintext = decrypt(body, subscription)
        except PushRefused as refused:
            return _push_error(refused.status, refused.errno, refused.text)
        except Refusal as refusal:
            return refusal.response
        del failure
        try:
            content = json.loads(plaintext)
        except ValueError:
            content = {"body": plaintext.decode("utf-8", "replace")}
        if not isinstance(content, dict):
            content = {"body": json.dumps(content)}
        message_id = self.engine.hex(32)
        message = SandboxMessage(
            id=message_id,
            provider=self.name,
            channel="push",
            direction="outbound",
            to=subscription.endpoint,
            sender=None,
            person=subscription.endpoint,
            created_at=self.engine.now(),
            title=_str(content.get("title")),
            text=_str(content.get("body")),
            data={"data": content.get("data") or {}, "subscription": subscription.name},
        )
        self.engine.accept(self, message, None)
        location = f"{self.engine.credentials.base}/webpush/m/{message_id}"
        return web.Response(
            status=201, headers={"Location": location, "TTL": request.headers["TTL"]}
        )

    def refusal(self, kind: str, address: str) -> web.Response:
        """The push service's error for ``kind``."""
        status, errno, text = WEBPUSH_ERRORS.get(kind, WEBPUSH_ERRORS["invalid_number"])
        return _push_error(status, errno, text)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
