"""The in-process cost of ``send()``: sync ``Client`` and ``MemoryProvider``, no network.

A loop of N sends of one SMS text (the message and recipient built once, outside the loop),
best of 5 after a warm-up run, in a fresh process (the
repeats of the cases take turns, so that a slow spell of the machine hits them alike):

* to an already-normalised address (``+48600700800``): the target, 20,000 sends a second;
* with validation: an unnormalised number (``"600 700 800"``, ``default_region="PL"``); the
  same one every time (validation results are cached per address, so this is a cache hit),
  and a new number for every send (``"600 012 345"``, recipients built before the clock
  starts), which phonenumbers parses, checks and formats each time;
* with a template: ``Message(template="otp", data=...)`` rendered from a ``Templates`` mapping;
* for reference, an email to ``ann@example.com`` (the same address: cached) and the same
  SMS through ``AsyncClient.send`` (one ``await`` per send in a loop).

The provider's list of recorded messages is cleared between runs.

Run alone: ``python -m benchmarks.in_process``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import Report, Row, Stopwatch, fmt, table, timed, worker

N = 5_000
REPEAT = 5  # the issue asks for best of 3; this VM's speed drifts, so 5 rounds
TARGET = 20_000  # sends a second on one core


def _cases() -> dict[str, Callable[[int], float]]:
    import anysend
    from anysend.testing import MemoryProvider

    outbox = MemoryProvider()
    templates = {"otp/sms.txt": "Your code is {{ code }}. It expires in {{ minutes }} minutes."}
    client = anysend.Client([outbox], default_region="PL", templates=templates)
    text = anysend.Message(text="Your code is 123456. It expires in 10 minutes.")
    templated = anysend.Message(template="otp", data={"code": "123456", "minutes": 10})
    normalised = anysend.Recipient(phone="+48600700800")
    unnormalised = anysend.Recipient(phone="600 700 800")
    email = anysend.Recipient(email="ann@example.com")

    def loop(message: anysend.Message, to: anysend.Recipient, via: str) -> Callable[[int], float]:
        def run(n: int) -> float:
            outbox.reset()
            send = client.send
            with timed():
                start = time.perf_counter()
                for _ in range(n):
                    send(message, to, via=via)
                elapsed = time.perf_counter() - start
            assert len(outbox.messages) == n, "every send must reach the provider"
            return elapsed

        return run

    fresh = itertools.count(600_000_000)

    def new_numbers(n: int) -> float:
        # Numbers never sent to before (validation results are cached per number), typed
        # as people type them: "600 012 345". Built before the clock starts.
        people = []
        for number in itertools.islice(fresh, n):
            digits = str(number)
            phone = f"{digits[:3]} {digits[3:6]} {digits[6:]}"
            people.append(anysend.Recipient(phone=phone))
        outbox.reset()
        send = client.send
        with timed():
            start = time.perf_counter()
            for person in people:
                send(text, person, via="sms")
            elapsed = time.perf_counter() - start
        assert len(outbox.messages) == n, "every send must reach the provider"
        return elapsed

    aclient = anysend.AsyncClient([outbox], default_region="PL")

    def async_loop(n: int) -> float:
        async def go() -> float:
            outbox.reset()
            send = aclient.send
            with timed():
                start = time.perf_counter()
                for _ in range(n):
                    await send(text, normalised, via="sms")
                return time.perf_counter() - start

        return asyncio.run(go())

    return {
        "normalised": loop(text, normalised, "sms"),
        "validation": loop(text, unnormalised, "sms"),
        "new-numbers": new_numbers,
        "template": loop(templated, normalised, "sms"),
        "email": loop(text, email, "email"),
        "async": async_loop,
    }


def _worker(n: int, repeat: int) -> None:
    cases = _cases()
    for case in cases.values():
        case(n)  # warm-up: imports, caches, compiled templates, the heap grown once
    # The repeats take turns, so that a slow spell of the machine hits every case alike.
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            gc.collect()
            timings[name].append(case(n))
    results: dict[str, Any] = {}
    for name, runs in timings.items():
        best = min(runs)
        results[name] = {"best": best, "rate": n / best, "us": best / n * 1e6, "runs": runs}
    print(json.dumps(results))


_LABELS = {
    "normalised": "send(): SMS text, normalised number",
    "validation": 'send(): SMS text, "600 700 800" + default_region (cached)',
    "new-numbers": "send(): SMS text, a new unnormalised number each send",
    "template": "send(): SMS from a template",
    "email": "send(): email text, same address (cached)",
    "async": "AsyncClient.send(): SMS text, normalised",
}


def run(quick: bool = False) -> Report:
    """The sends a second of each case."""
    report = Report("in-process send()")
    watch = Stopwatch()
    n = 2000 if quick else N
    out = worker("benchmarks.in_process", "--n", str(n), "--repeat", str(REPEAT))
    report.details.append(f"Sync Client + MemoryProvider, {n:,} sends per run, best of {REPEAT}:")
    report.details.append(
        table(
            ["case", "sends/s", "us per send"],
            [[_LABELS[k], fmt(v["rate"]), fmt(v["us"])] for k, v in out.items()],
        )
    )
    base = out["normalised"]["rate"]
    for name, figures in out.items():
        rate = figures["rate"]
        if name == "normalised":
            report.rows.append(
                Row(
                    _LABELS[name],
                    rate,
                    "sends/s",
                    [("target", TARGET)],
                    rate / TARGET,
                    f">= {TARGET:,}/s",
                    rate >= TARGET,
                    f"{fmt(figures['us'])} us per send",
                )
            )
        else:
            report.rows.append(
                Row(
                    _LABELS[name],
                    rate,
                    "sends/s",
                    [("normalised SMS", base)],
                    rate / base,
                    note=f"{fmt(figures['us'])} us per send",
                )
            )
    report.seconds = watch.wall
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=N)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        _worker(args.n, args.repeat)
        return
    from benchmarks.run import show

    show([run(quick=args.quick)])


if __name__ == "__main__":
    main()
