"""Flows through AsyncClient with scripted providers on a virtual clock (tests/_sync is generated).

Every condition, the digest, cancellation, guards evaluated when a step fires, and the two
kinds of fallback. Callbacks come from ``ScriptedProvider.due_callbacks()`` and go through
``client.webhooks.handle`` exactly as a web endpoint would pass them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta, timezone
from typing import Any

import pytest

from anysend import (
    AfterDelivery,
    AsyncClient,
    AsyncSQLiteStore,
    Channel,
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    Digest,
    ErrorCategory,
    Failed,
    Flow,
    Message,
    NotDelivered,
    NotOpened,
    NotRead,
    OutboundMessage,
    Policy,
    QuietHours,
    Reason,
    Receipt,
    Recipient,
    SkipReason,
    Step,
    StepState,
    StoredMessage,
    StoredStep,
)
from anysend._async._flows import step_message_id
from anysend.testing import MemoryProvider, Script, ScriptedProvider, VirtualClock

pytestmark = pytest.mark.anyio

LEASE = timedelta(minutes=5)
START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
ANN = Recipient(
    id="ann",
    email="ann@example.com",
    phone="+48600700800",
    chat_ids={"telegram": "4242"},
    timezone="Europe/Warsaw",
)
TEMPLATES = {
    "hello/email.subject.txt": "Hello {{ name }}",
    "hello/email.txt": "Hello {{ name }}",
    "hello/sms.txt": "Hello {{ name }} by SMS",
    "hello/chat.txt": "Hello {{ name }} on chat",
    "digest/email.subject.txt": "{{ count }} updates",
    "digest/email.txt": "{% for i in items %}{{ i.what }};{% endfor %}",
}


class World:
    """A client on a memory store with one scripted provider per channel."""

    def __init__(self, store: str = ":memory:", **client_options: Any) -> None:
        self.clock = VirtualClock(start=START)
        self.email = ScriptedProvider(channel="email", clock=self.clock, name="mail")
        self.sms = ScriptedProvider(channel="sms", clock=self.clock, name="text")
        self.chat = ScriptedProvider(channel="telegram", clock=self.clock, name="tg")
        self.client = AsyncClient(
            [self.email, self.sms, self.chat],
            templates=TEMPLATES,
            store=store,
            clock=self.clock,
            **client_options,
        )

    async def tick(self, delta: timedelta) -> int:
        """Advance time, deliver every due callback through the webhooks, run due steps."""
        self.clock.advance(delta)
        for provider in (self.email, self.sms, self.chat):
            for request in provider.due_callbacks():
                await self.client.webhooks.handle(provider.name, request)
        return await self.client.run_due()

    async def states(self, run_id: str) -> list[str]:
        assert self.client.store is not None
        return [s.state.value for s in await self.client.store.run_steps(run_id)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """A world on a SQLite memory store, then on PostgreSQL (a schema of its own)."""
    store = request.getfixturevalue("postgres_url") if request.param == "postgres" else ":memory:"
    w = World(store)
    async with w.client:
        yield w


def flow(*steps: Step, **options: Any) -> Flow:
    options.setdefault("name", "test")
    return Flow(steps=steps, **options)


DATA = {"name": "Ann"}


async def test_first_step_runs_when_due_and_once(world: World) -> None:
    f = flow(Step(via="email", template="hello", delay=timedelta(hours=1)))
    run_id = await world.client.start(f, to=ANN, data=DATA)
    assert await world.client.run_due() == 0
    assert await world.tick(timedelta(minutes=59)) == 0
    assert await world.tick(timedelta(minutes=1)) == 1
    assert await world.tick(timedelta(days=1)) == 0
    assert world.email.calls == 1
    assert await world.states(run_id) == ["sent"]
    assert world.email.messages[0].text == "Hello Ann"


async def test_not_delivered_within_fires_and_a_late_delivery_triggers_nothing(
    world: World,
) -> None:
    world.email.then(Script.accept(delivered=timedelta(minutes=30)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=NotDelivered(within=timedelta(minutes=10))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert await world.tick(timedelta(minutes=10)) == 1
    assert world.sms.calls == 1
    # The delivery comes after the fallback fired: recorded, nothing else happens.
    assert await world.tick(timedelta(minutes=30)) == 0
    assert world.sms.calls == 1
    history = await world.client.history("ann")
    assert ("status", "delivered") in [(h.kind, h.status and h.status.value) for h in history]
    assert await world.states(run_id) == ["sent", "sent"]


async def test_delivered_in_time_skips_the_fallback(world: World) -> None:
    world.email.then(Script.accept(delivered=timedelta(minutes=3)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=NotDelivered(within=timedelta(minutes=10))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.tick(timedelta(minutes=5))
    await world.tick(timedelta(minutes=5))
    assert world.sms.calls == 0
    assert await world.states(run_id) == ["sent", "skipped"]


async def test_a_failure_brings_a_not_delivered_step_forward(world: World) -> None:
    world.email.then(Script.accept(failed=timedelta(minutes=1), reason=Reason.INVALID_RECIPIENT))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=NotDelivered(within=timedelta(hours=6))),
    )
    await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert await world.tick(timedelta(minutes=1)) == 1  # not six hours later
    assert world.sms.calls == 1


async def test_wait_for_final_waits_for_the_final_status(world: World) -> None:
    world.email.then(Script.accept(sent=timedelta(minutes=1), delivered=timedelta(minutes=20)))
    f = flow(
        Step(via="email", template="hello"),
        Step(
            via="sms",
            template="hello",
            when=NotDelivered(within=timedelta(minutes=10), wait_for_final=True),
        ),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.tick(timedelta(minutes=10))
    assert await world.states(run_id) == ["sent", "waiting"]
    await world.tick(timedelta(minutes=10))  # delivered: the step settles as skipped
    await world.tick(timedelta(minutes=1))
    assert world.sms.calls == 0
    assert await world.states(run_id) == ["sent", "skipped"]


async def test_wait_for_final_fires_on_a_failure(world: World) -> None:
    world.email.then(Script.accept(sent=timedelta(minutes=1), failed=timedelta(minutes=20)))
    f = flow(
        Step(via="email", template="hello"),
        Step(
            via="sms",
            template="hello",
            when=NotDelivered(within=timedelta(minutes=10), wait_for_final=True),
        ),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.tick(timedelta(minutes=10))
    assert world.sms.calls == 0
    await world.tick(timedelta(minutes=10))
    assert world.sms.calls == 1
    assert await world.states(run_id) == ["sent", "sent"]


async def test_failed_condition(world: World) -> None:
    world.email.then(Script.reject(ErrorCategory.INVALID_RECIPIENT))
    world.sms.then(Script.accept(delivered=timedelta(minutes=1)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=Failed()),
        Step(via="telegram", template="hello", when=Failed()),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert await world.states(run_id) == ["failed", "sent", "waiting"]
    await world.tick(timedelta(minutes=1))  # the SMS was delivered: telegram is not needed
    assert await world.states(run_id) == ["failed", "sent", "skipped"]
    assert world.chat.calls == 0


async def test_after_delivery_and_not_read(world: World) -> None:
    world.email.then(Script.accept(delivered=timedelta(hours=1)))
    world.chat.then(Script.accept(delivered=timedelta(seconds=5)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="telegram", template="hello", when=AfterDelivery(after=timedelta(days=2))),
        Step(via="sms", template="hello", when=NotRead(within=timedelta(hours=1))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert await world.states(run_id) == ["sent", "waiting", "waiting"]
    await world.tick(timedelta(hours=1))
    assert await world.states(run_id) == ["sent", "pending", "waiting"]
    await world.tick(timedelta(days=2))
    assert world.chat.calls == 1
    await world.tick(timedelta(hours=1))  # delivered but never read: SMS
    assert world.sms.calls == 1
    assert await world.states(run_id) == ["sent", "sent", "sent"]


async def test_after_delivery_is_skipped_when_the_message_fails(world: World) -> None:
    world.email.then(Script.accept(failed=timedelta(minutes=5)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=AfterDelivery(after=timedelta(days=2))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.tick(timedelta(minutes=5))
    assert await world.states(run_id) == ["sent", "skipped"]


async def test_until_and_cancel_on_are_checked_when_the_step_fires(world: World) -> None:
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", delay=timedelta(days=1), until="replied"),
        Step(via="telegram", template="hello", delay=timedelta(days=1)),
        cancel_on=["purchase"],
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.client.record_event("ann", "replied")
    await world.tick(timedelta(days=1))
    assert world.sms.calls == 0
    assert await world.states(run_id) == ["sent", "skipped", "pending"]
    assert await world.client.record_event(ANN, "purchase", {"sku": "X"}) == 1
    await world.tick(timedelta(days=1))
    assert world.chat.calls == 0
    assert await world.states(run_id) == ["sent", "skipped", "canceled"]


async def test_opened_condition_uses_events_not_statuses(world: World) -> None:
    world.email.then(Script.accept(delivered=timedelta(minutes=1), opened=timedelta(hours=2)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=NotOpened(within=timedelta(hours=3))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    for _ in range(4):
        await world.tick(timedelta(hours=1))
    assert world.sms.calls == 0
    assert await world.states(run_id) == ["sent", "skipped"]


async def test_same_key_twice_starts_one_run(world: World) -> None:
    f = flow(Step(via="email", template="hello"))
    first = await world.client.start(f, to=ANN, data=DATA, key="k")
    second = await world.client.start(f, to=ANN, data=DATA, key="k")
    assert first == second
    await world.tick(timedelta(0))
    assert world.email.calls == 1


async def test_profile_id_is_resolved_when_the_step_fires(world: World) -> None:
    await world.client.profiles.upsert(ANN)
    f = flow(
        Step(via="email", template="hello"),
        Step(via=["email", "sms"], template="hello", delay=timedelta(days=1)),
    )
    await world.client.start(f, to="ann", data=DATA)
    await world.tick(timedelta(0))
    await world.client.profiles.mark_invalid("email", "ann@example.com", "hard bounce")
    await world.tick(timedelta(days=1))
    assert world.email.calls == 1
    assert world.sms.calls == 1  # the dead email address was not used again


async def test_start_validates(world: World) -> None:
    with pytest.raises(ConfigurationError, match="no profile"):
        await world.client.start(flow(Step(via="email", template="hello")), to="nobody")
    with pytest.raises(ValueError, match="earlier step"):
        flow(
            Step(via="email", template="hello"),
            Step(via="sms", template="hello", when=Failed(step=1)),
        )
    with pytest.raises(ValueError, match="Always"):
        flow(Step(via="email", template="hello", when=Failed()))
    with pytest.raises(ValueError, match="exactly one"):
        Step(via="email")


async def test_flows_need_a_store() -> None:
    async with AsyncClient([ScriptedProvider(clock=VirtualClock())]) as client:
        with pytest.raises(ConfigurationError, match="store="):
            await client.start(flow(Step(via="email", template="hello")), to=ANN)


async def test_a_broken_template_fails_the_step_with_a_reason(world: World) -> None:
    f = flow(Step(via="email", template="missing"))
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert world.client.store is not None
    steps = await world.client.store.run_steps(run_id)
    assert steps[0].state is StepState.FAILED
    assert "TemplateError" in (steps[0].detail or "")


async def test_digest_folds_items_into_one_message_at_a_local_time(world: World) -> None:
    f = flow(
        Step(via="email", template="digest", digest=Digest(at=time(18, 0))),
        name="activity",
        category="activity",
    )
    for what in ("like", "comment", "follow"):
        await world.client.start(f, to=ANN, data={"what": what})
        await world.tick(timedelta(minutes=10))
    assert world.email.calls == 0
    # 18:00 in Warsaw is 17:00 UTC in November.
    assert await world.tick(timedelta(hours=7, minutes=29)) == 0
    assert await world.tick(timedelta(minutes=1)) == 1
    assert world.email.calls == 1
    assert world.email.messages[0].text == "like;comment;follow;"
    assert world.email.messages[0].subject == "3 updates"


async def test_one_time_passwords_never_escalate_to_another_channel() -> None:
    w = World(policies={"otp": Policy(reroute=False, transactional=True)})
    w.sms.then(Script.reject(ErrorCategory.INVALID_RECIPIENT))
    async with w.client:
        result = await w.client.send(
            Message(text="Your code is 123456", category="otp"), to=ANN, via=["sms", "email"]
        )
    assert not result.ok
    assert w.email.calls == 0


async def test_provider_errors_fail_over_within_the_channel_only() -> None:
    clock = VirtualClock(start=START)
    first = ScriptedProvider(channel="sms", clock=clock, name="sms-a")
    second = ScriptedProvider(channel="sms", clock=clock, name="sms-b")
    email = ScriptedProvider(channel="email", clock=clock, name="mail")
    first.then(Script.reject(ErrorCategory.AUTH))
    async with AsyncClient([first, second, email], store=":memory:", clock=clock) as client:
        result = await client.send(Message(text="Hi"), to=ANN, via=["sms", "email"])
    assert result.provider == "sms-b"
    assert email.calls == 0


async def test_quiet_hours_defer_a_flow_step() -> None:
    w = World(quiet_hours=QuietHours(start=time(21, 0), end=time(8, 0)))
    w.clock.advance(timedelta(hours=12))  # 21:00 UTC = 22:00 in Warsaw
    async with w.client:
        run_id = await w.client.start(flow(Step(via="email", template="hello")), to=ANN, data=DATA)
        assert await w.tick(timedelta(0)) == 1
        assert w.email.calls == 0
        assert w.client.store is not None
        steps = await w.client.store.run_steps(run_id)
        assert steps[0].state is StepState.PENDING
        assert steps[0].due_at == datetime(2026, 11, 24, 7, 0, tzinfo=timezone.utc)
        await w.tick(timedelta(hours=10))
        assert w.email.calls == 1


async def test_consent_policy_skips_channels_without_opt_in() -> None:
    w = World(policies={"marketing": Policy(consent=True)})
    async with w.client:
        consenting = ANN.model_copy(
            update={
                "preferences": ANN.preferences.model_copy(
                    update={"categories": {"marketing": {"sms": True}}}
                )
            }
        )
        result = await w.client.send(
            Message(text="Sale", category="marketing"), to=consenting, via=["email", "sms"]
        )
    assert [a.skip_reason for a in result.attempts][:1] == [SkipReason.NO_CONSENT]
    assert result.provider == "text"


async def test_canceling_one_run_drops_its_digest_item_only(world: World) -> None:
    f = flow(
        Step(via="email", template="digest", digest=Digest(at=time(18, 0))),
        name="activity",
        category="activity",
    )
    for what in ("like", "comment", "follow"):
        await world.client.start(f, to=ANN, data={"what": what}, key=f"k-{what}")
        await world.tick(timedelta(minutes=10))
    assert await world.client.cancel("k-like") == 1  # the run that opened the digest
    await world.tick(timedelta(hours=8))
    assert [m.text for m in world.email.messages] == ["comment;follow;"]


async def test_a_digest_due_in_quiet_hours_waits_for_the_morning() -> None:
    w = World(quiet_hours=QuietHours(start=time(17, 0), end=time(8, 0)))
    f = flow(Step(via="email", template="digest", digest=Digest(at=time(18, 0))), name="a")
    async with w.client:
        await w.client.start(f, to=ANN, data={"what": "like"})
        await w.tick(timedelta(0))
        await w.tick(timedelta(hours=9))  # 18:00 in Warsaw: quiet
        assert w.email.calls == 0
        await w.tick(timedelta(hours=13))  # 08:00 the next morning
        assert w.email.calls == 1


async def test_failed_within_gives_up_when_no_failure_comes(world: World) -> None:
    world.email.then(Script.accept())  # accepted, and the provider never reports again
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=Failed(within=timedelta(days=2))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert await world.states(run_id) == ["sent", "pending"]
    await world.tick(timedelta(days=2))
    assert await world.states(run_id) == ["sent", "skipped"]
    assert world.sms.calls == 0
    assert world.client.store is not None
    run = await world.client.store.get_run(run_id)
    assert run is not None
    assert run["state"] == "done"


async def test_failed_within_still_fires_on_a_failure_in_time(world: World) -> None:
    world.email.then(Script.accept(failed=timedelta(hours=3)))
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=Failed(within=timedelta(days=2))),
    )
    await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.tick(timedelta(hours=3))
    assert world.sms.calls == 1


async def test_a_step_that_fails_on_bad_input_counts_as_a_failure(world: World) -> None:
    f = flow(
        Step(via="email", template="missing"),
        Step(via="sms", template="hello", when=Failed()),
        Step(via="telegram", template="hello", when=NotOpened(within=timedelta(hours=1))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    assert await world.states(run_id) == ["failed", "sent", "pending"]
    assert world.client.store is not None
    steps = await world.client.store.run_steps(run_id)
    email = await world.client.store.get_message(steps[0].message_id or "")
    assert email is not None
    assert email.status is DeliveryStatus.FAILED
    await world.tick(timedelta(hours=1))
    assert await world.states(run_id) == ["failed", "sent", "sent"]
    run = await world.client.store.get_run(run_id)
    assert run is not None
    assert run["state"] == "done"


async def test_duplicate_and_out_of_order_callbacks_change_nothing_twice(world: World) -> None:
    # sent, delivered and read all arrive at minute 10, read first, each twice.
    world.chat.then(Script.accept(sent=60, delivered=120, read=600, duplicate=True, reverse=True))
    f = flow(
        Step(via="telegram", template="hello"),
        Step(via="sms", template="hello", when=NotRead(within=timedelta(minutes=30))),
    )
    run_id = await world.client.start(f, to=ANN, data=DATA)
    await world.tick(timedelta(0))
    await world.tick(timedelta(minutes=10))
    assert world.client.store is not None
    steps = await world.client.store.run_steps(run_id)
    chat = await world.client.store.get_message(steps[0].message_id or "")
    assert chat is not None
    assert chat.status is DeliveryStatus.READ  # "sent" after "read" did not move it back
    assert chat.delivered_at is not None
    history = [h for h in await world.client.history("ann") if h.kind == "status"]
    assert [h.status.value for h in history if h.status] == ["sent", "delivered", "read"]
    await world.tick(timedelta(minutes=30))
    assert world.sms.calls == 0
    assert await world.states(run_id) == ["sent", "skipped"]


# -- batches, callbacks that nothing waits on, validated flows ---------------------------------


class AsyncSpyStore(AsyncSQLiteStore):
    """A memory store that counts write transactions and the reads a reaction makes."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.writes = 0
        self.looked_up: list[str] = []

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        if write:
            self.writes += 1
        with super()._tx(write=write) as db:
            yield db

    async def get_message(self, message_id: str) -> StoredMessage | None:
        self.looked_up.append("get_message")
        return await super().get_message(message_id)

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        self.looked_up.append("get_run")
        return await super().get_run(run_id)

    async def run_steps(self, run_id: str) -> list[StoredStep]:
        self.looked_up.append("run_steps")
        return await super().run_steps(run_id)

    def reset(self) -> None:
        self.writes = 0
        self.looked_up.clear()


