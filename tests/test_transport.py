"""The transports AsyncClient sends through: httpx and aiohttp look the same to adapters.

A real aiohttp server on 127.0.0.1 records what arrives; every check runs through both
transports and compares with what httpx built.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

pytest.importorskip("aiohttp")

import aiohttp
import trustme
from aiohttp import web

from anysend import ConfigurationError
from anysend import _transport as transport_module
from anysend._transport import (
    AiohttpTransport,
    AsyncTransport,
    HttpxTransport,
    RawRequest,
    RawResponse,
    default_transport,
)

pytestmark = pytest.mark.anyio

TIMEOUT = httpx.Timeout(5.0)
PAYLOAD = '{"id": "m-1", "note": "zażółć"}'.encode()
#: In the path and query of the URLs that fail: no error message may repeat it.
SECRET = "s3cr3t-T0KEN"
KINDS = ["httpx", "aiohttp"]


@dataclass
class Seen:
    """One request as the server read it off the wire."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Server:
    """The local server and what it saw."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    wave: int = 0
    wave_size: int = 50
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    wave_full: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                method=request.method,
                target=request.raw_path,
                headers=[(k.decode().lower(), v.decode()) for k, v in request.raw_headers],
                body=body,
            )
        )
        path = request.path
        if path == "/gzip":
            return web.Response(
                body=gzip.compress(PAYLOAD, mtime=0),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if path == "/gzip-twice":
            twice = gzip.compress(gzip.compress(PAYLOAD, mtime=0), mtime=0)
            return web.Response(body=twice, headers={"Content-Encoding": "gzip"})
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            answer = web.Response(
                status=status,
                body=b"" if status == 204 else PAYLOAD,
                content_type=None if status == 204 else "application/json",
            )
            answer.headers.add("X-Multi", "one")
            answer.headers.add("X-Multi", "two")
            answer.headers.add("Set-Cookie", "a=1; Path=/")
            answer.headers.add("Set-Cookie", "b=2; Path=/")
            answer.headers["Retry-After"] = "7"
            return answer
        if path == "/chunked":
            stream = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
            await stream.prepare(request)
            for part in (b"zaz", "ółć".encode(), b"!"):
                await stream.write(part)
            await stream.write_eof()
            return stream
        if path == "/slow":
            await asyncio.sleep(0.5)  # canceled when the client gives up (handler_cancellation)
            return web.Response(text="late")
        if path == "/hold":
            self.arrived.set()
            await self.release.wait()
            return web.Response(text="held")
        if path == "/wave":
            return await self._wave()
        return web.json_response({"method": request.method, "length": len(body)})

    async def _wave(self) -> web.Response:
        """Answer only once ``wave_size`` requests are in flight together: the concurrency."""
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.wave += 1
        if self.in_flight >= self.wave_size:
            self.wave_full.set()
        try:
            await asyncio.wait_for(self.wave_full.wait(), 5)
        finally:
            self.in_flight -= 1
        return web.Response(text="ok")


@asynccontextmanager
async def serve(server: Server, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    app = web.Application(client_max_size=8 * 2**20)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with serve(Server()) as running:
        yield running


def make(kind: str, **options: Any) -> AsyncTransport:
    if kind == "httpx":
        return HttpxTransport(**options)
    return AiohttpTransport(**options)


@pytest.fixture(params=KINDS)
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[AsyncTransport]:
    made = make(request.param)
    yield made
    await made.aclose()


@pytest.fixture
async def both() -> AsyncIterator[tuple[AsyncTransport, AsyncTransport]]:
    pair = (HttpxTransport(), AiohttpTransport())
    yield pair
    for made in pair:
        await made.aclose()


def sent_headers(request: httpx.Request) -> list[tuple[str, str]]:
    return [(k.decode().lower(), v.decode()) for k, v in request.headers.raw]


# -- what arrives ------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[[str], httpx.Request]] = {
    "get with an encoded path and query": lambda base: httpx.Request(
        "GET", base + "/echo/a%2Fb/c%20d~e?q=a+b&plus=%2B&word=caf%C3%A9&empty="
    ),
    "json": lambda base: httpx.Request(
        "POST",
        base + "/echo",
        json={"text": "zażółć", "n": 1},
        headers={"Authorization": "Bearer t0ken", "Idempotency-Key": "k-1"},
    ),
    "form": lambda base: httpx.Request(
        "POST", base + "/echo", data={"To": "+48600700800", "Body": "hi & bye ✓"}
    ),
    "raw bytes without a content type": lambda base: httpx.Request(
        "PUT", base + "/echo", content=b"\x00\x01\xffbinary"
    ),
    "post without a body": lambda base: httpx.Request("POST", base + "/echo"),
    "delete without a body": lambda base: httpx.Request("DELETE", base + "/echo"),
    "repeated headers in two spellings": lambda base: httpx.Request(
        "POST",
        base + "/echo",
        content=b"x",
        headers=[("X-Tag", "a"), ("X-Tag", "b"), ("x-tag", "c"), ("Accept", "text/plain")],
    ),
    "own host and user agent": lambda base: httpx.Request(
        "POST",
        base + "/echo",
        json=[1],
        headers={"Host": "api.example.com", "User-Agent": "anysend/1.0"},
    ),
    "multipart": lambda base: httpx.Request(
        "POST",
        base + "/echo",
        data={"chat_id": "42"},
        files={"photo": ("dot.png", b"\x89PNG\r\n\x1a\n\x00", "image/png")},
    ),
    "a body over 1 MiB": lambda base: httpx.Request(
        "POST", base + "/echo", content=b"0123456789abcdef" * 70_000
    ),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
async def test_the_request_arrives_as_httpx_built_it(
    transport: AsyncTransport, server: Server, build: Callable[[str], httpx.Request]
) -> None:
    """Method, target, every header (none added, none doubled) and the exact body bytes."""
    request = build(server.url)
    body = request.read()

    response = await transport.send(request, timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.json() == {"method": request.method, "length": len(body)}
    [seen] = server.seen
    assert seen.method == request.method
    assert seen.target == request.url.raw_path.decode("ascii")
    assert seen.headers == sent_headers(request)
    assert seen.body == body
    names = [name for name, _ in seen.headers]
    for once in ("host", "content-length", "user-agent", "accept-encoding", "content-type"):
        assert names.count(once) <= 1, names
    assert "accept-encoding" not in names


async def test_a_streamed_body_arrives_whole(transport: AsyncTransport, server: Server) -> None:
    """httpx sends it chunked; aiohttp, which read it whole first, with its length."""

    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"a":', b" 1}"):
            yield part

    request = httpx.Request(
        "POST", server.url + "/echo", content=parts(), headers={"Content-Type": "application/json"}
    )
    expected = sent_headers(request)
    assert ("transfer-encoding", "chunked") in expected

    response = await transport.send(request, timeout=TIMEOUT)

    assert response.json() == {"method": "POST", "length": 8}
    [seen] = server.seen
    assert seen.body == b'{"a": 1}'
    if isinstance(transport, AiohttpTransport):
        expected.remove(("transfer-encoding", "chunked"))
        expected.append(("content-length", "8"))
    assert seen.headers == expected


# -- what comes back ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/status/200", "/status/201", "/status/404", "/status/503", "/status/204", "/chunked"]
)
async def test_both_transports_return_the_same_response(
    both: tuple[AsyncTransport, AsyncTransport], server: Server, path: str
) -> None:
    """Status, reason, version, headers (repeats kept, in order) and body are equal."""
    first, second = [
        await made.send(httpx.Request("POST", server.url + path, json={}), timeout=TIMEOUT)
        for made in both
    ]

    for response in (first, second):
        assert response.is_closed
        assert response.elapsed.total_seconds() >= 0
    assert second.status_code == first.status_code
    assert second.reason_phrase == first.reason_phrase
    assert second.http_version == first.http_version == "HTTP/1.1"
    assert second.content == first.content
    assert second.text == first.text

    def comparable(response: httpx.Response) -> list[tuple[str, str]]:
        return [(k.lower(), v) for k, v in response.headers.multi_items() if k.lower() != "date"]

    assert comparable(second) == comparable(first)
    if path.startswith("/status/2") and path != "/status/204":
        assert second.json() == {"id": "m-1", "note": "zażółć"}
    if path.startswith("/status/"):
        assert second.headers.get_list("x-multi") == ["one", "two"]
        assert second.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert second.headers["retry-after"] == "7"
    if path == "/chunked":
        assert second.text == "zazółć!"
        assert "content-length" not in second.headers  # nothing added to what the server sent


async def test_a_gzip_body_is_decoded_once(transport: AsyncTransport, server: Server) -> None:
    """The body is decoded; the headers still say what the server sent."""
    response = await transport.send(httpx.Request("GET", server.url + "/gzip"), timeout=TIMEOUT)

    assert response.json() == {"id": "m-1", "note": "zażółć"}
    assert response.content == PAYLOAD
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-length"] == str(len(gzip.compress(PAYLOAD, mtime=0)))

    twice = await transport.send(httpx.Request("GET", server.url + "/gzip-twice"), timeout=TIMEOUT)

    assert twice.content == gzip.compress(PAYLOAD, mtime=0)  # one layer off, not two


async def test_adapters_parse_the_response(transport: AsyncTransport, server: Server) -> None:
    """The shared helpers adapters call read an aiohttp answer like an httpx one."""
    from anysend import ErrorCategory
    from anysend.providers._http import error_from_response, response_body

    ok = await transport.send(httpx.Request("POST", server.url + "/status/201"), timeout=TIMEOUT)
    down = await transport.send(httpx.Request("POST", server.url + "/status/503"), timeout=TIMEOUT)

    assert response_body(ok) == {"id": "m-1", "note": "zażółć"}
    error = error_from_response(down, "acme")
    assert error.category is ErrorCategory.UNAVAILABLE
    assert error.retry_after == 7.0
    assert error.status_code == 503
    assert "503 Service Unavailable" in str(error)


# -- errors ------------------------------------------------------------------------------------


def check(error: BaseException, request: httpx.Request, *, chained: bool = True) -> None:
    """An httpx error about ``request``, chained, without the URL's secrets."""
    assert isinstance(error, httpx.TransportError)
    assert not isinstance(error, aiohttp.ClientError)
    assert error.request is request
    if chained:
        assert error.__cause__ is not None
    assert SECRET not in str(error)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_refused_connection_is_not_sent(transport: AsyncTransport) -> None:
    request = httpx.Request("POST", f"http://127.0.0.1:{free_port()}/bot{SECRET}/send", json={})

    with pytest.raises(httpx.ConnectError) as caught:
        await transport.send(request, timeout=TIMEOUT)

    check(caught.value, request)


