"""Flows through AsyncClient with scripted providers on a virtual clock (tests/_sync is generated).

Every condition, the digest, cancellation, guards evaluated when a step fires, and the two
kinds of fallback. Callbacks come from ``ScriptedProvider.due_callbacks()`` and go through
``client.webhooks.handle`` exactly as a web endpoint would pass them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta, timezone
from typing import Any

import pytest

from anysend import (
    AfterDelivery,
    AsyncClient,
    ConfigurationError,
    DeliveryStatus,
    Digest,
    ErrorCategory,
    Failed,
    Flow,
    Message,
    NotDelivered,
    NotOpened,
    NotRead,
    Policy,
    QuietHours,
    Reason,
    Recipient,
    SkipReason,
    Step,
    StepState,
)
from anysend.testing import Script, ScriptedProvider, VirtualClock

pytestmark = pytest.mark.anyio

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

    def __init__(self, **client_options: Any) -> None:
        self.clock = VirtualClock(start=START)
        self.email = ScriptedProvider(channel="email", clock=self.clock, name="mail")
        self.sms = ScriptedProvider(channel="sms", clock=self.clock, name="text")
        self.chat = ScriptedProvider(channel="telegram", clock=self.clock, name="tg")
        self.client = AsyncClient(
            [self.email, self.sms, self.chat],
            templates=TEMPLATES,
            store=":memory:",
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


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
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
