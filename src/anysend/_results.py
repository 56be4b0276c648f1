"""What a send tells you: receipts, attempts and the result.

A :class:`Receipt` per accepted message, an :class:`Attempt` per try (or skip), and one
:class:`SendResult` per ``send()`` call.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from anysend._exceptions import DeliveryError, ErrorCategory, ProviderError
from anysend._models import Channel
from anysend._status import DeliveryStatus, Reason

__all__ = ["Attempt", "AttemptOutcome", "ErrorInfo", "Receipt", "SendResult", "SkipReason"]

_FROZEN = ConfigDict(frozen=True)

_Model = TypeVar("_Model", bound=BaseModel)
_set = object.__setattr__
#: The instance slots of a pydantic v2 model, which ``model_construct`` fills in too.
_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
_TRUSTED: dict[type[BaseModel], list[str] | None] = {}
#: The (model, given) pairs whose dict layout was checked: one layout per call site.
_CHECKED: set[tuple[type[BaseModel], frozenset[str]]] = set()


def _trustable(cls: type[BaseModel]) -> list[str] | None:
    """The fields of ``cls`` in order, if it can be built without validation, else ``None``."""
    if cls in _TRUSTED:
        return _TRUSTED[cls]
    decorators = cls.__pydantic_decorators__
    plain = (
        getattr(BaseModel, "__slots__", ()) == _SLOTS
        and not cls.__pydantic_root_model__
        and cls.__pydantic_post_init__ is None
        and not cls.__private_attributes__
        and cls.model_config.get("extra") != "allow"
        and not any(
            getattr(decorators, kind)
            for kind in ("validators", "field_validators", "root_validators", "model_validators")
        )
    )
    found = _TRUSTED[cls] = list(cls.model_fields) if plain else None
    return found


def trusted(cls: type[_Model], values: dict[str, Any], given: frozenset[str]) -> _Model:
    """``cls(**values)`` without validating: for values the client made from validated ones.

    ``values`` must give every field, in the order the model declares them, each of its
    field's type as validation would leave it (a dict field a dict of its own, not one shared
    with another model); it becomes the instance's ``__dict__``. ``given``: the fields that
    count as set (``model_fields_set``), as if only those had been passed. Each call site
    has a ``given`` of its own and always the same dict layout, checked against the model
    the first time. A model with validators, private attributes or a ``model_post_init`` (or
    a pydantic whose models are laid out otherwise), or a layout that no longer matches the
    model (a field added since), is validated as usual, from the ``given`` fields.
    """
    if (cls, given) not in _CHECKED:
        fields = _trustable(cls)
        if fields is None or list(values) != fields or not given <= set(fields):
            return cls(**{name: values[name] for name in given if name in values})
        _CHECKED.add((cls, given))
    made = cls.__new__(cls)
    _set(made, "__dict__", values)
    _set(made, "__pydantic_fields_set__", set(given))
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


class Receipt(BaseModel):
    """A provider's answer to an accepted message.

    Attributes:
        provider_message_id: the provider's id for the message (matches its callbacks).
        status: usually ``accepted``; ``sent`` where the provider already delivered it onward
            (Telegram), ``scheduled`` for a provider-side schedule.
        raw: the provider's response body, as a dict (JSON) or text.
    """

    model_config = _FROZEN

    provider_message_id: str | None = None
    status: DeliveryStatus = DeliveryStatus.ACCEPTED
    raw: dict[str, Any] | list[Any] | str | None = None


class AttemptOutcome(str, enum.Enum):
    """What became of one attempt: ``sent``, ``failed``, or ``skipped`` (never tried)."""

    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class SkipReason(str, enum.Enum):
    """Why a channel or provider was skipped without a network call.

    * ``no_address``: the recipient has no address for the channel.
    * ``opted_out``: the recipient's preferences exclude the channel for this category.
    * ``no_content``: the template has no part for the channel.
    * ``no_provider``: no configured provider serves the channel.
    * ``unsupported``: the provider cannot express something the message needs.
    * ``suppressed``: the address is on the suppression list (STOP, unsubscribe, complaint).
    * ``contact_invalid``: the address was reported dead (hard bounce, token unregistered).
    * ``no_consent``: the category needs an explicit opt-in the recipient has not given.
    * ``frequency_capped``: the recipient already got as many messages of the category as
      its policy allows in the window.
    * ``provider_benched``: the provider failed too often recently and is being rested.
    """

    NO_ADDRESS = "no_address"
    OPTED_OUT = "opted_out"
    NO_CONTENT = "no_content"
    NO_PROVIDER = "no_provider"
    UNSUPPORTED = "unsupported"
    SUPPRESSED = "suppressed"
    CONTACT_INVALID = "contact_invalid"
    NO_CONSENT = "no_consent"
    FREQUENCY_CAPPED = "frequency_capped"
    PROVIDER_BENCHED = "provider_benched"


class ErrorInfo(BaseModel):
    """A failure, as data: the parts of a :class:`~anysend.ProviderError` worth keeping."""

    model_config = _FROZEN

    category: ErrorCategory
    message: str
    retryable: bool = False
    retry_after: float | None = None
    status_code: int | None = None
    code: str | None = None
    raw: Any = None
    reason: Reason | None = None
    contact_invalid: bool = False

    @classmethod
    def from_exception(cls, error: ProviderError) -> ErrorInfo:
        """Keep what an error says, without the exception object itself."""
        return cls(
            category=error.category,
            message=error.message,
            retryable=error.retryable,
            retry_after=error.retry_after,
            status_code=error.status_code,
            code=error.code,
            raw=error.raw,
            reason=error.reason,
            contact_invalid=error.contact_invalid,
        )


class Attempt(BaseModel):
    """One try of one provider on one channel (or a skip, with the reason).

    Attributes:
        channel: the channel tried.
        provider: the provider's name (``None`` when the channel had none).
        outcome: sent, failed or skipped.
        address: the normalised address tried.
        number: 1 for the first try of this provider, 2 for its first retry, ...
        error: why it failed.
        skip_reason: why it was skipped.
        detail: words for a skip (which feature, which field).
        receipt: the provider's receipt when sent.
        started_at: wall-clock time the attempt started.
        duration: seconds it took.
    """

    model_config = _FROZEN

    channel: Channel
    provider: str | None
    outcome: AttemptOutcome
    address: str | None = None
    number: int = 1
    error: ErrorInfo | None = None
    skip_reason: SkipReason | None = None
    detail: str | None = None
    receipt: Receipt | None = None
    started_at: datetime | None = None
    duration: float = 0.0

    @property
    def contact_invalid(self) -> bool:
        """Whether the provider said this address is dead for good (stop using it)."""
        return self.error is not None and self.error.contact_invalid


class SendResult(BaseModel):
    """The outcome of one ``send()``: what was sent, where, and every attempt on the way.

    Attributes:
        message_id: anysend's id for the message.
        status: ``accepted`` (or the receipt's status) when sent; ``rejected`` when the
            recipient or content was refused everywhere; ``unknown`` when a timeout left it
            unclear (nothing else was tried, to avoid a duplicate); ``failed`` otherwise.
        channel: the channel that carried it.
        provider: the provider that accepted it.
        address: the address it went to.
        receipt: the accepting provider's receipt.
        attempts: every attempt and skip, in order.
        idempotent_replay: ``True`` when this result was returned for a repeated
            ``idempotency_key`` rather than sent again.
        scheduled_for: when the client's store holds the message for later (``send_at``,
            quiet hours); it is sent by ``client.run_due()`` or ``anysend worker``.
    """

    model_config = _FROZEN

    message_id: str
    status: DeliveryStatus
    channel: Channel | None = None
    provider: str | None = None
    address: str | None = None
    receipt: Receipt | None = None
    attempts: tuple[Attempt, ...] = Field(default_factory=tuple)
    idempotent_replay: bool = False
    scheduled_for: datetime | None = None

    @property
    def ok(self) -> bool:
        """Whether a provider accepted it, or it is scheduled (by a provider or the store)."""
        return self.status.is_success or (
            self.status is DeliveryStatus.SCHEDULED
            and (self.receipt is not None or self.scheduled_for is not None)
        )

    @property
    def provider_message_id(self) -> str | None:
        """The accepting provider's id for the message, if any."""
        return self.receipt.provider_message_id if self.receipt else None

    @property
    def error(self) -> ErrorInfo | None:
        """The last error met, if any."""
        for attempt in reversed(self.attempts):
            if attempt.error is not None:
                return attempt.error
        return None

    def raise_for_status(self) -> SendResult:
        """Return the result if it was sent; raise :class:`~anysend.DeliveryError` otherwise."""
        if self.ok:
            return self
        error = self.error
        if error is not None:
            why = f"{error.category.value}: {error.message}"
        else:
            skips = [a.skip_reason.value for a in self.attempts if a.skip_reason is not None]
            why = "every channel was skipped (" + ", ".join(skips) + ")" if skips else "no attempt"
        if self.status is DeliveryStatus.UNKNOWN:
            # The provider may have taken it: saying "not sent" would invite a duplicate.
            text = (
                f"message {self.message_id} may or may not have been sent (unknown): {why}; "
                "do not send it again blindly"
            )
        else:
            text = f"message {self.message_id} was not sent ({self.status.value}); {why}"
        raise DeliveryError(text, result=self)
