"""What every provider API of the sandbox shares: the engine it runs on, scripted failures.

A :class:`ProviderAPI` answers one provider's HTTP API (its paths below ``/{name}/``) and
knows that provider's callbacks: what a delivery, a read, a failure and a reply look like.
Scripted failures (:data:`FAILURES`) are named by what happens to the message; each API turns
one into its provider's own answer (an error body and HTTP status the adapter maps to the
right category) or, where the provider reports it later, into a failure callback.

The built-in providers are subclasses, and so is a third-party adapter's fake: register it
with ``Sandbox(apis=[...])`` or :meth:`~anysend.sandbox.Sandbox.add_api` (see
``docs/sandbox.md``, "Your own provider in the sandbox").
"""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from aiohttp import web

from anysend._exceptions import ConfigurationError

if TYPE_CHECKING:
    from anysend.sandbox._callbacks import Callback
    from anysend.sandbox._keys import Credentials
    from anysend.sandbox._state import Inbox, SandboxMessage
    from anysend.sandbox._webpush import Subscription

__all__ = [
    "ALIASES",
    "FAILURES",
    "Engine",
    "ProviderAPI",
    "Refusal",
    "failure_kind",
    "json_response",
]

#: Scripted failures, by what happens (see docs/sandbox.md for each provider's answer).
FAILURES: dict[str, str] = {
    "invalid_number": "the address does not exist or is malformed (refused at once)",
    "unsubscribed": "the recipient opted out or blocked the sender",
    "bounce": "accepted, then the delivery fails (a bounce, an undeliverable number, a dead token)",
    "rate_limited": "the provider throttles the request (429 or its own code)",
    "unavailable": "the provider has a server error (5xx)",
    "auth": "the provider refuses the credentials",
    "outside_window": "a chat app's 24-hour window is closed (WhatsApp)",
}
#: Other names accepted for the failures.
ALIASES: dict[str, str] = {
    "invalid_recipient": "invalid_number",
    "invalid_address": "invalid_number",
    "invalid_email": "invalid_number",
    "invalid_token": "invalid_number",
    "opted_out": "unsubscribed",
    "blocked": "unsubscribed",
    "undeliverable": "bounce",
    "unregistered": "bounce",
    "throttled": "rate_limited",
    "server_error": "unavailable",
}


def failure_kind(name: str) -> str:
    """The failure a name stands for.

    Raises:
        ConfigurationError: the name is unknown.
    """
    kind = ALIASES.get(name, name)
    if kind not in FAILURES:
        known = ", ".join(sorted({*FAILURES, *ALIASES}))
        raise ConfigurationError(f"the sandbox has no scripted failure {name!r} (known: {known})")
    return kind


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer, compact, UTF-8.

    Args:
        data: what to encode.
        status: the HTTP status.
        headers: extra headers (``Retry-After``, say).

    Returns:
        The aiohttp response to return from :meth:`ProviderAPI.handle`.
    """
    return web.Response(
        body=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


class Refusal(Exception):
    """Answer the request with this response (a provider error).

    Raise it anywhere below :meth:`ProviderAPI.handle` (:meth:`ProviderAPI.check_failure`
    does); the sandbox answers with ``response``.

    Args:
        response: the provider's error answer.
    """

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class Engine(Protocol):
    """What a provider API uses of the sandbox (the :class:`~anysend.sandbox.Sandbox` itself).

    Attributes:
        inbox: the messages; ``accept`` adds to it, ``inbox.get(id)`` finds one.
        rng: the seeded random source for simulated decisions.
        ids: the seeded random source for ids (see :meth:`hex`).
        subscriptions: the Web Push subscriptions, by name.
        read_probability: the chance a delivered message is read later.
        webhook_url: where callbacks go (``{webhook_url}/{provider}``), or ``None``.
    """

    inbox: Inbox
    rng: random.Random
    ids: random.Random
    subscriptions: dict[str, Subscription]
    read_probability: float
    webhook_url: str | None

    @property
    def credentials(self) -> Credentials:
        """The sandbox's credentials."""

    def now(self) -> datetime:
        """The clock's wall time."""

    def epoch(self) -> float:
        """The clock's wall time as unix seconds."""

    def failure(self, address: str) -> str | None:
        """The failure to act out for a send to ``address`` (scripted, else random)."""

    def accept(self, api: ProviderAPI, message: SandboxMessage, failure: str | None) -> None:
        """Keep an accepted message and schedule what happens to it."""

    def hex(self, size: int, upper: bool = False) -> str:
        """Random hex digits for ids."""


