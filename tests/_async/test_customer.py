"""The customer view through AsyncClient with a store (tests/_sync is generated from this file).

Profiles and sends to a profile id, suppressions and dead contact points, policies (consent,
re-routing, frequency caps, quiet hours), scheduling, idempotency and provider health across
clients sharing a store file, webhooks (inbound, callbacks), history, forget, reports, pruning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from anysend import (
    AsyncClient,
    AsyncSQLiteStore,
    AttemptOutcome,
    Channel,
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    Flow,
    FrequencyCap,
    InboundMessage,
    InvalidRecipientError,
    Message,
    Policy,
    Preferences,
    PushTarget,
    QuietHours,
    Reason,
    Recipient,
    RetryPolicy,
    SendResult,
    SkipReason,
    Step,
    WebhookVerificationError,
)
from anysend.providers import Provider
from anysend.testing import MemoryProvider, Script, ScriptedProvider, VirtualClock

pytestmark = pytest.mark.anyio

# 12:00 UTC is 13:00 in Warsaw (CET, UTC+1, in January).
START = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
ANN = Recipient(
    id="user-42",
    email="ann@example.com",
    phone="+48600700800",
    timezone="Europe/Warsaw",
)
TEXT = Message(text="Your size is back", subject="Back in stock")
MARKETING = TEXT.model_copy(update={"category": "marketing"})
OTP = Message(text="Your code is 123456", subject="Your code", category="otp")
NO_RETRY = RetryPolicy(max_attempts=1)


def memory(name: str, *channels: str) -> MemoryProvider:
    return MemoryProvider(name=name, channels=frozenset(Channel(c) for c in channels))


def client(*providers: Provider, **kwargs: Any) -> AsyncClient:
    kwargs.setdefault("clock", VirtualClock(start=START))
    kwargs.setdefault("store", ":memory:")
    return AsyncClient(list(providers), **kwargs)


def skips(result: SendResult) -> list[tuple[Channel, SkipReason | None]]:
    return [
        (a.channel, a.skip_reason) for a in result.attempts if a.outcome is AttemptOutcome.SKIPPED
    ]


class Shop:
    """A client on a memory store with an email and an SMS provider, and Ann's profile."""

    def __init__(self, **options: Any) -> None:
        self.clock: VirtualClock = options.pop("clock", VirtualClock(start=START))
        self.email = memory("mail", "email")
        self.sms = memory("text", "sms")
        self.client = client(self.email, self.sms, clock=self.clock, **options)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def shop(request: pytest.FixtureRequest) -> AsyncIterator[Shop]:
    """A shop on a SQLite memory store, then on PostgreSQL (a schema of its own)."""
    if request.param == "postgres":
        s = Shop(store=request.getfixturevalue("postgres_url"))
    else:
        s = Shop()
    async with s.client:
        await s.client.profiles.upsert(ANN)
        yield s


# -- profiles ----------------------------------------------------------------------------------


async def test_profiles_are_normalised_and_found_by_any_address() -> None:
    async with client(default_region="PL") as c:
        saved = await c.profiles.upsert(
            {"id": "user-42", "email": "Ann@Example.COM", "phone": "600 700 800"}
        )
        assert (saved.email, saved.phone) == ("ann@example.com", "+48600700800")
        assert await c.profiles.get("user-42") == saved
        assert await c.profiles.get("user-7") is None
        for channel, address in [
            ("email", "ANN@example.com"),
            ("sms", "+48600700800"),
            ("sms", "600-700-800"),
            (Channel.WHATSAPP, "+48 600 700 800"),
        ]:
            found = await c.profiles.find(channel, address)
            assert found is not None, (channel, address)
            assert found.id == "user-42"
        assert await c.profiles.find("email", "bob@example.com") is None
        with pytest.raises(ConfigurationError, match="id"):
            await c.profiles.upsert(Recipient(email="bob@example.com"))
        with pytest.raises(InvalidRecipientError):
            await c.profiles.upsert({"id": "user-7", "phone": "12"})


async def test_a_whatsapp_id_is_stored_as_the_number_sends_use() -> None:
    wa = memory("wa", "whatsapp")
    async with client(wa) as c:
        saved = await c.profiles.upsert(
            {"id": "user-42", "chat_ids": {"whatsapp": "+48 600 700 800"}}
        )
        assert saved.chat_ids == {Channel.WHATSAPP: "+48600700800"}
        found = await c.profiles.find("whatsapp", "+48600700800")
        assert found is not None
        assert found.id == "user-42"
        await c.webhooks.ingest(
            InboundMessage(
                provider="wa", channel=Channel.WHATSAPP, sender="48600700800", text="STOP"
            )
        )
        result = await c.send(TEXT, to="user-42", via="whatsapp")
        assert skips(result) == [(Channel.WHATSAPP, SkipReason.SUPPRESSED)]
    assert wa.calls == 0


async def test_preferences_opt_out_and_opt_in(shop: Shop) -> None:
    profiles = shop.client.profiles
    updated = await profiles.set_preference("user-42", "marketing", "email", True)
    assert updated.preferences.categories == {"marketing": {Channel.EMAIL: True}}
    stored = await profiles.get("user-42")
    assert stored is not None
    assert stored.preferences.categories == {"marketing": {Channel.EMAIL: True}}
    await profiles.set_preference("user-42", "marketing", Channel.EMAIL, False)
    result = await shop.client.send(MARKETING, to="user-42", via=["email", "sms"])
    assert skips(result) == [(Channel.EMAIL, SkipReason.OPTED_OUT)]
    assert result.channel is Channel.SMS
    cleared = await profiles.set_preference("user-42", "marketing", "email", None)
    assert cleared.preferences.categories == {"marketing": {}}

    await profiles.opt_out("user-42", "sms")
    result = await shop.client.send(TEXT, to="user-42", via=["sms", "email"])
    assert skips(result) == [(Channel.SMS, SkipReason.OPTED_OUT)]
    assert result.channel is Channel.EMAIL
    back = await profiles.opt_in("user-42", Channel.SMS)
    assert back.preferences.opted_out == frozenset()
    result = await shop.client.send(TEXT, to="user-42", via=["sms", "email"])
    assert result.channel is Channel.SMS
    with pytest.raises(ConfigurationError, match="user-7"):
        await profiles.opt_out("user-7", "sms")


