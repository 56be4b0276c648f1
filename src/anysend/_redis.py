"""State several processes share through Redis: settings, the driver and the Lua scripts.

``Client(..., shared="redis://127.0.0.1:6379/0")`` keeps two things in Redis instead of in the
process, so that every worker of a deployment sees the same state:

* **rate-limit buckets**: each provider's :class:`~anysend.RateLimit` is enforced by one Lua
  script run atomically in Redis (:data:`ACQUIRE_SCRIPT`), so that N workers together respect
  the provider's limit;
* **idempotency keys**: a key is claimed in Redis before its send (:data:`CLAIM_SCRIPT`) and
  its result kept there, so that the same key sent by two workers is sent once.

This module holds what the async and sync twins share (``anysend._async._redis`` and the
generated ``anysend._sync._redis``): the URL's own options, the lazy import of redis-py
(``anysend[redis]``) and the scripts. ``import anysend`` never imports redis.

How the rate is kept: a level of a limit (the provider-wide one, or one per recipient) is a
GCRA token bucket (the *generic cell rate algorithm*, a token bucket stored as one number,
its *theoretical arrival time*). The script *reserves*: it answers with the moment the send
may start, already taking its place, so a waiting process sleeps once and asks nothing
more, and requests from every process are served in the order they reached Redis. A
``concurrency`` cap is a sorted set of permits in flight, each with an expiry
(``slot_ttl``): a worker killed while it held slots gets them back when they expire. Time is
Redis's own (``TIME``), the same for every host, unless the client was given a clock (tests),
whose ``now()`` is passed instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from anysend._exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis import Redis as RedisConnection
    from redis.asyncio import Redis as AsyncRedisConnection

__all__ = [
    "ACQUIRE_SCRIPT",
    "CLAIM_SCRIPT",
    "PAUSE_SCRIPT",
    "RELEASE_CLAIM_SCRIPT",
    "AsyncRedisConnection",
    "AsyncRedisDriver",
    "RedisConnection",
    "RedisDriver",
    "RedisOptions",
    "parse_redis_url",
]

#: pip's hint when redis-py is missing.
INSTALL_HINT = 'shared state in Redis needs redis-py: pip install "anysend[redis]"'


@dataclass(frozen=True)
class RedisOptions:
    """A ``shared=`` URL split into redis-py's URL and anysend's own query options.

    Attributes:
        url: the URL handed to redis-py (``redis://``, ``rediss://`` or ``unix://``), without
            anysend's options.
        prefix: the start of every key anysend writes (``anysend``).
        claim_ttl: seconds an idempotency claim lasts before another process may take it
            over (a worker that died while sending).
        slot_ttl: seconds a ``concurrency`` slot lasts if its holder never gives it back.
    """

    url: str
    prefix: str = "anysend"
    claim_ttl: float = 120.0
    slot_ttl: float = 120.0


def parse_redis_url(url: str) -> RedisOptions:
    """Split a ``shared=`` URL into redis-py's part and anysend's options.

    ``redis://host:6379/0?prefix=shop&claim_ttl=300&slot_ttl=60``: ``prefix``, ``claim_ttl``
    and ``slot_ttl`` are anysend's (see :class:`RedisOptions`); every other query option
    goes to redis-py.

    Raises:
        ConfigurationError: not a Redis URL, or an option that is not valid.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"shared must be a Redis URL, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"shared must be a redis://, rediss:// or unix:// URL, not {parts.scheme or url!r}"
        )
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            if not value or any(c in value for c in "{}\r\n "):
                raise ConfigurationError(f"shared URL: prefix {value!r} is not a valid key prefix")
            ours[name] = value
        elif name in ("claim_ttl", "slot_ttl"):
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not (0 < seconds < 10**7):
                raise ConfigurationError(f"shared URL: {name} must be positive seconds")
            ours[name] = seconds
        else:
            theirs.append((name, value))
    clean = urlunsplit(parts._replace(query=urlencode(theirs)))
    return RedisOptions(url=clean, **ours)


def _import_error() -> ConfigurationError:
    return ConfigurationError(INSTALL_HINT)


class AsyncRedisDriver:
    """Makes ``redis.asyncio`` clients (the sync twin, :class:`RedisDriver`, plain ones)."""

    @staticmethod
    def connect(url: str) -> AsyncRedisConnection:
        """A client for ``url`` (connections open on first use).

        Raises:
            ConfigurationError: redis-py is not installed, or the URL is not valid.
        """
        try:
            import redis.asyncio
        except ImportError:
            raise _import_error() from None
        try:
            return redis.asyncio.Redis.from_url(url)
        except ValueError as exc:
            raise ConfigurationError(f"shared: invalid Redis URL: {exc}") from None


class RedisDriver:
    """Makes plain (blocking) redis-py clients, for the sync ``Client``."""

    @staticmethod
    def connect(url: str) -> RedisConnection:
        """A client for ``url`` (connections open on first use; fork-safe).

        Raises:
            ConfigurationError: redis-py is not installed, or the URL is not valid.
        """
        try:
            import redis
        except ImportError:
            raise _import_error() from None
        try:
            return redis.Redis.from_url(url)
        except ValueError as exc:
            raise ConfigurationError(f"shared: invalid Redis URL: {exc}") from None


