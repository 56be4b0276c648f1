"""The flow engine: starting runs, firing due steps, and reacting to statuses and events.

This file is the source of truth; ``anysend/_sync/_flows.py`` is generated from it.

Every decision is taken when a step fires, from what the store says then: the run may have
been canceled, a business event may make the step unnecessary, the earlier message may have
been opened. Each step is claimed atomically before it runs; its message id is derived from the
step's id, so a step that a dead worker left half-done is recognised when it is claimed again.
A step is closed only after the steps that follow it are armed (arming is idempotent; both go
to the store in one ``update_steps`` call, arming first): a worker that dies in between leaves
the step claimed, and whoever claims it again finishes both.

``run_due`` claims steps in batches and runs the steps that fire together, in a few store
transactions per batch rather than a dozen per step: every message recorded ``pending``, the
sends, every result recorded, then the following steps armed and the steps closed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from anysend._async._store import AsyncStore
from anysend._exceptions import (
    AnysendError,
    ConfigurationError,
    ErrorCategory,
    InvalidRecipientError,
)
from anysend._flows import (
    AfterDelivery,
    Always,
    AsyncConcurrently,
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
from anysend._records import (
    IngestOutcome,
    PendingMessage,
    ResultToSave,
    StepState,
    StepUpdate,
    StoredMessage,
    StoredStep,
)
from anysend._results import Attempt, AttemptOutcome, ErrorInfo, SendResult
from anysend._status import DeliveryStatus
from anysend._validation import normalize_phone, trust_e164

if TYPE_CHECKING:
    from anysend._async._client import AsyncClient

__all__ = ["AsyncFlowEngine", "step_message_id"]

_NAMESPACE = uuid.UUID("6f1d3c2e-8a7b-4e55-9d41-2b0c6a1e9f30")
_NAMESPACE_BYTES = _NAMESPACE.bytes
_SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)
#: While a batch sends, its leases are renewed this often at least (a tenth of the lease when
#: that is shorter), so every send starts with nearly a whole lease ahead of it.
_RENEW = timedelta(seconds=1)
#: Validated flows kept: versions per flow name, and flow names.
_FLOW_VERSIONS = 8
_FLOW_NAMES = 256


def step_message_id(step_id: str) -> str:
    """The message id of a step's message: the same however often the step is claimed.

    ``uuid.uuid5(namespace, step_id).hex``, computed without building ``UUID`` objects.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + step_id.encode()).digest()[:16])  # noqa: S324
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return digest.hex()


def _failed(message: StoredMessage) -> bool:
    """Nothing reached the person: refused, bounced, expired, or every channel skipped."""
    return _nothing_reached(message.status, message.attempts)