async def test_a_callback_no_flow_waits_on_is_one_transaction_with_nothing_read_back() -> None:
    clock = VirtualClock(start=START)
    email = ScriptedProvider(channel="email", clock=clock, name="mail")
    email.then(Script.accept(delivered=timedelta(minutes=1)))
    store = AsyncSpyStore()
    async with AsyncClient([email], store=store, clock=clock) as client:
        result = await client.send(Message(subject="Hi", text="Hi"), to=ANN, via="email")
        clock.advance(timedelta(minutes=1))
        [request] = email.due_callbacks()
        store.reset()
        assert len(await client.webhooks.handle("mail", request)) == 1
        assert (store.writes, store.looked_up) == (1, [])
        stored = await store.get_message(result.message_id)
        assert stored is not None
        assert stored.status is DeliveryStatus.DELIVERED
    await store.aclose()


async def test_a_step_waiting_on_the_message_is_armed_by_its_callback() -> None:
    clock = VirtualClock(start=START)
    email = ScriptedProvider(channel="email", clock=clock, name="mail")
    sms = ScriptedProvider(channel="sms", clock=clock, name="text")
    email.then(Script.accept(delivered=timedelta(minutes=1)))
    store = AsyncSpyStore()
    f = flow(
        Step(via="email", template="hello"),
        Step(via="sms", template="hello", when=AfterDelivery(after=timedelta(minutes=5))),
    )
    async with AsyncClient([email, sms], store=store, clock=clock, templates=TEMPLATES) as client:
        run_id = await client.start(f, to=ANN, data=DATA)
        assert await client.run_due() == 1
        clock.advance(timedelta(minutes=1))
        [request] = email.due_callbacks()
        store.reset()
        await client.webhooks.handle("mail", request)
        assert store.writes == 2  # the event, then the arming of step 1
        assert "run_steps" in store.looked_up  # the engine looked: a step waits
        steps = await store.run_steps(run_id)
        assert (steps[1].state, steps[1].due_at) == (
            StepState.PENDING,
            START + timedelta(minutes=6),
        )
        clock.advance(timedelta(minutes=5))
        assert await client.run_due() == 1
        assert sms.calls == 1
    await store.aclose()


