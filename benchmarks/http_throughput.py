"""Throughput and client CPU per message through the ``Webhook`` provider, against baselines.

Every client POSTs small JSON bodies to the sink (``benchmarks/sink.py``, a separate process on
127.0.0.1), at concurrency 8, 50 and 200, once with no delay and once with the sink answering
after 50 ms (like a real provider). Each client kind runs in a fresh process of its own:

* ``aiohttp``: raw ``aiohttp.ClientSession`` (connector limit = concurrency c), c workers;
* ``httpx``: raw ``httpx.AsyncClient()`` with its default limits (as anysend's httpx
  transport has them), c workers;
* ``apprise``: ``Apprise.notify()`` to a ``json://`` URL from a pool of c threads (Apprise's
  notify is synchronous and opens a connection per call);
* ``anysend``: ``AsyncClient([Webhook(url=...)]).send_many(..., via="webhook",
  concurrency=c)`` with the default transport; and, when ``AsyncClient`` takes a
  ``transport=`` argument, ``transport="httpx"`` and ``transport="aiohttp"`` each forced;
* ``anysend-sync``: the sync ``Client.send_many`` (a thread pool) at the same concurrency.

A configuration sends N messages (2,000) or stops issuing new ones after a time budget (1 s;
2 s for the two configurations with targets), whichever comes first, after a warm-up that
opens the connections. The figures are messages per second (wall) and the client process's
CPU time per message (``time.process_time``, every thread). The sink counts the POSTs it got,
and every client's count is checked against it.
Every client kind keeps its process for the whole benchmark, and the configurations go one at a
time, every client in turn, so that a slow spell of the machine hits them alike; raw aiohttp
runs first and again last in each configuration, the better of its two runs is the baseline
(the stricter one), and their ratio shows how much the machine's speed drifted meanwhile.

Run alone: ``python -m benchmarks.http_throughput``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks._common import ROOT, Report, Row, Stopwatch, fmt, table, timed
from benchmarks.sink import Sink

CONCURRENCY = (8, 50, 200)
DELAYS = (0, 50)  # milliseconds the sink waits before answering
N = 2000
BUDGET = 1.0  # seconds of sending per configuration, at most (slow clients stop early)
TARGETED = {(50, 0): 2.0, (200, 50): 2.0}  # the configurations with targets get longer
WARMUP = 0.5  # seconds of warm-up at most: one message per connection


def _path(delay: int) -> str:
    return f"/delay/{delay}/hook" if delay else "/hook"


def _payload(i: int) -> dict[str, Any]:
    return {"type": "benchmark", "text": f"Message number {i}", "id": i}


class _Budget:
    """Hands out message numbers until N are out or the time is up (thread-safe)."""

    def __init__(self, n: int, seconds: float) -> None:
        self._n = n
        self._deadline = time.perf_counter() + seconds
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._next >= self._n or time.perf_counter() > self._deadline:
                return None
            self._next += 1
            return self._next - 1

    @property
    def taken(self) -> int:
        return self._next

    def __iter__(self) -> Iterator[int]:
        while (i := self.take()) is not None:
            yield i


# -- the clients (each runs in the worker process) ---------------------------------------------


async def _aiohttp(url: str, c: int, n: int, budget: float) -> tuple[int, int]:
    import aiohttp

    async def batch(session: aiohttp.ClientSession, numbers: _Budget) -> tuple[int, int]:
        ok = errors = 0

        async def one() -> None:
            nonlocal ok, errors
            for i in numbers:
                async with session.post(url, json=_payload(i)) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        errors += 1

        await asyncio.gather(*(one() for _ in range(c)))
        return ok, errors

    connector = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=connector) as session:
        await batch(session, _warmup(n, c))
        return await _measure(batch(session, _Budget(n, budget)))


async def _httpx(url: str, c: int, n: int, budget: float) -> tuple[int, int]:
    import httpx

    async def batch(client: httpx.AsyncClient, numbers: _Budget) -> tuple[int, int]:
        ok = errors = 0

        async def one() -> None:
            nonlocal ok, errors
            for i in numbers:
                response = await client.post(url, json=_payload(i))
                if response.status_code == 200:
                    ok += 1
                else:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(c)))
        return ok, errors

    async with httpx.AsyncClient() as client:
        await batch(client, _warmup(n, c))
        return await _measure(batch(client, _Budget(n, budget)))


def _apprise(url: str, c: int, n: int, budget: float) -> tuple[int, int]:
    import apprise

    target = "json://" + url.removeprefix("http://")
    local = threading.local()

    def notify(i: int) -> bool:
        if not hasattr(local, "apobj"):
            local.apobj = apprise.Apprise()
            local.apobj.add(target)
        return bool(local.apobj.notify(body=f"Message number {i}", title="benchmark"))

    def batch(pool: ThreadPoolExecutor, numbers: _Budget) -> tuple[int, int]:
        ok = errors = 0
        lock = threading.Lock()

        def one() -> None:
            nonlocal ok, errors
            for i in numbers:
                sent = notify(i)
                with lock:
                    ok += sent
                    errors += not sent

        for future in [pool.submit(one) for _ in range(c)]:
            future.result()
        return ok, errors

    with ThreadPoolExecutor(max_workers=c) as pool:
        batch(pool, _warmup(n, c))
        return _measure_sync(lambda: batch(pool, _Budget(n, budget)))


async def _anysend(
    url: str, c: int, n: int, budget: float, transport: str | None
) -> tuple[int, int]:
    import anysend
    from anysend.providers.webhook import Webhook

    kwargs: dict[str, Any] = {} if transport is None else {"transport": transport}

    async def batch(client: anysend.AsyncClient, numbers: _Budget) -> tuple[int, int]:
        ok = errors = 0
        items = (
            (anysend.Message(text=f"Message number {i}"), anysend.Recipient()) for i in numbers
        )
        async for item in client.send_many(items, via="webhook", concurrency=c):
            if item.ok:
                ok += 1
            else:
                errors += 1
                _failure(item)
        return ok, errors

    async with anysend.AsyncClient([Webhook(url=url)], **kwargs) as client:
        await batch(client, _warmup(n, c))
        return await _measure(batch(client, _Budget(n, budget)))


def _anysend_sync(url: str, c: int, n: int, budget: float) -> tuple[int, int]:
    import anysend
    from anysend.providers.webhook import Webhook

    def batch(client: anysend.Client, numbers: _Budget) -> tuple[int, int]:
        ok = errors = 0
        items = (
            (anysend.Message(text=f"Message number {i}"), anysend.Recipient()) for i in numbers
        )
        for item in client.send_many(items, via="webhook", concurrency=c):
            if item.ok:
                ok += 1
            else:
                errors += 1
                _failure(item)
        return ok, errors

    with anysend.Client([Webhook(url=url)]) as client:
        batch(client, _warmup(n, c))
        return _measure_sync(lambda: batch(client, _Budget(n, budget)))


_LAST: dict[str, float] = {}
_FAILURES: list[str] = []


def _failure(item: Any) -> None:
    """Keep a few failures' reasons, to show with the figures."""
    if len(_FAILURES) < 3:
        error = item.error or (item.result.error if item.result is not None else None)
        _FAILURES.append(str(getattr(error, "message", error))[:200])


