"""AsyncClient.send_many also takes an async iterable (a database cursor, a queue)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from anysend import AsyncClient, Channel, Message, Recipient
from anysend.testing import MemoryProvider

pytestmark = pytest.mark.anyio


async def people(count: int) -> AsyncIterator[tuple[Message, Recipient]]:
    for index in range(count):
        yield Message(text=f"hi {index}"), Recipient(phone=f"+4860070{index:04d}")


async def test_an_async_iterable_of_items() -> None:
    outbox = MemoryProvider(name="sms", channels=frozenset({Channel.SMS}))
    async with AsyncClient([outbox]) as client:
        results = [r async for r in client.send_many(people(25), via="sms", concurrency=4)]
    assert sorted(r.index for r in results) == list(range(25))
    assert len(outbox.messages) == 25