async def test_a_callback_before_its_step_closes_still_arms_the_next_step() -> None:
    """Between the batch's results and its closes, a step is found by its message's id."""
    clock = VirtualClock(start=START)
    email = MemoryProvider(name="mail", channels={"email"})
    store = AsyncSQLiteStore(":memory:")
    f = flow(
        Step(via="email", message=Message(subject="Hi", text="Hi")),
        Step(via="email", message=Message(subject="Again", text="Again"), when=AfterDelivery()),
    )
    async with AsyncClient([email], store=store, clock=clock) as client:
        run_id = await client.start(f, to=ANN)
        [step] = await store.claim_due(now=clock.now(), worker="w", lease=LEASE, limit=5)
        message_id = step_message_id(step.id)
        result = await client.send(Message(subject="Hi", text="Hi"), to=ANN, via="email")
        recorded = result.model_copy(update={"message_id": message_id})
        await store.save_result(
            recorded, now=clock.now(), recipient_id="ann", category=None, run_id=run_id
        )
        assert (await store.run_steps(run_id))[0].message_id is None  # not closed yet
        event = DeliveryEvent(
            provider="mail",
            provider_message_id=result.receipt.provider_message_id if result.receipt else None,
            status=DeliveryStatus.DELIVERED,
            event_id="delivered-1",
        )
        assert await client.webhooks.ingest(event)
        steps = await store.run_steps(run_id)
        assert (steps[0].state, steps[1].state) == (StepState.CLAIMED, StepState.PENDING)
    await store.aclose()


