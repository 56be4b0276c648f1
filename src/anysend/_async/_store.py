"""The store: messages, attempts, statuses, flow steps, profiles, inbound messages.

``AsyncStore`` is the interface the clients use; ``AsyncSQLiteStore`` the embedded default
(a file, or ``":memory:"``). This file is the source of truth: ``anysend/_sync/_store.py``
(``Store`` and ``SQLiteStore``) is generated from it by ``scripts/unasync.py``.

SQLite calls are short and made directly (an embedded database has no network round trip);
a file store is opened in WAL mode with a busy timeout, so that several processes (a web app
and its workers) share it. Every change that must be atomic runs in one ``BEGIN IMMEDIATE``
transaction: claiming due steps, ingesting an event, recording a send. What this store
shares with the PostgreSQL one (the rows both write, the records both read back, how an event
moves a message) is in ``anysend/_storelogic.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
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
    ResultToSave,
    StepState,
    StepUpdate,
    StoredMessage,
    StoredStep,
)
from anysend._results import SendResult
from anysend._status import DeliveryStatus
from anysend._storelogic import (
    ADD_DIGEST_ITEM,
    ADOPT_EVENTS,
    BLOCKED,
    EVENT_COLUMNS,
    INBOUND_COLUMNS,
    INSERT_DIGEST_RUN,
    INSERT_DIGEST_STEP,
    INSERT_STEP,
    UPDATE_STEP,
    UPSERT_RESULT,
    Row,
    Timed,
    _contact_points,
    _dt,
    _normal_address,
    _ts,
    address_hash,
    benched,
    block_reason,
    business_entry,
    digest_added,
    ended_runs,
    event_entry,
    event_row,
    event_update,
    group_addresses,
    inbound_entry,
    inbound_row,
    message_entry,
    message_record,
    new_digest,
    pending_migrations,
    report_sql,
    result_row,
    run_record,
    step_entry,
    step_record,
    step_rows,
    step_update_rows,
    tally,
    timeline,
    without_invalid,
)

__all__ = ["AsyncSQLiteStore", "AsyncStore"]

SCHEMA_VERSION = 2

#: Ids per ``IN (...)`` list: well below SQLite's limit on bound parameters.
_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@lru_cache(maxsize=16)
def _health_sql(count: int) -> str:
    marks = ", ".join("?" * count)
    return f"SELECT provider, benched_until FROM provider_health WHERE provider IN ({marks})"  # noqa: S608


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


class _BatchStore(AsyncStore):
    """A store whose one-item methods are its batch methods given one item.

    Both built-in stores do their work in the batch methods (one transaction a batch).
    """

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


class AsyncSQLiteStore(_BatchStore):
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
            for number, statements in pending_migrations(version, _MIGRATIONS):
                for statement in statements:
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
            row, sent_refs = result_row(item, at)
            rows.append(row)
            refs += sent_refs
        statuses = {item.result.message_id: item.result.status for item in results}
        with self._tx() as db:
            db.executemany(UPSERT_RESULT, rows)
            if refs:
                db.executemany("INSERT OR REPLACE INTO provider_refs VALUES (?, ?, ?)", refs)
                # Events waiting for their message (one look first: usually there are none).
                if db.execute("SELECT 1 FROM events WHERE message_id IS NULL LIMIT 1").fetchone():
                    db.executemany(
                        ADOPT_EVENTS,
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
    def _apply(
        db: sqlite3.Connection, message_id: str, status: DeliveryStatus, row: Row
    ) -> tuple[DeliveryStatus, bool, bool]:
        """Apply one stored event to its message; (status, status changed, first event)."""
        update = event_update(status, row)
        first = False
        if update.sql is not None:
            cursor = db.execute(update.sql, (*update.params, message_id))
            first = update.stamps and cursor.rowcount > 0
        return update.status, update.changed, first

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
            return message_record(row, tuple(r[0] for r in refs))

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
        return {row["id"]: message_record(row, tuple(refs.get(row["id"], ()))) for row in rows}

    async def ingest(self, event: DeliveryEvent, *, now: datetime) -> IngestOutcome:
        """Store a delivery event once; move its message's status forward only.

        One transaction: the message is found by its provider id (or anysend's id), the
        event stored, the message moved, and whether a flow step may react is told (so the
        flow engine reads nothing back for a message no step waits on).
        """
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
            stored, row = event_row(event, message_id, now=now)
            cursor = db.execute("INSERT OR IGNORE INTO " + EVENT_COLUMNS, row)
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
                "INSERT OR IGNORE INTO " + INBOUND_COLUMNS,
                inbound_row(message, now=now, recipient_id=recipient_id),
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
        return without_invalid(Recipient.model_validate_json(row[0]), invalid)

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
            BLOCKED, (channel.value, address_hash(channel, normal), channel.value, normal)
        )
        if not rows:
            return None
        return block_reason(*min((row["kind"], row["reason"]) for row in rows))

    async def hold_reads(self, addresses: Sequence[tuple[Channel, str]]) -> None:
        """Read once what :meth:`blocked` would say of each address, for a batch of sends.

        Until :meth:`release_reads` or this store's next write, :meth:`blocked` answers
        those addresses, and :meth:`unhealthy` a list of names it was asked before, from
        memory. Another process's suppression made meanwhile counts from the next batch (as
        one made during a send counts from the next send).
        """
        by_channel, held = group_addresses(addresses)
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
                held[key] = block_reason(kind, reason)
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
            db.executemany(
                INSERT_STEP, step_rows(run_id, steps, recipient_id=recipient_id, now=now)
            )
            return run_id, True

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a dict, or ``None``."""
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return None if row is None else run_record(row)

    async def get_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Several runs at once (one query per 500)."""
        ids = list(dict.fromkeys(run_ids))
        rows: list[sqlite3.Row] = []
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            rows += self._all(f"SELECT * FROM runs WHERE id IN ({marks})", chunk)  # noqa: S608
        return {row["id"]: run_record(row) for row in rows}

    async def run_steps(self, run_id: str) -> list[StoredStep]:
        """The steps of a run, in order."""
        rows = self._all("SELECT * FROM steps WHERE run_id = ? ORDER BY idx, id", (run_id,))
        return [step_record(r) for r in rows]

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
        return [step_record(r) for r in rows]

    async def update_steps(self, updates: Sequence[StepUpdate], *, now: datetime) -> None:
        """Apply step changes in order, in one transaction; runs left with no open step end."""
        if not updates:
            return
        at = _ts(now)
        with self._tx() as db:
            db.executemany(UPDATE_STEP, step_update_rows(updates, at))
            ended = ended_runs(updates)
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
                added = digest_added(row, item, now=now)
                if added is not None:
                    db.execute(ADD_DIGEST_ITEM, added)
                return str(row["id"])
            step_id, run_row, step_row = new_digest(
                run_id=run_id,
                digest_key=digest_key,
                recipient_id=recipient_id,
                due_at=due_at,
                item=item,
                now=now,
            )
            db.execute(INSERT_DIGEST_RUN, run_row)
            db.execute(INSERT_DIGEST_STEP, step_row)
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
        return benched(rows, names, uncounted=self._uncounted, now=now)

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
        entries: list[Timed] = []
        with self._tx(write=False) as db:
            messages = db.execute(
                "SELECT * FROM messages WHERE recipient_id = ?", (recipient_id,)
            ).fetchall()
            for m in messages:
                entries.append(message_entry(m))
                entries += (
                    event_entry(m, e)
                    for e in db.execute(
                        "SELECT * FROM events WHERE message_id = ? ORDER BY seq", (m["id"],)
                    ).fetchall()
                )
            entries += (
                inbound_entry(i)
                for i in db.execute(
                    "SELECT * FROM inbound WHERE recipient_id = ?", (recipient_id,)
                ).fetchall()
            )
            entries += (
                business_entry(b)
                for b in db.execute(
                    "SELECT * FROM business_events WHERE recipient_id = ?", (recipient_id,)
                ).fetchall()
            )
            entries += (
                step_entry(s)
                for s in db.execute(
                    "SELECT steps.*, runs.flow AS flow FROM steps"
                    " JOIN runs ON runs.id = steps.run_id WHERE steps.recipient_id = ?"
                    " AND steps.state IN ('skipped', 'canceled', 'unknown')",
                    (recipient_id,),
                ).fetchall()
            )
        return timeline(entries)

    async def report(self, *, since: datetime, until: datetime, by: str) -> Report:
        """Counts per ``channel``, ``provider``, ``category`` or ``flow``."""
        sql = report_sql(by)
        with self._read() as db:
            rows = db.execute(sql, (_ts(since), _ts(until))).fetchall()
        return tally(rows, since=since, until=until, by=by)

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
