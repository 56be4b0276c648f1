"""SendGrid's Mail Send API, Mailgun's Messages API and an SMTP server, in the sandbox.

Mail from all three lands in the same inbox.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hmac
import json
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from anysend.sandbox import _callbacks as callbacks
from anysend.sandbox._api import FAILURES, ProviderAPI, Refusal, json_response
from anysend.sandbox._callbacks import Callback
from anysend.sandbox._state import SandboxMessage

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP as SMTPServer
    from aiosmtpd.smtp import Envelope, Session

__all__ = ["MailgunAPI", "SMTPHandler", "SendGridAPI"]


# -- SendGrid -----------------------------------------------------------------------------------

SENDGRID_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


def _sendgrid_error(status: int, message: str, field: str | None = None) -> web.Response:
    item: dict[str, Any] = {"message": message, "field": field, "help": None}
    if field is not None:
        item["help"] = f"{SENDGRID_HELP}#message.{field.split('.')[0]}"
    headers = {"X-RateLimit-Reset": "0", "Retry-After": "1"} if status == 429 else None
    return json_response({"errors": [item]}, status, headers)


class SendGridAPI(ProviderAPI):
    """``POST /v3/mail/send``: ``202`` with ``X-Message-Id``, events by the Event Webhook."""

    name: ClassVar[str] = "sendgrid"
    asynchronous: ClassVar[frozenset[str]] = frozenset({"bounce", "unsubscribed", "outside_window"})
    read_status: ClassVar[str | None] = "opened"

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Take a Mail Send request: one message per ``to`` of every personalization."""
        if request.method != "POST" or path != "v3/mail/send":
            return _sendgrid_error(404, "Not found")
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(
            header.encode(), f"Bearer {self.engine.credentials.sendgrid_key}".encode()
        ):
            return self.refusal("auth", "")
        try:
            data = json.loads(await request.read())
        except ValueError:
            return _sendgrid_error(400, "Bad Request", None)
        if not isinstance(data, dict) or not isinstance(data.get("personalizations"), list):
            return _sendgrid_error(
                400, "The personalizations field is required.", "personalizations"
            )
        sender = data.get("from", {})
        if not isinstance(sender, dict) or not sender.get("email"):
            return _sendgrid_error(400, "The from object must be provided.", "from")
        content = {
            c.get("type"): c.get("value") for c in data.get("content", []) if isinstance(c, dict)
        }
        planned: list[tuple[dict[str, Any], dict[str, Any], str | None]] = []
        for index, personalization in enumerate(data["personalizations"]):
            for position, to in enumerate(personalization.get("to", [])):
                address = str(to.get("email", ""))
                field = f"personalizations.{index}.to.{position}.email"
                if "@" not in address:
                    return _sendgrid_error(400, "Does not contain a valid address.", field)
                try:
                    failure = self.check_failure(address)
                except Refusal as refusal:
                    return refusal.response
                planned.append((personalization, to, failure))
        x_message_id = base64.urlsafe_b64encode(
            bytes(self.engine.ids.randrange(256) for _ in range(16))
        ).decode()[:22]
        for personalization, to, failure in planned:
            args = {**data.get("custom_args", {}), **personalization.get("custom_args", {})}
            message = SandboxMessage(
                id=f"{x_message_id}.{to['email']}",
                provider=self.name,
                channel="email",
                direction="outbound",
                to=str(to["email"]),
                sender=_mailbox(sender),
                person=str(to["email"]),
                created_at=self.engine.now(),
                subject=personalization.get("subject", data.get("subject")),
                text=content.get("text/plain"),
                html=content.get("text/html"),
                data={
                    "x_message_id": x_message_id,
                    "custom_args": args,
                    "categories": data.get("categories", []),
                },
            )
            self.engine.accept(self, message, failure)
        return web.Response(status=202, headers={"X-Message-Id": x_message_id})

    def refusal(self, kind: str, address: str) -> web.Response:
        """SendGrid's error for ``kind``."""
        if kind == "auth":
            return _sendgrid_error(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )
        if kind == "rate_limited":
            return _sendgrid_error(429, "too many requests")
        if kind == "unavailable":
            return _sendgrid_error(503, "Service Unavailable")
        return _sendgrid_error(
            400, "Does not contain a valid address.", "personalizations.0.to.0.email"
        )

    def delivered(self, message: SandboxMessage) -> Callback | None:
        """A ``delivered`` event."""
        return self._event(message, "delivered")

    def read(self, message: SandboxMessage) -> Callback | None:
        """An ``open`` event."""
        return self._event(message, "open")

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """A ``bounce`` (5.1.1) or a ``dropped`` (Unsubscribed Address) event."""
        if kind == "bounce":
            reason = "550 5.1.1 The email account that you tried to reach does not exist."
            extra = {"status": "5.1.1", "reason": reason, "type": "bounce"}
            return "undeliverable", reason, self._event(message, "bounce", extra)
        reason = "Unsubscribed Address"
        return "failed", reason, self._event(message, "dropped", {"reason": reason})

    def _event(
        self, message: SandboxMessage, event: str, extra: dict[str, Any] | None = None
    ) -> Callback | None:
        return callbacks.sendgrid_event(
            self.engine.credentials, message, event, self.engine.now(), self.engine.rng, extra
        )