async def test_each_version_of_a_flow_is_validated_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_email = flow(Step(via="email", template="hello"))
    by_sms = flow(Step(via="sms", template="hello"))  # the same name, changed since
    for _ in range(3):
        await world.client.start(by_email, to=ANN, data=DATA)
    for _ in range(2):
        await world.client.start(by_sms, to=ANN, data=DATA)
    validated: list[str] = []
    real = Flow.model_validate

    def counting(data: Any, *args: Any, **kwargs: Any) -> Flow:
        validated.append(data["steps"][0]["via"][0])
        return real(data, *args, **kwargs)

    monkeypatch.setattr(Flow, "model_validate", counting)
    assert await world.client.run_due() == 5
    assert sorted(validated) == ["email", "sms"]
    assert (world.email.calls, world.sms.calls) == (3, 2)  # each run its own version
    await world.client.start(by_email, to=ANN, data=DATA)
    assert await world.client.run_due() == 1
    assert sorted(validated) == ["email", "sms"]


async def test_a_snapshots_phone_is_normalised_when_the_run_starts(world: World) -> None:
    assert world.client.store is not None
    local = Recipient(id="bob", phone="600 700 800")
    plain = await world.client.start(flow(Step(via="sms", template="hello")), to=local, data=DATA)
    run = await world.client.store.get_run(plain)
    assert run is not None
    assert (run["plan"]["to"]["phone"], run["plan"].get("e164")) == ("600 700 800", None)
    await world.client.run_due()  # no default region: the step fails on the number
    assert await world.states(plain) == ["failed"]
    good = await world.client.start(flow(Step(via="sms", template="hello")), to=ANN, data=DATA)
    run = await world.client.store.get_run(good)
    assert run is not None
    assert (run["plan"]["to"]["phone"], run["plan"]["e164"]) == ("+48600700800", True)
    await world.client.run_due()
    assert [m.to for m in world.sms.messages] == ["+48600700800"]


