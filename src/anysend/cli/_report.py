"""``anysend report``: the delivery funnel from the store, as a table, JSON or an HTML page.

The numbers are ``client.report(since=..., until=..., by=...)`` (see the reports guide).
``--html FILE`` writes one self-contained page: the table and a funnel chart per row drawn as
inline SVG, with no script, font or stylesheet from anywhere else, so the file can be mailed
or attached to a ticket as it is.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anysend._exceptions import ConfigurationError
from anysend.cli._config import existing_store
from anysend.cli._output import out, print_json

if TYPE_CHECKING:
    from anysend import Report, ReportRow

__all__ = ["html_page", "parse_when", "report"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_BY = ("channel", "provider", "category", "flow")
#: The funnel's steps: (field, label, colour).
FUNNEL = (
    ("messages", "messages", "#94a3b8"),
    ("sent", "sent", "#60a5fa"),
    ("delivered", "delivered", "#34d399"),
    ("opened", "opened", "#a78bfa"),
    ("clicked", "clicked", "#f472b6"),
    ("failed", "failed", "#f87171"),
    ("skipped", "skipped", "#fbbf24"),
)
#: The table's columns: (ReportRow field or rate, short header).
_COLUMNS = (
    ("messages", "msgs"),
    ("sent", "sent"),
    ("delivered", "deliv"),
    ("read", "read"),
    ("opened", "open"),
    ("clicked", "click"),
    ("failed", "fail"),
    ("skipped", "skip"),
    ("unknown", "unkn"),
    ("delivery_rate", "deliv%"),
    ("open_rate", "open%"),
    ("click_rate", "click%"),
    ("failure_rate", "bounce%"),
)
_RATES = ("delivery_rate", "read_rate", "open_rate", "click_rate", "failure_rate")


def parse_when(text: str, now: datetime, what: str) -> datetime:
    """A time from a duration back from ``now`` (``7d``, ``12h``, ``30m``) or an ISO date.

    Raises:
        ConfigurationError: the text is neither.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is not None:
        amount, unit = match.groups()
        return now - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"{what} {text!r}: give a duration back from now (7d, 12h, 30m) or an ISO date "
            "(2026-11-01 or 2026-11-01T09:00+01:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _row_json(row: ReportRow) -> dict[str, Any]:
    data: dict[str, Any] = row.model_dump(mode="json")
    data.update({name: getattr(row, name) for name in _RATES})
    return data


def report(
    *, store: str | None, since: str, until: str | None, by: str, html: Path | None, json: bool
) -> None:
    """Run ``anysend report``."""
    import anysend

    if by not in _BY:
        raise ConfigurationError(f"--by {by!r}: give one of {', '.join(_BY)}")
    now = datetime.now(timezone.utc)
    start = parse_when(since, now, "--since")
    end = parse_when(until, now, "--until") if until else None
    if end is not None and end <= start:
        raise ConfigurationError("--until must be after --since")
    path = existing_store(store)
    try:
        with anysend.Client(store=path) as client:
            result = client.report(since=start, until=end, by=by)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigurationError(f"cannot read the store {path!r}: {exc}") from exc
    if html is not None:
        try:
            html.write_text(html_page(result), encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"--html {html}: cannot write it: {exc.strerror}") from exc
    if json:
        print_json(
            {
                "since": result.since.isoformat(),
                "until": result.until.isoformat(),
                "by": result.by,
                "rows": [_row_json(r) for r in result.rows],
                "total": _row_json(result.total),
                "html": str(html) if html is not None else None,
            }
        )
        return
    _print(result, html)


def _print(result: Report, html: Path | None) -> None:
    from rich import box
    from rich.markup import escape as markup
    from rich.table import Table

    console = out()
    title = f"by {result.by}, {result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} UTC"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    rows = (*result.rows, result.total)
    # Read receipts and unknown outcomes are rare: their columns only when there are some.
    columns = [
        (name, short)
        for name, short in _COLUMNS
        if name not in ("read", "unknown") or any(getattr(r, name) for r in rows)
    ]
    table.add_column(result.by, no_wrap=True, min_width=len(result.by))
    for _, short in columns:
        table.add_column(short, justify="right", no_wrap=True, min_width=len(short))

    def add(row: ReportRow, label: str, style: str | None = None) -> None:
        values = []
        for name, _ in columns:
            value = getattr(row, name)
            if name.endswith("_rate"):
                values.append(_pct(value))
            elif name == "failed" and value:
                values.append(f"[red]{value}[/]")
            else:
                values.append(str(value))
        table.add_row(markup(label), *values, style=style)

    for row in result.rows:
        add(row, row.key or "(none)")
    add(result.total, "total", style="bold")
    console.print(table)
    if result.total.failure_reasons:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.total.failure_reasons.items()))
        console.print(f"failure reasons: {markup(reasons)}")
    if html is not None:
        console.print(f"[dim]wrote {markup(str(html))}[/]")