# -- the scripts ---------------------------------------------------------------------------------
#
# Lua numbers cross into Redis as integers, so every fractional value goes in and out as a
# string. ``now`` is ARGV[1]: a number of seconds, or "" for Redis's own TIME.

_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

#: Reserve one send: KEYS are, per level, its state hash and its in-flight set, then the
#: limiter's pause key. ARGV: now, permit id, slot_ttl, level count, then per level
#: ``rate`` (0: none), ``tau`` (the burst's tolerance, ``(burst - 1) / rate``) and
#: ``concurrency`` (0: none). Returns ``{1, wait}`` (granted; start after ``wait`` seconds)
#: or ``{0, wait}`` (a concurrency cap is full: ask again, at the latest after ``wait``).
ACQUIRE_SCRIPT = (
    _NOW
    + """
local id = ARGV[2]
local slot_ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local pause = tonumber(redis.call('GET', KEYS[2 * n + 1]) or '0') or 0
local grant = math.max(now, pause)
local tats = {}
local full = nil
for i = 1, n do
  local rate = tonumber(ARGV[2 + 3 * i])
  local tau = tonumber(ARGV[3 + 3 * i])
  local cap = tonumber(ARGV[4 + 3 * i])
  local state = redis.call('HMGET', KEYS[2 * i - 1], 'tat', 'pause')
  local level_pause = math.max(pause, tonumber(state[2]) or 0)
  if cap > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', string.format('%.6f', now))
    if redis.call('ZCARD', KEYS[2 * i]) >= cap then
      local first = redis.call('ZRANGE', KEYS[2 * i], 0, 0, 'WITHSCORES')
      local wait = tonumber(first[2]) - now
      if full == nil or wait < full then full = wait end
    end
  end
  if rate > 0 then
    -- A pause restarts the bucket empty: its first token is due when the pause ends.
    local tat = math.max(tonumber(state[1]) or 0, level_pause + tau)
    tats[i] = tat
    grant = math.max(grant, tat - tau)
  else
    grant = math.max(grant, level_pause)
  end
end
if full ~= nil then
  return {0, string.format('%.6f', math.max(full, 0))}
end
for i = 1, n do
  local rate = tonumber(ARGV[2 + 3 * i])
  local cap = tonumber(ARGV[4 + 3 * i])
  if rate > 0 then
    local tat = math.max(tats[i], grant) + 1 / rate
    redis.call('HSET', KEYS[2 * i - 1], 'tat', string.format('%.6f', tat))
    local keep = math.ceil((tat - now) * 1000) + 1000
    if redis.call('PTTL', KEYS[2 * i - 1]) < keep then
      redis.call('PEXPIRE', KEYS[2 * i - 1], keep)
    end
  end
  if cap > 0 then
    local expires = grant + slot_ttl
    redis.call('ZADD', KEYS[2 * i], string.format('%.6f', expires), id)
    local keep = math.ceil((expires - now) * 1000) + 1000
    if redis.call('PTTL', KEYS[2 * i]) < keep then
      redis.call('PEXPIRE', KEYS[2 * i], keep)
    end
  end
end
return {1, string.format('%.6f', grant - now)}
"""
)

#: Pause a limiter (KEYS[1] a string key, ARGV[3] "0") or one level's bucket (KEYS[1] its
#: state hash, ARGV[3] "1") for ARGV[2] seconds; a longer pause wins over a shorter one.
PAUSE_SCRIPT = (
    _NOW
    + """
local untl = now + tonumber(ARGV[2])
local keep = math.ceil(tonumber(ARGV[2]) * 1000) + 60000
if ARGV[3] == '1' then
  local old = tonumber(redis.call('HGET', KEYS[1], 'pause') or '0') or 0
  if untl > old then redis.call('HSET', KEYS[1], 'pause', string.format('%.6f', untl)) end
  if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
else
  local old = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
  if untl > old then redis.call('SET', KEYS[1], string.format('%.6f', untl), 'PX', keep) end
end
return 1
"""
)

#: Claim an idempotency key: ARGV[1] the claim's token, ARGV[2] its lease in milliseconds.
#: Returns ``{1}`` (claimed), ``{0, result}`` (done: the stored result's JSON) or ``{0}``
#: (another process holds a claim whose lease has not run out).
CLAIM_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value then
  if string.sub(value, 1, 2) == 'R:' then return {0, string.sub(value, 3)} end
  return {0}
end
redis.call('SET', KEYS[1], 'C:' .. ARGV[1], 'PX', ARGV[2])
return {1}
"""

#: Give up a claim (KEYS[1]) if it is still the one with token ARGV[1].
RELEASE_CLAIM_SCRIPT = """
if redis.call('GET', KEYS[1]) == 'C:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
