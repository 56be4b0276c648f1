"""The SQLite store, called directly: schema, statuses, contacts, steps, reports, erasure.

Most tests use the sync ``SQLiteStore`` (generated from ``AsyncSQLiteStore``) on a file in
``tmp_path``; a few check the async original. Times are passed in explicitly: the store never
reads a clock. Tests on the ``store`` fixture run on PostgreSQL too (``PostgresStore``, marked
``postgres``), except those that read the SQLite file itself; ``tests/test_pgstore.py`` has
what is PostgreSQL's own.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from anysend import (
    AsyncSQLiteStore,
    AsyncStore,
    Attempt,
    AttemptOutcome,
    Channel,
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    ErrorInfo,
    EventType,
    InboundMessage,
    PushTarget,
    Reason,
    Receipt,
    Recipient,
    SendResult,
    SkipReason,
    SQLiteStore,
    StepState,
    Store,
)
from anysend._records import PendingMessage, ResultToSave, StepUpdate

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
ANN = Recipient(
    id="ann",
    email="ann@example.com",
    phone="+48600700800",
    push=(PushTarget(kind="fcm", token="tok-A"), PushTarget(kind="fcm", token="tok-B")),
    chat_ids={Channel.TELEGRAM: "chat-4242"},
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def sent(
    message_id: str = "m1",
    *,
    pmid: str = "p-1",
    provider: str = "mail",
    channel: Channel = Channel.EMAIL,
    address: str = "ann@example.com",
    status: DeliveryStatus = DeliveryStatus.ACCEPTED,
) -> SendResult:
    receipt = Receipt(provider_message_id=pmid, status=status)
    attempt = Attempt(
        channel=channel,
        provider=provider,
        outcome=AttemptOutcome.SENT,
        address=address,
        receipt=receipt,
    )
    return SendResult(
        message_id=message_id,
        status=status,
        channel=channel,
        provider=provider,
        address=address,
        receipt=receipt,
        attempts=(attempt,),
    )


def failed(
    message_id: str,
    *,
    category: ErrorCategory = ErrorCategory.INVALID_RECIPIENT,
    status: DeliveryStatus = DeliveryStatus.REJECTED,
    provider: str = "text",
) -> SendResult:
    attempt = Attempt(
        channel=Channel.SMS,
        provider=provider,
        outcome=AttemptOutcome.FAILED,
        address="+48600700800",
        error=ErrorInfo(category=category, message="refused"),
    )
    return SendResult(message_id=message_id, status=status, attempts=(attempt,))


def skipped(message_id: str, reason: SkipReason = SkipReason.SUPPRESSED) -> SendResult:
    attempt = Attempt(
        channel=Channel.EMAIL, provider=None, outcome=AttemptOutcome.SKIPPED, skip_reason=reason
    )
    return SendResult(message_id=message_id, status=DeliveryStatus.REJECTED, attempts=(attempt,))


def status(
    value: DeliveryStatus,
    *,
    pmid: str = "p-1",
    provider: str = "mail",
    event_id: str | None = None,
    occurred: datetime | None = None,
    reason: Reason | None = None,
    recipient: str | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        provider=provider,
        provider_message_id=pmid,
        status=value,
        raw_status=value.value,
        event_id=event_id if event_id is not None else f"{pmid}:{value.value}",
        occurred_at=occurred,
        reason=reason,
        recipient=recipient,
    )


def event(
    kind: EventType, *, pmid: str = "p-1", event_id: str, occurred: datetime | None = None
) -> DeliveryEvent:
    return DeliveryEvent(
        provider="mail",
        provider_message_id=pmid,
        event=kind,
        event_id=event_id,
        occurred_at=occurred,
    )


def save(store: Store, result: SendResult, minutes: float = 0, **kwargs: object) -> DeliveryStatus:
    kwargs.setdefault("recipient_id", "ann")
    kwargs.setdefault("category", "marketing")
    return store.save_result(result, now=at(minutes), **kwargs)  # type: ignore[arg-type]


def raw_rows(path: Path, table: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608 - a test's table
    finally:
        db.close()


def mentions(path: Path, needle: str) -> list[tuple[str, tuple[object, ...]]]:
    """Every row of every table with a text value containing ``needle`` (case ignored)."""
    db = sqlite3.connect(path)
    found: list[tuple[str, tuple[object, ...]]] = []
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - a test's table
                if any(isinstance(v, str) and needle.lower() in v.lower() for v in row):
                    found.append((table, tuple(row)))
    finally:
        db.close()
    return found


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "anysend.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[SQLiteStore]:
    """The store under test: SQLite on a file, then PostgreSQL in a schema of its own."""
    if request.param == "postgres":
        if "path" in request.fixturenames:
            pytest.skip("the test reads the SQLite file directly")
        if request.node.originalname == "test_claim_due_reads_index_ranges_not_the_table":
            pytest.skip("the test reads SQLite's query plan")
        from anysend._sync._pgstore import PostgresStore

        opened: Any = PostgresStore(request.getfixturevalue("postgres_url"))
    else:
        opened = SQLiteStore(request.getfixturevalue("path"))
    yield opened
    opened.close()


# -- schema ------------------------------------------------------------------------------------


def test_schema_is_created_on_first_use_and_versioned(tmp_path: Path) -> None:
    """Nothing is created until the store is used; then every table, at version 2."""
    path = tmp_path / "nested" / "dir" / "anysend.db"
    store = SQLiteStore(path)
    assert isinstance(store, Store)
    assert not path.exists()
    assert store.schema_version == 2
    assert path.exists()
    store.close()
    tables = {r["name"] for r in raw_rows(path, "sqlite_master") if r["type"] == "table"}
    assert {
        "anysend_meta",
        "messages",
        "events",
        "provider_refs",
        "inbound",
        "profiles",
        "contacts",
        "suppressions",
        "business_events",
        "runs",
        "steps",
        "idempotency",
        "provider_health",
    } <= tables
    assert [tuple(r) for r in raw_rows(path, "anysend_meta")] == [("schema", "2")]


def test_a_newer_schema_is_refused_and_left_alone(path: Path) -> None:
    """A file written by a newer anysend raises ConfigurationError and is not changed."""
    store = SQLiteStore(path)
    save(store, sent())
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE anysend_meta SET value = '3' WHERE key = 'schema'")
    db.commit()
    db.close()
    newer = SQLiteStore(path)
    with pytest.raises(ConfigurationError, match="version 3"):
        newer.get_message("m1")
    with pytest.raises(ConfigurationError, match="upgrade anysend"):
        _ = newer.schema_version
    newer.close()
    assert [tuple(r) for r in raw_rows(path, "anysend_meta")] == [("schema", "3")]
    assert [r["id"] for r in raw_rows(path, "messages")] == ["m1"]


def test_reopening_a_file_keeps_its_data(path: Path) -> None:
    """A second store on the same file (a restart) sees messages, profiles and suppressions."""
    first = SQLiteStore(path)
    first.put_profile(ANN, now=T0)
    save(first, sent())
    first.suppress(Channel.SMS, "+48600700800", "inbound STOP", now=T0)
    first.close()
    second = SQLiteStore(path)
    assert second.schema_version == 2
    stored = second.get_message("m1")
    assert stored is not None
    assert stored.status is DeliveryStatus.ACCEPTED
    assert stored.provider_message_ids == ("p-1",)
    assert second.get_profile("ann") == ANN
    assert second.blocked(Channel.SMS, "+48600700800") == "suppressed: inbound STOP"
    second.close()
    assert [tuple(r) for r in raw_rows(path, "anysend_meta")] == [("schema", "2")]


def test_closing_and_using_again_reopens_the_file(store: SQLiteStore) -> None:
    save(store, sent())
    store.close()
    assert store.get_message("m1") is not None


def test_sqlite_url_forms(tmp_path: Path) -> None:
    """``sqlite:///`` + an absolute path is that path; ``sqlite://`` alone is memory."""
    target = tmp_path / "url.db"
    store = SQLiteStore(f"sqlite:///{target}")
    assert store.path == str(target)
    save(store, sent())
    store.close()
    assert target.exists()
    assert [r["id"] for r in raw_rows(target, "messages")] == ["m1"]
    assert SQLiteStore("sqlite:///relative/anysend.db").path == "relative/anysend.db"
    assert SQLiteStore("sqlite://").path == ":memory:"
    assert SQLiteStore("sqlite:///:memory:").path == ":memory:"
    assert SQLiteStore(target).path == str(target)
    assert repr(SQLiteStore()) == "SQLiteStore(':memory:')"


