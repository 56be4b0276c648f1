"""The store: messages, attempts, statuses, flow steps, profiles, inbound messages.

``AsyncStore`` is the interface the clients use; ``AsyncSQLiteStore`` the embedded default
(a file, or ``":memory:"``). This file is the source of truth: ``anysend/_sync/_store.py``
(``Store`` and ``SQLiteStore``) is generated from it by ``scripts/unasync.py``.

SQLite calls are short and made directly (an embedded database has no network round trip);
a file store is opened in WAL mode with a busy timeout, so that several processes (a web app
and its workers) share it. Every change that must be atomic runs in one ``BEGIN IMMEDIATE``
transaction: claiming due steps, ingesting an event, recording a send.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from anysend._events import DeliveryEvent, InboundMessage
from anysend._exceptions import ConfigurationError
from anysend._models import Channel, Recipient
from anysend._records import (
    HistoryEntry,
    IngestOutcome,
    PendingMessage,
    Report,
    ReportRow,
    ResultToSave,
    StepState,
    StepUpdate,
    StoredMessage,
    StoredStep,
)
from anysend._results import Attempt, AttemptOutcome, SendResult
from anysend._status import DeliveryStatus, EventType

__all__ = ["AsyncSQLiteStore", "AsyncStore"]

SCHEMA_VERSION = 2

_FAILED = ("rejected", "undeliverable", "failed", "expired")
_DELIVERED = ("delivered", "read")
_SETTLED = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)
#: Ids per ``IN (...)`` list: well below SQLite's limit on bound parameters.
_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@lru_cache(maxsize=16)
def _health_sql(count: int) -> str:
    marks = ", ".join("?" * count)
    return f"SELECT provider, benched_until FROM provider_health WHERE provider IN ({marks})"  # noqa: S608


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def address_hash(channel: Channel | str, address: str) -> str:
    """A stable hash of a channel and address (suppressions outlive ``forget``)."""
    value = f"{Channel(channel).value}:{address.strip().lower()}"
    return hashlib.sha256(value.encode()).hexdigest()


class AsyncStore(ABC):
    """Where a client keeps what must outlive one call (or one process).

    Implement it to keep anysend's records in another database: every method's docstring
    says what it must do, and ``tests/test_store.py`` shows the SQLite store doing it (a
    contract kit for other stores comes with the PostgreSQL and Redis stores). Times are
    aware UTC datetimes.
    """

    # -- messages -------------------------------------------------------------------------------

    @abstractmethod
    async def begin_message(
        self,
        message_id: str,
        *,
        now: datetime,
        recipient_id: str | None,
        category: str | None,
        run_id: str | None = None,
        step_id: str | None = None,
        flow: str | None = None,
    ) -> None:
        """Record a message about to be sent (status ``pending``).

        After a crash it shows that a provider may have taken the message.
        """

    @abstractmethod
    async def save_result(
        self,
        result: SendResult,
        *,
        now: datetime,
        recipient_id: str | None,
        category: str | None,
        run_id: str | None = None,
        step_id: str | None = None,
        flow: str | None = None,
    ) -> DeliveryStatus:
        """Record a send's outcome and attempts; returns the message's status afterwards.

        Events that arrived for its provider ids before it was recorded are applied now.
        """

    @abstractmethod
    async def get_message(self, message_id: str) -> StoredMessage | None:
        """One message with its attempts, or ``None``."""

    @abstractmethod
    async def ingest(self, event: DeliveryEvent, *, now: datetime) -> IngestOutcome:
        """Store a delivery event once; move its message's status forward only."""

    @abstractmethod
    async def save_inbound(
        self, message: InboundMessage, *, now: datetime, recipient_id: str | None
    ) -> bool:
        """Store an inbound message once; ``False`` if it was stored before."""

    @abstractmethod
    async def count_sent(self, recipient_id: str, category: str, since: datetime) -> int:
        """How many messages of ``category`` were sent to the recipient after ``since``.

        A message created exactly at ``since`` is outside the window (``since`` is
        ``now - per`` of a frequency cap).
        """

    # -- idempotency ----------------------------------------------------------------------------

    @abstractmethod
    async def claim_idempotent(
        self, key: str, *, now: datetime, expires_at: datetime
    ) -> tuple[bool, SendResult | None]:
        """Claim an idempotency key for one send, atomically across processes.

        Returns ``(True, None)`` when this caller owns the key now (it sends, then calls
        :meth:`put_idempotent` or :meth:`release_idempotent`), ``(False, result)`` when the
        key's send is done, and ``(False, None)`` while another caller is sending it.
        """

    @abstractmethod
    async def put_idempotent(self, key: str, result: SendResult, *, expires_at: datetime) -> None:
        """Remember the result of a claimed key's send."""

    @abstractmethod
    async def release_idempotent(self, key: str) -> None:
        """Give up a claimed key whose send raised before it produced a result."""

    # -- profiles, contacts, suppressions ------------------------------------------------------

    @abstractmethod
    async def put_profile(self, recipient: Recipient, *, now: datetime) -> None:
        """Insert or replace a profile (``recipient.id`` is required)."""

    @abstractmethod
    async def get_profile(self, recipient_id: str) -> Recipient | None:
        """A profile with its invalid contact points left out, or ``None``."""

    @abstractmethod
    async def find_profile(self, channel: Channel, address: str) -> str | None:
        """The id of the profile that owns an address on a channel."""

    @abstractmethod
    async def mark_invalid(
        self, channel: Channel, address: str, reason: str, *, now: datetime
    ) -> None:
        """Mark a contact point dead: it is no longer used."""

    @abstractmethod
    async def mark_valid(self, channel: Channel, address: str) -> bool:
        """Use a contact point again; ``False`` if it was not marked invalid."""

    @abstractmethod
    async def suppress(self, channel: Channel, address: str, reason: str, *, now: datetime) -> None:
        """Add an address to the suppression list (STOP, unsubscribe, complaint)."""

    @abstractmethod
    async def unsuppress(self, channel: Channel, address: str) -> bool:
        """Remove an address from the suppression list; ``False`` if it was not on it."""

    @abstractmethod
    async def blocked(self, channel: Channel, address: str) -> str | None:
        """Why an address must not be used, or ``None``.

        The answer is ``"suppressed: <reason>"`` or ``"contact_invalid: <reason>"``.
        """

    # -- business events ------------------------------------------------------------------------

    @abstractmethod
    async def record_business_event(
        self, recipient_id: str, name: str, data: dict[str, Any], *, now: datetime
    ) -> None:
        """Record something the person did (``"purchase"``)."""

    @abstractmethod
    async def has_business_event(
        self, recipient_id: str, names: Sequence[str], since: datetime
    ) -> bool:
        """Whether one of ``names`` was recorded for the person since ``since``."""

    # -- flows ------------------------------------------------------------------------------------

    @abstractmethod
    async def create_run(
        self,
        *,
        run_id: str,
        key: str | None,
        flow: str,
        plan: dict[str, Any],
        recipient_id: str | None,
        now: datetime,
        steps: Sequence[tuple[StepState, datetime | None]],
    ) -> tuple[str, bool]:
        """Create a run and its steps; returns its id and ``True``.

        With a ``key`` already active, returns that run's id and ``False`` instead.
        """

    @abstractmethod
    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a dict, or ``None``.

        Keys: ``id``, ``key``, ``flow``, ``plan``, ``recipient_id``, ``state``,
        ``created_at``, ``detail``.
        """

    @abstractmethod
    async def run_steps(self, run_id: str) -> list[StoredStep]:
        """The steps of a run, in order."""

    @abstractmethod
    async def cancel_runs(
        self,
        *,
        now: datetime,
        key: str | None = None,
        recipient_id: str | None = None,
        event: str | None = None,
        run_id: str | None = None,
        reason: str,
    ) -> int:
        """Cancel active runs; returns how many.

        Runs are picked by key, by id, or as a recipient's runs whose flow cancels on
        ``event``; their waiting and pending steps become ``canceled``.
        """

    @abstractmethod
    async def release_claims(self, worker: str) -> int:
        """Make the steps a worker holds due again (a restarted worker with the same id)."""

    @abstractmethod
    async def claim_due(
        self, *, now: datetime, worker: str, lease: timedelta, limit: int
    ) -> list[StoredStep]:
        """Atomically claim up to ``limit`` due steps.

        Steps whose worker's lease ran out are due again. No two workers ever claim the
        same step at once.
        """

    @abstractmethod
    async def update_step(
        self,
        step_id: str,
        state: StepState,
        *,
        now: datetime,
        due_at: datetime | None = None,
        message_id: str | None = None,
        detail: str | None = None,
        lease_until: datetime | None = None,
    ) -> None:
        """Move a step to ``state`` (and set its due time, message, detail or lease).

        ``lease_until`` renews the claim of a ``claimed`` step (just before its send).
        """

    @abstractmethod
    async def add_digest_item(
        self,
        *,
        run_id: str,
        digest_key: str,
        recipient_id: str,
        due_at: datetime,
        item: dict[str, Any],
        now: datetime,
    ) -> str:
        """Add an item to the recipient's open digest for ``digest_key``.

        When none is open, a digest is opened: a run of its own (``plan["kind"] ==
        "digest"``) with one step due at ``due_at``. ``run_id`` is the contributing run.
        Returns the digest step's id.
        """

    @abstractmethod
    async def next_due(self) -> datetime | None:
        """When the next pending step is due (``None`` when none is)."""

    # -- batches --------------------------------------------------------------------------------
    # Optional: each default calls the one-item method above for every item, so a store that
    # implements only those works. A store that can do better (one query, one transaction)
    # overrides them: the flow engine runs due steps through these.

    async def get_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Several runs at once: ``{run id: run}`` as :meth:`get_run` gives each.

        Runs that do not exist are left out.
        """
        runs: dict[str, dict[str, Any]] = {}
        for run_id in dict.fromkeys(run_ids):
            run = await self.get_run(run_id)
            if run is not None:
                runs[run_id] = run
        return runs

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, StoredMessage]:
        """Several messages at once: ``{message id: message}``; unknown ids are left out."""
        messages: dict[str, StoredMessage] = {}
        for message_id in dict.fromkeys(message_ids):
            message = await self.get_message(message_id)
            if message is not None:
                messages[message_id] = message
        return messages

    async def begin_messages(self, messages: Sequence[PendingMessage], *, now: datetime) -> None:
        """:meth:`begin_message` for several messages (in one transaction, where possible)."""
        for m in messages:
            await self.begin_message(
                m.message_id,
                now=now,
                recipient_id=m.recipient_id,
                category=m.category,
                run_id=m.run_id,
                step_id=m.step_id,
                flow=m.flow,
            )

    async def abandon_messages(self, message_ids: Sequence[str]) -> None:  # noqa: B027
        """Forget messages begun (``pending``) whose send never started.

        Only messages still ``pending`` go. The flow engine calls it when a batch of steps
        stops before their sends (an exception, a canceled task), so that the steps' next
        claim sends them as usual. The default keeps them: they then count as possibly
        sent (sent again with the same idempotency key, or recorded ``unknown``).
        """

    async def save_results(
        self, results: Sequence[ResultToSave], *, now: datetime
    ) -> list[DeliveryStatus]:
        """:meth:`save_result` for several results, in order; each message's status after.

        In one transaction, where possible.
        """
        statuses: list[DeliveryStatus] = []
        for r in results:
            statuses.append(
                await self.save_result(
                    r.result,
                    now=now,
                    recipient_id=r.recipient_id,
                    category=r.category,
                    run_id=r.run_id,
                    step_id=r.step_id,
                    flow=r.flow,
                )
            )
        return statuses

    async def update_steps(self, updates: Sequence[StepUpdate], *, now: datetime) -> None:
        """:meth:`update_step` for several steps, applied in the order given.

        The flow engine lists the steps it arms before the step it closes: in order, a crash
        part-way leaves that step open, and it is finished when claimed again. A store that
        can applies them in one transaction.
        """
        for u in updates:
            await self.update_step(
                u.step_id,
                u.state,
                now=now,
                due_at=u.due_at,
                message_id=u.message_id,
                detail=u.detail,
                lease_until=u.lease_until,
            )

    # -- provider health --------------------------------------------------------------------------

    @abstractmethod
    async def unhealthy(self, names: Sequence[str], *, now: datetime) -> set[str]:
        """The providers among ``names`` that are benched at ``now``."""

    @abstractmethod
    async def record_health(
        self, name: str, ok: bool, *, now: datetime, threshold: int, cooldown: timedelta
    ) -> None:
        """Count a provider-level failure, or reset the count on success.

        ``threshold`` failures in a row bench the provider for ``cooldown``; then it is
        probed again.
        """

    async def hold_reads(self, addresses: Sequence[tuple[Channel, str]]) -> None:  # noqa: B027
        """Optional: a batch of sends is about to check these addresses (a hint).

        A store may then answer :meth:`blocked` for them, and :meth:`unhealthy`, from one
        read until :meth:`release_reads` or its own next write. The default does nothing.
        """

    async def release_reads(self) -> None:  # noqa: B027
        """End what :meth:`hold_reads` began."""

    # -- the customer view ------------------------------------------------------------------------

    @abstractmethod
    async def history(self, recipient_id: str) -> list[HistoryEntry]:
        """One timeline across channels, oldest first."""

    @abstractmethod
    async def report(self, *, since: datetime, until: datetime, by: str) -> Report:
        """Counts per ``channel``, ``provider``, ``category`` or ``flow``."""

    @abstractmethod
    async def forget(self, recipient_id: str) -> dict[str, int]:
        """Erase a person's data; returns how many records of each kind went."""

    @abstractmethod
    async def prune(self, before: datetime) -> int:
        """Delete messages, events and inbound messages older than ``before``."""

    async def aclose(self) -> None:  # noqa: B027 - optional for stores without resources
        """Close the store's connections."""


_MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        recipient_id TEXT,
        category TEXT,
        channel TEXT,
        provider TEXT,
        address TEXT,
        status TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        accepted INTEGER NOT NULL DEFAULT 0,
        opened_at REAL,
        clicked_at REAL,
        delivered_at REAL,
        read_at REAL,
        flow TEXT,
        run_id TEXT,
        step_id TEXT,
        attempts TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX messages_recipient ON messages (recipient_id, created_at);
    CREATE INDEX messages_created ON messages (created_at);
    CREATE TABLE provider_refs (
        provider TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (provider, provider_message_id)
    );
    CREATE INDEX provider_refs_message ON provider_refs (message_id);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        dedup TEXT NOT NULL UNIQUE,
        message_id TEXT,
        provider TEXT NOT NULL,
        provider_message_id TEXT,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        raw_status TEXT,
        reason TEXT,
        recipient TEXT,
        occurred_at REAL,
        received_at REAL NOT NULL,
        raw TEXT
    );
    CREATE INDEX events_message ON events (message_id);
    CREATE INDEX events_unmatched ON events (provider, provider_message_id)
        WHERE message_id IS NULL;
    CREATE TABLE inbound (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        dedup TEXT NOT NULL UNIQUE,
        recipient_id TEXT,
        provider TEXT NOT NULL,
        channel TEXT NOT NULL,
        sender TEXT NOT NULL,
        text TEXT,
        subject TEXT,
        provider_message_id TEXT,
        received_at REAL NOT NULL,
        raw TEXT
    );
    CREATE INDEX inbound_recipient ON inbound (recipient_id);
    CREATE TABLE profiles (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE contacts (
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        recipient_id TEXT,
        invalid_reason TEXT,
        invalid_at REAL,
        PRIMARY KEY (channel, address)
    );
    CREATE INDEX contacts_recipient ON contacts (recipient_id);
    CREATE TABLE suppressions (
        channel TEXT NOT NULL,
        address_hash TEXT NOT NULL,
        address TEXT,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (channel, address_hash)
    );
    CREATE TABLE business_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient_id TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        occurred_at REAL NOT NULL
    );
    CREATE INDEX business_events_recipient ON business_events (recipient_id, name);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        key TEXT,
        flow TEXT NOT NULL,
        plan TEXT NOT NULL,
        recipient_id TEXT,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        ended_at REAL,
        detail TEXT
    );
    CREATE UNIQUE INDEX runs_active_key ON runs (key) WHERE state = 'active' AND key IS NOT NULL;
    CREATE INDEX runs_recipient ON runs (recipient_id, state);
    CREATE TABLE steps (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        state TEXT NOT NULL,
        due_at REAL,
        worker TEXT,
        lease_until REAL,
        claims INTEGER NOT NULL DEFAULT 0,
        message_id TEXT,
        detail TEXT,
        digest_key TEXT,
        recipient_id TEXT,
        items TEXT,
        updated_at REAL NOT NULL
    );
    CREATE INDEX steps_due ON steps (state, due_at);
    CREATE INDEX steps_run ON steps (run_id, idx);
    CREATE INDEX steps_message ON steps (message_id);
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        result TEXT,
        expires_at REAL NOT NULL
    );
    CREATE TABLE provider_health (
        provider TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        benched_until REAL,
        updated_at REAL NOT NULL
    );
    """,
    # version 2: claim_due reads two index ranges (pending steps by due time, then creation;
    # claims by lease end) instead of scanning and sorting the steps. Both indexes are
    # partial: a step is in one only while it is pending or claimed, so claiming and closing
    # it touch them least. No query looks steps up by message (an index every closed step
    # wrote to); a recipient's steps (digests, history, forget) are found without a scan. A
    # run's end no longer moves it in an index (a person has few runs: their state is
    # checked row by row).
    """
    DROP INDEX steps_due;
    CREATE INDEX steps_due ON steps (due_at) WHERE state = 'pending';
    CREATE INDEX steps_lease ON steps (lease_until) WHERE state = 'claimed';
    DROP INDEX steps_message;
    CREATE INDEX steps_recipient ON steps (recipient_id, digest_key);
    DROP INDEX runs_recipient;
    CREATE INDEX runs_recipient ON runs (recipient_id);
    """,
]


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


class AsyncSQLiteStore(AsyncStore):
    """The embedded store: one SQLite file (or memory), created and migrated on first use.

    Args:
        path: a file path, ``"sqlite:///path.db"``, or ``":memory:"`` (the default; gone when
            the process ends).
        busy_timeout: seconds to wait for another process's write lock.

    Several processes may share one file (WAL mode): a web app ingesting callbacks and
    workers running due steps. The schema is versioned; a newer file than this release
    knows is refused rather than damaged.
    """

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, busy_timeout: float = 30.0):
        text = os.fspath(path)
        if text.startswith("sqlite://"):
            # SQLAlchemy's form: sqlite:///relative.db, sqlite:////absolute.db, sqlite://
            text = text[len("sqlite://") :]
            text = text[1:] if text.startswith("/") else text
            text = text or ":memory:"
        self.path = text
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        # Providers with no failure counted, as the last look at the store found them.
        self._uncounted: set[str] = set()
        # Answers read once for a batch of sends (hold_reads), dropped at any write.
        self._held: dict[tuple[str, str], str | None] | None = None
        self._held_health: dict[tuple[str, ...], list[tuple[str, float | None]]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    # -- connection and migrations ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None and self._pid == os.getpid():
            return self._db
        # A store made before os.fork() opens its own connection in the child.
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        db.row_factory = sqlite3.Row
        try:
            if self.path != ":memory:":
                self._use_wal(db)
                # WAL with synchronous=NORMAL: a committed transaction survives the process
                # being killed (it is in the WAL file, written before COMMIT returns); only
                # the checkpoints that copy the WAL into the database file wait for the disk
                # (fsync), so a power loss or an OS crash may lose the last transactions,
                # never corrupt the file (docs/store.md, "Durability").
                db.execute("PRAGMA synchronous=NORMAL")
                # A checkpoint every 10,000 pages (about 40 MB of WAL) rather than SQLite's
                # 1,000: ten times fewer fsyncs, and a page written again and again (an
                # index's last page) is copied once per checkpoint.
                db.execute("PRAGMA wal_autocheckpoint=10000")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        self._pid = os.getpid()
        return db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Switch the file to WAL mode (once per file; it stays so).

        The switch needs the file to itself and SQLite does not wait for it (no busy
        handler): when several processes open a new file at once, it is retried here.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.01)

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS anysend_meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM anysend_meta WHERE key = 'schema'").fetchone()
            version = int(row[0]) if row else 0
            if version > len(_MIGRATIONS):
                raise ConfigurationError(
                    f"the store's schema is version {version}; this anysend knows up to "
                    f"{len(_MIGRATIONS)}: upgrade anysend"
                )
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR REPLACE INTO anysend_meta (key, value) VALUES ('schema', ?)",
                    (str(number),),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        """The schema version of the open store."""
        with self._read() as db:
            row = db.execute("SELECT value FROM anysend_meta WHERE key = 'schema'").fetchone()
            return int(row[0])

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        # Writers take the write lock at once (no deadlock on upgrade); readers do not, so in
        # WAL mode they never wait for another process's writer.
        with self._lock:
            db = self._connect()
            if write:
                # What hold_reads read may change now: blocked() and unhealthy() look again.
                self._held = self._held_health = None
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # One SELECT needs no explicit transaction: SQLite runs it in one of its own (a
        # consistent snapshot), without the two extra round trips of BEGIN and COMMIT.
        with self._lock:
            yield self._connect()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of one SELECT (in a transaction of its own, as :meth:`_read`)."""
        with self._lock:
            row: sqlite3.Row | None = self._connect().execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Every row of one SELECT (in a transaction of its own, as :meth:`_read`)."""
        with self._lock:
            return self._connect().execute(sql, params).fetchall()

    async def aclose(self) -> None:
        """Close the connection (the next call opens it again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- messages -------------------------------------------------------------------------------

    async def begin_message(
        self,
        message_id: str,
        *,
        now: datetime,
        recipient_id: str | None,
        category: str | None,
        run_id: str | None = None,
        step_id: str | None = None,
        flow: str | None = None,
    ) -> None:
        """Record a message about to be sent (status ``pending``)."""
        await self.begin_messages(
            [PendingMessage(message_id, recipient_id, category, run_id, step_id, flow)], now=now
        )

    async def begin_messages(self, messages: Sequence[PendingMessage], *, now: datetime) -> None:
        """Record messages about to be sent (status ``pending``), in one transaction."""
        if not messages:
            return
        at = _ts(now)
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO messages (id, recipient_id, category, status, outcome,"
                " flow, run_id, step_id, created_at, updated_at)"
                " VALUES (?, ?, ?, 'pending', 'pending', ?, ?, ?, ?, ?)",
                [
                    (m.message_id, m.recipient_id, m.category, m.flow, m.run_id, m.step_id, at, at)
                    for m in messages
                ],
            )

    async def abandon_messages(self, message_ids: Sequence[str]) -> None:
        """Delete messages still ``pending`` whose send never started."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return
        with self._tx() as db:
            for chunk in _chunks(ids):
                marks = ", ".join("?" * len(chunk))
                db.execute(
                    f"DELETE FROM messages WHERE outcome = 'pending' AND id IN ({marks})",  # noqa: S608
                    chunk,
                )

    async def save_result(
        self,
        result: SendResult,
        *,
        now: datetime,
        recipient_id: str | None,
        category: str | None,
        run_id: str | None = None,
        step_id: str | None = None,
        flow: str | None = None,
    ) -> DeliveryStatus:
        """Record a send's outcome and apply events that were waiting for it."""
        saved = await self.save_results(
            [ResultToSave(result, recipient_id, category, run_id, step_id, flow)], now=now
        )
        return saved[0]

    async def save_results(
        self, results: Sequence[ResultToSave], *, now: datetime
    ) -> list[DeliveryStatus]:
        """Record several sends' outcomes in one transaction (see :meth:`save_result`)."""
        if not results:
            return []
        at = _ts(now)
        rows: list[tuple[Any, ...]] = []
        refs: list[tuple[str, str, str]] = []
        for item in results:
            row, sent_refs = self._result_row(item, at)
            rows.append(row)
            refs += sent_refs
        statuses = {item.result.message_id: item.result.status for item in results}
        with self._tx() as db:
            # A message begun before its send keeps its creation time; its times and status
            # are rebuilt from its events below, as if it were recorded anew.
            db.executemany(
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
                " delivered_at = NULL, read_at = NULL, updated_at = excluded.updated_at",
                rows,
            )
            if refs:
                db.executemany("INSERT OR REPLACE INTO provider_refs VALUES (?, ?, ?)", refs)
                # Events waiting for their message (one look first: usually there are none).
                if db.execute("SELECT 1 FROM events WHERE message_id IS NULL LIMIT 1").fetchone():
                    db.executemany(
                        "UPDATE events SET message_id = ? WHERE message_id IS NULL"
                        " AND provider = ? AND provider_message_id = ?",
                        [(message_id, provider, pmid) for provider, pmid, message_id in refs],
                    )
            # Events that came before the send was recorded (a fast callback): apply them now.
            ids = list(statuses)
            for chunk in _chunks(ids):
                marks = ", ".join("?" * len(chunk))
                for event in db.execute(
                    f"SELECT * FROM events WHERE message_id IN ({marks}) ORDER BY seq",  # noqa: S608
                    chunk,
                ).fetchall():
                    message_id = event["message_id"]
                    statuses[message_id], _, _ = self._apply(
                        db, message_id, statuses[message_id], event
                    )
        return [statuses[item.result.message_id] for item in results]

    @staticmethod
    def _result_row(
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

    @staticmethod
    def _apply(
        db: sqlite3.Connection,
        message_id: str,
        status: DeliveryStatus,
        row: Mapping[str, Any] | sqlite3.Row,
    ) -> tuple[DeliveryStatus, bool, bool]:
        """Apply one stored event to its message; (status, status changed, first event)."""
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
            if fields:
                db.execute(
                    f"UPDATE messages SET {', '.join(fields)} WHERE id = ?",  # noqa: S608
                    (*params, message_id),
                )
            return (new, True, False) if changed else (status, False, False)
        stamp = {"opened": "opened_at", "clicked": "clicked_at"}.get(row["value"])
        if stamp is None:
            return status, False, False
        cursor = db.execute(
            f"UPDATE messages SET {stamp} = ? WHERE id = ? AND {stamp} IS NULL",  # noqa: S608
            (at, message_id),
        )
        return status, False, cursor.rowcount > 0

    async def get_message(self, message_id: str) -> StoredMessage | None:
        """One message with its attempts, or ``None``."""
        with self._tx(write=False) as db:
            row = db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return None
            refs = db.execute(
                "SELECT provider_message_id FROM provider_refs WHERE message_id = ?",
                (message_id,),
            ).fetchall()
            return self._message(row, tuple(r[0] for r in refs))

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, StoredMessage]:
        """Several messages at once (one read transaction)."""
        rows: list[sqlite3.Row] = []
        refs: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        with self._tx(write=False) as db:
            for chunk in _chunks(ids):
                marks = ", ".join("?" * len(chunk))
                found = db.execute(
                    f"SELECT * FROM messages WHERE id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                if not found:
                    continue
                rows += found
                for message_id, pmid in db.execute(
                    "SELECT message_id, provider_message_id FROM provider_refs"  # noqa: S608
                    f" WHERE message_id IN ({marks}) ORDER BY rowid",
                    chunk,
                ).fetchall():
                    refs.setdefault(message_id, []).append(pmid)
        return {row["id"]: self._message(row, tuple(refs.get(row["id"], ()))) for row in rows}

    @staticmethod
    def _message(row: sqlite3.Row, refs: tuple[str, ...]) -> StoredMessage:
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

    async def ingest(self, event: DeliveryEvent, *, now: datetime) -> IngestOutcome:
        """Store a delivery event once; move its message's status forward only.

        One transaction: the message is found by its provider id (or anysend's id), the
        event stored, the message moved, and whether a flow step may react is told (so the
        flow engine reads nothing back for a message no step waits on).
        """
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
        with self._tx() as db:
            message = None
            # anysend's id, when the event names it, wins over the provider's id (which all the
            # recipients of a batch send share); an event naming a message not recorded yet
            # is kept under that id and applied when the message is (save_results).
            if event.message_id is not None:
                message = db.execute(
                    "SELECT id, status, run_id, channel, address FROM messages WHERE id = ?",
                    (event.message_id,),
                ).fetchone()
            elif event.provider_message_id:
                message = db.execute(
                    "SELECT m.id, m.status, m.run_id, m.channel, m.address FROM provider_refs r"
                    " JOIN messages m ON m.id = r.message_id"
                    " WHERE r.provider = ? AND r.provider_message_id = ?",
                    (event.provider, event.provider_message_id),
                ).fetchone()
            message_id = None if message is None else message[0]
            cursor = db.execute(
                "INSERT OR IGNORE INTO events (dedup, message_id, provider, provider_message_id,"
                " kind, value, raw_status, reason, recipient, occurred_at, received_at, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                ),
            )
            if cursor.rowcount == 0:
                return IngestOutcome(new=False, message_id=message_id)
            if message is None:
                return IngestOutcome(new=True)
            message_id, current, run_id, channel, address = message
            status, changed, first = self._apply(db, message_id, DeliveryStatus(current), stored)
            waits: bool | None = None
            if changed or first:
                waits = run_id is not None and bool(
                    db.execute(
                        "SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = ?"
                        " AND state IN ('waiting', 'pending'))",
                        (run_id,),
                    ).fetchone()[0]
                )
            return IngestOutcome(
                new=True,
                message_id=message_id,
                status=status,
                changed=changed,
                first_event=first,
                run_id=run_id,
                flow_waits=waits,
                channel=Channel(channel) if channel else None,
                address=address,
            )

    async def save_inbound(
        self, message: InboundMessage, *, now: datetime, recipient_id: str | None
    ) -> bool:
        """Store an inbound message once; ``False`` if it was stored before."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO inbound (dedup, recipient_id, provider, channel, sender,"
                " text, subject, provider_message_id, received_at, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                ),
            )
            return cursor.rowcount > 0

    async def count_sent(self, recipient_id: str, category: str, since: datetime) -> int:
        """Messages of ``category`` sent (or accepted) to the recipient after ``since``."""
        # The window is (since, now]: a message exactly one window old no longer counts.
        row = self._one(
            "SELECT COUNT(*) FROM messages WHERE recipient_id = ? AND category = ?"
            " AND created_at > ? AND (accepted = 1 OR outcome IN ('pending', 'unknown'))",
            (recipient_id, category, _ts(since)),
        )
        assert row is not None
        return int(row[0])

    # -- idempotency ----------------------------------------------------------------------------

    async def claim_idempotent(
        self, key: str, *, now: datetime, expires_at: datetime
    ) -> tuple[bool, SendResult | None]:
        """Claim an idempotency key for one send (see :meth:`AsyncStore.claim_idempotent`)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT result FROM idempotency WHERE key = ? AND expires_at > ?",
                (key, _ts(now)),
            ).fetchone()
            if row is not None:
                return False, None if row[0] is None else SendResult.model_validate_json(row[0])
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, NULL, ?)", (key, _ts(expires_at))
            )
            return True, None

    async def release_idempotent(self, key: str) -> None:
        """Give up a claimed key whose send raised."""
        with self._tx() as db:
            db.execute("DELETE FROM idempotency WHERE key = ? AND result IS NULL", (key,))

    async def put_idempotent(self, key: str, result: SendResult, *, expires_at: datetime) -> None:
        """Remember a result for an idempotency key."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)",
                (key, result.model_dump_json(), _ts(expires_at)),
            )

    # -- profiles, contacts, suppressions ------------------------------------------------------

    async def put_profile(self, recipient: Recipient, *, now: datetime) -> None:
        """Insert or replace a profile; its contact points are indexed for inbound linking."""
        if not recipient.id:
            raise ConfigurationError("a profile needs an id")
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?)",
                (recipient.id, recipient.model_dump_json(), _ts(now)),
            )
            points = _contact_points(recipient)
            # Dead contact points stay linked to their owner (forget() must find them) even
            # when the profile no longer lists them.
            db.execute(
                "UPDATE contacts SET recipient_id = NULL WHERE recipient_id = ?"
                " AND invalid_at IS NULL",
                (recipient.id,),
            )
            for channel, address in points:
                db.execute(
                    "INSERT INTO contacts (channel, address, recipient_id) VALUES (?, ?, ?)"
                    " ON CONFLICT (channel, address)"
                    " DO UPDATE SET recipient_id = excluded.recipient_id",
                    (channel, address, recipient.id),
                )
            db.execute("DELETE FROM contacts WHERE recipient_id IS NULL AND invalid_at IS NULL")

    async def get_profile(self, recipient_id: str) -> Recipient | None:
        """A profile with its invalid contact points left out, or ``None``."""
        with self._tx(write=False) as db:
            row = db.execute("SELECT data FROM profiles WHERE id = ?", (recipient_id,)).fetchone()
            if row is None:
                return None
            invalid = {
                (r[0], r[1])
                for r in db.execute(
                    "SELECT channel, address FROM contacts WHERE invalid_at IS NOT NULL"
                    " AND recipient_id = ?",
                    (recipient_id,),
                )
            }
        recipient = Recipient.model_validate_json(row[0])
        if not invalid:
            return recipient
        update: dict[str, Any] = {}
        if recipient.email and ("email", recipient.email.lower()) in invalid:
            update["email"] = None
        chat_ids = {
            c: v for c, v in recipient.chat_ids.items() if (Channel(c).value, v) not in invalid
        }
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

    async def find_profile(self, channel: Channel, address: str) -> str | None:
        """The id of the profile that owns an address on a channel."""
        row = self._one(
            "SELECT recipient_id FROM contacts WHERE channel = ? AND address = ?",
            (Channel(channel).value, _normal_address(Channel(channel), address)),
        )
        return None if row is None else row[0]

    async def mark_invalid(
        self, channel: Channel, address: str, reason: str, *, now: datetime
    ) -> None:
        """Mark a contact point dead: it is no longer used."""
        channel = Channel(channel)
        with self._tx() as db:
            db.execute(
                "INSERT INTO contacts (channel, address, invalid_reason, invalid_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (channel, address) DO UPDATE SET"
                " invalid_reason = excluded.invalid_reason, invalid_at = excluded.invalid_at",
                (channel.value, _normal_address(channel, address), reason, _ts(now)),
            )

    async def mark_valid(self, channel: Channel, address: str) -> bool:
        """Use a contact point again."""
        channel = Channel(channel)
        with self._tx() as db:
            return (
                db.execute(
                    "UPDATE contacts SET invalid_reason = NULL, invalid_at = NULL"
                    " WHERE channel = ? AND address = ? AND invalid_at IS NOT NULL",
                    (channel.value, _normal_address(channel, address)),
                ).rowcount
                > 0
            )

    async def suppress(self, channel: Channel, address: str, reason: str, *, now: datetime) -> None:
        """Add an address to the suppression list."""
        channel = Channel(channel)
        normal = _normal_address(channel, address)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO suppressions VALUES (?, ?, ?, ?, ?)",
                (channel.value, address_hash(channel, normal), normal, reason, _ts(now)),
            )

    async def unsuppress(self, channel: Channel, address: str) -> bool:
        """Remove an address from the suppression list."""
        channel = Channel(channel)
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM suppressions WHERE channel = ? AND address_hash = ?",
                (channel.value, address_hash(channel, _normal_address(channel, address))),
            )
            return cursor.rowcount > 0

    async def blocked(self, channel: Channel, address: str) -> str | None:
        """Why an address must not be used, or ``None``."""
        channel = Channel(channel)
        normal = _normal_address(channel, address)
        held = self._held
        if held is not None:
            key = (channel.value, normal)
            if key in held:
                return held[key]
        # One statement; a suppression wins over an invalid contact point.
        rows = self._all(
            "SELECT 0, reason FROM suppressions WHERE channel = ? AND address_hash = ?"
            " UNION ALL SELECT 1, invalid_reason FROM contacts WHERE channel = ?"
            " AND address = ? AND invalid_at IS NOT NULL",
            (channel.value, address_hash(channel, normal), channel.value, normal),
        )
        if not rows:
            return None
        kind, reason = min(tuple(row) for row in rows)
        return f"{'contact_invalid' if kind else 'suppressed'}: {reason}"

    async def hold_reads(self, addresses: Sequence[tuple[Channel, str]]) -> None:
        """Read once what :meth:`blocked` would say of each address, for a batch of sends.

        Until :meth:`release_reads` or this store's next write, :meth:`blocked` answers
        those addresses, and :meth:`unhealthy` a list of names it was asked before, from
        memory. Another process's suppression made meanwhile counts from the next batch (as
        one made during a send counts from the next send).
        """
        by_channel: dict[str, dict[str, str]] = {}  # channel: {address: hash}
        for channel, address in addresses:
            channel = Channel(channel)
            normal = _normal_address(channel, address)
            by_channel.setdefault(channel.value, {})[normal] = address_hash(channel, normal)
        held: dict[tuple[str, str], str | None] = {
            (c, a): None for c, known in by_channel.items() for a in known
        }
        found: dict[tuple[str, str], tuple[int, str]] = {}
        with self._lock:
            db = self._connect()
            for channel_value, known in by_channel.items():
                by_hash = {digest: normal for normal, digest in known.items()}
                for chunk in _chunks(list(by_hash)):
                    marks = ", ".join("?" * len(chunk))
                    for digest, reason in db.execute(
                        "SELECT address_hash, reason FROM suppressions"  # noqa: S608
                        f" WHERE channel = ? AND address_hash IN ({marks})",
                        (channel_value, *chunk),
                    ).fetchall():
                        found[(channel_value, by_hash[digest])] = (0, reason)
                for chunk in _chunks(list(known)):
                    marks = ", ".join("?" * len(chunk))
                    for address, reason in db.execute(
                        "SELECT address, invalid_reason FROM contacts"  # noqa: S608
                        f" WHERE channel = ? AND address IN ({marks}) AND invalid_at IS NOT NULL",
                        (channel_value, *chunk),
                    ).fetchall():
                        key = (channel_value, address)
                        if key not in found:  # a suppression wins
                            found[key] = (1, reason)
            for key, (kind, reason) in found.items():
                held[key] = f"{'contact_invalid' if kind else 'suppressed'}: {reason}"
            self._held = held
            self._held_health = {}

    async def release_reads(self) -> None:
        """Forget what :meth:`hold_reads` read."""
        with self._lock:
            self._held = self._held_health = None

    # -- business events ------------------------------------------------------------------------

    async def record_business_event(
        self, recipient_id: str, name: str, data: dict[str, Any], *, now: datetime
    ) -> None:
        """Record something the person did."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO business_events (recipient_id, name, data, occurred_at)"
                " VALUES (?, ?, ?, ?)",
                (recipient_id, name, json.dumps(data, default=str), _ts(now)),
            )

    async def has_business_event(
        self, recipient_id: str, names: Sequence[str], since: datetime
    ) -> bool:
        """Whether one of ``names`` was recorded for the person since ``since``."""
        if not names:
            return False
        marks = ", ".join("?" for _ in names)
        row = self._one(
            f"SELECT 1 FROM business_events WHERE recipient_id = ? AND name IN ({marks})"  # noqa: S608
            " AND occurred_at >= ? LIMIT 1",
            (recipient_id, *names, _ts(since)),
        )
        return row is not None

    # -- flows ------------------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        run_id: str,
        key: str | None,
        flow: str,
        plan: dict[str, Any],
        recipient_id: str | None,
        now: datetime,
        steps: Sequence[tuple[StepState, datetime | None]],
    ) -> tuple[str, bool]:
        """Create a run and its steps (or return the active run with the same key)."""
        with self._tx() as db:
            if key is not None:
                row = db.execute(
                    "SELECT id FROM runs WHERE key = ? AND state = 'active'", (key,)
                ).fetchone()
                if row is not None:
                    return row[0], False
            db.execute(
                "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'active', ?)",
                (run_id, key, flow, json.dumps(plan), recipient_id, _ts(now)),
            )
            for index, (state, due) in enumerate(steps):
                db.execute(
                    "INSERT INTO steps (id, run_id, idx, state, due_at, recipient_id, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        f"{run_id}.{index}",
                        run_id,
                        index,
                        state.value,
                        _ts(due),
                        recipient_id,
                        _ts(now),
                    ),
                )
            return run_id, True

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a dict, or ``None``."""
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return None if row is None else self._run(row)

    async def get_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Several runs at once (one query per 500)."""
        ids = list(dict.fromkeys(run_ids))
        rows: list[sqlite3.Row] = []
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            rows += self._all(f"SELECT * FROM runs WHERE id IN ({marks})", chunk)  # noqa: S608
        return {row["id"]: self._run(row) for row in rows}

    @staticmethod
    def _run(row: sqlite3.Row) -> dict[str, Any]:
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

    @staticmethod
    def _step(row: sqlite3.Row) -> StoredStep:
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

    async def run_steps(self, run_id: str) -> list[StoredStep]:
        """The steps of a run, in order."""
        rows = self._all("SELECT * FROM steps WHERE run_id = ? ORDER BY idx, id", (run_id,))
        return [self._step(r) for r in rows]

    async def cancel_runs(
        self,
        *,
        now: datetime,
        key: str | None = None,
        recipient_id: str | None = None,
        event: str | None = None,
        run_id: str | None = None,
        reason: str,
    ) -> int:
        """Cancel active runs by key, by id, or a recipient's runs that cancel on ``event``."""
        with self._tx() as db:
            if key is not None or run_id is not None:
                column, value = ("key", key) if key is not None else ("id", run_id)
                rows = db.execute(
                    f"SELECT id, plan FROM runs WHERE {column} = ? AND state = 'active'",  # noqa: S608
                    (value,),
                ).fetchall()
                ids = [r[0] for r in rows]
            else:
                rows = db.execute(
                    "SELECT id, plan FROM runs WHERE recipient_id = ? AND state = 'active'",
                    (recipient_id,),
                ).fetchall()
                ids = [
                    r[0]
                    for r in rows
                    if event in json.loads(r[1]).get("flow", {}).get("cancel_on", [])
                ]
            for canceled in ids:
                db.execute(
                    "UPDATE runs SET state = 'canceled', ended_at = ?, detail = ? WHERE id = ?",
                    (_ts(now), reason, canceled),
                )
                db.execute(
                    "UPDATE steps SET state = 'canceled', detail = ?, updated_at = ?"
                    " WHERE run_id = ? AND state IN ('waiting', 'pending')",
                    (reason, _ts(now), canceled),
                )
            return len(ids)

    async def release_claims(self, worker: str) -> int:
        """Make the steps a worker holds due again."""
        with self._tx() as db:
            return db.execute(
                "UPDATE steps SET state = 'pending', worker = NULL, lease_until = NULL"
                " WHERE state = 'claimed' AND worker = ?",
                (worker,),
            ).rowcount

    async def claim_due(
        self, *, now: datetime, worker: str, lease: timedelta, limit: int
    ) -> list[StoredStep]:
        """Atomically claim due steps and steps whose lease ran out, earliest due first.

        Steps due at the same time go in the order they were created. Two index range
        scans, each stopping at ``limit``: pending steps due by ``now`` (``steps_due``, by
        due time and then row id: creation order) and claims whose lease ended
        (``steps_lease``); the earliest ``limit`` of both are claimed. The steps of one
        batch are neighbours in the table, so claiming and closing them touches few pages.
        """
        if limit <= 0:
            return []
        at = _ts(now)
        with self._tx() as db:
            rows = db.execute(
                "UPDATE steps SET state = 'claimed', worker = ?, lease_until = ?,"
                " claims = claims + 1, updated_at = ? WHERE rowid IN (SELECT seq FROM ("
                "SELECT seq, due_at FROM (SELECT rowid AS seq, due_at FROM steps"
                " INDEXED BY steps_due WHERE state = 'pending' AND due_at <= ?"
                " ORDER BY due_at, rowid LIMIT ?)"
                " UNION ALL "
                "SELECT seq, due_at FROM (SELECT rowid AS seq, due_at FROM steps"
                " INDEXED BY steps_lease WHERE state = 'claimed' AND lease_until <= ?"
                " ORDER BY due_at, rowid LIMIT ?)"
                " ORDER BY due_at, seq LIMIT ?)) RETURNING rowid, *",
                (worker, _ts(now + lease), at, at, limit, at, limit, limit),
            ).fetchall()
        rows.sort(key=lambda r: (r["due_at"] if r["due_at"] is not None else at, r[0]))
        return [self._step(r) for r in rows]

    async def update_step(
        self,
        step_id: str,
        state: StepState,
        *,
        now: datetime,
        due_at: datetime | None = None,
        message_id: str | None = None,
        detail: str | None = None,
        lease_until: datetime | None = None,
    ) -> None:
        """Move a step to ``state``."""
        await self.update_steps(
            [StepUpdate(step_id, state, due_at, message_id, detail, lease_until)], now=now
        )

    async def update_steps(self, updates: Sequence[StepUpdate], *, now: datetime) -> None:
        """Apply step changes in order, in one transaction; runs left with no open step end."""
        if not updates:
            return
        at = _ts(now)
        with self._tx() as db:
            db.executemany(
                "UPDATE steps SET state = ?, due_at = COALESCE(?, due_at),"
                " message_id = COALESCE(?, message_id), detail = COALESCE(?, detail),"
                " worker = CASE WHEN ? = 'claimed' THEN worker ELSE NULL END,"
                " lease_until = COALESCE(?, lease_until),"
                " updated_at = ? WHERE id = ?",
                [
                    (
                        u.state,  # a str enum: bound as its value
                        _ts(u.due_at),
                        u.message_id,
                        u.detail,
                        u.state,
                        _ts(u.lease_until),
                        at,
                        u.step_id,
                    )
                    for u in updates
                ],
            )
            # This store names steps "<run id>.<index>" (create_run, add_digest_item).
            ended = list(
                dict.fromkeys(u.step_id.rpartition(".")[0] for u in updates if u.state.is_final)
            )
            for chunk in _chunks(ended):
                marks = ", ".join("?" * len(chunk))
                db.execute(
                    "UPDATE runs SET state = 'done', ended_at = ? WHERE state = 'active'"  # noqa: S608
                    f" AND id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM steps"
                    " WHERE steps.run_id = runs.id"
                    " AND steps.state IN ('waiting', 'pending', 'claimed'))",
                    (at, *chunk),
                )

    async def add_digest_item(
        self,
        *,
        run_id: str,
        digest_key: str,
        recipient_id: str,
        due_at: datetime,
        item: dict[str, Any],
        now: datetime,
    ) -> str:
        """Add an item to the recipient's open digest for ``digest_key``."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id, items FROM steps WHERE digest_key = ? AND recipient_id = ?"
                " AND state = 'pending'",
                (digest_key, recipient_id),
            ).fetchone()
            if row is not None:
                items = json.loads(row["items"])
                if any(
                    (i.get("run"), i.get("step")) == (item.get("run"), item.get("step"))
                    for i in items
                ):
                    return str(row["id"])  # the same step again (a retried claim)
                items.append(item)
                db.execute(
                    "UPDATE steps SET items = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(items, default=str), _ts(now), row["id"]),
                )
                return str(row["id"])
            # The digest is a run of its own: canceling one contributing run drops that
            # run's item when the digest goes, never the digest with everyone else's items.
            digest_run = uuid.uuid4().hex
            db.execute(
                "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
                " VALUES (?, NULL, ?, ?, ?, 'active', ?)",
                (
                    digest_run,
                    f"digest:{digest_key}",
                    json.dumps({"kind": "digest", "digest_key": digest_key, "opened_by": run_id}),
                    recipient_id,
                    _ts(now),
                ),
            )
            step_id = f"{digest_run}.digest"
            db.execute(
                "INSERT INTO steps (id, run_id, idx, state, due_at, digest_key, recipient_id,"
                " items, updated_at) VALUES (?, ?, -1, 'pending', ?, ?, ?, ?, ?)",
                (
                    step_id,
                    digest_run,
                    _ts(due_at),
                    digest_key,
                    recipient_id,
                    json.dumps([item], default=str),
                    _ts(now),
                ),
            )
            return step_id

    async def next_due(self) -> datetime | None:
        """When the next pending step is due."""
        with self._read() as db:
            row = db.execute(
                "SELECT MIN(due_at) FROM steps WHERE state = 'pending'"
                " UNION ALL SELECT MIN(lease_until) FROM steps WHERE state = 'claimed'"
            ).fetchall()
        times = [r[0] for r in row if r[0] is not None]
        return _dt(min(times)) if times else None

    # -- provider health --------------------------------------------------------------------------

    async def unhealthy(self, names: Sequence[str], *, now: datetime) -> set[str]:
        """The providers among ``names`` that are benched at ``now``."""
        if not names:
            return set()
        held = self._held_health
        key = tuple(names)
        if held is not None and key in held:
            rows: Sequence[Any] = held[key]
        else:
            rows = self._all(_health_sql(len(names)), names)
            if held is not None:
                held[key] = [(r[0], r[1]) for r in rows]
        # Remembered for record_health: a success after this look needs no write for a
        # provider that had no failure counted.
        if not rows:
            self._uncounted.update(names)
            return set()
        counted = {r[0] for r in rows}
        self._uncounted.update(name for name in names if name not in counted)
        self._uncounted.difference_update(counted)
        at = now.timestamp()
        return {r[0] for r in rows if r[1] is not None and r[1] > at}

    async def record_health(
        self, name: str, ok: bool, *, now: datetime, threshold: int, cooldown: timedelta
    ) -> None:
        """Count a provider-level failure, or reset on success."""
        if ok:
            # A success changes something only after failures: most need no write, and
            # none needs a look at the store when the last one (unhealthy(), before the
            # send) found no failure counted for the provider.
            if name in self._uncounted:
                return
            if self._one("SELECT 1 FROM provider_health WHERE provider = ?", (name,)) is not None:
                with self._tx() as db:
                    db.execute("DELETE FROM provider_health WHERE provider = ?", (name,))
            self._uncounted.add(name)
            return
        self._uncounted.discard(name)
        with self._tx() as db:
            row = db.execute(
                "SELECT failures FROM provider_health WHERE provider = ?", (name,)
            ).fetchone()
            failures = (row[0] if row else 0) + 1
            benched = _ts(now + cooldown) if failures >= threshold else None
            db.execute(
                "INSERT OR REPLACE INTO provider_health VALUES (?, ?, ?, ?)",
                (name, failures, benched, _ts(now)),
            )

    # -- the customer view ------------------------------------------------------------------------

    async def history(self, recipient_id: str) -> list[HistoryEntry]:
        """One timeline across channels, oldest first."""
        entries: list[tuple[float, int, HistoryEntry]] = []
        with self._tx(write=False) as db:
            messages = db.execute(
                "SELECT * FROM messages WHERE recipient_id = ?", (recipient_id,)
            ).fetchall()
            for m in messages:
                entries.append(
                    (
                        m["created_at"],
                        0,
                        HistoryEntry(
                            at=_dt(m["created_at"]),
                            kind="message",
                            channel=m["channel"],
                            provider=m["provider"],
                            message_id=m["id"],
                            status=self._first_status(m),
                            reason=m["reason"] if m["outcome"] in ("skipped", "failed") else None,
                            flow=m["flow"],
                        ),
                    )
                )
                for e in db.execute(
                    "SELECT * FROM events WHERE message_id = ? ORDER BY seq", (m["id"],)
                ).fetchall():
                    at = e["occurred_at"] if e["occurred_at"] is not None else e["received_at"]
                    is_status = e["kind"] == "status"
                    entries.append(
                        (
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
                    )
            for i in db.execute(
                "SELECT * FROM inbound WHERE recipient_id = ?", (recipient_id,)
            ).fetchall():
                entries.append(
                    (
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
                )
            for b in db.execute(
                "SELECT * FROM business_events WHERE recipient_id = ?", (recipient_id,)
            ).fetchall():
                entries.append(
                    (
                        b["occurred_at"],
                        3,
                        HistoryEntry(
                            at=_dt(b["occurred_at"]), kind="business_event", text=b["name"]
                        ),
                    )
                )
            for s in db.execute(
                "SELECT steps.*, runs.flow AS flow FROM steps JOIN runs ON runs.id = steps.run_id"
                " WHERE steps.recipient_id = ?"
                " AND steps.state IN ('skipped', 'canceled', 'unknown')",
                (recipient_id,),
            ).fetchall():
                entries.append(
                    (
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
                )
        entries.sort(key=lambda e: (e[0], e[1]))
        return [e[2] for e in entries]

    @staticmethod
    def _first_status(row: sqlite3.Row) -> DeliveryStatus:
        attempts = json.loads(row["attempts"])
        for attempt in attempts:
            if attempt["outcome"] == "sent" and attempt.get("receipt"):
                return DeliveryStatus(attempt["receipt"]["status"])
        outcome = row["outcome"]
        if outcome in ("failed", "skipped"):
            status = DeliveryStatus(row["status"])
            return status if status.is_terminal else DeliveryStatus.FAILED
        return DeliveryStatus(row["status"]) if outcome != "sent" else DeliveryStatus.ACCEPTED

    async def report(self, *, since: datetime, until: datetime, by: str) -> Report:
        """Counts per ``channel``, ``provider``, ``category`` or ``flow``."""
        if by not in ("channel", "provider", "category", "flow"):
            raise ValueError("by must be 'channel', 'provider', 'category' or 'flow'")
        groups: dict[str | None, dict[str, Any]] = {}
        total: dict[str, Any] = {}
        with self._read() as db:
            rows = db.execute(
                f"SELECT {by} AS key, outcome, status, reason, accepted, delivered_at,"  # noqa: S608
                " read_at, opened_at, clicked_at FROM messages"
                " WHERE created_at >= ? AND created_at < ?",
                (_ts(since), _ts(until)),
            ).fetchall()
        for row in rows:
            for bucket in (groups.setdefault(row["key"], {}), total):
                self._count(bucket, row)
        return Report(
            since=since,
            until=until,
            by=by,
            rows=tuple(
                ReportRow(key=key, **counts)
                for key, counts in sorted(
                    groups.items(), key=lambda kv: (kv[0] is None, kv[0] or "")
                )
            ),
            total=ReportRow(key=None, **total),
        )

    @staticmethod
    def _count(bucket: dict[str, Any], row: sqlite3.Row) -> None:
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

    async def forget(self, recipient_id: str) -> dict[str, int]:
        """Erase a person's data (suppressions keep only a hash of the address)."""
        counts: dict[str, int] = {}
        with self._tx() as db:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM messages WHERE recipient_id = ?", (recipient_id,)
                ).fetchall()
            ]
            addresses = [
                (r[0], r[1])
                for r in db.execute(
                    "SELECT channel, address FROM contacts WHERE recipient_id = ?",
                    (recipient_id,),
                ).fetchall()
            ]
            counts["events"] = 0
            counts["messages"] = len(ids)
            for message_id in ids:
                counts["events"] += db.execute(
                    "DELETE FROM events WHERE message_id = ?", (message_id,)
                ).rowcount
                db.execute("DELETE FROM provider_refs WHERE message_id = ?", (message_id,))
            # Remembered results of idempotency keys hold the address and every attempt.
            known = set(ids)
            for key, result in db.execute("SELECT key, result FROM idempotency").fetchall():
                if result is not None and json.loads(result).get("message_id") in known:
                    db.execute("DELETE FROM idempotency WHERE key = ?", (key,))
            db.execute("DELETE FROM messages WHERE recipient_id = ?", (recipient_id,))
            counts["inbound"] = db.execute(
                "DELETE FROM inbound WHERE recipient_id = ?", (recipient_id,)
            ).rowcount
            counts["business_events"] = db.execute(
                "DELETE FROM business_events WHERE recipient_id = ?", (recipient_id,)
            ).rowcount
            run_ids = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM runs WHERE recipient_id = ?", (recipient_id,)
                ).fetchall()
            ]
            counts["runs"] = len(run_ids)
            for run_id in run_ids:
                db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM steps WHERE recipient_id = ?", (recipient_id,))
            db.execute("DELETE FROM runs WHERE recipient_id = ?", (recipient_id,))
            counts["profiles"] = db.execute(
                "DELETE FROM profiles WHERE id = ?", (recipient_id,)
            ).rowcount
            counts["contacts"] = db.execute(
                "DELETE FROM contacts WHERE recipient_id = ?", (recipient_id,)
            ).rowcount
            for channel, address in addresses:
                # Keep the opt-out (the law asks to honour it), not the address itself.
                db.execute(
                    "UPDATE suppressions SET address = NULL WHERE channel = ? AND address_hash = ?",
                    (channel, address_hash(channel, address)),
                )
                db.execute("DELETE FROM events WHERE recipient = ?", (address,))
                db.execute("DELETE FROM inbound WHERE sender = ?", (address,))
        return counts

    async def prune(self, before: datetime) -> int:
        """Delete messages, events, inbound messages and finished runs older than ``before``."""
        cutoff = _ts(before)
        with self._tx() as db:
            old = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM messages WHERE updated_at < ? AND outcome != 'pending'"
                    " AND (run_id IS NULL OR run_id NOT IN"
                    " (SELECT id FROM runs WHERE state = 'active'))",
                    (cutoff,),
                ).fetchall()
            ]
            for message_id in old:
                db.execute("DELETE FROM provider_refs WHERE message_id = ?", (message_id,))
                db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            removed = len(old)
            removed += db.execute("DELETE FROM events WHERE received_at < ?", (cutoff,)).rowcount
            removed += db.execute("DELETE FROM inbound WHERE received_at < ?", (cutoff,)).rowcount
            removed += db.execute(
                "DELETE FROM business_events WHERE occurred_at < ? AND recipient_id NOT IN"
                " (SELECT recipient_id FROM runs WHERE state = 'active'"
                " AND recipient_id IS NOT NULL)",
                (cutoff,),
            ).rowcount
            removed += db.execute(
                "DELETE FROM idempotency WHERE expires_at < ?", (cutoff,)
            ).rowcount
            finished = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM runs WHERE state != 'active' AND ended_at < ?", (cutoff,)
                ).fetchall()
            ]
            for run_id in finished:
                db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            return removed + len(finished)


def open_store(store: AsyncStore | str | os.PathLike[str] | None) -> AsyncStore | None:
    """A store from what a client was given: a store, a path or URL, or ``None``."""
    if store is None or isinstance(store, AsyncStore):
        return store
    if isinstance(store, str) and store.lower().startswith(("postgres://", "postgresql")):
        # psycopg loads only for a PostgreSQL store (its module imports it lazily).
        from anysend._async._pgstore import AsyncPostgresStore, is_postgres_url

        if is_postgres_url(store):
            return AsyncPostgresStore(store)
    if isinstance(store, (str, os.PathLike)):
        return AsyncSQLiteStore(store)
    raise ConfigurationError(f"store must be a path or an {AsyncStore.__name__}, not {store!r}")
