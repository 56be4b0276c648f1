"""Profile one benchmark's measured section with pyinstrument (``pip install pyinstrument``).

``python -m benchmarks.profile SCENARIO [options]`` runs the scenario in this process, with the
profiler started and stopped around exactly the section the benchmark times, and prints
pyinstrument's call tree. Scenarios:

* ``webhook``: ``AsyncClient.send_many`` through ``Webhook`` to the sink
  (``--concurrency``, ``--delay``, ``--transport``, ``-n``);
* ``send``, ``send-new-numbers``, ``send-template``: the in-process ``Client.send`` loops;
* ``send-many``: ``AsyncClient.send_many`` with ``MemoryProvider`` (the memory benchmark);
* ``callbacks``: Twilio callbacks through ``client.webhooks.handle``;
* ``run-due``: ``client.run_due`` over 100,000 pending steps;
* ``imports``: not a profile: what ``import anysend`` and a first send import, heaviest first
  (``python -X importtime``, cumulative).

After the call tree come the self time by package (anysend by module) and the functions with
the most self time; ``--sql`` adds the time spent in each SQL statement (the store's scenarios).

The thread-pool paths (``Client.send_many``, Apprise) are not covered: pyinstrument samples one
thread; use ``py-spy record --subprocesses`` for those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import _common


class _SQLTimes:
    """Time spent in each SQL statement while a measured section runs (``--sql``)."""

    def __init__(self) -> None:
        self.on = False
        self.times: dict[str, list[float]] = {}

    def install(self) -> None:
        real = sqlite3.connect
        times = self

        class Timed:
            def __init__(self, db: sqlite3.Connection) -> None:
                object.__setattr__(self, "_db", db)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._db, name)

            def __setattr__(self, name: str, value: Any) -> None:
                setattr(self._db, name, value)

            def execute(self, sql: str, *args: Any) -> Any:
                return times.timed(sql, lambda: self._db.execute(sql, *args))

            def executemany(self, sql: str, *args: Any) -> Any:
                return times.timed(sql, lambda: self._db.executemany(sql, *args))

        def connect(*args: Any, **kwargs: Any) -> Any:
            return Timed(real(*args, **kwargs))

        sqlite3.connect = connect

    def timed(self, sql: str, run: Any) -> Any:
        if not self.on:
            return run()
        start = time.perf_counter()
        try:
            return run()
        finally:
            key = " ".join(sql.split())[:90]
            self.times.setdefault(key, []).append(time.perf_counter() - start)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def report(self, top: int = 15) -> str:
        total = sum(sum(v) for v in self.times.values())
        lines = [f"SQL statements by time spent in execute() ({total:.2f} s in all):"]
        ranked = sorted(self.times.items(), key=lambda item: sum(item[1]), reverse=True)
        for sql, spent in ranked[:top]:
            each = sum(spent) / len(spent) * 1e6
            lines.append(f"{sum(spent):7.3f} s  {len(spent):7d} x {each:7.0f} us  {sql}")
        return "\n".join(lines)


def _profiled(scenario: str, args: argparse.Namespace) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    sql = _SQLTimes()
    if args.sql:
        sql.install()

    @contextlib.contextmanager
    def both() -> Iterator[None]:
        with profiler, sql.measuring():
            yield

    _common.set_timed_hook(both)

    if scenario == "webhook":
        from benchmarks import http_throughput
        from benchmarks.sink import Sink

        with Sink() as sink:
            url = sink.url("").rstrip("/") + http_throughput._path(args.delay)
            asyncio.run(
                http_throughput._anysend(url, args.concurrency, args.n, 30.0, args.transport)
            )
    elif scenario in ("send", "send-new-numbers", "send-template"):
        from benchmarks import in_process

        cases = in_process._cases()
        name = {"send": "normalised", "send-new-numbers": "new-numbers"}.get(scenario, "template")
        _common.set_timed_hook(None)
        cases[name](args.n)  # warm-up, not profiled
        _common.set_timed_hook(both)
        cases[name](args.n)
    elif scenario == "send-many":
        from benchmarks import memory

        asyncio.run(memory._run(args.n, keep=False))
    elif scenario in ("callbacks", "run-due"):
        from benchmarks import ingestion

        with tempfile.TemporaryDirectory(prefix="anysend-profile-") as tmp:
            if scenario == "callbacks":
                ingestion._callbacks_sync(Path(tmp), args.n)
            else:
                ingestion._run_due(Path(tmp), args.n, 10.0)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    print(profiler.output_text(unicode=False, color=False, show_all=args.all))
    print(_flat(profiler, args.top))
    if args.sql:
        print()
        print(sql.report())


def _flat(profiler: Any, top: int) -> str:
    """Self time by function (file:function) and by package (anysend by module)."""
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        return "(no samples)"
    functions: dict[str, float] = {}
    packages: dict[str, float] = {}
    stack: list[tuple[Any, str]] = [(root, "?")]
    while stack:
        frame, parent_package = stack.pop()
        path = frame.file_path_short or frame.file_path or "?"
        package = parent_package if path.startswith("<") else _package(path)
        stack.extend((child, package) for child in frame.children)
        own = frame.total_self_time if frame.children else frame.time
        if frame.is_synthetic or own <= 0:
            continue
        key = f"{path}:{frame.function}"
        functions[key] = functions.get(key, 0.0) + own
        packages[package] = packages.get(package, 0.0) + own
    whole = root.time or 1.0

    def ranked(totals: dict[str, float], count: int) -> list[str]:
        best = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]
        return [f"{seconds / whole:6.1%}  {seconds:7.3f} s  {name}" for name, seconds in best]

    lines = [f"Self time by package (anysend by module), of {whole:.2f} s sampled:"]
    lines += ranked(packages, 15)
    lines += ["", f"Top {top} functions by self time:"]
    lines += ranked(functions, top)
    return "\n".join(lines)


def _package(path: str) -> str:
    """``aiohttp`` for ``aiohttp/client.py``; anysend files keep their module path."""
    parts = path.replace("\\", "/").split("/")
    if "anysend" in parts:
        return "/".join(parts[parts.index("anysend") :])
    for marker in ("site-packages", "lib"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            parts = parts[parts.index(marker) + 1 :]
    return parts[0].removesuffix(".py") if len(parts) > 1 else "stdlib:" + parts[0]


def _imports() -> None:
    # A first send to a closed port: everything a real first send imports, no server needed.
    body = (
        "import anysend\nfrom anysend.providers.webhook import Webhook\n"
        "with anysend.Client([Webhook(url='http://127.0.0.1:9/hook')]) as client:\n"
        "    client.send(anysend.Message(text='hi'), to=anysend.Recipient(), via='webhook')\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", body],
        capture_output=True,
        text=True,
        cwd=_common.ROOT,
        check=True,
    )
    rows: list[tuple[int, int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|")
        rows.append((int(cumulative), int(self_us), name.rstrip()))
    print("cumulative ms  self ms  module (indented by depth)")
    for total, own, name in sorted(rows, reverse=True)[:40]:
        print(f"{total / 1000:13.1f}  {own / 1000:7.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario",
        choices=[
            "webhook",
            "send",
            "send-new-numbers",
            "send-template",
            "send-many",
            "callbacks",
            "run-due",
            "imports",
        ],
    )
    parser.add_argument("-n", type=int, default=0, help="how many (a default per scenario)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--delay", type=int, default=0, help="the sink's latency, ms")
    parser.add_argument("--transport", default=None, help="AsyncClient(transport=...)")
    parser.add_argument("--all", action="store_true", help="show library frames too")
    parser.add_argument("--top", type=int, default=25, help="functions in the self-time list")
    parser.add_argument("--sql", action="store_true", help="also time each SQL statement")
    args = parser.parse_args()
    defaults: dict[str, Any] = {
        "webhook": 2000,
        "send-many": 20_000,
        "callbacks": 5000,
        "run-due": 100_000,
    }
    args.n = args.n or defaults.get(args.scenario, 10_000)
    if args.scenario == "imports":
        _imports()
    else:
        _profiled(args.scenario, args)


if __name__ == "__main__":
    main()