async def test_a_batch_runs_in_a_few_transactions() -> None:
    clock = VirtualClock(start=START)
    outbox = MemoryProvider(channels={"email"})
    store = AsyncSpyStore()
    one = flow(Step(via="email", message=Message(subject="Hi", text="Hi")))
    async with AsyncClient([outbox], store=store, clock=clock) as client:
        runs = [
            await client.start(one, to=Recipient(id=f"u{i}", email=f"u{i}@example.com"))
            for i in range(20)
        ]
        store.reset()
        assert await client.run_due() == 20
        # claim, messages begun, results, steps closed (and the claim that found none)
        assert store.writes <= 5
        assert len(outbox.messages) == 20
        for run_id in runs:
            run = await store.get_run(run_id)
            assert run is not None
            assert run["state"] == "done"
    await store.aclose()


class AsyncSlowOutbox(MemoryProvider):
    """Takes a minute per message; meanwhile another worker tries to claim due steps."""

    def __init__(self, clock: VirtualClock, store: AsyncSQLiteStore) -> None:
        super().__init__(channels={"email"})
        self.clock = clock
        self.store = store
        self.taken: list[str] = []

    async def asend(self, message: OutboundMessage) -> Receipt:
        self.clock.advance(timedelta(minutes=1))
        steps = await self.store.claim_due(
            now=self.clock.now(), worker="other", lease=LEASE, limit=100
        )
        self.taken += [s.id for s in steps]
        return await super().asend(message)


