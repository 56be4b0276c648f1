"""The typer application: every command's options, and :func:`run`, the entry point.

The command bodies live in their own modules (``_send``, ``_render``, ``_check``,
``_report``, ``_serve``) and are imported when the command runs, so ``anysend --help`` and
shell completion never load the client, the store or rich's tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from anysend._version import __version__
from anysend.cli._output import USAGE, errors

__all__ = ["app", "run"]

app = typer.Typer(
    name="anysend",
    help="One send() for every channel: email, SMS, push, chat apps and webhooks.",
    no_args_is_help=False,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
webhooks = typer.Typer(help="Receive provider callbacks (delivery statuses, replies).")
app.add_typer(webhooks, name="webhooks")

#: The sandbox a bare ``--sandbox`` points at (the contract's default).
DEFAULT_SANDBOX = "http://127.0.0.1:8780"
_AUTO = "auto"


class _SandboxCommand(TyperCommand):
    """A command whose ``--sandbox`` option takes an optional URL: ``--sandbox [URL]``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Give a bare ``--sandbox`` (last, or before another option) the default URL."""
        args = list(args)
        for index, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--sandbox" and (index + 1 == len(args) or args[index + 1].startswith("-")):
                args.insert(index + 1, _AUTO)
                break
        result: list[str] = super().parse_args(ctx, args)
        return result


def _version(value: bool) -> None:
    if value:
        typer.echo(f"anysend {__version__}")
        raise SystemExit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """One send() for every channel: email, SMS, push, chat apps and webhooks."""


# -- shared options ----------------------------------------------------------------------------

Providers = Annotated[
    list[str] | None,
    typer.Option(
        "--provider",
        "-p",
        metavar="URL",
        help="A provider URL (repeat for several, in failover order); default: $ANYSEND_PROVIDERS.",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
Store = Annotated[
    str | None,
    typer.Option(metavar="PATH", help="The SQLite store (default: $ANYSEND_STORE)."),
]
TemplatesDir = Annotated[
    Path | None,
    typer.Option(
        "--templates",
        "-T",
        metavar="DIR",
        help="A folder of templates.",
        envvar="ANYSEND_TEMPLATES",
        file_okay=False,
    ),
]
Channels = Annotated[
    list[str] | None,
    typer.Option(
        "--channel",
        "-c",
        metavar="CHANNEL",
        help="A channel to use (repeat for a fallback chain: -c email -c sms).",
    ),
]


def _sandbox_url(value: str | None) -> str | None:
    import os

    if value is None:
        return None
    if value == _AUTO:
        return os.environ.get("ANYSEND_SANDBOX_URL") or DEFAULT_SANDBOX
    return value


# -- send --------------------------------------------------------------------------------------


@app.command(cls=_SandboxCommand)
def send(
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            "-t",
            metavar="ADDRESS",
            help="Email, phone (+48600100200), CHANNEL:ID (telegram:123), URL or profile id; "
            "repeat to give one person several addresses.",
        ),
    ] = None,
    text: Annotated[str | None, typer.Option(help="The text (SMS, chat, email text).")] = None,
    subject: Annotated[str | None, typer.Option(help="The email subject.")] = None,
    html: Annotated[str | None, typer.Option(help="The email HTML part.")] = None,
    template: Annotated[
        str | None, typer.Option(metavar="NAME", help="A template name (with --templates).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(metavar="JSON", help="The template's data: a JSON object, or @file.json."),
    ] = None,
    locale: Annotated[
        str | None, typer.Option(help="The recipient's locale (pl-PL) for templates.")
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="The message category (otp, marketing, ...).")
    ] = None,
    channel: Channels = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            help="Many messages: a .jsonl or .csv file, one message per line or row.",
            dir_okay=False,
        ),
    ] = None,
    provider: Providers = None,
    templates: TemplatesDir = None,
    store: Store = None,
    sandbox: Annotated[
        str | None,
        typer.Option(
            metavar="[URL]",
            help=f"Send to a local sandbox instead of the providers (default "
            f"$ANYSEND_SANDBOX_URL or {DEFAULT_SANDBOX}).",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(metavar="CC", help="Region for phone numbers without a country code (PL)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="With --file: the most sends in flight.")
    ] = 10,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="With --file: a progress bar on standard error (default: on a terminal).",
        ),
    ] = None,
    json_: Json = False,
) -> None:
    """Send a message on any channel, or many from a file.

    Exit code 0 when everything was sent, 1 when something was not, 2 for wrong input.
    """
    from anysend.cli import _send

    with errors("send"):
        code = _send.send(
            _send.SendOptions(
                to=to or [],
                text=text,
                subject=subject,
                html=html,
                template=template,
                data=data,
                locale=locale,
                category=category,
                channels=channel or [],
                file=file,
                providers=provider or [],
                templates=templates,
                store=store,
                sandbox=_sandbox_url(sandbox),
                region=region,
                concurrency=concurrency,
                progress=progress,
                json=json_,
            )
        )
    raise typer.Exit(code)


# -- render ------------------------------------------------------------------------------------


@app.command()
def render(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The template name.")],
    templates: Annotated[
        Path,
        typer.Option(
            "--templates",
            "-T",
            metavar="DIR",
            help="The folder of templates.",
            envvar="ANYSEND_TEMPLATES",
            file_okay=False,
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(metavar="JSON", help="The template's data: a JSON object, or @file.json."),
    ] = None,
    locale: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LOCALE", help="A locale to render (repeat); default: every locale folder."
        ),
    ] = None,
    channel: Channels = None,
    json_: Json = False,
) -> None:
    """Preview a template for each channel and locale, with SMS segments and size limits."""
    from anysend.cli import _render

    with errors("render"):
        code = _render.render(
            name,
            templates=templates,
            data=data,
            locales=locale or [],
            channels=channel or [],
            json=json_,
        )
    raise typer.Exit(code)


# -- check -------------------------------------------------------------------------------------


@app.command()
def check(
    provider: Providers = None,
    templates: TemplatesDir = None,
    store: Store = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the syntax only: no network call.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds for each provider's check.")
    ] = 10.0,
    json_: Json = False,
) -> None:
    """Validate the configuration, and reach each provider's auth endpoint where it has one.

    Exit code 0 when every check passed, 1 when a provider refused or could not be reached,
    2 when the configuration itself is wrong.
    """
    from anysend.cli import _check

    with errors("check"):
        code = _check.check(
            providers=provider or [],
            templates=templates,
            store=store,
            offline=offline,
            timeout=timeout,
            json=json_,
        )
    raise typer.Exit(code)


# -- providers ---------------------------------------------------------------------------------


@app.command()
def providers(json_: Json = False) -> None:
    """List the installed provider adapters, third-party ones (entry points) included."""
    from anysend.cli import _check

    with errors("providers"):
        _check.list_providers(json=json_)


# -- worker ------------------------------------------------------------------------------------


def _positive(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> float | None:
    """A number above zero, as the worker has always taken it."""
    from anysend._worker import _positive as positive

    if value is None:
        return None
    try:
        return positive(value)
    except argparse.ArgumentTypeError as exc:
        raise typer.BadParameter(str(exc)) from None


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: str) -> str:
    if value not in _LOG_LEVELS:
        raise typer.BadParameter(
            f"invalid choice: {value!r} (choose from {', '.join(map(repr, _LOG_LEVELS))})"
        )
    return value


@app.command()
def worker(
    app_: Annotated[
        str | None,
        typer.Option("--app", metavar="MODULE:ATTR", help="A client to use: package.module:attr."),
    ] = None,
    store: Store = None,
    providers: Annotated[
        str | None,
        typer.Option(metavar="URLS", help="Provider URLs (default: $ANYSEND_PROVIDERS)."),
    ] = None,
    templates: Annotated[
        str | None, typer.Option(metavar="DIR", help="A folder of templates.")
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option("--id", help="A stable name for this worker.")
    ] = None,
    poll: Annotated[
        str,
        typer.Option(callback=_positive, metavar="SECONDS", help="Seconds between polls."),
    ] = "1.0",
    lease: Annotated[
        str,
        typer.Option(
            callback=_positive,
            metavar="SECONDS",
            help="Seconds a claim is held (longer than any one send, retries included).",
        ),
    ] = "300.0",
    once: Annotated[
        bool, typer.Option("--once", help="Run what is due now, then exit (cron, tests).")
    ] = False,
    retention_days: Annotated[
        str | None,
        typer.Option(
            callback=_positive, metavar="DAYS", help="Prune records older than this, once a day."
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            callback=_log_level,
            metavar="LEVEL",
            help="DEBUG, INFO, WARNING or ERROR (on standard error).",
        ),
    ] = "WARNING",
) -> None:
    """Run due flow steps and scheduled messages until stopped (SIGTERM, Ctrl-C).

    Exit code 0 when stopped, 2 when the configuration is wrong (nothing was run).
    """
    from anysend._worker import run as run_worker

    args = argparse.Namespace(
        app=app_,
        store=store,
        providers=providers,
        templates=templates,
        worker_id=worker_id,
        poll=poll,
        lease=lease,
        once=once,
        retention_days=retention_days,
        log_level=log_level,
    )
    raise typer.Exit(run_worker(args))


# -- webhooks serve ----------------------------------------------------------------------------


@webhooks.command("serve")
def webhooks_serve(
    provider: Providers = None,
    store: Store = None,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port.")] = 8000,
    prefix: Annotated[str, typer.Option(help="The path before the provider's name.")] = "/webhooks",
    trust_forwarded: Annotated[
        bool,
        typer.Option(
            "--trust-forwarded",
            help="Read X-Forwarded-Proto/Host (only behind a proxy you run).",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the callback receiver (POST PREFIX/PROVIDER) with uvicorn, into the store."""
    from anysend.cli import _serve

    with errors("webhooks serve"):
        code = _serve.serve_webhooks(
            providers=provider or [],
            store=store,
            host=host,
            port=port,
            prefix=prefix,
            trust_forwarded=trust_forwarded,
            log_level=log_level,
        )
    raise typer.Exit(code)


