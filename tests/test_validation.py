"""Address validation and normalisation."""

from __future__ import annotations

import pytest

from anysend import InvalidRecipientError
from anysend._validation import normalize_email, normalize_phone, normalize_url


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+48 600 700 800", None, "+48600700800"),
        ("0048 600-700-800", "PL", "+48600700800"),
        ("600 700 800", "PL", "+48600700800"),
        ("(202) 555-0143", "US", "+12025550143"),
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str | None, expected: str) -> None:
    """Common ways of writing a number normalise to E.164."""
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["12", "not a number", "+48 123", "600 700 800"])
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    """Impossible numbers, or national numbers without a region, raise naming the field."""
    with pytest.raises(InvalidRecipientError) as info:
        normalize_phone(raw, None)
    assert info.value.field == "phone"
    assert info.value.value == raw


def test_email_is_normalised() -> None:
    """The domain part is lower-cased."""
    assert normalize_email("Ann@Example.COM") == "Ann@example.com"


@pytest.mark.parametrize(
    "raw", ["ann", "ann@", "ann@@example.com", "ann@example.com\r\nBcc: x@y.z"]
)
def test_bad_email_is_refused(raw: str) -> None:
    """Malformed addresses and header injection attempts raise InvalidRecipientError."""
    with pytest.raises(InvalidRecipientError) as info:
        normalize_email(raw)
    assert info.value.field == "email"


def test_webhook_url_must_be_absolute_http() -> None:
    """Only absolute http(s) URLs are webhook addresses."""
    assert normalize_url("https://crm.example/hook") == "https://crm.example/hook"
    for bad in ["ftp://x/y", "/relative", "https:///nohost"]:
        with pytest.raises(InvalidRecipientError):
            normalize_url(bad)