async def test_an_unknown_host_is_not_sent(transport: AsyncTransport) -> None:
    request = httpx.Request("POST", f"http://no-such-host.invalid/{SECRET}", json={})

    with pytest.raises(httpx.ConnectError) as caught:
        await transport.send(request, timeout=TIMEOUT)

    check(caught.value, request)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file", "mailto:ann@example.com"])
async def test_an_unsupported_scheme_is_not_sent(transport: AsyncTransport, url: str) -> None:
    request = httpx.Request("GET", url)

    with pytest.raises(httpx.UnsupportedProtocol) as caught:
        await transport.send(request, timeout=TIMEOUT)

    assert caught.value.request is request


@asynccontextmanager
async def hang_up_server() -> AsyncIterator[str]:
    """Reads a whole request, then closes the connection without a word."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_hang_up_after_sending_is_ambiguous(transport: AsyncTransport) -> None:
    async with hang_up_server() as base:
        request = httpx.Request("POST", f"{base}/hooks/{SECRET}", json={"text": "hi"})

        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await transport.send(request, timeout=TIMEOUT)

    check(caught.value, request)


async def test_a_slow_answer_is_a_read_timeout(transport: AsyncTransport, server: Server) -> None:
    request = httpx.Request("POST", f"{server.url}/slow?token={SECRET}", json={})

    with pytest.raises(httpx.ReadTimeout) as caught:
        await transport.send(request, timeout=httpx.Timeout(5.0, read=0.1))

    check(caught.value, request)


async def test_the_requests_own_timeout_wins(transport: AsyncTransport, server: Server) -> None:
    """An adapter's ``timeout`` extension beats the client's, as with httpx."""
    request = httpx.Request(
        "POST",
        server.url + "/slow",
        extensions={"timeout": httpx.Timeout(5.0, read=0.1).as_dict()},
    )

    with pytest.raises(httpx.ReadTimeout):
        await transport.send(request, timeout=httpx.Timeout(30.0))


@contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full, so that a new connection hangs in SYN_SENT.

    Linux drops SYNs to a listener whose queue is full; where a platform answers otherwise
    (refuses at once, or queues more), the test that uses this is skipped.
    """
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                filler.close()
                break
            except OSError:
                filler.close()
                pytest.skip("this platform refuses connections to a full backlog")
            fillers.append(filler)
        else:
            pytest.skip("this platform does not let a listen backlog fill up")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connect_timeout_is_not_sent(transport: AsyncTransport) -> None:
    with full_backlog() as port:
        request = httpx.Request("POST", f"http://127.0.0.1:{port}/{SECRET}", json={})

        with pytest.raises(httpx.ConnectTimeout) as caught:
            await transport.send(request, timeout=httpx.Timeout(5.0, connect=0.2))

    check(caught.value, request)