def test_memory_store_works_without_a_file() -> None:
    store = SQLiteStore()
    assert store.schema_version == 2
    save(store, sent())
    assert store.get_message("m1") is not None
    store.close()


# -- messages and statuses ---------------------------------------------------------------------


def test_save_result_records_the_message_and_its_attempts(store: SQLiteStore) -> None:
    assert store.get_message("m1") is None
    assert save(store, sent(), minutes=1, flow="welcome", run_id="r1") is DeliveryStatus.ACCEPTED
    stored = store.get_message("m1")
    assert stored is not None
    assert (stored.recipient_id, stored.category, stored.channel, stored.provider) == (
        "ann",
        "marketing",
        Channel.EMAIL,
        "mail",
    )
    assert (stored.address, stored.flow, stored.run_id) == ("ann@example.com", "welcome", "r1")
    assert stored.created_at == stored.updated_at == at(1)
    assert [a.outcome for a in stored.attempts] == [AttemptOutcome.SENT]
    assert stored.attempts[0].receipt == Receipt(provider_message_id="p-1")


def test_begin_message_keeps_the_creation_time(store: SQLiteStore) -> None:
    """A message begun before the send keeps its created_at when the result is saved."""
    store.begin_message("m1", now=at(0), recipient_id="ann", category="marketing")
    pending = store.get_message("m1")
    assert pending is not None
    assert pending.status is DeliveryStatus.PENDING
    save(store, sent(), minutes=5)
    stored = store.get_message("m1")
    assert stored is not None
    assert (stored.created_at, stored.updated_at) == (at(0), at(5))


def test_the_same_event_twice_is_stored_once(store: SQLiteStore, path: Path) -> None:
    save(store, sent())
    first = store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(2)), now=at(3))
    assert (first.new, first.message_id, first.status, first.changed) == (
        True,
        "m1",
        DeliveryStatus.DELIVERED,
        True,
    )
    before = store.get_message("m1")
    second = store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(2)), now=at(9))
    assert (second.new, second.changed, second.first_event) == (False, False, False)
    assert store.get_message("m1") == before
    assert len(raw_rows(path, "events")) == 1


def test_an_event_without_an_id_is_deduplicated_by_its_content(store: SQLiteStore) -> None:
    save(store, sent())
    anonymous = DeliveryEvent(
        provider="mail",
        provider_message_id="p-1",
        status=DeliveryStatus.SENT,
        occurred_at=at(1),
        raw={"status": "sent"},
    )
    assert store.ingest(anonymous, now=at(1)).new
    assert not store.ingest(anonymous, now=at(2)).new
    other = anonymous.model_copy(update={"raw": {"status": "sent", "attempt": 2}})
    assert store.ingest(other, now=at(2)).new


def test_statuses_only_move_forward(store: SQLiteStore) -> None:
    """A late ``sent`` after ``delivered`` is kept but changes nothing."""
    save(store, sent())
    delivered = store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(2)), now=at(2))
    late = store.ingest(status(DeliveryStatus.SENT, occurred=at(1)), now=at(3))
    assert delivered.changed
    assert (late.new, late.changed, late.status) == (True, False, DeliveryStatus.DELIVERED)
    stored = store.get_message("m1")
    assert stored is not None
    assert stored.status is DeliveryStatus.DELIVERED
    assert stored.delivered_at == at(2)
    assert stored.updated_at == at(2)


def test_the_first_terminal_status_wins(store: SQLiteStore) -> None:
    save(store, sent())
    bounce = status(DeliveryStatus.UNDELIVERABLE, occurred=at(1), reason=Reason.UNKNOWN_RECIPIENT)
    assert store.ingest(bounce, now=at(1)).changed
    expired = store.ingest(status(DeliveryStatus.EXPIRED, occurred=at(2)), now=at(2))
    assert (expired.changed, expired.status) == (False, DeliveryStatus.UNDELIVERABLE)
    stored = store.get_message("m1")
    assert stored is not None
    assert (stored.status, stored.reason) == (DeliveryStatus.UNDELIVERABLE, "unknown_recipient")


def test_a_bounce_after_delivery_is_terminal(store: SQLiteStore) -> None:
    """Any terminal status may follow ``delivered`` (an email bounces after the MX took it)."""
    save(store, sent())
    store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(1)), now=at(1))
    bounce = store.ingest(status(DeliveryStatus.UNDELIVERABLE, occurred=at(2)), now=at(2))
    assert (bounce.changed, bounce.status) == (True, DeliveryStatus.UNDELIVERABLE)


def test_read_before_delivered_sets_both_times(store: SQLiteStore) -> None:
    """``read`` implies ``delivered``; the late ``delivered`` gives the earlier time."""
    save(store, sent(channel=Channel.WHATSAPP, address="+48600700800"))
    read = store.ingest(status(DeliveryStatus.READ, occurred=at(5)), now=at(5))
    assert (read.changed, read.status) == (True, DeliveryStatus.READ)
    stored = store.get_message("m1")
    assert stored is not None
    assert (stored.status, stored.delivered_at, stored.read_at) == (
        DeliveryStatus.READ,
        at(5),
        at(5),
    )
    delivered = store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(2)), now=at(6))
    assert (delivered.new, delivered.changed) == (True, False)
    stored = store.get_message("m1")
    assert stored is not None
    assert (stored.status, stored.delivered_at, stored.read_at) == (
        DeliveryStatus.READ,
        at(2),
        at(5),
    )


def test_an_event_without_occurred_at_uses_the_time_received(store: SQLiteStore) -> None:
    save(store, sent())
    store.ingest(status(DeliveryStatus.DELIVERED), now=at(7))
    stored = store.get_message("m1")
    assert stored is not None
    assert stored.delivered_at == at(7)


def test_events_for_an_unknown_message_wait_for_it(store: SQLiteStore) -> None:
    """A fast callback stored before the send was recorded is applied by save_result."""
    early = store.ingest(status(DeliveryStatus.DELIVERED, pmid="p-9", occurred=at(1)), now=at(1))
    assert (early.new, early.message_id, early.status, early.changed) == (True, None, None, False)
    opened = store.ingest(event(EventType.OPENED, pmid="p-9", event_id="o1"), now=at(2))
    assert opened.message_id is None
    # Another provider's message with the same id is not this one.
    other = status(DeliveryStatus.UNDELIVERABLE, pmid="p-9", provider="text")
    store.ingest(other, now=at(2))
    assert store.get_message("m9") is None
    assert save(store, sent("m9", pmid="p-9"), minutes=3) is DeliveryStatus.DELIVERED
    stored = store.get_message("m9")
    assert stored is not None
    assert stored.status is DeliveryStatus.DELIVERED
    assert stored.delivered_at == at(1)
    assert stored.opened_at == at(2)
    assert stored.provider_message_ids == ("p-9",)
    again = store.ingest(status(DeliveryStatus.READ, pmid="p-9", occurred=at(4)), now=at(4))
    assert (again.message_id, again.status) == ("m9", DeliveryStatus.READ)


def test_an_event_naming_anysends_message_id_is_applied(store: SQLiteStore) -> None:
    save(store, sent())
    echoed = DeliveryEvent(
        provider="mail", message_id="m1", status=DeliveryStatus.DELIVERED, event_id="e1"
    )
    outcome = store.ingest(echoed, now=at(1))
    assert (outcome.message_id, outcome.status) == ("m1", DeliveryStatus.DELIVERED)
    unknown = echoed.model_copy(update={"message_id": "nope", "event_id": "e2"})
    assert store.ingest(unknown, now=at(1)).message_id is None


