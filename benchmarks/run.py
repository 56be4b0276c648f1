"""Run every benchmark and print one table: ``python -m benchmarks.run`` (or ``nox -s bench``).

Options: ``--only NAME ...`` runs some of them (``http``, ``inprocess``, ``memory``,
``startup``, ``ingestion``); ``--quick`` shrinks every run (a smoke test of the suite, not
figures to quote); ``--json FILE`` also writes every figure as JSON; ``--wait-idle SECONDS``
first waits for other processes to leave the machine idle. At the end it says how much of the
machine's CPU other processes used meanwhile (from ``/proc/stat``): figures taken while
something else ran are skewed.

The exit status is 0 whether targets are met or missed: benchmarks report, they do not gate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks._common import Report, summary

SUITES: dict[str, str] = {
    "http": "benchmarks.http_throughput",
    "inprocess": "benchmarks.in_process",
    "memory": "benchmarks.memory",
    "startup": "benchmarks.startup",
    "ingestion": "benchmarks.ingestion",
}


def machine() -> str:
    """Cores, Python, OS: the line every set of figures needs next to it."""
    import anysend

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()} "
        f"{platform.machine()}, anysend {anysend.__version__}"
    )


def versions() -> str:
    """The versions of the libraries measured against (and under) anysend."""
    from importlib import metadata

    found = []
    for name in ("aiohttp", "httpx", "httpcore", "apprise", "pydantic", "phonenumbers"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _cpu_busy() -> float | None:
    """Seconds of CPU the whole machine has spent busy since boot (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and its finished children (workers, the sink)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def wait_idle(limit: float) -> float:
    """Wait (up to ``limit`` seconds) until other processes use under 10% of the machine.

    Returns the share of the machine they used in the last second looked at.
    """
    deadline = time.monotonic() + limit
    cores = os.cpu_count() or 1
    while True:
        busy0, own0 = _cpu_busy(), _own_cpu()
        time.sleep(1.0)
        busy1, own1 = _cpu_busy(), _own_cpu()
        if busy0 is None or busy1 is None:
            return 0.0
        share = max(0.0, (busy1 - busy0) - (own1 - own0)) / cores
        if share < 0.1 or time.monotonic() >= deadline:
            return share
        print(f"waiting: other processes use {share:.0%} of the machine", file=sys.stderr)


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def show(reports: Sequence[Report], *, details: bool = True) -> None:
    """Print each report's details, then one summary table of every row."""
    for report in reports:
        if details and report.details:
            print(f"\n## {report.name} ({report.seconds:.0f} s)\n")
            print("\n".join(report.details))
    rows = [row for report in reports for row in report.rows]
    print("\n## Summary\n")
    print(summary(rows))
    notes = [f"- {row.benchmark}: {row.note}" for row in rows if row.note]
    if notes:
        print("\nNotes:")
        print("\n".join(notes))
    missed = [row.benchmark for row in rows if row.passed is False]
    met = sum(row.passed is True for row in rows)
    print(f"\n{met} target(s) met, {len(missed)} missed.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(SUITES), default=list(SUITES))
    parser.add_argument("--quick", action="store_true", help="small runs: a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait (up to SECONDS) until other processes leave the machine idle",
    )
    args = parser.parse_args(argv)

    print(f"Machine: {machine()}")
    print(f"Libraries: {versions()}")
    if args.wait_idle:
        wait_idle(args.wait_idle)
    print(f"Load average at the start: {_load()} (other work on the machine skews every figure)")
    started = time.perf_counter()
    busy0, own0 = _cpu_busy(), _own_cpu()
    reports: list[Report] = []
    for name in args.only:
        module = __import__(SUITES[name], fromlist=["run"])
        run: Callable[..., Report] = module.run
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report = run(quick=args.quick)
        print(f"  {name}: {report.seconds:.1f} s", file=sys.stderr, flush=True)
        reports.append(report)
    show(reports)
    total = time.perf_counter() - started
    busy1, own1 = _cpu_busy(), _own_cpu()
    other = None
    if busy0 is not None and busy1 is not None:
        other = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((os.cpu_count() or 1) * total)
    print(f"\nWhole suite: {total:.0f} s; load average at the end: {_load()}")
    if other is not None:
        print(
            f"Other processes used {other:.0%} of the machine's CPU during the run"
            + (" (figures skewed: rerun on a quiet machine)" if other > 0.1 else "")
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "machine": machine(),
                    "libraries": versions(),
                    "seconds": total,
                    "other_cpu_share": other,
                    "reports": [r.to_json() for r in reports],
                },
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
