# GENERATED from src/anysend/_async/_idempotency.py by scripts/unasync.py. Do not edit: edit the source.
"""Idempotency keys in memory: the same key sent twice, even at once, sends once.

The first call with a key runs the send; a call with the same key while it runs waits for it,
and a later call gets the stored result (marked ``idempotent_replay``). Keys are forgotten
after ``ttl`` seconds. A send that raised (bad input) stores nothing, so a corrected retry
goes through. The durable store of a later release takes this over across processes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from anysend._clock import Clock
from anysend._results import SendResult
from anysend._synchronization import Event, Lock

__all__ = ["IdempotencyCache"]


@dataclass
class _Entry:
    created: float
    done: Event = field(default_factory=Event)
    result: SendResult | None = None


class IdempotencyCache:
    """Results by idempotency key, with concurrent callers of one key sharing one send."""

    def __init__(self, *, ttl: float, clock: Clock, max_entries: int = 100_000) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = Lock()

    def run(self, key: str, send: Callable[[], SendResult]) -> SendResult:
        """Return the stored result for ``key``, or run ``send`` once and store its result."""
        while True:
            with self._lock:
                self._evict()
                entry = self._entries.get(key)
                owner = entry is None
                if entry is None:
                    entry = _Entry(created=self._clock.monotonic())
                    self._entries[key] = entry
            if owner:
                break
            entry.done.wait()
            if entry.result is not None:
                return entry.result.model_copy(update={"idempotent_replay": True})
            # The first send raised before producing a result: try again as the owner.
        try:
            entry.result = send()
        except BaseException:
            with self._lock:
                self._entries.pop(key, None)
            raise
        finally:
            entry.done.set()
        return entry.result

    def _evict(self) -> None:
        now = self._clock.monotonic()
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            expired = now - oldest.created > self._ttl and oldest.result is not None
            if not expired and len(self._entries) <= self._max_entries:
                break
            if oldest.result is None:  # still sending: never drop it
                break
            del self._entries[key]
