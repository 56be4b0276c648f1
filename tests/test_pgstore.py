"""The PostgreSQL store: what is its own (the shared behaviour runs in ``tests/test_store.py``).

URLs and options, the missing driver, schema versions, and the promises several workers
rely on, checked from several connections and processes at once: each due step claimed once,
an event never lost to the send it belongs to, idempotency and run keys claimed once, a run
ended by whichever worker closes its last step. Tests that need the server are marked
``postgres`` and skip when it does not answer (``tests/conftest.py``); each uses a schema of
its own, dropped after.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

import anysend
from anysend import (
    AsyncClient,
    Attempt,
    AttemptOutcome,
    Channel,
    Client,
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    Receipt,
    Recipient,
    SendResult,
    StepState,
)
from anysend._async._pgstore import AsyncPostgresStore, is_postgres_url
from anysend._async._store import open_store as open_async_store
from anysend._records import StepUpdate
from anysend._sync._pgstore import PostgresStore
from anysend._sync._store import SQLiteStore, open_store
from tests.conftest import POSTGRES_URL
from tests.worker_target import Receiver

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
#: Seconds any thread or process of a test may take before the test gives up on it.
LIMIT = 60.0
R = TypeVar("R")

postgres = pytest.mark.postgres


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def sent(message_id: str, pmid: str) -> SendResult:
    receipt = Receipt(provider_message_id=pmid, status=DeliveryStatus.ACCEPTED)
    attempt = Attempt(
        channel=Channel.EMAIL,
        provider="mail",
        outcome=AttemptOutcome.SENT,
        address="ann@example.com",
        receipt=receipt,
    )
    return SendResult(
        message_id=message_id,
        status=DeliveryStatus.ACCEPTED,
        channel=Channel.EMAIL,
        provider="mail",
        address="ann@example.com",
        receipt=receipt,
        attempts=(attempt,),
    )


def delivered(pmid: str) -> DeliveryEvent:
    return DeliveryEvent(
        provider="mail",
        provider_message_id=pmid,
        status=DeliveryStatus.DELIVERED,
        event_id=f"{pmid}:delivered",
        occurred_at=at(1),
    )


def together(count: int, work: Callable[[int], R]) -> list[R]:
    """Run ``work(0..count-1)`` in threads released at once; their results, in order."""
    barrier = threading.Barrier(count, timeout=LIMIT)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LIMIT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[PostgresStore]]:
    """Four stores (four pools, as four processes have) on one fresh schema."""
    opened = [PostgresStore(postgres_url, max_connections=2) for _ in range(4)]
    yield opened
    for store in opened:
        store.close()


def raw(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement on a connection of the test's own (in the store's schema)."""
    import psycopg

    schema = url.partition("?schema=")[2]
    with psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}") as conn:
        return conn.execute(query, params).fetchall()


# -- URLs, options, the driver (no server needed) -----------------------------------------------


def test_urls_name_postgres_and_options_leave_the_url() -> None:
    """``postgresql://`` and ``postgres://`` are PostgreSQL; ``schema`` and pool sizes are ours."""
    pytest.importorskip("psycopg")
    assert is_postgres_url("postgresql://u@h/db")
    assert is_postgres_url("postgres://u@h/db")
    assert is_postgres_url("postgresql+psycopg://u@h/db")
    assert not is_postgres_url("postgresql_data.db")
    assert not is_postgres_url("sqlite:///x.db")
    store = PostgresStore(
        "postgres://ann:s3cret@db.example:6543/app?schema=tenant_1&sslmode=require"
        "&max_connections=3"
    )
    assert store.schema == "tenant_1"
    assert store._conninfo == "postgresql://ann:s3cret@db.example:6543/app?sslmode=require"
    assert store._max == 3
    assert "s3cret" not in repr(store)
    assert repr(store) == (
        "PostgresStore('postgres://ann:***@db.example:6543/app?schema=tenant_1"
        "&sslmode=require&max_connections=3', schema='tenant_1')"
    )
    assert PostgresStore("postgresql://h/db").schema == "anysend"  # the default
    assert PostgresStore("postgresql://h/db?schema=a", schema="b").schema == "b"  # kwarg wins


