"""Twilio's Messages API, the WhatsApp Cloud API and the Telegram Bot API, in the sandbox.

Each checks the credentials the real API checks (Basic auth with the account SID and auth
token, the Graph bearer token, the bot token in the path), answers with the provider's own
ids and bodies, and acts out scripted failures in the provider's error shape.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from email.utils import format_datetime
from typing import Any, ClassVar

from aiohttp import web

from anysend.sandbox import _callbacks as callbacks
from anysend.sandbox._api import ProviderAPI, Refusal, json_response
from anysend.sandbox._callbacks import Callback
from anysend.sandbox._state import SandboxMessage
from anysend.sms import segments

__all__ = ["TelegramAPI", "TwilioAPI", "WhatsAppAPI"]

_MESSAGES = re.compile(r"2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json")


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# -- Twilio -------------------------------------------------------------------------------------

#: Twilio's answer per failure: HTTP status, error code, message.
TWILIO_ERRORS: dict[str, tuple[int, int, str]] = {
    "invalid_number": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "unsubscribed": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "rate_limited": (429, 20429, "Too Many Requests"),
    "unavailable": (503, 20503, "Service Unavailable"),
    "auth": (401, 20003, "Authenticate"),
    "outside_window": (
        400,
        63016,
        "Failed to send freeform message because you are outside the allowed window.",
    ),
}
#: Twilio's test numbers that always fail (https://www.twilio.com/docs/iam/test-credentials).
TWILIO_MAGIC = {
    "+15005550001": "invalid_number",
    "+15005550004": "unsubscribed",
    "+15005550009": "invalid_number",
}


def _twilio_error(status: int, code: int, text: str) -> web.Response:
    body = {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"Retry-After": "1"} if status == 429 else None
    return json_response(body, status, headers)


class TwilioAPI(ProviderAPI):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` (SMS and WhatsApp)."""

    name: ClassVar[str] = "twilio"
    asynchronous: ClassVar[frozenset[str]] = frozenset({"bounce", "outside_window"})
    read_status: ClassVar[str | None] = "read"

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Create a Message resource (``201``), or Twilio's error."""
        found = _MESSAGES.fullmatch(path)
        if request.method != "POST" or found is None:
            return _twilio_error(404, 20404, f"The requested resource /{path} was not found")
        creds = self.engine.credentials
        if (
            not _basic(request, creds.twilio_sid, creds.twilio_token)
            or found[1] != creds.twilio_sid
        ):
            return _twilio_error(401, 20003, "Authenticate")
        form = await request.post()
        to = str(form.get("To") or "")
        sender = str(form.get("From") or form.get("MessagingServiceSid") or "")
        body = form.get("Body")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if body is None and not form.get("ContentSid") and not form.get("MediaUrl"):
            return _twilio_error(400, 21602, "Message body is required.")
        whatsapp = to.startswith("whatsapp:")
        plain_to = to.removeprefix("whatsapp:")
        if plain_to in TWILIO_MAGIC and self.engine.inbox.person_of(plain_to) == plain_to:
            kind = TWILIO_MAGIC[plain_to]
            return self.refusal(kind, plain_to)
        try:
            failure = self.check_failure(plain_to)
        except Refusal as refusal:
            return refusal.response
        template = str(form.get("ContentSid") or "")
        text = str(body) if body is not None else f"[content template {template}]"
        parts = segments(text)
        sid = "SM" + self.engine.hex(32)
        now = self.engine.now()
        message = SandboxMessage(
            id=sid,
            provider=self.name,
            channel="whatsapp" if whatsapp else "sms",
            direction="outbound",
            to=plain_to,
            sender=sender.removeprefix("whatsapp:"),
            person=plain_to,
            created_at=now,
            text=text,
            segments=None if whatsapp else parts.count,
            encoding=None if whatsapp else parts.encoding,
            data={"status_callback": form.get("StatusCallback") or None},
        )
        self.engine.accept(self, message, failure)
        stamp = format_datetime(now, usegmt=True)
        uri = f"/2010-04-01/Accounts/{creds.twilio_sid}/Messages/{sid}"
        return json_response(
            {
                "account_sid": creds.twilio_sid,
                "api_version": "2010-04-01",
                "body": text,
                "date_created": stamp,
                "date_sent": None,
                "date_updated": stamp,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender,
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": str(parts.count),
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {"media": f"{uri}/Media.json"},
                "to": to,
                "uri": f"{uri}.json",
            },
            201,
        )

    def refusal(self, kind: str, address: str) -> web.Response:
        """Twilio's error body for ``kind``."""
        status, code, text = TWILIO_ERRORS.get(kind, TWILIO_ERRORS["invalid_number"])
        return _twilio_error(status, code, text.format(to=address))

    def can_read(self, message: SandboxMessage) -> bool:
        """Only WhatsApp messages are read (SMS has no read receipts)."""
        return message.channel == "whatsapp"

    def delivered(self, message: SandboxMessage) -> Callback | None:
        """``MessageStatus=delivered``."""
        return callbacks.twilio_status(self.engine.credentials, message, "delivered")

    def read(self, message: SandboxMessage) -> Callback | None:
        """``MessageStatus=read`` (WhatsApp)."""
        return callbacks.twilio_status(self.engine.credentials, message, "read")

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """``undelivered`` with 30005 (unknown handset), or 63016 outside the window."""
        code, status = (63016, "failed") if kind == "outside_window" else (30005, "undelivered")
        callback = callbacks.twilio_status(self.engine.credentials, message, status, code)
        text = f"Twilio error {code}"
        return ("failed" if status == "failed" else "undeliverable"), text, callback

    def reply(
        self, message: SandboxMessage, replied_to: SandboxMessage | None, name: str
    ) -> Callback | None:
        """An incoming SMS (or WhatsApp) webhook."""
        message.id = "SM" + self.engine.hex(32)
        return callbacks.twilio_inbound(self.engine.credentials, message, replied_to)