async def test_tls_is_verified_with_the_httpx_trust_store() -> None:
    """An unknown CA fails the handshake (not sent); a trusted one works, for both."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    async with serve(Server(), ssl_context=server_context) as secure:
        for made in (HttpxTransport(), AiohttpTransport()):
            request = httpx.Request("GET", f"{secure.url}/{SECRET}")
            with pytest.raises(httpx.ConnectError) as caught:
                await made.send(request, timeout=TIMEOUT)
            check(caught.value, request)
            await made.aclose()
        trusting = (
            HttpxTransport(httpx.AsyncClient(verify=client_context), owns=True),
            AiohttpTransport(verify=client_context),
        )
        for made in trusting:
            response = await made.send(httpx.Request("GET", secure.url + "/tls"), timeout=TIMEOUT)
            assert response.json() == {"method": "GET", "length": 0}
            await made.aclose()
        # Plain HTTP to the TLS port: the answer is no HTTP response at all.
        plain = AiohttpTransport()
        request = httpx.Request("POST", secure.url.replace("https", "http") + "/x", json={})
        with pytest.raises(httpx.TransportError) as failed:
            await plain.send(request, timeout=httpx.Timeout(5.0, read=0.5))
        assert not isinstance(failed.value, aiohttp.ClientError)
        await plain.aclose()


def aiohttp_failures() -> list[tuple[Exception, type[Exception]]]:
    reset = getattr(aiohttp, "ClientConnectionResetError", None)
    failures: list[tuple[Exception, type[Exception]]] = [
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), httpx.ReadError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
        (aiohttp.ServerConnectionError(), httpx.RemoteProtocolError),
        (aiohttp.ClientConnectionError("Connection closed"), httpx.ReadError),
        (aiohttp.InvalidURL("http://"), httpx.UnsupportedProtocol),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
        (ValueError(f"Newline in header: 'Authorization: {SECRET}\r\n'"), httpx.LocalProtocolError),
    ]
    non_http = getattr(aiohttp, "NonHttpUrlClientError", None)
    if non_http is not None:
        failures.append((non_http("ws://x"), httpx.UnsupportedProtocol))
    if reset is not None:
        failures.append((reset("Cannot write to closing transport"), httpx.WriteError))
    for name, expected in (
        ("ConnectionTimeoutError", httpx.ConnectTimeout),
        ("SocketTimeoutError", httpx.ReadTimeout),
    ):
        if hasattr(aiohttp, name):
            failures.append((getattr(aiohttp, name)(f"timeout to http://h/{SECRET}"), expected))
    return failures


@pytest.mark.parametrize(("failure", "expected"), aiohttp_failures())
def test_every_aiohttp_failure_has_an_httpx_name(
    failure: Exception, expected: type[Exception]
) -> None:
    request = httpx.Request("POST", f"http://127.0.0.1/{SECRET}")

    mapped = transport_module._transport_error(failure, request)

    assert type(mapped) is expected
    assert isinstance(mapped, httpx.TransportError)
    assert mapped.request is request
    assert SECRET not in str(mapped)


def test_an_error_that_is_not_a_transport_one_passes_through() -> None:
    bug = TypeError("a bug")

    assert transport_module._transport_error(bug, httpx.Request("GET", "http://h/")) is bug


# -- the pool ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"kind": "httpx", "client": "max_connections=1"},
        {"kind": "aiohttp", "limit_per_host": 1},
        {"kind": "aiohttp", "limit": 1},
    ],
    ids=["httpx", "aiohttp-per-host", "aiohttp-total"],
)
async def test_a_full_pool_is_a_pool_timeout(server: Server, options: dict[str, Any]) -> None:
    """The wait for a free connection has its own timeout, and a timed-out wait leaks nothing."""
    options = dict(options)
    kind = options.pop("kind")
    if options.pop("client", None):
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
        made = make(kind, client=client, owns=True)
    else:
        made = make(kind, **options)
    holding = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/hold"), timeout=TIMEOUT)
    )
    await asyncio.wait_for(server.arrived.wait(), 5)
    request = httpx.Request("POST", f"{server.url}/{SECRET}", json={})

    with pytest.raises(httpx.PoolTimeout) as caught:
        await made.send(request, timeout=httpx.Timeout(5.0, pool=0.1))

    check(caught.value, request, chained=False)
    waiting = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)
    )
    server.release.set()
    assert (await holding).text == "held"
    assert (await waiting).status_code == 200
    again = await made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)
    assert again.status_code == 200
    await made.aclose()


async def test_a_canceled_wait_gives_its_slot_back(server: Server) -> None:
    made = AiohttpTransport(limit=1, limit_per_host=1)
    holding = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/hold"), timeout=TIMEOUT)
    )
    await asyncio.wait_for(server.arrived.wait(), 5)
    waiting = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)
    )
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    server.release.set()
    await holding

    for _ in range(3):
        response = await made.send(
            httpx.Request("GET", server.url + "/echo"), timeout=httpx.Timeout(5.0, pool=0.5)
        )
        assert response.status_code == 200
    assert made._gate is not None
    assert made._gate._hosts == {}  # no per-host bookkeeping left behind
    await made.aclose()


async def test_a_full_total_gives_back_the_host_slot(server: Server) -> None:
    """Waiting for the total limit after taking a per-host slot: a timeout frees both."""
    made = AiohttpTransport(limit=1, limit_per_host=1)
    holding = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/hold"), timeout=TIMEOUT)
    )
    await asyncio.wait_for(server.arrived.wait(), 5)
    elsewhere = server.url.replace("127.0.0.1", "localhost") + "/echo"

    with pytest.raises(httpx.PoolTimeout):
        await made.send(httpx.Request("GET", elsewhere), timeout=httpx.Timeout(5.0, pool=0.1))

    assert made._gate is not None
    assert len(made._gate._hosts) == 1  # only the holding request's origin
    server.release.set()
    await holding
    assert made._gate._hosts == {}
    await made.aclose()


async def test_aclose_during_sends_fails_them_with_httpx_errors(server: Server) -> None:
    made = AiohttpTransport(limit=1)
    holding = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/hold"), timeout=TIMEOUT)
    )
    await asyncio.wait_for(server.arrived.wait(), 5)
    waiting = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)
    )
    await asyncio.sleep(0)

    await made.aclose()

    with pytest.raises(httpx.TransportError):
        await holding
    with pytest.raises(httpx.ConnectError, match="closed"):
        await waiting


async def test_a_header_aiohttp_cannot_send_is_refused(server: Server) -> None:
    made = AiohttpTransport()
    latin = httpx.Request("POST", server.url, headers={b"X-Name": "Zo\xeb".encode("latin-1")})
    broken = httpx.Request("POST", server.url, headers={"X-Token": f"{SECRET}\r\nX-Evil: 1"})
    nowhere = httpx.Request("GET", "http:///path")

    with pytest.raises(httpx.LocalProtocolError):
        await made.send(latin, timeout=TIMEOUT)
    with pytest.raises(httpx.LocalProtocolError) as caught:
        await made.send(broken, timeout=TIMEOUT)
    check(caught.value, broken)
    with pytest.raises(httpx.UnsupportedProtocol):
        await made.send(nowhere, timeout=TIMEOUT)
    assert server.seen == []
    assert repr(made) == "AiohttpTransport(limit=0, limit_per_host=0)"
    assert repr(HttpxTransport()) == "HttpxTransport(http2=False)"
    await made.aclose()


async def test_200_concurrent_sends_through_50_connections(server: Server) -> None:
    made = AiohttpTransport(limit_per_host=50)

    async def one(number: int) -> int:
        request = httpx.Request("POST", server.url + "/wave", json={"n": number})
        return (await made.send(request, timeout=TIMEOUT)).status_code

    statuses = await asyncio.gather(*(one(number) for number in range(200)))

    assert statuses == [200] * 200
    assert server.wave == 200
    assert server.most_in_flight == 50
    await made.aclose()


# -- lifecycle ---------------------------------------------------------------------------------


async def test_aclose_is_idempotent_and_a_later_send_reopens(
    transport: AsyncTransport, server: Server
) -> None:
    await transport.aclose()  # never opened
    assert (await transport.send(httpx.Request("GET", server.url), timeout=TIMEOUT)).is_success

    await transport.aclose()
    await transport.aclose()

    assert (await transport.send(httpx.Request("GET", server.url), timeout=TIMEOUT)).is_success


async def test_the_aiohttp_session_is_made_again_after_aclose(server: Server) -> None:
    made = AiohttpTransport()
    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    first = made._session
    await made.aclose()

    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)

    assert first is not None
    assert first.closed
    assert made._session is not None
    assert made._session is not first
    await made.aclose()


async def test_a_given_httpx_client_is_closed_only_when_owned(server: Server) -> None:
    for owns in (False, True):
        client = httpx.AsyncClient()
        made = HttpxTransport(client, owns=owns)
        await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)

        await made.aclose()
        await made.aclose()

        assert client.is_closed is owns
        await client.aclose()


def test_http2_is_for_the_client_the_transport_makes() -> None:
    with pytest.raises(ConfigurationError, match="http2"):
        HttpxTransport(httpx.AsyncClient(), http2=True)


async def test_a_forked_child_opens_its_own_session(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent's session is neither used nor closed in the child (its sockets are shared)."""
    made = AiohttpTransport()
    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    parent = made._session
    assert parent is not None
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)

    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)

    assert made._session is not parent
    assert not parent.closed
    assert transport_module._ABANDONED[-1] is parent
    await made.aclose()
    monkeypatch.undo()
    transport_module._ABANDONED.remove(parent)
    await parent.close()