# -- report ------------------------------------------------------------------------------------


@app.command()
def report(
    store: Store = None,
    since: Annotated[
        str,
        typer.Option(help="The start: a duration back from now (7d, 12h, 30m) or an ISO date."),
    ] = "7d",
    until: Annotated[
        str | None, typer.Option(help="The end (ISO date or duration back); default: now.")
    ] = None,
    by: Annotated[
        str, typer.Option(help="Rows by channel, provider, category or flow.")
    ] = "channel",
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also write a self-contained HTML page with charts."
        ),
    ] = None,
    json_: Json = False,
) -> None:
    """The delivery funnel per channel (or provider, category, flow) from the store."""
    from anysend.cli import _report

    with errors("report"):
        _report.report(store=store, since=since, until=until, by=by, html=html, json=json_)


# -- sandbox -----------------------------------------------------------------------------------


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="The port (0: any free one).")] = 8780,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Where to send callbacks: URL/PROVIDER (e.g. http://127.0.0.1:8000/webhooks).",
        ),
    ] = None,
    smtp_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Also an SMTP server on this port (0: any)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Make random decisions reproducible.")] = None,
    latency: Annotated[float, typer.Option(min=0.0, help="Seconds before each API answer.")] = 0.0,
    failure_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of API calls answered with an error.")
    ] = 0.0,
    delivery_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds until the delivered callback.")
    ] = 1.0,
    read_probability: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Chance of a later read/opened callback.")
    ] = 0.5,
    json_: Json = False,
) -> None:
    """Run the local provider sandbox (fake Twilio, SendGrid, ... and an inbox page)."""
    from anysend.cli import _serve

    with errors("sandbox"):
        code = _serve.serve_sandbox(
            host=host,
            port=port,
            webhook_url=webhook_url,
            smtp_port=smtp_port,
            seed=seed,
            latency=latency,
            failure_rate=failure_rate,
            delivery_delay=delivery_delay,
            read_probability=read_probability,
            json=json_,
        )
    raise typer.Exit(code)


