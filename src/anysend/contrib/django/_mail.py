"""Django's email API on anysend: :class:`EmailBackend` and :func:`to_messages`.

``send_mail``, ``EmailMessage.send()``, ``mail_admins`` and everything else that sends
through ``django.core.mail`` go through the anysend client of ``settings.ANYSEND`` once
``EMAIL_BACKEND = "anysend.contrib.django.EmailBackend"``: with its providers, failover,
retries, suppressions and store.
"""

from __future__ import annotations

import email.message
from collections.abc import Sequence
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from django.core.mail.backends.base import BaseEmailBackend
from pydantic import ValidationError

from anysend._email import _RESERVED_HEADERS
from anysend._exceptions import AnysendError, ContentError
from anysend._models import Attachment, Message, Recipient
from anysend.contrib.django._client import get_client

if TYPE_CHECKING:
    from django.core.mail import EmailMessage

    from anysend import Client

__all__ = ["EmailBackend", "to_messages"]


class EmailBackend(BaseEmailBackend):
    """A Django email backend that sends through an anysend client.

    Set ``EMAIL_BACKEND = "anysend.contrib.django.EmailBackend"``. Each Django message
    becomes one anysend email per ``to`` address (each tracked, suppressed and retried on its
    own); ``cc`` and ``bcc`` go with the first. A message without ``to`` goes to each ``cc``
    and ``bcc`` address on its own; one without any recipient is skipped, as Django's SMTP
    backend does.

    Args:
        fail_silently: count a message that could not be sent as not sent instead of
            raising (Django's meaning).
        client: the client to send through; by default the shared one of
            ``settings.ANYSEND`` (:func:`~anysend.contrib.django.get_client`).
        **kwargs: what Django passes to every backend (ignored).
    """

    def __init__(
        self, fail_silently: bool = False, *, client: Client | None = None, **kwargs: Any
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self._client = client

    @property
    def client(self) -> Client:
        """The client messages are sent through."""
        return self._client if self._client is not None else get_client()

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send Django email messages; return how many were sent to all their recipients.

        Raises:
            AnysendError: unless ``fail_silently``: a message could not be converted
                (``ContentError``, ``InvalidRecipientError``) or was not sent
                (``DeliveryError``, from ``SendResult.raise_for_status()``); the sending of
                that message stops at its first failed recipient.
        """
        sent = 0
        for django_message in email_messages:
            try:
                if self._send(django_message):
                    sent += 1
            except AnysendError:
                if not self.fail_silently:
                    raise
        return sent

    def _send(self, django_message: EmailMessage) -> bool:
        sends = to_messages(django_message)
        if not sends:
            return False
        client = self.client
        for message, recipient in sends:
            client.send(message, to=recipient, via="email").raise_for_status()
        return True


def to_messages(django_message: EmailMessage) -> list[tuple[Message, Recipient]]:
    """The anysend messages, with their recipients, that send a Django email message.

    Mapped: ``subject``, ``body`` (as HTML when ``content_subtype`` is ``"html"``), a
    ``text/html`` alternative, ``from_email``, ``to``, ``cc``, ``bcc``, ``reply_to``,
    ``extra_headers`` (``From`` and ``Reply-To`` among them set the sender and reply-to;
    the others anysend writes itself, such as ``To`` or ``Message-ID``, are refused),
    ``attachments`` (files and ``MIMEBase`` parts, inline ones with a ``Content-ID``), and,
    when the message has them, ``metadata`` and ``tags`` attributes (as django-anymail's).

    Raises:
        ContentError: something that anysend cannot send: an alternative other than HTML,
            two HTML parts, a multipart attachment, a message with no content, or a field
            with a line break.
    """
    targets = list(django_message.to)
    cc = tuple(str(a) for a in django_message.cc)
    bcc = tuple(str(a) for a in django_message.bcc)
    if not targets:  # each cc and bcc address gets its own copy
        targets, cc, bcc = [*cc, *bcc], (), ()
    if not targets:
        return []
    try:
        fields = _fields(django_message)
        first = Message(**fields, cc=cc, bcc=bcc)
        rest = Message(**fields) if len(targets) > 1 else first
        recipients = [_recipient(str(address)) for address in targets]
    except ValidationError as exc:
        raise ContentError(f"this email cannot be sent: {_first_error(exc)}") from exc
    return [(first if index == 0 else rest, r) for index, r in enumerate(recipients)]


def _fields(django_message: EmailMessage) -> dict[str, Any]:
    text: str | None = None
    html: str | None = None
    body = str(django_message.body or "")
    if getattr(django_message, "content_subtype", "plain") == "html":
        html = body or None
    else:
        text = body or None
    for content, mimetype in getattr(django_message, "alternatives", None) or ():
        if mimetype != "text/html":
            raise ContentError(f"anysend cannot send a {mimetype} alternative (only text/html)")
        if html is not None:
            raise ContentError("this email has two HTML parts")
        html = content.decode() if isinstance(content, bytes) else str(content)
    sender = django_message.from_email
    reply_to = tuple(str(a) for a in django_message.reply_to)
    headers: dict[str, str] = {}
    for name, value in (django_message.extra_headers or {}).items():
        lowered = name.lower()
        if lowered == "from":
            sender = str(value)
        elif lowered == "reply-to":
            reply_to = tuple(a.strip() for a in str(value).split(",") if a.strip())
        elif lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
            raise ContentError(f"header {name!r} is set by anysend; use the message's own fields")
        else:
            headers[str(name)] = str(value)
    fields: dict[str, Any] = {
        "subject": str(django_message.subject) if django_message.subject else None,
        "text": text,
        "html": html,
        "sender": str(sender) if sender else None,
        "reply_to": reply_to,
        "headers": headers,
        "attachments": tuple(_attachment(item) for item in django_message.attachments),
    }
    metadata = getattr(django_message, "metadata", None)
    if metadata:
        fields["metadata"] = {str(k): str(v) for k, v in dict(metadata).items()}
    tags = getattr(django_message, "tags", None)
    if tags:
        fields["tags"] = tuple(str(tag) for tag in tags)
    if not (text or html or fields["attachments"]):
        raise ContentError("this email has no body, no HTML alternative and no attachment")
    return fields


def _attachment(item: Any) -> Attachment:
    """An anysend attachment from a Django one: a (filename, content, mimetype) or a part."""
    if isinstance(item, email.message.Message):  # MIMEBase (and Django 6's MIMEPart)
        if item.is_multipart():
            raise ContentError("anysend cannot send a multipart attachment")
        payload = item.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        content_id = str(item.get("Content-ID") or "").strip().strip("<>") or None
        inline = item.get_content_disposition() == "inline" and content_id is not None
        return Attachment(
            filename=item.get_filename() or "attachment",
            content=content,
            content_type=item.get_content_type(),
            inline=inline,
            content_id=content_id if inline else None,
        )
    filename, content, mimetype = item
    return Attachment(
        filename=filename or "attachment",
        content=content.encode() if isinstance(content, str) else bytes(content),
        content_type=mimetype or "",
    )


def _recipient(address: str) -> Recipient:
    """A recipient from ``"Ann <ann@example.com>"`` or ``"ann@example.com"``."""
    parsed = getaddresses([address])
    if len(parsed) == 1 and parsed[0][1]:
        name, mailbox = parsed[0]
        return Recipient(email=mailbox, name=name or None)
    return Recipient(email=address)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