def _mailbox(value: dict[str, Any]) -> str:
    name, address = value.get("name"), str(value.get("email", ""))
    return f"{name} <{address}>" if name else address


# -- Mailgun ------------------------------------------------------------------------------------


class MailgunAPI(ProviderAPI):
    """``POST /v3/{domain}/messages``: ``{"id", "message": "Queued. Thank you."}``."""

    name: ClassVar[str] = "mailgun"
    asynchronous: ClassVar[frozenset[str]] = frozenset({"bounce", "unsubscribed", "outside_window"})
    read_status: ClassVar[str | None] = "opened"

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Take a message (one per ``to``, with recipient variables for batches)."""
        from anysend.sandbox._keys import MAILGUN_DOMAIN

        creds = self.engine.credentials
        if request.method != "POST" or path != f"v3/{MAILGUN_DOMAIN}/messages":
            return json_response({"message": "Domain not found"}, 404)
        header = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"api:{creds.mailgun_key}".encode()).decode()
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return self.refusal("auth", "")
        form = await request.post()
        sender = str(form.get("from") or "")
        if not sender:
            return json_response({"message": "'from' parameter is missing"}, 400)
        recipients = [str(v) for v in form.getall("to", [])]
        addresses = [a for _, a in getaddresses(recipients)]
        if not addresses or any("@" not in a for a in addresses):
            return json_response(
                {"message": "'to' parameter is not a valid address. please check documentation"},
                400,
            )
        variables = json.loads(str(form.get("recipient-variables") or "{}"))
        planned: list[tuple[str, str | None]] = []
        for address in addresses:
            try:
                planned.append((address, self.check_failure(address)))
            except Refusal as refusal:
                return refusal.response
        now = self.engine.now()
        message_id = f"{now:%Y%m%d%H%M%S}.{self.engine.hex(16)}@{MAILGUN_DOMAIN}"
        tags = [str(t) for t in form.getall("o:tag", [])]
        for address, failure in planned:
            mine = variables.get(address, {}) if isinstance(variables, dict) else {}
            user = {
                key[2:]: _substitute(str(value), mine)
                for key, value in form.items()
                if key.startswith("v:") and isinstance(value, str)
            }
            message = SandboxMessage(
                id=message_id if len(planned) == 1 else f"{message_id}/{address}",
                provider=self.name,
                channel="email",
                direction="outbound",
                to=address,
                sender=sender,
                person=address,
                created_at=now,
                subject=_text(form.get("subject")),
                text=_text(form.get("text")),
                html=_text(form.get("html")),
                data={"variables": user, "tags": tags, "message_id": message_id},
            )
            self.engine.accept(self, message, failure)
        return json_response({"id": f"<{message_id}>", "message": "Queued. Thank you."})

    def refusal(self, kind: str, address: str) -> web.Response:
        """Mailgun's error for ``kind``."""
        if kind == "auth":
            return web.Response(status=401, text="Forbidden")
        if kind == "rate_limited":
            return json_response({"message": "Too many requests"}, 429, {"Retry-After": "1"})
        if kind == "unavailable":
            return json_response({"message": "Service Unavailable"}, 503)
        return json_response(
            {"message": "'to' parameter is not a valid address. please check documentation"}, 400
        )

    def delivered(self, message: SandboxMessage) -> Callback | None:
        """A ``delivered`` event."""
        return self._event(message, "delivered")

    def read(self, message: SandboxMessage) -> Callback | None:
        """An ``opened`` event."""
        return self._event(message, "opened")

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """A permanent ``failed`` event: a 5.1.1 bounce or the unsubscribe suppression."""
        if kind == "bounce":
            text = "5.1.1 The email account that you tried to reach does not exist."
            extra = {
                "severity": "permanent",
                "reason": "bounce",
                "delivery-status": {
                    "code": 550,
                    "enhanced-code": "5.1.1",
                    "message": text,
                    "description": text,
                    "attempt-no": 1,
                },
            }
            return "undeliverable", text, self._event(message, "failed", extra)
        text = "Not delivering to previously unsubscribed address"
        extra = {
            "severity": "permanent",
            "reason": "suppress-unsubscribe",
            "delivery-status": {"code": 605, "message": "", "description": text},
        }
        return "failed", text, self._event(message, "failed", extra)

    def reply(
        self, message: SandboxMessage, replied_to: SandboxMessage | None, name: str
    ) -> Callback | None:
        """A route ``forward()`` POST with the reply."""
        from anysend.sandbox._keys import MAILGUN_DOMAIN

        message.id = make_msgid(domain=MAILGUN_DOMAIN).strip("<>")
        if replied_to is not None and message.subject is None:
            message.subject = "Re: " + (replied_to.subject or "")
        return callbacks.mailgun_inbound(
            self.engine.credentials, message, replied_to, self.engine.now(), self.engine.rng
        )

    def _event(
        self, message: SandboxMessage, event: str, extra: dict[str, Any] | None = None
    ) -> Callback | None:
        original = message.id
        message_id = str(message.data.get("message_id", original))
        message.id = message_id  # the webhook names the Message-ID of the send
        try:
            return callbacks.mailgun_event(
                self.engine.credentials, message, event, self.engine.now(), self.engine.rng, extra
            )
        finally:
            message.id = original


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _substitute(value: str, variables: dict[str, Any]) -> str:
    for key, replacement in variables.items():
        value = value.replace(f"%recipient.{key}%", str(replacement))
    return value