def test_opened_and_clicked_report_their_first_time(store: SQLiteStore) -> None:
    save(store, sent())
    first = store.ingest(event(EventType.OPENED, event_id="o1", occurred=at(1)), now=at(1))
    again = store.ingest(event(EventType.OPENED, event_id="o2", occurred=at(2)), now=at(2))
    click = store.ingest(event(EventType.CLICKED, event_id="c1", occurred=at(3)), now=at(3))
    assert (first.new, first.first_event, first.changed) == (True, True, False)
    assert (again.new, again.first_event) == (True, False)
    assert click.first_event
    assert first.status is DeliveryStatus.ACCEPTED  # events do not move the status
    stored = store.get_message("m1")
    assert stored is not None
    assert (stored.opened_at, stored.clicked_at, stored.status) == (
        at(1),
        at(3),
        DeliveryStatus.ACCEPTED,
    )
    complaint = store.ingest(event(EventType.COMPLAINED, event_id="x1"), now=at(4))
    assert (complaint.new, complaint.first_event) == (True, False)


def test_save_result_outcomes_and_reasons(store: SQLiteStore) -> None:
    save(store, failed("f1"))
    save(store, skipped("s1", SkipReason.FREQUENCY_CAPPED))
    stored = store.get_message("f1")
    assert stored is not None
    assert (stored.status, stored.reason) == (DeliveryStatus.REJECTED, "invalid_recipient")
    capped = store.get_message("s1")
    assert capped is not None
    assert capped.reason == "frequency_capped"


def test_count_sent_counts_accepted_messages_in_the_window(store: SQLiteStore) -> None:
    """Sent, pending and unknown messages count; failed and skipped ones do not."""
    save(store, sent("a", pmid="1"), minutes=0)
    save(store, sent("b", pmid="2"), minutes=10)
    save(store, failed("c"), minutes=10)
    save(store, skipped("d", SkipReason.FREQUENCY_CAPPED), minutes=10)
    store.begin_message("e", now=at(10), recipient_id="ann", category="marketing")
    save(store, sent("f", pmid="3"), minutes=10, category="otp")
    save(store, sent("g", pmid="4"), minutes=10, recipient_id="bob")
    assert store.count_sent("ann", "marketing", at(-1)) == 3
    assert store.count_sent("ann", "marketing", at(5)) == 2
    # The window is (since, now]: a message exactly one window ago is out of it.
    assert store.count_sent("ann", "marketing", at(0)) == 2
    assert store.count_sent("ann", "otp", at(-1)) == 1


def test_a_provider_side_schedule_counts_as_sent(store: SQLiteStore) -> None:
    """A provider that took the message to send later accepted it: caps and reports see it."""
    save(store, sent("later", status=DeliveryStatus.SCHEDULED), minutes=0)
    assert store.count_sent("ann", "marketing", at(-1)) == 1
    report = store.report(since=at(0), until=at(1), by="channel")
    assert (report.row("email").sent, report.row("email").messages) == (1, 1)
    # A result the client's store holds for later (nothing sent yet) is not.
    held = SendResult(message_id="held", status=DeliveryStatus.SCHEDULED, scheduled_for=at(60))
    save(store, held, minutes=0)
    assert store.count_sent("ann", "marketing", at(-1)) == 1
    assert store.report(since=at(0), until=at(1), by="channel").total.sent == 1


# -- idempotency -------------------------------------------------------------------------------


def test_idempotency_keys_are_claimed_once_and_expire(store: SQLiteStore) -> None:
    result = sent()
    assert store.claim_idempotent("order-1", now=at(0), expires_at=at(60)) == (True, None)
    # While the owner sends, others see the key taken but no result.
    assert store.claim_idempotent("order-1", now=at(1), expires_at=at(61)) == (False, None)
    store.put_idempotent("order-1", result, expires_at=at(60))
    assert store.claim_idempotent("order-1", now=at(59), expires_at=at(119)) == (False, result)
    assert store.claim_idempotent("order-1", now=at(60), expires_at=at(120)) == (True, None)
    assert store.claim_idempotent("order-2", now=at(0), expires_at=at(60)) == (True, None)


def test_a_released_key_can_be_claimed_again(store: SQLiteStore) -> None:
    assert store.claim_idempotent("k", now=at(0), expires_at=at(60)) == (True, None)
    store.release_idempotent("k")
    assert store.claim_idempotent("k", now=at(0), expires_at=at(60)) == (True, None)
    store.put_idempotent("k", sent(), expires_at=at(60))
    store.release_idempotent("k")  # a finished key is not released
    assert store.claim_idempotent("k", now=at(1), expires_at=at(61))[0] is False


# -- inbound -----------------------------------------------------------------------------------


def test_inbound_messages_are_stored_once(store: SQLiteStore, path: Path) -> None:
    reply = InboundMessage(
        provider="text",
        channel=Channel.SMS,
        sender="+48600700800",
        text="hi",
        provider_message_id="i1",
    )
    assert store.save_inbound(reply, now=at(1), recipient_id="ann")
    assert not store.save_inbound(reply, now=at(2), recipient_id="ann")
    anonymous = InboundMessage(
        provider="text", channel=Channel.SMS, sender="+48600700800", text="hi", received_at=at(3)
    )
    assert store.save_inbound(anonymous, now=at(3), recipient_id=None)
    assert not store.save_inbound(anonymous, now=at(4), recipient_id=None)
    other = anonymous.model_copy(update={"text": "hello"})
    assert store.save_inbound(other, now=at(4), recipient_id=None)
    rows = raw_rows(path, "inbound")
    assert [(r["text"], r["recipient_id"]) for r in rows] == [
        ("hi", "ann"),
        ("hi", None),
        ("hello", None),
    ]


# -- profiles, contacts, suppressions ----------------------------------------------------------


def test_profiles_round_trip_and_index_their_contact_points(store: SQLiteStore) -> None:
    store.put_profile(ANN, now=T0)
    assert store.get_profile("ann") == ANN
    assert store.get_profile("bob") is None
    assert store.find_profile(Channel.EMAIL, "Ann@Example.COM") == "ann"
    assert store.find_profile(Channel.SMS, "+48600700800") == "ann"
    assert store.find_profile(Channel.WHATSAPP, "+48600700800") == "ann"
    assert store.find_profile(Channel.PUSH, "tok-B") == "ann"
    assert store.find_profile(Channel.TELEGRAM, "chat-4242") == "ann"
    assert store.find_profile(Channel.SMS, "+48600700801") is None
    moved = ANN.model_copy(update={"email": "ann@new.example"})
    store.put_profile(moved, now=at(1))
    assert store.find_profile(Channel.EMAIL, "ann@example.com") is None
    assert store.find_profile(Channel.EMAIL, "ann@new.example") == "ann"


def test_a_profile_needs_an_id(store: SQLiteStore) -> None:
    with pytest.raises(ConfigurationError, match="id"):
        store.put_profile(Recipient(email="x@example.com"), now=T0)


def test_invalid_contact_points_are_left_out_of_the_profile(store: SQLiteStore) -> None:
    store.put_profile(ANN, now=T0)
    store.mark_invalid(Channel.EMAIL, "ANN@example.com", "unknown_recipient", now=at(1))
    store.mark_invalid(Channel.PUSH, "tok-A", "token_unregistered", now=at(1))
    store.mark_invalid(Channel.TELEGRAM, "chat-4242", "blocked_by_recipient", now=at(1))
    profile = store.get_profile("ann")
    assert profile is not None
    assert profile.email is None
    assert profile.phone == "+48600700800"
    assert [t.token for t in profile.push] == ["tok-B"]
    assert profile.chat_ids == {}
    assert store.blocked(Channel.EMAIL, "ann@example.com") == "contact_invalid: unknown_recipient"
    assert store.blocked(Channel.PUSH, "tok-A") == "contact_invalid: token_unregistered"
    assert store.blocked(Channel.PUSH, "tok-B") is None
    assert store.find_profile(Channel.EMAIL, "ann@example.com") == "ann"  # still linked
    # A number dead on SMS takes the phone away.
    store.mark_invalid(Channel.SMS, "+48600700800", "invalid_recipient", now=at(2))
    profile = store.get_profile("ann")
    assert profile is not None
    assert profile.phone is None


def test_a_contact_marked_invalid_before_its_profile_stays_invalid(store: SQLiteStore) -> None:
    store.mark_invalid(Channel.EMAIL, "ann@example.com", "hard_bounce", now=T0)
    store.put_profile(ANN, now=at(1))
    profile = store.get_profile("ann")
    assert profile is not None
    assert profile.email is None
    assert store.find_profile(Channel.EMAIL, "ann@example.com") == "ann"


