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

Importing this module does not import aiohttp: only :class:`AiohttpTransport` does.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
import urllib.request
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

from anysend._exceptions import ConfigurationError

if TYPE_CHECKING:
    import ssl

    import aiohttp
    import yarl

__all__ = ["AiohttpTransport", "AsyncTransport", "HttpxTransport", "default_transport"]

_FAST_HINT = 'the aiohttp transport needs: pip install "anysend[fast]"'
_MIN_AIOHTTP = (3, 9)
#: Headers aiohttp adds on its own that httpx does not: never add them.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
#: aiohttp warns about bodies above 1 MiB given as bytes; bigger ones go as a BytesIO.
_BIG_BODY = 2**20
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


class _HostSlots:
    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


async def _take(
    semaphore: asyncio.Semaphore, deadline: float | None, loop: asyncio.AbstractEventLoop
) -> bool:
    """Acquire ``semaphore`` before ``deadline`` (loop time); ``False`` when it passes."""
    if not semaphore.locked() or deadline is None:
        await semaphore.acquire()
        return True
    remaining = deadline - loop.time()
    if remaining <= 0:
        return False
    try:
        await asyncio.wait_for(semaphore.acquire(), remaining)
    except asyncio.TimeoutError:
        return False
    return True


class _Gate:
    """At most ``limit`` requests in flight, and ``per_host`` per origin, FIFO.

    aiohttp's connector counts the same limits, but its wait for a free connection shares
    one timeout with opening one; waiting here first keeps httpx's two timeouts (``pool``
    then ``connect``) and tells a ``PoolTimeout`` from a ``ConnectTimeout``. A connection goes
    back to aiohttp's pool before its slot here is released, so the connector never waits.
    """

    def __init__(self, limit: int, per_host: int) -> None:
        self._total = asyncio.Semaphore(limit) if limit else None
        self._per_host = per_host
        self._hosts: dict[tuple[str, str, int | None], _HostSlots] = {}

    async def acquire(self, origin: tuple[str, str, int | None], timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        host = None
        if self._per_host:
            host = self._hosts.get(origin)
            if host is None:
                host = self._hosts[origin] = _HostSlots(self._per_host)
            host.users += 1
            try:
                taken = await _take(host.semaphore, deadline, loop)
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
            taken = await _take(self._total, deadline, loop)
        finally:
            if not taken and host is not None:  # timed out or canceled: give the slot back
                host.semaphore.release()
                self._leave(origin, host)
        return taken

    def release(self, origin: tuple[str, str, int | None]) -> None:
        if self._total is not None:
            self._total.release()
        if self._per_host:
            host = self._hosts[origin]
            host.semaphore.release()
            self._leave(origin, host)

    def _leave(self, origin: tuple[str, str, int | None], host: _HostSlots) -> None:
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
            ``httpx.PoolTimeout``.
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(limit={self._limit}, limit_per_host={self._limit_per_host})"

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
        self._gate = (
            _Gate(self._limit, self._limit_per_host)
            if self._limit or self._limit_per_host
            else None
        )
        self._loop, self._pid = loop, os.getpid()
        return session, self._gate

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
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
        if url.scheme not in ("http", "https"):
            detail = f"an unsupported protocol '{url.scheme}://'" if url.scheme else "no protocol"
            raise httpx.UnsupportedProtocol(f"the request URL has {detail}", request=request)
        if not url.host:
            raise httpx.UnsupportedProtocol("the request URL has no host", request=request)
        timeout = _timeout_for(request, timeout)
        content = await request.aread()
        headers = _wire_headers(request, content)
        if headers is None:
            raise httpx.LocalProtocolError("a header value is not UTF-8", request=request)
        data: bytes | io.BytesIO | None = content or None
        if len(content) > _BIG_BODY:
            data = io.BytesIO(content)
        session, gate = self._open()
        origin = (url.scheme, url.host, url.port)
        started = time.perf_counter()
        if gate is not None and not await gate.acquire(origin, timeout.pool):
            raise httpx.PoolTimeout(
                f"no connection to {_origin(url)} came free within the pool timeout",
                request=request,
            )
        try:
            async with session.request(
                request.method,
                yarl.URL(str(url), encoded=True),
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=self._client_timeout(timeout),
            ) as answer:
                body = await answer.read()
                status, raw_headers = answer.status, answer.raw_headers
                version = answer.version
                http_version = f"HTTP/{version.major}.{version.minor}" if version else "HTTP/1.1"
                reason = answer.reason or ""
        except Exception as exc:
            if isinstance(exc, RuntimeError) and session.closed:
                raise httpx.ConnectError("the transport was closed", request=request) from exc
            error = _transport_error(exc, request)
            if error is exc:
                raise
            raise error from exc
        finally:
            if gate is not None:
                gate.release(origin)
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
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        return response

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


def _aiohttp_usable() -> bool:
    try:
        import aiohttp
    except ImportError:
        return False
    return _aiohttp_version(aiohttp.__version__) >= _MIN_AIOHTTP


def _environment_proxies() -> bool:
    """Whether httpx would send through a proxy from the environment (or system settings)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def default_transport(kind: str = "auto", *, limit_per_host: int = 100) -> AsyncTransport | None:
    """The transport ``AsyncClient`` sends through; ``None`` means httpx, as before.

    Args:
        kind: ``"auto"``: aiohttp when it is installed (``anysend[fast]``) and no proxy is
            configured in the environment (aiohttp does not read those settings), else httpx;
            ``"aiohttp"``: aiohttp or an error; ``"httpx"``: httpx.
        limit_per_host: the most connections to one provider host (httpx's pool allows 100
            in all).

    Raises:
        ConfigurationError: ``kind`` is unknown, or ``"aiohttp"`` without aiohttp 3.9+.
    """
    if kind == "httpx":
        return None
    if kind == "aiohttp":
        return AiohttpTransport(limit_per_host=limit_per_host)
    if kind == "auto":
        if not _aiohttp_usable() or _environment_proxies():
            return None
        return AiohttpTransport(limit_per_host=limit_per_host)
    raise ConfigurationError(f"unknown transport {kind!r}: use 'auto', 'aiohttp' or 'httpx'")


def httpx_is_mocked() -> bool:
    """Whether a test has replaced httpx's network layer (respx, pytest-httpx, ...).

    ``transport="auto"`` then stays on httpx, so that tests which mock httpx keep working
    when ``anysend[fast]`` is installed. Two attribute reads: cheap enough for every send.
    """
    import httpcore

    sender = httpx.AsyncHTTPTransport.handle_async_request
    pool = httpcore.AsyncConnectionPool.handle_async_request
    return not (
        getattr(sender, "__module__", "").startswith("httpx")
        and getattr(pool, "__module__", "").startswith("httpcore")
    )


class Transport(Protocol):
    """The sync twin of :class:`AsyncTransport` (the sync ``Client`` always sends with httpx)."""

    def send(self, request: httpx.Request, *, timeout: httpx.Timeout) -> httpx.Response:
        """Send ``request`` and read the whole response."""
        ...

    def close(self) -> None:
        """Close the connections."""
        ...


def no_transport(kind: str = "auto", *, limit_per_host: int = 100) -> Transport | None:
    """The sync ``Client``'s answer to ``transport=``: always httpx.

    ``"auto"`` and ``"httpx"`` are accepted; ``"aiohttp"`` is refused (aiohttp is async only).
    """
    if kind in ("auto", "httpx"):
        return None
    if kind == "aiohttp":
        raise ConfigurationError("the sync Client sends with httpx; aiohttp needs AsyncClient")
    raise ConfigurationError(f"unknown transport {kind!r}: use 'auto', 'aiohttp' or 'httpx'")
