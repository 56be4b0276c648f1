"""Rate limits and idempotency keys shared through a real Redis (``Client(shared=...)``).

Each test uses its own key prefix on ``ANYSEND_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/15``) and deletes its keys after; the whole module skips with the
reason when Redis does not answer. Limiter tests run on a ``VirtualClock`` (its time is passed
to the scripts), so their waits cost nothing; two ``RedisShared`` objects stand for two
processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

import anysend
from anysend import ConfigurationError, RateLimit
from anysend._redis import parse_redis_url
from anysend.testing import MemoryProvider, VirtualClock

redis = pytest.importorskip("redis", reason='redis-py is missing (pip install "anysend[redis]")')

from anysend._async._redis import AsyncRedisShared  # noqa: E402
from anysend._sync._redis import RedisRateLimiter, RedisShared  # noqa: E402

REDIS_URL = os.environ.get("ANYSEND_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

pytestmark = pytest.mark.redis


def _redis_unavailable() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis does not answer at {REDIS_URL}: {exc}"
    return None


@pytest.fixture
def url() -> Iterator[str]:
    """A ``shared=`` URL with a fresh key prefix (its keys are deleted after the test)."""
    reason = _redis_unavailable()
    if reason is not None:
        pytest.skip(reason)
    prefix = f"anysend-test-{uuid.uuid4().hex[:10]}"
    yield f"{REDIS_URL}?prefix={prefix}"
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(f"{prefix}:*"):
        conn.delete(key)
    conn.close()


def grants(
    limiter: RedisRateLimiter, clock: VirtualClock, count: int, key: str = ""
) -> list[float]:
    """Take ``count`` permits one after another; the clock's time of each grant."""
    times = []
    for _ in range(count):
        with limiter.slot(key):
            times.append(round(clock.monotonic(), 6))
    return times


def test_two_processes_share_one_bucket(url: str) -> None:
    """Two clients of one Redis take turns in one bucket: together they keep the rate."""
    clock = VirtualClock()
    limit = RateLimit(per_second=10, burst=1)
    with RedisShared(url) as one, RedisShared(url) as two:
        first = one.limiter("sms", limit, clock)
        second = two.limiter("sms", limit, clock)
        times = []
        for limiter in [first, second] * 3:
            with limiter.slot():
                times.append(round(clock.monotonic(), 6))
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_burst_then_sustained_rate(url: str) -> None:
    """A full bucket lets ``burst`` go at once, then one every ``1 / per_second``."""
    clock = VirtualClock()
    with RedisShared(url) as shared:
        limiter = shared.limiter("push", RateLimit(per_second=4, burst=3), clock)
        times = grants(limiter, clock, 6)
    assert times == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75])


def test_per_recipient_buckets_are_separate(url: str) -> None:
    """A per-recipient level keeps one bucket per address; another address does not wait."""
    clock = VirtualClock()
    limit = RateLimit(per_second=1, per="recipient")
    with RedisShared(url) as shared:
        limiter = shared.limiter("telegram", limit, clock)
        assert grants(limiter, clock, 2, "chat-1") == pytest.approx([0, 1])
        assert grants(limiter, clock, 1, "chat-2") == pytest.approx([1])
        limiter.penalize(5.0, "chat-2")  # a Retry-After for one chat pauses that chat only
        assert grants(limiter, clock, 1, "chat-1") == pytest.approx([2])
        assert grants(limiter, clock, 1, "chat-2") == pytest.approx([6])  # 1 + 5
        found = shared.redis.keys(f"{shared.options.prefix}:*")
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in found]
        assert keys
    assert all("chat" not in key for key in keys)  # addresses are hashed
    assert all(shared.redis.pttl(key) > 0 for key in keys)  # and every key expires


def test_penalty_pauses_every_process(url: str) -> None:
    """A Retry-After in one process pauses the others; the bucket restarts empty after."""
    clock = VirtualClock()
    limit = RateLimit(per_second=10, burst=5)
    with RedisShared(url) as one, RedisShared(url) as two:
        first = one.limiter("sms", limit, clock)
        second = two.limiter("sms", limit, clock)
        first.penalize(2.0)
        assert grants(first, clock, 1) == pytest.approx([2.0])
        assert grants(second, clock, 2) == pytest.approx([2.1, 2.2])


def test_concurrency_slots_are_shared_and_come_back_from_a_dead_holder(url: str) -> None:
    """The in-flight cap counts every process; a holder that never returns its slot loses it."""
    clock = VirtualClock()
    limit = RateLimit(concurrency=1)
    with RedisShared(f"{url}&slot_ttl=2") as one, RedisShared(url) as two:
        first = one.limiter("smtp", limit, clock)
        second = two.limiter("smtp", limit, clock)
        with first.slot():
            pass
        assert clock.monotonic() == 0  # given back at once: no wait
        first.acquire()  # ...and this one never is (its process died)
        permit = second.acquire()
        assert clock.monotonic() == pytest.approx(2.0, abs=0.05)  # its slot expired
        permit.close()


