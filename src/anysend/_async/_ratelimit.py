"""Per-provider rate limits, enforced on the client's clock.

One :class:`AsyncRateLimiter` enforces one :class:`~anysend.RateLimit` (and the limits chained
to it with ``also``); :class:`AsyncRateLimits` holds a client's limiters by provider name,
built from the adapters' ``rate_limit`` defaults and the client option ``rate_limits``.

Around one request (one attempt of one provider)::

    async with limits.slot(provider.name, outbound.to):
        ...  # send
    # on a 429 that named a wait:
    limits.penalize(provider.name, error.retry_after)

How it waits: each limit level (the provider-wide one, or one per recipient) has a token
bucket read on ``clock.monotonic()``. Requests line up first come, first served at each
level; only the one at the head sleeps (``clock.asleep``) until a token is due, so a
``VirtualClock`` records exactly the gaps between sends. The per-recipient levels are passed
first and the provider-wide ones last, and the tokens of every level are taken together once
all are due, so the request starts right after its last wait and a recipient's slow bucket
never holds up other recipients. A ``concurrency`` cap is a first-come, first-served
semaphore taken before the level's bucket and given back by :meth:`AsyncPermit.release`.

A penalty (a provider's ``Retry-After``) pauses a level: nothing is sent before it ends, and
the bucket restarts empty, so the sends that waited resume one ``1 / per_second`` apart rather
than all at once.

Per-recipient buckets are kept in a least-recently-used map of at most ``max_recipients``
entries (buckets in use or paused are never dropped); a recipient seen again after its
bucket was dropped starts with a full bucket, so keep ``max_recipients`` above the number of
recipients sent to within one refill period.

The concurrent senders of one client share its limiters (the tasks of one event loop, or
threads); the bookkeeping is guarded by a lock held for arithmetic only, never across a wait.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from anysend._clock import Clock
from anysend._exceptions import ConfigurationError
from anysend._ratelimit import PermitTimes, RateLimit
from anysend._synchronization import AsyncSemaphore

if TYPE_CHECKING:
    from anysend._async._redis import AsyncRedisRateLimiter, AsyncRedisShared, AsyncRedisSlot
    from anysend.providers import Provider

__all__ = [
    "DEFAULT_MAX_RECIPIENTS",
    "AsyncPermit",
    "AsyncRateLimiter",
    "AsyncRateLimits",
    "AsyncSlot",
]

#: How many per-recipient buckets a limiter keeps by default.
DEFAULT_MAX_RECIPIENTS = 10_000
#: Token counts this close below a whole token count as that token (float refill arithmetic).
_EPSILON = 1e-9


class _Bucket:
    """One level's state for one key: tokens, pause, in-flight cap and its queue."""

    __slots__ = ("capacity", "gate", "paused_until", "rate", "slots", "stamp", "tokens", "users")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.per_second
        self.capacity = limit.capacity
        self.tokens = float(self.capacity)
        self.stamp = now
        #: First come, first served: only the head of the queue waits for a token.
        self.gate = AsyncSemaphore()
        self.slots = AsyncSemaphore(limit.concurrency) if limit.concurrency else None
        self.paused_until = -math.inf
        #: Requests that hold the bucket (queued, waiting or in flight): never dropped then.
        self.users = 0

    def _refill(self, now: float) -> None:
        if self.rate is not None and now > self.stamp:
            self.tokens = min(float(self.capacity), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def delay(self, now: float, pause: float) -> float:
        """Seconds until a token is due and no pause holds (0 or less: now)."""
        pause = max(pause, self.paused_until)
        rate = self.rate
        if rate is None:
            return pause - now
        # A pause empties the bucket so that its next token is due exactly when it ends.
        empty_at = pause - 1.0 / rate
        if empty_at > self.stamp:
            self.tokens = 0.0
            self.stamp = empty_at
        self._refill(now)
        wait = max(0.0, self.stamp - now)
        if self.tokens < 1.0 - _EPSILON:
            wait += (1.0 - self.tokens) / rate
        return wait

    def take(self, now: float) -> None:
        """Spend one token."""
        if self.rate is not None:
            self._refill(now)
            self.tokens -= 1.0

    def idle(self, now: float) -> bool:
        """Nobody holds it and no pause is pending: it may be dropped."""
        return self.users == 0 and self.paused_until <= now


class _Level:
    """One limit of a chain: a shared bucket, or a bounded LRU map of buckets per recipient."""

    def __init__(self, limit: RateLimit, now: float, max_recipients: int) -> None:
        self.limit = limit
        self.per_recipient = limit.per == "recipient"
        self.max_recipients = max_recipients
        self.shared = None if self.per_recipient else _Bucket(limit, now)
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def bucket(self, key: str, now: float, *, use: bool) -> _Bucket:
        """The bucket of ``key`` (made when missing), marked in use when ``use``."""
        if self.shared is not None:
            bucket = self.shared
        else:
            found = self.buckets.get(key)
            if found is None:
                bucket = self.buckets[key] = _Bucket(self.limit, now)
            else:
                bucket = found
                self.buckets.move_to_end(key)
        if use:
            bucket.users += 1
        if self.shared is None:
            self._evict(now)
        return bucket

    def _evict(self, now: float) -> None:
        excess = len(self.buckets) - self.max_recipients
        if excess <= 0:
            return
        dropped: list[str] = []
        for key, bucket in self.buckets.items():  # least recently used first
            if bucket.idle(now):
                dropped.append(key)
                if len(dropped) == excess:
                    break
        for key in dropped:
            del self.buckets[key]


class AsyncPermit(PermitTimes):
    """Leave to send one request, from :meth:`AsyncRateLimiter.acquire`.

    The rate's tokens are spent when it is granted; :meth:`release` gives back the
    ``concurrency`` slots it holds (call it once the response is in, whatever happened). It
    is also a context manager that releases on exit, and releasing twice does nothing.
    ``asked_at``, ``granted_at``, ``waited`` and ``released`` come from ``PermitTimes``.
    """

    def __init__(self, limiter: AsyncRateLimiter, asked_at: float) -> None:
        super().__init__(asked_at)
        self._limiter = limiter
        self._buckets: list[_Bucket] = []
        self._slots: list[AsyncSemaphore] = []

    def release(self) -> None:
        """Give back the in-flight slots (safe to call more than once)."""
        if self._released:
            return
        self._released = True
        for slots in reversed(self._slots):
            slots.release()
        self._limiter._check_in(self._buckets)

    def __enter__(self) -> AsyncPermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class AsyncSlot:
    """``async with`` one request: acquires a permit on entry, releases it on exit.

    Made by :meth:`AsyncRateLimiter.slot` and :meth:`AsyncRateLimits.slot`; without a limiter
    (a provider with no limit) it does nothing. Use each slot once.
    """

    def __init__(self, limiter: AsyncRateLimiter | None, key: str = "") -> None:
        self._limiter = limiter
        self._key = key
        self._permit: AsyncPermit | None = None

    async def __aenter__(self) -> AsyncPermit | None:
        if self._limiter is not None:
            self._permit = await self._limiter.acquire(self._key)
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._permit is not None:
            self._permit.release()
            self._permit = None


class AsyncRateLimiter:
    """Enforces one :class:`~anysend.RateLimit` (with its ``also`` chain) on a clock.

    Args:
        limit: the limit.
        clock: the clock to read (``monotonic``) and wait on (``asleep``).
        max_recipients: how many per-recipient buckets to keep (least recently used dropped).
    """

    def __init__(
        self, limit: RateLimit, clock: Clock, *, max_recipients: int = DEFAULT_MAX_RECIPIENTS
    ) -> None:
        if max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")
        self._limit = limit
        self._clock = clock
        self._mutex = threading.Lock()
        self._paused_until = -math.inf
        now = clock.monotonic()
        # Narrowest first: a request waits for its recipient before it queues for the provider.
        ordered = [level for level in limit.levels if level.per == "recipient"]
        ordered += [level for level in limit.levels if level.per == "provider"]
        self._levels = [_Level(level, now, max_recipients) for level in ordered]

    @property
    def limit(self) -> RateLimit:
        """The limit enforced."""
        return self._limit

    @property
    def recipients(self) -> int:
        """How many per-recipient buckets are kept (the most of any level)."""
        with self._mutex:
            return max((len(level.buckets) for level in self._levels), default=0)

    def slot(self, key: str = "") -> AsyncSlot:
        """``async with limiter.slot(to):`` around one request."""
        return AsyncSlot(self, key)

    async def acquire(self, key: str = "") -> AsyncPermit:
        """Wait for leave to send one request to ``key`` (the recipient address).

        Returns when every level has a token due and a ``concurrency`` slot free; the tokens
        are spent then. Release the permit once the request is over. ``key`` only matters to
        ``per="recipient"`` levels.
        """
        gates: list[AsyncSemaphore] = []
        with self._mutex:
            now = self._clock.monotonic()
            permit = AsyncPermit(self, now)
            buckets = [level.bucket(key, now, use=True) for level in self._levels]
            permit._buckets = buckets
        try:
            for bucket in buckets:
                if bucket.slots is not None:
                    await bucket.slots.acquire()
                    permit._slots.append(bucket.slots)
                await bucket.gate.acquire()
                gates.append(bucket.gate)
                await self._until_due(bucket)
            with self._mutex:
                now = self._clock.monotonic()
                for bucket in buckets:
                    bucket.take(now)
                permit.granted_at = now
        except BaseException:
            permit.release()
            raise
        finally:
            for gate in reversed(gates):
                gate.release()
        return permit

    async def _until_due(self, bucket: _Bucket) -> None:
        while True:
            with self._mutex:
                wait = bucket.delay(self._clock.monotonic(), self._paused_until)
            if wait <= 0:
                return
            await self._clock.asleep(wait)

    def penalize(self, seconds: float, key: str | None = None) -> None:
        """Send nothing for ``seconds`` (a provider's ``Retry-After``).

        Without ``key`` every sender waits. With ``key``, only that recipient's per-recipient
        buckets pause; a limit with no per-recipient level pauses as a whole. Once the pause
        is over the paused buckets restart empty, spacing the waiting sends at the sustained
        rate. A longer pause extends a shorter one, never the reverse; ``seconds`` that are
        not a positive finite number are ignored.
        """
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        with self._mutex:
            now = self._clock.monotonic()
            until = now + seconds
            keyed = [level for level in self._levels if level.per_recipient]
            if key is None or not keyed:
                self._paused_until = max(self._paused_until, until)
                return
            for level in keyed:
                bucket = level.bucket(key, now, use=False)
                bucket.paused_until = max(bucket.paused_until, until)

    def _check_in(self, buckets: Sequence[_Bucket]) -> None:
        with self._mutex:
            for bucket in buckets:
                bucket.users -= 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._limit!r})"