async def test_a_long_batch_keeps_its_claims_while_it_sends() -> None:
    """Twelve one-minute sends with a five-minute lease: no step is ever free to take."""
    clock = VirtualClock(start=START)
    store = AsyncSQLiteStore(":memory:")
    outbox = AsyncSlowOutbox(clock, store)
    one = flow(Step(via="email", message=Message(subject="Hi", text="Hi")))
    async with AsyncClient([outbox], store=store, clock=clock) as client:
        for i in range(12):
            await client.start(one, to=Recipient(id=f"u{i}", email=f"u{i}@example.com"))
        assert client._engine().lease == LEASE
        assert await client.run_due() == 12
        assert outbox.taken == []
        assert len(outbox.messages) == 12
        assert len({m.idempotency_key for m in outbox.messages}) == 12
    await store.aclose()


class Stop(BaseException):
    """A Ctrl-C, or a canceled task, in the middle of a batch."""


class AsyncStopping(MemoryProvider):
    """Takes the message, then the batch is interrupted, on the ``stop_on``-th call."""

    def __init__(self, *, stop_on: int, idempotency: bool) -> None:
        super().__init__(channels={"email"}, idempotency=idempotency)
        self.stop_on = stop_on

    async def asend(self, message: OutboundMessage) -> Receipt:
        receipt = await super().asend(message)
        if self.calls == self.stop_on:
            raise Stop
        return receipt