async def test_a_forked_child_does_not_close_the_parents_session(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = AiohttpTransport()
    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    parent = made._session
    assert parent is not None
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)

    await made.aclose()

    assert not parent.closed
    monkeypatch.undo()
    transport_module._ABANDONED.remove(parent)
    await parent.close()


async def test_a_forked_child_makes_its_own_httpx_client(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = HttpxTransport()
    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    parent = made._client
    assert parent is not None
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)

    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)

    assert made._client is not parent
    assert not parent.is_closed
    await made.aclose()
    child = HttpxTransport()
    await child.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    inherited = child._client
    monkeypatch.setattr(os, "getpid", lambda: child_pid + 1)
    await child.aclose()  # in a "forked child": leaves the parent's client alone
    assert inherited is not None
    assert not inherited.is_closed
    await inherited.aclose()
    await parent.aclose()


async def test_a_session_of_another_running_loop_is_refused(server: Server) -> None:
    made = AiohttpTransport()
    await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    other = asyncio.new_event_loop()
    real = made._loop
    made._loop = other
    try:
        with pytest.raises(RuntimeError, match="another event loop"):
            await made.send(httpx.Request("GET", server.url), timeout=TIMEOUT)
    finally:
        made._loop = real
        other.close()
    await made.aclose()


async def test_a_session_of_a_closed_loop_is_replaced(server: Server) -> None:
    made = AiohttpTransport()
    await made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)
    old = made._session
    assert old is not None
    connector = old.connector
    gone = asyncio.new_event_loop()
    gone.close()
    made._loop = gone

    await made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)

    assert made._session is not old
    assert old.closed  # detached: no "unclosed session" warning
    assert connector is not None
    await connector.close()
    await made.aclose()


