"""Memory: 200,000 items through ``AsyncClient.send_many``, peak RSS growth under 50 MB.

In a fresh process: an ``AsyncClient`` with a ``MemoryProvider``, warmed up with a few
thousand sends (imports, caches, the first allocations), then 200,000 items from a generator
(each a new ``Message`` and ``Recipient``, as a campaign reading rows would make them) at the
default concurrency. The figure is the peak resident set (``ru_maxrss``) at the end minus the
resident set just before the run.

``MemoryProvider`` is a test double that keeps every message it accepts (``.messages``) and
every receipt by idempotency key (to emulate a provider's deduplication); what it keeps is not
``send_many``'s doing, so the consumer calls ``outbox.reset()`` every 1,000 results. A second,
informational run (``--keep``, 10,000 items) leaves it alone, to show what the test double
itself keeps per message.

Run alone: ``python -m benchmarks.memory``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import resource
import sys
from collections.abc import Iterator

from benchmarks._common import Report, Row, Stopwatch, fmt, timed, worker

N = 200_000
LIMIT_MB = 50.0
WARMUP = 5_000
BUDGET = 120.0  # seconds: a bound on the run, never reached at the speeds measured so far


def _rss_mb() -> float:
    """The current resident set in MB (``/proc/self/statm``, else psutil)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        psutil = importlib.import_module("psutil")  # not Linux: psutil knows
        return float(psutil.Process().memory_info().rss) / 2**20


def _peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


async def _run(n: int, keep: bool) -> dict[str, float]:
    import anysend
    from anysend.testing import MemoryProvider

    outbox = MemoryProvider()

    def items(count: int) -> Iterator[tuple[anysend.Message, anysend.Recipient]]:
        for i in range(count):
            yield (
                anysend.Message(text=f"Hello customer {i}, your order {i:08d} has shipped."),
                anysend.Recipient(id=f"user-{i}", phone=f"+4860{i % 10_000_000:07d}"),
            )

    async with anysend.AsyncClient([outbox]) as client:
        async for _ in client.send_many(items(WARMUP), via="sms"):
            pass
        outbox.reset()
        gc.collect()
        before = _rss_mb()
        peak_before = _peak_mb()
        watch = Stopwatch()
        ok = done = 0
        with timed():
            async for result in client.send_many(items(n), via="sms"):
                done += 1
                ok += result.ok
                if not keep and done % 1000 == 0:
                    outbox.reset()  # the test double's own records: messages and receipts
                if done % 1000 == 0 and watch.wall > BUDGET:
                    break  # a bound on the suite's time; reported as fewer items
        wall = watch.wall
        peak = _peak_mb()
    return {
        "n": done,
        "ok": ok,
        "before_mb": before,
        "peak_before_mb": peak_before,
        "peak_mb": peak,
        "growth_mb": peak - before,
        "end_mb": _rss_mb(),
        "wall": wall,
        "rate": done / wall,
    }


def run(quick: bool = False) -> Report:
    """Peak RSS growth over 200,000 items (and, informationally, with messages kept)."""
    report = Report("memory")
    watch = Stopwatch()
    n = 20_000 if quick else N
    out = worker("benchmarks.memory", "--n", str(n))
    growth = out["growth_mb"]
    if out["n"] < n:
        report.details.append(f"WARNING: stopped after {out['n']:,} items (the time bound).")
    report.details.append(
        f"AsyncClient.send_many, {n:,} items from a generator, MemoryProvider (cleared as "
        f"results arrive): RSS {fmt(out['before_mb'])} MB before, peak {fmt(out['peak_mb'])} MB, "
        f"growth {fmt(growth)} MB; {fmt(out['rate'])} items/s, {out['ok']:,} sent."
    )
    report.rows.append(
        Row(
            f"send_many {n:,} items: peak RSS growth",
            growth,
            "MB",
            [("limit", LIMIT_MB)],
            growth / LIMIT_MB,
            f"< {LIMIT_MB:.0f} MB",
            growth < LIMIT_MB,
            f"{fmt(out['rate'])} items/s through send_many (MemoryProvider)",
        )
    )
    if not quick:
        kept_n = 10_000
        kept = worker("benchmarks.memory", "--n", str(kept_n), "--keep")
        per = kept["growth_mb"] * 2**20 / kept_n
        report.details.append(
            f"Informational: {kept_n:,} items with MemoryProvider keeping every message: "
            f"growth {fmt(kept['growth_mb'])} MB ({fmt(per)} bytes per kept message)."
        )
    report.seconds = watch.wall
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(_run(args.n, args.keep))))
        return
    from benchmarks.run import show

    show([run(quick=args.quick)])


if __name__ == "__main__":
    main()
