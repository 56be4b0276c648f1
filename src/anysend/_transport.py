"""How ``AsyncClient`` puts adapters' ``httpx.Request`` objects on the wire.

Adapters are sans-I/O: they build ``httpx.Request`` objects and read ``httpx.Response``
objects. A transport sends the one and returns the other:

* :class:`HttpxTransport` sends through an ``httpx.AsyncClient`` (HTTP/1.1, or HTTP/2);
* :class:`AiohttpTransport` sends HTTP/1.1 through one ``aiohttp.ClientSession``, whose pool
  keeps up under concurrency where httpx's does not (``pip install "anysend[fast]"``).

Whichever transport runs, adapters and the client see the same thing: the request goes out
with exactly the headers and body httpx built (no ``User-Agent``, ``Accept`` or
``Accept-Encoding`` added), the response is an ``httpx.Response`` whose body is decoded once
(by httpx, from the ``Content-Encoding`` the server sent), and failures are httpx's exceptions
with httpx's meaning: ``ConnectError``, ``ConnectTimeout``, ``PoolTimeout`` and
``UnsupportedProtocol`` mean the request was not sent; any other ``httpx.TransportError`` means
it may have been. No aiohttp exception escapes, and no error message contains the URL's path or
query (webhook and bot URLs carry secrets there).

A send may also skip httpx's objects altogether: an adapter that implements the optional
``raw_request`` hook hands the client a :class:`RawRequest` (the same request as plain values),
and :meth:`AiohttpTransport.send_raw` answers with a :class:`RawResponse`. Same wire bytes, same
timeouts and errors, less work per message (see "Writing an adapter").

Importing this module does not import aiohttp: only :class:`AiohttpTransport` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

import httpx

from anysend._exceptions import ConfigurationError

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import yarl

    from anysend._models import OutboundMessage
    from anysend._results import Receipt

__all__ = [
    "AiohttpTransport",
    "AsyncTransport",
    "HttpxTransport",
    "RawRequest",
    "RawResponse",
    "default_transport",
]

_FAST_HINT = 'the aiohttp transport needs: pip install "anysend[fast]"'
_MIN_AIOHTTP = (3, 9)
#: Headers aiohttp adds on its own that httpx does not: never add them.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
#: aiohttp warns about bodies above 1 MiB given as bytes; bigger ones go as a BytesIO.
_BIG_BODY = 2**20
#: URLs ``send_raw`` keeps parsed (a webhook per recipient may make many: then it starts over).
_URL_CACHE = 1024
#: aiohttp's workaround for a CPython SSL leak, fixed in 3.12.8 and 3.13.1 (warns if asked there).
_NEEDS_CLEANUP_CLOSED = sys.version_info < (3, 12, 8) or (3, 13, 0) <= sys.version_info < (3, 13, 1)
#: Sessions left behind in a forked child: never closed or collected there, because closing
#: them would unregister the parent's sockets from the event-loop selector the child shares.
_ABANDONED: list[object] = []


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends one ``httpx.Request`` and returns its ``httpx.Response``, body read."""

    async def send(self, request: httpx.Request, *, timeout: httpx.Timeout) -> httpx.Response:
        """Send ``request`` and read the whole response.

        Args:
            request: what an adapter built (its ``timeout`` extension, when set, wins).
            timeout: the client's timeouts.

        Raises:
            httpx.TransportError: ``ConnectError``, ``ConnectTimeout``, ``PoolTimeout`` or
                ``UnsupportedProtocol`` when the request was not sent; another subclass when
                it may have been.
        """
        ...

    async def aclose(self) -> None:
        """Close the connections (idempotent)."""
        ...


def _timeout_for(request: httpx.Request, timeout: httpx.Timeout) -> httpx.Timeout:
    """The request's own ``timeout`` extension, else ``timeout`` (httpx's precedence)."""
    given = request.extensions.get("timeout")
    if not given:
        return timeout
    return httpx.Timeout(**{**timeout.as_dict(), **given})