class AsyncRateLimits:
    """A client's rate limiters, by provider name.

    Each provider gets the limit given for its name in ``overrides`` (the client option
    ``rate_limits``) or else its adapter's ``rate_limit`` default; ``None`` in ``overrides``
    turns the default off. Providers that share a name share one limiter.

    Args:
        providers: the client's providers.
        overrides: provider name to a :class:`~anysend.RateLimit`, a mapping of its fields,
            or ``None``. A name the client has no provider for is a ``ConfigurationError``.
        clock: the client's clock.
        max_recipients: per-recipient buckets kept by each limiter.
        shared: the Redis whose limiters every process shares (the client option
            ``shared``); ``None``: the limiters live in this process.
    """

    def __init__(
        self,
        providers: Iterable[Provider],
        overrides: Mapping[str, RateLimit | Mapping[str, Any] | None] | None = None,
        *,
        clock: Clock,
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
        shared: AsyncRedisShared | None = None,
    ) -> None:
        providers = list(providers)
        given = dict(overrides or {})
        names = [provider.name for provider in providers]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigurationError(
                f"rate_limits names no configured provider: {', '.join(map(repr, unknown))}"
                f" (providers: {', '.join(map(repr, sorted(set(names)))) or 'none'})"
            )
        self._limiters: dict[str, AsyncRateLimiter] = {}
        self._shared: dict[str, AsyncRedisRateLimiter] = {}
        seen: set[str] = set()
        for provider in providers:
            name = provider.name
            if name in seen:
                continue
            seen.add(name)
            limit = _coerce(name, given[name]) if name in given else provider.rate_limit
            if limit is not None and shared is not None:
                self._shared[name] = shared.limiter(name, limit, clock)
            elif limit is not None:
                self._limiters[name] = AsyncRateLimiter(limit, clock, max_recipients=max_recipients)

    @property
    def limits(self) -> Mapping[str, RateLimit]:
        """The limit in force for each limited provider."""
        limits = {name: lim.limit for name, lim in self._limiters.items()}
        limits.update((name, lim.limit) for name, lim in self._shared.items())
        return MappingProxyType(limits)

    def limiter_for(self, provider_name: str) -> AsyncRateLimiter | None:
        """The in-process limiter of a provider, or ``None`` (unlimited, or shared in Redis)."""
        return self._limiters.get(provider_name)

    def slot(self, provider_name: str, key: str = "") -> AsyncSlot | AsyncRedisSlot:
        """``async with limits.slot(name, to):`` around one request (no-op when unlimited)."""
        shared = self._shared.get(provider_name)
        if shared is not None:
            return shared.slot(key)
        return AsyncSlot(self._limiters.get(provider_name), key)

    def penalize(self, provider_name: str, seconds: float, key: str | None = None) -> None:
        """Pause a provider's limiter (see :meth:`AsyncRateLimiter.penalize`); no-op if none."""
        limiter = self._limiters.get(provider_name) or self._shared.get(provider_name)
        if limiter is not None:
            limiter.penalize(seconds, key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.limits)!r})"


def _coerce(name: str, value: object) -> RateLimit | None:
    """A ``rate_limits`` value as a RateLimit (or None), or a ConfigurationError naming it."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, Mapping):
        try:
            return RateLimit.model_validate(dict(value))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'limit'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigurationError(f"invalid rate_limits[{name!r}]: {problems}") from None
    raise ConfigurationError(
        f"rate_limits[{name!r}] must be a RateLimit, a mapping of its fields or None,"
        f" not {type(value).__name__}"
    )
