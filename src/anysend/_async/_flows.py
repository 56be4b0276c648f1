"""The flow engine: starting runs, firing due steps, and reacting to statuses and events.

This file is the source of truth; ``anysend/_sync/_flows.py`` is generated from it.

Every decision is taken when a step fires, from what the store says then: the run may have
been canceled, a business event may make the step unnecessary, the earlier message may have
been opened. Each step is claimed atomically before it runs; its message id is derived from the
step's id, so a step that a dead worker left half-done is recognised when it is claimed again.
A step is closed only after the steps that follow it are armed (arming is idempotent): a worker
that dies in between leaves the step claimed, and whoever claims it again finishes both.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from anysend._async._store import AsyncStore
from anysend._exceptions import AnysendError, ConfigurationError, ErrorCategory
from anysend._flows import (
    AfterDelivery,
    Always,
    Failed,
    Flow,
    NotClicked,
    NotDelivered,
    NotOpened,
    NotRead,
    Step,
    next_local_time,
    zone_of,
)
from anysend._logging import logger
from anysend._models import Channel, Message, Recipient
from anysend._records import IngestOutcome, StepState, StoredMessage, StoredStep
from anysend._results import Attempt, AttemptOutcome, ErrorInfo, SendResult
from anysend._status import DeliveryStatus

if TYPE_CHECKING:
    from anysend._async._client import AsyncClient

__all__ = ["AsyncFlowEngine", "step_message_id"]

_NAMESPACE = uuid.UUID("6f1d3c2e-8a7b-4e55-9d41-2b0c6a1e9f30")
_SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)


def step_message_id(step_id: str) -> str:
    """The message id of a step's message: the same however often the step is claimed."""
    return uuid.uuid5(_NAMESPACE, step_id).hex


def _failed(message: StoredMessage) -> bool:
    """Nothing reached the person: refused, bounced, expired, or every channel skipped."""
    if message.status is DeliveryStatus.PENDING or message.status is DeliveryStatus.UNKNOWN:
        return False
    return message.status.is_terminal or not any(
        a.outcome is AttemptOutcome.SENT for a in message.attempts
    )


def _final(message: StoredMessage) -> bool:
    return message.delivered_at is not None or message.status.is_terminal or _failed(message)


def _signal(condition: Any, message: StoredMessage) -> bool:
    """Whether the signal a Not* condition waits for has come."""
    if isinstance(condition, NotDelivered):
        return message.delivered_at is not None
    if isinstance(condition, NotRead):
        return message.read_at is not None
    if isinstance(condition, NotOpened):
        return message.opened_at is not None
    return message.clicked_at is not None  # NotClicked


_WITHIN = (NotDelivered, NotRead, NotOpened, NotClicked)


def _unknown(message_id: str, channel: Channel | None, why: str) -> SendResult:
    """The result of a send a worker died in: the provider may or may not have it."""
    error = ErrorInfo(category=ErrorCategory.AMBIGUOUS_TIMEOUT, message=why)
    attempt = Attempt(
        channel=channel or Channel.EMAIL,
        provider=None,
        outcome=AttemptOutcome.FAILED,
        error=error,
    )
    return SendResult(message_id=message_id, status=DeliveryStatus.UNKNOWN, attempts=(attempt,))


