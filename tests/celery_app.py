"""The Celery app the worker processes of tests/test_celery.py run (``celery -A tests.celery_app``).

Configured by environment variables, set by the test for each run:

* ``ANYSEND_TEST_BROKER``: the broker URL (Redis or RabbitMQ);
* ``ANYSEND_TEST_QUEUE``: the run's own queue (runs never share one);
* ``ANYSEND_TEST_SHARED``: the ``shared=`` Redis URL, with the run's key prefix;
* ``ANYSEND_TEST_STORE``: the SQLite file (or PostgreSQL URL) every worker shares;
* ``ANYSEND_TEST_SINK``: the base URL of the test's HTTP sink;
* ``ANYSEND_TEST_RATE``: the shared rate limit of the ``limited`` tasks, per second.

Two sets of tasks: ``anysend.*`` (from ``create_app``) send through an unlimited webhook and
run the flows, ``limited.*`` send through one limited to ``ANYSEND_TEST_RATE`` a second for
every worker together. Each request names the worker process (``X-Test-Pid``).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, ClassVar

import anysend
from anysend import RateLimit
from anysend.contrib.celery import AnysendTasks, create_app, register
from anysend.providers import Capabilities
from anysend.providers.webhook import Webhook


class DedupWebhook(Webhook):
    """The test sink deduplicates on ``Idempotency-Key`` (and the message id): say so."""

    capabilities: ClassVar[Capabilities] = Webhook.capabilities.model_copy(
        update={"idempotency": True}
    )


class LimitedWebhook(DedupWebhook):
    """The same, under another name, so that it has a rate limit of its own."""

    name: ClassVar[str] = "limited-webhook"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _pid() -> dict[str, str]:
    return {"X-Test-Pid": str(os.getpid())}


def fast_client() -> anysend.Client:
    """The client of the ``anysend.*`` tasks: the sink's ``/fast`` path, no rate limit."""
    return anysend.Client(
        [DedupWebhook(url=f"{_env('ANYSEND_TEST_SINK')}/fast", headers=_pid())],
        store=_env("ANYSEND_TEST_STORE"),
        shared=_env("ANYSEND_TEST_SHARED"),
    )


def limited_client() -> anysend.Client:
    """The client of the ``limited.*`` tasks: ``/limited``, at a rate shared by all workers."""
    rate = float(_env("ANYSEND_TEST_RATE", "100"))
    return anysend.Client(
        [LimitedWebhook(url=f"{_env('ANYSEND_TEST_SINK')}/limited", headers=_pid())],
        store=_env("ANYSEND_TEST_STORE"),
        # ANYSEND_TEST_UNSHARED_LIMIT=1 keeps each process's limit to itself: the rate test
        # must then fail (a check that it can).
        shared=None if _env("ANYSEND_TEST_UNSHARED_LIMIT") else _env("ANYSEND_TEST_SHARED"),
        rate_limits={"limited-webhook": RateLimit(per_second=rate, burst=1)},
    )


def build(broker: str, queue: str) -> tuple[Any, AnysendTasks, AnysendTasks]:
    """The app on ``broker`` with its tasks routed to ``queue``: (app, anysend, limited)."""
    app, tasks = create_app(
        fast_client,
        broker=broker,
        name="anysend-test",
        beat_every=0.5,
        # The test's own step lease: a killed worker's flow steps are claimed again after it.
        step_lease=timedelta(seconds=5),
        task_default_queue=queue,
        # A killed worker's tasks come back after this (Redis); longer than any one task.
        # (kombu looks for them every unacked_restore_interval * unacked_restore_throttle s).
        broker_transport_options={
            "visibility_timeout": 10,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
    )
    return app, tasks, register(app, limited_client, prefix="limited")


app, fast, limited = build(
    _env("ANYSEND_TEST_BROKER", "redis://127.0.0.1:6379/11"),
    _env("ANYSEND_TEST_QUEUE", "anysend-test"),
)