def test_idempotency_claims(url: str) -> None:
    """A key is claimed once; its result is replayed; a dead holder's claim runs out."""
    clock = VirtualClock()
    now = clock.now()
    later = now + timedelta(hours=1)
    with RedisShared(f"{url}&claim_ttl=0.2") as one, RedisShared(url) as two:
        assert one.claim_idempotent("k1", now=now, expires_at=later) == (True, None)
        assert two.claim_idempotent("k1", now=now, expires_at=later) == (False, None)
        assert two.claimed(["k1", "k2"]) == {"k1"}
        result = anysend.SendResult(message_id="m1", status=anysend.DeliveryStatus.ACCEPTED)
        one.put_idempotent("k1", result, expires_at=later)
        assert two.claim_idempotent("k1", now=now, expires_at=later) == (False, result)
        assert two.claimed(["k1"]) == set()
        assert 3000 * 1000 < two.redis.pttl(f"{one.options.prefix}:key:k1") <= 3600 * 1000
        # A claim given up is free again; one whose holder died runs out after claim_ttl.
        assert one.claim_idempotent("k2", now=now, expires_at=later)[0]
        one.release_idempotent("k2")
        assert one.claim_idempotent("k2", now=now, expires_at=later)[0]
        deadline = time.monotonic() + 5
        while not two.claim_idempotent("k2", now=now, expires_at=later)[0]:
            assert time.monotonic() < deadline, "the dead claim never ran out"


def test_clients_share_keys_and_limits(url: str) -> None:
    """Two clients on one Redis send a keyed message once, and keep one rate between them."""
    outbox = MemoryProvider()
    clock = VirtualClock()
    limits = {outbox.name: RateLimit(per_second=5, burst=1)}
    message = anysend.Message(text="Your order shipped", idempotency_key="order-1042")
    to = {"email": "ann@example.com"}
    with (
        anysend.Client([outbox], shared=url, rate_limits=limits, clock=clock) as one,
        anysend.Client([outbox], shared=url, rate_limits=limits, clock=clock) as two,
    ):
        first = one.send(message, to=to)
        again = two.send(message, to=to)
        other = two.send(anysend.Message(text="Hi"), to=to)
    assert len(outbox.messages) == 2
    assert first.ok
    assert not first.idempotent_replay
    assert again.idempotent_replay
    assert again.message_id == first.message_id
    assert other.ok
    assert clock.monotonic() == pytest.approx(0.2)  # the second send waited for the first


@pytest.mark.anyio
async def test_async_client_shares_keys(url: str) -> None:
    """AsyncClient claims keys and takes permits through redis.asyncio the same way."""
    outbox = MemoryProvider()
    clock = VirtualClock()
    limits = {outbox.name: RateLimit(per_second=2, burst=1, concurrency=1)}
    message = anysend.Message(text="Hi", idempotency_key="k-async")
    async with anysend.AsyncClient([outbox], shared=url, rate_limits=limits, clock=clock) as c:
        assert isinstance(c._shared, AsyncRedisShared)
        results = [await c.send(message, to={"email": "a@example.com"}) for _ in range(2)]
        await c.send(anysend.Message(text="Hi again"), to={"email": "a@example.com"})
    assert [r.idempotent_replay for r in results] == [False, True]
    assert len(outbox.messages) == 2
    assert clock.monotonic() == pytest.approx(0.5)


def test_bad_urls_are_configuration_errors() -> None:
    """A URL that is not Redis's, or a bad option, fails before any connection."""
    with pytest.raises(ConfigurationError, match="redis://"):
        anysend.Client([MemoryProvider()], shared="postgresql://localhost/db")
    with pytest.raises(ConfigurationError, match="claim_ttl"):
        anysend.Client([MemoryProvider()], shared="redis://localhost?claim_ttl=soon")
    with pytest.raises(ConfigurationError, match="prefix"):
        parse_redis_url("redis://localhost?prefix=a{b}")
    options = parse_redis_url("redis://h:1/2?prefix=shop&slot_ttl=5&socket_timeout=3")
    assert (options.url, options.prefix, options.slot_ttl) == (
        "redis://h:1/2?socket_timeout=3",
        "shop",
        5.0,
    )


def test_missing_driver_and_light_import(tmp_path: object) -> None:
    """``import anysend`` loads no redis; without redis-py, shared= names the extra to install."""
    code = (
        "import sys\n"
        "import anysend\n"
        "assert 'redis' not in sys.modules, 'import anysend loaded redis'\n"
        "sys.modules['redis'] = None\n"
        "from anysend.testing import MemoryProvider\n"
        "try:\n"
        "    anysend.Client([MemoryProvider()], shared='redis://127.0.0.1:6379/0')\n"
        "except anysend.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert 'pip install "anysend[redis]"' in out.stdout