def _basic(request: web.Request, user: str, secret: str) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:]).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return _equal(given, f"{user}:{secret}")


# -- WhatsApp Cloud API -------------------------------------------------------------------------

#: Meta's answer per failure: HTTP status, code, title, details.
WHATSAPP_ERRORS: dict[str, tuple[int, int, str, str]] = {
    "invalid_number": (
        400,
        131026,
        "Message Undeliverable.",
        "The recipient phone number is not a WhatsApp phone number.",
    ),
    "unsubscribed": (
        400,
        131050,
        "Unable to deliver the message. This recipient has chosen to stop receiving "
        "marketing messages on WhatsApp from your business.",
        "The user stopped marketing messages.",
    ),
    "rate_limited": (400, 130429, "Rate limit hit", "Cloud API message throughput reached."),
    "unavailable": (503, 131016, "Service unavailable", "A service is temporarily unavailable."),
    "auth": (401, 190, "Invalid OAuth access token - Cannot parse access token", ""),
    "outside_window": (
        400,
        131047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
}


def _graph_error(status: int, code: int, title: str, details: str, rng_hex: str) -> web.Response:
    error: dict[str, Any] = {
        "message": f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": rng_hex,
    }
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if status >= 500:
        error["is_transient"] = True
    return json_response({"error": error}, status)


class WhatsAppAPI(ProviderAPI):
    """``POST /{version}/{phone_number_id}/messages`` and ``/media``."""

    name: ClassVar[str] = "whatsapp"
    read_status: ClassVar[str | None] = "read"

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Send a message (or take an upload), or answer a Graph error."""
        creds = self.engine.credentials
        parts = path.split("/")
        if (
            request.method != "POST"
            or len(parts) != 3
            or not re.fullmatch(r"v[0-9]+\.[0-9]+", parts[0])
            or parts[2] not in ("messages", "media")
        ):
            return _graph_error(400, 100, "Unsupported post request.", "", self.engine.hex(12))
        header = request.headers.get("Authorization", "")
        if not _equal(header, f"Bearer {creds.whatsapp_token}"):
            return self.refusal("auth", "")
        if parts[1] != creds.whatsapp_phone_id:
            return _graph_error(
                400, 100, "Invalid parameter", "Unknown phone number id.", self.engine.hex(12)
            )
        if parts[2] == "media":
            await request.read()
            return json_response({"id": str(self.engine.ids.randrange(10**15, 10**16))})
        try:
            data = json.loads(await request.read())
        except ValueError:
            return _graph_error(
                400, 100, "Invalid parameter", "Body is not JSON.", self.engine.hex(12)
            )
        to = str(data.get("to") or "") if isinstance(data, dict) else ""
        kind = data.get("type", "text") if isinstance(data, dict) else None
        if not to or kind not in ("text", "template", "image", "video", "audio", "document"):
            return _graph_error(
                400,
                131008,
                "Required parameter is missing",
                "to and type are required.",
                self.engine.hex(12),
            )
        address = "+" + to.removeprefix("+")
        try:
            failure = self.check_failure(address)
        except Refusal as refusal:
            return refusal.response
        wamid = "wamid.HBgL" + base64.b64encode(self.engine.hex(40).encode()).decode()[:48]
        message = SandboxMessage(
            id=wamid,
            provider=self.name,
            channel="whatsapp",
            direction="outbound",
            to=address,
            sender="+" + callbacks._metadata(creds)["display_phone_number"],
            person=address,
            created_at=self.engine.now(),
            text=_whatsapp_text(data),
            data={"biz_opaque_callback_data": data.get("biz_opaque_callback_data")},
        )
        self.engine.accept(self, message, failure)
        answer: dict[str, Any] = {"id": wamid}
        if kind == "template":
            answer["message_status"] = "accepted"
        return json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.removeprefix("+")}],
                "messages": [answer],
            }
        )

    def refusal(self, kind: str, address: str) -> web.Response:
        """The Graph error for ``kind``."""
        status, code, title, details = WHATSAPP_ERRORS.get(kind, WHATSAPP_ERRORS["invalid_number"])
        return _graph_error(status, code, title, details, self.engine.hex(12))

    def delivered(self, message: SandboxMessage) -> Callback | None:
        """A ``delivered`` status."""
        return callbacks.whatsapp_status(
            self.engine.credentials, message, "delivered", self.engine.now()
        )

    def read(self, message: SandboxMessage) -> Callback | None:
        """A ``read`` status."""
        return callbacks.whatsapp_status(
            self.engine.credentials, message, "read", self.engine.now()
        )

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """A ``failed`` status with error 131026 (not on WhatsApp)."""
        _, code, title, details = WHATSAPP_ERRORS["invalid_number"]
        callback = callbacks.whatsapp_status(
            self.engine.credentials, message, "failed", self.engine.now(), (code, title, details)
        )
        return "undeliverable", f"({code}) {title}", callback

    def reply(
        self, message: SandboxMessage, replied_to: SandboxMessage | None, name: str
    ) -> Callback | None:
        """A ``messages`` webhook with the user's text."""
        message.id = "wamid.HBgL" + base64.b64encode(self.engine.hex(40).encode()).decode()[:48]
        return callbacks.whatsapp_inbound(
            self.engine.credentials, message, replied_to, self.engine.now(), name
        )


def _whatsapp_text(data: dict[str, Any]) -> str | None:
    kind = data.get("type", "text")
    found = data.get(kind)
    body: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "text":
        text = body.get("body")
        return text if isinstance(text, str) else None
    if kind == "template":
        language = body.get("language", {}).get("code", "")
        values = [
            str(p.get("text", ""))
            for c in body.get("components", []) or []
            for p in c.get("parameters", []) or []
            if isinstance(p, dict)
        ]
        return f"[template {body.get('name')} ({language})] " + ", ".join(values)
    caption = body.get("caption")
    return f"[{kind}] {caption}" if caption else f"[{kind}]"


# -- Telegram Bot API ---------------------------------------------------------------------------

#: Telegram's answer per failure: HTTP status (= error_code) and description.
TELEGRAM_ERRORS: dict[str, tuple[int, str]] = {
    "invalid_number": (400, "Bad Request: chat not found"),
    "unsubscribed": (403, "Forbidden: bot was blocked by the user"),
    "bounce": (403, "Forbidden: user is deactivated"),
    "rate_limited": (429, "Too Many Requests: retry after 3"),
    "unavailable": (502, "Bad Gateway"),
    "auth": (401, "Unauthorized"),
    "outside_window": (403, "Forbidden: bot can't initiate conversation with a user"),
}


def _telegram_error(status: int, description: str) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if status == 429:
        body["parameters"] = {"retry_after": 3}
    return json_response(body, status)


class TelegramAPI(ProviderAPI):
    """``POST /bot{token}/sendMessage`` (and ``sendDocument``, ``sendPhoto``)."""

    name: ClassVar[str] = "telegram"
    asynchronous: ClassVar[frozenset[str]] = frozenset()  # the Bot API answers at once

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self._message_ids: dict[str, int] = {}
        self._update_id = 100000000

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Post the message to the chat, or Telegram's error."""
        token, _, method = path.partition("/")
        if not _equal(token, "bot" + self.engine.credentials.telegram_token):
            return _telegram_error(401, "Unauthorized")
        if method not in ("sendMessage", "sendDocument", "sendPhoto"):
            return _telegram_error(404, "Not Found: method not found")
        if request.content_type == "application/json":
            try:
                data = json.loads(await request.read())
            except ValueError:
                return _telegram_error(400, "Bad Request: can't parse JSON")
            if not isinstance(data, dict):
                return _telegram_error(400, "Bad Request: the body is not an object")
        else:
            form = await request.post()
            data = {k: v for k, v in form.items() if isinstance(v, str)}
            data["_file"] = next(
                (v.filename for v in form.values() if hasattr(v, "filename")), None
            )
        chat_id = str(data.get("chat_id", ""))
        text = data.get("text", data.get("caption"))
        if not chat_id:
            return _telegram_error(400, "Bad Request: chat_id is empty")
        if method == "sendMessage" and not text:
            return _telegram_error(400, "Bad Request: message text is empty")
        try:
            self.check_failure(chat_id)
        except Refusal as refusal:
            return refusal.response
        number = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = number
        now = self.engine.now()
        shown = str(text) if text else ""
        if method != "sendMessage":
            shown = f"[{data.get('_file') or 'file'}] {shown}".strip()
        message = SandboxMessage(
            id=f"{chat_id}:{number}",
            provider=self.name,
            channel="telegram",
            direction="outbound",
            to=chat_id,
            sender="@" + _bot_username(),
            person=chat_id,
            created_at=now,
            text=shown,
        )
        self.engine.accept(self, message, None)
        bot_id = self.engine.credentials.telegram_bot_id
        chat: dict[str, Any] = {"id": int(chat_id) if _int(chat_id) else chat_id, "type": "private"}
        result: dict[str, Any] = {
            "message_id": number,
            "from": {
                "id": bot_id,
                "is_bot": True,
                "first_name": "anysend sandbox",
                "username": _bot_username(),
            },
            "chat": chat,
            "date": int(now.timestamp()),
        }
        result["text" if method == "sendMessage" else "caption"] = text or ""
        return json_response({"ok": True, "result": result})

    def refusal(self, kind: str, address: str) -> web.Response:
        """Telegram's error for ``kind``."""
        status, description = TELEGRAM_ERRORS.get(kind, TELEGRAM_ERRORS["invalid_number"])
        return _telegram_error(status, description)

    def reply(
        self, message: SandboxMessage, replied_to: SandboxMessage | None, name: str
    ) -> Callback | None:
        """An Update with the user's message."""
        chat_id = message.sender or ""
        number = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = number
        self._update_id += 1
        message.id = f"{chat_id}:{number}"
        return callbacks.telegram_update(
            self.engine.credentials,
            message,
            replied_to,
            self._update_id,
            number,
            self.engine.now(),
            name,
        )


def _bot_username() -> str:
    from anysend.sandbox._keys import BOT_USERNAME

    return BOT_USERNAME


def _int(value: str) -> bool:
    return bool(re.fullmatch(r"-?[0-9]+", value))