async def test_send_to_a_profile_id_resolves_it(shop: Shop) -> None:
    result = await shop.client.send(TEXT, to="user-42")
    assert (result.ok, result.channel, result.address) == (True, Channel.EMAIL, "ann@example.com")
    stored = await shop.client.store.get_message(result.message_id)  # type: ignore[union-attr]
    assert stored is not None
    assert stored.recipient_id == "user-42"
    with pytest.raises(ConfigurationError, match="user-7"):
        await shop.client.send(TEXT, to="user-7")
    assert shop.email.calls == 1


async def test_without_a_store_profile_features_say_what_they_need() -> None:
    outbox = memory("mail", "email")
    async with AsyncClient([outbox], clock=VirtualClock(start=START)) as c:
        assert c.store is None
        with pytest.raises(ConfigurationError, match="store="):
            await c.send(TEXT, to="user-42")
        with pytest.raises(ConfigurationError, match="store="):
            _ = c.profiles
        with pytest.raises(ConfigurationError, match="store="):
            _ = c.webhooks
        with pytest.raises(ConfigurationError, match="store="):
            await c.history("user-42")
        with pytest.raises(ConfigurationError, match="store="):
            await c.report(since=START)
        with pytest.raises(ConfigurationError, match="store="):
            await c.forget("user-42")
        with pytest.raises(ConfigurationError, match="store="):
            await c.prune(timedelta(days=30))
        with pytest.raises(ConfigurationError, match="store="):
            await c.run_due()
    assert outbox.calls == 0
    with pytest.raises(ConfigurationError, match="store"):
        AsyncClient([outbox], store=42)  # type: ignore[arg-type]


async def test_store_can_be_a_path_a_url_or_a_store(tmp_path: Path) -> None:
    for given in (tmp_path / "a.db", f"sqlite:///{tmp_path / 'b.db'}", AsyncSQLiteStore()):
        async with client(store=given) as c:
            assert isinstance(c.store, AsyncSQLiteStore)
            await c.profiles.upsert(ANN)
            assert await c.profiles.get("user-42") == ANN
    assert (tmp_path / "a.db").exists()
    assert (tmp_path / "b.db").exists()


async def test_a_store_object_given_to_a_client_outlives_it() -> None:
    store = AsyncSQLiteStore()
    async with client(store=store) as first:
        await first.profiles.upsert(ANN)
    async with client(store=store) as second:
        assert await second.profiles.get("user-42") == ANN


# -- suppressions and dead contact points ------------------------------------------------------


async def test_a_suppressed_address_is_skipped_before_any_provider_call(shop: Shop) -> None:
    profiles = shop.client.profiles
    await profiles.suppress("email", "ANN@example.com", "complained")
    assert await profiles.blocked("email", "ann@example.com") == "suppressed: complained"
    result = await shop.client.send(TEXT, to="user-42", via=["email", "sms"])
    assert skips(result) == [(Channel.EMAIL, SkipReason.SUPPRESSED)]
    assert result.attempts[0].detail == "ann@example.com: complained"
    assert result.channel is Channel.SMS
    assert shop.email.calls == 0
    # A recipient given in full (no profile) is checked against the same list.
    anonymous = Recipient(email="ann@example.com")
    only_email = await shop.client.send(TEXT, to=anonymous, via="email")
    assert not only_email.ok
    assert skips(only_email) == [(Channel.EMAIL, SkipReason.SUPPRESSED)]
    assert shop.email.calls == 0
    assert await profiles.unsuppress("email", "ann@example.com")
    assert not await profiles.unsuppress("email", "ann@example.com")
    assert (await shop.client.send(TEXT, to="user-42")).channel is Channel.EMAIL


async def test_a_number_suppressed_in_any_format_is_skipped() -> None:
    sms = memory("text", "sms")
    async with client(sms, default_region="PL") as c:
        await c.profiles.upsert({"id": "user-42", "phone": "+48 600 700 800"})
        await c.profiles.suppress("sms", "600 700 800", "manual")
        assert await c.profiles.blocked("sms", "+48600700800") == "suppressed: manual"
        result = await c.send(TEXT, to="user-42", via="sms")
        assert skips(result) == [(Channel.SMS, SkipReason.SUPPRESSED)]
        assert sms.calls == 0
        assert await c.profiles.unsuppress("sms", "+48 600-700-800")
        assert (await c.send(TEXT, to="user-42", via="sms")).ok


async def test_a_provider_saying_the_contact_is_dead_marks_it_invalid(shop: Shop) -> None:
    shop.sms.fail(ErrorCategory.INVALID_RECIPIENT, contact_invalid=True)
    first = await shop.client.send(TEXT, to=ANN, via=["sms", "email"])
    assert first.channel is Channel.EMAIL
    assert first.attempts[0].contact_invalid
    blocked = await shop.client.profiles.blocked("sms", "+48600700800")
    assert blocked == "contact_invalid: invalid_recipient"
    # Next time the number is not tried: skipped, and the next channel is used.
    second = await shop.client.send(TEXT, to=ANN, via=["sms", "email"])
    assert skips(second) == [(Channel.SMS, SkipReason.CONTACT_INVALID)]
    assert second.channel is Channel.EMAIL
    assert shop.sms.calls == 1
    # The profile no longer has the number at all.
    profile = await shop.client.profiles.get("user-42")
    assert profile is not None
    assert profile.phone is None
    third = await shop.client.send(TEXT, to="user-42", via=["sms", "email"])
    assert skips(third) == [(Channel.SMS, SkipReason.NO_ADDRESS)]
    assert third.channel is Channel.EMAIL
    assert shop.sms.calls == 1


