"""The ``anysend`` command (also ``python -m anysend``).

The command line is a typer application (:mod:`anysend.cli`) that comes with the ``cli``
extra (``pip install "anysend[cli]"``): ``send``, ``render``, ``check``, ``providers``,
``worker``, ``webhooks serve``, ``report``, ``sandbox`` and ``demo``.

Without that extra, ``anysend worker`` and ``anysend demo`` still work (a worker in a slim
container needs no command-line library), and every other command says what to install.
"""

from __future__ import annotations

import argparse
import sys

from anysend._version import __version__

__all__ = ["main"]

_INSTALL = 'pip install "anysend[cli]"'


def main(argv: list[str] | None = None) -> int:
    """Run the ``anysend`` command with ``argv`` (the process's arguments by default).

    Returns:
        The exit code: 0 on success, 1 when something failed (a send, a check), 2 for a
        wrong command line or configuration. ``--version``, ``--help`` and usage errors
        raise ``SystemExit``, as argparse does.
    """
    try:
        from anysend.cli import run
    except ImportError as exc:  # typer or rich is missing: the cli extra is not installed
        return _without_cli(argv, exc)
    return run(argv)


def _without_cli(argv: list[str] | None, exc: ImportError) -> int:
    """The two commands that need no extra (``worker``, ``demo``), through argparse."""
    parser = argparse.ArgumentParser(
        prog="anysend",
        description="One send() for every channel. The full command line (send, render, "
        f"check, providers, webhooks, report, sandbox) needs the cli extra: {_INSTALL}",
    )
    parser.add_argument("--version", action="version", version=f"anysend {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="the back-in-stock story offline: local SMTP, a failure, fallback to SMS",
        description="Send the back-in-stock notification through a local SMTP server and "
        "the console provider, and print every attempt. Needs anysend[demo].",
    )
    from anysend._worker import add_arguments

    add_arguments(
        commands.add_parser(
            "worker",
            help="run due flow steps and scheduled messages until stopped",
            description="Claim and run due flow steps and scheduled messages from the store; "
            "several workers may share one store.",
        )
    )
    args_list = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in args_list if not a.startswith("-")), None)
    if first is not None and first not in ("worker", "demo"):
        missing = exc.name or "typer"
        print(
            f"anysend {first}: the command line needs {missing}, which is not installed: "
            f"{_INSTALL}",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(args_list)
    if args.command == "worker":
        from anysend._worker import run

        return run(args)
    if args.command == "demo":
        from anysend._demo import main as demo

        return demo()
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
