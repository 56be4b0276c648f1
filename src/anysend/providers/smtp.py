"""``SMTP``: email through any SMTP server (your relay, Postfix, or a mail service's SMTP door).

One adapter serves both clients: ``send`` talks to the server with the standard library's
:mod:`smtplib` (``Client``), ``asend`` with `aiosmtplib <https://aiosmtplib.readthedocs.io>`_
(``AsyncClient``; ``pip install "anysend[smtp]"``). Each path keeps one open connection per
adapter and reuses it for the next message; ``close()`` / ``aclose()`` (called by the clients
on exit) end it with ``QUIT``.

Settings (:class:`SMTPSettings`):

* ``host`` (required), ``port`` (587 for ``starttls``, 465 for ``tls``, 25 for ``none``);
* ``username`` and ``password``: log in (``AUTH``) when a username is given;
* ``security``: ``"starttls"`` (default), ``"tls"`` (implicit TLS, "SMTPS") or ``"none"``;
* ``verify`` (default ``True``) and ``ca_file``: certificate checks (see TLS below);
* ``sender``: the default ``From`` (``Message.sender`` wins);
* ``timeout`` (30 s per network operation), ``local_hostname`` (the name sent in ``EHLO``),
  ``reuse_connection`` (default ``True``).

Example:
    ```python
    import anysend
    from anysend.providers.smtp import SMTP

    smtp = SMTP(
        host="smtp.example.com",
        username="shop",
        password="app-password",
        sender="Shop <shop@example.com>",
    )
    with anysend.Client([smtp]) as client:
        client.send(
            anysend.Message(subject="Back in stock", text="Your size is back"),
            to=anysend.Recipient(email="ann@example.com", name="Ann"),
        ).raise_for_status()
    ```

The message:
    A MIME message built with :mod:`email` (``From``, ``To`` with the recipient's name,
    ``Cc``, ``Reply-To``, ``Subject``, ``Date``, ``Message-ID``, ``X-Anysend-Message-Id``,
    custom headers; text and HTML as ``multipart/alternative``, inline images as
    ``multipart/related`` parts with a ``Content-ID``, files as ``multipart/mixed``). Bcc
    addresses are envelope recipients only, never a header. A message with ``unsubscribe_url``
    gets ``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
    (RFC 8058); a ``marketing`` message without one is refused. A line break (CR, LF, or any
    other character Python's email parser ends a line at) or NUL in anything that becomes a
    header (a header injection) is refused with :class:`~anysend.ContentError` before
    connecting. Non-ASCII attachment file names are written RFC 2231-encoded
    (``filename*=utf-8''...``), or as UTF-8 when the message needs SMTPUTF8 anyway.
    The receipt's ``provider_message_id`` is the ``Message-ID`` (without angle brackets) and
    ``raw`` the server's final reply, such as ``"250 2.0.0 Ok: queued as 4BX2"``; when the
    server refused some recipients but took the message, ``raw`` is
    ``{"reply": ..., "refused": {address: reply}}``.

TLS:
    ``starttls`` connects in plain text and upgrades with ``STARTTLS``; a server that does
    not offer it is an error (category ``configuration``), never a silent fallback to plain
    text. ``tls`` speaks TLS from the first byte. ``none`` sends in clear text and refuses to
    log in to any host but the local machine. Certificates are verified against the system's
    CAs, or against ``ca_file`` for a private CA. A certificate that does not verify fails the
    attempt with category ``configuration`` (retrying would not help; the next provider is
    tried). ``verify=False`` turns checks off, and each adapter built so emits an
    :class:`~anysend.InsecureTransportWarning` and logs a warning: the connection is then
    encrypted but not authenticated.

Errors:
    Every failure is a :class:`~anysend.ProviderError` with ``status_code`` (the SMTP reply
    code), ``code`` (the enhanced status code, such as ``"5.1.1"``) and ``raw`` (the reply).
    Its category comes from :func:`category_for_reply`:

    | What happened                                                | Category                    |
    |--------------------------------------------------------------|-----------------------------|
    | refused connection, DNS failure, connection lost             | `unavailable` (retried)     |
    | timeout before the message was handed over                   | `timeout` (retried)         |
    | timeout or connection lost after `DATA`                      | `ambiguous_timeout`         |
    | certificate did not verify; no STARTTLS; no AUTH offered     | `configuration`             |
    | 530, 534, 535, 5.7.8, 5.7.9 (authentication)                 | `auth`                      |
    | 421 and other 4xx                                            | `unavailable` (retried)     |
    | 4.7.x (throttling, greylisting)                              | `rate_limited` (retried)    |
    | 550, 551, 553, 5.1.x, 5.2.1 (the recipient)                  | `invalid_recipient`         |
    | 552, 5.2.3, 5.3.4 (too big)                                  | `payload_too_large`         |
    | 554, 5.7.x (policy, spam)                                    | `content_rejected`          |
    | 538, 5.7.11, 5.1.7, 5.1.8; sender refused at `MAIL FROM`     | `configuration`             |
    | any other 5xx to the session (greeting, EHLO, STARTTLS)      | `configuration`             |
    | other 5xx                                                    | `unknown` (not retried)     |

    An `ambiguous_timeout` is never re-sent (SMTP has no idempotency key): the message may
    have been accepted. Only when every recipient is refused does the send fail, with the
    first refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from anysend._email import ComposedEmail, compose_email, parse_mailbox, unsafe
from anysend._exceptions import (
    ConfigurationError,
    ContentError,
    ErrorCategory,
    InvalidRecipientError,
    ProviderError,
    warn_insecure,
)
from anysend._models import Channel, OutboundMessage
from anysend._results import Receipt
from anysend.providers._base import Capabilities, Provider, ProviderSettings

if TYPE_CHECKING:
    import aiosmtplib

__all__ = ["SMTP", "ComposedEmail", "SMTPSettings", "Stage", "category_for_reply"]

logger = logging.getLogger("anysend")

#: Where in the SMTP conversation a reply came: the session (greeting, EHLO, STARTTLS,
#: AUTH), the sender (``MAIL FROM``), a recipient (``RCPT TO``) or the message (``DATA``).
Stage = Literal["connect", "mail", "rcpt", "data"]

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_PIP_HINT = 'the async SMTP path needs aiosmtplib: pip install "anysend[smtp]"'

# -- reply codes -> categories --------------------------------------------------------------------

_E = ErrorCategory

#: Enhanced status codes (RFC 3463), most specific first: "class.subject.detail", then
#: "class.subject". Checked when the enhanced class agrees with the reply code's class.
_ENHANCED: dict[str, ErrorCategory] = {
    "5.1.7": _E.CONFIGURATION,  # bad sender mailbox syntax
    "5.1.8": _E.CONFIGURATION,  # bad sender's system address
    "5.1": _E.INVALID_RECIPIENT,  # bad destination mailbox, system, syntax, moved
    "5.2.1": _E.INVALID_RECIPIENT,  # mailbox disabled
    "5.2.3": _E.PAYLOAD_TOO_LARGE,  # message length exceeds administrative limit
    "5.3.4": _E.PAYLOAD_TOO_LARGE,  # message too big for system
    "5.7.8": _E.AUTH,  # authentication credentials invalid
    "5.7.9": _E.AUTH,  # authentication mechanism too weak
    "5.7.11": _E.CONFIGURATION,  # encryption required
    "5.7": _E.CONTENT_REJECTED,  # security or policy (spam, not authorised)
    "4.7": _E.RATE_LIMITED,  # throttling, greylisting, too many connections
}

#: Reply codes (RFC 5321) when the enhanced code says nothing more specific.
_CODES: dict[int, ErrorCategory] = {
    421: _E.UNAVAILABLE,  # service not available, closing the channel
    530: _E.AUTH,  # authentication required
    534: _E.AUTH,  # authentication mechanism too weak
    535: _E.AUTH,  # authentication credentials invalid
    538: _E.CONFIGURATION,  # encryption required for the authentication mechanism
    550: _E.INVALID_RECIPIENT,  # mailbox unavailable (user unknown)
    551: _E.INVALID_RECIPIENT,  # user not local
    552: _E.PAYLOAD_TOO_LARGE,  # exceeded storage allocation
    553: _E.INVALID_RECIPIENT,  # mailbox name not allowed (bad address)
    554: _E.CONTENT_REJECTED,  # transaction failed (policy, spam)
}

_AUTH_CODES = frozenset({530, 534, 535})
_ENHANCED_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


def category_for_reply(
    code: int, enhanced: str | None = None, *, stage: Stage | None = None
) -> ErrorCategory:
    """The :class:`~anysend.ErrorCategory` of an SMTP error reply.

    The reply code decides unless the enhanced status code (RFC 3463, such as ``"5.1.1"``)
    is more specific; ``stage`` then adjusts for where in the conversation the reply came.
    Retries follow the category (``unavailable`` and ``rate_limited`` are retried).

    | Reply                        | Category                                   |
    |------------------------------|--------------------------------------------|
    | 530, 534, 535                | `auth` (whatever the enhanced code)        |
    | enhanced 4.7.x               | `rate_limited` (throttling, greylisting)   |
    | enhanced 5.1.7, 5.1.8        | `configuration` (the sender's address)     |
    | enhanced 5.1.x, 5.2.1        | `invalid_recipient`                        |
    | enhanced 5.2.3, 5.3.4        | `payload_too_large`                        |
    | enhanced 5.7.8, 5.7.9        | `auth`                                     |
    | enhanced 5.7.11, code 538    | `configuration` (encryption required)      |
    | enhanced 5.7.x               | `content_rejected` (policy, spam)          |
    | 421, other 4xx               | `unavailable`                              |
    | 550, 551, 553                | `invalid_recipient`                        |
    | 552                          | `payload_too_large`                        |
    | 554                          | `content_rejected`                         |
    | other 5xx, anything else     | `unknown`                                  |

    An enhanced code whose class differs from the reply code's is ignored.

    By stage:

    * ``connect`` (greeting, EHLO, STARTTLS, AUTH): a 5xx that is not ``auth`` is
      ``configuration``: the server refuses the session, not this message.
    * ``mail``: a refusal of the recipient or content kind is ``configuration``: what was
      refused is the sender.
    * ``rcpt``: a bare 552 is ``unavailable`` (RFC 5321 4.5.3.1.10: too many recipients).
    * ``data``: a bare 550, 551 or 553 is ``content_rejected``: the recipients were already
      accepted, so the refusal is of the message. An enhanced 5.1.x stays
      ``invalid_recipient``.

    Args:
        code: the three-digit reply code.
        enhanced: the enhanced status code, if the reply had one.
        stage: where in the conversation the reply came, if known.

    Returns:
        The category.
    """
    category = _category(code, enhanced)
    if stage == "connect":
        if code >= 500 and category is not _E.AUTH:
            return _E.CONFIGURATION
    elif stage == "mail":
        if category in (_E.INVALID_RECIPIENT, _E.CONTENT_REJECTED):
            return _E.CONFIGURATION
    elif stage == "rcpt":
        if code == 552 and enhanced is None:
            return _E.UNAVAILABLE
    elif stage == "data" and category is _E.INVALID_RECIPIENT and enhanced is None:
        return _E.CONTENT_REJECTED
    return category


def _category(code: int, enhanced: str | None) -> ErrorCategory:
    if code in _AUTH_CODES:
        return _E.AUTH
    if enhanced and enhanced[0] == str(code)[0]:
        klass, subject, detail = enhanced.split(".")
        for key in (f"{klass}.{subject}.{detail}", f"{klass}.{subject}"):
            if key in _ENHANCED:
                return _ENHANCED[key]
    if code in _CODES:
        return _CODES[code]
    if 400 <= code < 500:
        return _E.UNAVAILABLE
    return _E.UNKNOWN


def _enhanced_code(text: str) -> str | None:
    """The enhanced status code at the start of a reply's text, if any."""
    match = _ENHANCED_RE.match(text.lstrip())
    return ".".join(match.groups()) if match else None


def _reply_text(code: int, message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


# -- settings -------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SMTPSettings(ProviderSettings):
    """Settings of :class:`SMTP`.

    Attributes:
        host: the server's name or IP address.
        port: the port; defaults to 587 for ``starttls``, 465 for ``tls`` and 25 for ``none``.
        username: the login; with it, the adapter authenticates (``AUTH``).
        password: the password (required with ``username``).
        security: ``"starttls"`` (upgrade a plain connection; required, never skipped),
            ``"tls"`` (implicit TLS) or ``"none"`` (clear text; no login except to the
            local machine).
        verify: check the server's certificate and name (on by default; turning it off
            emits an :class:`~anysend.InsecureTransportWarning` and logs a warning).
        ca_file: a PEM file of CA certificates to trust instead of the system's (a private
            CA).
        sender: the default ``From`` address, such as ``"Shop <shop@example.com>"``.
        timeout: seconds allowed for each network operation.
        local_hostname: the name this machine gives in ``EHLO`` (its FQDN by default).
        reuse_connection: keep the connection open for the next message (``True``), or
            connect and ``QUIT`` for each message.
    """

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    verify: bool = True
    ca_file: str | None = None
    sender: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    local_hostname: str | None = None
    reuse_connection: bool = True

    @field_validator("host", "local_hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is not None and any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("host names cannot contain whitespace or control characters")
        return value

    @field_validator("username", "sender", "ca_file")
    @classmethod
    def _no_line_breaks(cls, value: str | None) -> str | None:
        if value is not None and unsafe(value):
            raise ValueError("CR, LF and NUL are not allowed")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SMTPSettings:
        if self.port is None:
            object.__setattr__(self, "port", _DEFAULT_PORTS[self.security])
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.username is not None and self.security == "none" and not _is_loopback(self.host):
            raise ValueError(
                f"refusing to send the SMTP password in clear text to {self.host}: "
                "use security='starttls' or 'tls'"
            )
        if self.sender is not None:
            try:
                parse_mailbox(self.sender, "sender")
            except (ContentError, InvalidRecipientError) as exc:
                raise ValueError(f"sender: {exc}") from exc
        return self


# -- the adapter ----------------------------------------------------------------------------------


class _ConnectionLost(Exception):
    """Internal: a kept connection died before the message was handed over."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


class SMTP(Provider):
    """Sends email through an SMTP server: smtplib for ``Client``, aiosmtplib for ``AsyncClient``.

    See the module documentation for the settings, TLS and the error mapping.

    Example:
        ```python
        import anysend
        from anysend.providers.smtp import SMTP

        smtp = SMTP(host="smtp.example.com", username="shop", password="app-password",
                    sender="shop@example.com")
        async with anysend.AsyncClient([smtp]) as client:
            await client.send(anysend.Message(subject="Hi", text="Hello"),
                              to=anysend.Recipient(email="ann@example.com"))
        ```
    """

    name: ClassVar[str] = "smtp"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.EMAIL})
    capabilities: ClassVar[Capabilities] = Capabilities(
        html=True,
        attachments=True,
        inline_images=True,
        cc_bcc=True,
        reply_to=True,
        headers=True,
        metadata=False,
        idempotency=False,
    )
    Settings: ClassVar[type[ProviderSettings]] = SMTPSettings
    settings: SMTPSettings

    def __init__(self, settings: SMTPSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._tls = self._tls_context()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._conn: smtplib.SMTP | None = None
        self._alock: asyncio.Lock | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._apid = self._pid
        self._aconn: aiosmtplib.SMTP | None = None

    @property
    def _port(self) -> int:
        return self.settings.port or _DEFAULT_PORTS[self.settings.security]

    def _tls_context(self) -> ssl.SSLContext | None:
        settings = self.settings
        if settings.security == "none":
            return None
        try:
            context = ssl.create_default_context(cafile=settings.ca_file)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigurationError(f"cannot load ca_file {settings.ca_file!r}: {exc}") from exc
        if not settings.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            # Every time it is configured: an InsecureTransportWarning and a log line.
            warn_insecure(f"the SMTP server {settings.host} (smtp verify=False)", stacklevel=4)
        return context

    # -- composing --------------------------------------------------------------------------------

    def compose(self, message: OutboundMessage) -> ComposedEmail:
        """Build the MIME message and the envelope for ``message`` (no I/O).

        See :func:`anysend._email.compose_email`; the sender defaults to the settings'.
        """
        return compose_email(message, self.settings.sender, adapter="SMTP")

    # -- errors -----------------------------------------------------------------------------------

    def _reply_error(
        self, code: int, message: bytes | str, stage: Stage, what: str
    ) -> ProviderError:
        text = _reply_text(code, message)
        enhanced = _enhanced_code(text[4:])
        return ProviderError(
            f"{self.settings.host} refused {what}: {text}",
            category=category_for_reply(code, enhanced, stage=stage),
            provider=self.name,
            status_code=code,
            code=enhanced,
            raw=text,
        )

    def _failure(
        self,
        exc: BaseException,
        *,
        refusals: tuple[type[BaseException], ...],
        after_data: bool = False,
    ) -> ProviderError:
        """Map an exception of the network, TLS or SMTP library to a ProviderError."""
        if isinstance(exc, ProviderError):
            return exc
        host = self.settings.host
        error: ProviderError
        certificate = _find(exc, ssl.SSLCertVerificationError)
        reply = _reply_of(exc)
        if reply is not None:
            return self._reply_error(*reply, "connect", "the session")
        if after_data:
            error = ProviderError(
                f"no answer from {host} after the message was sent: {_describe(exc)}",
                category=_E.AMBIGUOUS_TIMEOUT,
                provider=self.name,
            )
        elif certificate is not None:
            error = ProviderError(
                f"the TLS certificate of {host} did not verify ({_describe(certificate)}); set "
                "ca_file to the CA that signed it",
                category=_E.CONFIGURATION,
                provider=self.name,
            )
        elif _find(exc, TimeoutError) is not None:
            error = ProviderError(
                f"timed out talking to {host}:{self._port}: {_describe(exc)}",
                category=_E.TIMEOUT,
                provider=self.name,
            )
        elif isinstance(exc, (ConnectionError, smtplib.SMTPServerDisconnected)) or not isinstance(
            exc, refusals
        ):
            error = ProviderError(
                f"could not reach {host}:{self._port}: {_describe(exc)}",
                category=_E.UNAVAILABLE,
                provider=self.name,
            )
        else:  # the library refused to go on: no STARTTLS, no AUTH, no usable mechanism
            error = ProviderError(
                f"{host} cannot be used as configured: {_describe(exc)}",
                category=_E.CONFIGURATION,
                provider=self.name,
            )
        error.__cause__ = exc
        return error

    def _no_starttls(self) -> ProviderError:
        return ProviderError(
            f"{self.settings.host} does not offer STARTTLS; refusing to send in clear text "
            "(use security='tls' for implicit TLS, or 'none' if clear text is intended)",
            category=_E.CONFIGURATION,
            retryable=False,
            provider=self.name,
        )

    def _mail_options(
        self, has_extension: Callable[[str], bool], composed: ComposedEmail, size: int
    ) -> list[str]:
        options: list[str] = []
        if composed.smtputf8:
            if not has_extension("smtputf8"):
                raise ProviderError(
                    f"{self.settings.host} does not support SMTPUTF8, needed for a non-ASCII "
                    "address",
                    category=_E.CONFIGURATION,
                    provider=self.name,
                )
            options.append("SMTPUTF8")
        if has_extension("size"):
            options.append(f"SIZE={size}")
        return options

    def _all_refused(self, refused: dict[str, tuple[int, str]]) -> ProviderError:
        address, (code, text) = next(iter(refused.items()))
        error = self._reply_error(code, text, "rcpt", f"every recipient ({address} first)")
        if len(refused) > 1:
            error.raw = {"reply": error.raw, "refused": _refusal_texts(refused)}
        return error

    def _receipt(
        self, composed: ComposedEmail, code: int, reply: bytes | str, refused: dict[str, Any]
    ) -> Receipt:
        text = _reply_text(code, reply)
        if refused:
            logger.info("smtp: %s refused %d recipient(s)", self.settings.host, len(refused))
            return Receipt(
                provider_message_id=composed.message_id,
                raw={"reply": text, "refused": _refusal_texts(refused)},
            )
        return Receipt(provider_message_id=composed.message_id, raw=text)

    # -- the sync path (smtplib) ------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> Receipt:
        """Send ``message`` with :mod:`smtplib`, reusing the open connection.

        Raises:
            ContentError: unsafe headers, or marketing email without ``unsubscribe_url``
                (before connecting).
            ConfigurationError: no sender.
            ProviderError: the server refused or failed (see the module's table).
        """
        composed = self.compose(message)
        data = composed.as_bytes()
        with self._sync_lock():
            try:
                for attempt in range(2):
                    reused = self._conn is not None
                    try:
                        return self._transact(self._connection(), composed, data)
                    except _ConnectionLost as lost:
                        if reused and attempt == 0:
                            logger.debug("smtp: kept connection was closed; reconnecting")
                            continue
                        raise lost.error from lost.error.__cause__
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                if not self.settings.reuse_connection:
                    self._quit()

    def close(self) -> None:
        """End the sync connection with QUIT (the next send reconnects)."""
        with self._sync_lock():
            self._quit()

    def _sync_lock(self) -> threading.Lock:
        pid = os.getpid()
        if pid != self._pid:  # a forked child: the socket belongs to the parent
            self._pid = pid
            self._lock = threading.Lock()
            if self._conn is not None:
                self._conn.close()  # closes this process's descriptor only; no QUIT
                self._conn = None
        return self._lock

    def _quit(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            conn.close()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        conn: smtplib.SMTP | None = None
        try:
            # Connecting in the constructor records the host name that TLS checks.
            if settings.security == "tls":
                conn = smtplib.SMTP_SSL(
                    settings.host,
                    self._port,
                    local_hostname=settings.local_hostname,
                    timeout=settings.timeout,
                    context=self._tls,
                )
            else:
                conn = smtplib.SMTP(
                    settings.host,
                    self._port,
                    local_hostname=settings.local_hostname,
                    timeout=settings.timeout,
                )
            conn.ehlo_or_helo_if_needed()
            if settings.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise self._no_starttls()
                code, reply = conn.starttls(context=self._tls)
                if code != 220:
                    raise self._reply_error(code, reply, "connect", "STARTTLS")
                conn.ehlo_or_helo_if_needed()
            if settings.username is not None and settings.password is not None:
                conn.login(settings.username, settings.password.get_secret_value())
        except OSError as exc:  # smtplib's errors, socket errors, ssl errors, timeouts
            if conn is not None:
                conn.close()
            raise self._failure(exc, refusals=(smtplib.SMTPException,)) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return conn

    def _refused(
        self, conn: smtplib.SMTP, code: int, reply: bytes | str, stage: Stage, what: str
    ) -> ProviderError | _ConnectionLost:
        """A refusal: reset the envelope (or drop a closing connection) and build the error."""
        error = self._reply_error(code, reply, stage, what)
        if code == 421:  # the server is closing the connection
            self._discard()
            return _ConnectionLost(error) if stage != "data" else error
        self._reset(conn)
        return error

    def _reset(self, conn: smtplib.SMTP) -> None:
        """Clear the envelope with RSET so that the connection can serve the next message."""
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._discard()

    def _transact(self, conn: smtplib.SMTP, composed: ComposedEmail, data: bytes) -> Receipt:
        stage: Stage = "mail"
        refused: dict[str, tuple[int, str]] = {}
        try:
            options = self._mail_options(conn.has_extn, composed, len(data))
            code, reply = conn.mail(composed.mail_from, options)
            if code != 250:
                raise self._refused(conn, code, reply, "mail", f"the sender {composed.mail_from}")
            stage = "rcpt"
            for address in composed.rcpt_to:
                code, reply = conn.rcpt(address)
                if code not in (250, 251):
                    if code == 421:
                        raise self._refused(conn, code, reply, "rcpt", f"recipient {address}")
                    refused[address] = (code, _reply_text(code, reply)[4:])
            if len(refused) == len(composed.rcpt_to):
                self._reset(conn)
                raise self._all_refused(refused)
            stage = "data"
            code, reply = conn.data(data)
        except smtplib.SMTPDataError as exc:  # the DATA command itself was refused
            raise self._refused(conn, exc.smtp_code, exc.smtp_error, "data", "the message") from exc
        except OSError as exc:  # connection lost or timed out (smtplib errors are OSErrors)
            self._discard()
            error = self._failure(exc, refusals=(), after_data=stage == "data")
            if error.category is _E.UNAVAILABLE:
                raise _ConnectionLost(error) from exc
            raise error from exc
        if code != 250:
            raise self._refused(conn, code, reply, "data", "the message")
        return self._receipt(composed, code, reply, refused)

    # -- the async path (aiosmtplib) --------------------------------------------------------------

    async def asend(self, message: OutboundMessage) -> Receipt:
        """Send ``message`` with aiosmtplib, reusing the open connection.

        Raises:
            ConfigurationError: aiosmtplib is not installed, or no sender.
            ContentError: as for :meth:`send`.
            ProviderError: as for :meth:`send`.
        """
        try:
            import aiosmtplib  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(_PIP_HINT) from exc
        composed = self.compose(message)
        data = composed.as_bytes()
        async with self._async_lock():
            try:
                for attempt in range(2):
                    reused = self._aconn is not None
                    try:
                        conn = self._aconn if self._aconn is not None else await self._aconnect()
                        self._aconn = conn
                        return await self._atransact(conn, composed, data)
                    except _ConnectionLost as lost:
                        if reused and attempt == 0:
                            logger.debug("smtp: kept connection was closed; reconnecting")
                            continue
                        raise lost.error from lost.error.__cause__
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                if not self.settings.reuse_connection:
                    await self._aquit()

    async def aclose(self) -> None:
        """End the async connection with QUIT (the next send reconnects)."""
        if self._aconn is None:
            return
        async with self._async_lock():
            await self._aquit()

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        pid = os.getpid()
        if self._alock is None or self._aloop is not loop or self._apid != pid:
            # A new event loop or a forked child: the old connection cannot be used here.
            stale, self._aconn = self._aconn, None
            if stale is not None and self._apid == pid:  # same process: close, without QUIT
                with contextlib.suppress(Exception):  # its loop may be closed already
                    _hang_up(stale)
            self._alock = asyncio.Lock()
            self._aloop = loop
            self._apid = pid
        return self._alock

    async def _aquit(self) -> None:
        import aiosmtplib

        conn, self._aconn = self._aconn, None
        if conn is None:
            return
        transport = conn.transport
        try:
            if conn.is_connected:
                await conn.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            _hang_up(conn, transport)

    def _adiscard(self, transport: asyncio.BaseTransport | None = None) -> None:
        conn, self._aconn = self._aconn, None
        if conn is not None:
            _hang_up(conn, transport)

    async def _aconnect(self) -> aiosmtplib.SMTP:
        import aiosmtplib

        settings = self.settings
        conn = aiosmtplib.SMTP(
            hostname=settings.host,
            port=self._port,
            local_hostname=settings.local_hostname,
            timeout=settings.timeout,
            use_tls=settings.security == "tls",
            start_tls=False,
            tls_context=self._tls,
        )
        transport: asyncio.BaseTransport | None = None
        try:
            await conn.connect()
            transport = conn.transport
            await conn.ehlo()
            if settings.security == "starttls":
                if not conn.supports_extension("starttls"):
                    raise self._no_starttls()
                await conn.starttls()
                transport = conn.transport
                await conn.ehlo()
            if settings.username is not None and settings.password is not None:
                await conn.login(settings.username, settings.password.get_secret_value())
        except (aiosmtplib.SMTPException, OSError) as exc:
            _hang_up(conn, transport)
            raise self._failure(exc, refusals=(aiosmtplib.SMTPException,)) from exc
        except BaseException:
            _hang_up(conn, transport)
            raise
        return conn

    async def _arefused(
        self,
        conn: aiosmtplib.SMTP,
        transport: asyncio.BaseTransport | None,
        code: int,
        reply: str,
        stage: Stage,
        what: str,
    ) -> ProviderError | _ConnectionLost:
        error = self._reply_error(code, reply, stage, what)
        if code == 421 or not conn.is_connected:
            self._adiscard(transport)
            return _ConnectionLost(error) if stage != "data" else error
        await self._areset(conn, transport)
        return error

    async def _areset(self, conn: aiosmtplib.SMTP, transport: asyncio.BaseTransport | None) -> None:
        import aiosmtplib

        try:
            await conn.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._adiscard(transport)

    async def _atransact(
        self, conn: aiosmtplib.SMTP, composed: ComposedEmail, data: bytes
    ) -> Receipt:
        import aiosmtplib

        stage: Stage = "mail"
        refused: dict[str, tuple[int, str]] = {}
        encoding = "utf-8" if composed.smtputf8 else "ascii"
        transport = conn.transport  # kept: aiosmtplib forgets it when a command fails
        try:
            options = self._mail_options(conn.supports_extension, composed, len(data))
            try:
                await conn.mail(composed.mail_from, options=options, encoding=encoding)
            except aiosmtplib.SMTPSenderRefused as exc:
                what = f"the sender {composed.mail_from}"
                raise await self._arefused(
                    conn, transport, exc.code, exc.message, "mail", what
                ) from exc
            stage = "rcpt"
            for address in composed.rcpt_to:
                try:
                    await conn.rcpt(address, encoding=encoding)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    if exc.code == 421:
                        what = f"recipient {address}"
                        raise await self._arefused(
                            conn, transport, exc.code, exc.message, "rcpt", what
                        ) from exc
                    refused[address] = (exc.code, exc.message)
            if len(refused) == len(composed.rcpt_to):
                await self._areset(conn, transport)
                raise self._all_refused(refused)
            stage = "data"
            response = await conn.data(data)
        except aiosmtplib.SMTPDataError as exc:
            raise await self._arefused(
                conn, transport, exc.code, exc.message, "data", "the message"
            ) from exc
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            self._adiscard(transport)
            error = self._failure(exc, refusals=(), after_data=stage == "data")
            if error.category is _E.UNAVAILABLE:
                raise _ConnectionLost(error) from exc
            raise error from exc
        return self._receipt(composed, response.code, response.message, refused)


def _hang_up(conn: aiosmtplib.SMTP, transport: asyncio.BaseTransport | None = None) -> None:
    """Close an aiosmtplib connection now: abort the socket, with no TLS goodbye to wait for.

    aiosmtplib's own ``close()`` shuts TLS down gracefully, which waits for the server's
    answer; a server that is gone or hanging would keep the socket open.
    """
    for candidate in (transport, conn.transport):
        if isinstance(candidate, asyncio.WriteTransport):
            candidate.abort()
    conn.close()


def _refusal_texts(refused: dict[str, Any]) -> dict[str, str]:
    return {address: _reply_text(code, text) for address, (code, text) in refused.items()}


def _reply_of(exc: BaseException) -> tuple[int, bytes | str] | None:
    """The (code, text) of an SMTP error reply carried by ``exc`` (smtplib or aiosmtplib)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, exc.smtp_error
    code, message = getattr(exc, "code", None), getattr(exc, "message", None)
    if isinstance(code, int) and isinstance(message, str) and 100 <= code < 600:
        return code, message
    return None


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first exception of ``kind`` among its causes and contexts."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed: {text}"
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