class RawRequest(NamedTuple):
    """An HTTP/1.1 request as plain values: what an adapter's optional ``raw_request`` returns.

    It is the request ``build_request`` makes for the same message, without building httpx's
    objects for it: the transport sends exactly these bytes.

    Attributes:
        method: ``"POST"``, ``"GET"``, ...
        url: the absolute http(s) URL as it goes on the wire (percent-encoded, as
            ``str(httpx.URL(...))`` gives it).
        headers: every header, in order, as httpx would send them: ``Host`` first and
            ``Content-Length`` for a body included. No two names may differ only in case
            (httpx would send both; a raw request cannot): return ``None`` from
            ``raw_request`` for such a request.
        content: the body.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes = b""

    def to_httpx(self) -> httpx.Request:
        """The same request as an ``httpx.Request`` (for errors, and ``parse_response``)."""
        return httpx.Request(
            self.method, self.url, headers=list(self.headers.items()), content=self.content or None
        )


class RawAdapter(Protocol):
    """An adapter with the optional raw hooks (``Webhook`` has them; see "Writing an adapter").

    Both must agree with the adapter's ``build_request`` and ``parse_response`` exactly: the
    client uses them instead, for a single-request send through :class:`AiohttpTransport`.
    """

    def raw_request(self, message: OutboundMessage) -> RawRequest | None:
        """``build_request(message)`` as a :class:`RawRequest`; ``None``: use that instead."""
        ...

    def raw_receipt(self, response: RawResponse, message: OutboundMessage) -> Receipt | None:
        """``parse_response``'s receipt for ``response``; ``None``: let that method read it."""
        ...


#: ``AiohttpTransport.send_raw`` and its answer, as the client holds them (the sync twins are
#: for the generated sync client, which never has a raw sender).
AsyncRawSender: TypeAlias = Callable[..., Awaitable["RawResponse"]]
RawSender: TypeAlias = Callable[..., "RawResponse"]
AsyncRawAnswer: TypeAlias = Awaitable["RawResponse"]
RawAnswer: TypeAlias = "RawResponse"


