"""Rate limits and idempotency keys shared by every process through Redis.

``AsyncClient(..., shared="redis://127.0.0.1:6379/0")`` makes one :class:`AsyncRedisShared`;
its :meth:`~AsyncRedisShared.limiter` builds an :class:`AsyncRedisRateLimiter` for each
limited provider (used by the client in place of the in-process limiter), and the client
claims idempotency keys through it instead of through its store. The scripts, the URL's
options and the design are described in ``anysend._redis``.

This file is the source of truth: ``anysend/_sync/_redis.py`` is generated from it.
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from anysend._clock import Clock, SystemClock
from anysend._ratelimit import PermitTimes, RateLimit
from anysend._redis import (
    ACQUIRE_SCRIPT,
    CLAIM_SCRIPT,
    PAUSE_SCRIPT,
    RELEASE_CLAIM_SCRIPT,
    AsyncRedisDriver,
    RedisOptions,
    parse_redis_url,
)
from anysend._results import SendResult
from anysend._synchronization import AsyncLock

if TYPE_CHECKING:
    from anysend._redis import AsyncRedisConnection

__all__ = ["AsyncRedisPermit", "AsyncRedisRateLimiter", "AsyncRedisShared", "AsyncRedisSlot"]

#: The longest wait before asking again for a ``concurrency`` slot held elsewhere.
_POLL = 0.02


def _hash(value: str) -> str:
    """Recipient addresses are never written to Redis as they are."""
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


class AsyncRedisShared:
    """A connection to the Redis that holds a deployment's shared state.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket), with
            anysend's options in the query: ``prefix`` (of every key, default ``anysend``),
            ``claim_ttl`` (seconds an idempotency claim lasts if its holder dies, default
            120) and ``slot_ttl`` (seconds a ``concurrency`` slot lasts if its holder dies,
            default 120). Other options go to redis-py.

    Raises:
        ConfigurationError: the URL is not valid, or redis-py is missing
            (``pip install "anysend[redis]"``).
    """

    def __init__(self, url: str) -> None:
        self._options: RedisOptions = parse_redis_url(url)
        self._redis: AsyncRedisConnection = AsyncRedisDriver.connect(self._options.url)
        self._acquire = self._redis.register_script(ACQUIRE_SCRIPT)
        self._pause = self._redis.register_script(PAUSE_SCRIPT)
        self._claim = self._redis.register_script(CLAIM_SCRIPT)
        self._unclaim = self._redis.register_script(RELEASE_CLAIM_SCRIPT)
        self._tokens: dict[str, str] = {}
        self._result_ttl = 24 * 3600.0

    @property
    def options(self) -> RedisOptions:
        """The URL's options (the redis-py URL, the key prefix, the leases)."""
        return self._options

    @property
    def redis(self) -> AsyncRedisConnection:
        """The redis-py client (for inspection and tests)."""
        return self._redis

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._options.prefix!r})"

    async def aclose(self) -> None:
        """Close the connections."""
        await self._redis.aclose()

    async def __aenter__(self) -> AsyncRedisShared:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- rate limits -----------------------------------------------------------------------------

    def limiter(self, name: str, limit: RateLimit, clock: Clock) -> AsyncRedisRateLimiter:
        """The shared limiter of the provider ``name`` (every process with the name shares it)."""
        return AsyncRedisRateLimiter(self, name, limit, clock)

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        return await script(keys=keys, args=args)

    # -- idempotency keys ------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return f"{self._options.prefix}:key:{key}"

    async def claim_idempotent(
        self, key: str, *, now: datetime, expires_at: datetime
    ) -> tuple[bool, SendResult | None]:
        """Claim a key for one send, atomically across processes.

        The same answers as :meth:`anysend.AsyncStore.claim_idempotent`; a claim whose holder
        neither finished nor gave it up (a worker killed mid-send) may be taken over once
        ``claim_ttl`` has passed, and the send is then made again with the same key.
        """
        self._result_ttl = max(1.0, (expires_at - now).total_seconds())
        token = uuid.uuid4().hex
        lease = str(math.ceil(self._options.claim_ttl * 1000))
        answer = await self._run(self._claim, [self._key(key)], [token, lease])
        if int(answer[0]) == 1:
            self._tokens[key] = token
            return True, None
        if len(answer) > 1:
            return False, SendResult.model_validate_json(answer[1])
        return False, None

    async def claimed(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` whose send another process has claimed and not finished.

        A task queue asks before a send: a key held by a worker that died waits for its
        claim to run out (``claim_ttl``) rather than for the client's 30 seconds.
        """
        if not keys:
            return set()
        values = await self._redis.mget([self._key(key) for key in keys])
        return {
            key for key, value in zip(keys, values, strict=True) if value and value[:2] == b"C:"
        }

    async def put_idempotent(self, key: str, result: SendResult, *, expires_at: datetime) -> None:
        """Keep the result of a claimed key's send (for the client's ``idempotency_ttl``)."""
        self._tokens.pop(key, None)
        value = "R:" + result.model_dump_json()
        await self._redis.set(self._key(key), value, px=math.ceil(self._result_ttl * 1000))

    async def release_idempotent(self, key: str) -> None:
        """Give up a claimed key whose send raised before it produced a result."""
        token = self._tokens.pop(key, None)
        if token is not None:
            await self._run(self._unclaim, [self._key(key)], [token])


class AsyncRedisPermit(PermitTimes):
    """Leave to send one request, from :meth:`AsyncRedisRateLimiter.acquire`.

    :meth:`aclose` gives back the ``concurrency`` slots it holds in Redis (a slot never
    given back expires after ``slot_ttl``). ``asked_at``, ``granted_at``, ``waited`` and
    ``released`` come from ``PermitTimes``.
    """

    def __init__(self, limiter: AsyncRedisRateLimiter, slots: list[str], asked_at: float) -> None:
        super().__init__(asked_at)
        self._limiter = limiter
        self._slots = slots
        self.id = uuid.uuid4().hex

    async def aclose(self) -> None:
        """Give back the in-flight slots (safe to call more than once)."""
        if self._released:
            return
        self._released = True
        for key in self._slots:
            await self._limiter._shared.redis.zrem(key, self.id)


class AsyncRedisSlot:
    """``async with`` one request: a shared permit on entry, given back on exit."""

    def __init__(self, limiter: AsyncRedisRateLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = key
        self._permit: AsyncRedisPermit | None = None

    async def __aenter__(self) -> AsyncRedisPermit:
        self._permit = await self._limiter.acquire(self._key)
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._permit is not None:
            permit, self._permit = self._permit, None
            await permit.aclose()


class AsyncRedisRateLimiter:
    """Enforces one :class:`~anysend.RateLimit` for every process sharing a Redis.

    The same interface as the in-process limiter (``slot``, ``acquire``, ``penalize``,
    ``limit``); its state is in Redis under ``{prefix}:{rl:<name>}:...`` (one hash tag per
    provider, so a Redis Cluster keeps a provider's keys on one node). Requests are served in
    the order they reach Redis, whichever process sends them.

    Args:
        shared: the Redis connection.
        name: the provider's name (processes share the limiter of a name).
        limit: the limit.
        clock: the clock slept on; with the real clock, time is Redis's own (``TIME``), the
            same for every host; another clock's ``now()`` is used instead (tests).
    """

    def __init__(self, shared: AsyncRedisShared, name: str, limit: RateLimit, clock: Clock):
        self._shared = shared
        self._name = name
        self._limit = limit
        self._clock = clock
        self._redis_time = isinstance(clock, SystemClock)
        self._base = f"{shared.options.prefix}:{{rl:{name}}}"
        self._levels = limit.levels
        self._capped = any(level.concurrency for level in self._levels)
        # Waiting for a concurrency slot held elsewhere means asking Redis again: one task
        # of this process asks at a time, the others queue here.
        self._gate = AsyncLock()
        self._penalties: list[tuple[float, str | None]] = []
        self._mutex = threading.Lock()  # for the list of penalties only, never across a wait

    @property
    def limit(self) -> RateLimit:
        """The limit enforced."""
        return self._limit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {self._limit!r})"

    def _now(self) -> str:
        return "" if self._redis_time else f"{self._clock.now().timestamp():.6f}"

    def _state_keys(self, key: str) -> list[tuple[str, str]]:
        """Per level: (its state hash, its in-flight set) for the recipient ``key``."""
        keys = []
        hashed = _hash(key) if any(lvl.per == "recipient" for lvl in self._levels) else ""
        for index, level in enumerate(self._levels):
            level_key = f"{self._base}:{index}"
            if level.per == "recipient":
                level_key += f":{hashed}"
            keys.append((f"{level_key}:bucket", f"{level_key}:flight"))
        return keys

    def slot(self, key: str = "") -> AsyncRedisSlot:
        """``async with limiter.slot(to):`` around one request."""
        return AsyncRedisSlot(self, key)

    async def acquire(self, key: str = "") -> AsyncRedisPermit:
        """Wait for leave to send one request to ``key`` (the recipient address).

        Takes the place of this request at every level in one atomic script, then sleeps
        (on the client's clock) until its start time; a full ``concurrency`` cap is asked
        again until a slot is free. Release the permit once the request is over.
        """
        await self._flush_penalties()
        pairs = self._state_keys(key)
        keys = [k for pair in pairs for k in pair] + [f"{self._base}:pause"]
        slots = [
            flight for (_, flight), lvl in zip(pairs, self._levels, strict=True) if lvl.concurrency
        ]
        permit = AsyncRedisPermit(self, slots, self._clock.monotonic())
        args = [permit.id, f"{self._shared.options.slot_ttl:.6f}", str(len(self._levels))]
        for level in self._levels:
            rate = level.per_second or 0.0
            tau = (level.capacity - 1) / rate if rate else 0.0
            args += [repr(rate), repr(tau), str(level.concurrency or 0)]
        script = self._shared._acquire
        if self._capped:
            async with self._gate:
                while True:
                    answer = await self._shared._run(script, keys, [self._now(), *args])
                    if int(answer[0]) == 1:
                        break
                    await self._clock.asleep(min(_POLL, max(float(answer[1]), 0.001)))
        else:
            answer = await self._shared._run(script, keys, [self._now(), *args])
        wait = float(answer[1])
        try:
            if wait > 0:
                await self._clock.asleep(wait)
        except BaseException:
            await permit.aclose()
            raise
        permit.granted_at = self._clock.monotonic()
        return permit

    def penalize(self, seconds: float, key: str | None = None) -> None:
        """Send nothing for ``seconds`` (a provider's ``Retry-After``), in every process.

        Recorded here and written to Redis before this process's next request: the pause
        then holds for every process, and the paused buckets restart empty. With ``key``,
        only that recipient's per-recipient levels pause (the whole limiter when it has
        none). Not a positive finite number: ignored.
        """
        if seconds > 0 and math.isfinite(seconds):
            with self._mutex:
                self._penalties.append((seconds, key))

    async def _flush_penalties(self) -> None:
        if not self._penalties:
            return
        with self._mutex:
            pending, self._penalties = self._penalties, []
        for seconds, key in pending:
            keyed = [i for i, lvl in enumerate(self._levels) if lvl.per == "recipient"]
            if key is None or not keyed:
                targets = [(f"{self._base}:pause", "0")]
            else:
                states = self._state_keys(key)
                targets = [(states[i][0], "1") for i in keyed]
            for target, is_hash in targets:
                await self._shared._run(
                    self._shared._pause, [target], [self._now(), repr(seconds), is_hash]
                )


def open_shared(shared: AsyncRedisShared | str) -> AsyncRedisShared:
    """The shared state from a client's ``shared=`` option (a URL, or one already made)."""
    if isinstance(shared, AsyncRedisShared):
        return shared
    return AsyncRedisShared(shared)
