"""The callbacks the sandbox posts, signed as each provider signs them.

Status webhooks and inbound messages: each builder returns a :class:`Callback` (URL,
headers, body) in the provider's documented shape, signed with the adapters' own ``sign``
helpers: Twilio's ``X-Twilio-Signature`` (HMAC-SHA1 over the URL and sorted form fields),
SendGrid's Signed Event Webhook (ECDSA P-256 over the timestamp and body), Mailgun's
HMAC-SHA256 of timestamp and token, Meta's ``X-Hub-Signature-256`` and Telegram's
secret-token header.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from anysend.providers import _meta
from anysend.providers import mailgun as mailgun_adapter
from anysend.providers import sendgrid as sendgrid_adapter
from anysend.providers import twilio as twilio_adapter
from anysend.providers.telegram import SECRET_HEADER

if TYPE_CHECKING:
    from anysend.sandbox._keys import Credentials
    from anysend.sandbox._state import SandboxMessage

__all__ = [
    "Callback",
    "mailgun_event",
    "mailgun_inbound",
    "sendgrid_event",
    "telegram_update",
    "twilio_inbound",
    "twilio_status",
    "whatsapp_inbound",
    "whatsapp_status",
]


@dataclass(frozen=True)
class Callback:
    """One HTTP POST to make: where, with which headers and body.

    Attributes:
        provider: the provider it comes from (a :class:`~anysend.sandbox.ProviderAPI` name).
        url: where to post it (usually ``api.callback_url()``).
        headers: the headers, the signature among them.
        body: the exact body (what the signature covers).
        message_id: the provider's id of the message it is about.
        event: what it reports (``delivered``, ``read``, ...), for ``sandbox.callbacks()``.
    """

    provider: str
    url: str
    headers: dict[str, str]
    body: bytes
    message_id: str
    event: str


def _hook(credentials: Credentials, provider: str) -> str | None:
    if credentials.webhook_url is None:
        return None
    return f"{credentials.webhook_url.rstrip('/')}/{provider}"


def _unix(when: datetime) -> int:
    return int(when.timestamp())


def _hex(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(size))


# -- Twilio -------------------------------------------------------------------------------------


def _twilio_post(
    credentials: Credentials, url: str, fields: list[tuple[str, str]], message_id: str, event: str
) -> Callback:
    signature = twilio_adapter.sign(url, fields, credentials.twilio_token)
    return Callback(
        provider="twilio",
        url=url,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            twilio_adapter.SIGNATURE_HEADER: signature,
            "User-Agent": "TwilioProxy/1.1",
        },
        body=urlencode(fields).encode(),
        message_id=message_id,
        event=event,
    )


def _twilio_address(message: SandboxMessage, address: str) -> str:
    return f"whatsapp:{address}" if message.channel == "whatsapp" else address


def twilio_status(
    credentials: Credentials, message: SandboxMessage, status: str, error_code: int | None = None
) -> Callback | None:
    """A status callback (``MessageStatus``) to the message's ``StatusCallback`` URL."""
    url = message.data.get("status_callback") or _hook(credentials, "twilio")
    if not url:
        return None
    fields = [
        ("SmsSid", message.id),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", _twilio_address(message, message.to)),
        ("MessageSid", message.id),
        ("AccountSid", credentials.twilio_sid),
        ("From", _twilio_address(message, message.sender or "")),
        ("ApiVersion", "2010-04-01"),
    ]
    if message.channel == "whatsapp":
        fields.append(("ChannelPrefix", "whatsapp"))
    if error_code is not None:
        fields.append(("ErrorCode", str(error_code)))
    return _twilio_post(credentials, url, fields, message.id, status)


def twilio_inbound(
    credentials: Credentials, message: SandboxMessage, replied_to: SandboxMessage | None
) -> Callback | None:
    """An incoming-message webhook (``SmsStatus=received``) to ``{webhook_url}/twilio``."""
    url = _hook(credentials, "twilio")
    if url is None:
        return None
    fields = [
        ("ToCountry", "US"),
        ("SmsMessageSid", message.id),
        ("NumMedia", "0"),
        ("SmsSid", message.id),
        ("SmsStatus", "received"),
        ("Body", message.text or ""),
        ("To", _twilio_address(message, message.to)),
        ("NumSegments", str(message.segments or 1)),
        ("MessageSid", message.id),
        ("AccountSid", credentials.twilio_sid),
        ("From", _twilio_address(message, message.sender or "")),
        ("ApiVersion", "2010-04-01"),
    ]
    if message.channel == "whatsapp":
        fields.append(("ChannelPrefix", "whatsapp"))
        if replied_to is not None:
            fields.append(("OriginalRepliedMessageSid", replied_to.id))
    return _twilio_post(credentials, url, fields, message.id, "received")


# -- SendGrid -----------------------------------------------------------------------------------