async def test_mark_invalid_by_hand(shop: Shop) -> None:
    await shop.client.profiles.mark_invalid("email", "Ann@Example.com", "hard_bounce")
    assert await shop.client.profiles.blocked("email", "ann@example.com") == (
        "contact_invalid: hard_bounce"
    )
    result = await shop.client.send(TEXT, to=ANN, via=["email", "sms"])
    assert skips(result) == [(Channel.EMAIL, SkipReason.CONTACT_INVALID)]
    assert result.channel is Channel.SMS
    found = await shop.client.profiles.find("email", "ann@example.com")
    assert found is not None
    assert (found.id, found.email) == ("user-42", None)


async def test_a_bounce_callback_marks_the_address_invalid() -> None:
    clock = VirtualClock(start=START)
    email = ScriptedProvider(channel="email", clock=clock, name="mail")
    email.then(Script.accept(failed=30, reason=Reason.UNKNOWN_RECIPIENT))
    sms = memory("text", "sms")
    async with client(email, sms, clock=clock) as c:
        await c.profiles.upsert(ANN)
        assert (await c.send(TEXT, to=ANN, via=["email", "sms"])).channel is Channel.EMAIL
        clock.advance(30)
        [bounce] = email.due_callbacks()
        [event] = await c.webhooks.handle("mail", bounce)
        assert isinstance(event, DeliveryEvent)
        assert (event.status, event.reason) == (
            DeliveryStatus.UNDELIVERABLE,
            Reason.UNKNOWN_RECIPIENT,
        )
        assert await c.profiles.blocked("email", "ann@example.com") == (
            "contact_invalid: unknown_recipient"
        )
        again = await c.send(TEXT, to=ANN, via=["email", "sms"])
        assert skips(again) == [(Channel.EMAIL, SkipReason.CONTACT_INVALID)]
        assert again.channel is Channel.SMS
        assert email.calls == 1


async def test_an_unregistered_push_token_is_not_used_again() -> None:
    clock = VirtualClock(start=START)
    push = ScriptedProvider(channel="push", clock=clock, name="fcm")
    push.then(Script.accept(failed=5, reason=Reason.TOKEN_UNREGISTERED), Script.accept())
    phone = Recipient(
        id="user-42",
        push=(PushTarget(kind="fcm", token="tok-old"), PushTarget(kind="fcm", token="tok-new")),
    )
    async with client(push, clock=clock) as c:
        await c.profiles.upsert(phone)
        first = await c.send(TEXT, to="user-42", via="push")
        assert [m.to for m in push.messages] == ["tok-old", "tok-new"]
        assert first.ok
        clock.advance(5)
        for request in push.due_callbacks():
            await c.webhooks.handle("fcm", request)
        assert await c.profiles.blocked("push", "tok-old") == "contact_invalid: token_unregistered"
        profile = await c.profiles.get("user-42")
        assert profile is not None
        assert [t.token for t in profile.push] == ["tok-new"]
        # A stale copy of the recipient still has the token: it is skipped.
        await c.send(TEXT, to=phone, via="push")
        assert [m.to for m in push.messages][2:] == ["tok-new"]


async def test_opt_out_and_complaint_events_suppress_opt_in_lifts(shop: Shop) -> None:
    webhooks = shop.client.webhooks
    complaint = DeliveryEvent(
        provider="mail",
        channel=Channel.EMAIL,
        recipient="Ann@Example.com",
        event=EventType.COMPLAINED,
        event_id="c1",
    )
    assert await webhooks.ingest(complaint)
    assert not await webhooks.ingest(complaint)
    assert await shop.client.profiles.blocked("email", "ann@example.com") == (
        "suppressed: complained"
    )
    back = complaint.model_copy(update={"event": EventType.OPTED_IN, "event_id": "c2"})
    assert await webhooks.ingest(back)
    assert await shop.client.profiles.blocked("email", "ann@example.com") is None
    dead = complaint.model_copy(update={"event": EventType.CONTACT_INVALID, "event_id": "c3"})
    await webhooks.ingest(dead)
    assert await shop.client.profiles.blocked("email", "ann@example.com") == (
        "contact_invalid: contact_invalid"
    )


# -- policies ----------------------------------------------------------------------------------


async def test_consent_policy_needs_an_opt_in_per_channel() -> None:
    s = Shop(policies={"marketing": Policy(consent=True)})
    async with s.client as c:
        await c.profiles.upsert(ANN)
        refused = await c.send(MARKETING, to="user-42", via=["email", "sms"])
        assert not refused.ok
        assert skips(refused) == [
            (Channel.EMAIL, SkipReason.NO_CONSENT),
            (Channel.SMS, SkipReason.NO_CONSENT),
        ]
        await c.profiles.set_preference("user-42", "marketing", "sms", True)
        allowed = await c.send(MARKETING, to="user-42", via=["email", "sms"])
        assert skips(allowed) == [(Channel.EMAIL, SkipReason.NO_CONSENT)]
        assert allowed.channel is Channel.SMS
        # Other categories need no consent.
        assert (await c.send(TEXT, to="user-42", via=["email", "sms"])).channel is Channel.EMAIL
    assert (s.email.calls, s.sms.calls) == (1, 1)


