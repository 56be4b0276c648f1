"""Start-up: ``import anysend`` against ``import httpx``, and import plus the first send
against Apprise's import and first ``notify()``.

Each figure is the median of 10 fresh ``python -c`` processes, timed inside the process with
``time.perf_counter()`` around the import (and the send), so the interpreter's own start-up,
the same for both, is left out. The details also give the CPU time of the same span
(``time.process_time()``), which a busy machine disturbs less than the wall clock. The first
sends go to the sink (``benchmarks/sink.py``): the sync ``Client`` with a ``Webhook``
provider, and ``Apprise.notify()`` to a ``json://`` URL.
The cases take turns, so that a slow spell of the machine hits them alike. A first round,
not counted, writes the bytecode caches (``PYTHONDONTWRITEBYTECODE`` is unset for it).

The details also list what the first send imports, by top-level package, from one
``python -X importtime`` run.

Run alone: ``python -m benchmarks.startup``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import defaultdict

from benchmarks._common import ROOT, Report, Row, Stopwatch, fmt, table
from benchmarks.sink import Sink

REPEAT = 10

_TIMED = (
    "import time\n_t0, _c0 = time.perf_counter(), time.process_time()\n{body}\n"
    "print(time.perf_counter() - _t0, time.process_time() - _c0)\n"
)

_ANYSEND_SEND = """
import anysend
from anysend.providers.webhook import Webhook
with anysend.Client([Webhook(url="{url}")]) as client:
    result = client.send(anysend.Message(text="hello"), to=anysend.Recipient(), via="webhook")
assert result.ok, result
"""

_ANYSEND_ASYNC_SEND = """
import asyncio
import anysend
from anysend.providers.webhook import Webhook
async def main():
    async with anysend.AsyncClient([Webhook(url="{url}")]) as client:
        return await client.send(
            anysend.Message(text="hello"), to=anysend.Recipient(), via="webhook"
        )
result = asyncio.run(main())
assert result.ok, result
"""

_APPRISE_SEND = """
import apprise
apobj = apprise.Apprise()
apobj.add("json://{hostport}/hook")
assert apobj.notify(body="hello", title="benchmark")
"""


def _cases(url: str) -> dict[str, str]:
    hostport = url.removeprefix("http://").rstrip("/")
    return {
        "import anysend": "import anysend",
        "import httpx": "import httpx",
        "anysend first send": _ANYSEND_SEND.format(url=url + "/hook"),
        "apprise first notify": _APPRISE_SEND.format(hostport=hostport),
        "anysend async first send": _ANYSEND_ASYNC_SEND.format(url=url + "/hook"),
    }


def _env(write_bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _time(body: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``body`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _TIMED.format(body=body)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"start-up case failed:\n{body}\n{done.stderr[-2000:]}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _imports(body: str) -> list[tuple[str, float, int]]:
    """(top-level package, self seconds summed, modules) from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", body],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(False),
        timeout=60,
        check=False,
    )
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        top = name.split(".")[0]
        totals[top] += int(self_us) / 1e6
        counts[top] += 1
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)
    return [(name, seconds, counts[name]) for name, seconds in ranked]


def run(quick: bool = False) -> Report:
    """Medians of fresh-process timings; the two targets as rows."""
    report = Report("start-up")
    watch = Stopwatch()
    repeat = 3 if quick else REPEAT
    with Sink() as sink:
        cases = _cases(sink.url("").rstrip("/"))
        for body in cases.values():
            _time(body, _env(True))  # write the bytecode caches once
        timings: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeat):
            for name, body in cases.items():
                wall, used = _time(body, _env(False))
                timings[name].append(wall)
                cpu[name].append(used)
        heavy = _imports(cases["anysend first send"])
    medians = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    report.details.append(f"Fresh processes, median of {repeat} (milliseconds):")
    report.details.append(
        table(
            ["case", "median ms", "min ms", "max ms", "median CPU ms"],
            [
                [
                    name,
                    fmt(medians[name]),
                    fmt(min(v) * 1000),
                    fmt(max(v) * 1000),
                    fmt(statistics.median(cpu[name]) * 1000),
                ]
                for name, v in timings.items()
            ],
        )
    )
    total = sum(seconds for _, seconds, _ in heavy)
    report.details.append(
        f"\nWhat `import anysend` + the first sync send imports (-X importtime, self time by "
        f"top-level package, {fmt(total * 1000)} ms in all; the 12 heaviest):"
    )
    report.details.append(
        table(
            ["package", "self ms", "modules"],
            [[name, fmt(seconds * 1000), str(count)] for name, seconds, count in heavy[:12]],
        )
    )
    anysend_import, httpx_import = medians["import anysend"], medians["import httpx"]
    report.rows.append(
        Row(
            "import anysend",
            anysend_import,
            "ms",
            [("import httpx", httpx_import)],
            anysend_import / httpx_import,
            "<= 1.25 x httpx",
            anysend_import <= 1.25 * httpx_import,
        )
    )
    first, apprise_first = medians["anysend first send"], medians["apprise first notify"]
    report.rows.append(
        Row(
            "import + first send (Client, Webhook)",
            first,
            "ms",
            [("Apprise import + notify()", apprise_first)],
            first / apprise_first,
            "< 1.0 x Apprise",
            first < apprise_first,
        )
    )
    async_first = medians["anysend async first send"]
    report.rows.append(
        Row(
            "import + first send (AsyncClient, Webhook)",
            async_first,
            "ms",
            [("Apprise import + notify()", apprise_first)],
            async_first / apprise_first,
        )
    )
    report.seconds = watch.wall
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from benchmarks.run import show

    show([run(quick=args.quick)])


if __name__ == "__main__":
    main()