class RawResponse:
    """A response as plain values: what :meth:`AiohttpTransport.send_raw` returns.

    An adapter's optional ``raw_receipt`` reads it; :meth:`to_httpx` gives the
    ``httpx.Response`` that :meth:`AsyncTransport.send` would have returned, for
    ``parse_response``.

    Attributes:
        status_code: the HTTP status.
        reason_phrase: the status line's words (``"OK"``).
        http_version: ``"HTTP/1.1"``.
        headers: the headers, case-insensitive (a ``multidict.CIMultiDictProxy`` from aiohttp).
        raw_headers: the headers as sent, in order.
        elapsed: from the send to the end of the body.
    """

    __slots__ = (
        "_body",
        "_content",
        "elapsed",
        "headers",
        "http_version",
        "raw_headers",
        "reason_phrase",
        "status_code",
    )

    def __init__(
        self,
        status_code: int,
        *,
        headers: Mapping[str, str],
        raw_headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        reason_phrase: str = "",
        http_version: str = "HTTP/1.1",
        elapsed: timedelta = timedelta(0),
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.raw_headers = raw_headers
        self.reason_phrase = reason_phrase
        self.http_version = http_version
        self.elapsed = elapsed
        self._body = body
        self._content: bytes | None = None if "content-encoding" in headers else body

    def __repr__(self) -> str:
        return f"<RawResponse [{self.status_code} {self.reason_phrase}]>"

    @property
    def is_success(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def content(self) -> bytes:
        """The body, its ``Content-Encoding`` undone (once, by httpx, as ``send`` does)."""
        if self._content is None:
            self._content = self.to_httpx(None).content
        return self._content

    def json(self) -> Any:
        """The body parsed as JSON (``httpx.Response.json``)."""
        return json.loads(self.content)

    def to_httpx(self, request: httpx.Request | None) -> httpx.Response:
        """The ``httpx.Response`` :meth:`AiohttpTransport.send` returns for this answer."""
        return _httpx_response(
            self.status_code,
            self.raw_headers,
            self._body,
            request,
            self.http_version,
            self.reason_phrase,
            self.elapsed,
        )


def _httpx_response(
    status: int,
    raw_headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    request: httpx.Request | None,
    http_version: str,
    reason: str,
    elapsed: timedelta,
) -> httpx.Response:
    response = httpx.Response(
        status,
        headers=raw_headers,
        stream=httpx.ByteStream(body),
        request=request,
        extensions={
            "http_version": http_version.encode("ascii"),
            "reason_phrase": reason.encode("ascii", "ignore"),
        },
    )
    response.read()  # decodes Content-Encoding, once; the headers stay as sent
    response.elapsed = elapsed
    return response


class HttpxTransport:
    """Sends through an ``httpx.AsyncClient``: what ``AsyncClient`` always did.

    Args:
        client: the ``httpx.AsyncClient`` to send through. Without one the transport makes its
            own at the first send (and a fresh one after :meth:`aclose` or in a forked child).
        owns: close ``client`` in :meth:`aclose`; by default only a client the transport made.
        http2: speak HTTP/2 (needs ``h2``); for the client the transport makes.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        owns: bool | None = None,
        http2: bool = False,
    ) -> None:
        if client is not None and http2:
            raise ConfigurationError("http2=True is for the client HttpxTransport makes")
        self._client = client
        self._makes = client is None
        self._owns = self._makes if owns is None else owns
        self._http2 = http2
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(http2={self._http2})"

    def _current(self) -> httpx.AsyncClient:
        if self._makes:
            pid = os.getpid()
            if pid != self._pid:  # a forked child: the parent's sockets are not ours
                self._client, self._pid = None, pid
            if self._client is None:
                self._client = httpx.AsyncClient(http2=self._http2)
        assert self._client is not None
        return self._client

    async def send(self, request: httpx.Request, *, timeout: httpx.Timeout) -> httpx.Response:
        """Send ``request`` (see :class:`AsyncTransport`)."""
        if "timeout" not in request.extensions:
            request.extensions = {**request.extensions, "timeout": timeout.as_dict()}
        return await self._current().send(request)

    async def aclose(self) -> None:
        """Close the client if the transport owns it (idempotent)."""
        client = self._client
        if client is None:
            return
        if self._makes:
            self._client = None
            if self._pid != os.getpid():
                return  # the parent's client, inherited by a forked child
        if self._owns:
            await client.aclose()


class _Slots:
    """A FIFO counting semaphore whose size may change, and whose waits need no task.

    ``take_now`` is the fast path (no coroutine, no future); a wait is a future of its own with
    a timer for the deadline (``asyncio.wait_for`` makes a task per wait on Python 3.11).
    """

    __slots__ = ("_waiters", "size", "used", "users")

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.users = 0  # in flight or waiting: a host's entry goes when it has none
        self._waiters: deque[asyncio.Future[bool]] = deque()

    def take_now(self) -> bool:
        if self.used < self.size and not self._waiters:
            self.used += 1
            return True
        return False

    async def take(self, deadline: float | None, loop: asyncio.AbstractEventLoop) -> bool:
        """A slot before ``deadline`` (loop time; ``None``: no limit); ``False`` when it passes."""
        if self.take_now():
            return True
        if deadline is not None and deadline <= loop.time():
            return False
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter  # True: a released slot was handed over (already counted)
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # handed a slot just as the wait was canceled: pass it on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done() or waiter.cancelled() or not waiter.result():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)  # expired or canceled: still in the queue

    def release(self) -> None:
        self.used -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to the longest waiters (after a release, or when ``size`` grew)."""
        waiters = self._waiters
        while waiters and self.used < self.size:
            waiter = waiters.popleft()
            if not waiter.done():
                self.used += 1
                waiter.set_result(True)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


_Origin = tuple[str, str, int]


class _Gate:
    """At most ``limit`` requests in flight, and ``per_host`` per origin, FIFO.

    aiohttp's connector is left unlimited: its wait for a free connection shares one timeout
    with opening one, and waiting here instead keeps httpx's two timeouts (``pool`` then
    ``connect``) and tells a ``PoolTimeout`` from a ``ConnectTimeout``. A connection goes back
    to aiohttp's pool before its slot here is released. Both limits may change while requests
    are in flight (:meth:`resize`): a smaller one lets no new request in until enough finish.
    """

    def __init__(self, limit: int, per_host: int) -> None:
        self._total = _Slots(limit) if limit else None
        self._per_host = per_host
        self._hosts: dict[_Origin, _Slots] = {}

    def resize(self, limit: int, per_host: int) -> None:
        if self._total is not None:
            self._total.size = limit
            self._total.wake()
        if self._per_host:
            self._per_host = per_host
            for host in self._hosts.values():
                host.size = per_host
                host.wake()

    def _host(self, origin: _Origin) -> _Slots | None:
        if not self._per_host:
            return None
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Slots(self._per_host)
        host.users += 1
        return host

    def acquire_now(self, origin: _Origin) -> bool:
        """Both slots at once, or neither (no waiting)."""
        host = self._host(origin)
        if host is not None and not host.take_now():
            self._leave(origin, host)
            return False
        total = self._total
        if total is not None and not total.take_now():
            if host is not None:
                host.release()
                self._leave(origin, host)
            return False
        return True

    async def acquire(self, origin: _Origin, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for both slots; ``False`` (holding none) if too long."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        host = self._host(origin)
        if host is not None:
            try:
                taken = await host.take(deadline, loop)
            except BaseException:
                self._leave(origin, host)
                raise
            if not taken:
                self._leave(origin, host)
                return False
        if self._total is None:
            return True
        taken = False
        try:
            taken = await self._total.take(deadline, loop)
        finally:
            if not taken and host is not None:  # timed out or canceled: give the slot back
                host.release()
                self._leave(origin, host)
        return taken

    def release(self, origin: _Origin) -> None:
        if self._total is not None:
            self._total.release()
        if self._per_host:
            host = self._hosts[origin]
            host.release()
            self._leave(origin, host)

    def _leave(self, origin: _Origin, host: _Slots) -> None:
        host.users -= 1
        if not host.users:
            del self._hosts[origin]


_REQUEST_CLASS: type[aiohttp.ClientRequest] | None = None


def _request_class() -> type[aiohttp.ClientRequest]:
    """The request class of our sessions: no ``Content-Length: 0`` on a bodiless DELETE."""
    global _REQUEST_CLASS
    if _REQUEST_CLASS is None:
        import aiohttp
        from aiohttp import hdrs

        class ExactRequest(aiohttp.ClientRequest):
            def __init__(self, method: str, url: yarl.URL, **kwargs: Any) -> None:
                super().__init__(method, url, **kwargs)
                given = kwargs.get("headers") or ()
                if kwargs.get("data") is None and hdrs.CONTENT_LENGTH not in given:
                    self.headers.popall(hdrs.CONTENT_LENGTH, None)

        _REQUEST_CLASS = ExactRequest
    return _REQUEST_CLASS


def _aiohttp_version(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def _origin(url: httpx.URL) -> str:
    """``host:port`` (never the path or query, where webhook URLs keep their secrets)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.host}:{port}"


def _origin_key(url: httpx.URL) -> _Origin:
    """The gate's key: scheme, host and the port, a default one spelled out."""
    scheme = url.scheme
    return (scheme, url.host, url.port or (443 if scheme == "https" else 80))


def _transport_error(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx exception for an aiohttp failure (``exc`` itself when it is not one)."""
    import aiohttp

    origin = _origin(request.url)
    timeout_types: tuple[type[Exception], ...] = (aiohttp.ServerTimeoutError, asyncio.TimeoutError)
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)  # aiohttp 3.10+
    reset = getattr(aiohttp, "ClientConnectionResetError", None)  # aiohttp 3.10+
    non_http = getattr(aiohttp, "NonHttpUrlClientError", None)  # aiohttp 3.10+
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = str(exc.certificate_error)
        return httpx.ConnectError(f"cannot connect to {origin}: {detail}", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        detail = str(exc.os_error) if exc.os_error is not None else type(exc).__name__
        return httpx.ConnectError(f"cannot connect to {origin}: {detail}", request=request)
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return httpx.ConnectError(f"{origin}: certificate fingerprint mismatch", request=request)
    if isinstance(exc, timeout_types):
        if (connect_timeout is not None and isinstance(exc, connect_timeout)) or (
            connect_timeout is None and str(exc).startswith("Connection timeout")  # aiohttp 3.9
        ):
            return httpx.ConnectTimeout(f"timed out connecting to {origin}", request=request)
        return httpx.ReadTimeout(f"timed out waiting for {origin} to answer", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(
            f"{origin} closed the connection without sending a complete response",
            request=request,
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(f"could not read the response of {origin}: {exc}", request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(
            f"invalid response from {origin}: {exc.message}", request=request
        )
    if reset is not None and isinstance(exc, reset):
        return httpx.WriteError(f"{origin} closed the connection", request=request)
    if isinstance(exc, (aiohttp.ClientOSError, OSError)):
        detail = exc.strerror or type(exc).__name__
        return httpx.ReadError(f"connection to {origin} failed: {detail}", request=request)
    if isinstance(exc, aiohttp.ServerConnectionError):
        return httpx.RemoteProtocolError(f"connection to {origin} failed", request=request)
    if isinstance(exc, aiohttp.InvalidURL) or (non_http is not None and isinstance(exc, non_http)):
        return httpx.UnsupportedProtocol("invalid request URL", request=request)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.ReadError(
            f"connection to {origin} failed: {type(exc).__name__}", request=request
        )
    if isinstance(exc, ValueError):  # aiohttp refuses the request line or a header
        # The value is not shown: headers carry credentials.
        return httpx.LocalProtocolError("the request has an invalid header", request=request)
    return exc


class AiohttpTransport:
    """Sends HTTP/1.1 through one ``aiohttp.ClientSession`` (``pip install "anysend[fast]"``).

    The session is made at the first send, inside the running event loop, and belongs to that
    loop; it is made again after :meth:`aclose` (a closed transport is reusable) and in a
    forked child (the parent's connections are left alone), or when its loop was closed. Using
    it from a second event loop while the first is still open raises ``RuntimeError``.

    Args:
        limit: the most requests in flight (and so connections) in all; 0: no limit.
        limit_per_host: the most per origin (scheme, host, port); 0: no limit. Beyond either,
            a send waits up to the ``pool`` timeout for a slot, then raises
            ``httpx.PoolTimeout``. :meth:`reserve` raises both for a while (``send_many``
            reserves its ``concurrency``).
        verify: check servers' certificates: ``True`` (with the CA bundle httpx uses:
            certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), ``False``, or an
            ``ssl.SSLContext``.
        keepalive_timeout: seconds an idle connection is kept (httpx's ``keepalive_expiry``).
        ttl_dns_cache: seconds a DNS answer is reused (``None``: until the session closes).

    Timeouts come from each send's ``httpx.Timeout``: ``connect`` bounds resolving, connecting
    and the TLS handshake; ``read`` each wait for response data; ``pool`` the wait for a slot
    (see ``limit``); ``write`` is not enforced (aiohttp has no write timeout). Proxy settings
    in the environment are not read (``default_transport`` picks httpx when there are some).
    """

    def __init__(
        self,
        *,
        limit: int = 0,
        limit_per_host: int = 0,
        verify: ssl.SSLContext | bool = True,
        keepalive_timeout: float = 5.0,
        ttl_dns_cache: int | None = 300,
    ) -> None:
        try:
            import aiohttp
        except ImportError:
            raise ConfigurationError(_FAST_HINT) from None
        if _aiohttp_version(aiohttp.__version__) < _MIN_AIOHTTP:
            raise ConfigurationError(f"{_FAST_HINT} (aiohttp {aiohttp.__version__} is too old)")
        if limit < 0 or limit_per_host < 0:
            raise ConfigurationError("limit and limit_per_host must be 0 (no limit) or more")
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._verify = verify
        self._ssl: ssl.SSLContext | bool | None = None
        self._keepalive_timeout = keepalive_timeout
        self._ttl_dns_cache = ttl_dns_cache
        self._session: aiohttp.ClientSession | None = None
        self._gate: _Gate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._reserved: list[int] = []
        # Raw requests' URLs parsed once (yarl caches its parts per URL), and their origins.
        self._urls: dict[str, tuple[yarl.URL, _Origin]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit={self._limit}, limit_per_host={self._limit_per_host})"

    def _limits(self) -> tuple[int, int]:
        """The limits now: as configured, raised to what the reservations need together."""
        wanted = sum(self._reserved)
        limit, per_host = self._limit, self._limit_per_host
        return (limit and max(limit, wanted), per_host and max(per_host, wanted))

    def reserve(self, concurrency: int) -> Callable[[], None]:
        """Let ``concurrency`` more requests be in flight, to one host or in all, for a while.

        ``AsyncClient.send_many(..., concurrency=c)`` reserves ``c`` for as long as it runs,
        so that the connection limits never make its sends wait for one another: the limits
        become the configured ones or the sum of the reservations, whichever is greater. A
        limit of 0 (none) stays none.

        Returns:
            A function that ends the reservation (call it once).
        """
        self._reserved.append(concurrency)
        self._resize()
        done = False

        def end() -> None:
            nonlocal done
            if not done:
                done = True
                self._reserved.remove(concurrency)
                self._resize()

        return end

    def _resize(self) -> None:
        if self._gate is not None:
            self._gate.resize(*self._limits())

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self._ssl is None:
            verify = self._verify
            # The trust store httpx uses, so that switching transports changes nothing.
            self._ssl = httpx.create_ssl_context(verify=True) if verify is True else verify
        return self._ssl

    def _open(self) -> tuple[aiohttp.ClientSession, _Gate | None]:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._loop is loop and self._pid == os.getpid():
            return session, self._gate
        if session is not None:
            if self._pid != os.getpid():
                _ABANDONED.append(session)  # the parent's: neither used nor closed here
            elif self._loop is not None and not self._loop.is_closed():
                raise RuntimeError(
                    f"this {type(self).__name__} belongs to another event loop: "
                    "use one per loop, or aclose() it in its loop first"
                )
            else:
                session.detach()  # its loop is gone: nothing to close it with
        session = self._session = self._new_session()
        self._gate = _Gate(*self._limits()) if self._limit or self._limit_per_host else None
        self._loop, self._pid = loop, os.getpid()
        return session, self._gate

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=0,  # the gate counts (see _Gate), and its limits may change
            limit_per_host=0,
            ttl_dns_cache=self._ttl_dns_cache,
            keepalive_timeout=self._keepalive_timeout,
            ssl=self._ssl_context(),
            enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # httpx decodes the body, from the headers the server sent: once, as it always did.
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            request_class=_request_class(),
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
        )
        # aiohttp 3.10+ resends an idempotent request (PUT, DELETE) once when a kept-alive
        # connection drops; httpx never does. Retrying is the client's decision (RetryPolicy).
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    def _client_timeout(self, timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
        key = (timeout.connect, timeout.read)
        found = self._timeouts.get(key)
        if found is None:
            import aiohttp

            found = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[0], sock_read=key[1]
            )
            if len(self._timeouts) < 64:
                self._timeouts[key] = found
        return found

    async def send(self, request: httpx.Request, *, timeout: httpx.Timeout) -> httpx.Response:
        """Send ``request`` (see :class:`AsyncTransport`)."""
        import yarl

        url = request.url
        _check_url(request)
        timeout = _timeout_for(request, timeout)
        content = await request.aread()
        headers = _wire_headers(request, content)
        if headers is None:
            raise httpx.LocalProtocolError("a header value is not UTF-8", request=request)
        answer = await self._exchange(
            request.method,
            yarl.URL(str(url), encoded=True),
            _origin_key(url),
            headers,
            content,
            timeout,
            request,
        )
        return answer.to_httpx(request)

    def send_raw(
        self, request: RawRequest, *, timeout: httpx.Timeout
    ) -> Coroutine[Any, Any, RawResponse]:
        """Send an adapter's :class:`RawRequest`: as :meth:`send`, without httpx's objects.

        The same wire bytes, timeouts and errors as ``send(request.to_httpx())``; the errors
        carry that ``httpx.Request``, made only when one is raised. A plain method that
        returns the coroutine to await (one coroutine fewer per send); a URL that is not
        absolute http(s) raises ``httpx.UnsupportedProtocol`` at once.
        """
        found = self._urls.get(request.url)
        if found is None:
            found = self._parse(request)
        url, origin = found
        return self._exchange(
            request.method, url, origin, request.headers, request.content, timeout, request
        )

    def _parse(self, request: RawRequest) -> tuple[yarl.URL, _Origin]:
        """A raw request's URL for aiohttp, and its origin (kept for the next request)."""
        import yarl

        url = yarl.URL(request.url, encoded=True)
        scheme, host = url.scheme, url.host
        if scheme not in ("http", "https") or not host:
            refused = request.to_httpx()
            _check_url(refused)  # the same words as send()
            raise httpx.UnsupportedProtocol("invalid request URL", request=refused)
        found = (url, (scheme, host, url.port or (443 if scheme == "https" else 80)))
        if len(self._urls) >= _URL_CACHE:
            self._urls.clear()
        self._urls[request.url] = found
        return found

    async def _exchange(
        self,
        method: str,
        url: yarl.URL,
        origin: _Origin,
        headers: list[tuple[str, str]] | Mapping[str, str],
        content: bytes,
        timeout: httpx.Timeout,
        sent: httpx.Request | RawRequest,
    ) -> RawResponse:
        """Send and read the whole answer; aiohttp's failures become httpx's (about ``sent``)."""
        data: bytes | io.BytesIO | None = content or None
        if len(content) > _BIG_BODY:
            data = io.BytesIO(content)
        session, gate = self._open()
        started = time.perf_counter()
        if (
            gate is not None
            and not gate.acquire_now(origin)
            and not await gate.acquire(origin, timeout.pool)
        ):
            raise httpx.PoolTimeout(
                f"no connection to {origin[1]}:{origin[2]} came free within the pool timeout",
                request=_httpx_request(sent),
            )
        answer = None
        try:
            # Awaited, not entered: the same request and release, one coroutine fewer.
            answer = await session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=self._client_timeout(timeout),
            )
            body = await answer.read()
            return RawResponse(
                answer.status,
                headers=answer.headers,
                raw_headers=answer.raw_headers,
                body=body,
                reason_phrase=answer.reason or "",
                http_version=_http_version(answer.version),
                elapsed=timedelta(seconds=time.perf_counter() - started),
            )
        except Exception as exc:
            request = _httpx_request(sent)
            if isinstance(exc, RuntimeError) and session.closed:
                raise httpx.ConnectError("the transport was closed", request=request) from exc
            error = _transport_error(exc, request)
            if error is exc:
                raise
            raise error from exc
        finally:
            if answer is not None:
                answer.release()  # the connection back to the pool (a no-op once read)
            if gate is not None:
                gate.release(origin)

    async def aclose(self) -> None:
        """Close the session (idempotent); a later send opens a new one."""
        session, self._session, self._gate = self._session, None, None
        if session is None:
            return
        if self._pid != os.getpid():
            _ABANDONED.append(session)  # the parent's session, inherited by a forked child
            return
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop():
            # Its connections live in another loop: close them there, or not at all.
            if loop.is_closed():
                session.detach()
            else:
                asyncio.run_coroutine_threadsafe(session.close(), loop)
            return
        await session.close()


def _wire_headers(request: httpx.Request, content: bytes) -> list[tuple[str, str]] | None:
    """The request's headers for aiohttp: all of them, in order (``None``: not sendable).

    A repeated header keeps its first spelling (aiohttp would drop ``x-a`` after ``X-A``).
    A streamed body was read whole, so ``Transfer-Encoding: chunked`` becomes a length.
    """
    headers: list[tuple[str, str]] = []
    spelling: dict[str, str] = {}
    chunked = False
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1")
        lower = name.lower()
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if lower == "transfer-encoding" and value.strip().lower() == "chunked":
            chunked = True
            continue
        headers.append((spelling.setdefault(lower, name), value))
    if chunked:
        headers.append(("Content-Length", str(len(content))))
    return headers


_VERSIONS: dict[object, str] = {}


def _http_version(version: Any) -> str:
    """``HTTP/1.1`` for aiohttp's ``HttpVersion(1, 1)`` (worked out once per version)."""
    found = _VERSIONS.get(version)
    if found is None:
        found = f"HTTP/{version.major}.{version.minor}" if version else "HTTP/1.1"
        if len(_VERSIONS) < 8:
            _VERSIONS[version] = found
    return found


def _httpx_request(sent: httpx.Request | RawRequest) -> httpx.Request:
    return sent if isinstance(sent, httpx.Request) else sent.to_httpx()


def _check_url(request: httpx.Request) -> None:
    """Refuse a URL that is not absolute http(s), as httpx does (nothing is sent)."""
    url = request.url
    if url.scheme not in ("http", "https"):
        detail = f"an unsupported protocol '{url.scheme}://'" if url.scheme else "no protocol"
        raise httpx.UnsupportedProtocol(f"the request URL has {detail}", request=request)
    if not url.host:
        raise httpx.UnsupportedProtocol("the request URL has no host", request=request)


def _aiohttp_usable() -> bool:
    try:
        import aiohttp
    except ImportError:
        return False
    return _aiohttp_version(aiohttp.__version__) >= _MIN_AIOHTTP


def _environment_proxies() -> bool:
    """Whether httpx would send through a proxy from the environment (or system settings)."""
    import urllib.request  # here: 20 ms the sync Client never needs

    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def default_transport(
    kind: str = "auto", *, limit_per_host: int = 100, verify: ssl.SSLContext | bool = True
) -> AsyncTransport | None:
    """The transport ``AsyncClient`` sends through; ``None`` means httpx, as before.

    Args:
        kind: ``"auto"``: aiohttp when it is installed (``anysend[fast]``) and no proxy is
            configured in the environment (aiohttp does not read those settings), else httpx;
            ``"aiohttp"``: aiohttp or an error; ``"httpx"``: httpx.
        limit_per_host: the most connections to one provider host (httpx's pool allows 100
            in all) outside ``send_many``, which raises it by its ``concurrency`` while it
            runs (:meth:`AiohttpTransport.reserve`): its sends are bounded by that and the
            providers' rate limits, never by a connection of their own client.
        verify: certificate checks for aiohttp, as in :class:`AiohttpTransport`.

    Raises:
        ConfigurationError: ``kind`` is unknown, or ``"aiohttp"`` without aiohttp 3.9+.
    """
    if kind == "httpx":
        return None
    if kind == "aiohttp":
        return AiohttpTransport(limit_per_host=limit_per_host, verify=verify)
    if kind == "auto":
        if not _aiohttp_usable() or _environment_proxies():
            return None
        return AiohttpTransport(limit_per_host=limit_per_host, verify=verify)
    raise ConfigurationError(f"unknown transport {kind!r}: use 'auto', 'aiohttp' or 'httpx'")


def httpx_is_mocked() -> bool:
    """Whether a test has replaced httpx's network layer (respx, pytest-httpx, ...).

    ``transport="auto"`` then stays on httpx, so that tests which mock httpx keep working
    when ``anysend[fast]`` is installed. Two attribute reads: cheap enough for every send.
    """
    global _HTTPCORE_POOL
    pool_class = _HTTPCORE_POOL
    if pool_class is None:
        import httpcore

        pool_class = _HTTPCORE_POOL = httpcore.AsyncConnectionPool
    sender = httpx.AsyncHTTPTransport.handle_async_request
    pool = pool_class.handle_async_request
    if sender is _UNMOCKED[0] and pool is _UNMOCKED[1]:
        return False  # the functions seen unmocked last time: no need to look closer
    mocked = not (
        getattr(sender, "__module__", "").startswith("httpx")
        and getattr(pool, "__module__", "").startswith("httpcore")
    )
    if not mocked:
        _UNMOCKED[:] = [sender, pool]
    return mocked


_HTTPCORE_POOL: Any = None
_UNMOCKED: list[object] = [None, None]


class Transport(Protocol):
    """The sync twin of :class:`AsyncTransport` (the sync ``Client`` always sends with httpx)."""

    def send(self, request: httpx.Request, *, timeout: httpx.Timeout) -> httpx.Response:
        """Send ``request`` and read the whole response."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...


def no_transport(
    kind: str = "auto", *, limit_per_host: int = 100, verify: ssl.SSLContext | bool = True
) -> Transport | None:
    """The sync ``Client``'s answer to ``transport=``: always httpx.

    ``"auto"`` and ``"httpx"`` are accepted; ``"aiohttp"`` is refused (aiohttp is async only).
    """
    if kind in ("auto", "httpx"):
        return None
    if kind == "aiohttp":
        raise ConfigurationError("the sync Client sends with httpx; aiohttp needs AsyncClient")
    raise ConfigurationError(f"unknown transport {kind!r}: use 'auto', 'aiohttp' or 'httpx'")
