"""Helpers for ``tests/test_worker.py``: the ``--app`` factory and a local HTTP receiver.

The worker runs in a subprocess and imports this module (``--app tests.worker_target:...``);
the test process runs :class:`Receiver`. The factory reads its settings from the environment:

* ``ANYSEND_WORKER_TEST_STORE``: the SQLite store file;
* ``ANYSEND_WORKER_TEST_IDEMPOTENT``: ``"1"`` to use a webhook adapter that says its receiver
  deduplicates on ``Idempotency-Key`` (``capabilities.idempotency``), anything else for the
  stock adapter (the receiver is not assumed to deduplicate).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

import anysend
from anysend.providers import Capabilities
from anysend.providers.webhook import Webhook

__all__ = [
    "IDEMPOTENT_ENV",
    "NOT_A_CLIENT",
    "STORE_ENV",
    "DedupingWebhook",
    "Received",
    "Receiver",
    "make_async_client",
    "make_client",
    "make_storeless_client",
]

STORE_ENV = "ANYSEND_WORKER_TEST_STORE"
IDEMPOTENT_ENV = "ANYSEND_WORKER_TEST_IDEMPOTENT"

#: Seconds a hanging request waits for the test to release it (a bound, never reached).
HANG_LIMIT = 60.0

NOT_A_CLIENT = "not a client"


class DedupingWebhook(Webhook):
    """The webhook adapter for a receiver that deduplicates on ``Idempotency-Key``.

    ``WebhookSettings`` has no setting saying that the receiver deduplicates, so a subclass is
    the way to declare it: ``capabilities.idempotency`` then lets a send that a dead worker
    left in the air be sent again with the same key.
    """

    capabilities: ClassVar[Capabilities] = Webhook.capabilities.model_copy(
        update={"idempotency": True}
    )


def make_client() -> anysend.Client:
    """The worker's client: the webhook adapter on the store named by the environment."""
    store = os.environ[STORE_ENV]
    hook = DedupingWebhook() if os.environ.get(IDEMPOTENT_ENV) == "1" else Webhook()
    # A generous timeout: the test kills the worker while the receiver holds a request.
    return anysend.Client([hook], store=store, timeout=HANG_LIMIT)


def make_storeless_client() -> anysend.Client:
    """A client without a store (the worker refuses it)."""
    return anysend.Client([Webhook()])


def make_async_client() -> anysend.AsyncClient:
    """An async client (the worker needs a sync one)."""
    return anysend.AsyncClient([Webhook()], store=os.environ.get(STORE_ENV, ":memory:"))


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    key: str | None
    body: dict[str, Any]


class Receiver:
    """A local HTTP endpoint (127.0.0.1, any free port) that records every POST and answers 200.

    With ``hang_on=k`` the k-th request (from 1) is recorded and then held without an answer
    until :meth:`release` (or the receiver closes): the worker is then between the provider
    accepting the message and its own commit. ``hanging`` is set while it is held.
    """

    def __init__(self, *, hang_on: int | None = None) -> None:
        self.hang_on = hang_on
        self.hanging = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._count_events: dict[int, threading.Event] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms stall

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                number = receiver._record(
                    Received(
                        path=self.path,
                        key=self.headers.get("Idempotency-Key"),
                        body=json.loads(raw) if raw else {},
                    )
                )
                if number == receiver.hang_on:
                    receiver.hanging.set()
                    receiver._released.wait(HANG_LIMIT)
                answer = b'{"ok":true}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the worker was killed while we held its request
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _record(self, received: Received) -> int:
        with self._lock:
            self._requests.append(received)
            number = len(self._requests)
            for wanted, event in self._count_events.items():
                if number >= wanted:
                    event.set()
        return number

    @property
    def requests(self) -> list[Received]:
        """Every request so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def keys(self) -> list[str | None]:
        """The ``Idempotency-Key`` of every request so far, in order."""
        return [r.key for r in self.requests]

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` requests came; whether they did within ``timeout`` seconds."""
        with self._lock:
            event = self._count_events.setdefault(count, threading.Event())
            if len(self._requests) >= count:
                event.set()
        return event.wait(timeout)

    def release(self) -> None:
        """Answer the held request (and let any later one through)."""
        self._released.set()

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
