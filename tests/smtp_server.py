"""A real SMTP server on 127.0.0.1 for the SMTP adapter's tests (aiosmtpd in its own thread).

:class:`SMTPServer` wraps an aiosmtpd ``Controller`` bound to a free port: plain, STARTTLS or
implicit TLS, with or without AUTH. Its :class:`Handler` records every message and can be
told to answer a given reply to MAIL, RCPT or DATA, to hang on DATA, and counts QUITs. The
server counts the connections it accepted and can drop them all, to test reconnection.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

__all__ = ["Handler", "Received", "SMTPServer"]


@dataclass(frozen=True)
class Received:
    """One message the server accepted: its envelope and its bytes."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]

    def parsed(self) -> EmailMessage:
        """The message parsed with the modern email API (UTF-8 headers as text)."""
        if self.content.isascii():
            message = email.message_from_bytes(self.content, policy=email.policy.default)
        else:  # SMTPUTF8: the bytes parser would keep non-ASCII headers as surrogates
            text = self.content.decode("utf-8")
            message = email.message_from_string(text, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


class Handler:
    """Records messages; answers canned replies when told to.

    Attributes:
        received: the accepted messages, in order.
        mail_replies: replies for the next MAIL commands (each used once).
        rcpt_replies: per recipient address, the reply to its RCPT (every time).
        data_replies: replies for the next DATA (each used once), instead of accepting.
        hang_on_data: never answer DATA (for timeouts).
        quits: how many QUIT commands arrived.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.mail_replies: list[str] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: list[str] = []
        self.hang_on_data = False
        self.quits = 0

    async def handle_MAIL(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        if self.hang_on_data:
            await asyncio.Event().wait()  # cancelled when the client goes away
        if self.data_replies:
            return self.data_replies.pop(0)
        content = envelope.original_content or b""
        assert envelope.mail_from is not None
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                mail_options=list(envelope.mail_options),
            )
        )
        return "250 2.0.0 Ok: queued as ABC123"

    async def handle_QUIT(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"


class _Authenticator:
    """Accepts the given users' passwords (LOGIN and PLAIN)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if login in self.users and self.users[login] == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class _TrackedSMTP(SMTPProtocol):
    """aiosmtpd's protocol, registering its connection with the server while it lives."""

    def __init__(self, handler: Handler, tracker: SMTPServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._tracker = tracker
        self.socket_transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again with the TLS transport after STARTTLS; keep the first (the socket's).
        if self.socket_transport is None:
            self.socket_transport = transport
            self._tracker.live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._tracker.live.discard(self)


class _Controller(Controller):
    """A Controller on a socket bound in advance to a free port of 127.0.0.1."""

    def __init__(self, handler: Handler, tracker: SMTPServer, **kwargs: Any) -> None:
        # proto=IPPROTO_TCP as asyncio's own listeners: it turns Nagle off only for those.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)
        self._tracker = tracker

    def factory(self) -> SMTPProtocol:
        self._tracker.connections += 1
        return _TrackedSMTP(self.handler, self._tracker, **self.SMTP_kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(
            self._factory_invoker, sock=self._socket, ssl=self.ssl_context
        )


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 with a free port (start it, then stop it).

    Args:
        tls_context: offer STARTTLS with this server context.
        ssl_context: speak implicit TLS with this server context.
        users: accept AUTH for these users (only over TLS unless ``auth_require_tls`` is off).
        auth_require_tls: refuse AUTH on a connection that is not encrypted by STARTTLS.
        smtputf8: advertise SMTPUTF8.

    Attributes:
        handler: the recording handler.
        connections: how many connections the server accepted since it started.
        live: the connections open now.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        ssl_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        smtputf8: bool = False,
    ) -> None:
        self.handler = Handler()
        self.connections = 0
        self.live: set[_TrackedSMTP] = set()
        kwargs: dict[str, Any] = {
            "server_hostname": "smtp.test",
            "enable_SMTPUTF8": smtputf8,
            "ssl_context": ssl_context,
            "tls_context": tls_context,
            "auth_require_tls": auth_require_tls,
        }
        if users is not None:
            kwargs["authenticator"] = _Authenticator(users)
        self._controller = _Controller(self.handler, self, **kwargs)
        self.port: int = self._controller.port

    def start(self) -> SMTPServer:
        """Start serving; the controller's own readiness probe is not counted."""
        self._controller.start()
        self.connections = 0
        return self

    def stop(self) -> None:
        """Drop open connections, then stop the server and its thread."""
        self.drop_connections()
        self._controller.stop()

    def drop_connections(self) -> None:
        """Abort every open connection from the server's side; return once they are closed."""
        future = asyncio.run_coroutine_threadsafe(self._drop(), self._controller.loop)
        future.result(timeout=10)

    async def _drop(self) -> None:
        for connection in list(self.live):
            self.live.discard(connection)
            transport = connection.socket_transport
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()  # closes the socket in a callback scheduled now
        # Callbacks run in order: once two scheduled after the aborts have run, the sockets
        # are closed and the protocols (also behind TLS) have been told.
        for _ in range(2):
            await _next_turn()


async def _next_turn() -> None:
    """Return once the callbacks already scheduled on this loop have run."""
    loop = asyncio.get_running_loop()
    turn = loop.create_future()
    loop.call_soon(turn.set_result, None)
    await turn