async def test_aclose_leaves_a_session_of_a_closed_loop_alone(server: Server) -> None:
    made = AiohttpTransport()
    await made.send(httpx.Request("GET", server.url + "/echo"), timeout=TIMEOUT)
    old = made._session
    assert old is not None
    connector = old.connector
    gone = asyncio.new_event_loop()
    gone.close()
    made._loop = gone

    await made.aclose()

    assert old.closed
    assert made._session is None
    assert connector is not None
    await connector.close()


# -- choosing a transport ----------------------------------------------------------------------


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_proxies")
def test_default_transport_picks_aiohttp_when_installed() -> None:
    assert isinstance(default_transport(), AiohttpTransport)
    assert isinstance(default_transport("aiohttp"), AiohttpTransport)
    assert default_transport("httpx") is None
    assert isinstance(AiohttpTransport(), AsyncTransport)
    assert isinstance(HttpxTransport(), AsyncTransport)


@pytest.mark.usefixtures("no_proxies")
def test_auto_keeps_httpx_when_a_proxy_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")

    assert default_transport() is None
    assert isinstance(default_transport("aiohttp"), AiohttpTransport)


def test_without_aiohttp_auto_is_httpx_and_aiohttp_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)

    assert default_transport() is None
    with pytest.raises(ConfigurationError) as caught:
        default_transport("aiohttp")
    assert str(caught.value) == 'the aiohttp transport needs: pip install "anysend[fast]"'


