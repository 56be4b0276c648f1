"""What the store gives back: stored messages, history entries, steps, reports.

All are immutable pydantic models; times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from anysend._models import Channel
from anysend._results import Attempt, SendResult
from anysend._status import DeliveryStatus, EventType

__all__ = [
    "HistoryEntry",
    "IngestOutcome",
    "PendingMessage",
    "Report",
    "ReportRow",
    "ResultToSave",
    "StepState",
    "StepUpdate",
    "StoredMessage",
    "StoredStep",
]

_FROZEN = ConfigDict(frozen=True)


class StoredMessage(BaseModel):
    """One message as the store knows it: where it went and what became of it.

    Attributes:
        id: anysend's message id (``SendResult.message_id``).
        recipient_id: the profile it was sent to (``None`` for an anonymous recipient).
        category: the message category.
        channel: the channel that carried it (``None`` when nothing was sent).
        provider: the provider that accepted it.
        address: the address it went to.
        provider_message_ids: the accepting providers' ids (one per push device).
        status: the current status: the highest one reported so far (statuses never move
            back; the first terminal one wins).
        reason: why it failed or was skipped, when it did.
        opened_at: the first ``opened`` event, if any.
        clicked_at: the first ``clicked`` event, if any.
        delivered_at: when it was delivered, if it was.
        flow: the flow that sent it, if any.
        run_id: the flow run that sent it, if any.
        created_at: when it was created.
        updated_at: when its status last changed.
        attempts: every attempt and skip, in order.
    """

    model_config = _FROZEN

    id: str
    recipient_id: str | None = None
    category: str | None = None
    channel: Channel | None = None
    provider: str | None = None
    address: str | None = None
    provider_message_ids: tuple[str, ...] = ()
    status: DeliveryStatus
    reason: str | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    flow: str | None = None
    run_id: str | None = None
    created_at: datetime
    updated_at: datetime
    attempts: tuple[Attempt, ...] = ()


class StepState(str, enum.Enum):
    """Where a flow step is.

    * ``waiting``: its condition waits for news about an earlier step (a status, a failure).
    * ``pending``: due at ``due_at``.
    * ``claimed``: a worker is running it (its lease expires, so a crash loses nothing).
    * ``sent``: its message was accepted.
    * ``failed``: its message could not be sent (see the message for why).
    * ``skipped``: its condition or a guard said no (the detail says which).
    * ``canceled``: the run was canceled before it fired.
    * ``unknown``: a worker died while the provider may have been sending it, and the
      provider takes no idempotency key: it was not sent again.
    """

    WAITING = "waiting"
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Whether the step will not run (again)."""
        return self not in (StepState.WAITING, StepState.PENDING, StepState.CLAIMED)


class StoredStep(BaseModel):
    """One step of one flow run (or a single scheduled message) in the store."""

    model_config = _FROZEN

    id: str
    run_id: str
    index: int
    state: StepState
    due_at: datetime | None = None
    message_id: str | None = None
    detail: str | None = None
    attempts: int = 0
    items: tuple[dict[str, Any], ...] = ()


class HistoryEntry(BaseModel):
    """One line of a person's timeline: a message, a status change, an event, an inbound.

    Attributes:
        at: when it happened.
        kind: ``"message"`` (created, with its first outcome), ``"status"``, ``"event"``,
            ``"inbound"``, ``"business_event"`` or ``"step"`` (a flow step skipped or
            canceled).
        channel: the channel, when there is one.
        provider: the provider, when there is one.
        message_id: the message it is about.
        status: for ``message`` and ``status`` entries.
        event: for ``event`` entries.
        reason: why (a failure reason, a skip reason).
        text: the inbound text, the business event's name, or the step's detail.
        flow: the flow, for messages sent by one.
    """

    model_config = _FROZEN

    at: datetime
    kind: str
    channel: Channel | None = None
    provider: str | None = None
    message_id: str | None = None
    status: DeliveryStatus | None = None
    event: EventType | None = None
    reason: str | None = None
    text: str | None = None
    flow: str | None = None


