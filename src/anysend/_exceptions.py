"""The exceptions anysend raises, one tree under :class:`AnysendError`.

Each class says what the caller does next, so an application can catch by intent::

    AnysendError
    ├── InvalidRecipientError (also ValueError)   fix the address; nothing was sent
    ├── TemplateError                             fix the template or its data
    ├── ContentError (also ValueError)            an adapter cannot send this content
    ├── ConfigurationError                        fix the client or provider settings
    ├── UnsupportedFeatureError                   the adapter cannot express a feature
    ├── ProviderError                             a provider refused or failed; see ``category``
    ├── WebhookVerificationError                  a callback is not authentic; answer 401/403
    ├── WebhookParseError (also ValueError)       a verified callback could not be understood
    └── DeliveryError                             raise_for_status(): not sent, or unknown

Warnings (``warnings.warn``), one tree under :class:`AnysendWarning` (a ``UserWarning``)::

    AnysendWarning
    └── InsecureTransportWarning                  TLS certificate checks were turned off

:class:`ProviderError` carries an :class:`ErrorCategory`; the category decides whether the
client retries the same provider, fails over to the next provider of the channel, or moves on
to the next channel (see ``docs/concepts/retries.md``).
"""

from __future__ import annotations

import enum
import logging
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from anysend._status import Reason

if TYPE_CHECKING:
    from anysend._results import SendResult

__all__ = [
    "AnysendError",
    "AnysendWarning",
    "ConfigurationError",
    "ContentError",
    "DeliveryError",
    "ErrorCategory",
    "InsecureTransportWarning",
    "InvalidRecipientError",
    "ProviderError",
    "TemplateError",
    "UnsupportedFeatureError",
    "WebhookParseError",
    "WebhookVerificationError",
]

#: How many characters of a provider's raw response an error keeps.
RAW_LIMIT = 2000


class ErrorCategory(str, enum.Enum):
    """Why a provider attempt failed, normalised across providers.

    The category decides what happens next (the routing table in the docs):

    * retried on the same provider, then failed over: ``rate_limited``, ``unavailable``,
      ``timeout``;
    * failed over to the next provider of the channel at once: ``auth``, ``configuration``,
      ``quota``;
    * moved on to the next channel, never to another provider of the same channel:
      ``invalid_recipient``, ``opted_out``;
    * nothing else tried (the content is at fault, so the send fails fast):
      ``content_rejected``, ``payload_too_large``;
    * ``ambiguous_timeout``: the request was sent and no answer came, so the provider may have
      accepted it. Retried only where the provider takes an idempotency key; otherwise the
      send ends with status ``unknown`` and nothing is re-sent;
    * ``unknown``: unmapped; treated like ``unavailable`` but not retried.
    """

    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    AMBIGUOUS_TIMEOUT = "ambiguous_timeout"
    AUTH = "auth"
    CONFIGURATION = "configuration"
    INVALID_RECIPIENT = "invalid_recipient"
    OPTED_OUT = "opted_out"
    CONTENT_REJECTED = "content_rejected"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    QUOTA = "quota"
    UNKNOWN = "unknown"

    @property
    def retryable(self) -> bool:
        """Whether a failure of this category is worth retrying on the same provider."""
        return self in _RETRYABLE

    @property
    def scope(self) -> str:
        """Where the failure lies: ``"provider"``, ``"recipient"`` or ``"content"``.

        Provider-scoped failures fail over to the next provider of the same channel;
        recipient-scoped ones move on to the next channel; content-scoped ones end the send.
        """
        if self in _RECIPIENT_SCOPED:
            return "recipient"
        if self in _CONTENT_SCOPED:
            return "content"
        return "provider"


_RETRYABLE = frozenset(
    {ErrorCategory.RATE_LIMITED, ErrorCategory.UNAVAILABLE, ErrorCategory.TIMEOUT}
)
_RECIPIENT_SCOPED = frozenset({ErrorCategory.INVALID_RECIPIENT, ErrorCategory.OPTED_OUT})
_CONTENT_SCOPED = frozenset({ErrorCategory.CONTENT_REJECTED, ErrorCategory.PAYLOAD_TOO_LARGE})


