"""The long-running commands as real processes: ``webhooks serve`` and ``sandbox``.

Each is started as a subprocess on a free port; the test waits (bounded, on the process's
output, never a fixed sleep) until it is ready, talks to it over 127.0.0.1, then stops it
with SIGINT/SIGTERM and checks that it exits cleanly.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from anysend.providers.twilio import sign

SID = "AC" + "0" * 32
TOKEN = "twilio-token"
TWILIO = f"twilio://{SID}:{TOKEN}@default?from=%2B15005550006"
LIMIT = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _wait_for_line(stream: IO[bytes], marker: bytes, limit: float = LIMIT) -> bytes:
    """Read until a line contains ``marker`` and return that line; fail after ``limit`` s.

    The pipe is read with ``os.read`` (never through the buffered reader, whose buffer
    ``select`` cannot see).
    """
    import time

    deadline = time.monotonic() + limit
    fd = stream.fileno()
    seen = b""
    while True:
        for line in seen.splitlines(keepends=True):
            if marker in line and line.endswith(b"\n"):
                return line
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no {marker!r} within {limit} s: {seen!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"the process ended before {marker!r}: {seen!r}")
        seen += chunk


@contextmanager
def _process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYSEND_")}
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "anysend", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(LIMIT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_webhooks_serve_receives_a_signed_callback(tmp_path: Path) -> None:
    """uvicorn serves WebhookApp: a signed Twilio callback is stored, a forged one refused."""
    store = tmp_path / "anysend.db"
    port = _free_port()
    args = (
        "webhooks",
        "serve",
        "-p",
        TWILIO,
        "--store",
        str(store),
        "--port",
        str(port),
        "--prefix",
        "/hooks",
    )
    with _process(*args) as server:
        assert server.stderr is not None
        _wait_for_line(server.stderr, b"Uvicorn running on")
        url = f"http://127.0.0.1:{port}/hooks/twilio"
        fields = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered", "AccountSid": SID}
        with httpx.Client(timeout=LIMIT) as http:
            good = http.post(
                url, data=fields, headers={"X-Twilio-Signature": sign(url, fields, TOKEN)}
            )
            forged = http.post(url, data=fields, headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
            unknown = http.post(f"http://127.0.0.1:{port}/hooks/nobody", data=fields)
        server.send_signal(signal.SIGINT)
        assert server.wait(LIMIT) == 0
    assert (good.status_code, forged.status_code, unknown.status_code) == (200, 401, 404)
    db = sqlite3.connect(store)
    try:
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        db.close()
    assert events == 1


def test_webhooks_serve_needs_a_store() -> None:
    """Without a store there is nowhere to put callbacks: one error line, exit 2."""
    with _process("webhooks", "serve", "-p", TWILIO) as server:
        _, err = server.communicate(timeout=LIMIT)
    assert server.returncode == 2
    assert err.decode().startswith("anysend webhooks serve: error: no store")


def _sandbox_available() -> bool:
    try:
        from anysend.sandbox import Sandbox  # type: ignore[attr-defined,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _sandbox_available(), reason="anysend.sandbox is not installed yet")
def test_sandbox_then_send_to_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``anysend sandbox --json`` prints its variables; ``send --sandbox`` with them lands in
    its inbox; SIGTERM stops it with exit code 0."""
    from anysend.__main__ import main

    with _process("sandbox", "--port", "0", "--json") as sandbox:
        assert sandbox.stdout is not None
        line = _wait_for_line(sandbox.stdout, b'"env"')
        shown = json.loads(line)
        assert shown["url"].startswith("http://127.0.0.1:")
        assert shown["env"]["ANYSEND_SANDBOX_URL"] == shown["url"]
        for name, value in shown["env"].items():
            monkeypatch.setenv(name, value)
        code = main(
            ["send", "--sandbox", "--to", "+48600100200", "--text", "hi", "-c", "sms", "--json"]
        )
        result = json.loads(capsys.readouterr().out)
        with httpx.Client(timeout=LIMIT) as http:
            people = http.get(f"{shown['url']}/_sandbox/api/people").json()
        sandbox.send_signal(signal.SIGTERM)
        assert sandbox.wait(LIMIT) == 0
    assert (code, result["status"], result["provider"]) == (0, "accepted", "twilio")
    assert any("+48600100200" in person["addresses"] for person in people)