async def test_a_category_that_must_not_reroute_stays_on_its_channel() -> None:
    s = Shop(policies={"otp": Policy(reroute=False)}, retry=NO_RETRY)
    async with s.client as c:
        await c.profiles.upsert(ANN)
        s.sms.fail(ErrorCategory.INVALID_RECIPIENT)
        otp = await c.send(OTP, to="user-42", via=["sms", "email"])
        assert not otp.ok
        assert otp.status is DeliveryStatus.REJECTED
        assert [(a.channel, a.outcome) for a in otp.attempts] == [
            (Channel.SMS, AttemptOutcome.FAILED)
        ]
        assert s.email.calls == 0
        # A skipped channel is not a try: the next one is used.
        await c.profiles.opt_out("user-42", "sms")
        skipped = await c.send(OTP, to="user-42", via=["sms", "email"])
        assert skipped.channel is Channel.EMAIL
        await c.profiles.opt_in("user-42", "sms")
        # Other categories move on as usual.
        s.sms.fail(ErrorCategory.INVALID_RECIPIENT)
        alert = await c.send(TEXT, to="user-42", via=["sms", "email"])
        assert alert.channel is Channel.EMAIL


async def test_a_frequency_cap_skips_the_fourth_message_of_a_day() -> None:
    cap = Policy(cap=FrequencyCap(count=3, per=timedelta(days=1)))
    s = Shop(policies={"marketing": cap})
    async with s.client as c:
        await c.profiles.upsert(ANN)
        for _ in range(3):
            assert (await c.send(MARKETING, to="user-42")).ok
            s.clock.advance(timedelta(minutes=10))
        capped = await c.send(MARKETING, to="user-42")
        assert not capped.ok
        assert skips(capped) == [(Channel.EMAIL, SkipReason.FREQUENCY_CAPPED)]
        assert s.email.calls == 3
        # Other categories and anonymous recipients are not capped.
        assert (await c.send(TEXT, to="user-42")).ok
        assert (await c.send(MARKETING, to=Recipient(email="ann@example.com"))).ok
        # One day after the first send, one message has left the window.
        s.clock.advance(timedelta(days=1) - timedelta(minutes=30))
        assert (await c.send(MARKETING, to="user-42")).ok
        assert not (await c.send(MARKETING, to="user-42")).ok
        s.clock.advance(timedelta(minutes=10))
        assert (await c.send(MARKETING, to="user-42")).ok
        # The capped sends are in the history, with why.
        history = await c.history("user-42")
        reasons = [h.reason for h in history if h.kind == "message" and h.reason]
        assert reasons == ["frequency_capped", "frequency_capped"]


async def test_a_cap_counts_messages_sent_at_the_same_moment() -> None:
    """Three sends at one instant, then exactly one day later: the window has moved on."""
    cap = Policy(cap=FrequencyCap(count=3, per=timedelta(days=1)))
    s = Shop(policies={"marketing": cap})
    async with s.client as c:
        await c.profiles.upsert(ANN)
        for _ in range(3):
            assert (await c.send(MARKETING, to="user-42")).ok
        assert not (await c.send(MARKETING, to="user-42")).ok
        s.clock.advance(timedelta(days=1))
        assert (await c.send(MARKETING, to="user-42")).ok
    assert s.email.calls == 4


async def test_a_flow_step_does_not_count_against_its_own_cap() -> None:
    """A step's message is in the store before it is sent: the cap must not see it twice."""
    cap = Policy(cap=FrequencyCap(count=1, per=timedelta(days=1)))
    s = Shop(policies={"marketing": cap})
    flow = Flow(name="promo", category="marketing", steps=[Step(via="email", message=TEXT)])
    async with s.client as c:
        await c.profiles.upsert(ANN)
        await c.start(flow, to="user-42")
        assert await c.run_due() == 1
        assert s.email.calls == 1
        # The second run's step is over the cap: one marketing message a day.
        await c.start(flow, to="user-42")
        assert await c.run_due() == 1
        assert s.email.calls == 1
        history = await c.history("user-42")
        reasons = [h.reason for h in history if h.kind == "message" and h.reason]
        assert reasons == ["frequency_capped"]


async def test_transactional_messages_ignore_caps_and_quiet_hours() -> None:
    s = Shop(
        clock=VirtualClock(start=datetime(2026, 1, 15, 21, 0, tzinfo=timezone.utc)),
        policies={"receipt": Policy(transactional=True, cap=FrequencyCap(count=0))},
        quiet_hours=QuietHours(start=time(21), end=time(8)),
    )
    receipt = TEXT.model_copy(update={"category": "receipt"})
    async with s.client as c:
        await c.profiles.upsert(ANN)
        for _ in range(2):
            result = await c.send(receipt, to="user-42")
            assert (result.status, result.scheduled_for) == (DeliveryStatus.ACCEPTED, None)
    assert s.email.calls == 2


# -- quiet hours and scheduling ----------------------------------------------------------------


async def test_quiet_hours_hold_a_marketing_message_until_morning() -> None:
    night = datetime(2026, 1, 15, 21, 0, tzinfo=timezone.utc)  # 22:00 in Warsaw
    s = Shop(
        clock=VirtualClock(start=night),
        quiet_hours=QuietHours(start=time(21), end=time(8)),
    )
    async with s.client as c:
        await c.profiles.upsert(ANN)
        result = await c.send(MARKETING, to="user-42")
        assert result.status is DeliveryStatus.SCHEDULED
        assert result.ok
        assert result.scheduled_for == datetime(2026, 1, 16, 7, 0, tzinfo=timezone.utc)
        assert s.email.calls == 0
        assert await c.run_due() == 0
        s.clock.advance(timedelta(hours=9, minutes=59))  # 07:59 in Warsaw
        assert await c.run_due() == 0
        assert s.email.calls == 0
        s.clock.advance(timedelta(minutes=1))
        assert await c.run_due() == 1
        assert await c.run_due() == 0
        assert [m.to for m in s.email.messages] == ["ann@example.com"]
        assert s.email.messages[0].id == result.message_id
        stored = await c.store.get_message(result.message_id)  # type: ignore[union-attr]
        assert stored is not None
        assert stored.status is DeliveryStatus.ACCEPTED