def test_suppressions_are_keyed_by_a_hash_of_the_address(store: SQLiteStore, path: Path) -> None:
    store.suppress(Channel.EMAIL, "Ann@Example.com", "complained", now=T0)
    assert store.blocked(Channel.EMAIL, "ann@example.com") == "suppressed: complained"
    assert store.blocked(Channel.EMAIL, "ANN@EXAMPLE.COM") == "suppressed: complained"
    assert store.blocked(Channel.SMS, "ann@example.com") is None  # per channel
    [row] = raw_rows(path, "suppressions")
    expected = hashlib.sha256(b"email:ann@example.com").hexdigest()
    assert (row["channel"], row["address_hash"], row["address"]) == (
        "email",
        expected,
        "ann@example.com",
    )
    # A suppression wins over an invalid mark in the answer.
    store.mark_invalid(Channel.EMAIL, "ann@example.com", "hard_bounce", now=T0)
    assert store.blocked(Channel.EMAIL, "ann@example.com") == "suppressed: complained"
    assert store.unsuppress(Channel.EMAIL, "ANN@example.com")
    assert not store.unsuppress(Channel.EMAIL, "ann@example.com")
    assert store.blocked(Channel.EMAIL, "ann@example.com") == "contact_invalid: hard_bounce"


def test_suppressing_twice_keeps_one_entry_with_the_latest_reason(
    store: SQLiteStore, path: Path
) -> None:
    store.suppress(Channel.SMS, "+48600700800", "inbound STOP", now=T0)
    store.suppress(Channel.SMS, "+48600700800", "manual", now=at(1))
    assert store.blocked(Channel.SMS, "+48600700800") == "suppressed: manual"
    assert len(raw_rows(path, "suppressions")) == 1


# -- business events ---------------------------------------------------------------------------


def test_business_events(store: SQLiteStore) -> None:
    store.record_business_event("ann", "purchase", {"order": 42}, now=at(10))
    assert store.has_business_event("ann", ["purchase"], at(10))
    assert store.has_business_event("ann", ["signup", "purchase"], at(0))
    assert not store.has_business_event("ann", ["purchase"], at(11))
    assert not store.has_business_event("ann", ["signup"], at(0))
    assert not store.has_business_event("bob", ["purchase"], at(0))
    assert not store.has_business_event("ann", [], at(0))


# -- steps: claiming, leases -------------------------------------------------------------------


def make_run(
    store: Store,
    run_id: str,
    states: list[tuple[StepState, datetime | None]],
    key: str | None = None,
) -> str:
    created, _ = store.create_run(
        run_id=run_id,
        key=key,
        flow="test",
        plan={"kind": "flow", "flow": {}, "to": None, "data": {}},
        recipient_id="ann",
        now=T0,
        steps=states,
    )
    return created


def test_a_renewed_lease_keeps_the_step_from_other_workers(store: SQLiteStore) -> None:
    make_run(store, "r1", [(StepState.PENDING, at(0))])
    lease = timedelta(minutes=5)
    [step] = store.claim_due(now=at(1), worker="w1", lease=lease, limit=10)
    # Just before its send, the worker renews the lease it took at minute 1.
    store.update_step(step.id, StepState.CLAIMED, now=at(5), lease_until=at(5) + lease)
    assert store.claim_due(now=at(7), worker="w2", lease=lease, limit=10) == []
    [again] = store.claim_due(now=at(10), worker="w2", lease=lease, limit=10)
    assert again.id == step.id


def test_claim_due_takes_due_steps_once_and_again_after_the_lease(store: SQLiteStore) -> None:
    make_run(
        store,
        "r1",
        [
            (StepState.PENDING, at(0)),
            (StepState.PENDING, at(30)),
            (StepState.WAITING, None),
        ],
    )
    lease = timedelta(minutes=5)
    [step] = store.claim_due(now=at(1), worker="w1", lease=lease, limit=10)
    assert (step.id, step.index, step.attempts) == ("r1.0", 0, 1)
    assert store.claim_due(now=at(2), worker="w2", lease=lease, limit=10) == []
    assert store.next_due() == at(6)  # the lease ends before the next step is due
    # w1 died: once its lease ran out, another worker takes the step.
    [again] = store.claim_due(now=at(6), worker="w2", lease=lease, limit=10)
    assert (again.id, again.attempts) == ("r1.0", 2)
    store.update_step("r1.0", StepState.SENT, now=at(7), message_id="m1")
    assert store.claim_due(now=at(20), worker="w2", lease=lease, limit=10) == []
    assert store.next_due() == at(30)
    assert [s.id for s in store.claim_due(now=at(30), worker="w2", lease=lease, limit=10)] == [
        "r1.1"
    ]


def test_claim_due_respects_the_limit_and_due_order(store: SQLiteStore) -> None:
    make_run(store, "r1", [(StepState.PENDING, at(3)), (StepState.PENDING, at(1))])
    make_run(store, "r2", [(StepState.PENDING, at(2))])
    lease = timedelta(minutes=5)
    first = store.claim_due(now=at(10), worker="w", lease=lease, limit=2)
    assert [s.id for s in first] == ["r1.1", "r2.0"]
    assert [s.id for s in store.claim_due(now=at(10), worker="w", lease=lease, limit=2)] == ["r1.0"]


def test_release_claims_makes_a_workers_steps_due_again(store: SQLiteStore) -> None:
    make_run(store, "r1", [(StepState.PENDING, at(0)), (StepState.PENDING, at(0))])
    lease = timedelta(hours=1)
    assert len(store.claim_due(now=at(1), worker="w1", lease=lease, limit=10)) == 2
    assert store.release_claims("w2") == 0
    assert store.release_claims("w1") == 2
    assert [s.state for s in store.run_steps("r1")] == [StepState.PENDING, StepState.PENDING]
    assert len(store.claim_due(now=at(1), worker="w2", lease=lease, limit=10)) == 2


def test_a_run_key_is_unique_while_active_and_cancel_closes_its_steps(store: SQLiteStore) -> None:
    assert make_run(store, "r1", [(StepState.PENDING, at(5))], key="cart:1") == "r1"
    created = store.create_run(
        run_id="r2",
        key="cart:1",
        flow="test",
        plan={},
        recipient_id="ann",
        now=T0,
        steps=[(StepState.PENDING, at(5))],
    )
    assert created == ("r1", False)
    assert store.cancel_runs(now=at(1), key="cart:1", reason="canceled: cart:1") == 1
    assert [s.state for s in store.run_steps("r1")] == [StepState.CANCELED]
    run = store.get_run("r1")
    assert run is not None
    assert (run["state"], run["detail"]) == ("canceled", "canceled: cart:1")
    assert store.claim_due(now=at(10), worker="w", lease=timedelta(minutes=1), limit=5) == []
    assert make_run(store, "r3", [(StepState.PENDING, at(5))], key="cart:1") == "r3"


