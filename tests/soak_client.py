"""The sending side of the soak (``tests/test_soak.py``), run as its own process.

``python -m tests.soak_client --primary URL --backup URL --mode async|sync --n N --prefix P
--store PATH --out PATH`` sends ``N`` messages with ``send_many`` (``AsyncClient`` or the sync
``Client``) through :class:`Primary`, failing over to :class:`Backup`, with :data:`POLICY`,
and writes one JSON line per item to ``--out`` (``{"index": i, "result": <SendResult>}`` or
``{"index": i, "error": "..."}``), then a last line ``{"duration_s": ..., "cpu_s": ...}``.

It runs apart from pytest so that coverage tracing (which triples the cost of every line)
does not slow the sends down: the test checks the results it writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, Any, ClassVar

from anysend import AsyncClient, BulkResult, Client, Message, Recipient, RetryPolicy
from anysend.providers import Capabilities, Provider
from anysend.providers.webhook import Webhook

__all__ = ["POLICY", "TIMEOUT", "Backup", "PlainBackup", "PlainPrimary", "Primary", "items"]

#: The client's timeout (the fault server's slow answers come later than this).
TIMEOUT = 0.3

POLICY = RetryPolicy(
    max_attempts=2,
    initial_backoff=0.01,
    multiplier=2.0,
    max_backoff=0.05,
    jitter=0.5,
    max_retry_after=1.0,
    deadline=30.0,
)


class Primary(Webhook):
    """The ``Webhook`` adapter for a receiver that deduplicates on ``Idempotency-Key``."""

    name: ClassVar[str] = "primary"
    capabilities: ClassVar[Capabilities] = Webhook.capabilities.model_copy(
        update={"idempotency": True}
    )


class Backup(Primary):
    """The failover: another receiver, another name (results and health tell them apart)."""

    name: ClassVar[str] = "backup"


class PlainPrimary(Webhook):
    """The stock adapter: the receiver is not assumed to deduplicate."""

    name: ClassVar[str] = "primary"


class PlainBackup(Webhook):
    """The stock adapter's failover."""

    name: ClassVar[str] = "backup"


def items(prefix: str, n: int) -> Iterator[tuple[Message, Recipient]]:
    """``n`` messages with the keys ``<prefix>-<i>`` (and ``i`` in their metadata)."""
    for i in range(n):
        message = Message(
            text=f"message {i}", idempotency_key=f"{prefix}-{i}", metadata={"n": str(i)}
        )
        yield message, Recipient(id=f"user-{i}")


def _write(out: IO[str], outcome: BulkResult) -> None:
    if outcome.result is not None:
        line = f'{{"index": {outcome.index}, "result": {outcome.result.model_dump_json()}}}'
    else:
        line = json.dumps({"index": outcome.index, "error": repr(outcome.error)})
    out.write(line + "\n")


def main(argv: list[str] | None = None) -> None:
    """Send, write the results."""
    parser = argparse.ArgumentParser()
    for name in ("--primary", "--backup", "--prefix", "--store", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--mode", choices=["async", "sync"], required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    providers: list[Provider] = [Primary(url=args.primary), Backup(url=args.backup)]
    settings: dict[str, Any] = {
        "retry": POLICY,
        "timeout": TIMEOUT,
        "store": args.store,
        "health_cooldown": timedelta(seconds=0.5),
    }
    started, cpu = time.monotonic(), time.process_time()
    with open(args.out, "w", encoding="utf-8") as out:
        if args.mode == "sync":
            with Client(providers, **settings) as client:
                for outcome in client.send_many(
                    items(args.prefix, args.n), via="webhook", concurrency=args.concurrency
                ):
                    _write(out, outcome)
        else:

            async def run() -> None:
                async with AsyncClient(providers, **settings) as client:
                    async for outcome in client.send_many(
                        items(args.prefix, args.n), via="webhook", concurrency=args.concurrency
                    ):
                        _write(out, outcome)

            asyncio.run(run())
        duration, cpu = time.monotonic() - started, time.process_time() - cpu
        out.write(json.dumps({"duration_s": duration, "cpu_s": cpu}) + "\n")


if __name__ == "__main__":
    main()
