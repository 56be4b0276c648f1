"""send_many through AsyncClient (tests/_sync is generated from this file)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from anysend import (
    AsyncClient,
    BulkResult,
    Channel,
    ConfigurationError,
    ErrorCategory,
    InvalidRecipientError,
    Message,
    RateLimit,
    Recipient,
)
from anysend.providers.webhook import Webhook
from anysend.testing import MemoryProvider, VirtualClock

pytestmark = pytest.mark.anyio


async def collect(results: AsyncIterator[BulkResult]) -> list[BulkResult]:
    collected = []
    async for result in results:
        collected.append(result)
    return collected


def sms() -> MemoryProvider:
    return MemoryProvider(name="sms", channels=frozenset({Channel.SMS}))


class Counted:
    """An item source that counts how many items were taken from it."""

    def __init__(self, count: int, bad: frozenset[int] = frozenset()) -> None:
        self.count = count
        self.bad = bad
        self.taken = 0

    def __iter__(self) -> Iterator[tuple[Message, Any]]:
        for index in range(self.count):
            self.taken += 1
            phone = "not a number" if index in self.bad else f"+4860070{index:04d}"
            yield Message(text=f"hello {index}"), Recipient(phone=phone)


async def test_every_item_comes_back_once() -> None:
    outbox = sms()
    async with AsyncClient([outbox]) as client:
        results = await collect(client.send_many(Counted(300), via="sms", concurrency=7))
    assert sorted(r.index for r in results) == list(range(300))
    assert all(r.ok and r.error is None for r in results)
    assert len(outbox.messages) == 300
    assert {m.text for m in outbox.messages} == {f"hello {i}" for i in range(300)}


async def test_items_are_read_lazily_with_at_most_concurrency_in_flight() -> None:
    source = Counted(1_000)
    seen = 0
    async with AsyncClient([sms()]) as client:
        async for _ in client.send_many(source, via="sms", concurrency=5):
            seen += 1
            assert source.taken - seen <= 5  # never more than 5 items held ahead
    assert seen == 1_000


async def test_one_bad_item_never_stops_the_others() -> None:
    outbox = sms()
    outbox.fail(ErrorCategory.UNAVAILABLE, times=1)
    async with AsyncClient([outbox]) as client:
        results = {
            r.index: r
            async for r in client.send_many(Counted(20, bad=frozenset({3, 11})), via="sms")
        }
    assert len(results) == 20
    for index in (3, 11):
        assert not results[index].ok
        assert isinstance(results[index].error, InvalidRecipientError)
        assert results[index].result is None
    assert sum(r.ok for r in results.values()) == 18  # the unavailable one was retried


async def test_a_recipient_dict_with_an_unknown_field_is_that_items_typed_error() -> None:
    items = [
        (Message(text="one"), {"phone": "+48600700800", "fone": "+48600700801"}),
        (Message(text="two"), {"phone": "+48600700802"}),
    ]
    async with AsyncClient([sms()]) as client:
        with pytest.raises(InvalidRecipientError, match="fone"):
            await client.send(*items[0], via="sms")
        results = {r.index: r for r in await collect(client.send_many(items, via="sms"))}
    assert isinstance(results[0].error, InvalidRecipientError)
    assert results[1].ok


async def test_a_failed_send_is_a_result_not_an_error() -> None:
    outbox = sms()
    outbox.fail_always(ErrorCategory.QUOTA)
    async with AsyncClient([outbox]) as client:
        [item] = await collect(client.send_many(Counted(1), via="sms"))
    assert not item.ok
    assert item.error is None
    assert item.result is not None
    assert item.result.error is not None
    assert item.result.error.category is ErrorCategory.QUOTA


async def test_progress_callback_sees_every_item() -> None:
    calls: list[tuple[int, int]] = []
    async with AsyncClient([sms()]) as client:
        async for _ in client.send_many(
            Counted(10, bad=frozenset({0})),
            via="sms",
            concurrency=3,
            progress=lambda finished, sent: calls.append((finished, sent)),
        ):
            pass
    assert [finished for finished, _ in calls] == list(range(1, 11))
    assert calls[-1] == (10, 9)


async def test_stopping_early_sends_no_more_than_what_was_in_flight() -> None:
    outbox = sms()
    source = Counted(1_000)
    async with AsyncClient([outbox]) as client:
        async for _ in client.send_many(source, via="sms", concurrency=4):
            break
    assert source.taken <= 4
    assert len(outbox.messages) <= 4


async def test_concurrency_must_be_positive() -> None:
    async with AsyncClient([sms()]) as client:
        with pytest.raises(ConfigurationError, match="concurrency"):
            client.send_many([], concurrency=0)


async def test_bulk_result_ok() -> None:
    assert not BulkResult(0).ok


async def test_a_progress_bar_on_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    async with AsyncClient([sms()]) as client:
        results = await collect(client.send_many(list(Counted(3)), via="sms", progress=True))
        assert len(results) == 3
        assert "3/3" in capsys.readouterr().err  # a list has a length: the bar has a total
        await collect(client.send_many(Counted(2), via="sms", progress=True))
        assert "2/?" in capsys.readouterr().err


async def test_a_rate_limit_spaces_the_sends_of_a_provider() -> None:
    clock = VirtualClock()
    outbox = sms()
    limits = {"sms": RateLimit(per_second=2, burst=1)}
    async with AsyncClient([outbox], clock=clock, rate_limits=limits) as client:
        results = await collect(client.send_many(Counted(5), via="sms", concurrency=5))
    assert all(r.ok for r in results)
    # One at once, then one every half second: two seconds for five.
    assert clock.monotonic() == pytest.approx(2.0)


async def test_a_retry_after_pauses_every_send_through_the_provider() -> None:
    clock = VirtualClock()
    outbox = sms()
    outbox.fail(ErrorCategory.RATE_LIMITED, times=1, retry_after=30)
    limits = {"sms": RateLimit(concurrency=10)}
    async with AsyncClient([outbox], clock=clock, rate_limits=limits) as client:
        results = await collect(client.send_many(Counted(3), via="sms", concurrency=1))
    assert all(r.ok for r in results)
    assert clock.monotonic() >= 30


async def test_rate_limits_name_configured_providers() -> None:
    with pytest.raises(ConfigurationError, match="rate_limits"):
        AsyncClient([sms()], rate_limits={"twilio": RateLimit(per_second=1)})


# -- HTTP sends: connections are reused, whatever the concurrency -------------------------------


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A local HTTP/1.1 server that counts connections; its first answers wait for a wave."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, wave: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.posts = 0
        self.wave = wave
        self.full = threading.Event()
        self.lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        accepted = super().get_request()
        with self.lock:
            self.connections += 1
        return accepted


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        with server.lock:
            server.posts += 1
            if server.posts >= server.wave:
                server.full.set()
        # The first answers wait until a wave of requests is in flight together (bounded).
        server.full.wait(5)
        body = b'{"id": "hook-1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def counting_server(wave: int) -> Iterator[_Server]:
    server = _Server(wave)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_http_sends_in_bulk_reuse_their_connections() -> None:
    """More sends in flight than httpx keeps idle by default (20): connections are reused.

    httpcore 1.0 counts every connection against ``max_keepalive_connections``, and closed
    each connection as it went idle once more than 20 were open; from a sync client's
    threads it closed connections another thread had just been handed ("Bad file
    descriptor" after the request went out).
    """
    with counting_server(wave=25) as server:
        hook = Webhook(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
        items = ((Message(text=f"number {n}"), Recipient()) for n in range(300))
        async with AsyncClient([hook], transport="httpx") as client:
            results = await collect(client.send_many(items, via="webhook", concurrency=30))
    failed = [r.result.error for r in results if r.result is not None and not r.ok]
    assert failed == []
    assert len(results) == 300
    assert all(r.ok for r in results)
    assert server.posts == 300
    assert 25 <= server.connections <= 30