async def test_quiet_hours_follow_the_recipients_time_zone() -> None:
    night = datetime(2026, 1, 15, 21, 0, tzinfo=timezone.utc)  # 16:00 in New York
    s = Shop(
        clock=VirtualClock(start=night),
        quiet_hours=QuietHours(start=time(21), end=time(8)),
        default_timezone="Europe/Warsaw",
    )
    async with s.client as c:
        new_york = ANN.model_copy(update={"id": "user-7", "timezone": "America/New_York"})
        assert (await c.send(MARKETING, to=new_york)).status is DeliveryStatus.ACCEPTED
        no_zone = ANN.model_copy(update={"id": "user-8", "timezone": None})
        held = await c.send(MARKETING, to=no_zone)  # default_timezone: 22:00 in Warsaw
        assert held.scheduled_for == datetime(2026, 1, 16, 7, 0, tzinfo=timezone.utc)
        # The recipient's own quiet hours win over the client's.
        early_bird = new_york.model_copy(
            update={"quiet_hours": QuietHours(start=time(15), end=time(17))}
        )
        own = await c.send(MARKETING, to=early_bird)
        assert own.scheduled_for == datetime(2026, 1, 15, 22, 0, tzinfo=timezone.utc)
    assert s.email.calls == 1


async def test_recipient_quiet_hours_without_a_store_fail_loudly() -> None:
    outbox = memory("mail", "email")
    night = VirtualClock(start=datetime(2026, 1, 15, 21, 0, tzinfo=timezone.utc))
    sleepy = ANN.model_copy(update={"quiet_hours": QuietHours(start=time(21), end=time(8))})
    async with AsyncClient([outbox], clock=night) as c:
        with pytest.raises(ConfigurationError, match="store"):
            await c.send(MARKETING, to=sleepy)
    assert outbox.calls == 0


async def test_quiet_hours_without_a_store_are_refused_when_the_client_is_made() -> None:
    with pytest.raises(ConfigurationError, match="store"):
        AsyncClient([memory("mail", "email")], quiet_hours=QuietHours(start=time(21), end=time(8)))


async def test_a_held_message_is_dropped_when_the_person_is_forgotten() -> None:
    night = datetime(2026, 1, 15, 21, 0, tzinfo=timezone.utc)
    s = Shop(clock=VirtualClock(start=night), quiet_hours=QuietHours(start=time(21), end=time(8)))
    async with s.client as c:
        await c.profiles.upsert(ANN)
        assert (await c.send(MARKETING, to="user-42")).status is DeliveryStatus.SCHEDULED
        await c.forget("user-42")
        s.clock.advance(timedelta(hours=12))
        assert await c.run_due() == 0
    assert s.email.calls == 0


async def test_a_held_message_honours_an_opt_out_made_meanwhile() -> None:
    night = datetime(2026, 1, 15, 21, 0, tzinfo=timezone.utc)
    s = Shop(clock=VirtualClock(start=night), quiet_hours=QuietHours(start=time(21), end=time(8)))
    async with s.client as c:
        await c.profiles.upsert(ANN)
        assert (await c.send(MARKETING, to="user-42")).status is DeliveryStatus.SCHEDULED
        s.clock.advance(timedelta(hours=1))
        await c.profiles.opt_out("user-42", "email")
        s.clock.advance(timedelta(hours=10))
        assert await c.run_due() == 1
    assert s.email.calls == 0


async def test_a_send_at_inside_quiet_hours_waits_for_the_morning() -> None:
    s = Shop(quiet_hours=QuietHours(start=time(21), end=time(8)))
    evening = datetime(2026, 1, 15, 21, 30, tzinfo=timezone.utc)  # 22:30 in Warsaw
    async with s.client as c:
        await c.profiles.upsert(ANN)
        held = await c.send(MARKETING.model_copy(update={"send_at": evening}), to="user-42")
        assert held.scheduled_for == evening
        s.clock.advance(evening - START)
        await c.run_due()
        assert s.email.calls == 0


async def test_send_at_is_held_by_the_store_and_can_be_canceled(shop: Shop) -> None:
    later = START + timedelta(hours=2)
    message = TEXT.model_copy(update={"send_at": later, "idempotency_key": "promo-1"})
    result = await shop.client.send(message, to="user-42")
    assert (result.status, result.scheduled_for, result.ok) == (
        DeliveryStatus.SCHEDULED,
        later,
        True,
    )
    replay = await shop.client.send(message, to="user-42")
    assert replay.idempotent_replay
    assert replay.message_id == result.message_id
    assert await shop.client.cancel("promo-1") == 1
    assert await shop.client.cancel("promo-1") == 0
    shop.clock.advance(timedelta(hours=3))
    assert await shop.client.run_due() == 0
    assert shop.email.calls == 0


async def test_send_at_fires_once_when_due(shop: Shop) -> None:
    later = START + timedelta(hours=2)
    result = await shop.client.send(TEXT.model_copy(update={"send_at": later}), to="user-42")
    assert result.scheduled_for == later
    shop.clock.advance(timedelta(hours=2))
    assert await shop.client.run_due() == 1
    assert await shop.client.run_due() == 0
    assert shop.email.calls == 1
    past = await shop.client.send(TEXT.model_copy(update={"send_at": START}), to="user-42")
    assert past.status is DeliveryStatus.ACCEPTED
    assert shop.email.calls == 2


