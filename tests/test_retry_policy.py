"""The retry policy's waits and decisions."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from anysend import ErrorCategory, ProviderError, RetryPolicy


def test_backoff_grows_and_is_capped() -> None:
    """Without jitter the waits double up to max_backoff."""
    policy = RetryPolicy(initial_backoff=1, multiplier=2, max_backoff=5, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_jitter_stays_within_its_band() -> None:
    """Jittered waits fall between (1 - jitter) * wait and the wait."""
    policy = RetryPolicy(initial_backoff=2, jitter=0.5)
    rng = random.Random(7)
    waits = [policy.backoff(1, rng) for _ in range(200)]
    assert all(1.0 <= w <= 2.0 for w in waits)
    assert len(set(waits)) > 100


def test_retry_after_wins_over_backoff() -> None:
    """A provider's Retry-After is the wait."""
    policy = RetryPolicy()
    error = ProviderError("slow", category=ErrorCategory.RATE_LIMITED, retry_after=9)
    assert policy.wait_for(error, 1) == 9


def test_ambiguous_is_retried_only_when_idempotent() -> None:
    """An ambiguous timeout is retried only where the provider takes idempotency keys."""
    policy = RetryPolicy()
    error = ProviderError("lost", category=ErrorCategory.AMBIGUOUS_TIMEOUT)
    assert policy.should_retry(error, idempotent=True)
    assert not policy.should_retry(error, idempotent=False)
    assert not RetryPolicy(retry_ambiguous=False).should_retry(error, idempotent=True)


def test_policy_validates_its_numbers() -> None:
    """Nonsense settings are refused."""
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValidationError):
        RetryPolicy(jitter=2)