def test_an_old_aiohttp_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiohttp, "__version__", "3.8.6")

    assert default_transport() is None
    with pytest.raises(ConfigurationError, match=r"anysend\[fast\].*3\.8\.6"):
        AiohttpTransport()


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown transport 'curl'"):
        default_transport("curl")
    with pytest.raises(ConfigurationError, match="limit"):
        AiohttpTransport(limit_per_host=-1)


def test_importing_anysend_does_not_import_aiohttp() -> None:
    code = (
        "import sys, anysend, anysend._transport; "
        "sys.exit('aiohttp' in sys.modules or 'yarl' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False)  # noqa: S603
    assert done.returncode == 0


# -- raw requests (an adapter's fast path) -----------------------------------------------------


def raw_of(request: httpx.Request) -> RawRequest:
    """``request`` as a RawRequest: what an adapter's ``raw_request`` hands over."""
    headers = {k.decode(): v.decode() for k, v in request.headers.raw}
    return RawRequest(request.method, str(request.url), headers, request.read())


RAW_BUILDERS = {
    name: BUILDERS[name]
    for name in (
        "get with an encoded path and query",
        "json",
        "form",
        "raw bytes without a content type",
        "post without a body",
        "own host and user agent",
        "a body over 1 MiB",
    )
}


@pytest.mark.parametrize("build", RAW_BUILDERS.values(), ids=RAW_BUILDERS.keys())
async def test_a_raw_request_arrives_as_httpx_built_it(
    server: Server, build: Callable[[str], httpx.Request]
) -> None:
    request = build(server.url)
    body = request.read()
    made = AiohttpTransport()

    answer = await made.send_raw(raw_of(request), timeout=TIMEOUT)

    assert isinstance(answer, RawResponse)
    assert answer.status_code == 200
    assert answer.is_success
    assert answer.json() == {"method": request.method, "length": len(body)}
    [seen] = server.seen
    assert seen.method == request.method
    assert seen.target == request.url.raw_path.decode("ascii")
    assert seen.headers == sent_headers(request)
    assert seen.body == body
    await made.aclose()


@pytest.mark.parametrize("path", ["/status/201", "/status/503", "/status/204", "/gzip", "/chunked"])
async def test_a_raw_answer_is_the_answer_send_returns(server: Server, path: str) -> None:
    made = AiohttpTransport()
    request = httpx.Request("POST", server.url + path, json={})

    raw = await made.send_raw(raw_of(request), timeout=TIMEOUT)
    sent = await made.send(request, timeout=TIMEOUT)
    again = raw.to_httpx(request)

    assert raw.status_code == sent.status_code == again.status_code
    assert raw.is_success is sent.is_success
    assert raw.reason_phrase == sent.reason_phrase == again.reason_phrase
    assert raw.http_version == sent.http_version == again.http_version == "HTTP/1.1"
    assert raw.content == sent.content == again.content  # Content-Encoding undone once
    assert raw.headers.get("content-type") == sent.headers.get("content-type")
    assert [h for h in raw.raw_headers if h[0].lower() != b"date"] == [
        h for h in sent.headers.raw if h[0].lower() != b"date"
    ]
    assert again.request is request
    assert raw.elapsed.total_seconds() >= 0
    assert repr(raw) == f"<RawResponse [{raw.status_code} {raw.reason_phrase}]>"
    await made.aclose()


async def test_raw_requests_fail_as_send_does(server: Server) -> None:
    made = AiohttpTransport()
    nowhere = RawRequest("POST", f"http://127.0.0.1:{free_port()}/{SECRET}", {}, b"{}")
    ftp = RawRequest("POST", f"ftp://127.0.0.1/{SECRET}", {}, b"")
    slow = RawRequest("POST", f"{server.url}/slow?token={SECRET}", {}, b"{}")

    with pytest.raises(httpx.ConnectError) as refused:
        await made.send_raw(nowhere, timeout=TIMEOUT)
    with pytest.raises(httpx.UnsupportedProtocol, match="ftp"):
        _ = made.send_raw(ftp, timeout=TIMEOUT)  # refused before anything is awaited
    with pytest.raises(httpx.ReadTimeout) as late:
        await made.send_raw(slow, timeout=httpx.Timeout(5.0, read=0.1))
    async with hang_up_server() as base:
        hung = RawRequest("POST", f"{base}/hooks/{SECRET}", {"Content-Length": "2"}, b"{}")
        with pytest.raises(httpx.RemoteProtocolError) as cut:
            await made.send_raw(hung, timeout=TIMEOUT)

    for caught, raw in ((refused, nowhere), (late, slow), (cut, hung)):
        error = caught.value
        assert error.request.url == httpx.URL(raw.url)  # the request, made for the error
        assert error.__cause__ is not None
        assert SECRET not in str(error)
    await made.aclose()


# -- connection limits follow send_many ----------------------------------------------------------


async def test_a_reservation_raises_the_limits_while_it_lasts(server: Server) -> None:
    made = AiohttpTransport(limit_per_host=1)
    holding = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/hold"), timeout=TIMEOUT)
    )
    await asyncio.wait_for(server.arrived.wait(), 5)
    with pytest.raises(httpx.PoolTimeout):  # one per host: the second waits, then gives up
        await made.send(httpx.Request("GET", server.url), timeout=httpx.Timeout(5.0, pool=0.05))

    end = made.reserve(1)
    assert made._limits() == (0, 1)  # the sum of the reservations, at least the configured
    second = made.reserve(2)
    assert made._limits() == (0, 3)
    answer = await made.send(
        httpx.Request("GET", server.url), timeout=httpx.Timeout(5.0, pool=0.05)
    )
    assert answer.status_code == 200
    second()
    second()  # ending twice ends once
    end()
    assert made._limits() == (0, 1)
    server.release.set()
    await holding
    assert AiohttpTransport()._limits() == (0, 0)  # no limit stays no limit
    await made.aclose()


