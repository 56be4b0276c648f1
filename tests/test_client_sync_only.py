"""Behaviour only the sync Client has: threads, running event loops, fork."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import ClassVar

import httpx
import pytest
import respx

import anysend
from anysend import Channel, Message, Recipient
from anysend._models import OutboundMessage
from anysend._results import Receipt
from anysend.providers import Capabilities, Provider
from anysend.testing import MemoryProvider

ANN = Recipient(phone="+48600700800")
TEXT = Message(text="hello")


class AsyncOnly(Provider):
    """A direct adapter with only asend()."""

    name: ClassVar[str] = "async-only"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})

    async def asend(self, message: OutboundMessage) -> Receipt:
        return Receipt()


class SyncOnly(Provider):
    """A direct adapter with only send()."""

    name: ClassVar[str] = "sync-only"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities()

    def send(self, message: OutboundMessage) -> Receipt:
        return Receipt(provider_message_id="x")


def test_client_refuses_an_async_only_adapter() -> None:
    """Client refuses, at construction, an adapter it cannot drive."""
    with pytest.raises(anysend.ConfigurationError, match="no send"):
        anysend.Client([AsyncOnly()])


def test_async_client_refuses_a_sync_only_adapter() -> None:
    """AsyncClient refuses, at construction, an adapter without asend()."""
    with pytest.raises(anysend.ConfigurationError, match="no asend"):
        anysend.AsyncClient([SyncOnly()])


def test_clients_refuse_objects_that_are_not_providers() -> None:
    """Anything but a Provider is refused with a clear error."""
    with pytest.raises(anysend.ConfigurationError, match=r"not an anysend\.providers\.Provider"):
        anysend.Client([object()])  # type: ignore[list-item]


def test_sync_client_works_inside_a_running_event_loop() -> None:
    """The sync client sends from code running inside an event loop (a notebook cell)."""
    outbox = MemoryProvider()

    async def inside_loop() -> anysend.SendResult:
        with anysend.Client([outbox]) as client:
            return client.send(TEXT, to=ANN)

    result = asyncio.run(inside_loop())
    assert result.ok
    assert len(outbox.messages) == 1


def test_idempotency_holds_across_threads() -> None:
    """Eight threads sending one idempotency key at once send once and share the result."""
    outbox = MemoryProvider(idempotency=False)
    message = TEXT.model_copy(update={"idempotency_key": "same"})
    barrier = threading.Barrier(8)
    results: list[anysend.SendResult] = []

    with anysend.Client([outbox]) as client:

        def worker() -> None:
            barrier.wait(timeout=5)
            results.append(client.send(message, to=ANN))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert outbox.calls == 1
    assert len({r.message_id for r in results}) == 1
    assert sum(not r.idempotent_replay for r in results) == 1


@pytest.mark.anyio
async def test_idempotency_holds_across_tasks() -> None:
    """Concurrent tasks sending one idempotency key send once."""
    outbox = MemoryProvider(idempotency=False)
    message = TEXT.model_copy(update={"idempotency_key": "same"})
    async with anysend.AsyncClient([outbox]) as client:
        results = await asyncio.gather(*(client.send(message, to=ANN) for _ in range(8)))
    assert outbox.calls == 1
    assert len({r.message_id for r in results}) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@respx.mock
def test_client_made_before_fork_sends_in_the_child(respx_mock: respx.MockRouter) -> None:
    """A client built in the parent opens its own connections in a forked child."""
    from tests._sync.test_client import HttpSMS

    respx_mock.post("https://api.example.test/v1/sms").mock(
        return_value=httpx.Response(200, json={"id": "SM1"})
    )
    client = anysend.Client([HttpSMS()])
    assert client.send(TEXT, to=ANN).ok  # the parent's pool exists now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            ok = client.send(TEXT, to=ANN).ok
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 2)
    os.close(read)
    client.close()
    assert status == 0
    assert answer == b"ok"


def test_http2_adapter_without_h2_asks_for_the_push_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter that needs HTTP/2 is refused at construction when h2 is missing."""
    monkeypatch.setitem(sys.modules, "h2", None)

    class NeedsH2(SyncOnly):
        http2: ClassVar[bool] = True

    with pytest.raises(anysend.ConfigurationError, match=r"anysend\[push\]"):
        anysend.Client([NeedsH2()])
