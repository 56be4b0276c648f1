"""RateLimit, the first-come semaphores, the adapters' published limits, async-only behaviour.

The limiter's own tests are tests/_async/test_ratelimit.py (tests/_sync is generated from
it); they run many senders at once through the helpers here: ``AsyncCrowd``/``Crowd`` (tasks
or threads) and ``AsyncRoom``/``Room`` (which count how many senders are inside at once).
Nothing here waits on real time: clocks are ``VirtualClock``s, and the only real waits are
safety timeouts that end a broken test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from anysend._async._ratelimit import AsyncRateLimiter
from anysend._ratelimit import RateLimit
from anysend._synchronization import AsyncSemaphore, Semaphore
from anysend.providers import Provider
from anysend.testing import VirtualClock

#: Real seconds after which a helper gives up: only reached when the code under test is broken.
SAFETY = 10.0


# -- helpers for tests/_async/test_ratelimit.py and its generated twin ----------------------


class AsyncCrowd:
    """Runs ``count`` senders at once as tasks of the running loop, in order."""

    #: Senders start in the order given (tasks do; threads may not).
    ordered = True

    async def run(self, count: int, work: Callable[[int], Awaitable[None]]) -> None:
        await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(count))), SAFETY)


class Crowd:
    """Runs ``count`` senders at once as threads; the first error raised is raised again."""

    ordered = False

    def run(self, count: int, work: Callable[[int], None]) -> None:
        errors: list[BaseException] = []

        def target(index: int) -> None:
            try:
                work(index)
            except BaseException as exc:  # handed to the test below
                errors.append(exc)

        threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SAFETY)
            assert not thread.is_alive(), "a sender thread is stuck"
        if errors:
            raise errors[0]


def waiting_in(limiter: Any) -> int:
    """How many senders are queued inside a limiter (async or sync), for the rooms below."""
    count = 0
    for level in limiter._levels:
        for bucket in [level.shared] if level.shared is not None else level.buckets.values():
            count += len(bucket.gate._waiters)
            if bucket.slots is not None:
                count += len(bucket.slots._waiters)
    return count


class AsyncRoom:
    """Counts the senders inside at once, in all (``most``) and per key (``most_per_key``).

    A sender calls :meth:`arrive` before it asks the limiter and :meth:`visit` once let in. A
    visitor stays until every sender is inside, gone, or queued in the limiter (``waiting``
    counts those), so that a cap is reached, and a limiter that lets one sender too many in
    is caught with it inside.
    """

    def __init__(self, total: int, waiting: Callable[[], int]) -> None:
        self.total = total
        self.waiting = waiting
        self.arrived = 0
        self.inside = 0
        self.left = 0
        self.most = 0
        self.most_per_key = 0
        self.inside_by_key: Counter[str] = Counter()

    def _enter(self, key: str) -> None:
        self.inside += 1
        self.inside_by_key[key] += 1
        self.most = max(self.most, self.inside)
        self.most_per_key = max(self.most_per_key, self.inside_by_key[key])

    def _leave(self, key: str) -> None:
        self.inside -= 1
        self.inside_by_key[key] -= 1
        self.left += 1

    def _may_leave(self) -> bool:
        settled = self.inside + self.left + self.waiting()
        return self.arrived == self.total and settled >= self.total

    async def arrive(self, key: str = "") -> None:
        self.arrived += 1

    async def visit(self, key: str = "") -> None:
        self._enter(key)
        deadline = time.monotonic() + SAFETY
        while not self._may_leave():
            assert time.monotonic() < deadline, "the room never settled"
            await asyncio.sleep(0)  # a yield to the other tasks, not a wait
        self._leave(key)


class Room(AsyncRoom):
    """:class:`AsyncRoom` for threads."""

    def __init__(self, total: int, waiting: Callable[[], int]) -> None:
        super().__init__(total, waiting)
        self._lock = threading.Lock()

    def _settled(self) -> bool:
        with self._lock:
            return self._may_leave()

    def arrive(self, key: str = "") -> None:  # type: ignore[override]
        with self._lock:
            self.arrived += 1

    def visit(self, key: str = "") -> None:  # type: ignore[override]
        with self._lock:
            self._enter(key)
        spin_until(self._settled)
        with self._lock:
            self._leave(key)


def spin_until(condition: Callable[[], bool]) -> None:
    """Yield the processor until ``condition`` holds (a real-time safety limit only)."""
    deadline = time.monotonic() + SAFETY
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0)  # a yield to other threads, not a wait


# -- RateLimit ---------------------------------------------------------------------------------


def test_burst_defaults_to_the_rate_rounded_up() -> None:
    assert RateLimit(per_second=30).capacity == 30
    assert RateLimit(per_second=2.5).capacity == 3
    assert RateLimit(per_second=0.2).capacity == 1
    assert RateLimit(per_second=2.5, burst=1).capacity == 1
    assert RateLimit(concurrency=4).capacity == 0


def test_a_limit_is_frozen_and_compares_by_value() -> None:
    limit = RateLimit(per_second=1, per="recipient")
    assert limit == RateLimit(per_second=1, per="recipient")
    with pytest.raises(ValidationError):
        limit.per_second = 2  # type: ignore[misc]


def test_levels_follow_the_also_chain() -> None:
    inner = RateLimit(per_second=1, per="recipient")
    outer = RateLimit(per_second=30, also=inner)
    assert outer.levels == (outer, inner)
    assert inner.levels == (inner,)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "needs per_second, concurrency or both"),
        ({"burst": 3}, "needs per_second, concurrency or both"),
        ({"concurrency": 2, "burst": 3}, "burst needs per_second"),
        ({"per_second": 0}, "greater than 0"),
        ({"per_second": -1}, "greater than 0"),
        ({"per_second": math.inf}, "finite"),
        ({"per_second": math.nan}, "finite"),
        ({"per_second": 1, "burst": 0}, "greater than or equal to 1"),
        ({"concurrency": 0}, "greater than or equal to 1"),
        ({"per_second": 1, "per": "sender"}, "'provider' or 'recipient'"),
        ({"per_second": 1, "per_minute": 5}, "Extra inputs are not permitted"),
        ({"per_second": 1, "also": {"burst": 2}}, "needs per_second, concurrency or both"),
    ],
)
def test_invalid_limits_are_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        RateLimit.model_validate(fields)


# -- the adapters' published limits ------------------------------------------------------------


def _adapters() -> dict[str, type[Provider]]:
    from anysend.providers import discord, fcm, messenger, plivo, slack, telegram, vonage, whatsapp

    return {
        "discord": discord.Discord,
        "fcm": fcm.FCM,
        "messenger": messenger.Messenger,
        "plivo": plivo.Plivo,
        "slack": slack.Slack,
        "telegram": telegram.Telegram,
        "vonage": vonage.Vonage,
        "whatsapp": whatsapp.WhatsApp,
    }


def test_adapters_declare_the_limits_their_providers_publish() -> None:
    per_chat = RateLimit(per_second=1, per="recipient")
    assert {name: adapter.rate_limit for name, adapter in _adapters().items()} == {
        "discord": RateLimit(per_second=2.5, burst=1),  # 5 per 2 s per webhook
        "fcm": RateLimit(per_second=10_000, burst=1),  # 600k a minute per project
        "messenger": RateLimit(per_second=300, burst=1),  # Send API, per Page
        "plivo": RateLimit(concurrency=100),  # API concurrency per account
        "slack": RateLimit(per_second=1),  # per incoming webhook
        "telegram": RateLimit(per_second=30, burst=1, also=per_chat),
        "vonage": RateLimit(per_second=30, burst=1),  # per API key
        "whatsapp": RateLimit(
            per_second=80, burst=1, also=RateLimit(per_second=1 / 6, per="recipient")
        ),
    }


def test_providers_without_a_published_limit_declare_none() -> None:
    from anysend.providers import apns, mailgun, postmark, sendgrid, smsapi, teams, twilio, viber

    assert Provider.rate_limit is None
    for module, name in [
        (apns, "APNs"),
        (mailgun, "Mailgun"),
        (postmark, "Postmark"),
        (sendgrid, "SendGrid"),
        (smsapi, "SMSAPI"),
        (teams, "Teams"),
        (twilio, "Twilio"),
        (viber, "Viber"),
    ]:
        assert getattr(module, name).rate_limit is None, name


# -- the first-come semaphores -----------------------------------------------------------------


def test_a_semaphore_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        AsyncSemaphore(0)
    with pytest.raises(ValueError, match="at least one slot"):
        Semaphore(0)


@pytest.mark.anyio
async def test_async_semaphore_serves_waiters_in_order_and_lets_nobody_overtake() -> None:
    semaphore = AsyncSemaphore(1)
    await semaphore.acquire()
    order: list[int] = []

    async def waiter(index: int) -> None:
        async with semaphore:
            order.append(index)

    tasks = [asyncio.ensure_future(waiter(i)) for i in range(5)]
    await asyncio.sleep(0)  # let every waiter queue
    semaphore.release()
    late = asyncio.ensure_future(waiter(99))  # arrives while the slot is being handed over
    await asyncio.wait_for(asyncio.gather(*tasks, late), SAFETY)
    assert order == [0, 1, 2, 3, 4, 99]


@pytest.mark.anyio
async def test_async_semaphore_passes_on_a_slot_handed_to_a_cancelled_waiter() -> None:
    semaphore = AsyncSemaphore(1)
    await semaphore.acquire()
    first = asyncio.ensure_future(semaphore.acquire())
    second = asyncio.ensure_future(semaphore.acquire())
    await asyncio.sleep(0)
    semaphore.release()  # hands the slot to ``first``...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, SAFETY)  # the slot went on to ``second``


@pytest.mark.anyio
async def test_async_semaphore_forgets_a_waiter_cancelled_in_the_queue() -> None:
    semaphore = AsyncSemaphore(1)
    await semaphore.acquire()
    queued = asyncio.ensure_future(semaphore.acquire())
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    semaphore.release()
    await asyncio.wait_for(semaphore.acquire(), SAFETY)  # free again, nobody queued


def test_thread_semaphore_serves_waiters_in_order() -> None:
    semaphore = Semaphore(1)
    semaphore.acquire()
    order: list[int] = []
    threads = []
    for index in range(5):

        def waiter(index: int = index) -> None:
            with semaphore:
                order.append(index)

        thread = threading.Thread(target=waiter)
        thread.start()
        threads.append(thread)
        spin_until(lambda: len(semaphore._waiters) == len(threads))  # queued in this order
    semaphore.release()
    for thread in threads:
        thread.join(SAFETY)
    assert order == [0, 1, 2, 3, 4]
    semaphore.acquire()  # every slot came back
    semaphore.release()


def test_thread_semaphore_caps_threads_inside() -> None:
    semaphore = Semaphore(3)
    room = Room(total=20, waiting=lambda: len(semaphore._waiters))

    def visit(_: int) -> None:
        room.arrive()
        with semaphore:
            room.visit()

    Crowd().run(20, visit)
    assert room.most == 3


# -- what only the async limiter has: cancellation -----------------------------------------------


@pytest.mark.anyio
async def test_a_cancelled_sender_gives_its_slot_and_its_place_back() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(concurrency=1, per="recipient"), clock)
    holder = await limiter.acquire("ann")
    waiting = asyncio.ensure_future(limiter.acquire("ann"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    holder.release()
    with await asyncio.wait_for(limiter.acquire("ann"), SAFETY):
        pass
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_a_sender_cancelled_while_waiting_for_a_token_lets_the_next_one_wait() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=1, burst=1), clock)
    (await limiter.acquire()).release()
    gate_holder = asyncio.ensure_future(limiter.acquire())
    queued = asyncio.ensure_future(limiter.acquire())
    gate_holder.cancel()  # cancelled before it ever runs
    with pytest.raises(asyncio.CancelledError):
        await gate_holder
    (await asyncio.wait_for(queued, SAFETY)).release()
    assert clock.sleeps == [pytest.approx(1.0)]