def sendgrid_event(
    credentials: Credentials,
    message: SandboxMessage,
    event: str,
    when: datetime,
    rng: random.Random,
    extra: dict[str, Any] | None = None,
) -> Callback | None:
    """One Event Webhook POST (a JSON array with one event), signed with the sandbox's key."""
    url = _hook(credentials, "sendgrid")
    if url is None:
        return None
    x_message_id = str(message.data.get("x_message_id", message.id))
    item: dict[str, Any] = {
        "email": message.to,
        "timestamp": _unix(when),
        "smtp-id": f"<{x_message_id}@geopod-ismtpd-sandbox>",
        "event": event,
        "category": list(message.data.get("categories", [])),
        "sg_event_id": _hex(rng, 22),
        "sg_message_id": f"{x_message_id}.filterdrecv-sandbox-1-{_hex(rng, 8).upper()}-0",
    }
    item.update(message.data.get("custom_args", {}))
    if event == "delivered":
        item["response"] = "250 2.0.0 OK sandbox"
    if event == "open":
        item["useragent"] = "Mozilla/5.0 (sandbox)"
        item["ip"] = "127.0.0.1"
    item.update(extra or {})
    body = json.dumps([item], separators=(",", ":")).encode()
    stamp = str(_unix(when))
    signature = sendgrid_adapter.sign(body, stamp, credentials.sendgrid_signer)
    return Callback(
        provider="sendgrid",
        url=url,
        headers={
            "Content-Type": "application/json",
            sendgrid_adapter.SIGNATURE_HEADER: signature,
            sendgrid_adapter.TIMESTAMP_HEADER: stamp,
            "User-Agent": "SendGrid Event API",
        },
        body=body,
        message_id=message.id,
        event=event,
    )


# -- Mailgun ------------------------------------------------------------------------------------


def _mailgun_signature(
    credentials: Credentials, when: datetime, rng: random.Random
) -> dict[str, str]:
    stamp = str(_unix(when))
    token = _hex(rng, 50)
    signature = mailgun_adapter.sign(stamp, token, credentials.mailgun_signing_key)
    return {"timestamp": stamp, "token": token, "signature": signature}


def mailgun_event(
    credentials: Credentials,
    message: SandboxMessage,
    event: str,
    when: datetime,
    rng: random.Random,
    extra: dict[str, Any] | None = None,
) -> Callback | None:
    """One webhook (``{"signature": ..., "event-data": ...}``), signed with the signing key."""
    url = _hook(credentials, "mailgun")
    if url is None:
        return None
    data: dict[str, Any] = {
        "id": _hex(rng, 22),
        "timestamp": when.timestamp(),
        "log-level": "info" if event in ("delivered", "opened") else "error",
        "event": event,
        "recipient": message.to,
        "recipient-domain": message.to.rpartition("@")[2],
        "message": {
            "headers": {
                "to": message.to,
                "message-id": message.id,
                "from": message.sender or "",
                "subject": message.subject or "",
            },
            "attachments": [],
            "size": len(message.text or "") + len(message.html or ""),
        },
        "tags": list(message.data.get("tags", [])),
        "user-variables": dict(message.data.get("variables", {})),
        "flags": {"is-test-mode": False},
    }
    if event == "delivered":
        data["delivery-status"] = {
            "code": 250,
            "message": "OK",
            "description": "",
            "tls": True,
            "mx-host": "mx.sandbox.test",
            "attempt-no": 1,
        }
    data.update(extra or {})
    payload = {"signature": _mailgun_signature(credentials, when, rng), "event-data": data}
    return Callback(
        provider="mailgun",
        url=url,
        headers={"Content-Type": "application/json", "User-Agent": "mailgun/treq-16.12.0"},
        body=json.dumps(payload, separators=(",", ":")).encode(),
        message_id=message.id,
        event=event,
    )


def mailgun_inbound(
    credentials: Credentials,
    message: SandboxMessage,
    replied_to: SandboxMessage | None,
    when: datetime,
    rng: random.Random,
) -> Callback | None:
    """A route ``forward()`` POST (form fields) for an email reply."""
    url = _hook(credentials, "mailgun")
    if url is None:
        return None
    subject = message.subject or ""
    fields = [
        ("recipient", message.to),
        ("sender", message.sender or ""),
        ("from", message.sender or ""),
        ("subject", subject),
        ("body-plain", message.text or ""),
        ("stripped-text", message.text or ""),
        ("Message-Id", f"<{message.id}>"),
        ("message-headers", json.dumps(_headers(message, replied_to))),
    ]
    fields += list(_mailgun_signature(credentials, when, rng).items())
    return Callback(
        provider="mailgun",
        url=url,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode(fields).encode(),
        message_id=message.id,
        event="inbound",
    )


