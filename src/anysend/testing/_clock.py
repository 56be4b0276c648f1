"""``VirtualClock``: time that passes only when told to, so waits cost nothing in tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

__all__ = ["VirtualClock"]


class VirtualClock:
    """A clock for tests: ``sleep`` and ``asleep`` advance it instantly and are recorded.

    Pass it as ``Client(clock=...)``; check ``clock.sleeps`` to see every wait the client
    made (backoff, ``Retry-After``).

    Args:
        start: the wall-clock time it starts at (UTC).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._monotonic = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The virtual wall-clock time."""
        return self._now

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        return self._monotonic

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds < 0:
            raise ValueError("time does not go back")
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance the clock by it, at once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """Record the wait, advance the clock, and let other tasks run."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now.isoformat()})"
