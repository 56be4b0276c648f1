"""The rate limiter on a VirtualClock (tests/_sync is generated from this file).

Many senders at once are tasks here and threads in the generated twin (``AsyncCrowd``); every
wait is a ``VirtualClock`` wait, recorded in ``clock.sleeps``. With threads, virtual time moves
for everybody when one sender sleeps, so the tests read the times a limiter granted
(``permit.granted_at``) and the waits it made, not the clock after the fact.
"""

from __future__ import annotations

import math
from typing import ClassVar

import pytest

from anysend import Channel, ConfigurationError
from anysend._async._ratelimit import AsyncRateLimiter, AsyncRateLimits
from anysend._ratelimit import RateLimit
from anysend.providers.telegram import Telegram
from anysend.testing import MemoryProvider, VirtualClock
from tests.test_ratelimit import AsyncCrowd, AsyncRoom, waiting_in

pytestmark = pytest.mark.anyio


async def grant(limiter: AsyncRateLimiter, key: str = "") -> float:
    """Send one request through ``limiter``; the time it was let through."""
    async with limiter.slot(key) as permit:
        assert permit is not None
        return permit.granted_at


class FailingClock(VirtualClock):
    """A VirtualClock whose next wait fails (as an interrupted sleep would)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    def sleep(self, seconds: float) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("interrupted")
        super().sleep(seconds)


class PenalizingClock(VirtualClock):
    """A VirtualClock that runs ``on_sleep`` once, in the middle of the next wait."""

    def __init__(self) -> None:
        super().__init__()
        self.on_sleep: list[AsyncRateLimiter] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        while self.on_sleep:
            self.on_sleep.pop().penalize(1.0)


# -- the token bucket --------------------------------------------------------------------------


async def test_a_burst_goes_at_once_then_sends_are_spaced_by_the_rate() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=10, burst=3), clock)
    times = [await grant(limiter) for _ in range(6)]
    assert times == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])


async def test_the_burst_defaults_to_one_second_of_the_rate() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=4), clock)
    times = [await grant(limiter) for _ in range(6)]
    assert times == pytest.approx([0, 0, 0, 0, 0.25, 0.5])


async def test_a_quiet_spell_refills_the_bucket_up_to_its_burst() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=2, burst=2), clock)
    assert [await grant(limiter) for _ in range(2)] == [0, 0]
    clock.advance(10)
    times = [await grant(limiter) for _ in range(4)]
    assert times == pytest.approx([10, 10, 10.5, 11])
    assert clock.sleeps == pytest.approx([0.5, 0.5])


async def test_many_senders_at_once_are_spaced_at_the_rate_first_come_first_served() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=100, burst=10), clock)
    crowd = AsyncCrowd()
    granted: list[tuple[float, int]] = []

    async def send(index: int) -> None:
        async with limiter.slot() as permit:
            assert permit is not None
            granted.append((permit.granted_at, index))

    await crowd.run(50, send)
    assert sorted(time for time, _ in granted) == pytest.approx(
        [0.0] * 10 + [0.01 * k for k in range(1, 41)]
    )
    assert clock.sleeps == pytest.approx([0.01] * 40)  # only the head of the line waits
    if crowd.ordered:
        assert [index for _, index in granted] == list(range(50))


# -- per recipient -----------------------------------------------------------------------------


async def test_each_recipient_has_a_bucket_of_its_own() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=1, per="recipient"), clock)
    times = [await grant(limiter, to) for to in ["ann", "bob", "ann", "bob", "cid", "ann"]]
    assert times == pytest.approx([0, 0, 1, 1, 1, 2])
    assert clock.sleeps == pytest.approx([1.0, 1.0])


async def test_a_provider_limit_and_a_per_recipient_limit_apply_together() -> None:
    clock = VirtualClock()
    # Telegram's shape: so many a second in all, one a second per chat.
    limit = RateLimit(per_second=2, burst=1, also=RateLimit(per_second=1, per="recipient"))
    limiter = AsyncRateLimiter(limit, clock)
    times = [await grant(limiter, to) for to in ["ann", "bob", "ann", "cid"]]
    assert times == pytest.approx([0, 0.5, 1.0, 1.5])
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5])


async def test_a_busy_recipient_holds_up_nobody_else() -> None:
    clock = VirtualClock()
    limit = RateLimit(per_second=100, burst=100, also=RateLimit(per_second=1, per="recipient"))
    limiter = AsyncRateLimiter(limit, clock)
    crowd = AsyncCrowd()
    granted: list[float] = []
    others_waited: list[float] = []

    async def send(index: int) -> None:
        to = "ann" if index < 3 else f"other-{index}"
        async with limiter.slot(to) as permit:
            assert permit is not None
            if to == "ann":
                granted.append(permit.granted_at)
            else:
                others_waited.append(permit.waited)

    await crowd.run(10, send)
    assert sorted(granted) == pytest.approx([0, 1, 2])
    assert clock.sleeps == pytest.approx([1.0, 1.0])  # ann's second and third, nobody else
    if crowd.ordered:  # threads see virtual time jump while they run, tasks do not
        assert others_waited == [0] * 7


# -- concurrency -------------------------------------------------------------------------------


async def test_concurrency_caps_the_requests_in_flight() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(concurrency=3), clock)
    room = AsyncRoom(total=12, waiting=lambda: waiting_in(limiter))

    async def send(index: int) -> None:
        await room.arrive()
        async with limiter.slot():
            await room.visit()

    await AsyncCrowd().run(12, send)
    assert room.most == 3
    assert clock.sleeps == []


async def test_concurrency_per_recipient_caps_each_recipient() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(concurrency=1, per="recipient"), clock)
    room = AsyncRoom(total=12, waiting=lambda: waiting_in(limiter))

    async def send(index: int) -> None:
        to = ["ann", "bob", "cid"][index % 3]
        await room.arrive(to)
        async with limiter.slot(to):
            await room.visit(to)

    await AsyncCrowd().run(12, send)
    assert room.most_per_key == 1
    assert room.most == 3


async def test_a_rate_and_a_concurrency_cap_hold_together_under_load() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=100, burst=10, concurrency=4), clock)
    room = AsyncRoom(total=40, waiting=lambda: waiting_in(limiter))
    granted: list[float] = []

    async def send(index: int) -> None:
        await room.arrive()
        async with limiter.slot() as permit:
            assert permit is not None
            granted.append(permit.granted_at)
            await room.visit()

    await AsyncCrowd().run(40, send)
    assert room.most == 4
    assert sorted(granted) == pytest.approx([0.0] * 10 + [0.01 * k for k in range(1, 31)])


async def test_a_permit_releases_once_and_as_a_context_manager() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(concurrency=1), clock)
    permit = await limiter.acquire()
    states = [permit.released]
    permit.release()
    permit.release()  # a second release gives nothing back twice
    states.append(permit.released)
    assert states == [False, True]
    with await limiter.acquire() as again:
        assert again.waited == 0
    with await limiter.acquire():  # free again: the with block released it
        pass


async def test_a_sender_whose_wait_fails_gives_its_slot_and_its_place_back() -> None:
    clock = FailingClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=1, burst=1, concurrency=1), clock)
    assert await grant(limiter) == 0
    clock.fail_next = True
    with pytest.raises(RuntimeError, match="interrupted"):
        await limiter.acquire()
    assert await grant(limiter) == pytest.approx(1)  # neither the slot nor the line is stuck
    assert repr(limiter) == f"{type(limiter).__name__}({limiter.limit!r})"


# -- penalties (Retry-After) -------------------------------------------------------------------


async def test_a_penalty_pauses_every_sender_then_they_resume_at_the_rate() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=10, burst=5), clock)
    limiter.penalize(2.0)
    granted: list[float] = []

    async def send(index: int) -> None:
        granted.append(await grant(limiter, f"+4860070{index:04d}"))

    await AsyncCrowd().run(5, send)
    assert sorted(granted) == pytest.approx([2.0, 2.1, 2.2, 2.3, 2.4])  # not 5 at once
    assert clock.sleeps == pytest.approx([2.0, 0.1, 0.1, 0.1, 0.1])


async def test_a_penalty_during_a_wait_extends_it() -> None:
    clock = PenalizingClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=10, burst=1), clock)
    assert await grant(limiter) == 0
    clock.on_sleep.append(limiter)  # a 429 comes in while the next sender waits 0.1 s
    assert await grant(limiter) == pytest.approx(1.1)
    assert await grant(limiter) == pytest.approx(1.2)
    assert clock.sleeps == pytest.approx([0.1, 1.0, 0.1])


async def test_a_longer_penalty_wins_and_nonsense_is_ignored() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=10), clock)
    for seconds in (0.0, -1.0, math.nan, math.inf):
        limiter.penalize(seconds)
    assert await grant(limiter) == 0
    limiter.penalize(5)
    limiter.penalize(1)
    assert await grant(limiter) == pytest.approx(5)


async def test_a_penalty_holds_a_limit_with_no_rate() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(concurrency=2), clock)
    limiter.penalize(3)
    assert [await grant(limiter) for _ in range(3)] == pytest.approx([3, 3, 3])
    assert clock.sleeps == pytest.approx([3.0])


async def test_a_recipient_penalty_pauses_that_recipient_only() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=1, per="recipient"), clock)
    limiter.penalize(5, key="ann")
    assert await grant(limiter, "bob") == 0
    assert await grant(limiter, "ann") == pytest.approx(5)
    limiter.penalize(5)  # no key: everybody
    assert await grant(limiter, "cid") == pytest.approx(10)


async def test_a_keyed_penalty_pauses_a_limit_without_recipient_buckets_entirely() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=1), clock)
    limiter.penalize(4, key="ann")
    assert await grant(limiter, "bob") == pytest.approx(4)


# -- the bounded map of recipients -------------------------------------------------------------


async def test_recipient_buckets_are_bounded() -> None:
    clock = VirtualClock()
    limit = RateLimit(per_second=1, per="recipient")
    limiter = AsyncRateLimiter(limit, clock, max_recipients=100)
    for index in range(1_000):
        await grant(limiter, f"+4860070{index:04d}")
    assert limiter.recipients == 100
    assert clock.sleeps == []


async def test_recipients_in_use_or_paused_are_kept() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(concurrency=1, per="recipient"), clock, max_recipients=2)
    held = [await limiter.acquire(to) for to in ["ann", "bob", "cid"]]
    assert limiter.recipients == 3  # all in flight: none may go
    for permit in held:
        permit.release()
    await grant(limiter, "dan")
    assert limiter.recipients == 2

    limiter = AsyncRateLimiter(RateLimit(per_second=1, per="recipient"), clock, max_recipients=2)
    limiter.penalize(10, key="ann")
    for to in ["bob", "cid", "dan", "eve"]:
        await grant(limiter, to)
    assert await grant(limiter, "ann") == pytest.approx(clock.monotonic())
    assert clock.sleeps == pytest.approx([10.0])  # ann's pause outlived the churn


async def test_a_dropped_recipient_starts_again_with_a_full_bucket() -> None:
    clock = VirtualClock()
    limiter = AsyncRateLimiter(RateLimit(per_second=1, per="recipient"), clock, max_recipients=1)
    assert [await grant(limiter, to) for to in ["ann", "bob", "ann"]] == [0, 0, 0]


async def test_max_recipients_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_recipients"):
        AsyncRateLimiter(RateLimit(per_second=1), VirtualClock(), max_recipients=0)


# -- the client's limiters by provider name ----------------------------------------------------


class Limited(MemoryProvider):
    """A memory provider whose adapter declares a published limit."""

    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=5)


def providers() -> list[MemoryProvider]:
    sms = frozenset({Channel.SMS})
    return [
        Limited(name="sms-a", channels=sms),
        MemoryProvider(name="sms-b", channels=sms),
        Limited(name="sms-c", channels=sms),
    ]


async def test_providers_get_their_adapters_defaults() -> None:
    limits = AsyncRateLimits(providers(), clock=VirtualClock())
    assert dict(limits.limits) == {
        "sms-a": RateLimit(per_second=5),
        "sms-c": RateLimit(per_second=5),
    }
    assert limits.limiter_for("sms-b") is None
    assert limits.limiter_for("nobody") is None
    limiter = limits.limiter_for("sms-a")
    assert limiter is not None
    assert limiter.limit == RateLimit(per_second=5)
    assert limits.limiter_for("sms-c") is not limiter  # one limiter per provider


async def test_rate_limits_override_add_and_turn_off_defaults() -> None:
    limits = AsyncRateLimits(
        providers(),
        {
            "sms-a": RateLimit(per_second=1),
            "sms-b": {"concurrency": 2, "per": "recipient"},
            "sms-c": None,
        },
        clock=VirtualClock(),
    )
    assert dict(limits.limits) == {
        "sms-a": RateLimit(per_second=1),
        "sms-b": RateLimit(concurrency=2, per="recipient"),
    }
    assert "sms-a" in repr(limits)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"sms-x": RateLimit(per_second=1)}, "names no configured provider: 'sms-x'"),
        ({"sms-b": {"per_second": 0}}, r"invalid rate_limits\['sms-b'\]: per_second: "),
        ({"sms-b": {}}, r"invalid rate_limits\['sms-b'\]: limit: Value error, a rate limit"),
        ({"sms-b": 5}, r"rate_limits\['sms-b'\] must be a RateLimit, .* not int"),
    ],
)
async def test_bad_rate_limits_are_configuration_errors(
    overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        AsyncRateLimits(providers(), overrides, clock=VirtualClock())  # type: ignore[arg-type]


async def test_providers_that_share_a_name_share_a_limiter() -> None:
    clock = VirtualClock()
    sms = frozenset({Channel.SMS})
    twins = [Limited(name="twin", channels=sms), MemoryProvider(name="twin", channels=sms)]
    limits = AsyncRateLimits(twins, clock=clock)
    assert dict(limits.limits) == {"twin": RateLimit(per_second=5)}


async def test_slots_and_penalties_by_provider_name() -> None:
    clock = VirtualClock()
    limits = AsyncRateLimits(providers(), {"sms-a": RateLimit(per_second=1)}, clock=clock)
    async with limits.slot("sms-b", "+48600700800") as permit:
        assert permit is None  # unlimited: nothing to wait for
    limits.penalize("sms-b", 30)  # no limiter: nothing to pause
    limits.penalize("nobody", 30)
    async with limits.slot("sms-a", "+48600700800") as permit:
        assert permit is not None
    limits.penalize("sms-a", 3)
    async with limits.slot("sms-a", "+48600700800") as permit:
        assert permit is not None
        assert permit.waited == pytest.approx(3)
    assert clock.sleeps == pytest.approx([3.0])


async def test_telegram_sends_one_message_a_second_to_a_chat() -> None:
    clock = VirtualClock()
    limits = AsyncRateLimits([Telegram(bot_token="123456:ABC-DEF")], clock=clock)
    limiter = limits.limiter_for("telegram")
    assert limiter is not None
    times = [await grant(limiter, chat) for chat in ["42", "42", "43", "42"]]
    assert times == pytest.approx([0, 1, 1 + 1 / 30, 2])  # 30 a second in all