def _headers(message: SandboxMessage, replied_to: SandboxMessage | None) -> list[list[str]]:
    headers = [
        ["From", message.sender or ""],
        ["To", message.to],
        ["Subject", message.subject or ""],
        ["Message-Id", f"<{message.id}>"],
    ]
    if replied_to is not None:
        headers.append(["In-Reply-To", f"<{replied_to.id}>"])
    return headers


# -- WhatsApp Cloud API -------------------------------------------------------------------------


def _whatsapp_post(
    credentials: Credentials, value: dict[str, Any], message_id: str, event: str
) -> Callback | None:
    url = _hook(credentials, "whatsapp")
    if url is None:
        return None
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [{"value": value, "field": "messages"}],
            }
        ],
    }
    # Meta escapes non-ASCII as \uXXXX and signs those exact bytes.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
    return Callback(
        provider="whatsapp",
        url=url,
        headers={
            "Content-Type": "application/json",
            _meta.SIGNATURE_HEADER: _meta.sign(body, credentials.whatsapp_secret),
            "User-Agent": "facebookexternalua",
        },
        body=body,
        message_id=message_id,
        event=event,
    )


def _metadata(credentials: Credentials) -> dict[str, str]:
    from anysend.sandbox._keys import WHATSAPP_NUMBER

    return {
        "display_phone_number": WHATSAPP_NUMBER,
        "phone_number_id": credentials.whatsapp_phone_id,
    }


def whatsapp_status(
    credentials: Credentials,
    message: SandboxMessage,
    status: str,
    when: datetime,
    error: tuple[int, str, str] | None = None,
) -> Callback | None:
    """A ``statuses`` webhook (``sent``, ``delivered``, ``read``, ``failed`` with errors)."""
    item: dict[str, Any] = {
        "id": message.id,
        "status": status,
        "timestamp": str(_unix(when)),
        "recipient_id": message.to.removeprefix("+"),
    }
    opaque = message.data.get("biz_opaque_callback_data")
    if opaque:
        item["biz_opaque_callback_data"] = opaque
    if status in ("sent", "delivered"):
        item["conversation"] = {
            "id": "CONVERSATION_ID",
            "origin": {"type": "utility"},
        }
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "utility"}
    if error is not None:
        code, title, details = error
        item["errors"] = [
            {
                "code": code,
                "title": title,
                "message": title,
                "error_data": {"details": details},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ]
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(credentials),
        "statuses": [item],
    }
    return _whatsapp_post(credentials, value, message.id, status)


def whatsapp_inbound(
    credentials: Credentials,
    message: SandboxMessage,
    replied_to: SandboxMessage | None,
    when: datetime,
    name: str,
) -> Callback | None:
    """A ``messages`` webhook: a text from the user (with ``context`` for a reply)."""
    sender = (message.sender or "").removeprefix("+")
    item: dict[str, Any] = {
        "from": sender,
        "id": message.id,
        "timestamp": str(_unix(when)),
        "type": "text",
        "text": {"body": message.text or ""},
    }
    if replied_to is not None:
        item["context"] = {
            "from": _metadata(credentials)["display_phone_number"],
            "id": replied_to.id,
        }
    value = {
        "messaging_product": "whatsapp",
        "metadata": _metadata(credentials),
        "contacts": [{"profile": {"name": name}, "wa_id": sender}],
        "messages": [item],
    }
    return _whatsapp_post(credentials, value, message.id, "inbound")


# -- Telegram -----------------------------------------------------------------------------------


def telegram_update(
    credentials: Credentials,
    message: SandboxMessage,
    replied_to: SandboxMessage | None,
    update_id: int,
    message_id: int,
    when: datetime,
    name: str,
) -> Callback | None:
    """An Update with the user's message, with the webhook's secret-token header."""
    url = _hook(credentials, "telegram")
    if url is None:
        return None
    chat_id = int(message.sender or "0")
    chat = {"id": chat_id, "first_name": name, "type": "private"}
    body: dict[str, Any] = {
        "message_id": message_id,
        "from": {"id": chat_id, "is_bot": False, "first_name": name, "language_code": "en"},
        "chat": chat,
        "date": _unix(when),
        "text": message.text or "",
    }
    if replied_to is not None:
        sent_id = replied_to.id.rpartition(":")[2]
        body["reply_to_message"] = {
            "message_id": int(sent_id) if sent_id.isdigit() else 0,
            "chat": chat,
            "date": _unix(replied_to.created_at),
            "text": replied_to.text or "",
        }
    update = {"update_id": update_id, "message": body}
    return Callback(
        provider="telegram",
        url=url,
        headers={
            "Content-Type": "application/json",
            SECRET_HEADER: credentials.telegram_secret,
        },
        body=json.dumps(update, separators=(",", ":")).encode(),
        message_id=message.id,
        event="inbound",
    )