def test_claim_due_from_two_stores_on_one_file_claims_each_step_once(path: Path) -> None:
    """Four threads on two store objects (two connections) race for 200 due steps."""
    setup = SQLiteStore(path)
    expected: list[str] = []
    for run in range(50):
        make_run(setup, f"r{run:02d}", [(StepState.PENDING, at(0))] * 4)
        expected += [f"r{run:02d}.{index}" for index in range(4)]
    setup.close()
    stores = [SQLiteStore(path), SQLiteStore(path)]
    claimed: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(number: int) -> None:
        store = stores[number % 2]
        try:
            barrier.wait(timeout=30)
            while True:
                steps = store.claim_due(
                    now=at(1), worker=f"w{number}", lease=timedelta(hours=1), limit=3
                )
                if not steps:
                    return
                claimed[number] += [s.id for s in steps]
                for step in steps:
                    store.update_step(step.id, StepState.SENT, now=at(1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for store in stores:
        store.close()
    assert not errors
    every = [step for steps in claimed for step in steps]
    assert sorted(every) == sorted(expected)
    assert len(set(every)) == 200
    assert sum(1 for steps in claimed if steps) >= 2  # both stores took part
    assert {r["state"] for r in raw_rows(path, "steps")} == {"sent"}
    assert {r["state"] for r in raw_rows(path, "runs")} == {"done"}


def open_together(path: Path, count: int = 4) -> tuple[list[int], list[BaseException]]:
    """Open ``count`` stores on ``path`` from as many threads at once; their versions, errors."""
    stores = [SQLiteStore(path) for _ in range(count)]
    versions: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def open_it(store: SQLiteStore) -> None:
        try:
            barrier.wait(timeout=30)
            versions.append(store.schema_version)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()
    return versions, errors


def test_several_stores_opening_a_new_file_at_once(tmp_path: Path) -> None:
    """Processes started together on a new file (WAL switch, migration) all get going.

    Switching a file to WAL mode does not wait for other connections' locks, so this used to
    fail with "database is locked" now and then; twenty fresh files make that likely.
    """
    for attempt in range(20):
        path = tmp_path / f"fresh-{attempt}.db"
        versions, errors = open_together(path)
        assert errors == []
        assert versions == [2, 2, 2, 2]
        journal = sqlite3.connect(path)
        assert journal.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        journal.close()


# -- provider health ---------------------------------------------------------------------------


def test_provider_health_benches_after_the_threshold_and_rests(store: SQLiteStore) -> None:
    kwargs = {"threshold": 2, "cooldown": timedelta(minutes=1)}
    store.record_health("a", False, now=at(0), **kwargs)  # type: ignore[arg-type]
    assert store.unhealthy(["a", "b"], now=at(0)) == set()
    store.record_health("a", False, now=at(0), **kwargs)  # type: ignore[arg-type]
    assert store.unhealthy(["a", "b"], now=at(0.5)) == {"a"}
    assert store.unhealthy(["b"], now=at(0.5)) == set()
    assert store.unhealthy([], now=at(0.5)) == set()
    assert store.unhealthy(["a"], now=at(1)) == set()  # probed again
    store.record_health("a", False, now=at(1), **kwargs)  # type: ignore[arg-type]
    assert store.unhealthy(["a"], now=at(1.5)) == {"a"}  # the probe failed: rests again
    store.record_health("a", True, now=at(3), **kwargs)  # type: ignore[arg-type]
    store.record_health("a", False, now=at(3), **kwargs)  # type: ignore[arg-type]
    assert store.unhealthy(["a"], now=at(3)) == set()  # a success reset the count


def test_hold_reads_answers_blocked_and_unhealthy_from_one_read(
    store: SQLiteStore, path: Path
) -> None:
    store.suppress(Channel.EMAIL, "Ann@Example.com", "complained", now=T0)
    store.mark_invalid(Channel.EMAIL, "ann@example.com", "hard_bounce", now=T0)
    store.mark_invalid(Channel.SMS, "+48600700801", "invalid_recipient", now=T0)
    kwargs = {"threshold": 1, "cooldown": timedelta(minutes=5)}
    store.record_health("a", False, now=T0, **kwargs)  # type: ignore[arg-type]
    store.hold_reads(
        [
            (Channel.EMAIL, "ANN@example.com"),
            (Channel.SMS, "+48600700801"),
            (Channel.SMS, "+48600700802"),
        ]
    )
    assert store.unhealthy(["a", "b"], now=T0) == {"a"}
    other = SQLiteStore(path)  # another worker on the same file
    try:
        other.suppress(Channel.SMS, "+48600700802", "manual", now=at(1))
        other.record_health("b", False, now=at(1), **kwargs)  # type: ignore[arg-type]
        # The answers read at hold_reads (a suppression wins over an invalid mark) ...
        assert store.blocked(Channel.EMAIL, "ann@example.com") == "suppressed: complained"
        assert store.blocked(Channel.SMS, "+48600700801") == "contact_invalid: invalid_recipient"
        assert store.blocked(Channel.SMS, "+48600700802") is None  # read before the other's
        assert store.unhealthy(["a", "b"], now=at(1)) == {"a"}  # remembered
        assert store.unhealthy(["b"], now=at(1)) == {"b"}  # not asked before: read
        # ... an address not announced is read as usual ...
        other.suppress(Channel.SMS, "+48600700803", "manual", now=at(1))
        assert store.blocked(Channel.SMS, "+48600700803") == "suppressed: manual"
        # ... and the store's own write makes it look again.
        store.unsuppress(Channel.EMAIL, "ann@example.com")
        assert store.blocked(Channel.EMAIL, "ann@example.com") == "contact_invalid: hard_bounce"
        assert store.blocked(Channel.SMS, "+48600700802") == "suppressed: manual"
        assert store.unhealthy(["a", "b"], now=at(1)) == {"a", "b"}
        store.hold_reads([(Channel.SMS, "+48600700804")])
        other.suppress(Channel.SMS, "+48600700804", "manual", now=at(2))
        assert store.blocked(Channel.SMS, "+48600700804") is None
        store.release_reads()
        assert store.blocked(Channel.SMS, "+48600700804") == "suppressed: manual"
    finally:
        other.close()


# -- the customer view -------------------------------------------------------------------------


def test_history_is_one_timeline_oldest_first(store: SQLiteStore) -> None:
    store.put_profile(ANN, now=T0)
    save(store, sent("m1"), minutes=0)
    # Callbacks arrive out of order; the history follows when they happened.
    store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(2)), now=at(4))
    store.ingest(status(DeliveryStatus.SENT, occurred=at(1)), now=at(4))
    store.ingest(event(EventType.OPENED, event_id="o1", occurred=at(3)), now=at(4))
    reply = InboundMessage(
        provider="text",
        channel=Channel.SMS,
        sender="+48600700800",
        text="thanks",
        received_at=at(5),
    )
    store.save_inbound(reply, now=at(5), recipient_id="ann")
    store.record_business_event("ann", "purchase", {}, now=at(6))
    save(store, failed("m2"), minutes=7)
    save(store, sent("other", pmid="p-x"), minutes=1, recipient_id="bob")
    history = store.history("ann")
    assert [(h.kind, h.at) for h in history] == [
        ("message", at(0)),
        ("status", at(1)),
        ("status", at(2)),
        ("event", at(3)),
        ("inbound", at(5)),
        ("business_event", at(6)),
        ("message", at(7)),
    ]
    message, sent_status, delivered, opened, inbound, purchase, refused = history
    assert (message.message_id, message.status, message.channel, message.provider) == (
        "m1",
        DeliveryStatus.ACCEPTED,
        Channel.EMAIL,
        "mail",
    )
    assert (sent_status.status, delivered.status) == (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
    assert (opened.event, opened.message_id) == (EventType.OPENED, "m1")
    assert (inbound.channel, inbound.text, inbound.event) == (
        Channel.SMS,
        "thanks",
        EventType.INBOUND,
    )
    assert purchase.text == "purchase"
    assert (refused.status, refused.reason) == (DeliveryStatus.REJECTED, "invalid_recipient")
    assert store.history("nobody") == []


def build_report_data(store: Store) -> None:
    # email, marketing: sent, delivered, opened and clicked.
    save(store, sent("e1", pmid="1"), minutes=0)
    store.ingest(status(DeliveryStatus.DELIVERED, pmid="1"), now=at(1))
    store.ingest(event(EventType.OPENED, pmid="1", event_id="o"), now=at(1))
    store.ingest(event(EventType.CLICKED, pmid="1", event_id="c"), now=at(1))
    # email, marketing: sent, then bounced.
    save(store, sent("e2", pmid="2"), minutes=0)
    bounce = status(DeliveryStatus.UNDELIVERABLE, pmid="2", reason=Reason.UNKNOWN_RECIPIENT)
    store.ingest(bounce, now=at(1))
    # sms, otp: accepted and delivered by another provider; one refused at send.
    save(
        store,
        sent("s1", pmid="3", provider="text", channel=Channel.SMS, address="+48600700800"),
        category="otp",
    )
    store.ingest(status(DeliveryStatus.DELIVERED, pmid="3", provider="text"), now=at(1))
    save(store, failed("s2"), category="otp")
    # nothing sent: a skip and an ambiguous timeout (no channel).
    save(store, skipped("k1"))
    unknown = failed("u1", category=ErrorCategory.AMBIGUOUS_TIMEOUT, status=DeliveryStatus.UNKNOWN)
    save(store, unknown)
    # outside the period
    save(store, sent("old", pmid="4"), minutes=-60)
    save(store, sent("late", pmid="5"), minutes=60)


def test_report_by_channel(store: SQLiteStore) -> None:
    build_report_data(store)
    report = store.report(since=at(0), until=at(60), by="channel")
    assert report.by == "channel"
    # A message nothing accepted counts for the channel it was last tried (or skipped) on.
    assert [row.key for row in report.rows] == ["email", "sms"]
    email = report.row("email")
    assert (email.messages, email.sent, email.delivered, email.opened, email.clicked) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert (email.failed, email.failed_after_sent, email.skipped) == (1, 1, 1)
    assert email.failure_reasons == {"unknown_recipient": 1}
    assert (email.delivery_rate, email.open_rate, email.click_rate, email.failure_rate) == (
        0.5,
        0.5,
        0.5,
        0.5,
    )
    sms = report.row("sms")
    assert (sms.messages, sms.sent, sms.delivered, sms.failed, sms.failed_after_sent) == (
        3,
        1,
        1,
        1,
        0,
    )
    assert (sms.unknown, sms.failure_reasons) == (1, {"invalid_recipient": 1})
    assert report.row(None).messages == 0
    total = report.total
    assert (total.key, total.messages, total.sent, total.delivered, total.failed) == (
        None,
        6,
        3,
        2,
        2,
    )
    assert total.failure_reasons == {"unknown_recipient": 1, "invalid_recipient": 1}
    assert report.row("push").messages == 0


def test_report_by_provider_and_category(store: SQLiteStore) -> None:
    build_report_data(store)
    by_provider = store.report(since=at(0), until=at(60), by="provider")
    assert [row.key for row in by_provider.rows] == ["mail", "text", None]
    assert by_provider.row("text").delivered == 1
    by_category = store.report(since=at(0), until=at(60), by="category")
    assert [row.key for row in by_category.rows] == ["marketing", "otp"]
    assert by_category.row("marketing").messages == 4
    assert by_category.row("otp").failure_reasons == {"invalid_recipient": 1}
    everything = store.report(since=at(-60), until=at(61), by="flow")
    assert everything.total.messages == 8
    with pytest.raises(ValueError, match="by must be"):
        store.report(since=at(0), until=at(60), by="address; DROP TABLE messages")


def test_forget_erases_a_person_but_keeps_their_opt_out(store: SQLiteStore, path: Path) -> None:
    """After forget, neither address appears anywhere; the suppression still answers."""
    store.put_profile(ANN, now=T0)
    save(store, sent("m1"), minutes=0)
    store.ingest(status(DeliveryStatus.DELIVERED, recipient="ann@example.com"), now=at(1))
    reply = InboundMessage(
        provider="text", channel=Channel.SMS, sender="+48600700800", text="STOP", received_at=at(2)
    )
    store.save_inbound(reply, now=at(2), recipient_id="ann")
    store.suppress(Channel.SMS, "+48600700800", "inbound STOP", now=at(2))
    store.mark_invalid(Channel.PUSH, "tok-A", "token_unregistered", now=at(2))
    store.record_business_event("ann", "purchase", {"order": 1}, now=at(3))
    store.put_idempotent("order-1", sent("m1"), expires_at=at(3600))
    make_run(store, "r1", [(StepState.PENDING, at(60))])
    save(store, sent("bob-1", pmid="p-b", address="bob@example.com"), recipient_id="bob")

    counts = store.forget("ann")
    assert counts["messages"] == 1
    assert counts["events"] == 1
    assert counts["inbound"] == 1
    assert counts["business_events"] == 1
    assert counts["runs"] == 1
    assert counts["profiles"] == 1
    assert counts["contacts"] == 6  # email, sms, whatsapp, two push tokens, telegram

    for needle in ("ann@example.com", "+48600700800", "tok-A", "tok-B", "chat-4242"):
        assert mentions(path, needle) == [], needle
    [row] = raw_rows(path, "suppressions")
    assert row["address"] is None
    assert store.blocked(Channel.SMS, "+48600700800") == "suppressed: inbound STOP"
    assert store.history("ann") == []
    assert store.get_profile("ann") is None
    assert store.get_message("bob-1") is not None  # another person's data stays
    assert store.forget("ann") == dict.fromkeys(counts, 0)


def test_forget_also_erases_contact_points_dropped_from_the_profile(
    store: SQLiteStore, path: Path
) -> None:
    """An invalid address the profile no longer lists still belongs to the person."""
    store.put_profile(ANN, now=T0)
    store.mark_invalid(Channel.EMAIL, "ann@example.com", "hard_bounce", now=at(1))
    store.suppress(Channel.EMAIL, "ann@example.com", "complained", now=at(1))
    # The profile is saved again without the dead address (as profiles.opt_out does).
    profile = store.get_profile("ann")
    assert profile is not None
    store.put_profile(profile, now=at(2))
    assert store.find_profile(Channel.EMAIL, "ann@example.com") == "ann"
    store.forget("ann")
    assert mentions(path, "ann@example.com") == []
    assert store.blocked(Channel.EMAIL, "ann@example.com") == "suppressed: complained"


def test_prune_deletes_old_records_only(store: SQLiteStore, path: Path) -> None:
    day = timedelta(days=1)
    save(store, sent("old", pmid="1"), minutes=0)
    store.ingest(status(DeliveryStatus.DELIVERED, pmid="1"), now=at(1))
    store.begin_message("stuck", now=at(0), recipient_id="ann", category="marketing")
    store.save_inbound(
        InboundMessage(provider="text", channel=Channel.SMS, sender="+1", text="x", received_at=T0),
        now=T0,
        recipient_id=None,
    )
    store.record_business_event("ann", "purchase", {}, now=T0)
    store.put_idempotent("k-old", sent("old"), expires_at=T0 + day)
    make_run(store, "done", [(StepState.PENDING, T0)])
    store.update_step("done.0", StepState.SENT, now=T0)
    make_run(store, "active", [(StepState.PENDING, T0 + 60 * day)])
    later = T0 + 40 * day
    store.save_result(sent("new", pmid="2"), now=later, recipient_id="ann", category="marketing")
    store.ingest(status(DeliveryStatus.DELIVERED, pmid="2"), now=later)

    removed = store.prune(T0 + 30 * day)
    # a message, an event, an inbound, a key, a finished run; Ann's business event stays:
    # she has an active run, whose until= or cancel_on may still need it
    assert removed == 5
    assert store.get_message("old") is None
    assert store.get_message("stuck") is not None  # a pending message is kept (a crash sign)
    assert store.get_message("new") is not None
    assert [r["provider_message_id"] for r in raw_rows(path, "events")] == ["2"]
    assert raw_rows(path, "inbound") == []
    assert store.claim_idempotent("k-old", now=T0, expires_at=T0 + 90 * day) == (True, None)
    assert store.get_run("done") is None
    assert store.get_run("active") is not None
    assert store.prune(T0 + 30 * day) == 0


# -- schema version 2, batches, one-transaction ingest ---------------------------------------


def _v1_file(path: Path) -> None:
    """A store file as anysend wrote it before version 2: the version 1 schema, by hand."""
    from anysend._sync._store import _MIGRATIONS

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE anysend_meta (key TEXT PRIMARY KEY, value TEXT)")
    for statement in _MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO anysend_meta VALUES ('schema', '1')")
    db.execute(
        "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
        " VALUES ('r1', 'cart', 'test', '{}', 'ann', 'active', ?)",
        (T0.timestamp(),),
    )
    rows = [
        # id, state, due_at, worker, lease_until, claims
        ("r1.0", "pending", at(2).timestamp(), None, None, 0),
        ("r1.1", "claimed", at(0).timestamp(), "dead", at(1).timestamp(), 1),
        ("r1.2", "waiting", None, None, None, 0),
    ]
    for index, (step_id, state, due, worker, lease, claims) in enumerate(rows):
        db.execute(
            "INSERT INTO steps (id, run_id, idx, state, due_at, worker, lease_until, claims,"
            " recipient_id, updated_at) VALUES (?, 'r1', ?, ?, ?, ?, ?, ?, 'ann', ?)",
            (step_id, index, state, due, worker, lease, claims, T0.timestamp()),
        )
    db.commit()
    db.close()


def _indexes(path: Path) -> dict[str, str]:
    return {
        r["name"]: " ".join(r["sql"].split())
        for r in raw_rows(path, "sqlite_master")
        if r["type"] == "index" and r["sql"]
    }


def test_a_version_1_file_is_migrated_to_version_2(path: Path) -> None:
    """The first use migrates an older file in place: new indexes, the data kept."""
    _v1_file(path)
    assert "steps_message" in _indexes(path)
    store = SQLiteStore(path)
    assert store.schema_version == 2
    indexes = _indexes(path)
    assert indexes["steps_due"].endswith("ON steps (due_at) WHERE state = 'pending'")
    assert indexes["steps_lease"].endswith("ON steps (lease_until) WHERE state = 'claimed'")
    assert indexes["steps_recipient"].endswith("ON steps (recipient_id, digest_key)")
    assert indexes["runs_recipient"].endswith("ON runs (recipient_id)")
    assert "steps_message" not in indexes
    run = store.get_run("r1")
    assert run is not None
    assert (run["key"], run["state"]) == ("cart", "active")
    # The dead worker's claim (due first) and the pending step, through the new query.
    claimed = store.claim_due(now=at(5), worker="w", lease=timedelta(minutes=5), limit=10)
    assert [(s.id, s.attempts) for s in claimed] == [("r1.1", 2), ("r1.0", 1)]
    assert [s.state for s in store.run_steps("r1")] == [
        StepState.CLAIMED,
        StepState.CLAIMED,
        StepState.WAITING,
    ]
    store.close()
    assert [tuple(r) for r in raw_rows(path, "anysend_meta")] == [("schema", "2")]
    # Opened again: nothing more to migrate.
    again = SQLiteStore(path)
    assert again.schema_version == 2
    again.close()


def test_claim_due_reads_index_ranges_not_the_table(store: SQLiteStore) -> None:
    """The claim's plan: the two partial indexes, no scan of the steps and no sort of them."""
    for run in range(20):
        make_run(store, f"r{run}", [(StepState.PENDING, at(run))])
    db = store._connect()
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        store.claim_due(now=at(30), worker="w", lease=timedelta(minutes=5), limit=5)
    finally:
        db.set_trace_callback(None)
    (claim,) = [s for s in statements if s.lstrip().startswith("UPDATE steps")]
    plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {claim}")]
    assert any("USING INDEX steps_due" in line for line in plan), plan
    assert any("USING INDEX steps_lease" in line for line in plan), plan
    assert not any(line.startswith("SCAN steps") for line in plan), plan


def test_claim_due_takes_due_steps_and_lapsed_claims_earliest_first(store: SQLiteStore) -> None:
    """One order for both kinds: due time, then creation (not the id) for the same time."""
    lease = timedelta(minutes=1)
    make_run(store, "lapsed", [(StepState.PENDING, at(0))])
    [held] = store.claim_due(now=at(0), worker="dead", lease=lease, limit=10)
    assert held.id == "lapsed.0"
    make_run(store, "r-b", [(StepState.PENDING, at(3))])
    make_run(store, "r-z", [(StepState.PENDING, at(1))])
    make_run(store, "r-a", [(StepState.PENDING, at(1))])  # same time, created later
    make_run(store, "later", [(StepState.PENDING, at(20))])  # not due at minute 10
    make_run(store, "held", [(StepState.PENDING, at(0))])
    store.claim_due(now=at(0), worker="alive", lease=timedelta(hours=1), limit=1)
    first = store.claim_due(now=at(10), worker="w", lease=lease, limit=2)
    assert [(s.id, s.attempts) for s in first] == [("lapsed.0", 2), ("r-z.0", 1)]
    assert [s.id for s in store.claim_due(now=at(10), worker="w", lease=lease, limit=2)] == [
        "r-a.0",
        "r-b.0",
    ]
    assert store.claim_due(now=at(10), worker="w", lease=lease, limit=2) == []
    # The lease of those claimed at minute 10 runs out at minute 11: due again, in order.
    again = store.claim_due(now=at(11), worker="w2", lease=lease, limit=10)
    assert [s.id for s in again] == ["lapsed.0", "r-z.0", "r-a.0", "r-b.0"]
    assert store.claim_due(now=at(11), worker="w2", lease=lease, limit=0) == []


class CountingStore(SQLiteStore):
    """Counts write transactions and reads (explicit read transactions and single reads)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes = 0
        self.reads = 0

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        if write:
            self.writes += 1
        else:
            self.reads += 1
        with super()._tx(write=write) as db:
            yield db

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        self.reads += 1
        return super()._one(sql, params)

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        self.reads += 1
        return super()._all(sql, params)

    def reset(self) -> None:
        self.writes = self.reads = 0


def test_ingest_is_one_transaction_and_says_whether_a_flow_step_waits(path: Path) -> None:
    store = CountingStore(path)
    save(store, sent("plain", pmid="p-plain"))
    make_run(store, "waits", [(StepState.SENT, at(0)), (StepState.WAITING, None)])
    save(store, sent("m-waits", pmid="p-waits"), run_id="waits")
    make_run(store, "over", [(StepState.SENT, at(0))])
    save(store, sent("m-over", pmid="p-over"), run_id="over")

    store.reset()
    plain = store.ingest(status(DeliveryStatus.DELIVERED, pmid="p-plain"), now=at(1))
    assert (store.writes, store.reads) == (1, 0)  # nothing read back, no second transaction
    assert (plain.new, plain.message_id, plain.status, plain.changed) == (
        True,
        "plain",
        DeliveryStatus.DELIVERED,
        True,
    )
    assert (plain.run_id, plain.flow_waits) == (None, False)
    assert (plain.channel, plain.address) == (Channel.EMAIL, "ann@example.com")

    waits = store.ingest(status(DeliveryStatus.DELIVERED, pmid="p-waits"), now=at(1))
    assert (waits.run_id, waits.flow_waits, waits.changed) == ("waits", True, True)
    opened = store.ingest(
        event(EventType.OPENED, pmid="p-waits", event_id="o-1", occurred=at(2)), now=at(2)
    )
    assert (opened.first_event, opened.flow_waits) == (True, True)
    over = store.ingest(status(DeliveryStatus.DELIVERED, pmid="p-over"), now=at(1))
    assert (over.run_id, over.flow_waits) == ("over", False)  # its run has nothing open
    # Nothing changed: the store does not look (the engine would not react anyway).
    again = store.ingest(status(DeliveryStatus.SENT, pmid="p-waits"), now=at(3))
    assert (again.new, again.changed, again.flow_waits) == (True, False, None)
    duplicate = store.ingest(status(DeliveryStatus.DELIVERED, pmid="p-plain"), now=at(4))
    assert (duplicate.new, duplicate.message_id, duplicate.flow_waits) == (False, "plain", None)
    assert store.writes == 6
    assert store.reads == 0
    stored = store.get_message("plain")
    assert stored is not None
    assert (stored.status, stored.delivered_at) == (DeliveryStatus.DELIVERED, at(1))
    store.close()


def test_ingest_finds_the_message_by_anysends_id_when_the_provider_id_is_unknown(
    store: SQLiteStore,
) -> None:
    save(store, sent("m1", pmid="p-1"))
    named = DeliveryEvent(
        provider="mail",
        provider_message_id="p-unknown",
        message_id="m1",
        status=DeliveryStatus.DELIVERED,
        event_id="e-1",
    )
    outcome = store.ingest(named, now=at(1))
    assert (outcome.message_id, outcome.changed, outcome.flow_waits) == ("m1", True, False)


def _table(path: Path, table: str, order: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return [
            tuple(r)
            for r in db.execute(f'SELECT * FROM "{table}" ORDER BY {order}')  # noqa: S608
        ]
    finally:
        db.close()


def test_the_batch_methods_do_what_the_one_item_methods_do(tmp_path: Path) -> None:
    """SQLite's batches (one transaction each) and the defaults of Store (one call per item)."""
    paths = [tmp_path / "batched.db", tmp_path / "defaults.db"]
    stores = [SQLiteStore(p) for p in paths]
    for store in stores:
        make_run(store, "r1", [(StepState.PENDING, at(0)), (StepState.WAITING, None)])
        make_run(store, "r2", [(StepState.PENDING, at(0))])
        # A callback faster than the store: applied when the result is saved.
        store.ingest(status(DeliveryStatus.DELIVERED, pmid="p-2", occurred=at(1)), now=at(1))
    pending = [
        PendingMessage("m1", "ann", "news", "r1", "r1.0", "test"),
        PendingMessage("m2", "ann", None, "r2", "r2.0", "test"),
    ]
    results = [
        ResultToSave(sent("m1", pmid="p-1"), "ann", "news", "r1", "r1.0", "test"),
        ResultToSave(sent("m2", pmid="p-2"), "ann", None, "r2", "r2.0", "test"),
        ResultToSave(failed("m3"), None, None),
    ]
    updates = [
        StepUpdate("r1.1", StepState.PENDING, due_at=at(9)),
        StepUpdate("r1.0", StepState.SENT, message_id="m1"),
        StepUpdate("r2.0", StepState.SENT, message_id="m2", detail="done"),
    ]
    batched, defaults = stores
    batched.begin_messages(pending, now=at(1))
    Store.begin_messages(defaults, pending, now=at(1))
    assert batched.save_results(results, now=at(2)) == [
        DeliveryStatus.ACCEPTED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.REJECTED,
    ]
    assert Store.save_results(defaults, results, now=at(2)) == batched.save_results(
        results, now=at(2)
    )
    batched.update_steps(updates, now=at(3))
    Store.update_steps(defaults, updates, now=at(3))
    for table, order in (
        ("messages", "id"),
        ("provider_refs", "message_id"),
        ("events", "seq"),
        ("steps", "id"),
        ("runs", "id"),
    ):
        assert _table(paths[0], table, order) == _table(paths[1], table, order), table
    assert [r["state"] for r in raw_rows(paths[0], "runs")] == ["active", "done"]
    assert batched.get_runs(["r2", "nope", "r1", "r2"]) == Store.get_runs(
        defaults, ["r2", "nope", "r1", "r2"]
    )
    assert set(batched.get_runs(["r2", "nope", "r1"])) == {"r1", "r2"}
    got = batched.get_messages(["m2", "m1", "nope"])
    assert got == Store.get_messages(defaults, ["m2", "m1", "nope"])
    assert set(got) == {"m1", "m2"}
    assert got["m2"].provider_message_ids == ("p-2",)
    assert got["m2"].delivered_at == at(1)
    for store in stores:
        store.close()


def test_abandoned_messages_go_only_while_pending(store: SQLiteStore) -> None:
    store.begin_messages(
        [PendingMessage("m1", "ann", None), PendingMessage("m2", "ann", None)], now=at(0)
    )
    save(store, sent("m2"), minutes=1)
    store.abandon_messages(["m1", "m2", "nope"])
    assert store.get_message("m1") is None
    assert store.get_message("m2") is not None
    Store.abandon_messages(store, ["m2"])  # the default keeps everything
    assert store.get_message("m2") is not None


def test_a_success_writes_only_when_failures_were_counted(path: Path) -> None:
    store = CountingStore(path)
    kwargs: dict[str, Any] = {"threshold": 2, "cooldown": timedelta(minutes=1)}
    assert store.unhealthy(["a"], now=at(0)) == set()
    store.reset()
    store.record_health("a", True, now=at(0), **kwargs)  # the look before the send saw none
    assert (store.writes, store.reads) == (0, 0)
    store.record_health("b", True, now=at(0), **kwargs)  # not looked at: one read
    assert (store.writes, store.reads) == (0, 1)
    store.record_health("a", False, now=at(1), **kwargs)
    store.reset()
    store.record_health("a", True, now=at(2), **kwargs)  # a failure is counted: reset it
    assert (store.writes, store.reads) == (1, 1)
    assert [r["provider"] for r in raw_rows(path, "provider_health")] == []
    store.record_health("a", False, now=at(3), **kwargs)
    store.record_health("a", False, now=at(3), **kwargs)
    assert store.unhealthy(["a", "b"], now=at(3)) == {"a"}
    store.reset()
    store.record_health("a", True, now=at(5), **kwargs)  # the look found a row: it goes
    assert store.writes == 1
    assert store.unhealthy(["a"], now=at(5)) == set()
    store.close()


def test_a_suppression_wins_over_an_invalid_contact_point(store: SQLiteStore) -> None:
    store.mark_invalid(Channel.SMS, "+48600700800", "unknown_recipient", now=at(0))
    assert store.blocked(Channel.SMS, "+48600700800") == "contact_invalid: unknown_recipient"
    store.suppress(Channel.SMS, "+48600700800", "inbound STOP", now=at(1))
    assert store.blocked(Channel.SMS, "+48600700800") == "suppressed: inbound STOP"


# -- the async original ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_store_records_and_applies_events(tmp_path: Path) -> None:
    store = AsyncSQLiteStore(tmp_path / "async.db")
    assert isinstance(store, AsyncStore)
    assert store.schema_version == 2
    early = await store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(1)), now=at(1))
    assert early.message_id is None
    assert (
        await store.save_result(sent(), now=at(2), recipient_id="ann", category=None)
        is DeliveryStatus.DELIVERED
    )
    duplicate = await store.ingest(status(DeliveryStatus.DELIVERED, occurred=at(1)), now=at(3))
    assert not duplicate.new
    await store.put_profile(ANN, now=at(3))
    await store.suppress(Channel.EMAIL, "ann@example.com", "complained", now=at(3))
    await store.aclose()
    reopened = AsyncSQLiteStore(f"sqlite:///{tmp_path / 'async.db'}")
    stored = await reopened.get_message("m1")
    assert stored is not None
    assert stored.delivered_at == at(1)
    assert await reopened.get_profile("ann") == ANN
    assert await reopened.blocked(Channel.EMAIL, "ann@example.com") == "suppressed: complained"
    assert [h.kind for h in await reopened.history("ann")] == ["status", "message"]
    await reopened.aclose()


