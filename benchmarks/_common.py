"""What every benchmark shares: result rows, the table, running a worker in a fresh process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_timed_hook: Callable[[], AbstractContextManager[object]] | None = None


def timed() -> AbstractContextManager[object]:
    """Wraps every benchmark's measured section (``benchmarks.profile`` puts a profiler here)."""
    return _timed_hook() if _timed_hook is not None else contextlib.nullcontext()


def set_timed_hook(hook: Callable[[], AbstractContextManager[object]] | None) -> None:
    """Run ``hook()`` as a context manager around every measured section (or stop, with None)."""
    global _timed_hook
    _timed_hook = hook


@dataclass
class Row:
    """One line of the summary table.

    ``ratio`` is anysend's figure over the first baseline's, or for a "lower is better"
    figure (times, memory) the figure over the limit; ``target`` says which way it must go.
    """

    benchmark: str
    value: float
    unit: str
    baselines: list[tuple[str, float]] = field(default_factory=list)
    ratio: float | None = None
    target: str = ""
    passed: bool | None = None  # None: informational, no target
    note: str = ""

    @property
    def result(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"


@dataclass
class Report:
    """What one benchmark module hands back: summary rows and detail lines to print."""

    name: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fmt(value: float, unit: str = "") -> str:
    """A figure with sensible precision and thousands separators."""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".strip()


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, padded to line up in a terminal too."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def summary(rows: Sequence[Row]) -> str:
    """The summary table: benchmark, anysend, baselines, ratio, target, result."""
    cells = []
    for row in rows:
        baselines = "; ".join(f"{label} {fmt(v, row.unit)}" for label, v in row.baselines)
        cells.append(
            [
                row.benchmark,
                fmt(row.value, row.unit),
                baselines or "-",
                "-" if row.ratio is None else f"{row.ratio:.2f}",
                row.target or "-",
                row.result,
            ]
        )
    return table(["benchmark", "anysend", "baseline(s)", "ratio", "target", "result"], cells)


def worker(module: str, *args: str, timeout: float = 300) -> Any:
    """Run ``python -m <module> --worker ...`` in a fresh process; its last stdout line as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--worker", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{module} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


class Stopwatch:
    """Wall and process CPU time since it was made (or last reset)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0
