"""The shared HTTP error mapping adapters use."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from anysend import ErrorCategory
from anysend.providers._http import category_for_status, error_from_response, parse_retry_after


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, ErrorCategory.AUTH),
        (403, ErrorCategory.AUTH),
        (402, ErrorCategory.QUOTA),
        (408, ErrorCategory.TIMEOUT),
        (413, ErrorCategory.PAYLOAD_TOO_LARGE),
        (429, ErrorCategory.RATE_LIMITED),
        (500, ErrorCategory.UNAVAILABLE),
        (503, ErrorCategory.UNAVAILABLE),
        (504, ErrorCategory.AMBIGUOUS_TIMEOUT),
        (400, ErrorCategory.UNKNOWN),
    ],
)
def test_status_codes_map_to_categories(status: int, category: ErrorCategory) -> None:
    """Each HTTP status means the same category for every provider."""
    assert category_for_status(status) is category


def test_retry_after_in_seconds_and_as_a_date() -> None:
    """Retry-After is read as seconds or as an HTTP date; garbage is ignored."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0


def test_error_from_response_keeps_the_evidence() -> None:
    """The error carries status, category, Retry-After and the parsed body."""
    response = httpx.Response(429, headers={"Retry-After": "4"}, json={"code": 20429})
    error = error_from_response(response, "acme", code="20429")
    assert (error.category, error.retry_after, error.status_code, error.code, error.provider) == (
        ErrorCategory.RATE_LIMITED,
        4.0,
        429,
        "20429",
        "acme",
    )
    assert error.raw == {"code": 20429}
    assert error.retryable


def test_error_from_response_with_text_body_and_override() -> None:
    """A non-JSON body is kept as text and the category can be overridden."""
    response = httpx.Response(400, text="<html>bad</html>")
    error = error_from_response(response, "acme", category=ErrorCategory.INVALID_RECIPIENT)
    assert error.raw == "<html>bad</html>"
    assert error.category is ErrorCategory.INVALID_RECIPIENT
    assert "HTTP 400" in error.message