# -- the HTML page -----------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;
color:#0f172a;background:#f8fafc}
h1{font-size:1.4rem;margin:0 0 .2rem}
p.period{color:#475569;margin:0 0 1.5rem}
table{border-collapse:collapse;margin:1rem 0 2rem;background:#fff}
th,td{padding:.35rem .7rem;border-bottom:1px solid #e2e8f0;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.total td{font-weight:600;border-top:2px solid #94a3b8}
section.chart{display:inline-block;vertical-align:top;margin:0 1.5rem 1.5rem 0;
background:#fff;padding:.8rem 1rem;border:1px solid #e2e8f0;border-radius:6px}
section.chart h2{font-size:1rem;margin:0 0 .4rem}
svg text{font:12px system-ui,sans-serif;fill:#0f172a}
"""


def _funnel_svg(row: ReportRow, label: str) -> str:
    """One row's funnel as horizontal bars, scaled to its own message count."""
    width, bar_x, bar_w, step = 420, 78, 260, 24
    height = step * len(FUNNEL) + 8
    top = max(row.messages, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)} funnel">'
    ]
    for index, (name, text, colour) in enumerate(FUNNEL):
        value = int(getattr(row, name))
        y = 4 + index * step
        w = round(bar_w * value / top, 1)
        share = (
            f"{value / row.sent:.0%} of sent"
            if row.sent and name in ("delivered", "opened", "clicked")
            else ""
        )
        parts.append(f'<text x="0" y="{y + 15}">{text}</text>')
        parts.append(
            f'<rect x="{bar_x}" y="{y + 3}" width="{w}" height="16" rx="2" fill="{colour}">'
            f"<title>{text}: {value}</title></rect>"
        )
        parts.append(
            f'<text x="{bar_x + w + 6}" y="{y + 15}">{value}'
            + (f' <tspan fill="#64748b">({share})</tspan>' if share else "")
            + "</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def html_page(result: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, nothing fetched)."""
    from anysend._version import __version__

    headers = [
        result.by,
        "messages",
        "sent",
        "delivered",
        "read",
        "opened",
        "clicked",
        "failed",
        "skipped",
        "unknown",
        "delivered %",
        "opened %",
        "clicked %",
        "bounced %",
    ]

    def cells(row: ReportRow) -> str:
        values = [
            row.messages,
            row.sent,
            row.delivered,
            row.read,
            row.opened,
            row.clicked,
            row.failed,
            row.skipped,
            row.unknown,
            _pct(row.delivery_rate),
            _pct(row.open_rate),
            _pct(row.click_rate),
            _pct(row.failure_rate),
        ]
        return "".join(f"<td>{escape(str(v))}</td>" for v in values)

    body_rows = "".join(
        f"<tr><td>{escape(row.key or '(none)')}</td>{cells(row)}</tr>" for row in result.rows
    )
    body_rows += f'<tr class="total"><td>total</td>{cells(result.total)}</tr>'
    labelled = [(row, row.key or "(none)") for row in result.rows]
    labelled.append((result.total, "total"))
    charts = "".join(
        f'<section class="chart"><h2>{escape(label)}</h2>{_funnel_svg(row, label)}</section>'
        for row, label in labelled
    )
    reasons = ""
    if result.total.failure_reasons:
        items = "".join(
            f"<li>{escape(k)}: {v}</li>" for k, v in sorted(result.total.failure_reasons.items())
        )
        reasons = f"<h2>Failure reasons</h2><ul>{items}</ul>"
    period = (
        f"{result.since:%Y-%m-%d %H:%M} to {result.until:%Y-%m-%d %H:%M} UTC, "
        f"by {escape(result.by)}"
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>anysend report: {period}</title><style>{_CSS}</style></head>"
        f'<body><h1>Delivery report</h1><p class="period">{period}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table>"
        f"{charts}{reasons}"
        f'<p class="period">made by anysend {escape(__version__)}</p></body></html>\n'
    )