_WARMUPS: list[_Budget] = []


def _warmup(n: int, c: int) -> _Budget:
    """Enough messages to open every connection (one each), or half a second's worth."""
    budget = _Budget(min(n, c), WARMUP)
    _WARMUPS.append(budget)
    return budget


async def _measure(run: Any) -> tuple[int, int]:
    with timed():
        watch = Stopwatch()
        ok, errors = await run
        _LAST.update(wall=watch.wall, cpu=watch.cpu)
    return ok, errors


def _measure_sync(run: Any) -> tuple[int, int]:
    with timed():
        watch = Stopwatch()
        ok, errors = run()
        _LAST.update(wall=watch.wall, cpu=watch.cpu)
    return ok, errors


def _run_kind(kind: str, base: str, c: int, delay: int, n: int, budget: float) -> dict[str, Any]:
    url = base + _path(delay)
    if kind == "aiohttp":
        ok, errors = asyncio.run(_aiohttp(url, c, n, budget))
    elif kind == "httpx":
        ok, errors = asyncio.run(_httpx(url, c, n, budget))
    elif kind == "apprise":
        ok, errors = _apprise(url, c, n, budget)
    elif kind == "anysend-sync":
        ok, errors = _anysend_sync(url, c, n, budget)
    elif kind.startswith("anysend"):
        transport = kind.partition(":")[2] or None
        ok, errors = asyncio.run(_anysend(url, c, n, budget, transport))
    else:
        raise SystemExit(f"unknown client {kind!r}")
    wall, cpu = _LAST["wall"], _LAST["cpu"]
    failures = list(_FAILURES)
    _FAILURES.clear()
    return {
        "kind": kind,
        "failures": failures,
        # Which HTTP library carries anysend's default transport: whichever got imported.
        "transport": "aiohttp" if "aiohttp" in sys.modules else "httpx",
        "concurrency": c,
        "delay": delay,
        "ok": ok,
        "errors": errors,
        "wall": wall,
        "cpu": cpu,
        "rate": ok / wall if wall else 0.0,
        "cpu_per_message_us": cpu / max(ok + errors, 1) * 1e6,
        "warmup": _WARMUPS[-1].taken,
    }


