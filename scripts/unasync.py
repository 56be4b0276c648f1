"""Generate the sync client (and its tests) from the async source.

    python scripts/unasync.py            # write src/anysend/_sync and tests/_sync
    python scripts/unasync.py --check    # fail if the generated files are stale

The async code is the one implementation of the orchestration; this script rewrites it with a
few regular expressions, as httpcore does. Every async-only name must differ from its sync twin
by a rule below: an ``Async`` class prefix, ``async``/``await`` keywords, or an ``a``-prefixed
method (``aclose``/``close``, ``asend``/``send``, ``asleep``/``sleep``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [
    (ROOT / "src/anysend/_async", ROOT / "src/anysend/_sync"),
    (ROOT / "tests/_async", ROOT / "tests/_sync"),
]
HEADER = "# GENERATED from {source} by scripts/unasync.py. Do not edit: edit the source.\n"

RULES: list[tuple[str, str]] = [
    (r"anysend\._async", "anysend._sync"),
    (r"tests\._async", "tests._sync"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\basend\b", "send"),
    (r"\basleep\b", "sleep"),
    (r"\baread\b", "read"),
    (r"\bsupports_async\b", "supports_sync"),
    (r"\bAwaitable\[([^\[\]]+)\]", r"\1"),
    (r"\bAwaitable, ", ""),
    (r"``async with``", "``with``"),
    (r" \(with ``await``\)", ""),
    (
        r"An async client belongs to the event loop it is first used in; use one client per loop\.",
        "It may be shared between threads, and a client made before ``os.fork()`` opens\n"
        "    new connections in the child process.",
    ),
    (r"\bawaited\b", "called"),
    (r"^\s*@pytest\.mark\.anyio\n", ""),
    (r"pytestmark = pytest\.mark\.anyio\n", ""),
]
COMPILED = [(re.compile(pattern, re.MULTILINE), repl) for pattern, repl in RULES]


def convert(text: str, source: str) -> str:
    """The sync twin of one async source file."""
    for pattern, repl in COMPILED:
        text = pattern.sub(repl, text)
    return HEADER.format(source=source) + text


def ruff_format(text: str, path: Path) -> str:
    """Format generated code the way the project formats its own."""
    done = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout


def main(check: bool) -> int:
    stale: list[str] = []
    for source_dir, target_dir in PAIRS:
        if not source_dir.exists():
            continue
        target_dir.mkdir(exist_ok=True)
        expected: set[Path] = set()
        for source in sorted(source_dir.rglob("*.py")):
            target = target_dir / source.relative_to(source_dir)
            expected.add(target)
            rel = source.relative_to(ROOT).as_posix()
            output = ruff_format(convert(source.read_text(), rel), target)
            if not target.exists() or target.read_text() != output:
                stale.append(str(target.relative_to(ROOT)))
                if not check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(output)
        for extra in target_dir.rglob("*.py"):
            if extra not in expected:
                stale.append(f"{extra.relative_to(ROOT)} (no source)")
                if not check:
                    extra.unlink()
    if check and stale:
        print("generated sync code is stale; run `python scripts/unasync.py`:", *stale, sep="\n  ")
        return 1
    if not check:
        print(f"unasync: {len(stale)} file(s) written")
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
