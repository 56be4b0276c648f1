"""Helpers for HTTP adapters: reading errors out of responses the same way everywhere.

Adapters call :func:`error_from_response` for the HTTP status mapping every provider shares
(401/403 auth, 402 quota, 408 timeout, 413 payload too large, 429 rate limited with
``Retry-After``, 5xx unavailable) and refine it with their own error codes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from anysend._exceptions import ErrorCategory, ProviderError

__all__ = ["category_for_status", "error_from_response", "parse_retry_after", "response_body"]

_STATUS_CATEGORIES = {
    401: ErrorCategory.AUTH,
    402: ErrorCategory.QUOTA,
    403: ErrorCategory.AUTH,
    408: ErrorCategory.TIMEOUT,
    413: ErrorCategory.PAYLOAD_TOO_LARGE,
    429: ErrorCategory.RATE_LIMITED,
    504: ErrorCategory.AMBIGUOUS_TIMEOUT,
}


def category_for_status(status_code: int) -> ErrorCategory:
    """The error category an HTTP status means when the provider says nothing more."""
    if status_code in _STATUS_CATEGORIES:
        return _STATUS_CATEGORIES[status_code]
    if status_code >= 500:
        return ErrorCategory.UNAVAILABLE
    return ErrorCategory.UNKNOWN


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def response_body(response: httpx.Response) -> Any:
    """The response body as JSON when it parses, else as text."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


def error_from_response(
    response: httpx.Response,
    provider: str,
    *,
    message: str | None = None,
    category: ErrorCategory | None = None,
    code: str | None = None,
    retryable: bool | None = None,
) -> ProviderError:
    """A ProviderError for a failed HTTP response, with the shared status mapping applied.

    Args:
        response: the provider's answer.
        provider: the provider's name.
        message: a description (defaults to the status line).
        category: overrides the category the HTTP status gives.
        code: the provider's own error code.
        retryable: overrides the category's default.
    """
    return ProviderError(
        message or f"{provider} answered HTTP {response.status_code} {response.reason_phrase}",
        category=category or category_for_status(response.status_code),
        retryable=retryable,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        provider=provider,
        status_code=response.status_code,
        code=code,
        raw=response_body(response),
    )