@pytest.mark.parametrize(
    ("url", "options", "says"),
    [
        ("postgresql://h/db?schema=Bad-Name", {}, "schema must be"),
        ("postgresql://h/db", {"schema": "x; DROP TABLE y"}, "schema must be"),
        ("postgresql://h/db?max_connections=0", {}, "max_connections"),
        ("postgresql://h/db?min_connections=many", {}, "min_connections"),
        ("postgresql://h/db", {"min_connections": 5, "max_connections": 2}, "at least"),
        ("postgresql://h/db", {"connect_timeout": 0}, "connect_timeout"),
        ("mysql://h/db", {}, "not a PostgreSQL URL"),
    ],
)
def test_bad_options_raise_configuration_error(
    url: str, options: dict[str, Any], says: str
) -> None:
    """Bad input is refused when the store is made, before any connection."""
    pytest.importorskip("psycopg")
    with pytest.raises(ConfigurationError, match=says):
        PostgresStore(url, **options)


def test_a_store_argument_with_a_postgres_url_opens_this_store() -> None:
    """``open_store``, ``Client(store=...)`` and ``AsyncClient(store=...)`` take the URL."""
    pytest.importorskip("psycopg")
    url = "postgresql://postgres@127.0.0.1:5432/test?schema=never_used"
    assert isinstance(open_store(url), PostgresStore)
    assert isinstance(open_store("postgres://h/db"), PostgresStore)
    assert isinstance(open_async_store(url), AsyncPostgresStore)
    assert isinstance(open_store("postgresql_data.db"), SQLiteStore)  # a file name
    client = Client([], store=url)  # nothing connects until the store is used
    assert isinstance(client.store, PostgresStore)
    assert client.store.schema == "never_used"
    client.close()
    assert isinstance(AsyncClient([], store=url).store, AsyncPostgresStore)


def test_a_missing_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg the store (and a client given the URL) raises ConfigurationError."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r'pip install "anysend\[postgres\]"'):
        PostgresStore("postgresql://h/db")
    with pytest.raises(ConfigurationError, match=r'pip install "anysend\[postgres\]"'):
        Client([], store="postgresql://h/db")


def test_import_anysend_does_not_import_psycopg() -> None:
    """psycopg loads when a PostgreSQL store is made, not with anysend or the store module."""
    code = (
        "import sys, anysend, anysend._sync._pgstore, anysend._async._pgstore\n"
        "anysend.Client([], store='anysend-test.db')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=LIMIT
    )
    assert out.stdout.strip() == "[]"


# -- schema ------------------------------------------------------------------------------------


@postgres
def test_the_schema_is_created_versioned_and_kept_apart(postgres_url: str) -> None:
    """Nothing connects until first use; then every table, in the schema asked for."""
    store = PostgresStore(postgres_url)
    schema = store.schema
    assert raw(postgres_url, "SELECT 1 FROM pg_namespace WHERE nspname = %s", schema) == []
    assert store.get_schema_version() == 1
    tables = {
        r[0]
        for r in raw(
            postgres_url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            schema,
        )
    }
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
    } == tables
    store.save_result(sent("m1", "p-1"), now=at(0), recipient_id="ann", category=None)
    store.close()
    again = PostgresStore(postgres_url)  # a restart
    message = again.get_message("m1")
    assert message is not None
    assert message.provider_message_ids == ("p-1",)
    again.close()


@postgres
def test_a_newer_schema_is_refused_and_left_alone(postgres_url: str) -> None:
    """A schema written by a newer anysend raises ConfigurationError and is not changed."""
    store = PostgresStore(postgres_url)
    store.save_result(sent("m1", "p-1"), now=at(0), recipient_id="ann", category=None)
    store.close()
    raw_update(postgres_url, "UPDATE anysend_meta SET value = '7' WHERE key = 'schema'")
    newer = PostgresStore(postgres_url)
    with pytest.raises(ConfigurationError, match="version 7; this anysend knows up to 1"):
        newer.get_message("m1")
    with pytest.raises(ConfigurationError, match="upgrade anysend"):
        newer.get_schema_version()
    newer.close()
    assert raw(postgres_url, "SELECT value FROM anysend_meta") == [("7",)]
    assert raw(postgres_url, "SELECT id FROM messages") == [("m1",)]


