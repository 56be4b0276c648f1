"""Crash safety: processes killed with SIGKILL at random moments, again and again.

* Workers (``python -m anysend worker``) running a few hundred due flow steps are killed
  several times mid-run and restarted; at the end every step fired exactly once: the receiver,
  which deduplicates on ``Idempotency-Key`` as a provider does, took every step's message
  once, and the store holds one final message per step (``tests/worker_target.py``).
* A process ingesting signed Twilio callbacks (``tests/crash_ingest.py``) is killed mid-run
  and restarted, and every callback is delivered again each time (providers retry what was
  not acknowledged): every callback is stored once and every message ends in the right status.
* SQLite: a process killed while it holds a big write transaction open leaves none of it, and
  writers killed at random moments leave whole transactions only
  (``tests/crash_sqlite.py``).

The kill moments come from a seeded ``random.Random`` (``ANYSEND_CRASH_SEED``); the tests wait
for the processes' progress (requests received, lines printed) with deadlines, never for time,
except for a random delay of at most 20 ms before a kill, which makes its moment random.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx

import anysend
from anysend import Always, DeliveryStatus, Flow, Message, Reason, Recipient, Step
from anysend.providers.twilio import STATUS_MAP
from tests.crash_ingest import ACCOUNT, SENDER, TOKEN, twilio
from tests.crash_sqlite import committed_result
from tests.worker_target import IDEMPOTENT_ENV, STORE_ENV, Receiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("ANYSEND_CRASH_SEED", "11"))
#: Seconds any process may take to get where the test waits for it.
LIMIT = 60.0
#: The longest random wait before a kill (lands the kill at a random point of the work).
JITTER = 0.02


# -- processes ------------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANYSEND_STORE", "ANYSEND_PROVIDERS")}
    env.update(extra)
    return env


@contextmanager
def _process(
    *args: str, env: dict[str, str] | None = None, stdout: Any = subprocess.PIPE, err: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process of this interpreter (killed on the way out if still running)."""
    with err.open("ab") as stderr:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, *args],
            cwd=ROOT,
            env=env or _env(),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(LIMIT)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def _lines(process: subprocess.Popen[bytes], err: Path) -> Iterator[str]:
    """The process's output lines as they come; fails when one takes longer than LIMIT."""
    assert process.stdout is not None
    while True:
        ready, _, _ = select.select([process.stdout], [], [], LIMIT)
        assert ready, f"no output for {LIMIT} s:\n{err.read_text(errors='replace')}"
        line = process.stdout.readline()
        if not line:
            return
        yield line.decode().strip()


def _kill(process: subprocess.Popen[bytes], rng: random.Random) -> None:
    """SIGKILL at a random moment of the next few milliseconds; it must have been running."""
    time.sleep(rng.uniform(0, JITTER))
    process.kill()
    assert process.wait(LIMIT) == -signal.SIGKILL


