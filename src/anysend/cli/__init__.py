"""The ``anysend`` command line: a typer application (``pip install "anysend[cli]"``).

Commands: ``send``, ``render``, ``check``, ``providers``, ``worker``, ``webhooks serve``,
``report``, ``sandbox`` and ``demo`` (see ``docs/cli.md``). :func:`run` is what the
``anysend`` script and ``python -m anysend`` call; :data:`app` is the typer application, for
``typer.testing.CliRunner`` and for embedding.

Start-up stays light: this package imports typer and the command definitions only; each
command imports what it needs (the client, the store, rich tables, uvicorn) when it runs.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("rich") is None:  # checked without importing it (start-up time)
    raise ImportError("the anysend command line needs rich", name="rich")

from anysend.cli._app import app, run

__all__ = ["app", "run"]
