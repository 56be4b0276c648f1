"""Every script in examples/ runs offline and succeeds."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
#: What ``anysend.sandbox`` imports (the ``sandbox`` extra); the test extra installs them all.
SANDBOX_EXTRA = ("aiohttp", "aiosmtpd", "cryptography")


def test_there_are_examples() -> None:
    """The examples folder is not empty (so the parametrised test below cannot pass vacuously)."""
    assert len(SCRIPTS) >= 4


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs(script: Path) -> None:
    """The example exits 0 within a bounded time, using only 127.0.0.1."""
    if "anysend.sandbox" in script.read_text("utf-8"):
        missing = [name for name in SANDBOX_EXTRA if importlib.util.find_spec(name) is None]
        if missing:
            pytest.skip(f'needs the sandbox extra (pip install "anysend[sandbox]"): {missing}')
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and scripts
        [sys.executable, str(script)],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip(), "an example says what it did"
