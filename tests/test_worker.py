"""``anysend worker``: the command, and the crash test.

The crash test runs the worker as a real process (``python -m anysend worker``) against a
SQLite store with due flow steps whose messages go through the webhook adapter to a local
HTTP receiver in this process. The receiver holds one request without answering, the worker
is killed with SIGKILL while that request is in the air (the provider has the message; the
store does not know), and a worker restarted with the same ``--id`` finishes the work. Every
step then ends in a final state exactly once, every message is recorded once, and the receiver
got every message once; the one in the air is sent again with the same ``Idempotency-Key`` when
the adapter says its receiver deduplicates, and otherwise ends ``unknown`` without being sent
again.

A second, in-process crash test stops the engine right after every store transaction (and
inside the provider call) of a three-step flow and checks the same promises after a restart.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import anysend
from anysend import (
    Always,
    Channel,
    Flow,
    Message,
    NotOpened,
    OutboundMessage,
    Receipt,
    Recipient,
    Step,
)
from anysend.__main__ import main
from anysend._async._flows import step_message_id
from anysend.testing import MemoryProvider
from tests.worker_target import IDEMPOTENT_ENV, STORE_ENV, Receiver

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.worker_target:make_client"
#: Seconds any worker process may take before the test gives up on it.
LIMIT = 60.0
#: Due steps in the crash tests, and the request the receiver holds.
N = 20
K = 5

FLOW = Flow(name="worker-test", steps=[Step(via="webhook", message=Message(text="Hello"))])

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A worker process and the files its output goes to."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def wait(self, timeout: float = LIMIT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(LIMIT)
            raise AssertionError(
                f"the worker did not exit in {timeout} s:\n{self.stderr}"
            ) from None

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(LIMIT)


def _env(store: Path | None, *, idempotent: bool = False) -> dict[str, str]:
    """The worker's environment: no ANYSEND_STORE or ANYSEND_PROVIDERS from outside."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANYSEND_STORE", "ANYSEND_PROVIDERS")}
    if store is not None:
        env[STORE_ENV] = str(store)
    env[IDEMPOTENT_ENV] = "1" if idempotent else "0"
    return env


def _start(
    tmp_path: Path, name: str, *args: str, env: dict[str, str], flags: tuple[str, ...] = ()
) -> Worker:
    out = tmp_path / f"{name}.out"
    err = tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, *flags, "-m", "anysend", "worker", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    return Worker(process, out, err)


def _run(
    tmp_path: Path, name: str, *args: str, env: dict[str, str], flags: tuple[str, ...] = ()
) -> tuple[int, str]:
    worker = _start(tmp_path, name, *args, env=env, flags=flags)
    try:
        return worker.wait(), worker.stderr
    finally:
        worker.stop()


def _seed(store: Path, receiver: Receiver, n: int, flow: Flow = FLOW) -> list[str]:
    """Start ``n`` runs of ``flow``, one per recipient; their run ids."""
    with anysend.Client(store=str(store)) as client:
        return [
            client.start(
                flow,
                to=Recipient(id=f"user-{i}", webhook_url=f"{receiver.url}/hook/{i}"),
                key=f"run-{i}",
            )
            for i in range(n)
        ]


