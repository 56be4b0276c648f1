"""The ``anysend`` command (also ``python -m anysend``).

This release has two sub-commands: ``demo`` and ``worker`` (run due flow steps and scheduled
messages); the full CLI (send, render, check, providers, webhooks, report) comes with the
``cli`` extra in a later release.
"""

from __future__ import annotations

import argparse
import sys

from anysend._version import __version__

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the sub-command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="anysend", description="One send() for every channel.")
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
    args = parser.parse_args(argv)
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
