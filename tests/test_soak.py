"""Fault-injection soak: thousands of sends through a provider that fails in every way it can.

``tests/fault_server.py`` stands in for two providers (two sinks of one local server, in its own
process): a primary with a high, seeded mix of faults (500, 502 with an HTML page, 503, 429
with and without ``Retry-After``, connection resets before and after accepting, answers past
the client's timeout, truncated and non-JSON bodies) and a failover with fewer. Both honour
idempotency keys (a key is accepted once; a repeat gets the first answer back), and the
``Webhook`` adapter sends one with every request, so the adapters used here say so
(``capabilities.idempotency``), as ``tests/worker_target.py`` does.

The soak proves, for ``AsyncClient.send_many`` (10,000 messages) and the sync ``Client``
(1,000), with a SQLite store:

* every message ends in a terminal state, in its ``SendResult`` and in the store alike: sent
  by one provider, failed (nothing accepted it anywhere) or unknown (a provider may have it);
* none is lost: every message a provider accepted is reported sent by that provider, or
  unknown; none is accepted by two providers, and every key is accepted once;
* ``Retry-After`` is honoured: the retry of a 429 never comes sooner than it asked;
* the run ends within a wall-clock bound (the server's delays are bounded too).

The sending runs in a process of its own (``tests/soak_client.py``, so that coverage tracing
does not triple its cost), which writes every ``SendResult``; the test reads them, the
server's record and the store. The figures of each run are printed (``pytest -s``) and, when
``ANYSEND_SOAK_REPORT`` names a file, written there as JSON. ``ANYSEND_SOAK_SEED`` changes the
seed (the faults of a seed are the same on every run; timeouts under load may add some).

Smaller tests pin the cases the soak meets by chance, each with the three ways of sending
(``AsyncClient`` over aiohttp and over httpx, the sync ``Client``).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from anysend import (
    AsyncClient,
    AttemptOutcome,
    Client,
    DeliveryError,
    DeliveryStatus,
    ErrorCategory,
    Message,
    Recipient,
    SendResult,
)
from anysend.providers import Provider
from tests.fault_server import FaultServer
from tests.soak_client import POLICY, TIMEOUT, Backup, PlainBackup, PlainPrimary, Primary

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("ANYSEND_SOAK_SEED", "8"))
N_ASYNC = 10_000
N_SYNC = 1_000
#: The server's slow answers: past the client's timeout.
SLOW = 2 * TIMEOUT
#: Seconds the retry of a 429 may come before its Retry-After (one clock: the server's).
EPSILON = 0.001
#: Wall-clock bounds of the runs (generous: a loaded CI machine).
ASYNC_LIMIT = 120.0
SYNC_LIMIT = 60.0
#: The one-message cases: a timeout no loaded machine reaches by accident, and slower answers.
CASE_TIMEOUT = 1.0
CASE_SLOW = 1.3

#: About a third of the primary's answers are failures; two tries fail over ~1 message in 15.
PRIMARY_FAULTS = {
    "500": 0.05,
    "502": 0.05,
    "503": 0.06,
    "429": 0.04,
    "429_retry_after": 0.06,
    "reset_before": 0.02,
    "reset_after": 0.02,
    "slow": 0.01,
    "slow_ok": 0.03,
    "truncated": 0.02,
    "html_200": 0.02,
}
BACKUP_FAULTS = {"503": 0.08, "429_retry_after": 0.03, "500": 0.02, "reset_after": 0.01}

#: The terminal states a send through these providers may end in, and their store outcome.
OUTCOMES = {
    DeliveryStatus.ACCEPTED: "sent",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.UNKNOWN: "unknown",
}


# -- the soak -------------------------------------------------------------------------------------


def _server(seed: int) -> FaultServer:
    return FaultServer(
        {
            "seed": seed,
            "slow_delay": SLOW,
            "retry_after": [0.05, 0.2],
            "sinks": {
                "primary": {"faults": PRIMARY_FAULTS},
                "backup": {"faults": BACKUP_FAULTS},
            },
        }
    )


def _providers(server: FaultServer) -> list[Provider]:
    return [Primary(url=server.sink_url("primary")), Backup(url=server.sink_url("backup"))]


def _send_many(
    tmp_path: Path, server: FaultServer, mode: str, prefix: str, n: int, store: Path, limit: float
) -> tuple[list[tuple[int, SendResult | str]], dict[str, float]]:
    """Run ``tests/soak_client.py``; every item's result (or error) and the run's times."""
    out = tmp_path / f"{prefix}-{n}.jsonl"
    command = [
        *(sys.executable, "-m", "tests.soak_client", "--mode", mode, "--n", str(n)),
        *("--prefix", prefix, "--store", str(store), "--out", str(out)),
        *("--primary", server.sink_url("primary"), "--backup", server.sink_url("backup")),
        *("--concurrency", "16" if mode == "sync" else "64"),
    ]
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        command, cwd=ROOT, capture_output=True, text=True, timeout=limit * 2, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    outcomes: list[tuple[int, SendResult | str]] = [
        (
            line["index"],
            SendResult.model_validate(line["result"]) if "result" in line else line["error"],
        )
        for line in lines[:-1]
    ]
    return outcomes, lines[-1]


def _ambiguous(attempt_error: Any) -> bool:
    return attempt_error is not None and attempt_error.category is ErrorCategory.AMBIGUOUS_TIMEOUT


def _check_run(
    prefix: str,
    n: int,
    outcomes: list[tuple[int, SendResult | str]],
    stats: dict[str, Any],
    store: Path,
) -> dict[str, Any]:
    """Check every promise of a soak run; return its figures."""
    assert sorted(index for index, _ in outcomes) == list(range(n))  # each came back once
    results: dict[str, SendResult] = {}
    for index, outcome in outcomes:
        assert isinstance(outcome, SendResult), (index, outcome)  # no item raised
        results[f"{prefix}-{index}"] = outcome
    accepted = {sink: stats[sink]["accepted"] for sink in ("primary", "backup")}

    # Each key accepted by one provider at most, and once there (the sinks deduplicate: a
    # count above 1 would be a sink bug).
    held: dict[str, list[str]] = {}
    for sink, keys in accepted.items():
        for key, (_, number, count) in keys.items():
            assert key in results, f"{sink} accepted {key}, which nobody sent"
            assert number == key.rsplit("-", 1)[1]
            assert count == 1
            held.setdefault(key, []).append(sink)
    twice = {key: sinks for key, sinks in held.items() if len(sinks) > 1}
    assert twice == {}, f"accepted by two providers: {sorted(twice)[:10]}"

    states: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    retries = failovers = benched = 0
    for key, result in results.items():
        assert result.status in OUTCOMES, (key, result)
        states[result.status.value] += 1
        tried = [a for a in result.attempts if a.outcome is not AttemptOutcome.SKIPPED]
        benched += sum(a.outcome is AttemptOutcome.SKIPPED for a in result.attempts)
        retries += sum(a.number > 1 for a in tried)
        failovers += len({a.provider for a in tried}) > 1
        for attempt in tried:
            what = attempt.error.category.value if attempt.error else attempt.outcome.value
            attempts[f"{attempt.provider}:{what}"] += 1
        holders = held.get(key, [])
        if result.status is DeliveryStatus.ACCEPTED:
            # Sent: by the provider that says so, and only there.
            assert result.provider in ("primary", "backup")
            assert holders == [result.provider], (key, holders, result)
            provider_id = accepted[result.provider][key][0]
            # The id from the answer; the message id when the answer was not JSON.
            assert result.provider_message_id in (provider_id, result.message_id)
        elif result.status is DeliveryStatus.FAILED:
            # Failed: no provider has it, and every failure was the provider's.
            assert holders == [], (key, holders, result)
            assert result.error is not None
            assert all(a.error is not None and a.error.category.scope == "provider" for a in tried)
            assert not any(_ambiguous(a.error) for a in tried)
        else:
            # Unknown: a try went out and no answer came back; nothing was sent elsewhere
            # after it, so at most the provider of that try has it.
            first = next(i for i, a in enumerate(tried) if _ambiguous(a.error))
            provider = tried[first].provider
            assert {a.provider for a in tried[first:]} == {provider}, result
            assert holders in ([], [provider]), (key, holders, result)

    # The store says the same, message by message.
    db = sqlite3.connect(store)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {
            row[0]: row[1:]
            for row in db.execute("SELECT id, status, outcome, provider, reason FROM messages")
        }
    finally:
        db.close()
    assert len(rows) == n
    for key, result in results.items():
        status, outcome, provider, reason = rows[result.message_id]
        assert (status, outcome) == (result.status.value, OUTCOMES[result.status]), key
        if result.status is DeliveryStatus.ACCEPTED:
            assert provider == result.provider
        else:
            assert reason, (key, result)  # failed or unknown: with the reason

    # Retry-After honoured: the next request with the key (its retry) came no sooner.
    checked, margins = 0, []
    for sink in ("primary", "backup"):
        for log in stats[sink]["log"].values():
            for entry, following in itertools.pairwise(log):
                _, answered, kind, wait = entry
                if kind == "429_retry_after":
                    gap = following[0] - answered
                    assert gap >= wait - EPSILON, (sink, log)
                    checked += 1
                    margins.append(gap - wait)

    return {
        "messages": n,
        "final_states": dict(states),
        "faults_injected": {
            sink: dict(sorted(stats[sink]["faults"].items())) for sink in ("primary", "backup")
        },
        "requests": {sink: stats[sink]["requests"] for sink in ("primary", "backup")},
        "dedup_replays": {sink: stats[sink]["replays"] for sink in ("primary", "backup")},
        "accepted": {sink: len(accepted[sink]) for sink in ("primary", "backup")},
        "attempts": dict(sorted(attempts.items())),
        "retries": retries,
        "failovers": failovers,
        "benched_skips": benched,
        "retry_after_checked": checked,
        "retry_after_min_margin_s": round(min(margins), 4) if margins else None,
        "store_rows": len(rows),
    }


def _report(name: str, figures: dict[str, Any]) -> None:
    """Print the figures; add them to ``$ANYSEND_SOAK_REPORT`` when it is set."""
    print(f"\nsoak {name}: {json.dumps(figures, indent=2)}")
    path = os.environ.get("ANYSEND_SOAK_REPORT")
    if path:
        target = Path(path)
        report = json.loads(target.read_text()) if target.exists() else {}
        report[name] = figures
        target.write_text(json.dumps(report, indent=2) + "\n")


def test_async_soak_every_message_ends_once_and_is_never_sent_twice(tmp_path: Path) -> None:
    """10,000 sends through AsyncClient.send_many against a faulty provider and a failover.

    Then the first 500 again with the same keys, from a new process on the same store: each
    is answered from the store, and nothing reaches a provider.
    """
    store = tmp_path / "soak.db"
    with _server(SEED) as server:
        outcomes, times = _send_many(tmp_path, server, "async", "soak", N_ASYNC, store, ASYNC_LIMIT)
        stats = server.stats()
        again, _ = _send_many(tmp_path, server, "async", "soak", 500, store, ASYNC_LIMIT)
        after = server.stats()
    figures = _check_run("soak", N_ASYNC, outcomes, stats, store)
    assert [after[s]["requests"] for s in after] == [stats[s]["requests"] for s in stats]
    first = dict(outcomes)
    for index, replay in again:
        before = first[index]
        assert isinstance(replay, SendResult)
        assert isinstance(before, SendResult)
        assert replay.idempotent_replay
        assert (replay.message_id, replay.status) == (before.message_id, before.status)
    figures.update(
        seed=SEED,
        client="AsyncClient",
        duration_s=round(times["duration_s"], 2),
        client_cpu_s=round(times["cpu_s"], 2),
        replayed_from_store=len(again),
    )
    _report("async", figures)
    # Enough of every case to mean something (the seed fixes the mix; timeouts add some).
    assert figures["failovers"] > 100
    assert figures["retry_after_checked"] > 100
    assert figures["dedup_replays"]["primary"] > 0
    assert set(figures["final_states"]) == {"accepted", "failed", "unknown"}
    assert times["duration_s"] < ASYNC_LIMIT


def test_sync_soak_every_message_ends_once_and_is_never_sent_twice(tmp_path: Path) -> None:
    """1,000 sends through the sync Client.send_many (16 threads) against the same faults."""
    store = tmp_path / "soak.db"
    with _server(SEED + 1) as server:
        outcomes, times = _send_many(tmp_path, server, "sync", "sync", N_SYNC, store, SYNC_LIMIT)
        stats = server.stats()
    figures = _check_run("sync", N_SYNC, outcomes, stats, store)
    figures.update(
        seed=SEED + 1,
        client="Client",
        duration_s=round(times["duration_s"], 2),
        client_cpu_s=round(times["cpu_s"], 2),
    )
    _report("sync", figures)
    assert figures["failovers"] > 10
    assert figures["retry_after_checked"] > 10
    assert times["duration_s"] < SYNC_LIMIT


# -- the cases, one at a time ---------------------------------------------------------------------

MODES = ["aiohttp", "httpx", "sync"]


async def _send_one(
    mode: str, providers: list[Provider], store: Path, key: str | None = "one"
) -> SendResult:
    """One send, by AsyncClient over aiohttp or httpx, or by the sync Client."""
    message = Message(text="hello", idempotency_key=key)
    to = Recipient(id="user-1")
    kwargs: dict[str, Any] = {"retry": POLICY, "timeout": CASE_TIMEOUT, "store": str(store)}
    if mode == "sync":
        with Client(providers, **kwargs) as client:
            return client.send(message, to, via="webhook")
    async with AsyncClient(providers, transport=mode, **kwargs) as client:
        return await client.send(message, to, via="webhook")


def _scripted(primary: list[str], backup: list[str] | None = None, **config: Any) -> FaultServer:
    return FaultServer(
        {
            "seed": SEED,
            "slow_delay": CASE_SLOW,
            "sinks": {"primary": {"script": primary}, "backup": {"script": backup or []}},
            **config,
        }
    )


def _stored(store: Path, message_id: str) -> tuple[str, str, str | None]:
    db = sqlite3.connect(store)
    try:
        row = db.execute(
            "SELECT status, outcome, reason FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
    finally:
        db.close()
    return row[0], row[1], row[2]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "script",
    [
        ["reset_after", "503"],
        ["truncated", "429_retry_after"],
        ["slow", "500"],
        ["reset_before", "502"],
    ],
    ids=lambda s: "-then-".join(s),
)
async def test_an_ambiguous_try_then_errors_is_never_sent_elsewhere(
    tmp_path: Path, mode: str, script: list[str]
) -> None:
    """A try went out and no answer came; its retry failed: unknown, and no failover.

    The provider may have taken it (here it did, except after ``reset_before``): failing
    over would send it a second time through the backup.
    """
    with _scripted(script) as server:
        result = await _send_one(mode, _providers(server), tmp_path / "s.db")
        stats = server.stats()
    assert result.status is DeliveryStatus.UNKNOWN
    assert [(a.provider, a.number) for a in result.attempts] == [("primary", 1), ("primary", 2)]
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.AMBIGUOUS_TIMEOUT
    assert stats["backup"]["requests"] == 0
    taken = [] if script[0] == "reset_before" else ["one"]
    assert list(stats["primary"]["accepted"]) == taken
    assert [entry[2] for entry in stats["primary"]["log"]["one"]] == script
    assert _stored(tmp_path / "s.db", result.message_id)[:2] == ("unknown", "unknown")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("first", ["slow", "reset_after", "truncated"])
async def test_an_ambiguous_try_is_retried_with_its_key_and_accepted_once(
    tmp_path: Path, mode: str, first: str
) -> None:
    """The retry carries the same key; the provider answers from its record: sent once."""
    with _scripted([first, "ok"]) as server:
        result = await _send_one(mode, _providers(server), tmp_path / "s.db")
        stats = server.stats()
    assert result.status is DeliveryStatus.ACCEPTED
    assert result.provider == "primary"
    assert result.provider_message_id == "primary-1"
    assert stats["primary"]["accepted"] == {"one": ["primary-1", None, 1]}
    assert stats["primary"]["replays"] == 1
    assert [entry[2] for entry in stats["primary"]["log"]["one"]] == [first, "ok"]
    assert stats["backup"]["requests"] == 0


@pytest.mark.parametrize("mode", MODES)
async def test_a_timeout_without_idempotency_ends_unknown_and_is_not_sent_again(
    tmp_path: Path, mode: str
) -> None:
    """The stock webhook adapter (no idempotency): no retry, no failover, status unknown.

    The provider did take it (the answer came too late): sending it again anywhere would
    deliver it twice.
    """
    with _scripted(["slow"]) as server:
        providers: list[Provider] = [
            PlainPrimary(url=server.sink_url("primary")),
            PlainBackup(url=server.sink_url("backup")),
        ]
        result = await _send_one(mode, providers, tmp_path / "s.db")
        stats = server.stats()
    assert result.status is DeliveryStatus.UNKNOWN
    assert [(a.provider, a.number) for a in result.attempts] == [("primary", 1)]
    assert result.error is not None
    assert result.error.category is ErrorCategory.AMBIGUOUS_TIMEOUT
    assert len(stats["primary"]["log"]["one"]) == 1
    assert list(stats["primary"]["accepted"]) == ["one"]
    assert stats["backup"]["requests"] == 0
    assert _stored(tmp_path / "s.db", result.message_id) == (
        "unknown",
        "unknown",
        "ambiguous_timeout",
    )
    with pytest.raises(DeliveryError, match="may or may not have been sent"):
        result.raise_for_status()


@pytest.mark.parametrize("mode", MODES)
async def test_retry_after_is_waited_for(tmp_path: Path, mode: str) -> None:
    """A 429 with ``Retry-After: 0.2``: the retry comes 0.2 s later at the earliest."""
    with _scripted(["429_retry_after"], retry_after=[0.2, 0.2]) as server:
        result = await _send_one(mode, _providers(server), tmp_path / "s.db")
        stats = server.stats()
    assert result.status is DeliveryStatus.ACCEPTED
    assert result.provider == "primary"
    (first, retry) = stats["primary"]["log"]["one"]
    assert (first[2], first[3], retry[2]) == ("429_retry_after", 0.2, "ok")
    assert retry[0] - first[1] >= 0.2 - EPSILON
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.retry_after == 0.2


@pytest.mark.parametrize("mode", MODES)
async def test_provider_errors_fail_over_to_the_backup(tmp_path: Path, mode: str) -> None:
    """A 502 and a 500 (nothing taken): the backup sends it, once."""
    with _scripted(["502", "500"]) as server:
        result = await _send_one(mode, _providers(server), tmp_path / "s.db")
        stats = server.stats()
    assert result.status is DeliveryStatus.ACCEPTED
    assert result.provider == "backup"
    assert [(a.provider, a.number) for a in result.attempts] == [
        ("primary", 1),
        ("primary", 2),
        ("backup", 1),
    ]
    assert stats["primary"]["accepted"] == {}
    assert list(stats["backup"]["accepted"]) == ["one"]
    assert _stored(tmp_path / "s.db", result.message_id)[:2] == ("accepted", "sent")


def test_threads_of_the_sync_client_share_one_connection_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """send_many's threads each get one httpx pool, closed when send_many returns.

    One shared pool made the threads queue for httpcore's lock (issue #7); a thread's own
    pool must still be closed, not dropped with its connections open.
    """
    made: list[httpx.Client] = []

    class Counted(httpx.Client):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(httpx, "Client", Counted)
    with _scripted([]) as server, Client(_providers(server), timeout=CASE_TIMEOUT) as client:
        items = [(Message(text=f"hi {i}"), Recipient(id=f"user-{i}")) for i in range(64)]
        outcomes = list(client.send_many(items, via="webhook", concurrency=16))
        assert 1 <= len(made) <= 16  # one per thread at most
        assert all(pool.is_closed for pool in made)  # the threads ended: so did their pools
        stats = server.stats()
    assert all(o.ok for o in outcomes)
    assert len(stats["primary"]["accepted"]) == 64