class ProviderAPI:
    """One provider's API on the sandbox (subclasses fill in the provider's shapes).

    The sandbox makes one instance per sandbox, passing itself as the engine, and routes every
    request to ``/{name}/...`` to :meth:`handle`. A subclass sets :attr:`name` (the adapter's
    name, since ``Client(sandbox=...)`` sends to ``{sandbox URL}/{adapter name}``) and
    overrides :meth:`handle` (check the credentials, call :meth:`check_failure`, make a
    :class:`~anysend.sandbox.SandboxMessage` and hand it to ``engine.accept``, answer as the
    provider does) and :meth:`refusal`; it overrides :meth:`delivered`, :meth:`read` and
    :meth:`failed` for the callbacks the provider posts.

    Args:
        engine: the sandbox it runs on.

    Attributes:
        name: the provider's name (the path prefix and the callback path).
        asynchronous: failures this provider reports in a callback after accepting the
            message, instead of refusing the request.
        read_status: the inbox status of a read message (``read`` or ``opened``), or ``None``
            when the provider reports no reads.
    """

    name: ClassVar[str] = ""
    asynchronous: ClassVar[frozenset[str]] = frozenset({"bounce"})
    read_status: ClassVar[str | None] = None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Answer a request to ``/{name}/{path}`` (``404`` unless overridden).

        A ``ValueError``, ``KeyError``, ``TypeError`` or ``AttributeError`` raised here (a
        body the fake cannot read) is answered ``400``; a :class:`Refusal` with its response.
        """
        raise web.HTTPNotFound()

    def refusal(self, kind: str, address: str) -> web.Response:
        """The provider's answer to a request that fails with ``kind`` (not asynchronous).

        Args:
            kind: a :data:`FAILURES` name (``invalid_number``, ``rate_limited``, ...).
            address: the address the request was for.

        Returns:
            The provider's error answer (status and body its adapter maps to the category).
        """
        raise NotImplementedError(f"{type(self).__name__} has no refusal for {kind!r}")

    def check_failure(self, address: str) -> str | None:
        """Act out the failure scripted for ``address`` (or drawn by ``failure_rate``).

        Returns:
            ``None`` when the send goes through, or the failure to report later (one of
            :attr:`asynchronous`: pass it to ``engine.accept``).

        Raises:
            Refusal: the failure is answered at once (with :meth:`refusal`).
        """
        kind = self.engine.failure(address)
        if kind is None:
            return None
        if kind in self.asynchronous:
            return kind
        raise Refusal(self.refusal(kind, address))

    def callback_url(self) -> str | None:
        """Where this provider's callbacks go: ``{webhook_url}/{name}``, or ``None``."""
        base = self.engine.webhook_url
        return f"{base}/{self.name}" if base else None

    # -- what happens later (callbacks; ``None`` when the provider sends none) -------------------

    def delivered(self, message: SandboxMessage) -> Callback | None:
        """The callback saying the message was delivered."""
        return None

    def read(self, message: SandboxMessage) -> Callback | None:
        """The callback saying the message was read or opened."""
        return None

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """The status, error text and callback of an asynchronous failure."""
        return "undeliverable", FAILURES[kind], None

    def can_read(self, message: SandboxMessage) -> bool:
        """Whether this message can get a read or opened callback."""
        return self.read_status is not None

    def reply(
        self, message: SandboxMessage, replied_to: SandboxMessage | None, name: str
    ) -> Callback | None:
        """The inbound callback for a simulated reply.

        Raises:
            ConfigurationError: the provider's adapter reads no inbound messages.
        """
        raise ConfigurationError(f"the sandbox cannot simulate replies through {self.name}")