class AsyncFlowEngine:
    """Runs flows for one client on one store (made by the client on first use)."""

    def __init__(self, client: AsyncClient, store: AsyncStore) -> None:
        self._client = client
        self._store = store
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(minutes=5)

    @property
    def _now(self) -> datetime:
        return self._client._clock.now()

    # -- starting and stopping -------------------------------------------------------------

    async def _target(
        self, to: Recipient | Mapping[str, Any] | str
    ) -> tuple[str | None, dict[str, Any] | None]:
        """(profile id, recipient snapshot) for a run: a profile id is resolved at fire time."""
        if isinstance(to, str):
            if await self._store.get_profile(to) is None:
                raise ConfigurationError(f"no profile with id {to!r}")
            return to, None
        recipient = to if isinstance(to, Recipient) else Recipient.model_validate(to)
        return recipient.id, recipient.model_dump(mode="json")

    async def start(
        self,
        flow: Flow,
        *,
        to: Recipient | Mapping[str, Any] | str,
        data: dict[str, Any],
        key: str | None,
    ) -> str:
        """Persist a run of ``flow``; its first step is due after its delay."""
        if not isinstance(flow, Flow):
            raise ConfigurationError("start() needs an anysend.Flow")
        recipient_id, snapshot = await self._target(to)
        if recipient_id is None and any(s.digest for s in flow.steps):
            raise ConfigurationError("a flow with a digest step needs a recipient with an id")
        now = self._now
        states: list[tuple[StepState, datetime | None]] = [
            (StepState.PENDING, now + flow.steps[0].delay)
        ]
        states += [(StepState.WAITING, None)] * (len(flow.steps) - 1)
        plan = {
            "kind": "flow",
            "flow": flow.model_dump(mode="json"),
            "to": snapshot,
            "data": data,
        }
        run_id, created = await self._store.create_run(
            run_id=uuid.uuid4().hex,
            key=key,
            flow=flow.name,
            plan=plan,
            recipient_id=recipient_id,
            now=now,
            steps=states,
        )
        if not created:
            logger.info("flow %s: key %r is already running as %s", flow.name, key, run_id)
        return run_id

    async def schedule(
        self,
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | Channel | str | None,
        at: datetime,
        *,
        profile: bool = False,
    ) -> SendResult:
        """Hold one message in the store until ``at`` (``send_at``, quiet hours).

        For a profile (``profile=True``) the recipient is read again when the message goes,
        so that a changed address or a dead contact point is honoured; otherwise the
        recipient as given is kept.
        """
        chain = None
        if via is not None:
            chain = [Channel(v).value for v in ([via] if isinstance(via, (str, Channel)) else via)]
        plan = {
            "kind": "message",
            "message": message.model_copy(update={"send_at": None}).model_dump_json(),
            "to": None if profile else recipient.model_dump(mode="json"),
            "via": chain,
        }
        run_id = uuid.uuid4().hex
        run_id, _ = await self._store.create_run(
            run_id=run_id,
            key=message.idempotency_key,
            flow="scheduled",
            plan=plan,
            recipient_id=recipient.id,
            now=self._now,
            steps=[(StepState.PENDING, at)],
        )
        return SendResult(
            message_id=step_message_id(f"{run_id}.0"),
            status=DeliveryStatus.SCHEDULED,
            scheduled_for=at,
        )

    async def cancel(self, key: str) -> int:
        """Cancel the runs started with ``key``."""
        return await self._store.cancel_runs(now=self._now, key=key, reason=f"canceled: {key}")

    async def record_event(
        self, recipient: Recipient | str, name: str, data: dict[str, Any]
    ) -> int:
        """Record a business event and cancel the runs that cancel on it."""
        recipient_id = recipient if isinstance(recipient, str) else recipient.id
        if not recipient_id:
            raise ConfigurationError("record_event needs a recipient id")
        now = self._now
        await self._store.record_business_event(recipient_id, name, data, now=now)
        return await self._store.cancel_runs(
            now=now, recipient_id=recipient_id, event=name, reason=f"cancel_on: {name}"
        )

    # -- running due steps -------------------------------------------------------------------

    async def run_due(self, *, limit: int) -> int:
        """Claim and run the due steps (also those they make due); returns how many ran."""
        total = 0
        while total < limit:
            steps = await self._store.claim_due(
                now=self._now, worker=self.worker, lease=self.lease, limit=limit - total
            )
            if not steps:
                break
            total += len(steps)
            for step in steps:
                try:
                    await self._run(step)
                except AnysendError as exc:
                    # Bad input found only now (a template broken since the run started):
                    # the step ends failed with the reason, never silently, and the steps
                    # after it are armed as after any step that sent nothing.
                    logger.warning("step %s failed: %s", step.id, exc)
                    await self._failed_step(step, f"{type(exc).__name__}: {exc}")
        return total

    async def _failed_step(self, step: StoredStep, detail: str) -> None:
        await self._orphan(step)
        run = await self._store.get_run(step.run_id)
        if run is not None and run["plan"]["kind"] == "flow" and step.index >= 0:
            await self._after(run, Flow.model_validate(run["plan"]["flow"]), step.index)
        await self._store.update_step(step.id, StepState.FAILED, now=self._now, detail=detail)

    async def _orphan(self, step: StoredStep) -> None:
        """Settle a message an earlier claim began but never finished.

        Called when the step will not send it now (canceled, skipped): it may have gone out,
        so it is recorded as ``unknown``.
        """
        message_id = step_message_id(step.id)
        stored = await self._store.get_message(message_id)
        if stored is None or stored.status is not DeliveryStatus.PENDING:
            return
        result = _unknown(
            message_id,
            stored.channel,
            "a worker stopped while this message was being sent, and the step did not run again",
        )
        await self._store.save_result(
            result,
            now=self._now,
            recipient_id=stored.recipient_id,
            category=stored.category,
            run_id=stored.run_id,
            step_id=step.id,
            flow=stored.flow,
        )

    async def work(
        self,
        *,
        poll: float = 1.0,
        once: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
        retention: timedelta | None = None,
    ) -> int:
        """Run due steps until told to stop (or, with ``once``, until none is due)."""
        released = await self._store.release_claims(self.worker)
        if released:
            logger.info("worker %s: took back %d step(s) it held before", self.worker, released)
        total = 0
        last_prune: datetime | None = None
        clock = self._client._clock
        while not should_stop():
            # One step per claim: should_stop is honoured between steps, and a lease only has
            # to outlast one step (a batch's later steps could outlive their lease and be
            # claimed again by another worker while this one still holds them).
            ran = await self.run_due(limit=1)
            total += ran
            if retention is not None and (
                last_prune is None or self._now - last_prune >= timedelta(days=1)
            ):
                last_prune = self._now
                await self._store.prune(self._now - retention)
            if ran:
                continue
            if once:
                break
            due = await self._store.next_due()
            wait = poll if due is None else (due - self._now).total_seconds()
            await clock.asleep(min(max(wait, 0.0), poll))
        return total

    async def _run(self, step: StoredStep) -> None:
        run = await self._store.get_run(step.run_id)
        if run is None:
            await self._orphan(step)
            await self._store.update_step(
                step.id, StepState.FAILED, now=self._now, detail="its run is gone"
            )
            return
        if run["state"] == "canceled":
            await self._orphan(step)
            await self._store.update_step(
                step.id, StepState.CANCELED, now=self._now, detail=run["detail"]
            )
            return
        plan = run["plan"]
        if step.index == -1:
            await self._run_digest(step, run)
            return
        if plan["kind"] == "message":
            message = Message.model_validate_json(plan["message"])
            target = await self._recipient(run)
            if target is None:
                await self._orphan(step)
                await self._store.update_step(
                    step.id, StepState.SKIPPED, now=self._now, detail="the profile is gone"
                )
                return
            later = self._client._quiet_window(message, target)
            if later is not None:  # a send_at that falls in the recipient's quiet hours
                await self._store.update_step(
                    step.id, StepState.PENDING, now=self._now, due_at=later, detail="quiet hours"
                )
                return
            await self._fire(step, run, message, target, plan["via"], flow=None)
            return
        flow = Flow.model_validate(plan["flow"])
        recipient_id = run["recipient_id"]
        created = run["created_at"]
        spec = flow.steps[step.index]
        if (
            recipient_id
            and flow.cancel_on
            and await self._store.has_business_event(recipient_id, flow.cancel_on, created)
        ):
            await self._orphan(step)
            await self._store.cancel_runs(
                now=self._now, run_id=run["id"], reason="a cancel_on event was recorded"
            )
            await self._store.update_step(
                step.id, StepState.CANCELED, now=self._now, detail="a cancel_on event was recorded"
            )
            return
        if (
            recipient_id
            and spec.until
            and await self._store.has_business_event(recipient_id, spec.until, created)
        ):
            await self._skip(run, flow, step, f"until: {', '.join(spec.until)} happened")
            return
        ref = flow.reference(step.index)
        if ref is not None:
            verdict = await self._check(run, flow, step.index, ref)
            if verdict == "wait":
                await self._store.update_step(step.id, StepState.WAITING, now=self._now)
                return
            if verdict != "fire":
                await self._skip(run, flow, step, verdict)
                return
        recipient = await self._recipient(run)
        if recipient is None:
            await self._skip(run, flow, step, "the profile is gone")
            return
        message = self._message(flow, spec, plan["data"])
        later = self._client._quiet_window(message, recipient)
        if later is not None:
            await self._store.update_step(
                step.id, StepState.PENDING, now=self._now, due_at=later, detail="quiet hours"
            )
            return
        if spec.digest is not None:
            assert recipient_id is not None
            zone = zone_of(recipient.timezone, self._client._default_zone)
            digest_id = await self._store.add_digest_item(
                run_id=run["id"],
                digest_key=spec.digest.key or flow.category or flow.name,
                recipient_id=recipient_id,
                due_at=next_local_time(self._now, spec.digest.at, zone),
                item={"run": run["id"], "step": step.index, "data": message.data},
                now=self._now,
            )
            # The step waits for its digest (so the run stays active and can be canceled):
            # it is closed, and the steps after it armed, when the digest goes.
            await self._store.update_step(
                step.id, StepState.WAITING, now=self._now, detail=f"in digest {digest_id}"
            )
            return
        await self._fire(step, run, message, recipient, list(spec.via), flow=flow)

    async def _run_digest(self, step: StoredStep, run: dict[str, Any]) -> None:
        """Send a digest: one message with the items of every run that is not canceled."""
        items: list[dict[str, Any]] = []
        source: dict[str, Any] | None = None
        for item in step.items:
            contributor = await self._store.get_run(item["run"])
            if contributor is None or contributor["state"] == "canceled":
                continue  # that run was canceled (or pruned): its item goes with it
            items.append(item)
            source = source or contributor
        if source is None:
            await self._orphan(step)
            await self._store.update_step(
                step.id, StepState.SKIPPED, now=self._now, detail="every item's run was canceled"
            )
            return
        source_flow = Flow.model_validate(source["plan"]["flow"])
        spec = source_flow.steps[items[0]["step"]]
        recipient = await self._recipient(source)
        if recipient is None:
            await self._orphan(step)
            await self._store.update_step(
                step.id, StepState.SKIPPED, now=self._now, detail="the profile is gone"
            )
            return
        data = {"items": [item["data"] for item in items], "count": len(items)}
        message = self._message(source_flow, spec, data)
        later = self._client._quiet_window(message, recipient)
        if later is not None:
            await self._store.update_step(
                step.id, StepState.PENDING, now=self._now, due_at=later, detail="quiet hours"
            )
            return
        await self._fire(step, run, message, recipient, list(spec.via), flow=source_flow)
        digest = next(s for s in await self._store.run_steps(run["id"]) if s.id == step.id)
        for item in items:
            contributor = await self._store.get_run(item["run"])
            if contributor is None or contributor["state"] != "active":
                continue
            contributor_flow = Flow.model_validate(contributor["plan"]["flow"])
            await self._after(contributor, contributor_flow, item["step"])
            await self._store.update_step(
                f"{item['run']}.{item['step']}",
                digest.state,
                now=self._now,
                message_id=digest.message_id,
                detail=f"sent in digest {step.id}",
            )

    @staticmethod
    def _message(flow: Flow, spec: Step, data: Mapping[str, Any]) -> Message:
        merged = {**data, **spec.data}
        if spec.message is not None:
            update: dict[str, Any] = {"data": {**merged, **spec.message.data}}
            if spec.message.category is None:
                update["category"] = flow.category
            return spec.message.model_copy(update=update)
        return Message(template=spec.template, data=merged, category=flow.category)

    async def _recipient(self, run: dict[str, Any]) -> Recipient | None:
        snapshot = run["plan"].get("to")
        if snapshot is not None:
            return Recipient.model_validate(snapshot)
        return await self._store.get_profile(run["recipient_id"])

    async def _check(self, run: dict[str, Any], flow: Flow, index: int, ref: int) -> str:
        """``"fire"``, ``"wait"``, or why the step is skipped, from the earlier step's fate."""
        condition = flow.steps[index].when
        message = await self._ref_message(run["id"], ref)
        if isinstance(condition, Always):
            return "fire"
        if message is None:
            return f"step {ref} sent nothing"
        if isinstance(condition, Failed):
            if _failed(message):
                return "fire"
            if message.delivered_at is not None:
                return f"step {ref} was delivered"
            if condition.within is not None and self._now >= message.created_at + condition.within:
                return f"no failure of step {ref} was reported within {condition.within}"
            return "wait"
        if isinstance(condition, AfterDelivery):
            return "fire" if message.delivered_at is not None else f"step {ref} failed"
        assert isinstance(condition, _WITHIN)
        if _signal(condition, message):
            return f"step {ref} was {condition.kind.removeprefix('not_')}"
        if _failed(message):
            return "fire"
        if condition.wait_for_final and not _final(message):
            return "wait"
        return "fire"

    async def _ref_message(self, run_id: str, ref: int) -> StoredMessage | None:
        steps = await self._store.run_steps(run_id)
        ref_step = next((s for s in steps if s.index == ref), None)
        if ref_step is None:
            return None
        # A worker may have recorded the message and died before the step named it.
        return await self._store.get_message(ref_step.message_id or step_message_id(ref_step.id))

    async def _skip(self, run: dict[str, Any], flow: Flow, step: StoredStep, why: str) -> None:
        await self._orphan(step)
        await self._after(run, flow, step.index)
        await self._store.update_step(step.id, StepState.SKIPPED, now=self._now, detail=why)

    async def _fire(
        self,
        step: StoredStep,
        run: dict[str, Any],
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | None,
        *,
        flow: Flow | None,
    ) -> None:
        """Send a step's message exactly once, even when a worker died mid-send before."""
        store = self._store
        message_id = step_message_id(step.id)
        flow_name = flow.name if flow is not None else None

        async def record(result: SendResult) -> None:
            await store.save_result(
                result,
                now=self._now,
                recipient_id=recipient.id,
                category=message.category,
                run_id=run["id"],
                step_id=step.id,
                flow=flow_name,
            )

        existing = await store.get_message(message_id)
        if existing is not None and existing.status is not DeliveryStatus.PENDING:
            # Recorded before a crash, but the step was not closed: close it now.
            await self._close(step, run, flow, existing.status, existing, message_id)
            return
        if existing is not None and not self._idempotent(recipient, via):
            # A worker died while a provider may have been taking this message, and no
            # provider of the chain takes an idempotency key: never send it blindly again.
            why = (
                "a worker stopped while this message was being sent; "
                "it was not sent again (the provider takes no idempotency key)"
            )
            chain = self._client._router.chain(recipient, via)
            await record(_unknown(message_id, chain[0] if chain else None, why))
            if flow is not None:
                await self._after(run, flow, step.index)
            await store.update_step(
                step.id, StepState.UNKNOWN, now=self._now, message_id=message_id, detail=why
            )
            return
        if existing is None:
            await store.begin_message(
                message_id,
                now=self._now,
                recipient_id=recipient.id,
                category=message.category,
                run_id=run["id"],
                step_id=step.id,
                flow=flow_name,
            )
        # The lease is renewed just before the send: a long queue of steps claimed together
        # never lets another worker take this one while it is being sent.
        await store.update_step(
            step.id,
            StepState.CLAIMED,
            now=self._now,
            message_id=message_id,
            lease_until=self._now + self.lease,
        )
        try:
            result = await self._client._deliver(
                message_id,
                message,
                recipient,
                via,
                run_id=run["id"],
                step_id=step.id,
                flow=flow_name,
                schedule=False,
            )
        except AnysendError as exc:
            # Bad input found only now (a template broken since the run started, an address
            # that no longer validates): nothing was sent. The message ends failed with the
            # reason, and the steps after it react as to any failure.
            detail = f"{type(exc).__name__}: {exc}"
            logger.warning("step %s failed before sending: %s", step.id, detail)
            await record(SendResult(message_id=message_id, status=DeliveryStatus.FAILED))
            if flow is not None and step.index >= 0:
                await self._after(run, flow, step.index)
            await store.update_step(
                step.id, StepState.FAILED, now=self._now, message_id=message_id, detail=detail
            )
            return
        stored = await store.get_message(message_id)
        await self._close(step, run, flow, result.status, stored, message_id)

    def _idempotent(self, recipient: Recipient, via: Sequence[Channel | str] | None) -> bool:
        router = self._client._router
        providers = [p for c in router.chain(recipient, via) for p in router.by_channel.get(c, [])]
        return bool(providers) and all(p.capabilities.idempotency for p in providers)

    async def _close(
        self,
        step: StoredStep,
        run: dict[str, Any],
        flow: Flow | None,
        status: DeliveryStatus,
        stored: StoredMessage | None,
        message_id: str,
    ) -> None:
        if stored is not None and _failed(stored):
            skipped = bool(stored.attempts) and all(
                a.outcome is AttemptOutcome.SKIPPED for a in stored.attempts
            )
            state = StepState.SKIPPED if skipped else StepState.FAILED
            detail = stored.reason
        elif status is DeliveryStatus.UNKNOWN:
            state, detail = StepState.UNKNOWN, "the provider's answer was unclear"
        else:
            state, detail = StepState.SENT, None
        if flow is not None and step.index >= 0:
            await self._after(run, flow, step.index)
        await self._store.update_step(
            step.id, state, now=self._now, message_id=message_id, detail=detail
        )

    # -- arming the steps that follow ---------------------------------------------------------

    async def _after(self, run: dict[str, Any], flow: Flow, index: int) -> None:
        """Arm the waiting steps whose condition looks at step ``index``, which just ended."""
        steps = {s.index: s for s in await self._store.run_steps(run["id"])}
        message = await self._ref_message(run["id"], index)
        for later, spec in enumerate(flow.steps):
            if later <= index or flow.reference(later) != index:
                continue
            stored = steps.get(later)
            if stored is None or stored.state is not StepState.WAITING:
                continue
            await self._arm(run, flow, later, spec, stored, message)

    async def _arm(
        self,
        run: dict[str, Any],
        flow: Flow,
        index: int,
        spec: Step,
        stored: StoredStep,
        message: StoredMessage | None,
    ) -> None:
        now = self._now
        condition = spec.when
        ref = flow.reference(index)
        if message is None and not isinstance(condition, Always):
            await self._skip(run, flow, stored, f"step {ref} sent nothing")
            return
        due: datetime | None = None
        if isinstance(condition, Always):
            due = now + spec.delay
        elif message is None:  # pragma: no cover - handled above
            return
        elif isinstance(condition, Failed):
            if _failed(message):
                due = now + spec.delay
            elif message.delivered_at is not None:
                await self._skip(run, flow, stored, f"step {ref} was delivered")
                return
            elif condition.within is not None and stored.due_at is None:
                due = message.created_at + condition.within  # then it gives up
        elif isinstance(condition, AfterDelivery):
            if message.delivered_at is not None:
                due = message.delivered_at + condition.after + spec.delay
            elif _failed(message):
                await self._skip(run, flow, stored, f"step {ref} failed")
                return
        else:
            assert isinstance(condition, _WITHIN)
            if _failed(message):
                due = now + spec.delay
            elif stored.due_at is None:
                due = message.created_at + condition.within + spec.delay
            elif condition.wait_for_final and _final(message):
                due = now + spec.delay
        if due is not None:
            await self._store.update_step(stored.id, StepState.PENDING, now=now, due_at=due)

    async def on_ingested(self, outcome: IngestOutcome) -> None:
        """React to news about a message: arm or settle the steps that wait on it."""
        if outcome.message_id is None or not (outcome.changed or outcome.first_event):
            return
        message = await self._store.get_message(outcome.message_id)
        if message is None or message.run_id is None:
            return
        run = await self._store.get_run(message.run_id)
        if run is None or run["state"] != "active" or run["plan"]["kind"] != "flow":
            return
        flow = Flow.model_validate(run["plan"]["flow"])
        steps = await self._store.run_steps(run["id"])
        ref = next((s.index for s in steps if s.message_id == outcome.message_id), None)
        if ref is None or ref < 0:
            return
        by_index = {s.index: s for s in steps}
        for later, spec in enumerate(flow.steps):
            if later <= ref or flow.reference(later) != ref:
                continue
            stored = by_index.get(later)
            if stored is None or stored.state.is_final or stored.state is StepState.CLAIMED:
                continue
            condition = spec.when
            if stored.state is StepState.PENDING:
                # A failure makes a "not delivered/read/opened within" (or a "failed
                # within") step due at once; its guards are still evaluated when it fires.
                if isinstance(condition, (*_WITHIN, Failed)) and _failed(message):
                    due = min(stored.due_at or self._now, self._now + spec.delay)
                    await self._store.update_step(
                        stored.id, StepState.PENDING, now=self._now, due_at=due
                    )
                continue
            await self._arm(run, flow, later, spec, stored, message)
