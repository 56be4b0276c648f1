"""Run anysend's sends and flow steps on Celery workers.

When one process is not enough, the sends and the due flow steps run as Celery tasks on as
many workers as needed, with the store (SQLite for one machine, PostgreSQL for several) and
Redis (``Client(..., shared="redis://...")``: rate limits and idempotency keys) shared by
all of them. See ``docs/deployment.md``.

Example:
    ```python
    import anysend
    from anysend.contrib.celery import create_app
    from anysend.testing import MemoryProvider


    def make_client() -> anysend.Client:  # called once in each worker process
        return anysend.Client([MemoryProvider()], store="anysend.db")


    app, tasks = create_app(make_client, broker="redis://127.0.0.1:6379/0")
    # tasks.submit(anysend.Message(text="Hi"), to={"email": "ann@example.com"})
    ```

    Then ``celery -A yourmodule worker`` and ``celery -A yourmodule beat`` (the beat runs the
    due flow steps every second).

What the tasks guarantee:

* Every send goes out with an idempotency key (:meth:`AnysendTasks.submit` gives one to a
  message that has none), and the tasks are *late-acknowledged* (``acks_late``,
  ``reject_on_worker_lost``): a task whose worker is killed is delivered again. The key makes
  that second delivery harmless: a send that finished is answered from the key's stored
  result (Redis or the store), never sent twice; a send that was cut short is made again
  once the dead worker's claim on the key runs out (``claim_ttl``), with the same key, so a
  provider that honours idempotency keys (and a ``Webhook`` receiver that deduplicates on
  ``Idempotency-Key``) takes it once. A provider that takes no key may then receive it a
  second time, but only if the worker died after the provider accepted the request and
  before the result was stored.
* Flow steps are claimed in the store with a lease (``step_lease``): the steps a killed
  worker held are claimed again when it runs out, and a message that may have gone out is
  sent again only through providers that take idempotency keys (else it ends ``unknown``).
* Retries are anysend's (:class:`~anysend.RetryPolicy`, inside the task): the tasks never use
  Celery's ``autoretry_for``, so a failure is never retried twice over. A task re-queues
  itself only to look again at a key another worker holds, or to keep draining due steps.
* Results and failures are recorded in the client's store; a task returns a small summary.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from anysend._exceptions import ConfigurationError
from anysend._models import Channel, Message, Recipient
from anysend._status import DeliveryStatus

try:
    import celery  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ConfigurationError(
        'anysend.contrib.celery needs Celery: pip install "anysend[celery]"'
    ) from None

if TYPE_CHECKING:
    from anysend._results import SendResult
    from anysend._sync._client import Client

__all__ = ["AnysendTasks", "CeleryApp", "ClientFactory", "create_app", "register"]

#: Makes the client a worker process sends with (called once per process, after the fork).
ClientFactory = Callable[[], "Client"]
#: A ``to`` as it travels in a task: ``{"profile": id}`` or ``{"recipient": {fields}}``.
_To = dict[str, Any]
#: How often a send deferred for a held key is looked at again before it is sent anyway.
_RECHECKS = 5


class _PerProcess:
    """The client of this process, made on first use (so never before a prefork fork)."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: Client | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> Client:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                client = self._factory()
                from anysend._sync._client import Client

                if not isinstance(client, Client):
                    raise ConfigurationError(
                        "the client factory must return an anysend.Client (the sync client), "
                        f"not {type(client).__name__}"
                    )
                self._client, self._pid = client, os.getpid()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


def _to_spec(to: Recipient | Mapping[str, Any] | str) -> _To:
    """``to`` as JSON, checked now (bad input fails where it is submitted, not in a worker)."""
    if isinstance(to, str):
        return {"profile": to}
    if not isinstance(to, Recipient):
        from anysend._batch import recipient_from

        to = recipient_from(to)
    return {"recipient": json.loads(to.model_dump_json(exclude_defaults=True))}


def _from_spec(spec: _To) -> Recipient | str:
    if "profile" in spec:
        return str(spec["profile"])
    return Recipient.model_validate_json(json.dumps(spec["recipient"]))


def _with_key(message: Message) -> Message:
    if message.idempotency_key is not None:
        return message
    return message.model_copy(update={"idempotency_key": uuid.uuid4().hex})


def _via(via: Sequence[Channel | str] | Channel | str | None) -> list[str] | None:
    if via is None:
        return None
    if isinstance(via, (str, Channel)):
        via = [via]
    return [Channel(v).value if isinstance(v, Channel) else str(v) for v in via]