def _nothing_reached(status: DeliveryStatus, attempts: Sequence[Attempt]) -> bool:
    if status is DeliveryStatus.PENDING or status is DeliveryStatus.UNKNOWN:
        return False
    return status.is_terminal or not any(a.outcome is AttemptOutcome.SENT for a in attempts)


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
        #: How many due steps run_due claims (and runs together) at a time.
        self.batch = 100
        #: How many of a batch's messages an AsyncClient sends at once (a Client: one).
        self.concurrency = 10
        self._flow_cache: dict[str, list[tuple[Any, Flow]]] = {}
        self._idempotent_chains: dict[tuple[Channel | str, ...], bool] = {}

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

    def _check_phone(self, plan: dict[str, Any]) -> None:
        """Keep a snapshot's phone number in E.164, as a send would normalise it now.

        The plan then says so (``"e164": true``), and the step's send trusts the number
        instead of parsing it again (``trust_e164``). A number that does not validate is kept
        as given, to fail (with its reason) when the step fires, as it would have.
        """
        snapshot = plan["to"]
        phone = snapshot.get("phone") if snapshot is not None else None
        if not phone:
            return
        try:
            snapshot["phone"] = normalize_phone(phone, self._client._router.default_region)
        except InvalidRecipientError:
            return
        plan["e164"] = True

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
        self._check_phone(plan)
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
        self._check_phone(plan)
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
        """Claim and run the due steps (also those they make due); returns how many ran.

        Steps are claimed ``batch`` at a time and run together (see :meth:`_run_batch`).
        """
        total = 0
        while total < limit:
            claimed = self._now
            steps = await self._store.claim_due(
                now=claimed,
                worker=self.worker,
                lease=self.lease,
                limit=min(limit - total, self.batch),
            )
            if not steps:
                break
            total += len(steps)
            await self._run_batch(steps, _Lease(claimed))
        return total

    async def _run_batch(self, steps: list[StoredStep], lease: _Lease) -> None:
        """Run claimed steps: decide each, then send those that fire together.

        The runs and any messages an earlier claim began are read in one go; a step that
        does not fire (canceled, skipped, waiting, put back) is settled at once, and the
        ones that fire go to :meth:`_fire` as one batch.
        """
        store = self._store
        runs = await store.get_runs([s.run_id for s in steps])
        ids = [step_message_id(s.id) for s in steps]
        begun = await store.get_messages(ids)
        jobs: list[_Job] = []
        decided = 0
        try:
            for step, message_id in zip(steps, ids, strict=True):
                decided += 1
                try:
                    job = await self._decide(
                        step, runs.get(step.run_id), begun.get(message_id), lease, message_id
                    )
                except AnysendError as exc:
                    # Bad input found only now (a template broken since the run started):
                    # the step ends failed with the reason, never silently, and the steps
                    # after it are armed as after any step that sent nothing.
                    logger.warning("step %s failed: %s", step.id, exc)
                    await self._failed_step(step, f"{type(exc).__name__}: {exc}")
                    continue
                if job is not None:
                    jobs.append(job)
            if jobs:
                await self._fire(jobs, lease)
        except BaseException:
            # Stopped (a bug, Ctrl-C, a canceled task): the steps nothing was done for yet go
            # back to pending at once, rather than wait for their lease to run out.
            untouched = [s.id for s in steps[decided:]]
            untouched += [job.step.id for job in jobs if not job.entered]
            await self._put_back(untouched)
            raise

    async def _put_back(self, step_ids: list[str]) -> None:
        if not step_ids:
            return
        try:
            await self._store.update_steps(
                [StepUpdate(step_id, StepState.PENDING) for step_id in step_ids], now=self._now
            )
        except Exception:  # the first exception is the one to report
            logger.exception("could not put back the steps of an interrupted batch")

    async def _failed_step(self, step: StoredStep, detail: str) -> None:
        await self._orphan(step)
        updates: list[StepUpdate] = []
        run = await self._store.get_run(step.run_id)
        if run is not None and run["plan"]["kind"] == "flow" and step.index >= 0:
            await self._after(run, self._flow(run), step.index, updates)
        updates.append(StepUpdate(step.id, StepState.FAILED, detail=detail))
        await self._store.update_steps(updates, now=self._now)

    async def _orphan(
        self, step: StoredStep, begun: StoredMessage | None = None, *, known: bool = False
    ) -> None:
        """Settle a message an earlier claim began but never finished.

        Called when the step will not send it now (canceled, skipped): it may have gone out,
        so it is recorded as ``unknown``. ``known``: ``begun`` is what the store holds for
        the step's message (read already), else it is read here.
        """
        message_id = step_message_id(step.id)
        stored = begun if known else await self._store.get_message(message_id)
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

    async def _settle(
        self, step: StoredStep, begun: StoredMessage | None, state: StepState, detail: str | None
    ) -> None:
        """End a step that does not send (failed, canceled, skipped with no followers)."""
        await self._orphan(step, begun, known=True)
        await self._store.update_step(step.id, state, now=self._now, detail=detail)

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
            # One step per claim: should_stop is honoured between steps, and a crash leaves
            # at most one message in doubt (a batch of run_due's sent together may leave
            # the batch, to be sent again with the same idempotency keys).
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

    def _flow(self, run: dict[str, Any]) -> Flow:
        """The run's flow, validated once per version (not once per step)."""
        data = run["plan"]["flow"]
        versions = self._flow_cache.setdefault(run["flow"], [])
        for known, flow in versions:
            if known == data:  # the very flow the run stored, field for field
                return flow
        flow = Flow.model_validate(data)
        versions.append((data, flow))
        del versions[:-_FLOW_VERSIONS]
        if len(self._flow_cache) > _FLOW_NAMES:
            del self._flow_cache[next(iter(self._flow_cache))]
        return flow

    async def _decide(
        self,
        step: StoredStep,
        run: dict[str, Any] | None,
        begun: StoredMessage | None,
        lease: _Lease,
        message_id: str,
    ) -> _Job | None:
        """What a claimed step does: the send to make, or ``None`` when it was settled here."""
        if run is None:
            await self._settle(step, begun, StepState.FAILED, "its run is gone")
            return None
        if run["state"] == "canceled":
            await self._settle(step, begun, StepState.CANCELED, run["detail"])
            return None
        plan = run["plan"]
        if step.index == -1:
            await self._run_digest(step, run, begun, lease, message_id)
            return None
        if plan["kind"] == "message":
            message = Message.model_validate_json(plan["message"])
            target = await self._recipient(run)
            if target is None:
                await self._settle(step, begun, StepState.SKIPPED, "the profile is gone")
                return None
            later = self._client._quiet_window(message, target)
            if later is not None:  # a send_at that falls in the recipient's quiet hours
                await self._store.update_step(
                    step.id, StepState.PENDING, now=self._now, due_at=later, detail="quiet hours"
                )
                return None
            return _Job(step, run, message, target, plan["via"], None, begun, message_id)
        flow = self._flow(run)
        recipient_id = run["recipient_id"]
        created = run["created_at"]
        spec = flow.steps[step.index]
        if (
            recipient_id
            and flow.cancel_on
            and await self._store.has_business_event(recipient_id, flow.cancel_on, created)
        ):
            await self._orphan(step, begun, known=True)
            await self._store.cancel_runs(
                now=self._now, run_id=run["id"], reason="a cancel_on event was recorded"
            )
            await self._store.update_step(
                step.id, StepState.CANCELED, now=self._now, detail="a cancel_on event was recorded"
            )
            return None
        if (
            recipient_id
            and spec.until
            and await self._store.has_business_event(recipient_id, spec.until, created)
        ):
            await self._skip_now(run, flow, step, f"until: {', '.join(spec.until)} happened", begun)
            return None
        ref = flow.reference(step.index)
        if ref is not None:
            verdict = await self._check(run, flow, step.index, ref)
            if verdict == "wait":
                await self._store.update_step(step.id, StepState.WAITING, now=self._now)
                return None
            if verdict != "fire":
                await self._skip_now(run, flow, step, verdict, begun)
                return None
        recipient = await self._recipient(run)
        if recipient is None:
            await self._skip_now(run, flow, step, "the profile is gone", begun)
            return None
        message = self._message(flow, spec, plan["data"])
        later = self._client._quiet_window(message, recipient)
        if later is not None:
            await self._store.update_step(
                step.id, StepState.PENDING, now=self._now, due_at=later, detail="quiet hours"
            )
            return None
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
            return None
        return _Job(step, run, message, recipient, list(spec.via), flow, begun, message_id)

    async def _run_digest(
        self,
        step: StoredStep,
        run: dict[str, Any],
        begun: StoredMessage | None,
        lease: _Lease,
        message_id: str,
    ) -> None:
        """Send a digest: one message with the items of every run that is not canceled."""
        items: list[dict[str, Any]] = []
        source: dict[str, Any] | None = None
        contributors = await self._store.get_runs([item["run"] for item in step.items])
        for item in step.items:
            contributor = contributors.get(item["run"])
            if contributor is None or contributor["state"] == "canceled":
                continue  # that run was canceled (or pruned): its item goes with it
            items.append(item)
            source = source or contributor
        if source is None:
            await self._settle(step, begun, StepState.SKIPPED, "every item's run was canceled")
            return
        source_flow = self._flow(source)
        spec = source_flow.steps[items[0]["step"]]
        recipient = await self._recipient(source)
        if recipient is None:
            await self._settle(step, begun, StepState.SKIPPED, "the profile is gone")
            return
        data = {"items": [item["data"] for item in items], "count": len(items)}
        message = self._message(source_flow, spec, data)
        later = self._client._quiet_window(message, recipient)
        if later is not None:
            await self._store.update_step(
                step.id, StepState.PENDING, now=self._now, due_at=later, detail="quiet hours"
            )
            return
        job = _Job(step, run, message, recipient, list(spec.via), source_flow, begun, message_id)
        await self._fire([job], lease)
        digest = next(s for s in await self._store.run_steps(run["id"]) if s.id == step.id)
        updates: list[StepUpdate] = []
        for item in items:
            contributor = await self._store.get_run(item["run"])
            if contributor is None or contributor["state"] != "active":
                continue
            await self._after(contributor, self._flow(contributor), item["step"], updates)
            updates.append(
                StepUpdate(
                    f"{item['run']}.{item['step']}",
                    digest.state,
                    message_id=digest.message_id,
                    detail=f"sent in digest {step.id}",
                )
            )
        await self._store.update_steps(updates, now=self._now)

    @staticmethod
    def _message(flow: Flow, spec: Step, data: Mapping[str, Any]) -> Message:
        merged = {**data, **spec.data}
        if spec.message is not None:
            update: dict[str, Any] = {}
            if merged:
                update["data"] = {**merged, **spec.message.data}
            if spec.message.category is None and flow.category is not None:
                update["category"] = flow.category
            # Messages are immutable: with nothing to change, the step's own one goes.
            return spec.message.model_copy(update=update) if update else spec.message
        return Message(template=spec.template, data=merged, category=flow.category)

    async def _recipient(self, run: dict[str, Any]) -> Recipient | None:
        plan = run["plan"]
        snapshot = plan.get("to")
        if snapshot is not None:
            if plan.get("e164") and snapshot.get("phone"):
                trust_e164(snapshot["phone"])  # normalised when the run started
            return Recipient.model_validate(snapshot)
        return await self._store.get_profile(run["recipient_id"])

    async def _check(self, run: dict[str, Any], flow: Flow, index: int, ref: int) -> str:
        """``"fire"``, ``"wait"``, or why the step is skipped, from the earlier step's fate."""
        condition = flow.steps[index].when
        if isinstance(condition, Always):
            return "fire"
        message = await self._ref_message(await self._store.run_steps(run["id"]), ref)
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

    async def _ref_message(self, steps: Sequence[StoredStep], ref: int) -> StoredMessage | None:
        ref_step = next((s for s in steps if s.index == ref), None)
        if ref_step is None:
            return None
        # A worker may have recorded the message and died before the step named it.
        return await self._store.get_message(ref_step.message_id or step_message_id(ref_step.id))

    async def _skip_now(
        self,
        run: dict[str, Any],
        flow: Flow,
        step: StoredStep,
        why: str,
        begun: StoredMessage | None,
    ) -> None:
        """Skip a claimed step that will not send: arm what follows it, then close it."""
        await self._orphan(step, begun, known=True)
        updates: list[StepUpdate] = []
        await self._after(run, flow, step.index, updates)
        updates.append(StepUpdate(step.id, StepState.SKIPPED, detail=why))
        await self._store.update_steps(updates, now=self._now)

    async def _skip(
        self,
        run: dict[str, Any],
        flow: Flow,
        step: StoredStep,
        why: str,
        updates: list[StepUpdate],
    ) -> None:
        """Skip a waiting step: its followers' arming, then the skip, go to ``updates``."""
        await self._orphan(step)
        await self._after(run, flow, step.index, updates)
        updates.append(StepUpdate(step.id, StepState.SKIPPED, detail=why))

    async def _fire(self, jobs: list[_Job], lease: _Lease) -> None:
        """Send steps' messages exactly once, even when a worker died mid-send before.

        Steps whose every provider takes idempotency keys go together: every message is
        recorded ``pending`` (one transaction), then sent, then every result recorded (one
        transaction), and last the steps that follow them are armed and the steps closed
        (one transaction). A process killed meanwhile leaves the batch's unrecorded messages
        in doubt, and sending them again with the same keys is harmless.

        The others go one by one (each recorded ``pending``, sent, recorded), so that a kill
        leaves at most the message in the air in doubt (with an AsyncClient: at most
        ``concurrency`` of them): it will not be sent again. A step whose category has a
        frequency cap goes alone too, after the others (the cap counts what went before).
        """
        lease.jobs = list(jobs)
        together: list[_Job] = []
        alone: list[_Job] = []
        capped: list[_Job] = []
        for job in jobs:
            policy = self._client._policy(job.message.category)
            if policy.cap is not None and not policy.transactional and job.recipient.id:
                capped.append(job)
            elif self._idempotent(job.recipient, job.via):
                together.append(job)
            else:
                alone.append(job)
        if together:
            await self._fire_batch(together, lease, capped=False)
        if alone:
            await AsyncConcurrently(self.concurrency).run(
                [functools.partial(self._fire_batch, [job], lease, capped=False) for job in alone]
            )
        for job in capped:
            await self._fire_batch([job], lease, capped=True)

    async def _fire_batch(self, jobs: list[_Job], lease: _Lease, *, capped: bool) -> None:
        store = self._store
        client = self._client
        now = self._now
        sends: list[_Job] = []
        for job in jobs:
            job.entered = True
            begun = job.begun
            if begun is not None and begun.status is not DeliveryStatus.PENDING:
                # Recorded before a crash, but the step was not closed: close it now.
                job.stored = begun
                job.status = begun.status
            elif begun is not None and not self._idempotent(job.recipient, job.via):
                # A worker died while a provider may have been taking this message, and no
                # provider of the chain takes an idempotency key: never send it blindly again.
                why = (
                    "a worker stopped while this message was being sent; "
                    "it was not sent again (the provider takes no idempotency key)"
                )
                chain = client._router.chain(job.recipient, job.via)
                job.result = _unknown(job.message_id, chain[0] if chain else None, why)
                job.close = (StepState.UNKNOWN, why)
            else:
                sends.append(job)
        if sends:
            await store.begin_messages(
                [job.pending() for job in sends if job.begun is None], now=now
            )
            held = len(sends) > 1
            if held:
                # One read tells which of the batch's addresses are blocked (and which
                # providers are benched), rather than two reads per send.
                router = self._client._router
                await store.hold_reads(
                    [
                        (channel, address)
                        for job in sends
                        for channel in router.chain(job.recipient, job.via)
                        for address in router._raw_addresses(job.recipient, channel)
                        if isinstance(address, str) and address
                    ]
                )
            try:
                await AsyncConcurrently(1 if capped else self.concurrency).run(
                    [functools.partial(self._send, job, lease, capped=capped) for job in sends]
                )
            except BaseException:
                await self._interrupted(jobs, sends)
                raise
            finally:
                if held:
                    await store.release_reads()
        await self._record(jobs)
        finished = {id(job) for job in jobs}
        lease.jobs = [job for job in lease.jobs if id(job) not in finished]

    async def _interrupted(self, jobs: list[_Job], sends: list[_Job]) -> None:
        """A batch stopped by an exception (a bug, Ctrl-C, a canceled task): tidy up.

        What was sent is recorded and closed; the steps whose send had not started go back
        to ``pending`` with no message begun, so their next claim sends them as usual. The
        send in progress stays as a crash leaves it (``pending``, in doubt). A process
        killed outright does none of this: then every message of the batch not recorded
        yet is in doubt when its step is claimed again.
        """
        try:
            done = [job for job in jobs if job.result is not None or job.stored is not None]
            await self._record(done)
            waiting = [job for job in sends if not job.handed]
            if waiting:
                await self._store.abandon_messages(
                    [job.message_id for job in waiting if job.begun is None]
                )
                await self._store.update_steps(
                    [StepUpdate(job.step.id, StepState.PENDING) for job in waiting],
                    now=self._now,
                )
        except Exception:  # the first exception is the one to report
            logger.exception("could not record what an interrupted batch of steps did")

    async def _renew(self, lease: _Lease) -> None:
        """Renew the claims of the batch's steps that are not closed yet."""
        now = self._now
        until = now + self.lease
        await self._store.update_steps(
            [StepUpdate(job.step.id, StepState.CLAIMED, lease_until=until) for job in lease.jobs],
            now=now,
        )
        lease.since = now

    async def _send(self, job: _Job, lease: _Lease, *, capped: bool) -> None:
        # Every send starts with nearly a whole lease ahead: the claims of the batch are
        # renewed whenever a tenth of the lease (at most a second) went by since they were
        # taken or last renewed.
        if self._now - lease.since >= min(self.lease / 10, _RENEW):
            lease.since = self._now  # one renewal at a time, however many sends wait
            await self._renew(lease)
        job.handed = True
        client = self._client
        try:
            if capped:
                # Recorded by the client, so that the next capped step counts it.
                job.result = await client._deliver(
                    job.message_id,
                    job.message,
                    job.recipient,
                    job.via,
                    run_id=job.run["id"],
                    step_id=job.step.id,
                    flow=job.flow_name,
                    schedule=False,
                )
                job.recorded = True
            else:
                # No cap applies (what _deliver would check): recorded with the batch.
                job.result = await client._send(job.message_id, job.message, job.recipient, job.via)
        except AnysendError as exc:
            # Bad input found only now (a template broken since the run started, an address
            # that no longer validates): nothing was sent. The message ends failed with the
            # reason, and the steps after it react as to any failure.
            detail = f"{type(exc).__name__}: {exc}"
            logger.warning("step %s failed before sending: %s", job.step.id, detail)
            job.result = SendResult(message_id=job.message_id, status=DeliveryStatus.FAILED)
            job.recorded = False
            job.close = (StepState.FAILED, detail)

    async def _record(self, jobs: list[_Job]) -> None:
        """Record the batch's results, then arm what follows each step and close the steps."""
        store = self._store
        unsaved = [job for job in jobs if job.result is not None and not job.recorded]
        if unsaved:
            statuses = await store.save_results([job.to_save() for job in unsaved], now=self._now)
            for job, status in zip(unsaved, statuses, strict=True):
                job.status = status
        for job in jobs:
            if job.status is None and job.result is not None:
                job.status = job.result.status  # recorded by the client (capped)
        # What a step's close and its followers need of its message: read back only when
        # the message failed (the reason) or has followers (their conditions).
        wanted = [
            job
            for job in jobs
            if job.stored is None
            and job.close is None
            and (job.recorded or job.has_followers() or job.nothing_reached())
        ]
        if wanted:
            stored = await store.get_messages([job.message_id for job in wanted])
            for job in wanted:
                job.stored = stored.get(job.message_id)
        updates: list[StepUpdate] = []
        for job in jobs:
            state, detail = job.close if job.close is not None else _closing(job)
            if job.flow is not None and job.has_followers():
                # Its followers first: the step is closed only once they are armed.
                if job.close is None:
                    await self._after(
                        job.run, job.flow, job.step.index, updates, job.stored, known=True
                    )
                else:
                    await self._after(job.run, job.flow, job.step.index, updates)
            updates.append(StepUpdate(job.step.id, state, message_id=job.message_id, detail=detail))
        await store.update_steps(updates, now=self._now)

    def _idempotent(self, recipient: Recipient, via: Sequence[Channel | str] | None) -> bool:
        """Whether every provider of the chain takes idempotency keys."""
        key = tuple(via) if via is not None else None
        known = self._idempotent_chains.get(key) if key is not None else None
        if known is not None:
            return known  # a given chain does not depend on the recipient
        router = self._client._router
        providers = [p for c in router.chain(recipient, via) for p in router.by_channel.get(c, [])]
        answer = bool(providers) and all(p.capabilities.idempotency for p in providers)
        if key is not None:
            self._idempotent_chains[key] = answer
        return answer

    # -- arming the steps that follow ---------------------------------------------------------

    async def _after(
        self,
        run: dict[str, Any],
        flow: Flow,
        index: int,
        updates: list[StepUpdate],
        message: StoredMessage | None = None,
        *,
        known: bool = False,
    ) -> None:
        """Arm the waiting steps whose condition looks at step ``index``, which just ended.

        The changes go to ``updates`` (the caller writes them before it closes the step).
        ``known``: ``message`` is step ``index``'s message as stored (else it is read).
        """
        followers = _followers(flow, index)
        if not followers:
            return  # nothing looks at this step: nothing to read
        steps = await self._store.run_steps(run["id"])
        if not known:
            message = await self._ref_message(steps, index)
        by_index = {s.index: s for s in steps}
        for later in followers:
            stored = by_index.get(later)
            if stored is None or stored.state is not StepState.WAITING:
                continue
            await self._arm(run, flow, later, flow.steps[later], stored, message, updates)

    async def _arm(
        self,
        run: dict[str, Any],
        flow: Flow,
        index: int,
        spec: Step,
        stored: StoredStep,
        message: StoredMessage | None,
        updates: list[StepUpdate],
    ) -> None:
        now = self._now
        condition = spec.when
        ref = flow.reference(index)
        if message is None and not isinstance(condition, Always):
            await self._skip(run, flow, stored, f"step {ref} sent nothing", updates)
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
                await self._skip(run, flow, stored, f"step {ref} was delivered", updates)
                return
            elif condition.within is not None and stored.due_at is None:
                due = message.created_at + condition.within  # then it gives up
        elif isinstance(condition, AfterDelivery):
            if message.delivered_at is not None:
                due = message.delivered_at + condition.after + spec.delay
            elif _failed(message):
                await self._skip(run, flow, stored, f"step {ref} failed", updates)
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
            updates.append(StepUpdate(stored.id, StepState.PENDING, due_at=due))

    async def on_ingested(self, outcome: IngestOutcome) -> None:
        """React to news about a message: arm or settle the steps that wait on it."""
        if outcome.message_id is None or not (outcome.changed or outcome.first_event):
            return
        if outcome.flow_waits is False:
            return  # the store says no step of its run waits (or it belongs to no run)
        message = await self._store.get_message(outcome.message_id)
        if message is None or message.run_id is None:
            return
        run = await self._store.get_run(message.run_id)
        if run is None or run["state"] != "active" or run["plan"]["kind"] != "flow":
            return
        flow = self._flow(run)
        steps = await self._store.run_steps(run["id"])
        # The step names its message once closed; while it sends, its id is the derived one.
        message_id = outcome.message_id
        ref = next(
            (
                s.index
                for s in steps
                if s.message_id == message_id
                or (s.message_id is None and step_message_id(s.id) == message_id)
            ),
            None,
        )
        if ref is None or ref < 0:
            return
        by_index = {s.index: s for s in steps}
        updates: list[StepUpdate] = []
        for later in _followers(flow, ref):
            spec = flow.steps[later]
            stored = by_index.get(later)
            if stored is None or stored.state.is_final or stored.state is StepState.CLAIMED:
                continue
            condition = spec.when
            if stored.state is StepState.PENDING:
                # A failure makes a "not delivered/read/opened within" (or a "failed
                # within") step due at once; its guards are still evaluated when it fires.
                if isinstance(condition, (*_WITHIN, Failed)) and _failed(message):
                    due = min(stored.due_at or self._now, self._now + spec.delay)
                    updates.append(StepUpdate(stored.id, StepState.PENDING, due_at=due))
                continue
            await self._arm(run, flow, later, spec, stored, message, updates)
        await self._store.update_steps(updates, now=self._now)