# -- SMTP ---------------------------------------------------------------------------------------

#: The SMTP reply to RCPT per failure.
SMTP_REPLIES: dict[str, str] = {
    "invalid_number": "550 5.1.1 <{to}>: Recipient address rejected: User unknown",
    "unsubscribed": "550 5.7.1 <{to}>: Recipient address rejected: unsubscribed",
    "rate_limited": "450 4.7.1 <{to}>: Recipient address rejected: too many messages, slow down",
    "unavailable": "421 4.3.2 Service not available, closing transmission channel",
    "auth": "530 5.7.0 Authentication required",
    "outside_window": "550 5.7.1 <{to}>: Recipient address rejected",
}


class SMTPHandler:
    """The aiosmtpd handler: scripted failures at ``RCPT``, mail into the inbox at ``DATA``."""

    def __init__(self, engine: Any, api: ProviderAPI) -> None:
        self.engine = engine
        self.api = api
        self._pending: dict[int, dict[str, str | None]] = {}

    async def handle_RCPT(  # aiosmtpd's hook name
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Refuse a recipient with a scripted failure; note an asynchronous one."""
        kind = self.engine.failure(address)
        if kind is not None and kind != "bounce":
            return SMTP_REPLIES[kind].format(to=address)
        self._pending.setdefault(id(envelope), {})[address.lower()] = kind
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTPServer, session: Session, envelope: Envelope
    ) -> str:
        """Parse the mail (subject, text, HTML) and keep one message per recipient."""
        failures = self._pending.pop(id(envelope), {})
        raw = envelope.original_content or envelope.content or b""
        content = raw if isinstance(raw, bytes) else raw.encode()
        if content.isascii():
            parsed = email.message_from_bytes(content, policy=email.policy.default)
        else:
            parsed = email.message_from_string(
                content.decode("utf-8", "replace"), policy=email.policy.default
            )
        assert isinstance(parsed, EmailMessage)
        text_part = parsed.get_body(("plain",))
        html_part = parsed.get_body(("html",))
        message_id = str(parsed.get("Message-ID") or make_msgid()).strip().strip("<>")
        for address in envelope.rcpt_tos:
            message = SandboxMessage(
                id=message_id if len(envelope.rcpt_tos) == 1 else f"{message_id}/{address}",
                provider="smtp",
                channel="email",
                direction="outbound",
                to=address,
                sender=str(parsed.get("From") or envelope.mail_from or ""),
                person=address,
                created_at=self.engine.now(),
                subject=str(parsed.get("Subject")) if parsed.get("Subject") is not None else None,
                text=text_part.get_content() if isinstance(text_part, EmailMessage) else None,
                html=html_part.get_content() if isinstance(html_part, EmailMessage) else None,
                data={"anysend_id": parsed.get("X-Anysend-Message-Id")},
            )
            self.engine.accept(self.api, message, failures.get(address.lower()))
        return "250 2.0.0 Ok: queued as " + str(self.engine.hex(10, upper=True))


class SMTPAPI(ProviderAPI):
    """The SMTP server's side of the inbox (no HTTP API, no callbacks)."""

    name: ClassVar[str] = "smtp"

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """A bounce after the server took the mail (no callback: SMTP has none)."""
        return "undeliverable", FAILURES[kind], None
