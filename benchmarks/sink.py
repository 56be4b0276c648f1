"""A local HTTP sink in its own process: answers every request ``200 {"ok":true}``.

A minimal HTTP/1.1 server on asyncio (keep-alive, ``Content-Length`` bodies; no chunked
uploads, which none of the benchmarked clients send for a JSON POST). A path starting with
``/delay/<ms>`` answers after that many milliseconds, like a real provider's latency, so one
sink serves every configuration. ``GET /stats`` answers the number of POSTs received and the
sink process's CPU seconds, so a benchmark can check that every message arrived.

Run on its own: ``python -m benchmarks.sink`` prints ``PORT <n>`` and serves until killed.
From a benchmark: ``with Sink() as sink: sink.url("/delay/50")``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from types import TracebackType

_BODY = b'{"ok":true}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class _Counter:
    posts = 0


class _HTTP(asyncio.Protocol):
    """One connection: parse requests as they arrive, answer each in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._pending: deque[list[bytes]] = deque()  # one cell per request, in order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            self._request(head.split(b"\r\n", 1)[0])

    def _request(self, line: bytes) -> None:
        method, _, rest = line.partition(b" ")
        path = rest.partition(b" ")[0]
        cell: list[bytes] = []
        self._pending.append(cell)
        if method == b"GET" and path == b"/stats":
            stats = json.dumps({"posts": _Counter.posts, "cpu": time.process_time()}).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            self._answer(cell, head + str(len(stats)).encode() + b"\r\n\r\n" + stats)
            return
        if method == b"POST":
            _Counter.posts += 1
        delay = 0.0
        if path.startswith(b"/delay/"):
            delay = int(path[7:].split(b"/", 1)[0].split(b"?", 1)[0]) / 1000
        if delay > 0:
            self._loop.call_later(delay, self._answer, cell, _RESPONSE)
        else:
            self._answer(cell, _RESPONSE)

    def _answer(self, cell: list[bytes], response: bytes) -> None:
        # Answers go out in request order (as HTTP/1.1 requires of pipelined requests).
        cell.append(response)
        pending = self._pending
        out = []
        while pending and pending[0]:
            out.append(pending.popleft()[0])
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HTTP(loop), host, port, backlog=4096)
    sockname = server.sockets[0].getsockname()
    print(f"PORT {sockname[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port))


class Sink:
    """The sink in a child process, for the time of a ``with`` block."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Sink:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sink", "--host", self.host],
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("PORT "):
            self._process.kill()
            raise RuntimeError(f"the sink did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def url(self, path: str = "/") -> str:
        """The sink's URL for ``path`` (``/delay/50`` answers after 50 ms)."""
        return f"http://{self.host}:{self.port}{path}"

    def stats(self) -> dict[str, float]:
        """POSTs received so far and the sink's CPU seconds."""
        with urllib.request.urlopen(self.url("/stats"), timeout=5) as response:
            data: dict[str, float] = json.loads(response.read())
        return data


if __name__ == "__main__":
    main()