def raw_update(url: str, query: str) -> None:
    import psycopg

    schema = url.partition("?schema=")[2]
    with psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}") as conn:
        conn.execute(query)


@postgres
def test_workers_starting_together_migrate_once(stores: list[PostgresStore]) -> None:
    """Four stores opening a new schema at once: one creates it, all use it."""
    assert together(4, lambda i: stores[i].get_schema_version()) == [1, 1, 1, 1]
    assert all(s.next_due() is None for s in stores)


def test_a_server_that_does_not_answer_is_a_configuration_error() -> None:
    """A refused connection says which store (without its password) and why."""
    pytest.importorskip("psycopg")
    store = PostgresStore("postgresql://ann:s3cret@127.0.0.1:1/db", connect_timeout=2)
    with pytest.raises(ConfigurationError, match="cannot connect") as info:
        store.next_due()
    assert "s3cret" not in str(info.value)


@postgres
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_store_made_before_fork_opens_its_own_connections_in_the_child(
    postgres_url: str,
) -> None:
    """A forked child (a pre-fork server's worker) uses the store; the parent's pool goes on."""
    store = PostgresStore(postgres_url)
    store.save_result(sent("m1", "p-1"), now=at(0), recipient_id="ann", category=None)
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that the pool's threads are not copied: the child needs none.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            message = store.get_message("m1")
            store.save_result(sent("m2", "p-2"), now=at(1), recipient_id="ann", category=None)
            os.write(write, (message.id if message else "none").encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        assert select.select([read], [], [], LIMIT)[0], "the child did not answer in time"
        answer = os.read(read, 100)
    finally:
        os.close(read)
    _, status = os.waitpid(pid, 0)
    assert (os.waitstatus_to_exitcode(status), answer) == (0, b"m1")
    assert store.get_message("m2") is not None  # the parent's connections still work
    store.close()


# -- several workers at once -------------------------------------------------------------------


def make_runs(store: PostgresStore, count: int, due: datetime = T0) -> None:
    for run in range(count):
        store.create_run(
            run_id=f"r{run}",
            key=None,
            flow="test",
            plan={},
            recipient_id=f"user-{run % 7}",
            now=T0,
            steps=[(StepState.PENDING, due + timedelta(seconds=run % 5))],
        )


@postgres
def test_workers_claiming_at_once_take_each_due_step_once(stores: list[PostgresStore]) -> None:
    """Six threads on four pools claim 300 due steps in small batches: each exactly once."""
    make_runs(stores[0], 300)
    lease = timedelta(minutes=5)

    def work(index: int) -> list[str]:
        store = stores[index % len(stores)]  # two threads share a pool
        mine: list[str] = []
        while steps := store.claim_due(now=at(1), worker=f"w{index}", lease=lease, limit=7):
            mine += [s.id for s in steps]
            store.update_steps([StepUpdate(s.id, StepState.SENT) for s in steps], now=at(1))
        return mine

    claimed = together(6, work)
    everything = Counter(step for mine in claimed for step in mine)
    assert len(everything) == 300
    assert set(everything.values()) == {1}
    assert sum(1 for mine in claimed if mine) >= 2  # they really worked side by side
    runs = stores[1].get_runs([f"r{i}" for i in range(300)])
    assert {run["state"] for run in runs.values()} == {"done"}
    assert len(runs) == 300
    assert stores[2].next_due() is None


@postgres
def test_a_step_locked_by_another_worker_is_skipped_not_waited_for(
    stores: list[PostgresStore], postgres_url: str
) -> None:
    """A worker in the middle of claiming holds its rows; the others claim the rest at once."""
    import psycopg

    make_runs(stores[0], 3)
    schema = postgres_url.partition("?schema=")[2]
    with psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}") as other:
        other.execute("SELECT id FROM steps WHERE id = 'r0.0' FOR UPDATE")  # held open
        steps = together(
            1,
            lambda _: stores[1].claim_due(now=at(1), worker="b", lease=timedelta(1), limit=10),
        )[0]
        assert sorted(s.id for s in steps) == ["r1.0", "r2.0"]
        other.rollback()
    assert [s.id for s in stores[2].claim_due(now=at(1), worker="c", lease=timedelta(1), limit=10)]
    assert stores[3].claim_due(now=at(1), worker="d", lease=timedelta(1), limit=10) == []


