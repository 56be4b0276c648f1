"""Send to many recipients at once with AsyncClient, and check what went out.

python examples/async_send.py
"""

import asyncio

import anysend
from anysend.testing import MemoryProvider

CUSTOMERS = [
    anysend.Recipient(id=f"user-{n}", phone=f"+48 600 700 {n:03d}", locale="pl")
    for n in range(1, 21)
]


async def main() -> None:
    outbox = MemoryProvider(channels={"sms"})
    message = anysend.Message(text="Your order has shipped")
    async with anysend.AsyncClient([outbox]) as client:
        results = await asyncio.gather(*(client.send(message, to=c) for c in CUSTOMERS))
    sent = sum(result.ok for result in results)
    print(f"{sent} of {len(CUSTOMERS)} sent; the outbox holds {len(outbox.messages)} messages")
    assert sent == len(CUSTOMERS)


asyncio.run(main())