def _worker(args: argparse.Namespace) -> None:
    """Serve configurations read from standard input, one JSON object a line, until EOF."""
    for line in sys.stdin:
        ask = json.loads(line)
        result = _run_kind(args.kind, args.base, ask["c"], ask["delay"], ask["n"], ask["budget"])
        print(json.dumps(result), flush=True)


class _Worker:
    """One client kind in a process of its own, run a configuration at a time."""

    def __init__(self, kind: str, base: str) -> None:
        self.kind = kind
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.http_throughput",
                "--worker",
                "--kind",
                kind,
                "--base",
                base,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def run(self, c: int, delay: int, n: int, budget: float) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps({"c": c, "delay": delay, "n": n, "budget": budget}) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} worker died (exit code {process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# -- the orchestrator --------------------------------------------------------------------------


def _kinds() -> list[str]:
    import anysend

    kinds = ["aiohttp", "httpx", "apprise", "anysend"]
    if "transport" in inspect.signature(anysend.AsyncClient).parameters:
        kinds += ["anysend:httpx", "anysend:aiohttp"]
    return [*kinds, "anysend-sync"]


_LABELS = {
    "aiohttp": "raw aiohttp",
    "httpx": "raw httpx",
    "apprise": "Apprise",
    "anysend": "anysend (default transport)",
    "anysend:httpx": 'anysend transport="httpx"',
    "anysend:aiohttp": 'anysend transport="aiohttp"',
    "anysend-sync": "anysend sync Client",
}


def run(quick: bool = False) -> Report:
    """Every client at every configuration; rows for the targets, details for the rest."""
    report = Report("webhook throughput")
    n = 500 if quick else N
    budget = 0.5 if quick else BUDGET
    watch = Stopwatch()
    data: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    default_transport = "httpx"
    configs = [(c, d) for d in DELAYS for c in CONCURRENCY]
    kinds = _kinds()
    with Sink() as sink:
        workers = {kind: _Worker(kind, sink.url("").rstrip("/")) for kind in kinds}
        try:
            # Configuration by configuration, every client in turn, so that a slow spell of
            # the machine hits them alike; raw aiohttp runs first and again last, and the
            # better of its two runs is the baseline.
            for c, d in configs:
                seconds = TARGETED.get((c, d), BUDGET) * budget / BUDGET
                for label in [*kinds, "aiohttp@end"]:
                    kind = label.partition("@")[0]
                    before = sink.stats()["posts"]
                    result = workers[kind].run(c, d, n, seconds)
                    received = sink.stats()["posts"] - before
                    sent = result["ok"] + result["errors"] + result["warmup"]
                    if received != sent:
                        report.details.append(
                            f"WARNING: {kind} c={c} {d} ms: the sink got {received:.0f} POSTs, "
                            f"the client sent {sent}"
                        )
                    if kind == "anysend":
                        default_transport = result["transport"]
                    data.setdefault(label, {})[(c, d)] = result
        finally:
            for each in workers.values():
                each.close()
    _LABELS["anysend"] = f"anysend (default transport: {default_transport})"
    first, last = data["aiohttp"], data.pop("aiohttp@end")
    drift = {key: last[key]["rate"] / first[key]["rate"] for key in first}
    data["aiohttp"] = {key: max(first[key], last[key], key=lambda r: r["rate"]) for key in first}

    def rate(kind: str, c: int, d: int) -> float:
        return float(data[kind][(c, d)]["rate"]) if kind in data else float("nan")

    # Detail tables: throughput and CPU per message for every client and configuration.
    headers = ["client"] + [f"c={c}, {d} ms" for c, d in configs]
    rates = [[_LABELS[k]] + [fmt(rate(k, c, d)) for c, d in configs] for k in data]
    cpus = [
        [_LABELS[k]] + [fmt(data[k][(c, d)]["cpu_per_message_us"]) for c, d in configs]
        for k in data
    ]
    counts = [[_LABELS[k]] + [str(data[k][(c, d)]["ok"]) for c, d in configs] for k in data]
    errors = [
        f"{_LABELS[k]} c={c} {d} ms: {data[k][(c, d)]['errors']} failed, e.g. "
        + "; ".join(data[k][(c, d)]["failures"] or ["(no detail)"])
        for k in data
        for c, d in configs
        if data[k][(c, d)]["errors"]
    ]
    report.details += [
        f"Webhook throughput, messages/s (N={n} or {budget} s per configuration, "
        f"{budget * 2:g} s for the two with targets; raw aiohttp "
        "ran first and last, the better run is shown; last/first: "
        + ", ".join(f"c={c} {d} ms {drift[(c, d)]:.2f}" for c, d in configs)
        + "):",
        table(headers, rates),
        "",
        "Client CPU per message, microseconds (process time, all threads):",
        table(headers, cpus),
        "",
        "Messages measured per configuration:",
        table(headers, counts),
        *errors,
    ]

    async_kinds = [k for k in ("anysend", "anysend:aiohttp", "anysend:httpx") if k in data]
    for kind in async_kinds:
        label = _LABELS[kind]
        for c, d in configs:
            value = rate(kind, c, d)
            aio, hx, ap = rate("aiohttp", c, d), rate("httpx", c, d), rate("apprise", c, d)
            baselines = [("aiohttp", aio), ("httpx", hx), ("Apprise", ap)]
            cpu = data[kind][(c, d)]["cpu_per_message_us"]
            aio_cpu = data["aiohttp"][(c, d)]["cpu_per_message_us"]
            note = f"CPU {fmt(cpu)} us/msg (raw aiohttp {fmt(aio_cpu)})"
            name = f"{label}, c={c}, {d} ms"
            target, passed = "", None
            if kind != "anysend:httpx" and (c, d) == (50, 0):
                target, passed = ">= 0.6 x aiohttp", value >= 0.6 * aio
            elif kind != "anysend:httpx" and (c, d) == (200, 50):
                target, passed = ">= 0.9 x aiohttp", value >= 0.9 * aio
            report.rows.append(
                Row(name, value, "msg/s", baselines, value / aio, target, passed, note)
            )
            if kind != "anysend:httpx" and (c, d) == (50, 0):
                report.rows.append(
                    Row(
                        f"{label}, c=50, 0 ms, vs Apprise",
                        value,
                        "msg/s",
                        [("Apprise", ap)],
                        value / ap,
                        ">= 5 x Apprise",
                        value >= 5 * ap,
                    )
                )
    for c, d in configs:
        value = rate("anysend-sync", c, d)
        aio, ap = rate("aiohttp", c, d), rate("apprise", c, d)
        cpu = data["anysend-sync"][(c, d)]["cpu_per_message_us"]
        report.rows.append(
            Row(
                f"{_LABELS['anysend-sync']}, c={c}, {d} ms",
                value,
                "msg/s",
                [("aiohttp", aio), ("Apprise", ap)],
                value / aio,
                note=f"CPU {fmt(cpu)} us/msg",
            )
        )
    report.seconds = watch.wall
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer messages, shorter budget")
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    from benchmarks.run import show

    show([run(quick=args.quick)])


if __name__ == "__main__":
    main()
