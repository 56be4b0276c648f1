"""``anysend worker``: run due flow steps and scheduled messages until stopped.

The worker builds a sync :class:`~anysend.Client` either from an application's own factory
(``--app package.module:attribute``, a client or a callable returning one: the way to give it
templates and policies) or from the command line and environment (``--providers`` or
``ANYSEND_PROVIDERS``, ``--store`` or ``ANYSEND_STORE``, ``--templates``). ``SIGTERM`` and
``SIGINT`` stop it after the step in hand.

Give each worker a stable ``--id`` (a pod or host name) where you can: a worker restarted
with the same id takes back at once the steps it held when it died; otherwise they wait for
their lease (five minutes) to run out. Never run two workers with the same id at once: each
takes back what the other holds.

Exit codes: 0 when stopped (a signal, or ``--once`` with nothing left due), 2 when the
configuration is wrong (nothing was run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sqlite3
import sys
from datetime import timedelta
from types import FrameType
from typing import Any

__all__ = ["add_arguments", "run"]


def _positive(text: str) -> float:
    """A number above zero (argparse exits 2 with the message otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's command-line options."""
    parser.add_argument("--app", help="a client to use, as package.module:attribute")
    parser.add_argument(
        "--store", help="the store: a SQLite file or a postgresql:// URL (default: $ANYSEND_STORE)"
    )
    parser.add_argument("--providers", help="provider URLs (default: $ANYSEND_PROVIDERS)")
    parser.add_argument("--templates", help="a folder of templates")
    parser.add_argument("--id", dest="worker_id", help="a stable name for this worker")
    parser.add_argument("--poll", type=_positive, default=1.0, help="seconds between polls")
    parser.add_argument(
        "--lease",
        type=_positive,
        default=300.0,
        help="seconds a claim is held (longer than any one send, retries included)",
    )
    parser.add_argument(
        "--once", action="store_true", help="run what is due now, then exit (cron, tests)"
    )
    parser.add_argument(
        "--retention-days", type=_positive, help="prune records older than this, once a day"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="what the worker logs to standard error (default WARNING; INFO tells each start, "
        "claim taken back and pruning)",
    )


def _client(args: argparse.Namespace) -> Any:
    import anysend

    if args.app:
        given = [f"--{name}" for name in ("store", "providers", "templates") if getattr(args, name)]
        if given:
            raise anysend.ConfigurationError(
                f"--app gives the client: leave out {', '.join(given)} (configure them in the app)"
            )
        module_name, _, attribute = args.app.partition(":")
        # The app's package is found from the current directory, as with ``python -m``, also
        # when the worker starts from the ``anysend`` script (whose own folder is on the path).
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            target: Any = importlib.import_module(module_name)
        except (ImportError, ValueError) as exc:
            raise anysend.ConfigurationError(
                f"--app {args.app}: cannot import {module_name!r}: {exc}"
            ) from exc
        for part in (attribute or "client").split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise anysend.ConfigurationError(
                    f"--app {args.app}: {module_name!r} has no attribute {attribute or part!r}"
                ) from None
        client = target() if callable(target) and not isinstance(target, anysend.Client) else target
        if isinstance(client, anysend.AsyncClient):
            raise anysend.ConfigurationError(
                f"{args.app} is an AsyncClient: the worker needs an anysend.Client"
            )
        if not isinstance(client, anysend.Client):
            raise anysend.ConfigurationError(f"{args.app} is not an anysend.Client")
        if client.store is None:
            raise anysend.ConfigurationError(f"{args.app} has no store: the worker needs one")
        return client
    store = args.store or os.environ.get("ANYSEND_STORE")
    if not store:
        raise anysend.ConfigurationError("give --store PATH or set ANYSEND_STORE")
    if args.providers:
        return anysend.Client(args.providers, store=store, templates=args.templates)
    if not os.environ.get("ANYSEND_PROVIDERS"):
        raise anysend.ConfigurationError("give --providers URLS or set ANYSEND_PROVIDERS")
    # From the environment, with every ANYSEND_<NAME>_<FIELD> setting (secrets included).
    return anysend.Client.from_env(store=store, templates=args.templates)


def run(args: argparse.Namespace) -> int:
    """Run the worker; returns the exit code."""
    import logging

    import anysend
    from anysend._logging import logger

    if not logging.getLogger().handlers and not logger.handlers:
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logger.setLevel(getattr(args, "log_level", "WARNING"))
    try:
        client = _client(args)
    except anysend.AnysendError as exc:
        print(f"anysend worker: {exc}", file=sys.stderr)
        return 2
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with client:
            try:
                # Open (and migrate) the store now: a bad path or a store written by a newer
                # anysend is a configuration error, not a crash in the middle of the loop.
                client.store.next_due()
            except (anysend.AnysendError, sqlite3.Error, OSError) as exc:
                print(
                    f"anysend worker: cannot open the store {client.store!r}: {exc}",
                    file=sys.stderr,
                )
                return 2
            engine = client._engine()
            if args.worker_id:
                engine.worker = args.worker_id
            engine.lease = timedelta(seconds=args.lease)
            retention = (
                timedelta(days=args.retention_days) if args.retention_days is not None else None
            )
            logger.info("worker %s started on %r", engine.worker, client.store)
            print(f"anysend worker: {engine.worker} running", file=sys.stderr, flush=True)
            ran = engine.work(
                poll=args.poll,
                once=args.once,
                should_stop=lambda: stopping,
                retention=retention,
            )
            print(f"anysend worker: {ran} step(s) run", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
