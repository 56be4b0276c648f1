"""``RateLimit``: how fast, and how many at once, a provider may be sent to.

A limit is a token bucket plus, optionally, a cap on requests in flight. The bucket holds
``burst`` tokens and refills at ``per_second``; each send takes one token, and waits (on the
client's clock) when there is none. ``per="recipient"`` keeps one bucket per destination
address (Telegram's one message per second per chat); ``also`` adds a second limit that
applies together with the first (Telegram's 30 per second per bot *and* 1 per second per
chat).

Adapters declare the limit their provider publishes as ``Provider.rate_limit``; the client
option ``rate_limits`` overrides it per provider name (``None`` turns it off). The limiter
itself lives in ``anysend._async._ratelimit`` (and its generated sync twin).

A token bucket approximates a provider's "N per T seconds" window: ``per_second=N / T`` with
``burst=1`` never puts more than N sends in any window of T seconds, whatever the window's
alignment; a larger ``burst`` lets a quiet sender start faster but can briefly go over a
strict window.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PermitTimes", "RateLimit"]


class RateLimit(BaseModel):
    """A provider's rate limit: a token bucket, a cap on requests in flight, or both.

    Example:
        ```python
        from anysend import RateLimit

        RateLimit(per_second=30)  # 30 sends a second, in bursts of up to 30
        RateLimit(per_second=2.5, burst=1)  # one send every 0.4 s: "5 per 2 seconds"
        RateLimit(concurrency=100)  # no rate, at most 100 requests at once
        RateLimit(per_second=30, also=RateLimit(per_second=1, per="recipient"))
        ```

    Attributes:
        per_second: the sustained rate: tokens added to the bucket each second. ``None`` for
            no rate (then ``concurrency`` must be set).
        burst: the bucket's size, how many sends may go at once after a quiet spell. Defaults
            to ``max(1, ceil(per_second))`` (:attr:`capacity`); needs ``per_second``.
        concurrency: how many requests may be in flight at once (``None``: no cap).
        per: ``"provider"`` (one limit for everything sent through the adapter: its account,
            sender, bot or webhook) or ``"recipient"`` (one limit per destination address,
            the message's normalised ``to``).
        also: a further limit that applies as well, usually per recipient.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_second: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    per: Literal["provider", "recipient"] = "provider"
    also: RateLimit | None = None

    @model_validator(mode="after")
    def _check(self) -> RateLimit:
        if self.per_second is None and self.concurrency is None:
            raise ValueError("a rate limit needs per_second, concurrency or both")
        if self.burst is not None and self.per_second is None:
            raise ValueError("burst needs per_second: it is the size of the rate's bucket")
        return self

    @property
    def capacity(self) -> int:
        """The bucket's size: ``burst``, else ``max(1, ceil(per_second))`` (0 without a rate)."""
        if self.per_second is None:
            return 0
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.per_second))

    @property
    def levels(self) -> tuple[RateLimit, ...]:
        """This limit and every limit chained to it with ``also``, in order."""
        return (self, *(self.also.levels if self.also is not None else ()))


class PermitTimes:
    """When a permit was asked for and granted: what the in-process and Redis permits share.

    Attributes:
        asked_at: the clock's ``monotonic()`` when the request asked for it.
        granted_at: the clock's ``monotonic()`` when it was granted.
    """

    def __init__(self, asked_at: float) -> None:
        self._released = False
        self.asked_at = asked_at
        self.granted_at = asked_at

    @property
    def waited(self) -> float:
        """Seconds the request waited for the limiter."""
        return self.granted_at - self.asked_at

    @property
    def released(self) -> bool:
        """Whether the permit was given back."""
        return self._released