class AnysendError(Exception):
    """The root of every exception anysend raises on purpose."""


class InvalidRecipientError(AnysendError, ValueError):
    """An address is malformed or missing; raised before anything is sent.

    Attributes:
        field: the recipient field at fault, such as ``"phone"`` or ``"email"``.
        value: the value that was given (may be ``None`` when it was missing).
    """

    def __init__(self, message: str, *, field: str, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class TemplateError(AnysendError):
    """A template is missing, does not compile, or uses data that was not given."""


class ContentError(AnysendError, ValueError):
    """Content an adapter cannot send as it is: a rule of the channel or provider is broken.

    Raised by adapters before any network call (a marketing email without an unsubscribe
    URL, a header with a line break). Inside ``send()`` the client records it as a failed
    attempt with category ``content_rejected``: from ``check_supported`` the next provider
    of the channel is tried; from a send, nothing else is (content failures fail fast).
    """


class ConfigurationError(AnysendError):
    """The client or a provider is set up wrongly (missing setting, unusable adapter)."""


class UnsupportedFeatureError(AnysendError):
    """An adapter was asked for something it cannot do, such as an attachment over SMS.

    Attributes:
        provider: the provider's name.
        feature: the capability that is missing (a field of ``Capabilities``).
    """

    def __init__(self, message: str, *, provider: str, feature: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.feature = feature


class ProviderError(AnysendError):
    """A provider refused or failed to take a message.

    Attributes:
        category: the normalised reason (decides retry and fallback).
        retryable: whether retrying the same provider may succeed; defaults from the category.
        retry_after: seconds the provider asked us to wait, if it said.
        provider: the provider's name, filled in by the client when the adapter left it out.
        status_code: the HTTP status (or SMTP reply code), if any.
        code: the provider's own error code, if any.
        raw: the provider's response, trimmed to a few thousand characters.
        reason: why, from the fixed :class:`~anysend.Reason` list, when the adapter knows.
        contact_invalid: the address is dead for good (a push token the service unregistered,
            a number not on WhatsApp, a chat that blocked the bot, a mailbox that does not
            exist): the application should stop using it. The client reports such attempts
            to its ``on_invalid_address`` hooks.
    """

    def __init__(
        self,
        message: str,
        *,
        category: ErrorCategory | str = ErrorCategory.UNKNOWN,
        retryable: bool | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        raw: Any = None,
        reason: Reason | str | None = None,
        contact_invalid: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.category = ErrorCategory(category)
        self.retryable = self.category.retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.provider = provider
        self.status_code = status_code
        self.code = code
        self.raw = trim_raw(raw)
        self.reason = Reason(reason) if reason is not None else None
        self.contact_invalid = contact_invalid

    def __str__(self) -> str:
        parts = [self.category.value]
        if self.provider:
            parts.append(self.provider)
        if self.status_code is not None:
            parts.append(str(self.status_code))
        if self.code:
            parts.append(f"code {self.code}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, category={self.category.value!r}, "
            f"provider={self.provider!r}, status_code={self.status_code!r}, code={self.code!r})"
        )


class WebhookVerificationError(AnysendError):
    """A callback failed authentication: bad, missing or stale signature, or wrong secret."""


class WebhookParseError(AnysendError, ValueError):
    """A callback passed verification (or verification was off) but its body is not understood."""


class DeliveryError(AnysendError):
    """Raised by ``SendResult.raise_for_status()`` when the message was not sent.

    With ``result.status == "unknown"`` (an ambiguous timeout) it may have been: check with
    the provider before sending again.

    Attributes:
        result: the full :class:`~anysend.SendResult`, with every attempt.
    """

    def __init__(self, message: str, *, result: SendResult) -> None:
        super().__init__(message)
        self.result = result


def as_provider_error(exc: BaseException, provider: str) -> ProviderError:
    """The ProviderError that stands for any exception an adapter raised while sending.

    A ProviderError is returned as it is (with the provider filled in); other anysend errors
    get the category that says what they mean (configuration, content, recipient); anything
    else is an adapter bug, category ``unknown``, not retried.
    """
    if isinstance(exc, ProviderError):
        if exc.provider is None:
            exc.provider = provider
        return exc
    if isinstance(exc, ConfigurationError):
        category = ErrorCategory.CONFIGURATION
    elif isinstance(exc, (ContentError, TemplateError)):
        category = ErrorCategory.CONTENT_REJECTED
    elif isinstance(exc, InvalidRecipientError):
        category = ErrorCategory.INVALID_RECIPIENT
    else:
        category = ErrorCategory.UNKNOWN
    text = str(exc) if isinstance(exc, AnysendError) else f"{type(exc).__name__}: {exc}"
    error = ProviderError(text, category=category, retryable=False, provider=provider)
    error.__cause__ = exc
    return error


def trim_raw(raw: Any, limit: int = RAW_LIMIT) -> Any:
    """Shorten a raw provider response so errors and results stay small."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str) and len(raw) > limit:
        return raw[:limit] + "…"
    return raw


class AnysendWarning(UserWarning):
    """The root of every warning anysend emits with :func:`warnings.warn`."""


class InsecureTransportWarning(AnysendWarning):
    """TLS certificate verification was turned off (``verify=False``) for a connection.

    The traffic is still encrypted, but anyone on the network path can pretend to be the
    server and read it, credentials included. Emitted (and logged on the ``anysend`` logger
    at WARNING) every time such a setting is configured, never per request. Silence it only
    where that is intended: ``warnings.simplefilter("ignore", anysend.InsecureTransportWarning)``.
    """


def warn_insecure(what: str, *, stacklevel: int = 3) -> None:
    """Warn (``InsecureTransportWarning``) and log that ``what`` does not verify certificates."""
    text = (
        f"TLS certificate verification is off for {what}: the connection is encrypted but "
        "not authenticated, so anyone on the network path can impersonate the server"
    )
    logging.getLogger("anysend").warning("%s", text)
    warnings.warn(text, InsecureTransportWarning, stacklevel=stacklevel)


def warn_if_unverified(verify: object, what: str, *, stacklevel: int = 4) -> None:
    """:func:`warn_insecure` when ``verify`` turns certificate checks off.

    ``verify`` is ``True`` (checks on), ``False`` (off), or an ``ssl.SSLContext``, which is
    off when it verifies no certificate or no host name.
    """
    if verify is True:
        return
    if verify is False:
        off = True
    else:
        import ssl

        off = isinstance(verify, ssl.SSLContext) and (
            verify.verify_mode == ssl.CERT_NONE or not verify.check_hostname
        )
    if off:
        warn_insecure(what, stacklevel=stacklevel)


def redact_secrets(error: ProviderError, secrets: Iterable[str]) -> ProviderError:
    """``error`` with every value of ``secrets`` in its message and raw response replaced.

    Providers sometimes echo a credential back in an error (a signature error quoting the
    canonical request, a 401 naming the token it refused); the error then travels into
    results, stores and logs. Every string in ``raw`` (keys and values, at any depth) is
    cleaned, so a multi-line private key is found even inside JSON. Values shorter than 6
    characters are left alone (they would redact ordinary words). Changes ``error`` in place
    and returns it.
    """
    values = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
    if not values:
        return error

    def clean(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        return text

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return clean(item)
        if isinstance(item, dict):
            return {walk(key): walk(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(value) for value in item]
        return item

    message = clean(error.message)
    if message != error.message:
        error.message = message
        error.args = (message, *error.args[1:])
    if error.raw is not None:
        error.raw = walk(error.raw)
    return error