def _held(result: SendResult) -> bool:
    """The answer of a send whose key another process held to the end of the wait."""
    return (
        result.idempotent_replay and result.status is DeliveryStatus.UNKNOWN and not result.attempts
    )


def _summary(result: SendResult) -> dict[str, Any]:
    return {
        "message_id": result.message_id,
        "status": result.status.value,
        "ok": result.ok,
        "replay": result.idempotent_replay,
    }


@dataclass(frozen=True)
class AnysendTasks:
    """The tasks :func:`register` added to a Celery app, and helpers to submit work.

    Attributes:
        send: ``send(message_json, to, via)``: one send.
        send_many: ``send_many(items, via)``: a chunk of ``[message_json, to]`` pairs, sent
            with the client's ``send_many``.
        run_due: ``run_due(limit)``: run the flow steps that are due (it queues itself
            again while a whole ``limit`` was due, to drain a backlog).
    """

    send: Any
    send_many: Any
    run_due: Any

    def submit(
        self,
        message: Message,
        to: Recipient | Mapping[str, Any] | str,
        *,
        via: Sequence[Channel | str] | Channel | str | None = None,
        **options: Any,
    ) -> Any:
        """Queue one send; returns Celery's ``AsyncResult``.

        The message gets an idempotency key if it has none (what makes a redelivered task
        harmless); ``options`` go to ``apply_async`` (``countdown``, ``queue``, ...).

        Raises:
            InvalidRecipientError: ``to`` is not a recipient (nothing was queued).
        """
        args = (_with_key(message).model_dump_json(), _to_spec(to), _via(via))
        return self.send.apply_async(args=args, **options)

    def submit_many(
        self,
        items: Iterable[tuple[Message, Recipient | Mapping[str, Any] | str]],
        *,
        via: Sequence[Channel | str] | Channel | str | None = None,
        chunk: int = 500,
        **options: Any,
    ) -> list[Any]:
        """Queue many sends, ``chunk`` to a task; returns the tasks' ``AsyncResult``s.

        Items are read lazily; each message gets an idempotency key if it has none.

        Raises:
            ConfigurationError: ``chunk`` is below 1.
            InvalidRecipientError: an item's ``to`` is not a recipient (the chunks before it
                were queued).
        """
        if chunk < 1:
            raise ConfigurationError("chunk must be at least 1")
        results = []
        for part in _chunks(items, chunk):
            pairs = [[_with_key(m).model_dump_json(), _to_spec(to)] for m, to in part]
            results.append(self.send_many.apply_async(args=(pairs, _via(via)), **options))
        return results

    def schedule(self, every: float = 1.0) -> dict[str, dict[str, Any]]:
        """A ``beat_schedule`` entry running :attr:`run_due` every ``every`` seconds.

        Each run expires after ``every`` seconds, so a backlog of beats never piles up.
        """
        return {
            self.run_due.name: {
                "task": self.run_due.name,
                "schedule": every,
                "options": {"expires": every},
            }
        }


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    part: list[Any] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def register(
    app: Any,
    client_factory: ClientFactory,
    *,
    prefix: str = "anysend",
    queue: str | None = None,
    run_due_limit: int = 100,
    send_concurrency: int = 8,
    step_lease: timedelta | None = None,
) -> AnysendTasks:
    """Add anysend's tasks to a Celery app.

    Args:
        app: the ``celery.Celery`` app.
        client_factory: makes the (sync) :class:`~anysend.Client` the tasks send with; called
            once in each worker process, on its first task. Give it the deployment's store
            and ``shared=`` Redis URL.
        prefix: the tasks' names start with it (``anysend.send``, ...).
        queue: the queue the tasks are sent to (default: the app's default queue).
        run_due_limit: how many due steps one ``run_due`` task runs at most.
        send_concurrency: sends in flight at once in one ``send_many`` chunk (threads).
        step_lease: how long a worker holds the flow steps it claimed before another may
            take them (default: the engine's five minutes); longer than one batch of sends.

    Returns:
        The tasks (and helpers to submit work).

    Raises:
        ConfigurationError: an argument is out of range.
    """
    if run_due_limit < 1 or send_concurrency < 1:
        raise ConfigurationError("run_due_limit and send_concurrency must be at least 1")
    if step_lease is not None and step_lease <= timedelta(0):
        raise ConfigurationError("step_lease must be positive")
    local = _PerProcess(client_factory)
    options: dict[str, Any] = {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (),
    }
    if queue is not None:
        options["queue"] = queue

    def client() -> Client:
        return local.get()

    def claim_ttl(made: Client) -> float:
        shared = made._shared
        return shared.options.claim_ttl if shared is not None else 120.0

    def held_keys(made: Client, messages: Sequence[Message]) -> set[str]:
        shared = made._shared
        keys = [m.idempotency_key for m in messages if m.idempotency_key]
        return shared.claimed(keys) if shared is not None and keys else set()

    @app.task(name=f"{prefix}.send", **options)  # type: ignore[untyped-decorator]
    def send(
        self: Any, message_json: str, to: _To, via: list[str] | None = None, rechecks: int = 0
    ) -> dict[str, Any]:
        made = client()
        message = Message.model_validate_json(message_json)
        if rechecks < _RECHECKS and held_keys(made, [message]):
            self.apply_async(args=(message_json, to, via, rechecks + 1), countdown=claim_ttl(made))
            return {"deferred": True}
        result = made.send(message, to=_from_spec(to), via=via)
        if _held(result) and rechecks < _RECHECKS:
            self.apply_async(args=(message_json, to, via, rechecks + 1), countdown=claim_ttl(made))
            return {"deferred": True}
        return _summary(result)

    @app.task(name=f"{prefix}.send_many", **options)  # type: ignore[untyped-decorator]
    def send_many(
        self: Any, items: list[list[Any]], via: list[str] | None = None, rechecks: int = 0
    ) -> dict[str, int]:
        made = client()
        messages = [Message.model_validate_json(m) for m, _ in items]
        held = held_keys(made, messages) if rechecks < _RECHECKS else set()
        later = [items[i] for i, m in enumerate(messages) if m.idempotency_key in held]
        positions = [i for i, m in enumerate(messages) if m.idempotency_key not in held]
        sends = ((messages[i], _from_spec(items[i][1])) for i in positions)
        counts = {"sent": 0, "failed": 0, "errors": 0, "replayed": 0, "deferred": 0}
        for item in made.send_many(sends, via=via, concurrency=send_concurrency):
            if item.result is not None and _held(item.result) and rechecks < _RECHECKS:
                later.append(items[positions[item.index]])
                continue
            if item.error is not None:
                counts["errors"] += 1
            elif item.ok:
                counts["sent"] += 1
            else:
                counts["failed"] += 1
            if item.result is not None and item.result.idempotent_replay:
                counts["replayed"] += 1
        if later:
            counts["deferred"] = len(later)
            self.apply_async(args=(later, via, rechecks + 1), countdown=claim_ttl(made))
        return counts

    @app.task(name=f"{prefix}.run_due", **options)  # type: ignore[untyped-decorator]
    def run_due(self: Any, limit: int = run_due_limit) -> int:
        made = client()
        if step_lease is not None:
            made._engine().lease = step_lease
        ran = made.run_due(limit=limit)
        if ran >= limit:
            self.apply_async(kwargs={"limit": limit})  # more may be due: keep draining
        return int(ran)

    from celery.signals import worker_process_shutdown  # type: ignore[import-untyped]

    worker_process_shutdown.connect(lambda **_: local.close(), weak=False)
    return AnysendTasks(send=send, send_many=send_many, run_due=run_due)