# -- state shared through a store file ---------------------------------------------------------


async def test_an_idempotency_key_survives_a_new_client_on_the_same_file(tmp_path: Path) -> None:
    outbox = memory("mail", "email")
    clock = VirtualClock(start=START)
    message = TEXT.model_copy(update={"idempotency_key": "order-42-shipped"})
    async with client(outbox, clock=clock, store=tmp_path / "shop.db") as first:
        sent = await first.send(message, to=ANN)
    async with client(outbox, clock=clock, store=tmp_path / "shop.db") as second:
        again = await second.send(message, to=ANN)
        assert again.idempotent_replay
        assert (again.message_id, again.status, again.provider_message_id) == (
            sent.message_id,
            sent.status,
            sent.provider_message_id,
        )
        clock.advance(timedelta(days=2))  # the key is remembered for a day by default
        assert not (await second.send(message, to=ANN)).idempotent_replay
    assert outbox.calls == 2


async def test_a_failing_provider_is_benched_and_probed_again(tmp_path: Path) -> None:
    clock = VirtualClock(start=START)
    flaky = memory("flaky", "sms")
    steady = memory("steady", "sms")
    flaky.fail_always(ErrorCategory.UNAVAILABLE)
    options: dict[str, Any] = {
        "clock": clock,
        "store": tmp_path / "shop.db",
        "retry": NO_RETRY,
        "health_threshold": 2,
        "health_cooldown": timedelta(minutes=1),
    }
    async with client(flaky, steady, **options) as c:
        for _ in range(2):
            result = await c.send(TEXT, to=ANN, via="sms")
            assert (result.provider, result.attempts[0].outcome) == (
                "steady",
                AttemptOutcome.FAILED,
            )
        benched = await c.send(TEXT, to=ANN, via="sms")
        assert benched.attempts[0].skip_reason is SkipReason.PROVIDER_BENCHED
        assert benched.attempts[0].provider == "flaky"
        assert benched.provider == "steady"
        assert flaky.calls == 2
    # Another client (another process) on the same file sees the bench.
    async with client(flaky, steady, **options) as other:
        result = await other.send(TEXT, to=ANN, via="sms")
        assert skips(result) == [(Channel.SMS, SkipReason.PROVIDER_BENCHED)]
        assert flaky.calls == 2
        # After the cooldown it is tried again; it still fails, so it rests again.
        clock.advance(timedelta(minutes=1))
        probe = await other.send(TEXT, to=ANN, via="sms")
        assert probe.attempts[0].outcome is AttemptOutcome.FAILED
        assert flaky.calls == 3
        assert skips(await other.send(TEXT, to=ANN, via="sms")) == [
            (Channel.SMS, SkipReason.PROVIDER_BENCHED)
        ]
        # Healed: the next probe succeeds and the count starts again.
        flaky.reset()
        clock.advance(timedelta(minutes=1))
        assert (await other.send(TEXT, to=ANN, via="sms")).provider == "flaky"
        assert (await other.send(TEXT, to=ANN, via="sms")).provider == "flaky"
    assert steady.calls == 6


async def test_a_benched_provider_alone_on_its_channel_is_still_tried() -> None:
    flaky = memory("flaky", "sms")
    flaky.fail_always(ErrorCategory.UNAVAILABLE)
    async with client(flaky, retry=NO_RETRY, health_threshold=1) as c:
        for calls in (1, 2):
            result = await c.send(TEXT, to=ANN, via="sms")
            assert skips(result) == []
            assert flaky.calls == calls


async def test_recipient_errors_do_not_bench_a_provider() -> None:
    sms = memory("text", "sms")
    async with client(sms, memory("backup", "sms"), retry=NO_RETRY, health_threshold=1) as c:
        sms.fail(ErrorCategory.INVALID_RECIPIENT, times=3)
        for _ in range(3):
            await c.send(TEXT, to=ANN, via="sms")
        assert skips(await c.send(TEXT, to=ANN, via="sms")) == []
    assert sms.calls == 4


# -- webhooks ----------------------------------------------------------------------------------


async def test_inbound_messages_are_linked_to_the_sender_profile(shop: Shop) -> None:
    webhooks = shop.client.webhooks
    sms = InboundMessage(
        provider="text",
        channel=Channel.SMS,
        sender="+48600700800",
        text="Is it in blue?",
        provider_message_id="in-1",
    )
    assert await webhooks.ingest(sms)
    assert not await webhooks.ingest(sms)
    shop.clock.advance(60)
    whatsapp = InboundMessage(
        provider="wa",
        channel=Channel.WHATSAPP,
        sender="48600700800",
        text="and in red?",
        provider_message_id="wamid.1",
    )
    assert await webhooks.ingest(whatsapp)
    stranger = InboundMessage(
        provider="text", channel=Channel.SMS, sender="+48600000001", text="hi"
    )
    assert await webhooks.ingest(stranger)
    history = await shop.client.history("user-42")
    assert [(h.kind, h.channel, h.text) for h in history] == [
        ("inbound", Channel.SMS, "Is it in blue?"),
        ("inbound", Channel.WHATSAPP, "and in red?"),
    ]