def _rows(store: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(store)
    try:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def _steps(store: Path) -> dict[str, sqlite3.Row]:
    return {r["id"]: r for r in _rows(store, "SELECT * FROM steps")}


def _messages(store: Path) -> list[sqlite3.Row]:
    return _rows(store, "SELECT * FROM messages")


def _ran(stderr: str) -> int:
    """The worker's own count of the steps it ran (its last line)."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("anysend worker: ") and line.endswith(" step(s) run"):
            return int(line.split()[2])
    raise AssertionError(f"no step count in the worker's output:\n{stderr}")


def _assert_all_done(store: Path, runs: list[str]) -> None:
    """Every run done, every step final, one message per step, named after the step."""
    steps = _steps(store)
    assert sorted(s["run_id"] for s in steps.values()) == sorted(runs)
    assert {s["state"] for s in steps.values()} <= {"sent", "unknown"}
    assert all(s["worker"] is None for s in steps.values())
    messages = _messages(store)
    assert sorted(m["step_id"] for m in messages) == sorted(steps)  # one message per step
    assert {m["id"] for m in messages} == {s["message_id"] for s in steps.values()}
    for message in messages:
        assert steps[message["step_id"]]["message_id"] == message["id"]
    assert {r["state"] for r in _rows(store, "SELECT state FROM runs")} == {"done"}


# -- the command ---------------------------------------------------------------------------------


def test_once_with_nothing_due_exits_0(tmp_path: Path) -> None:
    """``--once`` with a step due in an hour: nothing runs; exit 0.

    Run with ``-I``: like the ``anysend`` script, the interpreter does not put the current
    directory on the path, and the ``--app`` module is still found from it.
    """
    store = tmp_path / "anysend.db"
    later = Flow(
        name="later",
        steps=[Step(via="webhook", message=Message(text="Hi"), delay=timedelta(hours=1))],
    )
    with Receiver() as receiver:
        runs = _seed(store, receiver, 1, later)
        code, stderr = _run(tmp_path, "w", "--app", APP, "--once", env=_env(store), flags=("-I",))
        assert (code, _ran(stderr)) == (0, 0), stderr
        assert receiver.requests == []
    (step,) = _steps(store).values()
    assert (step["run_id"], step["state"], step["claims"]) == (runs[0], "pending", 0)


def test_once_on_a_new_store_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--store and --providers instead of --app (here from the environment): a new store."""
    store = tmp_path / "new" / "anysend.db"
    monkeypatch.setenv("ANYSEND_STORE", str(store))
    monkeypatch.setenv("ANYSEND_PROVIDERS", "console://")
    assert main(["worker", "--once", "--poll", "0.05", "--lease", "30"]) == 0
    assert _ran(capsys.readouterr().err) == 0
    assert _rows(store, "SELECT value FROM anysend_meta WHERE key = 'schema'")[0][0] == "2"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param([], "give --store PATH or set ANYSEND_STORE", id="no-store"),
        pytest.param(
            ["--store", "STORE"],
            "give --providers URLS or set ANYSEND_PROVIDERS",
            id="no-providers",
        ),
        pytest.param(
            ["--app", "tests.worker_target:NOT_A_CLIENT"],
            "tests.worker_target:NOT_A_CLIENT is not an anysend.Client",
            id="not-a-client",
        ),
    ],
)
def test_bad_configuration_exits_2(tmp_path: Path, args: list[str], says: str) -> None:
    """``python -m anysend worker`` with a wrong configuration: a clear message, exit 2."""
    args = [str(tmp_path / "anysend.db") if a == "STORE" else a for a in args]
    code, stderr = _run(tmp_path, "w", *args, "--once", env=_env(tmp_path / "app.db"))
    assert code == 2, stderr
    assert stderr == f"anysend worker: {says}\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param([], "give --store PATH or set ANYSEND_STORE", id="no-store"),
        pytest.param(
            ["--store", "STORE"],
            "give --providers URLS or set ANYSEND_PROVIDERS",
            id="no-providers",
        ),
        pytest.param(
            ["--store", "STORE", "--providers", "nosuch://x"], "nosuch", id="bad-providers"
        ),
        pytest.param(
            ["--app", "tests.worker_target:NOT_A_CLIENT"],
            "tests.worker_target:NOT_A_CLIENT is not an anysend.Client",
            id="not-a-client",
        ),
        pytest.param(
            ["--app", "tests.worker_target:make_async_client"],
            "tests.worker_target:make_async_client is an AsyncClient: "
            "the worker needs an anysend.Client",
            id="async-client",
        ),
        pytest.param(
            ["--app", "tests.worker_target:make_storeless_client"],
            "tests.worker_target:make_storeless_client has no store: the worker needs one",
            id="storeless-client",
        ),
        pytest.param(
            ["--app", "tests.no_such_module:client"],
            "--app tests.no_such_module:client: cannot import 'tests.no_such_module': "
            "No module named 'tests.no_such_module'",
            id="no-module",
        ),
        pytest.param(
            ["--app", "tests.worker_target:nothing"],
            "--app tests.worker_target:nothing: 'tests.worker_target' has no attribute 'nothing'",
            id="no-attribute",
        ),
        pytest.param(
            ["--app", "tests.worker_target"],
            "--app tests.worker_target: 'tests.worker_target' has no attribute 'client'",
            id="no-client-attribute",
        ),
        pytest.param(
            ["--app", APP, "--store", "STORE", "--templates", "t"],
            "--app gives the client: leave out --store, --templates (configure them in the app)",
            id="app-and-store",
        ),
        pytest.param(
            ["--store", "DIRECTORY", "--providers", "console://"],
            "cannot open the store",
            id="store-is-a-directory",
        ),
    ],
)
def test_bad_configuration_exits_2_in_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    says: str,
) -> None:
    """Every configuration error: one line on stderr, exit 2, nothing run, no traceback."""
    monkeypatch.delenv("ANYSEND_STORE", raising=False)
    monkeypatch.delenv("ANYSEND_PROVIDERS", raising=False)
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "app.db"))
    (tmp_path / "directory").mkdir()
    places = {"STORE": str(tmp_path / "anysend.db"), "DIRECTORY": str(tmp_path / "directory")}
    before = signal.getsignal(signal.SIGTERM)
    assert main(["worker", *[places.get(a, a) for a in args], "--once"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("anysend worker: ")
    assert says in err
    assert err.count("\n") == 1
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_store_from_a_newer_anysend_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store whose schema is newer than this anysend knows is refused, untouched."""
    store = tmp_path / "anysend.db"
    made = anysend.SQLiteStore(store)
    assert made.schema_version == 2
    made.close()
    db = sqlite3.connect(store)
    with db:
        db.execute("UPDATE anysend_meta SET value = '999' WHERE key = 'schema'")
    db.close()
    monkeypatch.setenv(STORE_ENV, str(store))
    assert main(["worker", "--app", APP, "--once"]) == 2
    err = capsys.readouterr().err
    assert "cannot open the store" in err
    assert "upgrade anysend" in err
    assert _rows(store, "SELECT value FROM anysend_meta WHERE key = 'schema'")[0][0] == "999"


@pytest.mark.parametrize(
    "args",
    [
        ["--poll", "0"],
        ["--poll", "-1"],
        ["--lease", "0"],
        ["--lease", "nan"],
        ["--lease", "inf"],
        ["--retention-days", "0"],
        ["--poll", "soon"],
    ],
    ids=lambda args: " ".join(args),
)
def test_bad_numbers_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A zero lease would let every claim be taken again at once; zero poll spins."""
    with pytest.raises(SystemExit) as stopped:
        main(["worker", "--store", ":memory:", "--providers", "console://", *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {args[0]}: " in err


def test_the_worker_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main(["worker", ...])`` runs every due step once and puts the signal handlers back."""
    store = tmp_path / "anysend.db"
    monkeypatch.setenv(STORE_ENV, str(store))
    monkeypatch.setenv(IDEMPOTENT_ENV, "0")
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with Receiver() as receiver:
        runs = _seed(store, receiver, 3)
        args = ["worker", "--app", APP, "--id", "w1", "--once", "--retention-days", "30"]
        assert main(args) == 0
        keys = receiver.keys
    assert capsys.readouterr().err == "anysend worker: w1 running\nanysend worker: 3 step(s) run\n"
    assert {sig: signal.getsignal(sig) for sig in before} == before
    _assert_all_done(store, runs)
    assert Counter(keys) == Counter(s["message_id"] for s in _steps(store).values())


def test_ctrl_c_stops_an_idle_worker(tmp_path: Path) -> None:
    """Nothing due, no --once: the worker waits; SIGINT (Ctrl-C) stops it with exit 0."""
    store = tmp_path / "anysend.db"
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "anysend", "worker", "--app", APP, "--id", "idle", "--poll", "0.05"],
        cwd=ROOT,
        env=_env(store),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], LIMIT)
        assert ready, "the worker never said it was running"
        assert process.stderr.readline() == b"anysend worker: idle running\n"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=LIMIT)
        assert process.returncode == 0, err
        assert err == b"anysend worker: 0 step(s) run\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=LIMIT)


# -- the crash test -------------------------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain-receiver", "deduping-receiver"])
def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, idempotent: bool
) -> None:
    """SIGKILL while the receiver holds the K-th request; a restart with the same id finishes.

    Every step ends final exactly once and every message is recorded once. The receiver got
    every message once, except the one in the air at the kill: an adapter that takes
    idempotency keys sends it again with the same key (the receiver deduplicates on it);
    otherwise the step and its message end ``unknown`` and it is not sent again.
    """
    store = tmp_path / "anysend.db"
    env = _env(store, idempotent=idempotent)
    with Receiver(hang_on=K) as receiver:
        runs = _seed(store, receiver, N)
        first = _start(tmp_path, "first", "--app", APP, "--id", "w1", "--poll", "0.05", env=env)
        try:
            assert receiver.hanging.wait(LIMIT), first.stderr
            first.process.kill()
            assert first.wait() == -signal.SIGKILL
        finally:
            first.stop()
        in_air = receiver.requests[K - 1]
        assert len(receiver.requests) == K

        # What the dead worker left: K - 1 steps done, the K-th begun and claimed (its
        # message recorded as pending), the others untouched: a worker claims one at a time.
        steps = _steps(store)
        assert Counter(s["state"] for s in steps.values()) == {
            "sent": K - 1,
            "claimed": 1,
            "pending": N - K,
        }
        (held,) = [s for s in steps.values() if s["state"] == "claimed"]
        # The step names its message when it closes; its message id is derived from its id.
        assert (held["message_id"], held["worker"]) == (None, "w1")
        assert step_message_id(held["id"]) == in_air.key
        (pending,) = _rows(store, "SELECT * FROM messages WHERE id = ?", in_air.key)
        assert (pending["status"], pending["step_id"]) == ("pending", held["id"])

        receiver.release()
        code, stderr = _run(
            tmp_path, "second", "--app", APP, "--id", "w1", "--once", "--poll", "0.05", env=env
        )
        assert code == 0, stderr
        keys = receiver.keys

    _assert_all_done(store, runs)
    steps = _steps(store)
    messages = {m["id"]: m for m in _messages(store)}
    expected = {s["message_id"] for s in steps.values()}
    assert set(keys) == expected  # every step's message reached the receiver
    for request in receiver.requests:
        assert request.body["id"] == request.key
        step = next(s for s in steps.values() if s["message_id"] == request.key)
        assert request.path == f"/hook/{runs.index(step['run_id'])}"
    counts = Counter(keys)
    held = next(s for s in steps.values() if s["message_id"] == in_air.key)
    if idempotent:
        # Sent again after the restart, with the same key: one distinct key per step.
        assert counts[in_air.key] == 2
        assert keys[K:].count(in_air.key) == 1
        assert all(counts[k] == 1 for k in expected - {in_air.key})
        assert {s["state"] for s in steps.values()} == {"sent"}
        assert {m["outcome"] for m in messages.values()} == {"sent"}
    else:
        # Never sent again: the step and its message are unknown, everything else once.
        assert counts == Counter(expected)
        assert held["state"] == "unknown"
        assert "not sent again" in held["detail"]
        assert (messages[in_air.key]["status"], messages[in_air.key]["outcome"]) == (
            "unknown",
            "unknown",
        )
        others = [s for s in steps.values() if s["message_id"] != in_air.key]
        assert {s["state"] for s in others} == {"sent"}
    # Steps done before the kill were claimed once; the one in the air twice.
    assert held["claims"] == 2
    done_first = set(keys[: K - 1])
    assert all(s["claims"] == 1 for s in steps.values() if s["message_id"] in done_first)


def test_sigterm_finishes_the_step_in_hand_and_exits_0(tmp_path: Path) -> None:
    """Stopped mid-send, the worker finishes that step, starts no other, and exits 0."""
    store = tmp_path / "anysend.db"
    env = _env(store)
    with Receiver(hang_on=K) as receiver:
        runs = _seed(store, receiver, N)
        worker = _start(tmp_path, "first", "--app", APP, "--id", "w1", "--poll", "0.05", env=env)
        try:
            assert receiver.hanging.wait(LIMIT), worker.stderr
            worker.process.send_signal(signal.SIGTERM)
            receiver.release()
            assert worker.wait() == 0, worker.stderr
        finally:
            worker.stop()
        assert _ran(worker.stderr) == K
        assert len(receiver.requests) == K
        steps = _steps(store)
        assert Counter(s["state"] for s in steps.values()) == {"sent": K, "pending": N - K}
        assert all(s["worker"] is None for s in steps.values())

        # Another worker (another id) takes the rest at once: nothing was left claimed.
        code, stderr = _run(tmp_path, "second", "--app", APP, "--id", "w2", "--once", env=env)
        assert (code, _ran(stderr)) == (0, N - K), stderr
        keys = receiver.keys
    _assert_all_done(store, runs)
    assert Counter(keys) == Counter(s["message_id"] for s in _steps(store).values())
    assert {s["state"] for s in _steps(store).values()} == {"sent"}


def test_two_workers_on_one_store_run_each_step_once(tmp_path: Path) -> None:
    """Two workers (two ids) share one store: every step is claimed and sent exactly once.

    The receiver holds the first request until the other worker has sent one too, so that
    both are certainly working the same steps at the same time.
    """
    store = tmp_path / "anysend.db"
    env = _env(store)
    with Receiver(hang_on=1) as receiver:
        runs = _seed(store, receiver, N)
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
    _assert_all_done(store, runs)
    steps = _steps(store)
    assert {s["state"] for s in steps.values()} == {"sent"}
    assert all(s["claims"] == 1 for s in steps.values())
    assert Counter(keys) == Counter(s["message_id"] for s in steps.values())


# -- the crash test, at every store transaction ---------------------------------------------------


class Crash(BaseException):
    """The process dies here (nothing in anysend catches a BaseException)."""


class CrashingStore(anysend.SQLiteStore):
    """A store that "dies" right after its ``after``-th write transaction commits.

    Dead, it stays dead: whatever the process would still try (tidying up on the way out)
    reaches the store no more, as after a SIGKILL.
    """

    def __init__(self, path: Path, *, after: int | None) -> None:
        super().__init__(path)
        self.after = after
        self.transactions = 0
        self.dead = False

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        if self.dead:
            raise Crash
        with super()._tx(write=write) as db:
            yield db
        if not write:
            return  # a crash after a read loses nothing a crash before it does not
        self.transactions += 1
        if self.transactions == self.after:
            self.dead = True
            raise Crash

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        if self.dead:
            raise Crash
        return super()._one(sql, params)

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self.dead:
            raise Crash
        return super()._all(sql, params)


class Outbox(MemoryProvider):
    """A provider that logs every key it is given and may "die" after accepting a message."""

    def __init__(
        self,
        log: list[str | None],
        *,
        idempotency: bool,
        crash_on: int | None,
        store: CrashingStore | None = None,
    ) -> None:
        super().__init__(name="mail", channels=frozenset({Channel.EMAIL}), idempotency=idempotency)
        self.log = log
        self.crash_on = crash_on
        self.store = store

    def send(self, message: OutboundMessage) -> Receipt:
        if self.store is not None and self.store.dead:
            raise Crash  # the process is gone: it sends nothing more
        self.log.append(message.idempotency_key)
        receipt = super().send(message)
        if len(self.log) == self.crash_on:
            if self.store is not None:
                self.store.dead = True
            raise Crash  # the provider has it; the store will never hear of it
        return receipt


#: Three steps, each armed by the one before: a lost arming leaves a step waiting forever.
STEPS = Flow(
    name="three-steps",
    steps=[
        Step(via="email", message=Message(subject="One", text="first")),
        Step(via="email", message=Message(subject="Two", text="second"), when=Always()),
        Step(
            via="email",
            message=Message(subject="Three", text="third"),
            when=NotOpened(step=0, within=timedelta(0)),
        ),
    ],
)


def _crash_and_restart(
    path: Path, *, idempotency: bool, after: int | None, crash_on: int | None
) -> tuple[bool, list[str | None]]:
    """Run the flow in a worker that dies at the given point, then in a restarted one."""
    with anysend.Client(store=str(path)) as seeder:
        seeder.start(STEPS, to=Recipient(id="u-1", email="ann@example.com"), key="cart")
    log: list[str | None] = []
    crashed = False
    dying = CrashingStore(path, after=after)
    first = anysend.Client(
        [Outbox(log, idempotency=idempotency, crash_on=crash_on, store=dying)], store=dying
    )
    engine = first._engine()
    engine.worker = "w1"
    try:
        engine.work(once=True, poll=0.01)
    except Crash:
        crashed = True
    finally:
        dying.dead = False  # the close is the test's, not the dead process's
        first.close()
    second = anysend.Client([Outbox(log, idempotency=idempotency, crash_on=None)], store=str(path))
    with second:
        engine = second._engine()
        engine.worker = "w1"
        engine.work(once=True, poll=0.01)
    return crashed, log


def _check_after_crash(path: Path, log: list[str | None], *, idempotency: bool) -> None:
    steps = _steps(path)
    states = {s["idx"]: s["state"] for s in steps.values()}
    for index in range(len(STEPS.steps)):
        assert states[index] in ("sent", "unknown"), f"step {index} is {states[index]}: lost"
    messages = {m["id"]: m for m in _messages(path)}
    assert sorted(m["step_id"] for m in messages.values()) == sorted(steps)
    for step in steps.values():
        message = messages[step["message_id"]]
        assert message["outcome"] == step["state"]  # sent / sent, unknown / unknown
        assert message["status"] == ("accepted" if step["state"] == "sent" else "unknown")
    ids = {s["id"]: s["message_id"] for s in steps.values()}
    assert all(message_id == step_message_id(step_id) for step_id, message_id in ids.items())
    assert set(log) <= set(ids.values())
    counts = Counter(log)
    for step in steps.values():
        sent = counts[step["message_id"]]
        if idempotency:
            assert step["state"] == "sent"
            assert sent >= 1
        elif step["state"] == "sent":
            assert sent == 1
        else:
            assert sent <= 1  # unknown: maybe sent once, never twice
    if idempotency:
        assert set(log) == set(ids.values())
    assert [r["state"] for r in _rows(path, "SELECT state FROM runs")] == ["done"]


@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "idempotent"])
def test_a_crash_after_any_store_transaction_loses_nothing(
    tmp_path: Path, idempotency: bool
) -> None:
    """Die after the 1st, 2nd, ... transaction of a flow; a restart finishes it."""
    after = 0
    while True:
        after += 1
        assert after < 200, "the run never finished"
        path = tmp_path / f"after-{after}.db"
        crashed, log = _crash_and_restart(path, idempotency=idempotency, after=after, crash_on=None)
        try:
            _check_after_crash(path, log, idempotency=idempotency)
        except AssertionError as exc:
            raise AssertionError(f"crash after transaction {after}: {exc}") from exc
        if not crashed:
            break


@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "idempotent"])
@pytest.mark.parametrize("crash_on", [1, 2, 3])
def test_a_crash_between_the_provider_and_the_store(
    tmp_path: Path, idempotency: bool, crash_on: int
) -> None:
    """Die once the provider took a step's message: resent with its key, or left unknown."""
    path = tmp_path / "anysend.db"
    crashed, log = _crash_and_restart(path, idempotency=idempotency, after=None, crash_on=crash_on)
    assert crashed
    _check_after_crash(path, log, idempotency=idempotency)
    key = log[crash_on - 1]
    (in_air,) = [s for s in _steps(path).values() if s["message_id"] == key]
    others = [s for s in _steps(path).values() if s["message_id"] != key]
    if idempotency:
        assert Counter(log)[key] == 2  # sent again, with the same key
        assert in_air["state"] == "sent"
    else:
        assert Counter(log)[key] == 1  # never sent again
        assert in_air["state"] == "unknown"
    assert {s["state"] for s in others} == {"sent"}


# -- the crash test, at every point of a batch ----------------------------------------------------

#: Runs of STEPS started together: run_due runs their steps in batches (claimed together,
#: begun together, sent, recorded together).
RUNS = 4


def _batch_crash_and_restart(
    path: Path, *, idempotency: bool, after: int | None, crash_on: int | None
) -> tuple[bool, list[str | None]]:
    """run_due over several runs in a process that dies at the given point; then a restart."""
    with anysend.Client(store=str(path)) as seeder:
        for person in range(RUNS):
            seeder.start(STEPS, to=Recipient(id=f"u-{person}", email=f"u{person}@example.com"))
    log: list[str | None] = []
    crashed = False
    dying = CrashingStore(path, after=after)
    first = anysend.Client(
        [Outbox(log, idempotency=idempotency, crash_on=crash_on, store=dying)], store=dying
    )
    engine = first._engine()
    engine.worker = "w1"
    try:
        while engine.run_due(limit=100):
            pass
    except Crash:
        crashed = True
    finally:
        dying.dead = False
        first.close()
    second = anysend.Client([Outbox(log, idempotency=idempotency, crash_on=None)], store=str(path))
    with second:
        engine = second._engine()
        engine.worker = "w1"  # the same id: it takes back what the dead one held at once
        engine.work(once=True, poll=0.01)
    return crashed, log


def _check_runs_after_crash(path: Path, log: list[str | None], *, idempotency: bool) -> None:
    steps = _steps(path)
    assert len(steps) == RUNS * len(STEPS.steps)
    for step in steps.values():
        assert step["state"] in ("sent", "unknown"), f"{step['id']} is {step['state']}: lost"
    messages = {m["id"]: m for m in _messages(path)}
    assert sorted(m["step_id"] for m in messages.values()) == sorted(steps)
    for step in steps.values():
        assert step["message_id"] == step_message_id(step["id"])
        message = messages[step["message_id"]]
        assert message["outcome"] == step["state"]
        assert message["status"] == ("accepted" if step["state"] == "sent" else "unknown")
    assert set(log) <= set(messages)
    counts = Counter(log)
    for step in steps.values():
        sent = counts[step["message_id"]]
        if idempotency:
            assert step["state"] == "sent"
            assert sent >= 1  # again after a crash, with the same key: the provider keeps one
        elif step["state"] == "sent":
            assert sent == 1
        else:
            assert sent <= 1  # in doubt after the crash: maybe sent once, never twice
    assert [r["state"] for r in _rows(path, "SELECT state FROM runs")] == ["done"] * RUNS


@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "idempotent"])
def test_a_crash_after_any_transaction_of_a_batch_loses_nothing(
    tmp_path: Path, idempotency: bool
) -> None:
    """Die after the 1st, 2nd, ... store transaction of batched run_due; a restart finishes."""
    after = 0
    while True:
        after += 1
        assert after < 100, "the runs never finished"
        path = tmp_path / f"after-{after}.db"
        crashed, log = _batch_crash_and_restart(
            path, idempotency=idempotency, after=after, crash_on=None
        )
        try:
            _check_runs_after_crash(path, log, idempotency=idempotency)
        except AssertionError as exc:
            raise AssertionError(f"crash after transaction {after}: {exc}") from exc
        if not crashed:
            break
    assert after > 6  # the crashes fell on every kind of transaction of several batches


@pytest.mark.parametrize("idempotency", [False, True], ids=["plain", "idempotent"])
@pytest.mark.parametrize(
    ("crash_on", "batch"),
    # The first batch: the first step of every run. Closing them makes the second and the
    # third steps (both looking at the first) due at once: the second batch has both.
    [(1, {0}), (3, {0}), (4, {0}), (6, {1, 2})],
)
def test_a_crash_in_the_middle_of_a_batchs_sends(
    tmp_path: Path, idempotency: bool, crash_on: int, batch: set[int]
) -> None:
    """Die once the provider took a message of a batch.

    Where every provider takes idempotency keys, the batch went together (begun, sent,
    recorded): all of its unrecorded messages are in doubt, and are sent again with their
    keys (the provider keeps one of each). Otherwise the steps went one by one: only the
    message in the air is in doubt, and it ends ``unknown``, never sent twice.
    """
    path = tmp_path / "anysend.db"
    crashed, log = _batch_crash_and_restart(
        path, idempotency=idempotency, after=None, crash_on=crash_on
    )
    assert crashed
    _check_runs_after_crash(path, log, idempotency=idempotency)
    steps = _steps(path)
    in_air = log[crash_on - 1]
    (held,) = [s for s in steps.values() if s["message_id"] == in_air]
    assert (held["idx"] in batch, held["claims"]) == (True, 2)
    counts = Counter(log)
    states = Counter(s["state"] for s in steps.values())
    if idempotency:
        assert states == {"sent": RUNS * len(STEPS.steps)}
        # The batch's messages the provider took before the crash went again, once more.
        crashed_batch = {s["message_id"] for s in steps.values() if s["idx"] in batch}
        before = set(log[:crash_on]) & crashed_batch
        assert in_air in before
        assert {key: counts[key] for key in before} == dict.fromkeys(before, 2)
        assert all(counts[key] == 1 for key in crashed_batch - before)
    else:
        assert states == {"sent": RUNS * len(STEPS.steps) - 1, "unknown": 1}
        assert held["state"] == "unknown"
        assert set(counts.values()) == {1}  # no message twice


def test_without_app_the_worker_reads_every_provider_setting_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ANYSEND_<NAME>_<FIELD> settings (secrets included) reach the worker's adapters."""
    from anysend._worker import _client, add_arguments

    monkeypatch.setenv("ANYSEND_STORE", str(tmp_path / "anysend.db"))
    monkeypatch.setenv("ANYSEND_PROVIDERS", "webhook://")
    monkeypatch.setenv("ANYSEND_WEBHOOK_URL", "https://crm.example.com/hook")
    monkeypatch.setenv("ANYSEND_WEBHOOK_SECRET", "s3cret")
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    client = _client(parser.parse_args([]))
    with client:
        webhook = client.providers["webhook"]
        assert webhook.settings.url == "https://crm.example.com/hook"
        assert webhook.secrets() == ["s3cret"]