@postgres
def test_claim_due_reads_its_two_partial_indexes(postgres_url: str) -> None:
    """The claim's plan on 20,000 steps: index ranges, no scan of the steps table."""
    import psycopg

    from anysend._sync._pgstore import _CLAIM_DUE

    store = PostgresStore(postgres_url)
    assert store.next_due() is None  # the schema exists now
    store.close()
    schema = postgres_url.partition("?schema=")[2]
    with psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}") as conn:
        conn.execute(
            "INSERT INTO steps (id, run_id, idx, state, due_at, updated_at)"
            " SELECT 'r' || g || '.0', 'r' || g, 0,"
            " CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'sent' END, g, 0"
            " FROM generate_series(1, 20000) AS g"
        )
        conn.execute("ANALYZE steps")
        params = {"at": 30000.0, "limit": 100, "worker": "w", "lease": 30060.0}
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {_CLAIM_DUE}", params).fetchall())
        conn.rollback()
    assert "Index Scan using steps_due on steps" in plan, plan
    assert "steps_lease" in plan, plan
    assert "Seq Scan on steps" not in plan, plan


@postgres
def test_an_expired_lease_is_claimed_again_once(stores: list[PostgresStore]) -> None:
    """A dead worker's steps come back when its lease ends: to one of the live workers."""
    make_runs(stores[0], 20)
    first = stores[0].claim_due(now=at(1), worker="dead", lease=timedelta(minutes=1), limit=50)
    assert len(first) == 20
    assert stores[1].claim_due(now=at(1.5), worker="b", lease=timedelta(1), limit=50) == []
    again = together(
        4,
        lambda i: stores[i].claim_due(now=at(3), worker=f"w{i}", lease=timedelta(1), limit=50),
    )
    ids = [s.id for steps in again for s in steps]
    assert sorted(ids) == sorted(s.id for s in first)
    assert {s.attempts for steps in again for s in steps} == {2}


@postgres
def test_an_event_racing_its_send_is_never_lost(stores: list[PostgresStore]) -> None:
    """A callback ingested while its send is being recorded: applied either way."""
    for n in range(25):
        pmid = f"p-{n}"

        def work(index: int, n: int = n, pmid: str = pmid) -> object:
            if index == 0:
                return stores[0].save_result(
                    sent(f"m{n}", pmid), now=at(0), recipient_id="ann", category=None
                )
            return stores[1].ingest(delivered(pmid), now=at(1))

        together(2, work)
        message = stores[2].get_message(f"m{n}")
        assert message is not None
        assert message.status is DeliveryStatus.DELIVERED, n
        assert message.delivered_at == at(1)


@postgres
def test_statuses_from_callbacks_at_once_only_move_forward(stores: list[PostgresStore]) -> None:
    """``delivered`` and ``read`` ingested at once by two processes: the message ends ``read``."""
    for n in range(15):
        stores[0].save_result(sent(f"m{n}", f"p-{n}"), now=at(0), recipient_id="ann", category=None)
        read = delivered(f"p-{n}").model_copy(
            update={"status": DeliveryStatus.READ, "event_id": f"p-{n}:read"}
        )
        events = [read, delivered(f"p-{n}")]

        def ingest(i: int, events: list[DeliveryEvent] = events) -> object:
            return stores[i].ingest(events[i], now=at(2))

        together(2, ingest)
        message = stores[3].get_message(f"m{n}")
        assert message is not None
        assert (message.status, message.read_at, message.delivered_at) == (
            DeliveryStatus.READ,
            at(1),
            at(1),
        )


@postgres
def test_an_idempotency_key_is_claimed_by_one_caller(stores: list[PostgresStore]) -> None:
    """Eight callers claim one key at once: one owns it; after its result, all read it."""
    claims = together(
        8,
        lambda i: stores[i % 4].claim_idempotent("key-1", now=at(0), expires_at=at(60)),
    )
    assert sorted(owned for owned, _ in claims) == [False] * 7 + [True]
    stores[0].put_idempotent("key-1", sent("m1", "p-1"), expires_at=at(60))
    owned, result = stores[1].claim_idempotent("key-1", now=at(1), expires_at=at(60))
    assert (owned, result and result.message_id) == (False, "m1")
    assert stores[2].claim_idempotent("key-1", now=at(61), expires_at=at(120)) == (True, None)