async def test_stop_suppresses_and_start_lifts(shop: Shop) -> None:
    webhooks = shop.client.webhooks
    stop = InboundMessage(
        provider="text",
        channel=Channel.SMS,
        sender="+48600700800",
        text=" stop ",
        provider_message_id="1",
    )
    await webhooks.ingest(stop)
    assert await shop.client.profiles.blocked("sms", "+48600700800") == "suppressed: inbound STOP"
    result = await shop.client.send(TEXT, to="user-42", via=["sms", "email"])
    assert skips(result) == [(Channel.SMS, SkipReason.SUPPRESSED)]
    assert shop.sms.calls == 0
    # A STOP on SMS does not stop email, nor WhatsApp.
    assert await shop.client.profiles.blocked("whatsapp", "+48600700800") is None
    start = stop.model_copy(update={"text": "Start!", "provider_message_id": "2"})
    await webhooks.ingest(start)
    assert await shop.client.profiles.blocked("sms", "+48600700800") is None
    assert (await shop.client.send(TEXT, to="user-42", via="sms")).ok
    chatter = stop.model_copy(update={"text": "please stop by", "provider_message_id": "3"})
    await webhooks.ingest(chatter)
    assert await shop.client.profiles.blocked("sms", "+48600700800") is None


async def test_handle_verifies_stores_and_returns_callbacks() -> None:
    clock = VirtualClock(start=START)
    email = ScriptedProvider(channel="email", clock=clock, name="mail")
    email.then(Script.accept(sent=1, delivered=60, opened=3600, duplicate=True))
    async with client(email, clock=clock) as c:
        await c.profiles.upsert(ANN)
        result = await c.send(TEXT, to="user-42")
        store = c.store
        assert store is not None
        clock.advance(60)
        requests = email.due_callbacks()
        assert len(requests) == 4  # sent and delivered, each twice
        handled = [event for r in requests for event in await c.webhooks.handle("mail", r)]
        assert [getattr(e, "status", None) for e in handled] == [
            DeliveryStatus.SENT,
            DeliveryStatus.SENT,
            DeliveryStatus.DELIVERED,
            DeliveryStatus.DELIVERED,
        ]
        stored = await store.get_message(result.message_id)
        assert stored is not None
        assert stored.status is DeliveryStatus.DELIVERED
        assert stored.delivered_at == START + timedelta(seconds=60)

        clock.advance(3600)
        opened, duplicate = email.due_callbacks()
        assert duplicate == opened
        tampered = opened.model_copy(update={"body": opened.body.replace(b"opened", b"clicked")})
        with pytest.raises(WebhookVerificationError):
            await c.webhooks.handle("mail", tampered)
        unsigned = opened.model_copy(update={"headers": {"content-type": "application/json"}})
        with pytest.raises(WebhookVerificationError):
            await c.webhooks.handle("mail", unsigned)
        stored = await store.get_message(result.message_id)
        assert stored is not None
        assert (stored.opened_at, stored.clicked_at) == (None, None)
        with pytest.raises(ConfigurationError, match="nope"):
            await c.webhooks.handle("nope", opened)

        [event] = await c.webhooks.handle(email, opened)
        assert isinstance(event, DeliveryEvent)
        assert event.event is EventType.OPENED
        history = await c.history("user-42")
        assert [(h.kind, h.status or h.event) for h in history] == [
            ("message", DeliveryStatus.ACCEPTED),
            ("status", DeliveryStatus.SENT),
            ("status", DeliveryStatus.DELIVERED),
            ("event", EventType.OPENED),
        ]


async def test_a_callback_faster_than_the_send_is_applied_later() -> None:
    """An event for a provider id not yet recorded is kept, then applied by the send."""
    clock = VirtualClock(start=START)
    email = ScriptedProvider(channel="email", clock=clock, name="mail")
    async with client(email, clock=clock) as c:
        early = DeliveryEvent(
            provider="mail",
            provider_message_id="mail-1",  # the id the next send will get
            status=DeliveryStatus.DELIVERED,
            event_id="early",
            occurred_at=START,
        )
        assert await c.webhooks.ingest(early)
        result = await c.send(TEXT, to=ANN)
        assert result.provider_message_id == "mail-1"
        stored = await c.store.get_message(result.message_id)  # type: ignore[union-attr]
        assert stored is not None
        assert stored.status is DeliveryStatus.DELIVERED


# -- the customer view -------------------------------------------------------------------------


async def test_history_forget_and_the_opt_out_that_outlives_it(shop: Shop) -> None:
    client_ = shop.client
    sent = await client_.send(TEXT, to="user-42")
    shop.clock.advance(60)
    await client_.webhooks.ingest(
        DeliveryEvent(
            provider="mail",
            provider_message_id=sent.provider_message_id,
            status=DeliveryStatus.DELIVERED,
            event_id="d1",
        )
    )
    shop.clock.advance(60)
    await client_.webhooks.ingest(
        InboundMessage(provider="text", channel=Channel.SMS, sender="+48600700800", text="STOP")
    )
    shop.clock.advance(60)
    await client_.record_event("user-42", "purchase", {"order": 42})
    shop.clock.advance(60)
    skipped = await client_.send(TEXT, to="user-42", via="sms")
    assert not skipped.ok
    history = await client_.history("user-42")
    assert [(h.kind, h.at) for h in history] == [
        ("message", START),
        ("status", START + timedelta(minutes=1)),
        ("inbound", START + timedelta(minutes=2)),
        ("business_event", START + timedelta(minutes=3)),
        ("message", START + timedelta(minutes=4)),
    ]
    assert history[-1].reason == "suppressed"

    erased = await client_.forget("user-42")
    assert erased["profiles"] == 1
    assert erased["messages"] == 2
    assert erased["inbound"] == 1
    assert await client_.history("user-42") == []
    assert await client_.profiles.get("user-42") is None
    assert await client_.profiles.find("email", "ann@example.com") is None
    # The STOP stays honoured, for whoever gives that number again.
    assert await client_.profiles.blocked("sms", "+48600700800") == "suppressed: inbound STOP"
    again = await client_.send(TEXT, to=Recipient(phone="+48600700800"), via="sms")
    assert skips(again) == [(Channel.SMS, SkipReason.SUPPRESSED)]
    assert shop.sms.calls == 0