@pytest.mark.parametrize("idempotency", [True, False], ids=["idempotent", "plain"])
async def test_an_interrupted_batch_keeps_what_it_sent_and_puts_back_the_rest(
    idempotency: bool,
) -> None:
    clock = VirtualClock(start=START)
    outbox = AsyncStopping(stop_on=3, idempotency=idempotency)
    store = AsyncSQLiteStore(":memory:")
    one = flow(Step(via="email", message=Message(subject="Hi", text="Hi")))
    async with AsyncClient([outbox], store=store, clock=clock) as client:
        client._engine().concurrency = 1
        runs = []
        for i in range(5):
            clock.advance(timedelta(seconds=1))  # due one after another
            runs.append(await client.start(one, to=Recipient(id=f"u{i}", email=f"u{i}@x.org")))
        with pytest.raises(Stop):
            await client.run_due()
        steps = [(await store.run_steps(run_id))[0] for run_id in runs]
        messages = [await store.get_message(step_message_id(step.id)) for step in steps]
        # Sent and recorded; in doubt (the provider has it, the store does not know);
        # never sent, so put back as they were.
        assert [s.state for s in steps] == [StepState.SENT] * 2 + [StepState.CLAIMED] + [
            StepState.PENDING
        ] * 2
        assert [m.status if m else None for m in messages] == [
            DeliveryStatus.ACCEPTED,
            DeliveryStatus.ACCEPTED,
            DeliveryStatus.PENDING,
            None,
            None,
        ]
        assert await client.run_due() == 2  # the two put back, at once
        assert (outbox.calls, len(outbox.messages)) == (5, 5)
        assert await client.run_due() == 0  # the one in doubt waits for its lease
        clock.advance(LEASE)
        assert await client.run_due() == 1
        held = (await store.run_steps(runs[2]))[0]
        if idempotency:  # sent again with the same key: the provider kept one
            assert (held.state, outbox.calls, len(outbox.messages)) == (StepState.SENT, 6, 5)
        else:  # never sent blindly again
            assert (held.state, outbox.calls, len(outbox.messages)) == (StepState.UNKNOWN, 5, 5)
        for run_id in runs:
            run = await store.get_run(run_id)
            assert run is not None
            assert run["state"] == "done"
    await store.aclose()


async def test_a_batch_of_steps_skips_the_suppressed_addresses_it_read_at_once() -> None:
    clock = VirtualClock(start=START)
    outbox = MemoryProvider()
    bob = Recipient(id="bob", email="bob@example.com", phone="+48600700801")
    async with AsyncClient([outbox], store=":memory:", clock=clock) as client:
        assert client.store is not None
        await client.store.suppress(Channel.SMS, "+48600700800", "inbound STOP", now=START)
        f = flow(Step(via=["sms", "email"], message=Message(text="Hi")))
        for person in (ANN, bob):
            await client.start(f, to=person)
        assert await client.run_due() == 2
    sent = sorted((m.channel.value, m.to) for m in outbox.messages)
    assert sent == [("email", "ann@example.com"), ("sms", "+48600700801")]
