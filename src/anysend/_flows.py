"""Flows (escalation plans) and the per-category policies a send obeys.

A :class:`Flow` is a list of :class:`Step` objects. Each step names a channel (or a chain), its
own template, and a condition (``when``) on what happened to an earlier step. Flows are plain
data: ``client.start(flow, ...)`` stores them with the run, so a worker in another process needs
no registry of flows.

:class:`Policy` says what a category of messages may do (re-route to another channel, need
consent, ignore quiet hours, how often); :class:`QuietHours` is the window in which
non-transactional messages wait.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anysend._models import Channel, Message, QuietHours

__all__ = [
    "AfterDelivery",
    "Always",
    "Condition",
    "Digest",
    "Failed",
    "Flow",
    "FrequencyCap",
    "NotClicked",
    "NotDelivered",
    "NotOpened",
    "NotRead",
    "Policy",
    "QuietHours",
    "Step",
    "key_message_id",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class _Condition(BaseModel):
    model_config = _FROZEN

    step: int | str | None = None
    """The earlier step this condition looks at: its index or name (default: the step
    before)."""


class Always(_Condition):
    """Fire once the earlier step is done, whatever became of it (after the step's delay)."""

    kind: Literal["always"] = "always"


class Failed(_Condition):
    """Fire when the earlier step's message failed (refused, bounced, expired, or skipped).

    A ``delivered`` or ``read`` status settles it the other way: the step is skipped. Without
    ``within`` the step waits as long as no final status comes (some providers never report
    delivery); with it, the step is skipped once that long passed without a failure.
    """

    kind: Literal["failed"] = "failed"
    within: timedelta | None = None
    """Give up waiting for a failure this long after the earlier message was sent."""


class _Within(_Condition):
    within: timedelta
    """How long to wait for the signal after the earlier step was sent."""
    wait_for_final: bool = False
    """At the deadline, if the earlier message has no final status yet (still ``sent``),
    wait for one instead of firing: a later ``delivered`` skips the step, a failure fires it."""

    @field_validator("within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("within must not be negative")
        return value


class NotDelivered(_Within):
    """Fire if the earlier message was not delivered (or read) within ``within``."""

    kind: Literal["not_delivered"] = "not_delivered"


class NotRead(_Within):
    """Fire if the earlier message was not read within ``within`` (read receipts)."""

    kind: Literal["not_read"] = "not_read"


class NotOpened(_Within):
    """Fire if the earlier message was not opened within ``within`` (the ``opened`` event)."""

    kind: Literal["not_opened"] = "not_opened"


class NotClicked(_Within):
    """Fire if no link in the earlier message was clicked within ``within``."""

    kind: Literal["not_clicked"] = "not_clicked"


class AfterDelivery(_Condition):
    """Fire ``after`` the earlier message was delivered; skipped if it never is (it failed)."""

    kind: Literal["after_delivery"] = "after_delivery"
    after: timedelta = timedelta(0)


Condition = Annotated[
    Always | Failed | NotDelivered | NotRead | NotOpened | NotClicked | AfterDelivery,
    Field(discriminator="kind"),
]
"""Any of the step conditions."""


class Digest(BaseModel):
    """Fold the messages of one category for one recipient into one, sent at a local time.

    Every run that reaches a digest step adds its ``data`` to the recipient's open digest for
    ``key``; at the next ``at`` (in the recipient's time zone) one message goes out, its
    template seeing ``items``: the list of every run's data, oldest first.
    """

    model_config = _FROZEN

    at: time = time(18, 0)
    """The local time the digest is sent."""
    key: str | None = None
    """What groups items (default: the flow's category, else its name)."""


class Step(BaseModel):
    """One step of a flow.

    Attributes:
        via: the channel, or a chain of channels tried in order.
        template: the template for this step (its own text per channel and locale).
        message: an explicit message instead of a template (its ``data`` is merged with the
            run's).
        when: the condition on an earlier step; the first step of a flow uses ``Always``.
        delay: wait this long once the condition allows the step.
        until: business events (``client.record_event``) that make this step unnecessary:
            one recorded for the recipient after the run started skips it.
        digest: fold this step into a per-recipient digest (see :class:`Digest`).
        data: data merged over the run's data for this step only.
        name: a name other steps can refer to in their condition.
    """

    model_config = _FROZEN

    via: tuple[Channel, ...]
    template: str | None = None
    message: Message | None = None
    when: Condition = Field(default_factory=Always)
    delay: timedelta = timedelta(0)
    until: tuple[str, ...] = ()
    digest: Digest | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None

    @field_validator("via", mode="before")
    @classmethod
    def _chain(cls, value: Any) -> Any:
        if isinstance(value, (str, Channel)):
            return (value,)
        return value

    @field_validator("until", mode="before")
    @classmethod
    def _until(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _content(self) -> Step:
        if not self.via:
            raise ValueError("a step needs at least one channel in via")
        if (self.template is None) == (self.message is None):
            raise ValueError("a step needs exactly one of template and message")
        if self.delay < timedelta(0):
            raise ValueError("delay must not be negative")
        return self


class Flow(BaseModel):
    """An escalation plan: steps that react to what happened to the earlier ones.

    Example:
        ```python
        from datetime import timedelta
        from anysend import Flow, NotOpened, Step

        back_in_stock = Flow(
            name="back-in-stock",
            category="marketing",
            cancel_on=["purchase"],
            steps=[
                Step(via="email", template="back_in_stock"),
                Step(via="sms", template="discount", when=NotOpened(within=timedelta(days=3))),
            ],
        )
        ```

    Attributes:
        name: the flow's name (reports and history show it).
        steps: the steps, in order.
        category: the category of every message the flow sends (policies, preferences, caps).
        cancel_on: business events that cancel what is still pending for the recipient.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    steps: tuple[Step, ...] = Field(min_length=1)
    category: str | None = None
    cancel_on: tuple[str, ...] = ()

    @field_validator("cancel_on", mode="before")
    @classmethod
    def _cancel_on(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _references(self) -> Flow:
        names: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            if step.name is not None:
                if step.name in names:
                    raise ValueError(f"two steps are named {step.name!r}")
                names[step.name] = index
            if index == 0:
                if not isinstance(step.when, Always) or step.when.step is not None:
                    raise ValueError("the first step's condition must be Always()")
                continue
            self.reference(index)  # raises on a bad reference
        return self

    def reference(self, index: int) -> int | None:
        """The index of the earlier step that step ``index``'s condition looks at."""
        if index == 0:
            return None
        ref = self.steps[index].when.step
        if ref is None:
            return index - 1
        if isinstance(ref, str):
            for other, step in enumerate(self.steps):
                if step.name == ref:
                    ref = other
                    break
            else:
                raise ValueError(f"step {index} refers to an unknown step {ref!r}")
        if not 0 <= ref < index:
            raise ValueError(f"step {index} may only refer to an earlier step, not {ref}")
        return ref


class FrequencyCap(BaseModel):
    """At most ``count`` messages of a category per recipient in every ``per`` window."""

    model_config = _FROZEN

    count: int = Field(ge=0)
    per: timedelta = timedelta(days=1)


class Policy(BaseModel):
    """What the messages of one category may do (``Client(policies={"otp": Policy(...)})``).

    Attributes:
        reroute: ``False``: never move to another channel after a channel was tried (a
            one-time password is not escalated from SMS to email).
        consent: every channel needs an explicit opt-in in the recipient's preferences
            (``Preferences(categories={"marketing": {"email": True}})``).
        transactional: sent during quiet hours and not counted by frequency caps.
        cap: at most so many messages of the category per recipient per window.
    """

    model_config = _FROZEN

    reroute: bool = True
    consent: bool = False
    transactional: bool = False
    cap: FrequencyCap | None = None


def zone_of(name: str | None, default: str = "UTC") -> tzinfo:
    """The ``ZoneInfo`` for an IANA name; an unknown name falls back to ``default``."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def next_local_time(now: datetime, at: time, zone: tzinfo) -> datetime:
    """The next moment (strictly after ``now``) the wall clock in ``zone`` shows ``at``."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at).replace(tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at).replace(tzinfo=zone)
    return candidate.astimezone(now.tzinfo)


# -- running steps side by side (the flow engine's twins) ----------------------------------------
# The async engine (anysend/_async/_flows.py) is the source of the sync one; these two are the
# hand-written pair it uses, named so that scripts/unasync.py turns one into the other.


class AsyncConcurrently:
    """Await calls at most ``limit`` at a time (the async flow engine's sends of a batch).

    If one raises, the others that have not finished are canceled and awaited, and the
    exception goes on: each call records for itself how far it got.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)

    async def run(self, calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
        if self.limit == 1 or len(calls) < 2:
            for call in calls:
                await call()
            return
        import asyncio  # loaded already in a running loop

        gate = asyncio.Semaphore(self.limit)

        async def one(call: Callable[[], Awaitable[None]]) -> None:
            async with gate:
                await call()

        tasks = [asyncio.ensure_future(one(call)) for call in calls]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


class Concurrently:
    """The sync twin of :class:`AsyncConcurrently`: the calls run one after another."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)

    def run(self, calls: Sequence[Callable[[], None]]) -> None:
        for call in calls:
            call()


#: The namespace of the message ids derived from idempotency keys (a UUID of its own).
_KEY_NAMESPACE = bytes.fromhex("3b8f0e6a52d14c0f9a7e41c2d5b86f17")


def key_message_id(key: str) -> str:
    """The message id of a send with an idempotency key: the same on every try of that key.

    A send that a crash cut short and that is tried again (a redelivered task, a re-run job)
    records its result under the same id instead of adding a second message to the store.
    ``uuid.uuid5(namespace, key).hex``, computed without building ``UUID`` objects.
    """
    digest = bytearray(hashlib.sha1(_KEY_NAMESPACE + key.encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return digest.hex()
