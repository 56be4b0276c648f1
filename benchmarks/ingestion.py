"""Callback ingestion and due flow steps, in process, on a SQLite store file in a temp dir.

Callbacks: Twilio status callbacks (``MessageStatus=delivered``, as in
``tests/fixtures/twilio/status_delivered.form``), each for a message already in the store and
signed with ``anysend.providers.twilio.sign``, go through ``client.webhooks.handle("twilio",
request)``: signature check, parsing, the store's ingest (status moved to ``delivered``), the
flow engine's reaction. Building the ``WebhookRequest`` is timed too (a web framework does it
per request); signing is not (Twilio does it). The sync ``Client`` and the ``AsyncClient``
each get a store of their own. Target: 5,000 a second.

Due steps: 100,000 one-step flow runs (plus 2,000 made by ``client.start``), all due now:
2,000 are created through ``store.create_run`` one at a time and 2,000 with ``client.start``
(both timed, for reference), the rest inserted in one transaction with ``create_run``'s own
INSERTs (one transaction each takes over a minute for 100,000). Then ``client.run_due()`` is
called in a loop (its default ``limit=100``) with a ``MemoryProvider`` until every step ran or
a time budget (8 s) is spent. Target: 5,000 a second.

Run alone: ``python -m benchmarks.ingestion``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from benchmarks._common import Report, Row, Stopwatch, fmt, timed, worker

CALLBACKS = 5_000
STEPS = 100_000
BUDGET = 8.0  # seconds of run_due at most
TARGET = 5_000

ACCOUNT = "AC00000000000000000000000000000000"
TOKEN = "benchmark-auth-token"  # a made-up token, for signing locally
URL = "https://hooks.example.com/anysend/twilio"
# tests/fixtures/twilio/status_delivered.form, with the message SIDs filled in per callback.
FORM = [
    ("SmsSid", ""),
    ("SmsStatus", "delivered"),
    ("MessageStatus", "delivered"),
    ("To", "+15555550100"),
    ("MessageSid", ""),
    ("AccountSid", ACCOUNT),
    ("From", "+15005550006"),
    ("ApiVersion", "2010-04-01"),
    ("RawDlrDoneDate", "2611200801"),
]


def _callbacks(n: int) -> list[tuple[str, bytes, str]]:
    """(message SID, form body, X-Twilio-Signature) for ``n`` delivered callbacks."""
    from anysend.providers.twilio import sign

    out = []
    for i in range(n):
        sid = f"SM{i:032x}"
        fields = [(k, sid if k in ("SmsSid", "MessageSid") else v) for k, v in FORM]
        body = urlencode(fields)
        out.append((sid, body.encode(), sign(URL, parse_qsl(body), TOKEN)))
    return out


def _sent(sid: str, message_id: str) -> Any:
    import anysend
    from anysend._results import Attempt, AttemptOutcome, Receipt

    receipt = Receipt(provider_message_id=sid)
    attempt = Attempt(
        channel=anysend.Channel.SMS,
        provider="twilio",
        outcome=AttemptOutcome.SENT,
        address="+15555550100",
        receipt=receipt,
    )
    return anysend.SendResult(
        message_id=message_id,
        status=anysend.DeliveryStatus.ACCEPTED,
        channel=anysend.Channel.SMS,
        provider="twilio",
        address="+15555550100",
        receipt=receipt,
        attempts=(attempt,),
    )


def _callbacks_sync(folder: Path, n: int) -> dict[str, float]:
    import anysend
    from anysend.providers.twilio import Twilio

    twilio = Twilio(account_sid=ACCOUNT, auth_token=TOKEN, sender="+15005550006")
    callbacks = _callbacks(n)
    with anysend.Client([twilio], store=str(folder / "sync.db")) as client:
        store = client.store
        assert store is not None
        now = datetime.now(timezone.utc)
        for i, (sid, _, _) in enumerate(callbacks):
            store.save_result(_sent(sid, f"msg-{i}"), now=now, recipient_id=None, category=None)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        watch = Stopwatch()
        events = 0
        with timed():
            for _, body, signature in callbacks:
                request = anysend.WebhookRequest(
                    url=URL, headers={**headers, "X-Twilio-Signature": signature}, body=body
                )
                events += len(client.webhooks.handle("twilio", request))
        wall, cpu = watch.wall, watch.cpu
        last = store.get_message(f"msg-{n - 1}")
        assert last is not None
        assert last.status is anysend.DeliveryStatus.DELIVERED, last
    return {"n": n, "events": events, "wall": wall, "cpu": cpu, "rate": n / wall}


async def _callbacks_async(folder: Path, n: int) -> dict[str, float]:
    import anysend
    from anysend.providers.twilio import Twilio

    twilio = Twilio(account_sid=ACCOUNT, auth_token=TOKEN, sender="+15005550006")
    callbacks = _callbacks(n)
    async with anysend.AsyncClient([twilio], store=str(folder / "async.db")) as client:
        store = client.store
        assert store is not None
        now = datetime.now(timezone.utc)
        for i, (sid, _, _) in enumerate(callbacks):
            await store.save_result(
                _sent(sid, f"msg-{i}"), now=now, recipient_id=None, category=None
            )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        watch = Stopwatch()
        events = 0
        with timed():
            for _, body, signature in callbacks:
                request = anysend.WebhookRequest(
                    url=URL, headers={**headers, "X-Twilio-Signature": signature}, body=body
                )
                events += len(await client.webhooks.handle("twilio", request))
        wall, cpu = watch.wall, watch.cpu
        last = await store.get_message(f"msg-{n - 1}")
        assert last is not None
        assert last.status is anysend.DeliveryStatus.DELIVERED, last
    return {"n": n, "events": events, "wall": wall, "cpu": cpu, "rate": n / wall}


def _insert_runs(store: Any, rows: list[tuple[str, str, str, float]]) -> None:
    """Insert pending one-step runs in one transaction: ``create_run``'s rows, in bulk.

    ``(run id, plan JSON, recipient id, now)`` each. The same INSERTs as
    ``AsyncSQLiteStore.create_run`` (keep them in step with it), batched, because creating
    100,000 runs one transaction each would take longer than the benchmark itself.
    """
    with store._tx() as db:
        db.executemany(
            "INSERT INTO runs (id, key, flow, plan, recipient_id, state, created_at)"
            " VALUES (?, NULL, 'reminder', ?, ?, 'active', ?)",
            rows,
        )
        db.executemany(
            "INSERT INTO steps (id, run_id, idx, state, due_at, recipient_id, updated_at)"
            " VALUES (? || '.0', ?, 0, 'pending', ?, ?, ?)",
            [(run_id, run_id, now, person, now) for run_id, _, person, now in rows],
        )


def _plan(flow_json: dict[str, Any], person: dict[str, str]) -> dict[str, Any]:
    """The plan ``client.start(flow, to=person)`` stores (see ``AsyncFlowEngine.start``).

    The numbers are valid E.164 already, so start() keeps them as they are and marks them
    checked (``"e164"``); the step's send then does not parse them again.
    """
    return {"kind": "flow", "flow": flow_json, "to": person, "data": {}, "e164": True}


def _run_due(folder: Path, n: int, budget: float) -> dict[str, float]:
    import anysend
    from anysend.testing import MemoryProvider

    outbox = MemoryProvider()
    flow = anysend.Flow(
        name="reminder",
        steps=[
            anysend.Step(
                via="sms", message=anysend.Message(text="Your appointment is tomorrow at 10:00")
            )
        ],
    )
    with anysend.Client([outbox], store=str(folder / "flows.db")) as client:
        store = client.store
        assert store is not None
        flow_json = flow.model_dump(mode="json")
        now = datetime.now(timezone.utc)
        sample = min(2_000, n)
        # For reference (and for the rows below to match the real thing): create_run one at
        # a time, as client.start does, and client.start itself.
        watch = Stopwatch()
        for i in range(sample):
            person = {"id": f"user-{i}", "phone": f"+4860{i:07d}"}
            plan = _plan(flow_json, person)
            store.create_run(
                run_id=uuid.uuid4().hex,
                key=None,
                flow=flow.name,
                plan=plan,
                recipient_id=person["id"],
                now=now,
                steps=[(anysend.StepState.PENDING, now)],
            )
        create_rate = sample / watch.wall
        watch.reset()
        for i in range(sample):
            started = client.start(
                flow, to=anysend.Recipient(id=f"start-{i}", phone="+48600700800")
            )
        start_rate = sample / watch.wall
        # The plans below must be what client.start stores (the same keys, the recipient
        # snapshot's fields): checked against the last run it made.
        made = store.get_run(started)
        assert made is not None
        person = {"id": f"start-{sample - 1}", "phone": "+48600700800"}
        expected = _plan(flow_json, person)
        assert made["plan"].keys() == expected.keys(), (made["plan"].keys(), expected.keys())
        assert made["plan"]["to"].keys() >= person.keys()
        assert made["plan"]["flow"] == flow_json
        rows = []
        for i in range(sample, n):
            person = {"id": f"user-{i}", "phone": f"+4860{i:07d}"}
            plan = _plan(flow_json, person)
            rows.append((uuid.uuid4().hex, json.dumps(plan), person["id"], now.timestamp()))
        watch.reset()
        _insert_runs(store, rows)
        bulk_rate = len(rows) / watch.wall
        total = n + sample
        watch.reset()
        ran = sent = 0
        with timed():
            while ran < total and watch.wall < budget:
                count = client.run_due()
                if count == 0:
                    break
                ran += count
                sent += len(outbox.messages)
                outbox.reset()
        wall, cpu = watch.wall, watch.cpu
    return {
        "n": total,
        "ran": ran,
        "sent": sent,
        "wall": wall,
        "cpu": cpu,
        "rate": ran / wall,
        "create_rate": create_rate,
        "start_rate": start_rate,
        "bulk_rate": bulk_rate,
    }


def _worker(kind: str, n: int, budget: float) -> None:
    with tempfile.TemporaryDirectory(prefix="anysend-bench-") as tmp:
        folder = Path(tmp)
        if kind == "callbacks":
            result = _callbacks_sync(folder, n)
        elif kind == "callbacks-async":
            result = asyncio.run(_callbacks_async(folder, n))
        else:
            result = _run_due(folder, n, budget)
    print(json.dumps(result))


def run(quick: bool = False) -> Report:
    """Callbacks a second (sync and async) and due steps a second."""
    report = Report("ingestion")
    watch = Stopwatch()
    callbacks = 1_000 if quick else CALLBACKS
    steps = 5_000 if quick else STEPS
    budget = 5.0 if quick else BUDGET
    sync = worker("benchmarks.ingestion", "--kind", "callbacks", "--n", str(callbacks))
    async_ = worker("benchmarks.ingestion", "--kind", "callbacks-async", "--n", str(callbacks))
    due = worker(
        "benchmarks.ingestion", "--kind", "run-due", "--n", str(steps), "--budget", str(budget)
    )
    report.details += [
        f"Twilio status callbacks, {callbacks:,} (each for a stored message, each moved to "
        f"delivered): sync Client {fmt(sync['rate'])}/s "
        f"({fmt(sync['cpu'] / callbacks * 1e6)} us CPU each), AsyncClient "
        f"{fmt(async_['rate'])}/s ({fmt(async_['cpu'] / callbacks * 1e6)} us CPU each).",
        f"Due steps: {due['n']:,} pending one-step runs (2,000 made by store.create_run at "
        f"{fmt(due['create_rate'])}/s, 2,000 by client.start at {fmt(due['start_rate'])}/s, "
        f"the rest inserted in bulk); run_due ran "
        f"{due['ran']:,} of {due['n']:,} in {fmt(due['wall'])} s ({fmt(due['rate'])}/s, "
        f"{fmt(due['cpu'] / max(due['ran'], 1) * 1e6)} us CPU each, "
        f"{due['sent']:,} messages sent; budget {budget:.0f} s).",
    ]
    for label, figures in (("sync Client", sync), ("AsyncClient", async_)):
        rate = figures["rate"]
        report.rows.append(
            Row(
                f"webhooks.handle: Twilio callbacks into SQLite ({label})",
                rate,
                "/s",
                [("target", TARGET)],
                rate / TARGET,
                f">= {TARGET:,}/s",
                rate >= TARGET,
                f"{fmt(figures['cpu'] / figures['n'] * 1e6)} us CPU per callback",
            )
        )
    rate = due["rate"]
    report.rows.append(
        Row(
            f"run_due: {due['n']:,} pending one-step flows (MemoryProvider)",
            rate,
            "steps/s",
            [("target", TARGET)],
            rate / TARGET,
            f">= {TARGET:,}/s",
            rate >= TARGET,
            f"ran {due['ran']:,} in {fmt(due['wall'])} s, "
            f"{fmt(due['cpu'] / max(due['ran'], 1) * 1e6)} us CPU per step",
        )
    )
    report.seconds = watch.wall
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="callbacks", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=CALLBACKS, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=BUDGET, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        _worker(args.kind, args.n, args.budget)
        return
    from benchmarks.run import show

    show([run(quick=args.quick)])


if __name__ == "__main__":
    main()
