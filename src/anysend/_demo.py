"""``anysend demo``: the back-in-stock story, offline, in a few seconds.

It starts an SMTP server on 127.0.0.1 (aiosmtpd), sends the "back in stock" notification to
three customers through the real SMTP adapter, and prints every attempt:

* Ann's email is accepted at once (her Polish locale picks the Polish template);
* Carol's mail server is busy (``451 4.3.0``): the adapter retries, and the second try goes in;
* Bob's address does not exist (``550 5.1.1``): no point retrying or trying another email
  provider, so anysend falls back to SMS, printed by the console provider.

Needs the ``demo`` extra: ``pip install "anysend[demo]"``.
"""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console as RichConsole

    from anysend import SendResult

__all__ = ["TEMPLATES", "main"]

TEMPLATES = {
    "back_in_stock/email.subject.txt": "{{ product }} is back in stock",
    "back_in_stock/email.html": (
        "<h1>Good news, {{ name }}!</h1>"
        "<p><b>{{ product }}</b> in size {{ size }} is back. "
        '<a href="https://shop.example/p/{{ sku }}">Get it before it is gone</a>.</p>'
    ),
    "back_in_stock/sms.txt": "{{ product }} ({{ size }}) is back: https://shop.example/p/{{ sku }}",
    "back_in_stock/pl/email.subject.txt": "{{ product }} znowu w sklepie",
    "back_in_stock/pl/email.html": (
        "<h1>Dobra wiadomość, {{ name }}!</h1>"
        "<p><b>{{ product }}</b> w rozmiarze {{ size }} znowu jest dostępny. "
        '<a href="https://shop.example/p/{{ sku }}">Kup teraz</a>.</p>'
    ),
    "back_in_stock/pl/sms.txt": (
        "{{ product }} ({{ size }}) znowu jest: https://shop.example/p/{{ sku }}"
    ),
}

CUSTOMERS = [
    ("Ann", {"email": "ann@example.com", "phone": "+48 600 700 800", "locale": "pl"}),
    ("Carol", {"email": "carol@busy.example", "phone": "+48 600 700 802", "locale": "en"}),
    ("Bob", {"email": "bob@bounce.example", "phone": "+48 600 700 801", "locale": "en"}),
]


class _DemoHandler:
    """An aiosmtpd handler: keeps what it receives, refuses bounce.example, busy once."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._busy_seen: set[str] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        domain = address.rsplit("@", 1)[-1]
        if domain == "bounce.example":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if domain == "busy.example" and address not in self._busy_seen:
            self._busy_seen.add(address)
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content or envelope.content)
        return "250 2.0.0 Ok: queued"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _smtp_server() -> Iterator[tuple[int, _DemoHandler]]:
    from aiosmtpd.controller import Controller

    handler = _DemoHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def _missing_extra(module: str) -> int:
    print(
        f'anysend demo needs {module}: pip install "anysend[demo]"',
        file=sys.stderr,
    )
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    try:
        import aiosmtpd  # noqa: F401
        import rich  # noqa: F401
    except ImportError as exc:
        return _missing_extra(exc.name or "its extra")

    from rich.console import Console as RichConsole

    import anysend
    from anysend.providers.console import Console
    from anysend.providers.smtp import SMTP

    out = RichConsole(highlight=False)
    sms_screen = io.StringIO()
    out.rule("[bold]anysend demo: back in stock")
    with _smtp_server() as (port, server):
        out.print(f"A local mail server is listening on 127.0.0.1:{port}.\n")
        providers = [
            SMTP(host="127.0.0.1", port=port, security="none", sender="shop@anysend.example"),
            Console(channels=frozenset({anysend.Channel.SMS}), stream=sms_screen),
        ]
        retry = anysend.RetryPolicy(initial_backoff=0.2, jitter=0.5)
        results: list[tuple[str, SendResult]] = []
        with anysend.Client(providers, templates=TEMPLATES, retry=retry) as client:
            for name, fields in CUSTOMERS:
                message = anysend.Message(
                    template="back_in_stock",
                    data={"name": name, "product": "Sneakers", "size": "42", "sku": "SN-42"},
                    category="transactional",
                )
                result = client.send(message, to=fields, via=["email", "sms"])
                results.append((name, result))
        _print_attempts(out, results)
        _print_inbox(out, server.received)
    out.print("[bold]SMS the console provider printed:[/bold]")
    out.print(sms_screen.getvalue().rstrip() or "(none)")
    out.rule()
    delivered = sum(result.ok for _, result in results)
    out.print(f"{delivered} of {len(results)} customers reached. See docs/getting-started.md.")
    return 0 if delivered == len(results) else 1


def _print_attempts(out: RichConsole, results: list[tuple[str, SendResult]]) -> None:
    from rich.table import Table

    table = Table(title="Every attempt", title_justify="left")
    for column in ("customer", "channel", "provider", "try", "outcome", "detail", "ms"):
        table.add_column(column, justify="right" if column in ("try", "ms") else "left")
    for name, result in results:
        for attempt in result.attempts:
            error = attempt.error
            if error is not None:
                reply = " ".join(str(p) for p in (error.status_code, error.code) if p)
                detail = f"{error.category.value} ({reply})" if reply else error.category.value
            elif attempt.skip_reason is not None:
                detail = f"skipped: {attempt.detail}"
            else:
                detail = "accepted"
            style = {"sent": "green", "failed": "red"}.get(attempt.outcome.value, "yellow")
            table.add_row(
                name,
                attempt.channel.value,
                attempt.provider or "-",
                str(attempt.number),
                f"[{style}]{attempt.outcome.value}[/{style}]",
                detail,
                f"{attempt.duration * 1000:.0f}",
            )
        table.add_section()
    out.print(table)
    for name, result in results:
        where = f"{result.channel.value} via {result.provider}" if result.channel else "nowhere"
        out.print(f"  {name}: {result.status.value} ({where})")
    out.print()


def _print_inbox(out: RichConsole, received: list[bytes]) -> None:
    out.print(f"[bold]The mail server received {len(received)} email(s):[/bold]")
    for raw in received:
        mail = message_from_bytes(raw, policy=policy.default)
        text_part = mail.get_body(preferencelist=("plain",))
        text = text_part.get_content().strip() if text_part is not None else ""
        out.print(f"  To: {mail['To']}  Subject: {mail['Subject']}")
        out.print("    " + text.replace("\n", "\n    "))
    out.print()
