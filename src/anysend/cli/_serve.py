"""The long-running commands: ``anysend webhooks serve`` and ``anysend sandbox``.

``webhooks serve`` runs :class:`anysend.asgi.WebhookApp` under uvicorn with an
``AsyncClient`` on the store, so a provider's callbacks (``POST {prefix}/{provider}``) are
verified and stored. ``sandbox`` runs :func:`anysend.sandbox.serve` until it is stopped
(Ctrl-C or SIGTERM) and prints the environment variables that point a client (or
``anysend send``) at it.
"""

from __future__ import annotations

import shlex
import signal
import sys
from typing import Any

from anysend._exceptions import ConfigurationError
from anysend.cli._config import providers_from, store_from
from anysend.cli._output import err, out, print_json

__all__ = ["serve_sandbox", "serve_webhooks"]


def serve_webhooks(
    *,
    providers: list[str],
    store: str | None,
    host: str,
    port: int,
    prefix: str,
    trust_forwarded: bool,
    log_level: str,
) -> int:
    """Run ``anysend webhooks serve`` until stopped; returns the exit code."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigurationError(
            'webhooks serve needs uvicorn: pip install "anysend[cli]"'
        ) from None
    import anysend
    from anysend.asgi import WebhookApp

    path = store_from(store)
    adapters = providers_from(providers)
    # Open (and create or migrate) the store now: a wrong path is an error line at start,
    # not a 500 on every callback.
    opened = anysend.SQLiteStore(path or ":memory:")
    try:
        opened.schema_version  # noqa: B018 - reading it opens the file
    finally:
        opened.close()
    client = anysend.AsyncClient(adapters, store=path)
    app = WebhookApp(
        client, prefix=prefix, trust_forwarded=trust_forwarded, close_client_on_shutdown=True
    )
    names = ", ".join(sorted(client.providers))
    err().print(
        f"anysend webhooks: {app.prefix}/{{provider}} for {names}, into the store {path}",
        soft_wrap=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")
    return 0


def serve_sandbox(
    *,
    host: str,
    port: int,
    webhook_url: str | None,
    smtp_port: int | None,
    seed: int | None,
    latency: float,
    failure_rate: float,
    delivery_delay: float,
    read_probability: float,
    json: bool,
) -> int:
    """Run ``anysend sandbox`` until stopped (Ctrl-C or SIGTERM); returns the exit code."""
    try:
        from anysend.sandbox import serve
    except ImportError as exc:
        raise ConfigurationError(
            f'the sandbox needs {exc.name or "its extra"}: pip install "anysend[sandbox]"'
        ) from None

    def ready(sandbox: Any) -> None:
        env = dict(sandbox.env())
        if json:
            print_json({"url": sandbox.url, "smtp_port": sandbox.smtp_port, "env": env})
        else:
            console = out()
            console.print(f"[bold]anysend sandbox[/] on {sandbox.url} (open it: the inbox)")
            if sandbox.smtp_port is not None:
                console.print(f"SMTP on {host}:{sandbox.smtp_port}")
            console.print("Point your app or `anysend send` at it (Ctrl-C stops it):\n")
            for name, value in sorted(env.items()):
                console.print(f"export {name}={shlex.quote(value)}", soft_wrap=True, markup=False)
        sys.stdout.flush()

    # SIGTERM (docker stop, systemd) stops it as Ctrl-C does: serve() shuts down cleanly.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve(
            host,
            port,
            webhook_url=webhook_url,
            smtp_port=smtp_port,
            seed=seed,
            latency=latency,
            failure_rate=failure_rate,
            delivery_delay=delivery_delay,
            read_probability=read_probability,
            ready=ready,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
