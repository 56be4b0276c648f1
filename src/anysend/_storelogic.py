"""What the SQLite and PostgreSQL stores share: rows, records and status moves, without I/O.

``AsyncSQLiteStore`` (``_async/_store.py``) and ``AsyncPostgresStore`` (``_async/_pgstore.py``)
keep the same tables; what they write and how they read it back is decided here, once: the
rows a store writes, the records it builds from the rows it reads, how an event moves a
message, and the statements both run alike. Each store keeps its own connections,
transactions, locks and dialect. SQL here is written with SQLite's ``?`` placeholders;
:func:`pyformat` gives psycopg's ``%s`` spelling. This module is not generated twice: it is
neither sync nor async.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol

from anysend._events import DeliveryEvent, InboundMessage
from anysend._exceptions import ConfigurationError
from anysend._models import Channel, Recipient
from anysend._records import (
    HistoryEntry,
    Report,
    ReportRow,
    ResultToSave,
    StepState,
    StepUpdate,
    StoredMessage,
    StoredStep,
)
from anysend._results import Attempt, AttemptOutcome
from anysend._status import DeliveryStatus, EventType

_FAILED = ("rejected", "undeliverable", "failed", "expired")
_SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)


class Row(Protocol):
    """A row read by either store: ``sqlite3.Row`` and psycopg's dict rows, read by name."""

    def __getitem__(self, key: str, /) -> Any: ...


#: save_results: a result's messages row. A message begun before its send keeps its creation
#: time; its times and status are rebuilt from its events, as if it were recorded anew.
UPSERT_RESULT = (
    "INSERT INTO messages (id, recipient_id, category, channel, provider, address,"
    " status, outcome, reason, accepted, flow, run_id, step_id, attempts,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET recipient_id = excluded.recipient_id,"
    " category = excluded.category, channel = excluded.channel,"
    " provider = excluded.provider, address = excluded.address,"
    " status = excluded.status, outcome = excluded.outcome,"
    " reason = excluded.reason, accepted = excluded.accepted, flow = excluded.flow,"
    " run_id = excluded.run_id, step_id = excluded.step_id,"
    " attempts = excluded.attempts, opened_at = NULL, clicked_at = NULL,"
    " delivered_at = NULL, read_at = NULL, updated_at = excluded.updated_at"
)

#: save_results: events stored before their message, now given its id.
ADOPT_EVENTS = (
    "UPDATE events SET message_id = ? WHERE message_id IS NULL"
    " AND provider = ? AND provider_message_id = ?"
)

#: update_steps: one step's change (the rows of :func:`step_update_rows`).
UPDATE_STEP = (
    "UPDATE steps SET state = ?, due_at = COALESCE(?, due_at),"
    " message_id = COALESCE(?, message_id), detail = COALESCE(?, detail),"
    " worker = CASE WHEN ? = 'claimed' THEN worker ELSE NULL END,"
    " lease_until = COALESCE(?, lease_until),"
    " updated_at = ? WHERE id = ?"
)

