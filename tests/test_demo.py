"""The newcomer's path: `anysend demo` and `python -m anysend`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from anysend.__main__ import main


def test_demo_tells_the_whole_story(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo reaches all three customers: email, email after a retry, SMS fallback."""
    monkeypatch.setenv("COLUMNS", "120")  # a table row per attempt, unwrapped
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Ann: accepted (email via smtp)" in out
    assert "Carol: accepted (email via smtp)" in out
    assert "Bob: accepted (sms via console)" in out
    assert "unavailable (451 4.3.0)" in out
    assert "invalid_recipient (550 5.1.1)" in out
    assert "Sneakers znowu w sklepie" in out  # Ann's Polish template
    assert "The mail server received 2 email(s)" in out
    assert "sms to +48600700801" in out


def test_python_dash_m_runs_the_demo() -> None:
    """`python -m anysend demo` works as well as the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "anysend", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "3 of 3 customers reached" in done.stdout


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version; no command prints help and exits 2."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "anysend " in capsys.readouterr().out
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_demo_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the demo extra the command explains how to get it."""
    monkeypatch.setitem(sys.modules, "aiosmtpd", None)
    assert main(["demo"]) == 2
    assert 'pip install "anysend[demo]"' in capsys.readouterr().err
