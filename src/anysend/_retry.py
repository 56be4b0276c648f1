"""The retry policy: which failures are retried, how long to wait, and when to give up.

A provider attempt that fails with a retryable :class:`~anysend.ErrorCategory`
(``rate_limited``, ``unavailable``, ``timeout``) is retried on the same provider with
exponential backoff and jitter, honouring the provider's ``Retry-After`` up to a cap, within an
overall deadline; then the send fails over to the next provider. An ``ambiguous_timeout`` (the
request went out and no answer came back) is retried only where the provider takes an
idempotency key. The retries themselves run on tenacity; this module turns a
:class:`RetryPolicy` into tenacity's ``stop``, ``wait`` and ``retry`` arguments.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from anysend._exceptions import ErrorCategory, ProviderError

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["RetryPolicy"]


class RetryPolicy(BaseModel):
    """How the client retries a failing provider before failing over.

    Attributes:
        max_attempts: tries per provider, the first one included (1 disables retries).
        initial_backoff: seconds before the first retry.
        multiplier: each retry waits this many times longer than the one before.
        max_backoff: the longest wait between two tries.
        jitter: the randomised share of each wait (0 to 1): a wait of ``w`` becomes a
            random value between ``w * (1 - jitter)`` and ``w``, so that many clients retrying
            at once spread out.
        max_retry_after: the longest ``Retry-After`` honoured; a provider asking for longer
            is failed over at once.
        deadline: seconds from the start of ``send()`` after which no retry starts (a wait
            that would end past it fails over instead).
        retry_ambiguous: retry an ``ambiguous_timeout`` where the provider takes an
            idempotency key (never otherwise).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1)
    initial_backoff: float = Field(default=0.5, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_backoff: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.5, ge=0, le=1)
    max_retry_after: float = Field(default=60.0, ge=0)
    deadline: float = Field(default=60.0, gt=0)
    retry_ambiguous: bool = True

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry), with jitter."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry_number - 1))
        if not self.jitter:
            return base
        low = base * (1 - self.jitter)
        return (rng or random).uniform(low, base)  # jitter, not security

    def should_retry(self, error: ProviderError, *, idempotent: bool) -> bool:
        """Whether ``error`` is worth another try on the same provider."""
        if error.category is ErrorCategory.AMBIGUOUS_TIMEOUT:
            return self.retry_ambiguous and idempotent
        return error.retryable

    def wait_for(self, error: ProviderError, retry_number: int) -> float:
        """The wait before the next try: the provider's ``Retry-After`` or our backoff."""
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        return self.backoff(retry_number)

    # -- tenacity glue --------------------------------------------------------------------

    def tenacity_kwargs(
        self, *, idempotent: bool, started: float, monotonic: Any, sleep: Any
    ) -> dict[str, Any]:
        """Arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` for one provider.

        Args:
            idempotent: whether the provider takes an idempotency key.
            started: the ``monotonic()`` time the send began (for the deadline).
            monotonic: the clock's ``monotonic`` function.
            sleep: the clock's ``sleep`` (or ``asleep``) function.
        """

        def retry(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            return isinstance(error, ProviderError) and self.should_retry(
                error, idempotent=idempotent
            )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            assert isinstance(error, ProviderError)
            return self.wait_for(error, state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            error = state.outcome.exception() if state.outcome else None
            if (
                isinstance(error, ProviderError)
                and error.retry_after is not None
                and error.retry_after > self.max_retry_after
            ):
                return True
            upcoming = state.upcoming_sleep or 0.0
            elapsed: float = monotonic() - started
            return elapsed + upcoming > self.deadline

        return {"retry": retry, "wait": wait, "stop": stop, "sleep": sleep, "reraise": True}
