"""Email messages built from an :class:`~anysend.OutboundMessage`, for adapters that send MIME.

:func:`compose_email` turns one outbound message into a standard :class:`email.message.EmailMessage`
plus its SMTP envelope: ``From``, ``To`` with the recipient's name, ``Cc``, ``Reply-To``,
``Subject``, ``Date``, ``Message-ID``, ``X-Anysend-Message-Id``, custom headers, text and HTML
as ``multipart/alternative``, inline images as ``multipart/related`` parts with a
``Content-ID``, files as ``multipart/mixed``. Bcc addresses are envelope recipients only. A
message with ``unsubscribe_url`` gets ``List-Unsubscribe`` and ``List-Unsubscribe-Post``
(RFC 8058); a ``marketing`` message without one is refused.

Header injection: a line break in anything that becomes a header (subject, display name,
addresses, reply-to, cc, bcc, custom header names and values, attachment file names, content
types and content ids, tags, metadata) is refused with :class:`~anysend.ContentError` before
any network call. A line break is CR or LF, and also every other character that
:meth:`str.splitlines` (and so Python's email parser) ends a line at: VT, FF, FS, GS, RS, NEL,
U+2028 and U+2029; NUL is refused too. Every email adapter runs :func:`check_header_safety`,
whether it writes the MIME itself (SMTP, SES raw) or hands fields to an API.

The SMTP adapter sends the result; email APIs that take raw MIME can share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses, make_msgid

from anysend._exceptions import ConfigurationError, ContentError, InvalidRecipientError
from anysend._models import OutboundMessage

__all__ = [
    "LINE_BREAKS",
    "ComposedEmail",
    "check_header_safety",
    "compose_email",
    "parse_mailbox",
    "unsafe",
]

_HEADER_NAME = re.compile(r"[!-9;-~]+")
_MIME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
#: Headers the adapter writes itself; a custom header may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "x-anysend-message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)


#: What may never reach an email header: CR and LF, every other character ``str.splitlines()``
#: breaks lines at (Python's email parser splits on those: VT, FF, FS, GS, RS, NEL, LINE
#: SEPARATOR, PARAGRAPH SEPARATOR), and NUL.
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00"
_LINE_BREAK = re.compile(f"[{re.escape(LINE_BREAKS)}]")


def unsafe(value: str) -> bool:
    """Whether ``value`` holds a line break (see :data:`LINE_BREAKS`) and so cannot be a header."""
    return _LINE_BREAK.search(value) is not None


class _Policy(EmailPolicy):
    """``email.policy.SMTP`` (CRLF, 78-column folding), with two changes.

    Bodies are 7-bit (quoted-printable or base64), so no server needs 8BITMIME. An ASCII
    header with a word too long to fold (a long URL in ``List-Unsubscribe``) is written on
    one line, as RFC 5322 allows up to 998 characters, instead of being turned into
    RFC 2047 encoded words that would break it.
    """

    def _whole(self, name: str, value: str) -> str | None:
        text = str(value)
        limit = (self.max_line_length or 78) - len(name) - 2
        if (
            text.isascii()
            and not unsafe(text)
            and len(name) + 2 + len(text) <= 998
            and any(len(word) > limit for word in text.split())
        ):
            return f"{name}: {text}{self.linesep}"
        return None

    def fold(self, name: str, value: str) -> str:
        """Fold a header for text output."""
        whole = self._whole(name, value)
        return whole if whole is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        """Fold a header for the bytes sent on the wire."""
        whole = self._whole(name, value)
        return whole.encode("ascii") if whole is not None else super().fold_binary(name, value)


_POLICY = _Policy(linesep="\r\n", cte_type="7bit")
_POLICY_UTF8 = _POLICY.clone(utf8=True)


@dataclass(frozen=True)
class _Mailbox:
    header: Address
    envelope: str
    smtputf8: bool


def parse_mailbox(value: str, field: str, display_name: str | None = None) -> _Mailbox:
    """Parse one address (``ann@example.com`` or ``Ann <ann@example.com>``).

    Raises:
        ContentError: the sender is not one address.
        InvalidRecipientError: a recipient field is not one address.
    """

    def bad(why: str) -> Exception:
        text = f"{field} {value!r} {why}"
        if field in ("sender", "reply_to"):
            return ContentError(text)
        return InvalidRecipientError(text, field=field, value=value)

    parsed = getaddresses([value])
    if len(parsed) != 1 or "@" not in parsed[0][1]:
        raise bad("is not one email address")
    name, address = parsed[0]
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise bad("is not one email address")
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
        header = Address(
            display_name=name if display_name is None else display_name,
            username=local,
            domain=domain,
        )
    except (UnicodeError, ValueError, IndexError, HeaderParseError) as exc:
        raise bad(f"is not a valid email address ({exc})") from exc
    return _Mailbox(header=header, envelope=f"{local}@{domain}", smtputf8=not local.isascii())


@dataclass(frozen=True)
class ComposedEmail:
    """A message ready for the SMTP conversation (what :meth:`SMTP.compose` returns).

    Attributes:
        message: the MIME message.
        mail_from: the envelope sender (``MAIL FROM``), a bare address.
        rcpt_to: the envelope recipients (``RCPT TO``): to, cc and bcc, without repeats.
        message_id: the ``Message-ID`` without angle brackets (the receipt's id).
        smtputf8: whether an address needs the server's SMTPUTF8 extension.
    """

    message: EmailMessage
    mail_from: str
    rcpt_to: tuple[str, ...]
    message_id: str
    smtputf8: bool

    def as_bytes(self) -> bytes:
        """The message as sent after ``DATA`` (CRLF line endings).

        Raises:
            ContentError: the email library cannot serialise it (a lone surrogate, say).
        """
        try:
            return self.message.as_bytes()
        except (ValueError, TypeError, HeaderParseError) as exc:
            raise ContentError(f"the message cannot be written as MIME: {exc}") from exc


def check_header_safety(message: OutboundMessage) -> None:
    """Refuse a line break (:data:`LINE_BREAKS`) in anything that may become a header.

    Every email adapter calls it before building its request, so user data (a subject from a
    template, a display name, a file name) can never add a header. The fields: to, sender,
    subject, the recipient's name, unsubscribe_url, the message id, cc, bcc, reply_to,
    custom header names and values, attachment file names, content types and content ids,
    tags and metadata (some providers turn the last two into headers). Custom header names
    must also be RFC 5322 field names.

    Raises:
        ContentError: a field holds a line break, or a header name is not a field name.
    """
    fields: list[tuple[str, str | None]] = [
        ("to", message.to),
        ("sender", message.sender),
        ("subject", message.subject),
        ("recipient name", message.recipient.name),
        ("unsubscribe_url", message.unsubscribe_url),
        ("message id", message.id),
    ]
    for list_field in ("cc", "bcc", "reply_to", "tags"):
        fields.extend((list_field, value) for value in getattr(message, list_field))
    for key, item in message.metadata.items():
        fields.extend([("metadata key", key), (f"metadata {key!r}", item)])
    for header_name, header_value in message.headers.items():
        fields.extend([("header name", header_name), (f"header {header_name!r}", header_value)])
    for attachment in message.attachments:
        fields.extend(
            [
                ("attachment filename", attachment.filename),
                ("attachment content type", attachment.content_type),
                ("attachment content id", attachment.content_id),
            ]
        )
    for field, value in fields:
        if value is not None and (not isinstance(value, str) or unsafe(value)):
            raise ContentError(f"{field} contains a line break or NUL (header injection refused)")
    for name in message.headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ContentError(f"{name!r} is not a valid header name")


def _check_header_safety(message: OutboundMessage) -> None:
    """Refuse line breaks (:func:`check_header_safety`) and headers anysend writes itself."""
    check_header_safety(message)
    for name in message.headers:
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("content-"):
            raise ContentError(f"header {name!r} is set by anysend; use the message's own fields")


def _mime_type(content_type: str) -> tuple[str, str]:
    maintype, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    if (
        not _MIME_TOKEN.fullmatch(maintype)
        or not _MIME_TOKEN.fullmatch(subtype)
        or maintype in ("multipart", "message")
    ):
        return "application", "octet-stream"
    return maintype, subtype


def compose_email(
    message: OutboundMessage, default_sender: str | None = None, *, adapter: str = "anysend"
) -> ComposedEmail:
    """Build the MIME message and the envelope for ``message`` (no I/O).

    Args:
        message: the message, as an email adapter receives it.
        default_sender: the ``From`` when the message has no ``sender``.
        adapter: the adapter's name, for error messages.

    Raises:
        ContentError: a header would carry a line break or NUL (:func:`check_header_safety`),
            a custom header replaces one the adapter writes, the sender is malformed, a
            marketing message has no ``unsubscribe_url``, or the email library cannot write
            a field.
        InvalidRecipientError: a to, cc or bcc address is malformed.
        ConfigurationError: neither the message nor the settings give a sender.
    """
    _check_header_safety(message)
    if message.category == "marketing" and not message.unsubscribe_url:
        raise ContentError("marketing email needs unsubscribe_url (RFC 8058 one-click unsubscribe)")
    sender_text = message.sender or default_sender
    if not sender_text:
        raise ConfigurationError(
            f"{adapter} needs a sender: set Message.sender or the adapter's sender setting"
        )
    sender = parse_mailbox(sender_text, "sender")
    to = parse_mailbox(message.to, "to", display_name=message.recipient.name)
    cc = [parse_mailbox(value, "cc") for value in message.cc]
    bcc = [parse_mailbox(value, "bcc") for value in message.bcc]
    reply_to = [parse_mailbox(value, "reply_to") for value in message.reply_to]
    smtputf8 = any(m.smtputf8 for m in [sender, to, *cc, *bcc, *reply_to])

    try:
        email = _build(message, sender, to, cc, reply_to, smtputf8)
    except (ValueError, TypeError, HeaderParseError) as exc:
        # The email library refuses what it cannot write (its ValueError must not escape).
        raise ContentError(f"{adapter} cannot write this message as MIME: {exc}") from exc
    message_id = str(email["Message-ID"])

    recipients: dict[str, str] = {}
    for mailbox in [to, *cc, *bcc]:
        recipients.setdefault(mailbox.envelope.lower(), mailbox.envelope)
    return ComposedEmail(
        message=email,
        mail_from=sender.envelope,
        rcpt_to=tuple(recipients.values()),
        message_id=message_id.strip("<>"),
        smtputf8=smtputf8,
    )


def _build(
    message: OutboundMessage,
    sender: _Mailbox,
    to: _Mailbox,
    cc: list[_Mailbox],
    reply_to: list[_Mailbox],
    smtputf8: bool,
) -> EmailMessage:
    email = EmailMessage(policy=_POLICY_UTF8 if smtputf8 else _POLICY)
    email["From"] = sender.header
    email["To"] = to.header
    if cc:
        email["Cc"] = [m.header for m in cc]
    if reply_to:
        email["Reply-To"] = [m.header for m in reply_to]
    if message.subject is not None:
        email["Subject"] = message.subject
    email["Date"] = format_datetime(datetime.now(timezone.utc))
    message_id = make_msgid(domain=sender.header.domain)
    email["Message-ID"] = message_id
    email["X-Anysend-Message-Id"] = message.id
    if message.unsubscribe_url:
        email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in message.headers.items():
        email[name] = value
    _add_body(email, message)
    return email


def _add_body(email: EmailMessage, message: OutboundMessage) -> None:
    if message.text is not None:
        email.set_content(message.text)
    if message.html is not None:
        if message.text is not None:
            email.add_alternative(message.html, subtype="html")
        else:
            email.set_content(message.html, subtype="html")
    html_part = email.get_body(preferencelist=("html",)) if message.html else None
    for attachment in message.attachments:
        maintype, subtype = _mime_type(attachment.content_type)
        if attachment.inline:
            cid = f"<{(attachment.content_id or attachment.filename).strip('<>')}>"
            if isinstance(html_part, MIMEPart):
                html_part.add_related(
                    attachment.content,
                    maintype=maintype,
                    subtype=subtype,
                    cid=cid,
                    filename=attachment.filename,
                    disposition="inline",
                )
            else:  # no HTML to refer to it: send it along, still with its Content-ID
                email.add_attachment(
                    attachment.content,
                    maintype=maintype,
                    subtype=subtype,
                    cid=cid,
                    filename=attachment.filename,
                    disposition="inline",
                )
        else:
            email.add_attachment(
                attachment.content,
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
            )