@postgres
def test_a_run_key_starts_one_run(stores: list[PostgresStore]) -> None:
    """Four workers start a run with one key at once: one run, and all are told its id."""
    results = together(
        4,
        lambda i: stores[i].create_run(
            run_id=f"run-{i}",
            key="order-42",
            flow="test",
            plan={},
            recipient_id="ann",
            now=T0,
            steps=[(StepState.PENDING, T0)],
        ),
    )
    winners = [run_id for run_id, created in results if created]
    assert len(winners) == 1
    assert {run_id for run_id, _ in results} == set(winners)
    assert len(stores[0].claim_due(now=at(1), worker="w", lease=timedelta(1), limit=10)) == 1


@postgres
def test_the_worker_closing_a_runs_last_step_ends_it(stores: list[PostgresStore]) -> None:
    """Two steps of one run closed at once by two workers: the run ends."""
    for n in range(15):
        run = f"run-{n}"
        stores[0].create_run(
            run_id=run,
            key=None,
            flow="test",
            plan={},
            recipient_id="ann",
            now=T0,
            steps=[(StepState.PENDING, T0), (StepState.PENDING, T0)],
        )

        def close(i: int, run: str = run) -> None:
            stores[i].update_step(f"{run}.{i}", StepState.SENT, now=at(1))

        together(2, close)
        ended = stores[2].get_run(run)
        assert ended is not None
        assert ended["state"] == "done", n


@postgres
def test_failures_counted_at_once_all_count(stores: list[PostgresStore]) -> None:
    """Provider failures recorded by several workers at once add up (and bench the provider)."""
    kwargs: dict[str, Any] = {"threshold": 8, "cooldown": timedelta(minutes=5)}
    together(8, lambda i: stores[i % 4].record_health("mail", False, now=at(0), **kwargs))
    assert stores[0].unhealthy(["mail", "other"], now=at(1)) == {"mail"}
    assert stores[0].unhealthy(["mail"], now=at(6)) == set()


@postgres
def test_a_digest_opened_by_two_runs_at_once_is_one_digest(stores: list[PostgresStore]) -> None:
    """Two runs add to a person's digest at once: one digest with both items."""
    ids = together(
        2,
        lambda i: stores[i].add_digest_item(
            run_id=f"r{i}",
            digest_key="daily",
            recipient_id="ann",
            due_at=at(60),
            item={"run": f"r{i}", "step": 0},
            now=T0,
        ),
    )
    assert ids[0] == ids[1]
    steps = stores[2].claim_due(now=at(61), worker="w", lease=timedelta(1), limit=10)
    assert [sorted(i["run"] for i in s.items) for s in steps] == [["r0", "r1"]]


@postgres
@pytest.mark.anyio
async def test_the_async_store_on_postgres(postgres_url: str) -> None:
    """The async original: records, claims and closes (one event loop)."""
    store = AsyncPostgresStore(postgres_url)
    assert await store.get_schema_version() == 1
    await store.save_result(sent("m1", "p-1"), now=at(0), recipient_id="ann", category=None)
    outcome = await store.ingest(delivered("p-1"), now=at(1))
    assert (outcome.new, outcome.status) == (True, DeliveryStatus.DELIVERED)
    await store.create_run(
        run_id="r1",
        key=None,
        flow="t",
        plan={},
        recipient_id="ann",
        now=T0,
        steps=[(StepState.PENDING, T0)],
    )
    steps = await store.claim_due(now=at(1), worker="w", lease=timedelta(1), limit=5)
    assert [s.id for s in steps] == ["r1.0"]
    await store.aclose()
    assert await store.next_due() == at(1) + timedelta(1)  # opened again
    await store.aclose()


# -- real worker processes ---------------------------------------------------------------------


def worker_env(url: str) -> dict[str, str]:
    """A worker process's environment: its store is the test's schema."""
    from tests.worker_target import IDEMPOTENT_ENV, STORE_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYSEND_")}
    env[STORE_ENV] = url
    env[IDEMPOTENT_ENV] = "0"
    return env