def _followers(flow: Flow, index: int) -> list[int]:
    """The steps whose condition looks at step ``index``."""
    if index < 0:
        return []
    return [later for later in range(index + 1, len(flow.steps)) if flow.reference(later) == index]


def _closing(job: _Job) -> tuple[StepState, str | None]:
    """A sent step's final state and detail, from its message as stored."""
    assert job.status is not None
    stored = job.stored
    if job.nothing_reached():
        attempts = stored.attempts if stored is not None else ()
        skipped = bool(attempts) and all(a.outcome is AttemptOutcome.SKIPPED for a in attempts)
        return (StepState.SKIPPED if skipped else StepState.FAILED), (
            stored.reason if stored is not None else None
        )
    # The send's own answer (the stored status, for a send recorded before a crash).
    answer = job.result.status if job.result is not None else job.status
    if answer is DeliveryStatus.UNKNOWN:
        return StepState.UNKNOWN, "the provider's answer was unclear"
    return StepState.SENT, None


class _Lease:
    """When the claims of a batch were taken (or last renewed), and its open steps."""

    __slots__ = ("jobs", "since")

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.jobs: list[_Job] = []


class _Job:
    """A claimed step that fires: what it sends, then what came of it."""

    __slots__ = (
        "begun",
        "close",
        "entered",
        "flow",
        "handed",
        "message",
        "message_id",
        "recipient",
        "recorded",
        "result",
        "run",
        "status",
        "step",
        "stored",
        "via",
    )

    def __init__(
        self,
        step: StoredStep,
        run: dict[str, Any],
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | None,
        flow: Flow | None,
        begun: StoredMessage | None,
        message_id: str,
    ) -> None:
        self.step = step
        self.run = run
        self.message = message
        self.recipient = recipient
        self.via = via
        self.flow = flow
        self.begun = begun
        self.message_id = message_id  # step_message_id(step.id)
        self.result: SendResult | None = None
        self.recorded = False  # the result is in the store already
        self.status: DeliveryStatus | None = None  # the message's status once recorded
        self.stored: StoredMessage | None = None  # the message as stored, when read
        self.close: tuple[StepState, str | None] | None = None  # a state decided already
        self.handed = False  # its send started
        self.entered = False  # _fire_batch took it (and tidies up after it if stopped)

    @property
    def flow_name(self) -> str | None:
        return self.flow.name if self.flow is not None else None

    def has_followers(self) -> bool:
        flow = self.flow
        if flow is None or self.step.index >= len(flow.steps) - 1:
            return False  # the last step (or a digest, or a single message): none
        return bool(_followers(flow, self.step.index))

    def nothing_reached(self) -> bool:
        """The message failed (``_failed`` of the stored message, from what is known)."""
        if self.stored is not None:
            return _failed(self.stored)
        assert self.status is not None
        assert self.result is not None
        return _nothing_reached(self.status, self.result.attempts)

    def pending(self) -> PendingMessage:
        return PendingMessage(
            self.message_id,
            self.recipient.id,
            self.message.category,
            self.run["id"],
            self.step.id,
            self.flow_name,
        )

    def to_save(self) -> ResultToSave:
        assert self.result is not None
        return ResultToSave(
            self.result,
            self.recipient.id,
            self.message.category,
            self.run["id"],
            self.step.id,
            self.flow_name,
        )
