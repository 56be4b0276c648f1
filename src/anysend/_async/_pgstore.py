"""The PostgreSQL store: the SQLite store's records and semantics, shared by many workers.

``AsyncPostgresStore`` keeps the same tables as ``AsyncSQLiteStore`` (times as seconds since
the epoch, from the clock the client was given, never the server's) in a schema of its own,
on psycopg 3 with a connection pool. This file is the source of truth:
``anysend/_sync/_pgstore.py`` (``PostgresStore``) is generated from it by
``scripts/unasync.py``. What both stores write and read back, and how an event moves a
message, is decided once, in ``anysend/_storelogic.py``; this file holds what PostgreSQL does
differently: its connections, locks and dialect.

Where SQLite runs every write in one ``BEGIN IMMEDIATE`` transaction (one writer at a time),
PostgreSQL runs them side by side at ``READ COMMITTED``; what must not interleave is made
so explicitly:

* due steps are claimed with ``FOR UPDATE SKIP LOCKED`` (each step by one worker at a time);
* an event and the send it belongs to (which may be recorded at the same moment, by another
  process) take a transaction-level advisory lock on the message's id or provider id, so
  that one of them always sees the other;
* statuses move under a row lock on the message; idempotency keys and run keys are claimed
  with ``INSERT ... ON CONFLICT``; a run's end is decided under a lock on the run;
* reads of several statements (a message and its provider ids, a history) run in one
  ``REPEATABLE READ`` snapshot.

psycopg is imported when a store is first made, never by ``import anysend``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from anysend._async._store import _BatchStore
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
    pyformat,
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
from anysend._synchronization import AsyncLock

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow
    from psycopg_pool import AsyncConnectionPool

    Conn = AsyncConnection[DictRow]

__all__ = ["AsyncPostgresStore", "is_postgres_url"]

#: The URL schemes this store answers (``+psycopg`` is SQLAlchemy's spelling).
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgres+psycopg")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Options of ours in a URL's query: taken out before libpq sees it.
_OPTIONS = ("schema", "min_connections", "max_connections")
_INSTALL = 'the PostgreSQL store needs psycopg 3: pip install "anysend[postgres]"'

_MIGRATIONS: list[str] = [
    # version 1: the SQLite store's schema (version 2), with identity columns where SQLite
    # has a rowid that orders rows (messages, steps and provider ids by creation).
    """
    CREATE TABLE messages (
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
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
        opened_at DOUBLE PRECISION,
        clicked_at DOUBLE PRECISION,
        delivered_at DOUBLE PRECISION,
        read_at DOUBLE PRECISION,
        flow TEXT,
        run_id TEXT,
        step_id TEXT,
        attempts TEXT NOT NULL DEFAULT '[]',
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX messages_recipient ON messages (recipient_id, created_at);
    CREATE INDEX messages_created ON messages (created_at);
    CREATE TABLE provider_refs (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        provider TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        PRIMARY KEY (provider, provider_message_id)
    );
    CREATE INDEX provider_refs_message ON provider_refs (message_id);
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dedup TEXT NOT NULL UNIQUE,
        message_id TEXT,
        provider TEXT NOT NULL,
        provider_message_id TEXT,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        raw_status TEXT,
        reason TEXT,
        recipient TEXT,
        occurred_at DOUBLE PRECISION,
        received_at DOUBLE PRECISION NOT NULL,
        raw TEXT
    );
    CREATE INDEX events_message ON events (message_id);
    CREATE INDEX events_unmatched ON events (provider, provider_message_id)
        WHERE message_id IS NULL;
    CREATE TABLE inbound (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dedup TEXT NOT NULL UNIQUE,
        recipient_id TEXT,
        provider TEXT NOT NULL,
        channel TEXT NOT NULL,
        sender TEXT NOT NULL,
        text TEXT,
        subject TEXT,
        provider_message_id TEXT,
        received_at DOUBLE PRECISION NOT NULL,
        raw TEXT
    );
    CREATE INDEX inbound_recipient ON inbound (recipient_id);
    CREATE TABLE profiles (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE contacts (
        channel TEXT NOT NULL,
        address TEXT NOT NULL,
        recipient_id TEXT,
        invalid_reason TEXT,
        invalid_at DOUBLE PRECISION,
        PRIMARY KEY (channel, address)
    );
    CREATE INDEX contacts_recipient ON contacts (recipient_id);
    CREATE TABLE suppressions (
        channel TEXT NOT NULL,
        address_hash TEXT NOT NULL,
        address TEXT,
        reason TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (channel, address_hash)
    );
    CREATE TABLE business_events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient_id TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        occurred_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX business_events_recipient ON business_events (recipient_id, name);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        key TEXT,
        flow TEXT NOT NULL,
        plan TEXT NOT NULL,
        recipient_id TEXT,
        state TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        detail TEXT
    );
    CREATE UNIQUE INDEX runs_active_key ON runs (key) WHERE state = 'active' AND key IS NOT NULL;
    CREATE INDEX runs_recipient ON runs (recipient_id);
    CREATE TABLE steps (
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        state TEXT NOT NULL,
        due_at DOUBLE PRECISION,
        worker TEXT,
        lease_until DOUBLE PRECISION,
        claims INTEGER NOT NULL DEFAULT 0,
        message_id TEXT,
        detail TEXT,
        digest_key TEXT,
        recipient_id TEXT,
        items TEXT,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX steps_due ON steps (due_at, seq) WHERE state = 'pending';
    CREATE INDEX steps_lease ON steps (lease_until) WHERE state = 'claimed';
    CREATE INDEX steps_run ON steps (run_id, idx);
    CREATE INDEX steps_recipient ON steps (recipient_id, digest_key);
    CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        result TEXT,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE provider_health (
        provider TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        benched_until DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)

#: claim_due: the earliest pending steps (index steps_due) and lapsed claims (steps_lease),
#: each read with SKIP LOCKED, then the earliest ``limit`` of both claimed (found by seq in
#: an array: an index scan however few steps the table has, where a join may scan it).
_CLAIM_DUE = (
    "WITH pending AS (SELECT seq, due_at FROM steps"
    " WHERE state = 'pending' AND due_at <= %(at)s ORDER BY due_at, seq"
    " LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
    " expired AS (SELECT seq, due_at FROM steps"
    " WHERE state = 'claimed' AND lease_until <= %(at)s"
    " ORDER BY due_at NULLS FIRST, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
    " chosen AS (SELECT seq FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired)"
    " AS due ORDER BY due_at NULLS FIRST, seq LIMIT %(limit)s)"
    " UPDATE steps SET state = 'claimed', worker = %(worker)s,"
    " lease_until = %(lease)s, claims = steps.claims + 1, updated_at = %(at)s"
    " WHERE steps.seq = ANY(ARRAY(SELECT seq FROM chosen)) RETURNING steps.*"
)


def is_postgres_url(value: str) -> bool:
    """Whether a store argument names a PostgreSQL database (``postgresql://...``)."""
    scheme, sep, _ = value.partition("://")
    return bool(sep) and scheme.lower() in _SCHEMES


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL libpq gets (``postgresql://``, without our options) and our options."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigurationError(f"not a PostgreSQL URL: {_safe_url(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OPTIONS}
    rest = urlencode([(k, v) for k, v in query if k not in _OPTIONS])
    return urlunsplit(("postgresql", parts.netloc, parts.path, rest, parts.fragment)), ours


def _safe_url(url: str) -> str:
    """The URL with its password left out (for ``repr`` and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for a name."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _positive(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigurationError(f"{name} must be a positive whole number, not {value!r}")
    return number


async def _fetchone(conn: Conn, query: str, params: Any = None) -> DictRow | None:
    """The first row of one statement on ``conn``."""
    return await (await conn.execute(query, params)).fetchone()


async def _fetchall(conn: Conn, query: str, params: Any = None) -> list[DictRow]:
    """Every row of one statement on ``conn``."""
    return await (await conn.execute(query, params)).fetchall()


class AsyncPostgresStore(_BatchStore):
    """The store in a PostgreSQL database: for several workers and machines.

    Args:
        url: ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``); query
            parameters go to libpq (``?sslmode=require``), except ``schema``,
            ``min_connections`` and ``max_connections``, which are the arguments below.
        schema: the schema that holds anysend's tables (created on first use; default
            ``anysend``): several stores, or test runs, keep apart in one database.
        min_connections: connections the pool keeps open.
        max_connections: connections the pool opens at most (per process).
        connect_timeout: seconds to wait for the server on connecting.

    Nothing connects until the store is first used; then the schema is created or migrated
    (under an advisory lock, so that workers starting together migrate once). A schema
    written by a newer anysend is refused rather than damaged. A store made before
    ``os.fork()`` opens its own pool in the child.

    Raises:
        ConfigurationError: psycopg is not installed, or the URL or an option is invalid.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_connections: int | None = None,
        max_connections: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if not isinstance(url, str):
            raise ConfigurationError(f"url must be a postgresql:// URL, not {url!r}")
        conninfo, options = _split_url(url)
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(_INSTALL) from exc
        schema = schema if schema is not None else options.get("schema", "anysend")
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                f"schema must be a lower-case SQL name (letters, digits, _), not {schema!r}"
            )
        self.url = url
        self.schema = schema
        self._min = _positive(
            "min_connections",
            min_connections if min_connections is not None else options.get("min_connections", 1),
        )
        self._max = _positive(
            "max_connections",
            max_connections if max_connections is not None else options.get("max_connections", 10),
        )
        if self._max < self._min:
            raise ConfigurationError("max_connections must be at least min_connections")
        if connect_timeout <= 0:
            raise ConfigurationError("connect_timeout must be positive")
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._pid = os.getpid()
        self._opening = AsyncLock()
        # Pools of a parent process (after fork): never closed here (their sockets are the
        # parent's), only kept from the garbage collector.
        self._orphans: list[AsyncConnectionPool[Conn]] = []
        # As in the SQLite store: providers with no failure counted as last seen, and
        # answers read once for a batch of sends (hold_reads), dropped at any write.
        self._uncounted: set[str] = set()
        self._held: dict[tuple[str, str], str | None] | None = None
        self._held_health: dict[tuple[str, ...], list[tuple[str, float | None]]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_safe_url(self.url)!r}, schema={self.schema!r})"

    # -- connections and migrations -----------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        from psycopg.rows import dict_row

        return {
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": max(1, round(self._connect_timeout)),
            # Every statement names tables without a schema: they are found in ours.
            "options": f"-c search_path={self.schema}",
        }

    async def _ready(self) -> AsyncConnectionPool[Conn]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        async with self._opening:
            if self._pool is not None and self._pid == os.getpid():
                return self._pool
            if self._pool is not None:  # made before os.fork(): the parent's
                self._orphans.append(self._pool)
                self._pool = None
            from psycopg import AsyncConnection
            from psycopg_pool import AsyncConnectionPool

            await self._migrate()
            pool = AsyncConnectionPool(
                self._conninfo,
                connection_class=AsyncConnection[Any],
                kwargs=self._connect_kwargs(),
                min_size=self._min,
                max_size=self._max,
                timeout=max(30.0, self._connect_timeout),  # to wait for a free connection
                name=f"anysend-{self.schema}",
                open=False,
            )
            await pool.open(wait=False)
            self._pool = pool
            self._pid = os.getpid()
            return self._pool

    async def _migrate(self) -> None:
        """Create or migrate the schema on a connection of its own (before the pool)."""
        import psycopg
        from psycopg import sql

        kwargs = self._connect_kwargs()
        kwargs["autocommit"] = False
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            raise ConfigurationError(
                f"cannot connect to the PostgreSQL store {_safe_url(self.url)!r}: {exc}"
            ) from exc
        try:
            async with conn.transaction():
                # One migrator at a time (workers starting together), per schema.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (_lock_key("anysend-migrate", self.schema),)
                )
                await conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS anysend_meta (key TEXT PRIMARY KEY, value TEXT)"
                )
                row = await _fetchone(conn, "SELECT value FROM anysend_meta WHERE key = 'schema'")
                version = int(row["value"]) if row else 0
                for number, statements in pending_migrations(version, _MIGRATIONS):
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO anysend_meta (key, value) VALUES ('schema', %s)"
                        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        (str(number),),
                    )
        finally:
            await conn.close()

    async def get_schema_version(self) -> int:
        """The schema version of the open store (creating or migrating it first)."""
        row = await self._one("SELECT value FROM anysend_meta WHERE key = 'schema'")
        assert row is not None
        return int(row["value"])

    @asynccontextmanager
    async def _tx(self, *, write: bool = True) -> AsyncIterator[Conn]:
        """One transaction: ``READ COMMITTED`` to write, a ``REPEATABLE READ`` snapshot to read."""
        pool = await self._ready()
        if write:
            # What hold_reads read may change now: blocked() and unhealthy() look again.
            self._held = self._held_health = None
        async with pool.connection() as conn, conn.transaction():
            if not write:
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    async def _one(self, query: str, params: Sequence[Any] | None = None) -> DictRow | None:
        """The first row of one statement (in a transaction of its own)."""
        pool = await self._ready()
        async with pool.connection() as conn:
            return await _fetchone(conn, query, params)

    async def _all(self, query: str, params: Sequence[Any] | None = None) -> list[DictRow]:
        """Every row of one statement (in a transaction of its own)."""
        pool = await self._ready()
        async with pool.connection() as conn:
            return await _fetchall(conn, query, params)

    @staticmethod
    async def _lock(conn: Conn, names: Iterable[tuple[str, ...]]) -> None:
        """Take transaction-level advisory locks, in one order (no deadlock between two)."""
        keys = sorted({_lock_key(*name) for name in names})
        if keys:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY"
                " AS t(k, n) ORDER BY n",
                (keys,),
            )

    async def aclose(self) -> None:
        """Close the connection pool (the next call opens it again)."""
        pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            await pool.close()
        elif pool is not None:
            self._orphans.append(pool)

    # -- messages -------------------------------------------------------------------------------

    async def begin_messages(self, messages: Sequence[PendingMessage], *, now: datetime) -> None:
        """Record messages about to be sent (status ``pending``), in one transaction."""
        if not messages:
            return
        at = _ts(now)
        async with self._tx() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO messages (id, recipient_id, category, status, outcome,"
                " flow, run_id, step_id, created_at, updated_at)"
                " VALUES (%s, %s, %s, 'pending', 'pending', %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
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
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM messages WHERE outcome = 'pending' AND id = ANY(%s)", (ids,)
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
            # str enums as their values (psycopg would otherwise pick an enum's name).
            rows.append(tuple(getattr(v, "value", v) for v in row))
            refs += sent_refs
        statuses = {item.result.message_id: item.result.status for item in results}
        ids = list(statuses)
        async with self._tx() as conn:
            # An event arriving now for one of these messages (ingest) waits, or is waited for.
            await self._lock(
                conn,
                [(self.schema, "m", i) for i in ids]
                + [(self.schema, "r", provider, pmid) for provider, pmid, _ in refs],
            )
            async with conn.cursor() as cur:
                await cur.executemany(pyformat(UPSERT_RESULT), rows)
                if refs:
                    await cur.executemany(
                        "INSERT INTO provider_refs (provider, provider_message_id, message_id)"
                        " VALUES (%s, %s, %s) ON CONFLICT (provider, provider_message_id)"
                        " DO UPDATE SET message_id = EXCLUDED.message_id",
                        refs,
                    )
                    waiting = await _fetchone(
                        conn, "SELECT 1 FROM events WHERE message_id IS NULL LIMIT 1"
                    )
                    if waiting:
                        await cur.executemany(
                            pyformat(ADOPT_EVENTS),
                            [(message_id, provider, pmid) for provider, pmid, message_id in refs],
                        )
            # Events that came before the send was recorded (a fast callback): apply them now.
            events = await _fetchall(
                conn, "SELECT * FROM events WHERE message_id = ANY(%s) ORDER BY seq", (ids,)
            )
            for event in events:
                message_id = event["message_id"]
                statuses[message_id], _, _ = await self._apply(
                    conn, message_id, statuses[message_id], event
                )
        return [statuses[item.result.message_id] for item in results]

    @staticmethod
    async def _apply(
        conn: Conn, message_id: str, status: DeliveryStatus, row: dict[str, Any]
    ) -> tuple[DeliveryStatus, bool, bool]:
        """Apply one stored event to its message; (status, status changed, first event)."""
        update = event_update(status, row)
        first = False
        if update.sql is not None:
            cursor = await conn.execute(pyformat(update.sql), (*update.params, message_id))
            first = update.stamps and cursor.rowcount > 0
        return update.status, update.changed, first

    async def get_message(self, message_id: str) -> StoredMessage | None:
        """One message with its attempts, or ``None``."""
        found = await self.get_messages([message_id])
        return found.get(message_id)

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, StoredMessage]:
        """Several messages at once (one read snapshot)."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        refs: dict[str, list[str]] = {}
        async with self._tx(write=False) as conn:
            rows = await _fetchall(conn, "SELECT * FROM messages WHERE id = ANY(%s)", (ids,))
            if not rows:
                return {}
            for ref in await _fetchall(
                conn,
                "SELECT message_id, provider_message_id FROM provider_refs"
                " WHERE message_id = ANY(%s) ORDER BY seq",
                ([row["id"] for row in rows],),
            ):
                refs.setdefault(ref["message_id"], []).append(ref["provider_message_id"])
        return {row["id"]: message_record(row, tuple(refs.get(row["id"], ()))) for row in rows}

    async def ingest(self, event: DeliveryEvent, *, now: datetime) -> IngestOutcome:
        """Store a delivery event once; move its message's status forward only.

        One transaction, as in the SQLite store; the message's row is locked while its
        status moves, and the event waits for a send of the same message being recorded.
        """
        async with self._tx() as conn:
            message = None
            if event.message_id is not None:
                await self._lock(conn, [(self.schema, "m", event.message_id)])
                message = await _fetchone(
                    conn,
                    "SELECT id, status, run_id, channel, address FROM messages WHERE id = %s"
                    " FOR UPDATE",
                    (event.message_id,),
                )
            elif event.provider_message_id:
                await self._lock(
                    conn, [(self.schema, "r", event.provider, event.provider_message_id)]
                )
                message = await _fetchone(
                    conn,
                    "SELECT m.id, m.status, m.run_id, m.channel, m.address FROM provider_refs r"
                    " JOIN messages m ON m.id = r.message_id"
                    " WHERE r.provider = %s AND r.provider_message_id = %s FOR UPDATE OF m",
                    (event.provider, event.provider_message_id),
                )
            message_id = None if message is None else message["id"]
            stored, row = event_row(event, message_id, now=now)
            inserted = await _fetchone(
                conn,
                pyformat(
                    "INSERT INTO " + EVENT_COLUMNS + " ON CONFLICT (dedup) DO NOTHING RETURNING seq"
                ),
                row,
            )
            if inserted is None:
                return IngestOutcome(new=False, message_id=message_id)
            if message is None:
                return IngestOutcome(new=True)
            run_id = message["run_id"]
            status, changed, first = await self._apply(
                conn, message["id"], DeliveryStatus(message["status"]), stored
            )
            waits: bool | None = None
            if changed or first:
                waits = False
                if run_id is not None:
                    found = await _fetchone(
                        conn,
                        "SELECT EXISTS (SELECT 1 FROM steps WHERE run_id = %s"
                        " AND state IN ('waiting', 'pending')) AS waits",
                        (run_id,),
                    )
                    waits = bool(found and found["waits"])
            channel = message["channel"]
            return IngestOutcome(
                new=True,
                message_id=message["id"],
                status=status,
                changed=changed,
                first_event=first,
                run_id=run_id,
                flow_waits=waits,
                channel=Channel(channel) if channel else None,
                address=message["address"],
            )

    async def save_inbound(
        self, message: InboundMessage, *, now: datetime, recipient_id: str | None
    ) -> bool:
        """Store an inbound message once; ``False`` if it was stored before."""
        async with self._tx() as conn:
            cursor = await conn.execute(
                pyformat("INSERT INTO " + INBOUND_COLUMNS + " ON CONFLICT (dedup) DO NOTHING"),
                inbound_row(message, now=now, recipient_id=recipient_id),
            )
            return cursor.rowcount > 0

    async def count_sent(self, recipient_id: str, category: str, since: datetime) -> int:
        """Messages of ``category`` sent (or accepted) to the recipient after ``since``."""
        # The window is (since, now]: a message exactly one window old no longer counts.
        row = await self._one(
            "SELECT COUNT(*) AS n FROM messages WHERE recipient_id = %s AND category = %s"
            " AND created_at > %s AND (accepted = 1 OR outcome IN ('pending', 'unknown'))",
            (recipient_id, category, _ts(since)),
        )
        assert row is not None
        return int(row["n"])

    # -- idempotency ----------------------------------------------------------------------------

    async def claim_idempotent(
        self, key: str, *, now: datetime, expires_at: datetime
    ) -> tuple[bool, SendResult | None]:
        """Claim an idempotency key for one send (see :meth:`AsyncStore.claim_idempotent`)."""
        async with self._tx() as conn:
            # The insert takes the key, or an expired claim over; a live one is left (and
            # locked: it cannot go before it is read below).
            claimed = await _fetchone(
                conn,
                "INSERT INTO idempotency (key, result, expires_at) VALUES (%s, NULL, %s)"
                " ON CONFLICT (key) DO UPDATE SET result = NULL,"
                " expires_at = EXCLUDED.expires_at WHERE idempotency.expires_at <= %s"
                " RETURNING key",
                (key, _ts(expires_at), _ts(now)),
            )
            if claimed is not None:
                return True, None
            row = await _fetchone(conn, "SELECT result FROM idempotency WHERE key = %s", (key,))
        if row is None or row["result"] is None:
            return False, None
        return False, SendResult.model_validate_json(row["result"])

    async def release_idempotent(self, key: str) -> None:
        """Give up a claimed key whose send raised."""
        async with self._tx() as conn:
            await conn.execute("DELETE FROM idempotency WHERE key = %s AND result IS NULL", (key,))

    async def put_idempotent(self, key: str, result: SendResult, *, expires_at: datetime) -> None:
        """Remember a result for an idempotency key."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO idempotency (key, result, expires_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET result = EXCLUDED.result,"
                " expires_at = EXCLUDED.expires_at",
                (key, result.model_dump_json(), _ts(expires_at)),
            )

    # -- profiles, contacts, suppressions ------------------------------------------------------

    async def put_profile(self, recipient: Recipient, *, now: datetime) -> None:
        """Insert or replace a profile; its contact points are indexed for inbound linking."""
        if not recipient.id:
            raise ConfigurationError("a profile needs an id")
        async with self._tx() as conn:
            await self._lock(conn, [(self.schema, "profile", recipient.id)])
            await conn.execute(
                "INSERT INTO profiles (id, data, updated_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data,"
                " updated_at = EXCLUDED.updated_at",
                (recipient.id, recipient.model_dump_json(), _ts(now)),
            )
            # Dead contact points stay linked to their owner (forget() must find them) even
            # when the profile no longer lists them.
            await conn.execute(
                "UPDATE contacts SET recipient_id = NULL WHERE recipient_id = %s"
                " AND invalid_at IS NULL",
                (recipient.id,),
            )
            points = _contact_points(recipient)
            if points:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO contacts (channel, address, recipient_id) VALUES (%s, %s, %s)"
                        " ON CONFLICT (channel, address)"
                        " DO UPDATE SET recipient_id = EXCLUDED.recipient_id",
                        [(channel, address, recipient.id) for channel, address in points],
                    )
            await conn.execute(
                "DELETE FROM contacts WHERE recipient_id IS NULL AND invalid_at IS NULL"
            )

    async def get_profile(self, recipient_id: str) -> Recipient | None:
        """A profile with its invalid contact points left out, or ``None``."""
        async with self._tx(write=False) as conn:
            row = await _fetchone(conn, "SELECT data FROM profiles WHERE id = %s", (recipient_id,))
            if row is None:
                return None
            invalid = {
                (r["channel"], r["address"])
                for r in await _fetchall(
                    conn,
                    "SELECT channel, address FROM contacts WHERE invalid_at IS NOT NULL"
                    " AND recipient_id = %s",
                    (recipient_id,),
                )
            }
        return without_invalid(Recipient.model_validate_json(row["data"]), invalid)

    async def find_profile(self, channel: Channel, address: str) -> str | None:
        """The id of the profile that owns an address on a channel."""
        row = await self._one(
            "SELECT recipient_id FROM contacts WHERE channel = %s AND address = %s",
            (Channel(channel).value, _normal_address(Channel(channel), address)),
        )
        return None if row is None else cast("str | None", row["recipient_id"])

    async def mark_invalid(
        self, channel: Channel, address: str, reason: str, *, now: datetime
    ) -> None:
        """Mark a contact point dead: it is no longer used."""
        channel = Channel(channel)
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO contacts (channel, address, invalid_reason, invalid_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (channel, address) DO UPDATE SET"
                " invalid_reason = EXCLUDED.invalid_reason, invalid_at = EXCLUDED.invalid_at",
                (channel.value, _normal_address(channel, address), reason, _ts(now)),
            )

    async def mark_valid(self, channel: Channel, address: str) -> bool:
        """Use a contact point again."""
        channel = Channel(channel)
        async with self._tx() as conn:
            cursor = await conn.execute(
                "UPDATE contacts SET invalid_reason = NULL, invalid_at = NULL"
                " WHERE channel = %s AND address = %s AND invalid_at IS NOT NULL",
                (channel.value, _normal_address(channel, address)),
            )
            return cursor.rowcount > 0

    async def suppress(self, channel: Channel, address: str, reason: str, *, now: datetime) -> None:
        """Add an address to the suppression list."""
        channel = Channel(channel)
        normal = _normal_address(channel, address)
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO suppressions (channel, address_hash, address, reason, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel, address_hash) DO UPDATE SET"
                " address = EXCLUDED.address, reason = EXCLUDED.reason,"
                " created_at = EXCLUDED.created_at",
                (channel.value, address_hash(channel, normal), normal, reason, _ts(now)),
            )

    async def unsuppress(self, channel: Channel, address: str) -> bool:
        """Remove an address from the suppression list."""
        channel = Channel(channel)
        async with self._tx() as conn:
            cursor = await conn.execute(
                "DELETE FROM suppressions WHERE channel = %s AND address_hash = %s",
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
        rows = await self._all(
            pyformat(BLOCKED), (channel.value, address_hash(channel, normal), channel.value, normal)
        )
        if not rows:
            return None
        return block_reason(*min((row["kind"], row["reason"]) for row in rows))

    async def hold_reads(self, addresses: Sequence[tuple[Channel, str]]) -> None:
        """Read once what :meth:`blocked` would say of each address, for a batch of sends.

        As in the SQLite store: until :meth:`release_reads` or this store's next write,
        :meth:`blocked` answers those addresses, and :meth:`unhealthy` a list of names it
        was asked before, from memory.
        """
        by_channel, held = group_addresses(addresses)
        found: dict[tuple[str, str], tuple[int, str]] = {}
        async with self._tx(write=False) as conn:
            for channel_value, known in by_channel.items():
                by_hash = {digest: normal for normal, digest in known.items()}
                for row in await _fetchall(
                    conn,
                    "SELECT address_hash, reason FROM suppressions"
                    " WHERE channel = %s AND address_hash = ANY(%s)",
                    (channel_value, list(by_hash)),
                ):
                    found[(channel_value, by_hash[row["address_hash"]])] = (0, row["reason"])
                for row in await _fetchall(
                    conn,
                    "SELECT address, invalid_reason FROM contacts WHERE channel = %s"
                    " AND address = ANY(%s) AND invalid_at IS NOT NULL",
                    (channel_value, list(known)),
                ):
                    key = (channel_value, row["address"])
                    if key not in found:  # a suppression wins
                        found[key] = (1, row["invalid_reason"])
        for key, (kind, reason) in found.items():
            held[key] = block_reason(kind, reason)
        self._held = held
        self._held_health = {}

    async def release_reads(self) -> None:
        """Forget what :meth:`hold_reads` read."""
        self._held = self._held_health = None

    # -- business events ------------------------------------------------------------------------

    async def record_business_event(
        self, recipient_id: str, name: str, data: dict[str, Any], *, now: datetime
    ) -> None:
        """Record something the person did."""
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO business_events (recipient_id, name, data, occurred_at)"
                " VALUES (%s, %s, %s, %s)",
                (recipient_id, name, json.dumps(data, default=str), _ts(now)),
            )

    async def has_business_event(
        self, recipient_id: str, names: Sequence[str], since: datetime
    ) -> bool:
        """Whether one of ``names`` was recorded for the person since ``since``."""
        if not names:
            return False
        row = await self._one(
            "SELECT 1 FROM business_events WHERE recipient_id = %s AND name = ANY(%s)"
            " AND occurred_at >= %s LIMIT 1",
            (recipient_id, list(names), _ts(since)),
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
        async with self._tx() as conn:
            # Two runs with one key started at once: the unique index lets one in, the
            # other waits for it and then finds it.
            created = await _fetchone(
                conn,
                "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
                " VALUES (%s, %s, %s, %s, %s, 'active', %s)"
                " ON CONFLICT (key) WHERE state = 'active' AND key IS NOT NULL DO NOTHING"
                " RETURNING id",
                (run_id, key, flow, json.dumps(plan), recipient_id, _ts(now)),
            )
            if created is None:
                row = await _fetchone(
                    conn, "SELECT id FROM runs WHERE key = %s AND state = 'active'", (key,)
                )
                if row is not None:
                    return str(row["id"]), False
                # It ended between the two statements: this one starts after all.
                await conn.execute(
                    "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, 'active', %s)",
                    (run_id, key, flow, json.dumps(plan), recipient_id, _ts(now)),
                )
            if steps:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        pyformat(INSERT_STEP),
                        step_rows(run_id, steps, recipient_id=recipient_id, now=now),
                    )
            return run_id, True

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run as a dict, or ``None``."""
        row = await self._one("SELECT * FROM runs WHERE id = %s", (run_id,))
        return None if row is None else run_record(row)

    async def get_runs(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Several runs at once (one query)."""
        ids = list(dict.fromkeys(run_ids))
        if not ids:
            return {}
        rows = await self._all("SELECT * FROM runs WHERE id = ANY(%s)", (ids,))
        return {row["id"]: run_record(row) for row in rows}

    async def run_steps(self, run_id: str) -> list[StoredStep]:
        """The steps of a run, in order."""
        rows = await self._all("SELECT * FROM steps WHERE run_id = %s ORDER BY idx, id", (run_id,))
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
        async with self._tx() as conn:
            if key is not None or run_id is not None:
                column, value = ("key", key) if key is not None else ("id", run_id)
                rows = await _fetchall(
                    conn,
                    f"SELECT id, plan FROM runs WHERE {column} = %s AND state = 'active'"  # noqa: S608
                    " ORDER BY id FOR UPDATE",
                    (value,),
                )
                ids = [r["id"] for r in rows]
            else:
                rows = await _fetchall(
                    conn,
                    "SELECT id, plan FROM runs WHERE recipient_id = %s AND state = 'active'"
                    " ORDER BY id FOR UPDATE",
                    (recipient_id,),
                )
                ids = [
                    r["id"]
                    for r in rows
                    if event in json.loads(r["plan"]).get("flow", {}).get("cancel_on", [])
                ]
            if ids:
                await conn.execute(
                    "UPDATE runs SET state = 'canceled', ended_at = %s, detail = %s"
                    " WHERE id = ANY(%s)",
                    (_ts(now), reason, ids),
                )
                await conn.execute(
                    "UPDATE steps SET state = 'canceled', detail = %s, updated_at = %s"
                    " WHERE run_id = ANY(%s) AND state IN ('waiting', 'pending')",
                    (reason, _ts(now), ids),
                )
            return len(ids)

    async def release_claims(self, worker: str) -> int:
        """Make the steps a worker holds due again."""
        async with self._tx() as conn:
            cursor = await conn.execute(
                "UPDATE steps SET state = 'pending', worker = NULL, lease_until = NULL"
                " WHERE state = 'claimed' AND worker = %s",
                (worker,),
            )
            return cursor.rowcount

    async def claim_due(
        self, *, now: datetime, worker: str, lease: timedelta, limit: int
    ) -> list[StoredStep]:
        """Atomically claim due steps and steps whose lease ran out, earliest due first.

        Steps due at the same time go in the order they were created. Each of the two
        kinds is read from its partial index with ``FOR UPDATE SKIP LOCKED``: workers
        claiming at once take different steps, none waits for another, and a step claimed
        (and committed) by another worker meanwhile is not taken again.
        """
        if limit <= 0:
            return []
        at = _ts(now)
        rows = await self._all(
            _CLAIM_DUE,
            {"at": at, "limit": limit, "worker": worker, "lease": _ts(now + lease)},  # type: ignore[arg-type]
        )
        self._held = self._held_health = None
        rows.sort(key=lambda r: (r["due_at"] if r["due_at"] is not None else at, r["seq"]))
        return [step_record(r) for r in rows]

    async def update_steps(self, updates: Sequence[StepUpdate], *, now: datetime) -> None:
        """Apply step changes in order, in one transaction; runs left with no open step end."""
        if not updates:
            return
        at = _ts(now)
        # This store names steps "<run id>.<index>" (create_run, add_digest_item).
        runs = sorted({u.step_id.rpartition(".")[0] for u in updates})
        ended = ended_runs(updates)
        async with self._tx() as conn:
            # The runs first, in one order (as cancel_runs): two workers closing a run's last
            # two steps at once take turns, and the second sees the first's step closed and
            # ends the run; changes to one run's steps never deadlock.
            await conn.execute(
                "SELECT id FROM runs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (runs,)
            )
            async with conn.cursor() as cur:
                await cur.executemany(pyformat(UPDATE_STEP), step_update_rows(updates, at))
            if ended:
                await conn.execute(
                    "UPDATE runs SET state = 'done', ended_at = %s WHERE state = 'active'"
                    " AND id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM steps"
                    " WHERE steps.run_id = runs.id"
                    " AND steps.state IN ('waiting', 'pending', 'claimed'))",
                    (at, ended),
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
        async with self._tx() as conn:
            # One digest per person and key, even when two runs add to it at once.
            await self._lock(conn, [(self.schema, "digest", digest_key, recipient_id)])
            row = await _fetchone(
                conn,
                "SELECT id, items FROM steps WHERE digest_key = %s AND recipient_id = %s"
                " AND state = 'pending' LIMIT 1 FOR UPDATE",
                (digest_key, recipient_id),
            )
            if row is not None:
                added = digest_added(row, item, now=now)
                if added is not None:
                    await conn.execute(pyformat(ADD_DIGEST_ITEM), added)
                return str(row["id"])
            step_id, run_row, step_row = new_digest(
                run_id=run_id,
                digest_key=digest_key,
                recipient_id=recipient_id,
                due_at=due_at,
                item=item,
                now=now,
            )
            await conn.execute(pyformat(INSERT_DIGEST_RUN), run_row)
            await conn.execute(pyformat(INSERT_DIGEST_STEP), step_row)
            return step_id

    async def next_due(self) -> datetime | None:
        """When the next pending step is due (or the next claim's lease ends)."""
        row = await self._one(
            "SELECT LEAST((SELECT MIN(due_at) FROM steps WHERE state = 'pending'),"
            " (SELECT MIN(lease_until) FROM steps WHERE state = 'claimed')) AS due"
        )
        return None if row is None else _dt(row["due"])

    # -- provider health --------------------------------------------------------------------------

    async def unhealthy(self, names: Sequence[str], *, now: datetime) -> set[str]:
        """The providers among ``names`` that are benched at ``now``."""
        if not names:
            return set()
        held = self._held_health
        key = tuple(names)
        rows: list[tuple[str, float | None]]
        if held is not None and key in held:
            rows = held[key]
        else:
            found = await self._all(
                "SELECT provider, benched_until FROM provider_health WHERE provider = ANY(%s)",
                (list(names),),
            )
            rows = [(r["provider"], r["benched_until"]) for r in found]
            if held is not None:
                held[key] = rows
        return benched(rows, names, uncounted=self._uncounted, now=now)

    async def record_health(
        self, name: str, ok: bool, *, now: datetime, threshold: int, cooldown: timedelta
    ) -> None:
        """Count a provider-level failure, or reset on success."""
        if ok:
            # A success changes something only after failures: most need no write.
            if name in self._uncounted:
                return
            if (
                await self._one("SELECT 1 FROM provider_health WHERE provider = %s", (name,))
                is not None
            ):
                async with self._tx() as conn:
                    await conn.execute("DELETE FROM provider_health WHERE provider = %s", (name,))
            self._uncounted.add(name)
            return
        self._uncounted.discard(name)
        async with self._tx() as conn:
            # One statement: failures counted by several workers at once all count.
            await conn.execute(
                "INSERT INTO provider_health AS h (provider, failures, benched_until, updated_at)"
                " VALUES (%(name)s, 1, CASE WHEN 1 >= %(threshold)s THEN %(benched)s END,"
                " %(at)s) ON CONFLICT (provider) DO UPDATE SET failures = h.failures + 1,"
                " benched_until = CASE WHEN h.failures + 1 >= %(threshold)s"
                " THEN %(benched)s END, updated_at = EXCLUDED.updated_at",
                {
                    "name": name,
                    "threshold": threshold,
                    "benched": _ts(now + cooldown),
                    "at": _ts(now),
                },
            )

    # -- the customer view ------------------------------------------------------------------------

    async def history(self, recipient_id: str) -> list[HistoryEntry]:
        """One timeline across channels, oldest first."""
        entries: list[Timed] = []
        async with self._tx(write=False) as conn:
            messages = await _fetchall(
                conn, "SELECT * FROM messages WHERE recipient_id = %s ORDER BY seq", (recipient_id,)
            )
            events = await _fetchall(
                conn,
                "SELECT e.* FROM events e JOIN messages m ON m.id = e.message_id"
                " WHERE m.recipient_id = %s ORDER BY e.seq",
                (recipient_id,),
            )
            inbound = await _fetchall(
                conn, "SELECT * FROM inbound WHERE recipient_id = %s ORDER BY seq", (recipient_id,)
            )
            business = await _fetchall(
                conn,
                "SELECT * FROM business_events WHERE recipient_id = %s ORDER BY seq",
                (recipient_id,),
            )
            steps = await _fetchall(
                conn,
                "SELECT steps.*, runs.flow AS flow FROM steps"
                " JOIN runs ON runs.id = steps.run_id WHERE steps.recipient_id = %s"
                " AND steps.state IN ('skipped', 'canceled', 'unknown') ORDER BY steps.seq",
                (recipient_id,),
            )
        by_message: dict[str, list[DictRow]] = {}
        for e in events:
            by_message.setdefault(e["message_id"], []).append(e)
        # Ties in time are broken as the SQLite store does: by kind, then in the order the
        # records were written (messages, each followed by its events, then the rest).
        for m in messages:
            entries.append(message_entry(m))
            entries += (event_entry(m, e) for e in by_message.get(m["id"], []))
        entries += map(inbound_entry, inbound)
        entries += map(business_entry, business)
        entries += map(step_entry, steps)
        return timeline(entries)

    async def report(self, *, since: datetime, until: datetime, by: str) -> Report:
        """Counts per ``channel``, ``provider``, ``category`` or ``flow``."""
        rows = await self._all(pyformat(report_sql(by)), (_ts(since), _ts(until)))
        return tally(rows, since=since, until=until, by=by)

    async def forget(self, recipient_id: str) -> dict[str, int]:
        """Erase a person's data (suppressions keep only a hash of the address)."""
        counts: dict[str, int] = {}
        async with self._tx() as conn:

            async def ids_of(query: str, *params: Any) -> list[Any]:
                rows = await _fetchall(conn, query, params)
                return [next(iter(r.values())) for r in rows]

            async def delete(query: str, *params: Any) -> int:
                return (await conn.execute(query, params)).rowcount

            ids = await ids_of("SELECT id FROM messages WHERE recipient_id = %s", recipient_id)
            addresses = [
                (r["channel"], r["address"])
                for r in await _fetchall(
                    conn,
                    "SELECT channel, address FROM contacts WHERE recipient_id = %s",
                    (recipient_id,),
                )
            ]
            counts["events"] = await delete("DELETE FROM events WHERE message_id = ANY(%s)", ids)
            counts["messages"] = len(ids)
            await delete("DELETE FROM provider_refs WHERE message_id = ANY(%s)", ids)
            # Remembered results of idempotency keys hold the address and every attempt.
            known = set(ids)
            stale = [
                r["key"]
                for r in await _fetchall(
                    conn, "SELECT key, result FROM idempotency WHERE result IS NOT NULL"
                )
                if json.loads(r["result"]).get("message_id") in known
            ]
            if stale:
                await delete("DELETE FROM idempotency WHERE key = ANY(%s)", stale)
            await delete("DELETE FROM messages WHERE recipient_id = %s", recipient_id)
            counts["inbound"] = await delete(
                "DELETE FROM inbound WHERE recipient_id = %s", recipient_id
            )
            counts["business_events"] = await delete(
                "DELETE FROM business_events WHERE recipient_id = %s", recipient_id
            )
            # The runs first (as update_steps and cancel_runs lock them): no deadlock.
            run_ids = await ids_of(
                "SELECT id FROM runs WHERE recipient_id = %s ORDER BY id FOR UPDATE", recipient_id
            )
            counts["runs"] = len(run_ids)
            await delete("DELETE FROM steps WHERE run_id = ANY(%s)", run_ids)
            await delete("DELETE FROM steps WHERE recipient_id = %s", recipient_id)
            await delete("DELETE FROM runs WHERE recipient_id = %s", recipient_id)
            counts["profiles"] = await delete("DELETE FROM profiles WHERE id = %s", recipient_id)
            counts["contacts"] = await delete(
                "DELETE FROM contacts WHERE recipient_id = %s", recipient_id
            )
            for channel, address in addresses:
                # Keep the opt-out (the law asks to honour it), not the address itself.
                await delete(
                    "UPDATE suppressions SET address = NULL WHERE channel = %s"
                    " AND address_hash = %s",
                    channel,
                    address_hash(channel, address),
                )
                await delete("DELETE FROM events WHERE recipient = %s", address)
                await delete("DELETE FROM inbound WHERE sender = %s", address)
        return counts

    async def prune(self, before: datetime) -> int:
        """Delete messages, events, inbound messages and finished runs older than ``before``."""
        cutoff = _ts(before)
        async with self._tx() as conn:

            async def count(query: str, *params: Any) -> int:
                return (await conn.execute(query, params)).rowcount

            old = [
                r["id"]
                for r in await _fetchall(
                    conn,
                    "SELECT id FROM messages WHERE updated_at < %s AND outcome != 'pending'"
                    " AND (run_id IS NULL OR run_id NOT IN"
                    " (SELECT id FROM runs WHERE state = 'active'))",
                    (cutoff,),
                )
            ]
            await count("DELETE FROM provider_refs WHERE message_id = ANY(%s)", old)
            removed = await count("DELETE FROM messages WHERE id = ANY(%s)", old)
            removed += await count("DELETE FROM events WHERE received_at < %s", cutoff)
            removed += await count("DELETE FROM inbound WHERE received_at < %s", cutoff)
            removed += await count(
                "DELETE FROM business_events WHERE occurred_at < %s AND recipient_id NOT IN"
                " (SELECT recipient_id FROM runs WHERE state = 'active'"
                " AND recipient_id IS NOT NULL)",
                cutoff,
            )
            removed += await count("DELETE FROM idempotency WHERE expires_at < %s", cutoff)
            finished = [
                r["id"]
                for r in await _fetchall(
                    conn,
                    "SELECT id FROM runs WHERE state != 'active' AND ended_at < %s"
                    " ORDER BY id FOR UPDATE",
                    (cutoff,),
                )
            ]
            await count("DELETE FROM steps WHERE run_id = ANY(%s)", finished)
            removed += await count("DELETE FROM runs WHERE id = ANY(%s)", finished)
            return removed