async def test_a_raised_limit_lets_the_waiting_sends_in(server: Server) -> None:
    made = AiohttpTransport(limit=1)
    holding = asyncio.ensure_future(
        made.send(httpx.Request("GET", server.url + "/hold"), timeout=TIMEOUT)
    )
    await asyncio.wait_for(server.arrived.wait(), 5)
    waiting = asyncio.ensure_future(made.send(httpx.Request("GET", server.url), timeout=TIMEOUT))
    await asyncio.sleep(0)
    assert not waiting.done()

    end = made.reserve(2)

    assert (await asyncio.wait_for(waiting, 5)).status_code == 200
    end()
    server.release.set()
    await holding
    await made.aclose()


async def test_a_slot_handed_to_a_canceled_wait_is_passed_on() -> None:
    slots = transport_module._Slots(1)
    loop = asyncio.get_running_loop()
    assert slots.take_now()
    first = asyncio.ensure_future(slots.take(None, loop))
    second = asyncio.ensure_future(slots.take(loop.time() + 5, loop))
    await asyncio.sleep(0)

    slots.release()  # handed to the first waiter, which is canceled before it runs
    first.cancel()

    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second  # the slot went on to the next waiter
    assert slots.used == 1
    expired = asyncio.ensure_future(slots.take(loop.time() + 0.01, loop))
    assert not await expired
    slots.release()
    assert slots.used == 0
    assert slots.take_now()