class CeleryApp(NamedTuple):
    """What :func:`create_app` makes: the app, and anysend's tasks in it."""

    app: Any
    tasks: AnysendTasks


def create_app(
    client_factory: ClientFactory,
    *,
    broker: str = "redis://127.0.0.1:6379/0",
    name: str = "anysend",
    beat_every: float | None = 1.0,
    step_lease: timedelta | None = None,
    **settings: Any,
) -> CeleryApp:
    """A Celery app configured for anysend, with its tasks registered.

    The settings anysend relies on are set (JSON only, late acknowledgement, a task whose
    worker died is delivered again, one task prefetched per process) and the beat schedule
    runs the due flow steps every ``beat_every`` seconds (``None``: no beat entry).

    Args:
        client_factory: makes each worker process's :class:`~anysend.Client`.
        broker: the broker URL: Redis (``redis://``, the default) or RabbitMQ
            (``amqp://guest:guest@127.0.0.1:5672//``).
        name: the app's main name.
        beat_every: seconds between two ``run_due`` beats.
        step_lease: see :func:`register`.
        **settings: further Celery settings (``task_default_queue``, ``result_backend``,
            ``broker_transport_options``...), over the defaults.

    Returns:
        ``(app, tasks)``.
    """
    app = celery.Celery(name, broker=broker)
    config: dict[str, Any] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        "timezone": "UTC",
    }
    config.update(settings)
    app.conf.update(config)
    tasks = register(app, client_factory, step_lease=step_lease)
    if beat_every is not None:
        app.conf.beat_schedule = {**tasks.schedule(beat_every), **app.conf.beat_schedule}
    return CeleryApp(app, tasks)
