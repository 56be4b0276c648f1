"""Processes that write to a SQLite store, for ``tests/test_crash.py`` to kill mid-transaction.

``python -m tests.crash_sqlite hold STORE COMMITTED UNCOMMITTED`` records ``COMMITTED``
messages through the store (``m-<i>``, each committed), then opens one write transaction that
inserts ``UNCOMMITTED`` more rows (``u-<i>``, big enough for SQLite to spill pages to the WAL
before any commit) and marks every committed message failed, prints ``holding`` and waits on
standard input, transaction open, until it is killed.

``python -m tests.crash_sqlite batches STORE START SIZE`` writes batch after batch, from
``START``: each one transaction of ``SIZE`` rows (``b<batch>-<i>``, ``step_id`` ``batch-<n>``),
printing the batch number once it is committed, until it is killed.
"""

from __future__ import annotations

import itertools
import sys
from datetime import datetime, timezone

from anysend import (
    Attempt,
    AttemptOutcome,
    Channel,
    DeliveryStatus,
    Receipt,
    SendResult,
    SQLiteStore,
)

__all__ = ["PADDING", "committed_result"]

#: Each raw row carries this much text, so that a transaction outgrows SQLite's page cache.
PADDING = "x" * 400
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def committed_result(i: int) -> SendResult:
    """The ``i``-th message the ``hold`` process records before its open transaction."""
    receipt = Receipt(provider_message_id=f"p-{i}")
    return SendResult(
        message_id=f"m-{i}",
        status=DeliveryStatus.ACCEPTED,
        channel=Channel.EMAIL,
        provider="memory",
        address=f"user{i}@example.com",
        receipt=receipt,
        attempts=(
            Attempt(
                channel=Channel.EMAIL,
                provider="memory",
                outcome=AttemptOutcome.SENT,
                address=f"user{i}@example.com",
                receipt=receipt,
            ),
        ),
    )


def _rows(
    prefix: str, size: int, step: str | None
) -> list[tuple[str, str | None, str, float, float]]:
    stamp = NOW.timestamp()
    return [(f"{prefix}-{i}", step, PADDING, stamp, stamp) for i in range(size)]


_INSERT = (
    "INSERT INTO messages (id, step_id, status, outcome, attempts, created_at, updated_at)"
    " VALUES (?, ?, 'pending', 'pending', ?, ?, ?)"
)


def hold(path: str, committed: int, uncommitted: int) -> None:
    """Commit ``committed`` messages, then hold a big write transaction open."""
    store = SQLiteStore(path)
    for i in range(committed):
        store.save_result(committed_result(i), now=NOW, recipient_id=f"user-{i}", category=None)
    with store._tx() as db:
        db.executemany(_INSERT, _rows("u", uncommitted, None))
        db.execute("UPDATE messages SET status = 'failed', outcome = 'failed' WHERE id LIKE 'm-%'")
        print("holding", flush=True)
        sys.stdin.read()  # until killed (the test never writes to it)


def batches(path: str, start: int, size: int) -> None:
    """Commit batch after batch of ``size`` rows, each in one transaction."""
    store = SQLiteStore(path)
    for batch in itertools.count(start):
        with store._tx() as db:
            db.executemany(_INSERT, _rows(f"b{batch}", size, f"batch-{batch}"))
        print(batch, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        batches(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
