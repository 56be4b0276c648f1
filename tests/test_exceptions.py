"""The error tree and ProviderError's fields."""

from __future__ import annotations

import anysend
from anysend import ErrorCategory, ProviderError


def test_every_error_derives_from_the_root() -> None:
    """Catching AnysendError catches every anysend error."""
    for name in anysend.__all__:
        obj = getattr(anysend, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, anysend.AnysendError), name


def test_every_warning_derives_from_the_warning_root() -> None:
    """Filtering AnysendWarning filters every anysend warning (all are UserWarnings)."""
    warnings = [
        obj
        for obj in (getattr(anysend, name) for name in anysend.__all__)
        if isinstance(obj, type) and issubclass(obj, Warning)
    ]
    assert anysend.InsecureTransportWarning in warnings
    for warning in warnings:
        assert issubclass(warning, anysend.AnysendWarning)
        assert issubclass(warning, UserWarning)


def test_value_errors_are_value_errors() -> None:
    """Bad input errors are also ValueErrors."""
    assert issubclass(anysend.InvalidRecipientError, ValueError)
    assert issubclass(anysend.ContentError, ValueError)
    assert issubclass(anysend.WebhookParseError, ValueError)


def test_category_decides_retry_and_scope() -> None:
    """Only throttling, outages and timeouts are retryable; scope routes the fallback."""
    retryable = {c for c in ErrorCategory if c.retryable}
    assert retryable == {
        ErrorCategory.RATE_LIMITED,
        ErrorCategory.UNAVAILABLE,
        ErrorCategory.TIMEOUT,
    }
    assert ErrorCategory.INVALID_RECIPIENT.scope == "recipient"
    assert ErrorCategory.OPTED_OUT.scope == "recipient"
    assert ErrorCategory.CONTENT_REJECTED.scope == "content"
    assert ErrorCategory.PAYLOAD_TOO_LARGE.scope == "content"
    assert ErrorCategory.AUTH.scope == "provider"
    assert ErrorCategory.AMBIGUOUS_TIMEOUT.scope == "provider"


def test_provider_error_fields_and_text() -> None:
    """A ProviderError says what, where and why, and trims huge raw bodies."""
    error = ProviderError(
        "throttled",
        category="rate_limited",
        retry_after=2.5,
        provider="acme",
        status_code=429,
        code="20429",
        raw="x" * 10_000,
    )
    assert error.retryable
    assert error.category is ErrorCategory.RATE_LIMITED
    assert str(error) == "throttled (rate_limited, acme, 429, code 20429)"
    assert "category='rate_limited'" in repr(error)
    assert len(error.raw) < 2100


def test_retryable_can_be_overridden() -> None:
    """An adapter may mark an otherwise retryable failure as final."""
    assert not ProviderError("x", category=ErrorCategory.UNAVAILABLE, retryable=False).retryable


def test_raw_bytes_are_decoded() -> None:
    """Raw bytes are kept as text."""
    assert ProviderError("x", raw=b"\xffabc").raw == "\ufffdabc"