#: create_run: one step (the rows of :func:`step_rows`).
INSERT_STEP = (
    "INSERT INTO steps (id, run_id, idx, state, due_at, recipient_id, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

#: ingest: the columns of an event, in the order of :func:`event_row`.
EVENT_COLUMNS = (
    "events (dedup, message_id, provider, provider_message_id, kind, value, raw_status,"
    " reason, recipient, occurred_at, received_at, raw)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

#: save_inbound: the columns of an inbound message, in the order of :func:`inbound_row`.
INBOUND_COLUMNS = (
    "inbound (dedup, recipient_id, provider, channel, sender, text, subject,"
    " provider_message_id, received_at, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def pyformat(sql: str) -> str:
    """SQL written here with ``?`` placeholders, in psycopg's ``%s`` style.

    The statements here hold no literal ``?`` or ``%``, so a plain replacement is exact.
    """
    return sql.replace("?", "%s")


def pending_migrations(version: int, migrations: Sequence[str]) -> list[tuple[int, list[str]]]:
    """What a schema at ``version`` still needs: (the version after, its statements) each.

    Raises:
        ConfigurationError: a newer anysend wrote the schema (it is refused, not damaged).
    """
    if version > len(migrations):
        raise ConfigurationError(
            f"the store's schema is version {version}; this anysend knows up to "
            f"{len(migrations)}: upgrade anysend"
        )
    return [
        (number, [statement for statement in script.split(";") if statement.strip()])
        for number, script in enumerate(migrations[version:], start=version + 1)
    ]


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def address_hash(channel: Channel | str, address: str) -> str:
    """A stable hash of a channel and address (suppressions outlive ``forget``)."""
    value = f"{Channel(channel).value}:{address.strip().lower()}"
    return hashlib.sha256(value.encode()).hexdigest()


def _contact_points(recipient: Recipient) -> list[tuple[str, str]]:
    points: list[tuple[str, str]] = []
    if recipient.email:
        points.append((Channel.EMAIL.value, recipient.email.lower()))
    if recipient.phone:
        points.append((Channel.SMS.value, recipient.phone))
        points.append((Channel.WHATSAPP.value, recipient.phone))
    for target in recipient.push:
        points.append((Channel.PUSH.value, target.token))
    for channel, chat_id in recipient.chat_ids.items():
        points.append((Channel(channel).value, chat_id))
    if recipient.webhook_url:
        points.append((Channel.WEBHOOK.value, recipient.webhook_url))
    return points


def _normal_address(channel: Channel, address: str) -> str:
    return address.lower() if channel is Channel.EMAIL else address


def _event_dedup(event: DeliveryEvent) -> str:
    if event.event_id:
        return f"{event.provider}:{event.event_id}:{event.status or event.event}"
    parts = [
        event.provider,
        event.provider_message_id or "",
        str(event.status or event.event),
        event.raw_status or "",
        event.occurred_at.isoformat() if event.occurred_at else "",
        event.recipient or "",
        json.dumps(event.raw, sort_keys=True, default=str),
    ]
    return "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _inbound_dedup(message: InboundMessage) -> str:
    if message.provider_message_id:
        return f"{message.provider}:{message.provider_message_id}"
    parts = [
        message.provider,
        message.sender,
        message.text or "",
        message.received_at.isoformat() if message.received_at else "",
        json.dumps(message.raw, sort_keys=True, default=str),
    ]
    return "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# -- rows written ---------------------------------------------------------------------------


def result_row(
    item: ResultToSave, at: float | None
) -> tuple[tuple[Any, ...], list[tuple[str, str, str]]]:
    """The messages row of a result, and its (provider, provider id, message id) refs."""
    result = item.result
    sent = [a for a in result.attempts if a.outcome is AttemptOutcome.SENT]
    if result.ok and (sent or result.status is not DeliveryStatus.SCHEDULED):
        outcome = "sent"  # a provider-side schedule too: the provider took it
    elif result.status is DeliveryStatus.UNKNOWN:
        outcome = "unknown"
    elif result.status is DeliveryStatus.SCHEDULED:
        outcome = "scheduled"
    elif result.attempts and all(a.outcome is AttemptOutcome.SKIPPED for a in result.attempts):
        outcome = "skipped"
    else:
        outcome = "failed"
    reason = None
    if outcome in ("failed", "unknown") and result.error is not None:
        reason = (result.error.reason.value if result.error.reason else None) or (
            result.error.category.value
        )
    elif outcome == "skipped":
        reason = next(
            (a.skip_reason.value for a in reversed(result.attempts) if a.skip_reason), None
        )
    attempts = "[" + ",".join(a.model_dump_json() for a in result.attempts) + "]"
    # A message nothing accepted still counts for the channel and provider that were
    # tried last, so that reports show failures where they happened.
    tried = [a for a in result.attempts if a.outcome is not AttemptOutcome.SKIPPED]
    last = tried[-1] if tried else (result.attempts[-1] if result.attempts else None)
    channel = result.channel or (last.channel if last else None)
    provider = result.provider or (last.provider if last else None)
    address = result.address or (last.address if last else None)
    row = (
        result.message_id,
        item.recipient_id,
        item.category,
        channel,  # str enums: bound as their values
        provider,
        address,
        result.status,
        outcome,
        reason,
        1 if result.ok and sent else 0,  # a provider took it (maybe to send later)
        item.flow,
        item.run_id,
        item.step_id,
        attempts,
        at,
        at,
    )
    refs = [
        (a.provider, a.receipt.provider_message_id, result.message_id)
        for a in sent
        if a.receipt and a.receipt.provider_message_id and a.provider
    ]
    return row, refs


def event_row(
    event: DeliveryEvent, message_id: str | None, *, now: datetime
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """An event as :func:`event_update` reads it, and its row (:data:`EVENT_COLUMNS`)."""
    kind, value = (
        ("status", event.status.value) if event.status else ("event", str(event.event.value))  # type: ignore[union-attr]
    )
    stored: dict[str, Any] = {
        "kind": kind,
        "value": value,
        "raw_status": event.raw_status,
        "reason": event.reason.value if event.reason else None,
        "occurred_at": _ts(event.occurred_at),
        "received_at": _ts(now),
    }
    row = (
        _event_dedup(event),
        message_id or event.message_id,
        event.provider,
        event.provider_message_id,
        kind,
        value,
        stored["raw_status"],
        stored["reason"],
        event.recipient,
        stored["occurred_at"],
        stored["received_at"],
        json.dumps(event.raw, default=str),
    )
    return stored, row


def inbound_row(
    message: InboundMessage, *, now: datetime, recipient_id: str | None
) -> tuple[Any, ...]:
    """An inbound message's row (:data:`INBOUND_COLUMNS`)."""
    return (
        _inbound_dedup(message),
        recipient_id,
        message.provider,
        message.channel.value,
        message.sender,
        message.text,
        message.subject,
        message.provider_message_id,
        _ts(message.received_at or now),
        json.dumps(message.raw, default=str),
    )


def step_rows(
    run_id: str,
    steps: Sequence[tuple[StepState, datetime | None]],
    *,
    recipient_id: str | None,
    now: datetime,
) -> list[tuple[Any, ...]]:
    """A new run's step rows (:data:`INSERT_STEP`): steps are named ``<run id>.<index>``."""
    return [
        (f"{run_id}.{index}", run_id, index, state.value, _ts(due), recipient_id, _ts(now))
        for index, (state, due) in enumerate(steps)
    ]


def step_update_rows(updates: Sequence[StepUpdate], at: float | None) -> list[tuple[Any, ...]]:
    """The rows of :data:`UPDATE_STEP` for step changes, in order."""
    return [
        (
            u.state.value,
            _ts(u.due_at),
            u.message_id,
            u.detail,
            u.state.value,
            _ts(u.lease_until),
            at,
            u.step_id,
        )
        for u in updates
    ]


def ended_runs(updates: Iterable[StepUpdate]) -> list[str]:
    """The runs a step of which closes (each once, in order): they may end now."""
    # Both stores name steps "<run id>.<index>" (create_run, add_digest_item).
    return list(dict.fromkeys(u.step_id.rpartition(".")[0] for u in updates if u.state.is_final))


#: add_digest_item: an item added to an open digest (the row of :func:`digest_added`).
ADD_DIGEST_ITEM = "UPDATE steps SET items = ?, updated_at = ? WHERE id = ?"

#: add_digest_item: a new digest's run and its one step (the rows of :func:`new_digest`).
INSERT_DIGEST_RUN = (
    "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
    " VALUES (?, NULL, ?, ?, ?, 'active', ?)"
)
INSERT_DIGEST_STEP = (
    "INSERT INTO steps (id, run_id, idx, state, due_at, digest_key, recipient_id,"
    " items, updated_at) VALUES (?, ?, -1, 'pending', ?, ?, ?, ?, ?)"
)


def digest_added(step: Row, item: dict[str, Any], *, now: datetime) -> tuple[Any, ...] | None:
    """The row of :data:`ADD_DIGEST_ITEM` adding ``item`` to an open digest's step.

    ``None`` when the digest holds the item already (the same step again: a retried claim).
    """
    items = json.loads(step["items"])
    if any((i.get("run"), i.get("step")) == (item.get("run"), item.get("step")) for i in items):
        return None
    items.append(item)
    return (json.dumps(items, default=str), _ts(now), step["id"])


def new_digest(
    *,
    run_id: str,
    digest_key: str,
    recipient_id: str,
    due_at: datetime,
    item: dict[str, Any],
    now: datetime,
) -> tuple[str, tuple[Any, ...], tuple[Any, ...]]:
    """A digest opened by ``run_id``: its step's id, its run's row and its step's row."""
    # The digest is a run of its own: canceling one contributing run drops that run's item
    # when the digest goes, never the digest with everyone else's items.
    digest_run = uuid.uuid4().hex
    plan = {"kind": "digest", "digest_key": digest_key, "opened_by": run_id}
    run_row = (digest_run, f"digest:{digest_key}", json.dumps(plan), recipient_id, _ts(now))
    step_id = f"{digest_run}.digest"
    step_row = (
        step_id,
        digest_run,
        _ts(due_at),
        digest_key,
        recipient_id,
        json.dumps([item], default=str),
        _ts(now),
    )
    return step_id, run_row, step_row


class EventUpdate(NamedTuple):
    """What one stored event does to its message (see :func:`event_update`)."""

    #: The message's status after the event.
    status: DeliveryStatus
    #: Whether the event moved the status.
    changed: bool
    #: The ``UPDATE`` to run with ``(*params, message_id)``, or ``None``.
    sql: str | None
    params: tuple[Any, ...]
    #: Whether ``sql`` stamps a first open or click: it did if it changed a row.
    stamps: bool


def event_update(status: DeliveryStatus, row: Row) -> EventUpdate:
    """How one stored event moves its message, which is at ``status`` now."""
    at = row["occurred_at"] if row["occurred_at"] is not None else row["received_at"]
    if row["kind"] == "status":
        new = DeliveryStatus(row["value"])
        changed = status.can_move_to(new)
        fields: list[str] = []
        params: list[Any] = []
        # The times are set also when an earlier "read" already moved the status; the
        # earliest report wins: a late "delivered" is older than the "read".
        if new in _SETTLED:
            fields.append(
                "delivered_at = CASE WHEN delivered_at IS NULL OR delivered_at > ?"
                " THEN ? ELSE delivered_at END"
            )
            params += (at, at)
        if new is DeliveryStatus.READ:
            fields.append(
                "read_at = CASE WHEN read_at IS NULL OR read_at > ? THEN ? ELSE read_at END"
            )
            params += (at, at)
        if changed:
            fields.append("status = ?, updated_at = ?")
            params += (new.value, row["received_at"])
            if new.value in _FAILED:
                fields.append("outcome = 'failed', reason = ?")
                params.append(row["reason"] or row["raw_status"])
        sql = f"UPDATE messages SET {', '.join(fields)} WHERE id = ?" if fields else None  # noqa: S608
        return EventUpdate(new if changed else status, changed, sql, tuple(params), False)
    stamp = {"opened": "opened_at", "clicked": "clicked_at"}.get(row["value"])
    if stamp is None:
        return EventUpdate(status, False, None, (), False)
    sql = f"UPDATE messages SET {stamp} = ? WHERE id = ? AND {stamp} IS NULL"  # noqa: S608
    return EventUpdate(status, False, sql, (at,), True)


# -- records read ---------------------------------------------------------------------------


def message_record(row: Row, refs: tuple[str, ...]) -> StoredMessage:
    """A messages row (with its provider ids) as a :class:`StoredMessage`."""
    return StoredMessage(
        id=row["id"],
        recipient_id=row["recipient_id"],
        category=row["category"],
        channel=row["channel"],
        provider=row["provider"],
        address=row["address"],
        provider_message_ids=refs,
        status=row["status"],
        reason=row["reason"],
        opened_at=_dt(row["opened_at"]),
        clicked_at=_dt(row["clicked_at"]),
        delivered_at=_dt(row["delivered_at"]),
        read_at=_dt(row["read_at"]),
        flow=row["flow"],
        run_id=row["run_id"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        attempts=tuple(Attempt.model_validate(a) for a in json.loads(row["attempts"])),
    )


def run_record(row: Row) -> dict[str, Any]:
    """A runs row as the dict ``get_run`` returns."""
    return {
        "id": row["id"],
        "key": row["key"],
        "flow": row["flow"],
        "plan": json.loads(row["plan"]),
        "recipient_id": row["recipient_id"],
        "state": row["state"],
        "created_at": _dt(row["created_at"]),
        "detail": row["detail"],
    }


def step_record(row: Row) -> StoredStep:
    """A steps row as a :class:`StoredStep`."""
    return StoredStep(
        id=row["id"],
        run_id=row["run_id"],
        index=row["idx"],
        state=row["state"],
        due_at=_dt(row["due_at"]),
        message_id=row["message_id"],
        detail=row["detail"],
        attempts=row["claims"],
        items=tuple(json.loads(row["items"])) if row["items"] else (),
    )


def without_invalid(recipient: Recipient, invalid: set[tuple[str, str]]) -> Recipient:
    """A profile with its invalid contact points, ``(channel, address)``, left out."""
    if not invalid:
        return recipient
    update: dict[str, Any] = {}
    if recipient.email and ("email", recipient.email.lower()) in invalid:
        update["email"] = None
    chat_ids = {c: v for c, v in recipient.chat_ids.items() if (Channel(c).value, v) not in invalid}
    if recipient.phone and ("sms", recipient.phone) in invalid:
        update["phone"] = None
        whatsapp = ("whatsapp", recipient.phone)
        if Channel.WHATSAPP not in recipient.chat_ids and whatsapp not in invalid:
            # A number dead for SMS may still be on WhatsApp: keep it there.
            chat_ids[Channel.WHATSAPP] = recipient.phone
    push = tuple(t for t in recipient.push if ("push", t.token) not in invalid)
    if push != recipient.push:
        update["push"] = push
    if chat_ids != recipient.chat_ids:
        update["chat_ids"] = chat_ids
    if recipient.webhook_url and ("webhook", recipient.webhook_url) in invalid:
        update["webhook_url"] = None
    return recipient.model_copy(update=update)


# -- history --------------------------------------------------------------------------------

#: A timeline entry: its time and kind (ties in time are broken by kind, then by the order the
#: entries were made in), and the entry.
Timed = tuple[float, int, HistoryEntry]


def _first_status(row: Row) -> DeliveryStatus:
    attempts = json.loads(row["attempts"])
    for attempt in attempts:
        if attempt["outcome"] == "sent" and attempt.get("receipt"):
            return DeliveryStatus(attempt["receipt"]["status"])
    outcome = row["outcome"]
    if outcome in ("failed", "skipped"):
        status = DeliveryStatus(row["status"])
        return status if status.is_terminal else DeliveryStatus.FAILED
    return DeliveryStatus(row["status"]) if outcome != "sent" else DeliveryStatus.ACCEPTED


def message_entry(m: Row) -> Timed:
    """A message sent (or tried) in a history."""
    return (
        m["created_at"],
        0,
        HistoryEntry(
            at=_dt(m["created_at"]),
            kind="message",
            channel=m["channel"],
            provider=m["provider"],
            message_id=m["id"],
            status=_first_status(m),
            reason=m["reason"] if m["outcome"] in ("skipped", "failed") else None,
            flow=m["flow"],
        ),
    )


def event_entry(m: Row, e: Row) -> Timed:
    """An event of message ``m`` in a history."""
    at = e["occurred_at"] if e["occurred_at"] is not None else e["received_at"]
    is_status = e["kind"] == "status"
    return (
        at,
        1,
        HistoryEntry(
            at=_dt(at),
            kind="status" if is_status else "event",
            channel=m["channel"],
            provider=e["provider"],
            message_id=m["id"],
            status=e["value"] if is_status else None,
            event=None if is_status else e["value"],
            reason=e["reason"],
        ),
    )


def inbound_entry(i: Row) -> Timed:
    """An inbound message in a history."""
    return (
        i["received_at"],
        2,
        HistoryEntry(
            at=_dt(i["received_at"]),
            kind="inbound",
            channel=i["channel"],
            provider=i["provider"],
            event=EventType.INBOUND,
            text=i["text"],
        ),
    )


def business_entry(b: Row) -> Timed:
    """A business event in a history."""
    return (
        b["occurred_at"],
        3,
        HistoryEntry(at=_dt(b["occurred_at"]), kind="business_event", text=b["name"]),
    )


def step_entry(s: Row) -> Timed:
    """A step that sent nothing (skipped, canceled, unknown) in a history."""
    return (
        s["updated_at"],
        4,
        HistoryEntry(
            at=_dt(s["updated_at"]),
            kind="step",
            text=f"step {s['idx']} {s['state']}: {s['detail'] or ''}".strip(),
            reason=s["state"],
            message_id=s["message_id"],
            flow=s["flow"],
        ),
    )


def timeline(entries: list[Timed]) -> list[HistoryEntry]:
    """Entries oldest first; ties by kind, then in the order given (the sort is stable)."""
    entries.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in entries]


# -- report ---------------------------------------------------------------------------------


def report_sql(by: str) -> str:
    """The report's query for a grouping column (checked: it is written into the SQL)."""
    if by not in ("channel", "provider", "category", "flow"):
        raise ValueError("by must be 'channel', 'provider', 'category' or 'flow'")
    return (
        f"SELECT {by} AS key, outcome, status, reason, accepted, delivered_at,"  # noqa: S608
        " read_at, opened_at, clicked_at FROM messages"
        " WHERE created_at >= ? AND created_at < ?"
    )


def tally(rows: Iterable[Row], *, since: datetime, until: datetime, by: str) -> Report:
    """The report of the rows :func:`report_sql` read."""
    groups: dict[str | None, dict[str, Any]] = {}
    total: dict[str, Any] = {}
    for row in rows:
        for bucket in (groups.setdefault(row["key"], {}), total):
            _count(bucket, row)
    return Report(
        since=since,
        until=until,
        by=by,
        rows=tuple(
            ReportRow(key=key, **counts)
            for key, counts in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ),
        total=ReportRow(key=None, **total),
    )


def _count(bucket: dict[str, Any], row: Row) -> None:
    def add(name: str) -> None:
        bucket[name] = bucket.get(name, 0) + 1

    add("messages")
    if row["accepted"]:
        add("sent")
    if row["delivered_at"] is not None:
        add("delivered")
    if row["read_at"] is not None:
        add("read")
    if row["opened_at"] is not None:
        add("opened")
    if row["clicked_at"] is not None:
        add("clicked")
    if row["outcome"] == "failed":
        add("failed")
        if row["accepted"]:
            add("failed_after_sent")
        reasons = bucket.setdefault("failure_reasons", {})
        reason = row["reason"] or row["status"]
        reasons[reason] = reasons.get(reason, 0) + 1
    elif row["outcome"] == "skipped":
        add("skipped")
    elif row["outcome"] == "unknown":
        add("unknown")


# -- suppressions, invalid contact points and provider health -------------------------------

#: blocked: why an address must not be used, one row a reason (see :func:`block_reason`).
BLOCKED = (
    "SELECT 0 AS kind, reason FROM suppressions WHERE channel = ? AND address_hash = ?"
    " UNION ALL SELECT 1, invalid_reason FROM contacts WHERE channel = ?"
    " AND address = ? AND invalid_at IS NOT NULL"
)


def block_reason(kind: int, reason: str) -> str:
    """How ``blocked`` tells a suppression (kind 0) or an invalid contact point (kind 1)."""
    return f"{'contact_invalid' if kind else 'suppressed'}: {reason}"


def group_addresses(
    addresses: Sequence[tuple[Channel, str]],
) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], str | None]]:
    """For hold_reads: per channel, each normal address's hash; and each address unblocked."""
    by_channel: dict[str, dict[str, str]] = {}  # channel: {address: hash}
    for channel, address in addresses:
        channel = Channel(channel)
        normal = _normal_address(channel, address)
        by_channel.setdefault(channel.value, {})[normal] = address_hash(channel, normal)
    held: dict[tuple[str, str], str | None] = {
        (c, a): None for c, known in by_channel.items() for a in known
    }
    return by_channel, held


def benched(
    rows: Sequence[tuple[str, float | None]],
    names: Sequence[str],
    *,
    uncounted: set[str],
    now: datetime,
) -> set[str]:
    """The providers benched at ``now``, from their health rows (provider, benched until).

    ``uncounted`` is kept for record_health: a success after this look needs no write for a
    provider that had no failure counted.
    """
    if not rows:
        uncounted.update(names)
        return set()
    counted = {r[0] for r in rows}
    uncounted.update(name for name in names if name not in counted)
    uncounted.difference_update(counted)
    at = now.timestamp()
    return {r[0] for r in rows if r[1] is not None and r[1] > at}
