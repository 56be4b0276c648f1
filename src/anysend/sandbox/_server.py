"""``Sandbox``: the local server that speaks the providers' APIs, and its inbox.

The server is an aiohttp application: ``/{provider}/...`` answers each provider's API (see
the ``_messaging``, ``_email`` and ``_push`` modules), ``/_sandbox/api/`` is the inbox's JSON
API and event stream, ``/`` and ``/static/`` serve the inbox page. An optional SMTP server
(aiosmtpd) puts mail into the same inbox. What happens after a message is accepted
(delivered, read, bounced) is scheduled on the sandbox's clock and posted to your webhook
receiver, signed as each provider signs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from email.utils import parseaddr
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from anysend._clock import Clock, SystemClock
from anysend._exceptions import ConfigurationError
from anysend._models import PushTarget, Recipient
from anysend.sandbox._api import ProviderAPI, Refusal, failure_kind, json_response
from anysend.sandbox._email import SMTPAPI, MailgunAPI, SendGridAPI, SMTPHandler
from anysend.sandbox._keys import (
    BOT_USERNAME,
    MAILGUN_DOMAIN,
    TWILIO_SENDER,
    WHATSAPP_NUMBER,
    Credentials,
    adapters,
    environment,
)
from anysend.sandbox._messaging import TelegramAPI, TwilioAPI, WhatsAppAPI
from anysend.sandbox._push import FCMAPI, WebPushAPI
from anysend.sandbox._routes import InboxRoutes
from anysend.sandbox._state import Inbox, SandboxMessage, normalise
from anysend.sandbox._webpush import Subscription

if TYPE_CHECKING:
    from anysend.providers import Provider
    from anysend.sandbox._callbacks import Callback

__all__ = ["DEFAULT_PORT", "Sandbox", "serve"]

#: The port ``anysend sandbox`` listens on (and ``Client(sandbox=True)`` sends to).
DEFAULT_PORT = 8780
#: How often (real seconds) the scheduler looks at a clock it cannot wait on (a virtual one).
POLL = 0.02
_REPLYABLE = ("twilio", "whatsapp", "telegram", "mailgun")
_API_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_T = TypeVar("_T")


class Sandbox:
    """A local stand-in for the providers: their APIs, their callbacks, and an inbox.

    Args:
        host: the address to listen on (keep it on the loopback).
        port: the HTTP port; ``0`` picks a free one.
        webhook_url: where callbacks go: ``f"{webhook_url}/{provider}"`` (``None``: none).
        smtp_port: also run an SMTP server on this port (``0``: a free one; ``None``: none).
        seed: makes ids, failures and reads reproducible.
        latency: seconds before each API answer (a float, or ``(min, max)`` for a random one).
        failure_rate: the share of API calls answered with the provider's own 5xx or 429.
        delivery_delay: seconds until a message is delivered (and its callback posted).
        read_probability: the chance a delivered message is also read or opened later.
        clock: the clock callbacks are scheduled on (tests pass
            :class:`anysend.testing.VirtualClock` and call :meth:`run_due`).
        apis: more providers to speak: :class:`~anysend.sandbox.ProviderAPI` subclasses,
            each served at ``/{name}/`` (see :meth:`add_api`).

    Use it as a context manager (``with Sandbox() as sandbox``: a background thread), or
    ``await sandbox.start()`` / ``await sandbox.stop()`` inside a running event loop.

    Raises:
        ConfigurationError: an argument is out of range.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        webhook_url: str | None = None,
        smtp_port: int | None = None,
        seed: int | None = None,
        latency: float | tuple[float, float] = 0.0,
        failure_rate: float = 0.0,
        delivery_delay: float = 1.0,
        read_probability: float = 0.5,
        clock: Clock | None = None,
        apis: Sequence[type[ProviderAPI]] = (),
    ) -> None:
        low, high = latency if isinstance(latency, tuple) else (latency, latency)
        if not 0 <= low <= high:
            raise ConfigurationError("latency must be >= 0 (or a (min, max) pair with min <= max)")
        if not 0 <= failure_rate <= 1 or not 0 <= read_probability <= 1:
            raise ConfigurationError("failure_rate and read_probability are between 0 and 1")
        if delivery_delay < 0:
            raise ConfigurationError("delivery_delay must be >= 0")
        if not 0 <= port <= 65535 or (smtp_port is not None and not 0 <= smtp_port <= 65535):
            raise ConfigurationError("ports are between 0 and 65535")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ConfigurationError("webhook_url must be an http(s) URL")
        self.host = host
        self._port = port
        self._smtp_port = smtp_port
        self.webhook_url = webhook_url.rstrip("/") if webhook_url else None
        self.latency = (low, high)
        self.failure_rate = failure_rate
        self.delivery_delay = delivery_delay
        self.read_probability = read_probability
        self.clock: Clock = clock or SystemClock()
        # Simulation, not security: reproducible from the seed (keys come from os.urandom).
        self.rng = random.Random(seed)  # noqa: S311
        self.ids = random.Random(None if seed is None else seed + 1)  # noqa: S311
        self.inbox = Inbox(self.now)
        self.subscriptions: dict[str, Subscription] = {}
        self._credentials: Credentials | None = None
        self._failures: dict[str, list[Any]] = {}
        self._failures_lock = threading.Lock()
        self._apis: dict[str, ProviderAPI] = {
            api.name: api
            for api in (
                TwilioAPI(self),
                SendGridAPI(self),
                MailgunAPI(self),
                WhatsAppAPI(self),
                TelegramAPI(self),
                FCMAPI(self),
                WebPushAPI(self),
                SMTPAPI(self),
            )
        }
        self._callbacks: list[dict[str, Any]] = []
        self._schedule: list[tuple[float, int, Callable[[], Awaitable[None]]]] = []
        self._sequence = itertools.count()
        self._inflight: set[asyncio.Task[None]] = set()
        self._streams: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._smtp: asyncio.AbstractServer | None = None
        self._session: ClientSession | None = None
        self._thread: threading.Thread | None = None
        for api in apis:
            self.add_api(api)

    # -- the engine the provider APIs run on -----------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The sandbox's credentials (made when it starts).

        Raises:
            ConfigurationError: the sandbox has not started.
        """
        if self._credentials is None:
            raise ConfigurationError("start the sandbox first (with sandbox: or await start())")
        return self._credentials

    def now(self) -> datetime:
        """The clock's wall time."""
        return self.clock.now()

    def epoch(self) -> float:
        """The clock's wall time in unix seconds."""
        return self.clock.now().timestamp()

    def hex(self, size: int, upper: bool = False) -> str:
        """``size`` random hex digits (from the seeded id source)."""
        digits = "0123456789ABCDEF" if upper else "0123456789abcdef"
        return "".join(self.ids.choice(digits) for _ in range(size))

    def failure(self, address: str) -> str | None:
        """The failure to act out for a send to ``address``: scripted, else by failure_rate."""
        key = normalise(address)
        with self._failures_lock:
            scripted = self._failures.get(key)
            if scripted is not None:
                kind, left = scripted
                if left is not None:
                    scripted[1] = left - 1
                    if left <= 1:
                        del self._failures[key]
                return str(kind)
        if self.failure_rate and self.rng.random() < self.failure_rate:
            return self.rng.choice(("unavailable", "rate_limited"))
        return None

    def accept(self, api: ProviderAPI, message: SandboxMessage, failure: str | None) -> None:
        """Keep an accepted message; schedule its delivery (or failure) and maybe its read."""
        self.inbox.add(message)
        reads = (
            failure is None and api.can_read(message) and self.rng.random() < self.read_probability
        )

        async def deliver() -> None:
            if failure is not None:
                status, text, callback = api.failed(message, failure)
                self.inbox.set_status(message.id, status, text)
            else:
                self.inbox.set_status(message.id, "delivered")
                callback = api.delivered(message)
            await self._post(callback)
            if reads:
                self._at(self.delivery_delay, read)

        async def read() -> None:
            if api.read_status is not None and self.inbox.set_status(message.id, api.read_status):
                await self._post(api.read(message))

        self._at(self.delivery_delay, deliver)

    # -- the public API --------------------------------------------------------------------------

    def add_api(self, api: type[ProviderAPI]) -> None:
        """Teach the sandbox another provider's API (a third-party adapter's), before it starts.

        Requests to ``/{api.name}/...`` go to an instance of ``api``; the messages it accepts
        show in the inbox and its callbacks go to ``{webhook_url}/{api.name}``. Name it after
        the adapter: ``Client(sandbox=...)`` sends each adapter's requests to
        ``{sandbox URL}/{adapter name}``.

        Args:
            api: a :class:`~anysend.sandbox.ProviderAPI` subclass (the class, not an instance).

        Raises:
            ConfigurationError: it is not a ``ProviderAPI`` subclass, its name is not a plain
                lower-case path segment or is taken (a built-in provider's), or the sandbox has
                started.
        """
        if not (isinstance(api, type) and issubclass(api, ProviderAPI)):
            raise ConfigurationError(f"a sandbox API is a ProviderAPI subclass, not {api!r}")
        name = api.name
        if not _API_NAME.fullmatch(name) or name == "static":
            raise ConfigurationError(
                f"{api.__name__}.name must be the adapter's name, a lower-case path segment "
                f"(letters, digits, '-', '_'), not {name!r}"
            )
        if name in self._apis:
            raise ConfigurationError(f"the sandbox already speaks {name!r}; pick another name")
        if self._loop is not None:
            raise ConfigurationError("add sandbox APIs before the sandbox starts")
        self._apis[name] = api(self)

    @property
    def url(self) -> str:
        """The sandbox's base URL (``http://127.0.0.1:PORT``)."""
        return self.credentials.base

    @property
    def port(self) -> int:
        """The HTTP port (known once started)."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def smtp_port(self) -> int | None:
        """The SMTP port, if the SMTP server runs."""
        return self._smtp_port

    def providers(self, *names: str) -> list[Provider]:
        """Real adapters configured with the sandbox's credentials (all, or those named).

        WhatsApp comes before Twilio (the ``whatsapp`` channel goes to the Cloud API first),
        SendGrid before Mailgun and SMTP. Adapters that check times (SendGrid's and Mailgun's
        replay windows, FCM's and Web Push's tokens) read the sandbox's clock. Point a client
        at the sandbox with ``sandbox=sandbox.url``.

        Raises:
            ConfigurationError: the sandbox has not started, or a name is unknown.
        """
        found = adapters(self.credentials, self._smtp_port, names)
        for adapter in found:
            if "now" in type(adapter).__dict__:
                adapter.now = self.epoch  # type: ignore[attr-defined]
        return found

    def env(self) -> dict[str, str]:
        """The same providers as ``ANYSEND_*`` variables, with ``ANYSEND_SANDBOX_URL``."""
        return environment(self.credentials, self._smtp_port)

    def subscription(self, name: str, *, application_server_key: str | None = None) -> PushTarget:
        """A browser's Web Push subscription whose endpoint is on the sandbox.

        Args:
            name: names the subscription (``"ann-laptop"``); the same name gives the same one.
            application_server_key: bind it to this VAPID public key (base64url), as a
                browser does; pushes signed with another key are refused (``403``).

        Returns:
            The push target (``kind="webpush"``, real ``p256dh`` and ``auth`` keys).
        """
        found = self.subscriptions.get(name)
        if found is None:
            base = self.credentials.base
            endpoint = "https" + base[base.index(":") :] + f"/push/{name}"
            found = Subscription(name=name, endpoint=endpoint, server_key=application_server_key)
            self.subscriptions[name] = found
        return found.target()

    def person(
        self,
        name: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        push: PushTarget | str | Sequence[PushTarget | str] = (),
        telegram: str | int | None = None,
    ) -> Recipient:
        """Name a person: the inbox groups their addresses' messages under ``name``.

        Args:
            name: the display name and key.
            email: their email address.
            phone: their phone number (E.164; SMS and WhatsApp).
            push: their devices: web push subscriptions and FCM tokens.
            telegram: their Telegram chat id.

        Returns:
            The person as an ``anysend.Recipient`` (pass it as ``to=``).
        """
        items = [push] if isinstance(push, (PushTarget, str)) else list(push)
        targets = [
            p if isinstance(p, PushTarget) else PushTarget(kind="fcm", token=p) for p in items
        ]
        addresses = [a for a in (email, phone, str(telegram) if telegram else None) if a]
        self.inbox.person(name, [*addresses, *(t.token for t in targets)])
        return Recipient(
            name=name,
            email=email,
            phone=phone,
            push=tuple(targets),
            chat_ids={"telegram": str(telegram)} if telegram else {},
        )

    def fail(self, address: str, error: str | None, *, times: int | None = None) -> None:
        """Script a failure for every send (or the next ``times``) to ``address``.

        Args:
            address: a phone number, email address, chat id, FCM token, or web push
                subscription (its name or endpoint).
            error: what happens (:data:`~anysend.sandbox.FAILURES`: ``invalid_number``,
                ``unsubscribed``, ``bounce``, ``rate_limited``, ``unavailable``, ``auth``,
                ``outside_window``); ``None`` removes the script.
            times: how many sends fail; ``None`` for all of them.

        Raises:
            ConfigurationError: the error is unknown, or ``times`` is below 1.
        """
        if address in self.subscriptions:
            address = self.subscriptions[address].endpoint
        key = normalise(address)
        with self._failures_lock:
            if error is None:
                self._failures.pop(key, None)
                return
            if times is not None and times < 1:
                raise ConfigurationError("times must be at least 1 (or None for always)")
            self._failures[key] = [failure_kind(error), times]

    def messages(self, to: str | None = None) -> list[SandboxMessage]:
        """The inbox, oldest first: everything, or one address's or one person's messages."""
        return self.inbox.messages(to=to)

    def callbacks(self) -> list[dict[str, Any]]:
        """Every callback posted: provider, url, event, message id, the HTTP status answered."""
        return [dict(entry) for entry in self._callbacks]

    def wait_for(
        self, predicate: Callable[[SandboxMessage], bool], timeout: float = 5.0
    ) -> SandboxMessage:
        """Block until a message matches ``predicate``; returns the first that does.

        Raises:
            TimeoutError: none did within ``timeout`` seconds.
        """
        found: list[SandboxMessage] = []

        def check() -> bool:
            found[:] = [m for m in self.inbox.messages() if predicate(m)][:1]
            return bool(found)

        if not self.inbox.wait_for(check, timeout):
            raise TimeoutError(f"no sandbox message matched within {timeout} s")
        return found[0]

    async def await_for(
        self, predicate: Callable[[SandboxMessage], bool], timeout: float = 5.0
    ) -> SandboxMessage:
        """:meth:`wait_for` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def listener(kind: str, message: SandboxMessage) -> None:
            loop.call_soon_threadsafe(changed.set)

        stop = self.inbox.listen(listener)
        deadline = loop.time() + timeout
        try:
            while True:
                changed.clear()
                found = next((m for m in self.inbox.messages() if predicate(m)), None)
                if found is not None:
                    return found
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"no sandbox message matched within {timeout} s")
                await _wait(changed.wait(), left)
        finally:
            stop()

    def reply(
        self, to: str, text: str, provider: str | None = None, *, subject: str | None = None
    ) -> SandboxMessage:
        """Simulate a reply from ``to``: it lands in the inbox and goes to your webhook.

        Args:
            to: the address replying (the person's phone, email or chat id).
            text: what they write.
            provider: the provider it comes through (``twilio``, ``whatsapp``, ``telegram``,
                ``mailgun``); by default the one that last sent to ``to``.
            subject: an email reply's subject (default ``Re:`` the last one).

        Returns:
            The inbound message.
        """
        return self._blocking(self.areply(to, text, provider, subject=subject))

    async def areply(
        self, to: str, text: str, provider: str | None = None, *, subject: str | None = None
    ) -> SandboxMessage:
        """:meth:`reply` with ``await``."""
        return await self._on_loop(self._reply(to, text, provider, subject))

    def run_due(self) -> int:
        """Run what is due on the clock now (deliveries, reads, their callbacks); waits for it.

        Returns:
            How many scheduled steps ran.
        """
        return self._blocking(self.arun_due())

    async def arun_due(self) -> int:
        """:meth:`run_due` with ``await``."""
        return await self._on_loop(self._run_due())

    # -- life cycle ------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failed.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="anysend-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(60):
            raise RuntimeError("the sandbox did not start within 60 s")
        if failed:
            self._thread.join()
            raise failed[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = None

    async def start(self) -> None:
        """Start serving in the running event loop (HTTP, SMTP if asked, the scheduler).

        Raises:
            OSError: a port is taken.
        """
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._credentials = Credentials.make(self.rng, f"http://{host}:{port}", self.webhook_url)
        app = web.Application(client_max_size=32 * 1024 * 1024)
        InboxRoutes(self).register(app)
        app.router.add_route("*", "/{provider}/{path:.*}", self._provider)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self._session = ClientSession(timeout=ClientTimeout(total=30))
        if self._smtp_port is not None:
            await self._start_smtp()
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        """Stop serving; pending callbacks are dropped."""
        for queue in list(self._streams):
            queue.put_nowait(None)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._smtp is not None:
            self._smtp.close()
            await self._smtp.wait_closed()
            self._smtp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _start_smtp(self) -> None:
        from aiosmtpd.smtp import SMTP

        handler = SMTPHandler(self, self._apis["smtp"])
        assert self._loop is not None
        self._smtp = await self._loop.create_server(
            lambda: SMTP(handler, hostname="sandbox.test", enable_SMTPUTF8=True, loop=self._loop),
            self.host,
            self._smtp_port,
        )
        self._smtp_port = self._smtp.sockets[0].getsockname()[1]

    # -- the scheduler ---------------------------------------------------------------------------

    def _at(self, delay: float, action: Callable[[], Awaitable[None]]) -> None:
        due = self.clock.monotonic() + delay
        heapq.heappush(self._schedule, (due, next(self._sequence), action))
        if self._wakeup is not None:
            self._wakeup.set()

    def _fire_due(self) -> int:
        now = self.clock.monotonic()
        fired = 0
        while self._schedule and self._schedule[0][0] <= now:
            _, _, action = heapq.heappop(self._schedule)
            task = asyncio.ensure_future(action())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            fired += 1
        return fired

    async def _run_due(self) -> int:
        fired = 0
        while True:  # a step may schedule another that is due at once (delay 0)
            count = self._fire_due()
            fired += count
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            if not count:
                return fired

    async def _tick(self) -> None:
        assert self._wakeup is not None
        real = isinstance(self.clock, SystemClock)
        while True:
            self._fire_due()
            if self._schedule:
                wait = self._schedule[0][0] - self.clock.monotonic()
                wait = max(0.0, wait) if real else min(max(0.0, wait), POLL)
            else:
                wait = 3600.0
            self._wakeup.clear()
            await _wait(self._wakeup.wait(), max(wait, 0.001))

    async def _post(self, callback: Callback | None) -> None:
        if callback is None or self._session is None:
            return
        entry: dict[str, Any] = {
            "provider": callback.provider,
            "url": callback.url,
            "event": callback.event,
            "message_id": callback.message_id,
            "status": None,
            "error": None,
        }
        try:
            async with self._session.post(
                callback.url, data=callback.body, headers=callback.headers
            ) as response:
                await response.read()
                entry["status"] = response.status
        except (ClientError, OSError, asyncio.TimeoutError) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        self._callbacks.append(entry)

    # -- helpers for the sync and async twins ----------------------------------------------------

    def _blocking(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise ConfigurationError("start the sandbox first (with sandbox: or await start())")
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                coroutine.close()
                raise ConfigurationError(
                    "this blocks: inside the sandbox's event loop use the a-prefixed method"
                )
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    async def _on_loop(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise ConfigurationError("start the sandbox first (with sandbox: or await start())")
        if asyncio.get_running_loop() is loop:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    # -- replies ---------------------------------------------------------------------------------

    async def _reply(
        self, to: str, text: str, provider: str | None, subject: str | None
    ) -> SandboxMessage:
        address = normalise(to)
        last = self.inbox.last_outbound(address)
        if provider is None:
            if last is not None and last.provider in _REPLYABLE:
                provider = last.provider
            elif "@" in address:
                provider = "mailgun"
            elif address.lstrip("-").isdigit():
                provider = "telegram"
            else:
                provider = "twilio"
        if provider in ("sendgrid", "smtp"):
            provider = "mailgun"  # email replies come in through Mailgun's inbound routes
        api = self._apis.get(provider)
        if api is None or provider not in _REPLYABLE:
            raise ConfigurationError(
                f"the sandbox cannot simulate replies through {provider!r} "
                f"(it can through {', '.join(_REPLYABLE)})"
            )
        replied_to = (
            last if last is not None and last.channel == _channel_of(provider, last) else None
        )
        channel, business = _business(provider, replied_to)
        people = {p["key"]: p["name"] for p in self.inbox.people()}
        name = people.get(self.inbox.person_of(address), address)
        if provider == "whatsapp" or (provider == "twilio" and channel == "whatsapp"):
            address = "+" + address.removeprefix("+")
        message = SandboxMessage(
            id="",
            provider=provider,
            channel=channel,
            direction="inbound",
            to=business,
            sender=address,
            person=address,
            created_at=self.now(),
            subject=subject,
            text=text,
            status="received",
        )
        if channel == "sms":
            from anysend.sms import segments

            parts = segments(text)
            message.segments, message.encoding = parts.count, parts.encoding
        callback = api.reply(message, replied_to, name)
        self.inbox.add(message)
        await self._post(callback)
        return message

    # -- HTTP routes -----------------------------------------------------------------------------

    async def _provider(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["provider"]
        api = self._apis.get(name)
        if api is None or name == "smtp":
            raise web.HTTPNotFound(text=f"the sandbox has no provider {name!r}")
        low, high = self.latency
        delay = low if low == high else self.rng.uniform(low, high)
        if delay > 0:
            await self.clock.asleep(delay)
        try:
            return await api.handle(request, request.match_info["path"])
        except Refusal as refusal:
            return refusal.response
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A body this provider would refuse, in a shape the sandbox does not imitate.
            text = f"the {name} sandbox cannot read this request: {type(exc).__name__}: {exc}"
            return json_response({"error": text}, 400)


async def _wait(awaitable: Coroutine[Any, Any, Any], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``awaitable``; ``True`` if it finished.

    ``asyncio.wait`` rather than ``wait_for``: Python 3.11's ``wait_for`` can swallow a
    cancellation that arrives as its timeout fires, and the server would never stop.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        task.cancel()
    return bool(done)


def _channel_of(provider: str, last: SandboxMessage) -> str:
    """The channel a reply through ``provider`` takes, given the last message sent."""
    if provider == "twilio":
        return last.channel if last.provider == "twilio" else "sms"
    return {"whatsapp": "whatsapp", "telegram": "telegram", "mailgun": "email"}[provider]


def _business(provider: str, replied_to: SandboxMessage | None) -> tuple[str, str]:
    """The channel of a reply through ``provider``, and the business address it goes to."""
    if provider == "whatsapp":
        return "whatsapp", "+" + WHATSAPP_NUMBER
    if provider == "telegram":
        return "telegram", "@" + BOT_USERNAME
    if provider == "mailgun":
        sender = parseaddr(replied_to.sender or "")[1] if replied_to else ""
        return "email", sender or f"sandbox@{MAILGUN_DOMAIN}"
    if replied_to is not None:
        return replied_to.channel, replied_to.sender or TWILIO_SENDER
    return "sms", TWILIO_SENDER


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    webhook_url: str | None = None,
    smtp_port: int | None = None,
    seed: int | None = None,
    latency: float | tuple[float, float] = 0.0,
    failure_rate: float = 0.0,
    delivery_delay: float = 1.0,
    read_probability: float = 0.5,
    ready: Callable[[Sandbox], None] | None = None,
    apis: Sequence[type[ProviderAPI]] = (),
) -> None:
    """Run a sandbox until interrupted (Ctrl-C); what ``anysend sandbox`` runs.

    Args:
        host: the address to listen on.
        port: the HTTP port (``8780`` by default).
        webhook_url: where callbacks go (``f"{webhook_url}/{provider}"``).
        smtp_port: also run an SMTP server on this port.
        seed: makes ids, failures and reads reproducible.
        latency: seconds before each API answer (or a ``(min, max)`` range).
        failure_rate: the share of API calls answered with a 5xx or 429.
        delivery_delay: seconds until the "delivered" callback.
        read_probability: the chance of a later read or opened callback.
        ready: called with the running sandbox once it serves (print ``sandbox.env()``).
        apis: more providers to speak (``ProviderAPI`` subclasses; see ``Sandbox.add_api``).
    """
    sandbox = Sandbox(
        host,
        port,
        webhook_url=webhook_url,
        smtp_port=smtp_port,
        seed=seed,
        latency=latency,
        failure_rate=failure_rate,
        delivery_delay=delivery_delay,
        read_probability=read_probability,
        apis=apis,
    )

    async def main() -> None:
        await sandbox.start()
        try:
            if ready is not None:
                ready(sandbox)
            await asyncio.Event().wait()
        finally:
            await sandbox.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
