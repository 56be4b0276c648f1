"""Address validation and normalisation, done before any network call.

Phone numbers become E.164 with ``phonenumbers`` (a number without a country code uses the
client's default region); email addresses are checked and normalised with ``email-validator``
(syntax only by default: no DNS lookups). A bad address raises
:class:`~anysend.InvalidRecipientError` naming the field. Results are cached, so an address
already seen costs a dictionary lookup.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from anysend._exceptions import InvalidRecipientError

__all__ = ["normalize_email", "normalize_phone", "normalize_url", "trust_e164"]

#: E.164 numbers normalize_phone gave before, in this process or one that stored them (a flow
#: run's recipient, checked when the run started): returned as they are, without phonenumbers.
_E164: dict[str, None] = {}


def trust_e164(number: str) -> None:
    """Remember ``number`` as the E.164 form ``normalize_phone`` gave (bounded memory)."""
    if len(_E164) >= 65536:
        _E164.clear()
    _E164[number] = None


@lru_cache(maxsize=65536)
def normalize_phone(value: str, region: str | None = None, *, field: str = "phone") -> str:
    """Return ``value`` as an E.164 number (``+48600700800``).

    Args:
        value: the number as a person typed it (spaces, dashes, brackets, ``00`` prefix).
        region: ISO 3166 code (``"PL"``) for numbers without a country code.
        field: the recipient field named in the error.

    Raises:
        InvalidRecipientError: the number cannot be parsed or is not a possible number.
    """
    if value in _E164:  # E.164 already: the same whatever the region
        return value
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidRecipientError(
            f"{field} {value!r} is not a phone number ({exc}); give it in international form "
            "(+48 600 700 800) or set the client's default_region",
            field=field,
            value=value,
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidRecipientError(
            f"{field} {value!r} is not a valid phone number", field=field, value=value
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def normalize_email(value: str, *, check_deliverability: bool = False, field: str = "email") -> str:
    """Return the normalised form of an email address (domain lower-cased, IDNA handled).

    Args:
        value: the address.
        check_deliverability: also look up the domain's MX records (DNS; off by default).
        field: the recipient field named in the error.

    Raises:
        InvalidRecipientError: the address is malformed (or undeliverable, when checked).
    """
    from email_validator import EmailNotValidError, validate_email

    if "\r" in value or "\n" in value:
        raise InvalidRecipientError(
            f"{field} contains CR or LF", field=field, value=value.replace("\r", "").strip()
        )
    try:
        checked = validate_email(value, check_deliverability=check_deliverability)
    except EmailNotValidError as exc:
        raise InvalidRecipientError(
            f"{field} {value!r} is not a valid email address: {exc}", field=field, value=value
        ) from exc
    return checked.normalized


def normalize_url(value: str, *, field: str = "webhook_url") -> str:
    """Check that ``value`` is an absolute http(s) URL and return it unchanged.

    Raises:
        InvalidRecipientError: not an absolute http or https URL.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRecipientError(
            f"{field} {value!r} is not an absolute http(s) URL", field=field, value=value
        )
    return value