class ReportRow(BaseModel):
    """Counts and rates for one group (a channel, a provider, a category or a flow).

    Rates are fractions (0.0 to 1.0) of ``sent``, the messages a provider accepted; ``None``
    when nothing was sent.
    """

    model_config = _FROZEN

    key: str | None
    messages: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    opened: int = 0
    clicked: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    failure_reasons: dict[str, int] = Field(default_factory=dict)

    def _rate(self, count: int) -> float | None:
        return count / self.sent if self.sent else None

    @property
    def delivery_rate(self) -> float | None:
        """Delivered (or read) out of sent."""
        return self._rate(self.delivered)

    @property
    def read_rate(self) -> float | None:
        """Read out of sent."""
        return self._rate(self.read)

    @property
    def open_rate(self) -> float | None:
        """Opened out of sent."""
        return self._rate(self.opened)

    @property
    def click_rate(self) -> float | None:
        """Clicked out of sent."""
        return self._rate(self.clicked)

    @property
    def failure_rate(self) -> float | None:
        """Failed after acceptance (bounced, expired) out of sent."""
        return self._rate(self.failed_after_sent)

    failed_after_sent: int = 0


class Report(BaseModel):
    """Counts per group over a period: the data behind a dashboard.

    Attributes:
        since: the start of the period (inclusive).
        until: the end (exclusive).
        by: what the rows group by.
        rows: one row per group, sorted by key.
        total: every message of the period in one row.
    """

    model_config = _FROZEN

    since: datetime
    until: datetime
    by: str
    rows: tuple[ReportRow, ...]
    total: ReportRow

    def row(self, key: str | None) -> ReportRow:
        """The row for ``key`` (an empty one when the period has none)."""
        for row in self.rows:
            if row.key == key:
                return row
        return ReportRow(key=key)


class IngestOutcome:
    """What ingesting one delivery event did.

    Attributes:
        new: ``False`` when the same event was stored before (nothing changed).
        message_id: the message it belongs to (``None`` while the message is unknown).
        status: the message's status after the event.
        changed: whether the message's status moved.
        first_event: for an ``opened``/``clicked`` event, whether it was the first one.
        run_id: the flow run that sent the message, when the store says.
        flow_waits: ``False`` when the store knows that no flow step can react to the
            event (the message belongs to no run, or its run has no waiting or pending
            step): the flow engine then reads nothing more. ``None`` (the default) when
            the store does not say; ``True`` when a step may react.
        channel: the message's channel, when the store says (saves reading it back).
        address: the message's address, when the store says.
    """

    __slots__ = (
        "address",
        "changed",
        "channel",
        "first_event",
        "flow_waits",
        "message_id",
        "new",
        "run_id",
        "status",
    )

    def __init__(
        self,
        *,
        new: bool,
        message_id: str | None = None,
        status: DeliveryStatus | None = None,
        changed: bool = False,
        first_event: bool = False,
        run_id: str | None = None,
        flow_waits: bool | None = None,
        channel: Channel | None = None,
        address: str | None = None,
    ) -> None:
        self.new = new
        self.message_id = message_id
        self.status = status
        self.changed = changed
        self.first_event = first_event
        self.run_id = run_id
        self.flow_waits = flow_waits
        self.channel = channel
        self.address = address

    def __repr__(self) -> str:
        return (
            f"IngestOutcome(new={self.new}, message_id={self.message_id!r}, "
            f"status={self.status}, changed={self.changed})"
        )


class PendingMessage(NamedTuple):
    """A message about to be sent: ``begin_message``'s arguments, for ``begin_messages``."""

    message_id: str
    recipient_id: str | None
    category: str | None
    run_id: str | None = None
    step_id: str | None = None
    flow: str | None = None


class ResultToSave(NamedTuple):
    """A send's result: ``save_result``'s arguments, for ``save_results``."""

    result: SendResult
    recipient_id: str | None
    category: str | None
    run_id: str | None = None
    step_id: str | None = None
    flow: str | None = None


class StepUpdate(NamedTuple):
    """A change to one step: ``update_step``'s arguments, for ``update_steps``."""

    step_id: str
    state: StepState
    due_at: datetime | None = None
    message_id: str | None = None
    detail: str | None = None
    lease_until: datetime | None = None