async def test_send_many_is_not_held_back_by_the_connection_limit(server: Server) -> None:
    """150 sends at once through a transport of 100 connections per host: all in flight."""
    from anysend import AsyncClient, Message, Recipient
    from anysend.providers.webhook import Webhook

    server.wave_size = 150
    hook = Webhook(url=server.url + "/wave")
    async with AsyncClient([hook], transport="aiohttp") as client:
        fast = client._fast
        assert isinstance(fast, AiohttpTransport)
        assert fast._limits() == (0, 100)
        items = [(Message(text=f"n {n}"), Recipient()) for n in range(150)]
        results = [r async for r in client.send_many(items, via="webhook", concurrency=150)]
        assert fast._limits() == (0, 100)  # as configured again once send_many is done

    assert all(r.ok for r in results)
    assert server.most_in_flight == 150


# -- the client's raw path ---------------------------------------------------------------------


@pytest.fixture
def counted_raw_sends(monkeypatch: pytest.MonkeyPatch) -> list[RawRequest]:
    sent: list[RawRequest] = []
    real = AiohttpTransport.send_raw

    def send_raw(self: AiohttpTransport, request: RawRequest, *, timeout: httpx.Timeout) -> Any:
        sent.append(request)
        return real(self, request, timeout=timeout)

    monkeypatch.setattr(AiohttpTransport, "send_raw", send_raw)
    return sent


async def test_the_webhook_adapter_sends_the_same_request_either_way(
    server: Server, counted_raw_sends: list[RawRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through aiohttp the adapter's raw path; through httpx its httpx.Request: same bytes."""
    from anysend import AsyncClient, Message, Recipient
    from anysend.providers.webhook import Webhook

    monkeypatch.setattr("os.urandom", lambda n: b"\x07" * n)  # the same message id twice
    results = []
    for kind in ("aiohttp", "httpx"):
        hook = Webhook(url=server.url + "/echo", secret="whsec_x", headers={"X-Api-Key": "k"})
        hook.now = lambda: 1_700_000_000.0
        async with AsyncClient([hook], transport=kind) as client:
            message = Message(text="Zażółć", metadata={"order": "42"}, idempotency_key="k-1")
            results.append(await client.send(message, Recipient(id="u-1"), via="webhook"))

    assert len(counted_raw_sends) == 1  # the aiohttp send took the raw path
    first, second = server.seen
    assert (first.method, first.target, first.body) == (second.method, second.target, second.body)
    assert first.headers == second.headers
    assert [r.model_dump(exclude={"attempts"}) for r in results[:1]] == [
        r.model_dump(exclude={"attempts"}) for r in results[1:]
    ]
    assert results[0].receipt is not None
    assert results[0].receipt.raw == {"method": "POST", "length": len(first.body)}


async def test_an_adapter_that_changes_the_request_is_never_bypassed(
    server: Server, counted_raw_sends: list[RawRequest]
) -> None:
    from anysend import AsyncClient, Message, OutboundMessage, Recipient
    from anysend.providers.webhook import Webhook

    class Tagged(Webhook):
        def build_request(self, message: OutboundMessage) -> httpx.Request:
            request = super().build_request(message)
            request.headers["X-Tag"] = "mine"
            return request

    async with AsyncClient(
        [Tagged(url=server.url + "/echo")], transport="aiohttp", base_urls={}
    ) as client:
        result = await client.send(Message(text="hi"), Recipient(), via="webhook")

    assert result.ok
    assert counted_raw_sends == []
    [seen] = server.seen
    assert ("x-tag", "mine") in seen.headers


async def test_raw_path_failures_are_the_send_flows_failures(
    server: Server, counted_raw_sends: list[RawRequest]
) -> None:
    from anysend import AsyncClient, ErrorCategory, Message, Recipient, RetryPolicy
    from anysend.providers.webhook import Webhook

    once = RetryPolicy(max_attempts=1)
    outcomes = {}
    async with hang_up_server() as base:
        for name, url in (
            ("refused", f"http://127.0.0.1:{free_port()}/hook"),
            ("hung up", f"{base}/hook"),
            ("503", server.url + "/status/503"),
            ("404", server.url + "/status/404"),
        ):
            async with AsyncClient([Webhook(url=url)], transport="aiohttp", retry=once) as client:
                result = await client.send(Message(text="hi"), Recipient(), via="webhook")
            assert result.error is not None
            outcomes[name] = (result.status.value, result.error.category)

    assert len(counted_raw_sends) == 4
    assert outcomes == {
        "refused": ("failed", ErrorCategory.UNAVAILABLE),
        "hung up": ("unknown", ErrorCategory.AMBIGUOUS_TIMEOUT),
        "503": ("failed", ErrorCategory.UNAVAILABLE),
        "404": ("failed", ErrorCategory.CONFIGURATION),  # the configured url is gone
    }