@pytest.mark.anyio
async def test_async_store_claims_and_reports(tmp_path: Path) -> None:
    store = AsyncSQLiteStore(tmp_path / "async.db")
    await store.create_run(
        run_id="r1",
        key=None,
        flow="f",
        plan={},
        recipient_id=None,
        now=T0,
        steps=[(StepState.PENDING, at(0))],
    )
    [step] = await store.claim_due(now=at(0), worker="w", lease=timedelta(minutes=1), limit=5)
    assert step.state is StepState.CLAIMED
    assert await store.release_claims("w") == 1
    await store.save_result(sent(), now=at(0), recipient_id=None, category="news", flow="f")
    report = await store.report(since=at(0), until=at(1), by="flow")
    assert report.row("f").sent == 1
    assert await store.prune(at(10)) == 1
    await store.aclose()


def test_a_keyed_send_tried_again_after_a_crash_is_one_record(path: Path) -> None:
    """A send whose worker died before its key's result was kept is recorded once when retried.

    The crash is played by deleting the key's row (as a claim in Redis expires): the second
    client claims the key again and sends, and its result lands on the same message record.
    """
    import anysend
    from anysend._flows import key_message_id
    from anysend.testing import MemoryProvider

    outbox = MemoryProvider()
    message = anysend.Message(text="Order 42 has shipped", idempotency_key="order-42-shipped")
    with anysend.Client([outbox], store=str(path)) as client:
        first = client.send(message, to=ANN, via="sms")
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM idempotency")  # the worker died before remembering the result
    db.close()
    with anysend.Client([outbox], store=str(path)) as client:
        again = client.send(message, to=ANN, via="sms")
        entries = [e for e in client.history("ann") if e.kind == "message"]
    assert first.message_id == again.message_id == key_message_id("order-42-shipped")
    assert not again.idempotent_replay
    assert again.ok  # sent again, with the key: MemoryProvider, like Twilio, takes it once
    assert len(outbox.messages) == 1
    assert [e.message_id for e in entries] == [first.message_id]  # but one message on record
