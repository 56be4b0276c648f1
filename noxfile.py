"""nox sessions: the one entry point for tests, lint, types, docs and generated code.

nox -s tests      # the test suite with coverage (90% gate)
nox -s lint       # ruff, and the generated sync code is up to date
nox -s types      # mypy strict
nox -s docs       # mkdocs build --strict
nox -s unasync    # regenerate src/anysend/_sync and tests/_sync from the async source
nox -s bench      # the benchmarks (not run by default; prints figures, see docs/performance.md)
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "types", "docs"]
nox.options.reuse_venv = "yes"

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)
    session.run("coverage", "report", "--fail-under=90")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("python", "scripts/unasync.py", "--check")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def unasync(session: nox.Session) -> None:
    session.install("ruff")
    session.run("python", "scripts/unasync.py")


@nox.session
def bench(session: nox.Session) -> None:
    # Benchmarks, not tests: they print figures against baselines measured in the same run
    # (posargs go to benchmarks.run: --only http memory, --quick, --json out.json).
    session.install(".[fast,cli]", "aiohttp", "apprise", "psutil")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