def _rows(store: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(store)
    try:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def _integrity(store: Path) -> str:
    return str(_rows(store, "PRAGMA integrity_check")[0][0])


# -- (a) workers killed again and again -----------------------------------------------------------

RUNS = 100
#: Three steps, each armed by the one before: 300 steps in all.
THREE = Flow(
    name="crash-three",
    steps=[
        Step(via="webhook", message=Message(text="one")),
        Step(via="webhook", message=Message(text="two"), when=Always()),
        Step(via="webhook", message=Message(text="three"), when=Always()),
    ],
)
KILLS = 6


#: Each runner's command: the worker claims one step at a time; an application's run_due()
#: claims and runs them in batches. Both run as worker "w1", so a restart takes back at once
#: what the killed one held.
WORKER = ("-m", "anysend", "worker", "--app", "tests.worker_target:make_client", "--id", "w1")
RUNNERS = {
    "worker": ((*WORKER, "--poll", "0.05"), (*WORKER, "--once")),
    "run_due": (("-m", "tests.crash_run_due"), ("-m", "tests.crash_run_due")),
}


@pytest.mark.parametrize(
    ("runner", "idempotent"),
    [
        pytest.param("worker", True, id="worker-deduping-receiver"),
        pytest.param("worker", False, id="worker-plain-receiver"),
        pytest.param("run_due", True, id="run_due-deduping-receiver"),
        pytest.param("run_due", False, id="run_due-plain-receiver"),
    ],
)
def test_workers_killed_at_random_moments_fire_every_step_once(
    tmp_path: Path, runner: str, idempotent: bool
) -> None:
    """300 steps; the process running them is killed 6 times at random moments; each fires once.

    With a receiver that deduplicates (the adapter says so), a message in the air at a kill is
    sent again with its key and accepted once: every step ends sent. With the stock adapter it
    is never sent again: its step ends unknown. Only a message in the air can be in doubt, so
    at most one step per kill is unknown, and the receiver never gets a message twice.
    """
    rng = random.Random(SEED)
    store = tmp_path / "anysend.db"
    env = _env(**{STORE_ENV: str(store), IDEMPOTENT_ENV: "1" if idempotent else "0"})
    running, finishing = RUNNERS[runner]
    err = tmp_path / "workers.err"
    total = RUNS * len(THREE.steps)
    with Receiver() as receiver:
        with anysend.Client(store=str(store)) as client:
            runs = [
                client.start(
                    THREE,
                    to=Recipient(id=f"user-{i}", webhook_url=f"{receiver.url}/hook/{i}"),
                    key=f"run-{i}",
                )
                for i in range(RUNS)
            ]
        # The kills come after these many requests (and a random few milliseconds more).
        targets = sorted(rng.sample(range(10, total - 40), KILLS))
        kills = 0
        for target in targets:
            with _process(*running, env=env, err=err) as process:
                deadline = time.monotonic() + LIMIT
                # Until the target (or until it ran out of due steps: run_due() returns).
                while not receiver.wait_for(target, 0.05) and process.poll() is None:
                    assert time.monotonic() < deadline, err.read_text()
                if process.poll() is None:
                    _kill(process, rng)
                    kills += 1
        killed_at = len(receiver.requests)
        with _process(*finishing, env=env, err=err, stdout=subprocess.DEVNULL) as process:
            assert process.wait(LIMIT) == 0, err.read_text()
        keys = receiver.keys
    assert kills >= 1
    assert killed_at < total  # the last one killed had work left: the kills were mid-run

    assert _integrity(store) == "ok"
    steps = {r["id"]: r for r in _rows(store, "SELECT * FROM steps")}
    messages = {r["id"]: r for r in _rows(store, "SELECT * FROM messages")}
    assert len(steps) == total
    assert sorted({s["run_id"] for s in steps.values()}) == sorted(runs)
    assert {r["state"] for r in _rows(store, "SELECT state FROM runs")} == {"done"}
    assert all(s["worker"] is None for s in steps.values())  # no claim left behind
    # One message per step, final, saying what the step says.
    assert sorted(m["step_id"] for m in messages.values()) == sorted(steps)
    for step in steps.values():
        message = messages[step["message_id"]]
        assert message["step_id"] == step["id"]
        assert message["outcome"] == step["state"], (step["state"], message["status"])
    # The receiver: nothing but the steps' messages, each step's reached it once.
    counts = Counter(keys)
    assert set(counts) <= {s["message_id"] for s in steps.values()}
    states = Counter(s["state"] for s in steps.values())
    if idempotent:
        assert states == {"sent": total}
        # Deduplicated on the key, as the receiver does: every step accepted exactly once.
        assert set(counts) == {s["message_id"] for s in steps.values()}
    else:
        assert set(states) <= {"sent", "unknown"}
        assert states["unknown"] <= kills, states  # only a message in the air is in doubt
        for step in steps.values():
            sent = counts[step["message_id"]]
            assert sent == 1 if step["state"] == "sent" else sent <= 1, (step["state"], sent)
    resent = sum(n - 1 for n in counts.values())
    receiving = "deduping" if idempotent else "plain"
    print(
        f"\ncrash {runner} ({receiving}): {kills} kills after {targets[:kills]} requests, "
        f"states {dict(states)}, requests {len(keys)}, sent again {resent}"
    )


# -- (b) a callback ingester killed again and again -----------------------------------------------

MESSAGES = 150
INBOUND = 30
CALLBACK_URL = "https://app.example.com/hooks/twilio"
INGEST_KILLS = 4


def _sid(i: int) -> str:
    return f"SM{i:032x}"


def _phone(i: int) -> str:
    return f"+48600{700000 + i}"


def _signed(form: dict[str, str]) -> dict[str, Any]:
    """A Twilio callback as Twilio signs it (HMAC-SHA1 of the URL and the sorted fields)."""
    data = CALLBACK_URL + "".join(key + form[key] for key in sorted(form))
    digest = hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return {
        "url": CALLBACK_URL,
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": base64.b64encode(digest).decode(),
        },
        "body": urlencode(form),
    }


