"""Batch sends: grouping and chunking for ``client.send_batch`` (pure: no I/O).

Providers with a batch API (``Provider.max_batch > 1``: SendGrid's personalizations, Mailgun's
recipient variables) send one message to many recipients in one request, each recipient getting
a copy of their own. Messages can share a request when they go through the same provider and
are equal but for what the provider personalises: the address, the recipient, anysend's id,
the idempotency key, the locale, and the adapter's :attr:`~anysend.providers.Provider.batch_varies`
fields. :func:`batch_key` says what must be equal; :class:`Batcher` fills chunks of at most
``max_batch`` messages with no address twice in one chunk (SendGrid refuses a repeated address,
and Mailgun's recipient variables are keyed by address).

The client (``anysend._async._client``) does the routing, the sending and the records.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from anysend._exceptions import ConfigurationError, InvalidRecipientError
from anysend._models import OutboundMessage, Recipient

if TYPE_CHECKING:
    from anysend._models import Message
    from anysend.providers import Provider

__all__ = ["PERSONAL_FIELDS", "Batcher", "Chunk", "Entry", "batch_key", "split_item"]

#: The fields every batch API personalises: they never keep messages apart.
PERSONAL_FIELDS = frozenset({"id", "to", "recipient", "idempotency_key", "locale"})

To = Recipient | Mapping[str, Any] | str
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One recipient of a batch send, routed and ready for its provider's batch request.

    Attributes:
        index: the recipient's position in the input.
        to: the recipient as given (a profile id stays an id, for a fallback ``send()``).
        message: the message with the recipient's own data laid over ``Message.data``.
        recipient: the resolved recipient.
        provider: the adapter whose batch API sends it.
        outbound: what the adapter receives (anysend's id, address, rendered content).
        key: the chunk it may share: provider, channel and :func:`batch_key`.
    """

    index: int
    to: To
    message: Message
    recipient: Recipient
    provider: Provider
    outbound: OutboundMessage
    key: Hashable


def split_item(item: object) -> tuple[Recipient | str, dict[str, Any]]:
    """A ``send_batch`` item as ``(to, data)``: a bare ``to``, or a ``(to, data)`` pair.

    ``to`` is a Recipient (a dict of its fields is validated into one) or a profile id;
    ``data`` is the recipient's own template data (laid over ``Message.data``).

    Raises:
        ConfigurationError: the item is neither.
        InvalidRecipientError: a dict does not make a recipient (an unknown field).
    """
    data: Mapping[str, Any] = {}
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[1], Mapping):
            raise ConfigurationError(
                "a send_batch item is a recipient, a profile id, or a (recipient, data) pair"
            )
        item, data = item
    if isinstance(item, Mapping):
        item = recipient_from(item)
    if isinstance(item, (Recipient, str)):
        return item, dict(data)
    raise ConfigurationError(
        f"a send_batch item is a recipient, a profile id, or a (recipient, data) pair, "
        f"not {type(item).__name__}"
    )


def recipient_from(fields: Mapping[str, Any]) -> Recipient:
    """A Recipient from a dict of its fields.

    Raises:
        InvalidRecipientError: the fields do not make a recipient (an unknown field, say).
    """
    try:
        return Recipient.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        where = ".".join(str(part) for part in errors[0]["loc"]) if errors else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'recipient'}: {e['msg']}" for e in errors
        )
        raise InvalidRecipientError(
            f"not a recipient: {problems}", field=where or "recipient"
        ) from None


_SCALARS = (str, int, float, bytes, type(None), datetime)


def _freeze(value: object) -> Hashable:
    """A hashable stand-in for ``value`` that is equal exactly when the values are."""
    if isinstance(value, _SCALARS):  # the common case first: exact types are cheap to test
        return value
    if not value and isinstance(value, (dict, tuple, list)):
        return ("{}" if isinstance(value, dict) else "[]", ())
    if isinstance(value, Mapping):
        return ("{}", tuple(sorted(((str(k), _freeze(v)) for k, v in value.items()))))
    if isinstance(value, (list, tuple)):
        return ("[]", tuple(_freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(_freeze(v) for v in value))
    if isinstance(value, BaseModel):
        return (type(value).__name__, tuple((k, _freeze(v)) for k, v in value))
    try:
        hash(value)
    except TypeError:  # pragma: no cover - messages hold no other unhashable kinds
        return ("repr", repr(value))
    return value


def batch_key(provider: Provider, message: OutboundMessage) -> Hashable | None:
    """What must be equal for ``message`` to share a request; ``None`` when it cannot batch.

    Messages with equal keys differ only in fields the provider personalises per recipient.
    """
    if provider.max_batch < 2 or not provider.batchable(message):
        return None
    varies = PERSONAL_FIELDS | provider.batch_varies
    return tuple(
        (name, _freeze(getattr(message, name)))
        for name in type(message).model_fields
        if name not in varies
    )


@dataclass
class Chunk(Generic[T]):
    """Messages for one batch request: equal keys, at most ``size`` of them, no address twice."""

    key: Hashable
    size: int
    items: list[T] = field(default_factory=list)
    addresses: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        """Whether it holds ``size`` messages."""
        return len(self.items) >= self.size


class Batcher(Generic[T]):
    """Fills chunks per key as items arrive; a chunk is handed out as soon as it is full.

    Memory stays bounded by the open chunks (at most one per address repeat per key), so a
    long stream of recipients is sent as it is read.
    """

    def __init__(self) -> None:
        self._open: dict[Hashable, list[Chunk[T]]] = {}

    def add(self, key: Hashable, size: int, address: str, item: T) -> Chunk[T] | None:
        """Put ``item`` into a chunk of ``key``; return that chunk if it is now full.

        Addresses are compared without case: a repeated address goes to another chunk.
        """
        if size < 1:
            raise ConfigurationError("a batch holds at least one message")
        folded = address.casefold()
        chunks = self._open.setdefault(key, [])
        chunk = next((c for c in chunks if folded not in c.addresses), None)
        if chunk is None:
            chunk = Chunk(key, size)
            chunks.append(chunk)
        chunk.items.append(item)
        chunk.addresses.add(folded)
        if not chunk.full:
            return None
        chunks.remove(chunk)
        if not chunks:
            del self._open[key]
        return chunk

    def flush(self) -> list[Chunk[T]]:
        """Every chunk not handed out yet (partly filled), oldest key first."""
        chunks = [chunk for found in self._open.values() for chunk in found]
        self._open.clear()
        return chunks