def seed(url: str, receiver: Receiver, count: int) -> list[str]:
    """Start ``count`` runs of the worker tests' flow, one per recipient; their ids."""
    from tests.test_worker import FLOW

    with anysend.Client(store=url) as client:
        return [
            client.start(
                FLOW,
                to=Recipient(id=f"user-{i}", webhook_url=f"{receiver.url}/hook/{i}"),
                key=f"run-{i}",
            )
            for i in range(count)
        ]


@postgres
def test_two_worker_processes_on_postgres_run_each_step_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two ``anysend worker`` processes on one PostgreSQL store: every step sent exactly once.

    As in ``tests/test_worker.py``: the receiver holds the first request until the other
    worker has sent one too, so both certainly work at the same time.
    """
    from tests.test_worker import APP, N, _ran, _start

    env = worker_env(postgres_url)
    with Receiver(hang_on=1) as receiver:
        runs = seed(postgres_url, receiver, N)
        workers = [
            _start(tmp_path, name, "--app", APP, "--id", name, "--once", env=env)
            for name in ("a", "b")
        ]
        try:
            assert receiver.hanging.wait(LIMIT), [w.stderr for w in workers]
            assert receiver.wait_for(2, LIMIT / 2), "the second worker sent nothing meanwhile"
            receiver.release()
            codes = [w.wait() for w in workers]
        finally:
            for w in workers:
                w.stop()
        assert codes == [0, 0], [w.stderr for w in workers]
        ran = [_ran(w.stderr) for w in workers]
        assert sum(ran) == N
        assert min(ran) >= 1
        keys = receiver.keys
    steps = raw(postgres_url, "SELECT run_id, state, claims, message_id FROM steps")
    assert sorted(s[0] for s in steps) == sorted(runs)
    assert {(s[1], s[2]) for s in steps} == {("sent", 1)}
    assert Counter(keys) == Counter(s[3] for s in steps)
    assert set(raw(postgres_url, "SELECT state FROM runs")) == {("done",)}
    messages = raw(postgres_url, "SELECT id FROM messages")
    assert sorted(m[0] for m in messages) == sorted(s[3] for s in steps)


@postgres
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_worker_process_killed_mid_send_loses_nothing(tmp_path: Path, postgres_url: str) -> None:
    """SIGKILL while the receiver holds the K-th request; a restart with the same id finishes.

    The dead worker's open transaction is rolled back by the server; its claim comes back to
    the restarted worker, which does not send the message in the air again (the stock
    webhook adapter takes no idempotency key): that step ends ``unknown``, every other
    step ``sent``, each message reached the receiver once.
    """
    from tests.test_worker import APP, K, N, _run, _start

    env = worker_env(postgres_url)
    with Receiver(hang_on=K) as receiver:
        runs = seed(postgres_url, receiver, N)
        first = _start(tmp_path, "first", "--app", APP, "--id", "w1", "--poll", "0.05", env=env)
        try:
            assert receiver.hanging.wait(LIMIT), first.stderr
            first.process.kill()
            assert first.wait() == -signal.SIGKILL
        finally:
            first.stop()
        in_air = receiver.requests[K - 1]
        states = Counter(r[0] for r in raw(postgres_url, "SELECT state FROM steps"))
        assert states == {"sent": K - 1, "claimed": 1, "pending": N - K}
        receiver.release()
        code, stderr = _run(
            tmp_path, "second", "--app", APP, "--id", "w1", "--once", "--poll", "0.05", env=env
        )
        assert code == 0, stderr
        keys = receiver.keys
    steps = raw(postgres_url, "SELECT run_id, state, message_id, claims FROM steps")
    assert sorted(s[0] for s in steps) == sorted(runs)
    assert Counter(keys) == Counter(s[2] for s in steps)  # each message sent once
    (held,) = [s for s in steps if s[2] == in_air.key]
    assert (held[1], held[3]) == ("unknown", 2)
    assert {s[1] for s in steps if s[2] != in_air.key} == {"sent"}
    assert set(raw(postgres_url, "SELECT state FROM runs")) == {("done",)}
    outcomes = dict(raw(postgres_url, "SELECT id, outcome FROM messages"))
    assert set(outcomes) == {s[2] for s in steps}
    assert outcomes.pop(in_air.key) == "unknown"
    assert set(outcomes.values()) == {"sent"}
