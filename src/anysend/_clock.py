"""Time, injectable: the clock the clients read and sleep on.

Tests pass :class:`anysend.testing.VirtualClock` so that backoff waits and deadlines pass in
no real time; production uses :class:`SystemClock`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What anysend needs from a clock."""

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware (UTC)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and durations)."""

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (used by ``Client``)."""

    async def asleep(self, seconds: float) -> None:
        """Wait for ``seconds`` without blocking the event loop (used by ``AsyncClient``)."""


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.sleep`` and ``asyncio.sleep``."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """``time.sleep(seconds)``."""
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """``await asyncio.sleep(seconds)``."""
        import asyncio  # here, so that the sync Client never imports asyncio

        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"
