"""A fault-injecting HTTP server that stands in for a provider (``tests/test_soak.py``).

It speaks plain HTTP/1.1 with keep-alive on asyncio streams (standard library only) and runs
in its own process: ``python tests/fault_server.py '<json config>'`` prints ``PORT <n>`` once
it listens on 127.0.0.1. :class:`FaultServer` starts and stops it from a test.

Every path ``/<sink>/...`` is a receiver (a "sink") of the ``Webhook`` adapter's JSON POSTs:
a sink has its own mix of faults and, when ``dedup`` is on, accepts each ``Idempotency-Key``
once (a second request with the key gets the first answer again, as a provider honouring
idempotency keys does). The fault of a request is decided from the seed, the sink, the key and
how many requests with that key the sink has seen, so a run with the same seed injects the same
faults into the same messages whatever order the requests come in. Fault kinds:

* ``500`` (a JSON error), ``502`` (an HTML gateway page), ``503`` (no body): nothing accepted;
* ``429`` (no ``Retry-After``) and ``429_retry_after`` (``Retry-After`` of a fraction of a
  second, within ``retry_after``): nothing accepted;
* ``reset_before``: the request is read, then the connection is reset (RST); nothing accepted;
* ``reset_after``: the message is accepted, then the connection is reset;
* ``slow``: accepted, then the answer comes ``slow_delay`` seconds later (past the client's
  timeout); ``slow_ok``: accepted, answered after ``slow_ok_delay`` (within it);
* ``truncated``: accepted, then half a response body and the connection closed;
* ``html_200``: accepted, answered 200 with an HTML (non-JSON) body;
* ``ok``: accepted, answered 200 ``{"id": "<sink>-<n>"}``.

A sink's ``script`` (a list of kinds) gives the kinds of a key's 1st, 2nd... request instead
(``ok`` after the list), for tests that need one exact sequence.

``GET /_stats`` answers, per sink: ``accepted`` (key -> [provider id, metadata ``n``, how many
times the sink took it: more than 1 only without ``dedup``]), ``log`` (key -> one
``[arrived, answered, kind, retry_after]`` per request, on the server's monotonic clock),
``faults`` (kind -> count), ``requests`` and ``replays`` (requests answered from the dedup
record).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["FAULT_KINDS", "FaultServer"]

#: Every fault kind, in the order the cumulative weights are laid out.
FAULT_KINDS = (
    "500",
    "502",
    "503",
    "429",
    "429_retry_after",
    "reset_before",
    "reset_after",
    "slow",
    "slow_ok",
    "truncated",
    "html_200",
)
#: Kinds after which the sink holds the message (the client may not know it).
ACCEPTING = frozenset({"ok", "reset_after", "slow", "slow_ok", "truncated", "html_200"})
#: The longest any answer is held, whatever the configuration says (bounds a test's run).
MAX_DELAY = 2.0
#: Seconds a test waits for the server to start or stop.
START_LIMIT = 30.0


class _Sink:
    def __init__(self, name: str, config: dict[str, Any], seed: int) -> None:
        self.name = name
        self.seed = seed
        self.dedup = bool(config.get("dedup", True))
        self.script: list[str] | None = config.get("script")
        weights = config.get("faults", {})
        unknown = set(weights) - set(FAULT_KINDS)
        if unknown:
            raise SystemExit(f"unknown fault kinds for {name}: {sorted(unknown)}")
        self.cumulative: list[tuple[float, str]] = []
        total = 0.0
        for kind in FAULT_KINDS:
            total += float(weights.get(kind, 0.0))
            self.cumulative.append((total, kind))
        if total > 1.0:
            raise SystemExit(f"the fault rates of {name} add up to {total} > 1")
        self.accepted: dict[str, list[Any]] = {}
        self.log: dict[str, list[list[Any]]] = {}
        self.faults: dict[str, int] = {}
        self.requests = 0
        self.replays = 0
        self.seq = 0

    def decide(self, key: str, number: int) -> tuple[str, random.Random]:
        """The kind of the ``number``-th request (from 0) with ``key``, and its own rng."""
        rng = random.Random(f"{self.seed}:{self.name}:{key}:{number}")
        if self.script is not None:
            return (self.script[number] if number < len(self.script) else "ok"), rng
        draw = rng.random()
        for bound, kind in self.cumulative:
            if draw < bound:
                return kind, rng
        return "ok", rng

    def accept(self, key: str, body: dict[str, Any]) -> str:
        """Take the message; its provider id (the first one when the key was seen)."""
        held = self.accepted.get(key)
        if held is not None:
            if not self.dedup:
                held[2] += 1
            return str(held[0])
        self.seq += 1
        metadata = body.get("metadata") if isinstance(body, dict) else None
        number = metadata.get("n") if isinstance(metadata, dict) else None
        self.accepted[key] = [f"{self.name}-{self.seq}", number, 1]
        return f"{self.name}-{self.seq}"


class _Server:
    def __init__(self, config: dict[str, Any]) -> None:
        seed = int(config.get("seed", 0))
        self.sinks = {
            name: _Sink(name, sink, seed) for name, sink in config.get("sinks", {}).items()
        }
        self.slow_delay = min(float(config.get("slow_delay", 0.5)), MAX_DELAY)
        self.slow_ok_delay = min(float(config.get("slow_ok_delay", 0.02)), MAX_DELAY)
        low, high = config.get("retry_after", [0.05, 0.2])
        self.retry_after = (float(low), min(float(high), MAX_DELAY))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; whether the connection stays open."""
        line = await reader.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""
        arrived = time.monotonic()
        if method == "GET" and target == "/_stats":
            await self._answer(writer, 200, json.dumps(self.stats()).encode(), "application/json")
            return True
        sink = self.sinks.get(target.lstrip("/").split("/", 1)[0])
        if sink is None:
            await self._answer(writer, 404, b'{"error":"no such sink"}', "application/json")
            return True
        return await self._sink(sink, writer, headers, body, arrived)

    async def _sink(
        self,
        sink: _Sink,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        raw: bytes,
        arrived: float,
    ) -> bool:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        key = headers.get("idempotency-key") or (body.get("id") if isinstance(body, dict) else "")
        key = str(key or "")
        log = sink.log.setdefault(key, [])
        kind, rng = sink.decide(key, len(log))
        entry: list[Any] = [arrived, None, kind, None]
        log.append(entry)
        sink.requests += 1
        if kind != "ok":
            sink.faults[kind] = sink.faults.get(kind, 0) + 1
        provider_id = ""
        if kind in ACCEPTING:
            if key in sink.accepted and sink.dedup:
                sink.replays += 1
            provider_id = sink.accept(key, body)
        keep = True
        if kind == "500":
            await self._answer(writer, 500, b'{"error":"internal"}', "application/json")
        elif kind == "502":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            await self._answer(writer, 502, page, "text/html")
        elif kind == "503":
            await self._answer(writer, 503, b"", None)
        elif kind == "429":
            await self._answer(writer, 429, b'{"error":"slow down"}', "application/json")
        elif kind == "429_retry_after":
            wait = round(rng.uniform(*self.retry_after), 3)
            entry[3] = wait
            await self._answer(
                writer, 429, b'{"error":"slow down"}', "application/json", {"Retry-After": wait}
            )
        elif kind in ("reset_before", "reset_after"):
            self._reset(writer)
            keep = False
        elif kind == "truncated":
            answer = json.dumps({"id": provider_id}).encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(answer) + 40}\r\n\r\n"
            ).encode()
            writer.write(head + answer[: len(answer) // 2])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()
            keep = False
        elif kind == "html_200":
            await self._answer(writer, 200, b"<html><body>Thanks!</body></html>", "text/html")
        else:
            if kind == "slow":
                await asyncio.sleep(self.slow_delay)
            elif kind == "slow_ok":
                await asyncio.sleep(self.slow_ok_delay)
            answer = json.dumps({"id": provider_id}).encode()
            await self._answer(writer, 200, answer, "application/json")
        entry[1] = time.monotonic()
        return keep

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0) instead of a FIN."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    async def _answer(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        reasons = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Error"}
        reasons.update({502: "Bad Gateway", 503: "Service Unavailable"})
        lines = [f"HTTP/1.1 {status} {reasons[status]}", f"Content-Length: {len(body)}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.extend(f"{name}: {value}" for name, value in (extra or {}).items())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    def stats(self) -> dict[str, Any]:
        return {
            name: {
                "accepted": sink.accepted,
                "log": sink.log,
                "faults": sink.faults,
                "requests": sink.requests,
                "replays": sink.replays,
            }
            for name, sink in self.sinks.items()
        }


async def _main(config: dict[str, Any]) -> None:
    server = _Server(config)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0, backlog=1024)
    port = listening.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with listening:
        await asyncio.Event().wait()  # until SIGTERM ends the process (no cleanup needed)


class FaultServer:
    """Runs the fault server in a subprocess (a context manager).

    Args:
        config: ``seed``, ``sinks`` (name -> ``{"faults": {kind: rate}, "dedup": bool,
            "script": [kind, ...]}``), ``slow_delay``, ``slow_ok_delay``, ``retry_after``
            (``[low, high]`` seconds).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def sink_url(self, sink: str) -> str:
        """The URL a ``Webhook`` adapter posts to for ``sink``."""
        return f"{self.url}/{sink}/hook"

    def stats(self) -> dict[str, Any]:
        """Every sink's record (see the module docstring)."""
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=START_LIMIT) as answer:  # noqa: S310
            return dict(json.loads(answer.read()))

    def __enter__(self) -> FaultServer:
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, str(Path(__file__).resolve()), json.dumps(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], START_LIMIT)
        line = self._process.stdout.readline() if ready else b""
        if not line.startswith(b"PORT "):
            self._stop()
            raise RuntimeError(f"the fault server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(START_LIMIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(START_LIMIT)
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    asyncio.run(_main(json.loads(sys.argv[1])))
