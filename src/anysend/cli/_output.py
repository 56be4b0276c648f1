"""What the commands print: rich consoles, JSON for scripts, and errors as one red line.

Every command runs its work inside :func:`errors`: an anysend error becomes one red line on
standard error (``anysend send: error: ...``), a dim hint line when there is something to
try, and an exit code (2 for wrong input or configuration, 1 for a failure at run time),
never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["err", "errors", "fail", "out", "print_json"]

#: Exit codes: 1 for a failure at run time (a send, a check), 2 for wrong input.
FAILED = 1
USAGE = 2


def out() -> Console:
    """A rich console on standard output (read at each call: tests swap the streams)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def err() -> Console:
    """A rich console on standard error."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(data: Any, file: IO[str] | None = None) -> None:
    """Print ``data`` as one line of JSON on standard output (for scripts and ``jq``)."""
    typer.echo(json.dumps(data, ensure_ascii=False, default=str), file=file)


def fail(command: str, message: str, hint: str | None = None, code: int = USAGE) -> NoReturn:
    """Print the error line (and the hint) on standard error and exit with ``code``."""
    from rich.markup import escape

    console = err()
    console.print(f"[bold red]anysend {command}: error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        console.print(f"[dim]hint: {escape(hint)}[/]", soft_wrap=True)
    raise typer.Exit(code)


def _hint(command: str, exc: Exception) -> tuple[str | None, int]:
    """The hint and the exit code for an anysend error raised by ``command``."""
    import anysend

    if isinstance(exc, anysend.ConfigurationError):
        if command in ("check", "render", "report"):
            return f"see `anysend {command} --help`", USAGE
        return "run `anysend check` to validate the configuration", USAGE
    if isinstance(exc, anysend.TemplateError):
        if command == "render":
            return "give the variables the template uses with --data '{\"name\": ...}'", USAGE
        return (
            "preview the template with `anysend render NAME --templates DIR --data JSON`",
            USAGE,
        )
    if isinstance(exc, anysend.InvalidRecipientError):
        return (
            "--to takes an email, a phone number in E.164 (+48600100200), CHANNEL:ID "
            "(telegram:12345), a URL (webhook) or a profile id (with --store)",
            USAGE,
        )
    if isinstance(exc, (anysend.ContentError, anysend.UnsupportedFeatureError)):
        return None, USAGE
    return None, FAILED


@contextmanager
def errors(command: str) -> Iterator[None]:
    """Turn an anysend error raised inside into the error line and exit code."""
    import anysend

    try:
        yield
    except anysend.AnysendError as exc:
        hint, code = _hint(command, exc)
        fail(command, str(exc) or type(exc).__name__, hint, code)
    except KeyboardInterrupt:
        err().print("[dim]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as exc:
        import sqlite3

        if not isinstance(exc, sqlite3.Error):
            raise
        fail(command, f"the store cannot be used: {exc}", "check --store or ANYSEND_STORE")