# -- demo --------------------------------------------------------------------------------------


@app.command()
def demo() -> None:
    """The back-in-stock story offline: local SMTP, a failure, fallback to SMS."""
    from anysend._demo import main as run_demo

    raise typer.Exit(run_demo())


# -- entry point -------------------------------------------------------------------------------


def _usage_error(exc: Exception) -> bool:
    """Whether ``exc`` is typer's (or click's) usage error, whichever click typer uses."""
    code = getattr(exc, "exit_code", None)
    return code == USAGE and hasattr(exc, "format_message")


def _message(exc: Any) -> str:
    """The usage error's message; a bad value reads as argparse put it (``argument --x:``)."""
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None)
    if type(exc).__name__ == "BadParameter" and opts:
        return f"argument {opts[0]}: {exc.message}"
    return str(exc.format_message())


def run(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv``; returns the exit code.

    ``--version``, ``--help`` and usage errors (exit code 2) raise ``SystemExit`` as
    argparse does; with no command at all the help is printed and the code is 2.
    """
    from typer.main import get_command

    args = sys.argv[1:] if argv is None else list(argv)
    command = get_command(app)
    if not args:
        command.main(args=["--help"], prog_name="anysend", standalone_mode=False)
        return USAGE
    try:
        result = command.main(args=args, prog_name="anysend", standalone_mode=False)
    except typer.Abort:  # end of input at a prompt
        return 1
    except Exception as exc:
        if not _usage_error(exc):
            raise
        from anysend.cli._output import err

        ctx = getattr(exc, "ctx", None)
        where = getattr(ctx, "command_path", None) or "anysend"
        from rich.markup import escape

        console = err()
        console.print(
            f"[bold red]{escape(where)}: error:[/] {escape(_message(exc))}", soft_wrap=True
        )
        console.print(f"[dim]hint: see `{escape(where)} --help`[/]", soft_wrap=True)
        raise SystemExit(USAGE) from None
    return result if isinstance(result, int) else 0