def _callbacks(rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Status callbacks for every message (out of order) and inbound SMS; the final statuses."""
    callbacks = []
    final = {}
    for i in range(MESSAGES):
        undelivered = i % 5 == 0
        statuses = ["queued", "sent", "undelivered" if undelivered else "delivered"]
        final[_sid(i)] = "undelivered" if undelivered else "delivered"
        for status in statuses:
            form = {
                "AccountSid": ACCOUNT,
                "ApiVersion": "2010-04-01",
                "From": SENDER,
                "MessageSid": _sid(i),
                "MessageStatus": status,
                "SmsSid": _sid(i),
                "SmsStatus": status,
                "To": _phone(i),
            }
            if status == "undelivered":
                form["ErrorCode"] = "30003"
            callbacks.append(_signed(form))
    for i in range(INBOUND):
        form = {
            "AccountSid": ACCOUNT,
            "ApiVersion": "2010-04-01",
            "Body": f"reply {i}",
            "From": _phone(i),
            "MessageSid": f"SMin{i:030x}",
            "NumMedia": "0",
            "To": SENDER,
        }
        callbacks.append(_signed(form))
    rng.shuffle(callbacks)
    return callbacks, final


def _sent_through_twilio(store: Path) -> dict[str, str]:
    """Send MESSAGES SMS through the Twilio adapter (mocked API); SID -> message id."""
    sids = iter(range(MESSAGES))

    def created(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"].startswith("Basic ")
        return httpx.Response(201, json={"sid": _sid(next(sids)), "status": "queued"})

    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(url).mock(side_effect=created)
        with anysend.Client([twilio()], store=str(store)) as client:
            results = [
                client.send(Message(text=f"hi {i}"), to={"phone": _phone(i)}, via="sms")
                for i in range(MESSAGES)
            ]
    assert route.call_count == MESSAGES
    assert [dict(httpx.QueryParams(c.request.content.decode()))["To"] for c in route.calls] == [
        _phone(i) for i in range(MESSAGES)
    ]
    assert all(r.status is DeliveryStatus.ACCEPTED for r in results)
    return {r.provider_message_id or "": r.message_id for r in results}


def test_a_callback_ingester_killed_mid_run_stores_every_callback_once(tmp_path: Path) -> None:
    """Killed 4 times at random moments, restarted, every callback delivered again each time.

    Every status callback is stored once, every inbound SMS once, and every message ends in
    its last status whatever order the callbacks came in and however often.
    """
    rng = random.Random(SEED)
    store = tmp_path / "anysend.db"
    sids = _sent_through_twilio(store)
    callbacks, final = _callbacks(rng)
    feed = tmp_path / "callbacks.jsonl"
    feed.write_text("".join(json.dumps(c) + "\n" for c in callbacks))
    err = tmp_path / "ingest.err"
    ingest = ("-m", "tests.crash_ingest", str(store), str(feed))
    stopped_after = []
    for _ in range(INGEST_KILLS):
        target = rng.randrange(len(callbacks) - 50)  # work left after the kill's delay
        with _process(*ingest, err=err) as process:
            for line in _lines(process, err):
                assert line != "done", "the ingester finished before its kill"
                if int(line) >= target:
                    _kill(process, rng)
                    stopped_after.append(int(line))
                    break
    with _process(*ingest, err=err) as process:
        lines = list(_lines(process, err))
        assert process.wait(LIMIT) == 0, err.read_text()
    assert lines[-1] == "done"
    assert len(lines) == len(callbacks) + 1

    assert _integrity(store) == "ok"
    statuses = MESSAGES * 3
    events = _rows(store, "SELECT * FROM events")
    assert len(events) == statuses  # each status callback once, however often it came
    assert Counter((e["provider_message_id"], e["raw_status"]) for e in events) == Counter(
        {(sid, s): 1 for sid, last in final.items() for s in ("queued", "sent", last)}
    )
    assert {e["message_id"] for e in events} == set(sids.values())
    inbound = _rows(store, "SELECT * FROM inbound")
    assert sorted(r["text"] for r in inbound) == sorted(f"reply {i}" for i in range(INBOUND))
    messages = {r["id"]: r for r in _rows(store, "SELECT * FROM messages")}
    assert len(messages) == MESSAGES
    for sid, message_id in sids.items():
        message = messages[message_id]
        assert message["status"] == STATUS_MAP[final[sid]].value, (sid, message["status"])
        if final[sid] == "delivered":
            assert message["delivered_at"] is not None
        else:
            unreachable = Reason.RECIPIENT_UNREACHABLE.value
            assert (message["outcome"], message["reason"]) == ("failed", unreachable)
    print(f"\ncrash ingest: {len(callbacks)} callbacks, killed after {stopped_after}")


# -- (c) SQLite killed mid-transaction ------------------------------------------------------------

COMMITTED = 200
UNCOMMITTED = 20_000


def test_a_write_transaction_killed_before_commit_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL while 20,000 uncommitted rows (spilled to the WAL) and an update are pending.

    The store opens as if the transaction never began: integrity ok, the committed messages
    as they were committed, none of the uncommitted rows.
    """
    store = tmp_path / "anysend.db"
    err = tmp_path / "hold.err"
    hold = ("-m", "tests.crash_sqlite", "hold", str(store), str(COMMITTED), str(UNCOMMITTED))
    with _process(*hold, err=err) as process:
        assert next(_lines(process, err)) == "holding"
        wal = Path(f"{store}-wal").stat().st_size
        process.kill()
        assert process.wait(LIMIT) == -signal.SIGKILL
    # SQLite wrote part of the open transaction to the WAL already: recovery must skip it.
    assert wal > 1_000_000, wal

    reopened = anysend.SQLiteStore(store)
    try:
        for i in (0, COMMITTED // 2, COMMITTED - 1):
            message = reopened.get_message(f"m-{i}")
            assert message is not None
            assert message.status is DeliveryStatus.ACCEPTED  # the pending update is gone
            expected = committed_result(i)
            assert message.provider_message_ids == (expected.provider_message_id,)
            assert message.attempts == expected.attempts
        assert reopened.get_message("u-0") is None
    finally:
        reopened.close()
    assert _integrity(store) == "ok"
    rows = _rows(store, "SELECT id, status FROM messages")
    assert sorted(r["id"] for r in rows) == sorted(f"m-{i}" for i in range(COMMITTED))
    assert {r["status"] for r in rows} == {"accepted"}


BATCH = 500
WRITER_KILLS = 5


def test_writers_killed_at_random_moments_leave_whole_transactions(tmp_path: Path) -> None:
    """A writer committing 500-row transactions is killed 5 times, at random moments.

    Every transaction it reported committed is there, whole; any other is whole or absent.
    """
    rng = random.Random(SEED)
    store = tmp_path / "anysend.db"
    anysend.SQLiteStore(store).close()
    err = tmp_path / "batches.err"
    reported: list[int] = []
    start = 0
    for _ in range(WRITER_KILLS):
        stop_after = rng.randrange(1, 8)
        batches = ("-m", "tests.crash_sqlite", "batches", str(store), str(start), str(BATCH))
        with _process(*batches, err=err) as process:
            for number, line in enumerate(_lines(process, err), start=1):
                reported.append(int(line))
                if number == stop_after:
                    _kill(process, rng)
                    break
            # What it printed before it died (committed on the way), still in the pipe.
            assert process.stdout is not None
            reported.extend(int(line) for line in process.stdout.read().split())
        start = max(reported) + 100  # a fresh range: a batch that may be half-written stays apart
    assert _integrity(store) == "ok"
    sizes = {
        r["step_id"]: r["n"]
        for r in _rows(store, "SELECT step_id, count(*) AS n FROM messages GROUP BY step_id")
    }
    assert set(sizes.values()) == {BATCH}, sizes  # no transaction in part
    assert {f"batch-{b}" for b in reported} <= set(sizes)  # every reported commit is there
    # At most one unreported (committed, then killed before it printed) per kill.
    assert len(sizes) - len(reported) <= WRITER_KILLS
    print(f"\ncrash sqlite: {len(reported)} batches reported, {len(sizes)} stored")