async def test_report_counts_per_channel_and_provider(shop: Shop) -> None:
    client_ = shop.client
    first = await client_.send(TEXT, to="user-42", via="email")
    await client_.send(TEXT, to="user-42", via="sms")
    await client_.profiles.suppress("sms", "+48600700800")
    await client_.send(TEXT, to="user-42", via="sms")
    await client_.webhooks.ingest(
        DeliveryEvent(
            provider="mail",
            provider_message_id=first.provider_message_id,
            status=DeliveryStatus.DELIVERED,
            event_id="d1",
        )
    )
    shop.clock.advance(60)
    report = await client_.report(since=START, by="channel")
    assert report.total.messages == 3
    email, sms = report.row("email"), report.row("sms")
    assert (email.sent, email.delivered, email.delivery_rate) == (1, 1, 1.0)
    assert (sms.sent, sms.delivered, sms.delivery_rate) == (1, 0, 0.0)
    assert (sms.messages, sms.skipped) == (2, 1)  # the suppressed send counts for sms
    by_provider = await client_.report(since=START, by="provider")
    assert [row.key for row in by_provider.rows] == ["mail", "text", None]  # a skip has none
    later = await client_.report(since=START + timedelta(seconds=1))
    assert later.total.messages == 0
    with pytest.raises(ValueError, match="by must be"):
        await client_.report(since=START, by="address")


async def test_prune_keeps_the_recent_past(shop: Shop) -> None:
    old = await shop.client.send(TEXT, to="user-42")
    shop.clock.advance(timedelta(days=31))
    new = await shop.client.send(TEXT, to="user-42")
    assert await shop.client.prune(timedelta(days=30)) == 1
    history = await shop.client.history("user-42")
    assert [h.message_id for h in history] == [new.message_id]
    store = shop.client.store
    assert store is not None
    assert await store.get_message(old.message_id) is None
    assert await shop.client.prune(timedelta(days=30)) == 0


# -- later additions ----------------------------------------------------------------------------


async def test_upsert_without_preferences_keeps_the_stored_ones(shop: Shop) -> None:
    await shop.client.profiles.opt_out("user-42", "email")
    await shop.client.profiles.set_preference("user-42", "marketing", "sms", True)
    synced = await shop.client.profiles.upsert({"id": "user-42", "email": "ann@example.com"})
    assert synced.preferences.opted_out == frozenset({Channel.EMAIL})
    assert synced.preferences.categories == {"marketing": {Channel.SMS: True}}
    stored = await shop.client.profiles.get("user-42")
    assert stored is not None
    assert stored.preferences == synced.preferences
    # Given explicitly, preferences are replaced.
    reset = await shop.client.profiles.upsert(ANN.model_copy(update={"preferences": Preferences()}))
    assert reset.preferences == Preferences()


async def test_mark_valid_brings_a_dead_address_back(shop: Shop) -> None:
    await shop.client.profiles.mark_invalid("email", "ann@example.com", "hard_bounce")
    assert await shop.client.profiles.mark_valid("email", "Ann@Example.com") is True
    assert await shop.client.profiles.mark_valid("email", "ann@example.com") is False
    assert await shop.client.profiles.blocked("email", "ann@example.com") is None
    result = await shop.client.send(TEXT, to="user-42", via="email")
    assert result.provider == "mail"


async def test_a_number_dead_for_sms_is_still_used_on_whatsapp() -> None:
    whatsapp = memory("wa", "whatsapp")
    sms = memory("text", "sms")
    async with client(whatsapp, sms) as c:
        await c.profiles.upsert(ANN)
        await c.profiles.mark_invalid("sms", "+48600700800", "invalid_recipient")
        result = await c.send(TEXT, to="user-42", via=["sms", "whatsapp"])
    assert result.provider == "wa"
    assert sms.calls == 0


async def test_a_provider_opt_out_suppresses_the_address(shop: Shop) -> None:
    shop.sms.fail(ErrorCategory.OPTED_OUT)
    first = await shop.client.send(TEXT, to="user-42", via=["sms", "email"])
    assert first.provider == "mail"
    assert await shop.client.profiles.blocked("sms", "+48600700800") == "suppressed: opted_out"
    second = await shop.client.send(TEXT, to="user-42", via=["sms", "email"])
    assert skips(second) == [(Channel.SMS, SkipReason.SUPPRESSED)]
    assert shop.sms.calls == 1


async def test_a_key_another_process_is_sending_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    outbox = memory("mail", "email")
    clock = VirtualClock(start=START)
    keyed = TEXT.model_copy(update={"idempotency_key": "order-7"})
    async with client(outbox, store=path, clock=clock) as other:
        assert other.store is not None
        # Another process claimed the key and is still sending (or died while sending).
        expires = clock.now() + timedelta(days=1)
        assert await other.store.claim_idempotent(
            "order-7", now=clock.now(), expires_at=expires
        ) == (
            True,
            None,
        )
    async with client(outbox, store=path, clock=clock) as c:
        result = await c.send(keyed, to=ANN, via="email")
    assert result.status is DeliveryStatus.UNKNOWN
    assert result.idempotent_replay
    assert outbox.calls == 0
    assert 29.9 < sum(clock.sleeps) < 30.1  # it waited for the other sender first


async def test_a_send_that_raises_gives_its_key_back(shop: Shop) -> None:
    broken = Message(template="nope", idempotency_key="k-1")
    with pytest.raises(ConfigurationError):
        await shop.client.send(broken, to="user-42", via="email")
    # The key is free again: a corrected send goes out.
    fixed = TEXT.model_copy(update={"idempotency_key": "k-1"})
    assert (await shop.client.send(fixed, to="user-42", via="email")).ok
