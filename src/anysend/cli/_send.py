"""``anysend send``: one message from the options, or many from a JSON Lines or CSV file.

A file is read twice: first every row is checked and counted (so a bad row stops the command
before anything is sent, and the progress bar knows its total), then the rows stream through
``client.send_many`` with flat memory. The options give each row's defaults.

Rows (JSON Lines: one object a line; CSV: a header row):

* ``to``: the address (as ``--to``), or, in JSON, a recipient object; or recipient fields
  of their own: ``email``, ``phone``, ``id``, ``name``, ``locale``, ``timezone``,
  ``webhook_url``;
* message fields: ``text``, ``subject``, ``html``, ``template``, ``category``, ``data``
  (a JSON object; a JSON string in CSV), ``idempotency_key``;
* ``channel`` (or ``via``): the channel chain, ``email,sms`` in CSV;
* in CSV, every other column, and the recipient's columns too, go into the template's
  ``data`` (mail merge: ``{{ name }}``).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from anysend._exceptions import ConfigurationError
from anysend.cli._config import load_json, providers_from, sandbox_url
from anysend.cli._output import FAILED, out, print_json

if TYPE_CHECKING:
    from anysend import Client, Message, SendResult
    from anysend._bulk import BulkResult

__all__ = ["SendOptions", "recipient_from", "send"]

_PHONE = re.compile(r"\+?[0-9][0-9 ().\-]{3,}")
_CHANNEL_ID = re.compile(r"([a-z]+):(.+)")
_RECIPIENT_FIELDS = frozenset(
    {"email", "phone", "id", "name", "locale", "timezone", "webhook_url", "chat_ids", "push"}
)
_MESSAGE_FIELDS = frozenset(
    {"text", "subject", "html", "template", "data", "category", "idempotency_key", "sender"}
)


@dataclass
class SendOptions:
    """The options of ``anysend send``."""

    to: list[str] = field(default_factory=list)
    text: str | None = None
    subject: str | None = None
    html: str | None = None
    template: str | None = None
    data: str | None = None
    locale: str | None = None
    category: str | None = None
    channels: list[str] = field(default_factory=list)
    file: Path | None = None
    providers: list[str] = field(default_factory=list)
    templates: Path | None = None
    store: str | None = None
    sandbox: str | None = None
    region: str | None = None
    concurrency: int = 10
    progress: bool | None = None
    json: bool = False


def recipient_from(values: list[str], locale: str | None = None) -> dict[str, Any] | str:
    """A recipient from ``--to`` values: a mapping of addresses, or a profile id.

    Raises:
        ConfigurationError: no value, or a profile id mixed with addresses.
    """
    from anysend import Channel

    if not values:
        raise ConfigurationError("give --to ADDRESS (an email, a phone number, ...)")
    fields: dict[str, Any] = {}
    chat_ids: dict[str, str] = {}
    profile: str | None = None
    for raw in values:
        value = raw.strip()
        if value.startswith(("http://", "https://")):
            fields["webhook_url"] = value
        elif "@" in value and ":" not in value:
            fields["email"] = value
        elif _PHONE.fullmatch(value):
            fields["phone"] = value
        elif (match := _CHANNEL_ID.fullmatch(value)) is not None:
            name, address = match.groups()
            if name not in {c.value for c in Channel}:
                known = ", ".join(c.value for c in Channel)
                raise ConfigurationError(f"--to {value}: no channel {name!r} (channels: {known})")
            if name == "email":
                fields["email"] = address
            elif name == "sms":
                fields["phone"] = address
            else:
                chat_ids[name] = address
        else:
            profile = value
    if chat_ids:
        fields["chat_ids"] = chat_ids
    if profile is not None:
        if fields or len(values) > 1:
            raise ConfigurationError(
                f"--to {profile}: a profile id (no '@', not a phone number) cannot be mixed "
                "with other addresses"
            )
        if locale:
            raise ConfigurationError("--locale with a profile id: the profile has its own locale")
        return profile
    if locale:
        fields["locale"] = locale
    return fields


def _via(value: Any) -> list[str] | None:
    """A channel chain from a list, or a comma-separated string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigurationError("channel must be a name or a list of names")


def _message(fields: dict[str, Any]) -> Message:
    """A Message from its fields, with pydantic's complaint as a ConfigurationError."""
    from pydantic import ValidationError

    from anysend import Message

    if not any(fields.get(key) for key in ("text", "html", "template")):
        raise ConfigurationError("nothing to send: give --text, --html or --template")
    try:
        return Message(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigurationError(f"invalid message: {problems}") from None


@dataclass
class _Row:
    message: Message
    to: dict[str, Any] | str
    via: list[str] | None


class _Rows:
    """The rows of a ``--file``, each with the options as defaults."""

    def __init__(self, path: Path, options: SendOptions, data: dict[str, Any]) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".ndjson", ".csv", ".json"):
            raise ConfigurationError(
                f"--file {path}: expected a .jsonl (one JSON object a line) or .csv file"
            )
        if not path.is_file():
            raise ConfigurationError(f"--file {path}: no such file")
        self.path = path
        self.csv = suffix == ".csv"
        self.options = options
        self.data = data

    def _raw(self) -> Iterator[tuple[int, dict[str, Any]]]:
        with self.path.open(encoding="utf-8-sig", newline="") as stream:
            if self.csv:
                reader = csv.DictReader(stream)
                for row in reader:
                    yield reader.line_num, {k: v for k, v in row.items() if k is not None}
                return
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise self._error(number, f"not valid JSON ({exc})") from None
                if not isinstance(value, dict):
                    raise self._error(number, "each line must be a JSON object")
                yield number, value

    def _error(self, number: int, problem: str) -> ConfigurationError:
        return ConfigurationError(f"--file {self.path}, line {number}: {problem}")

    def _row(self, number: int, raw: dict[str, Any]) -> _Row:
        options = self.options
        raw = dict(raw)
        try:
            chain, alias = raw.pop("channel", None), raw.pop("via", None)
            chain = alias if chain in (None, "") else chain
            via = _via(chain) or (options.channels or None)
            data = dict(self.data)
            given = raw.pop("data", None)
            if isinstance(given, str) and given.strip():
                given = load_json(given, "data")
            if isinstance(given, dict):
                data.update(given)
            elif given not in (None, ""):
                raise ConfigurationError("data must be a JSON object")
            to_value = raw.pop("to", None)
            recipient: dict[str, Any] | str
            if isinstance(to_value, dict):
                recipient = dict(to_value)
            elif to_value:
                recipient = recipient_from([str(to_value)])
            else:
                recipient = {}
            message_fields: dict[str, Any] = {
                "text": options.text,
                "subject": options.subject,
                "html": options.html,
                "template": options.template,
                "category": options.category,
            }
            for key, value in raw.items():
                if value in (None, "") and self.csv:
                    continue
                if key in _MESSAGE_FIELDS:
                    message_fields[key] = value
                elif key in _RECIPIENT_FIELDS:
                    if isinstance(recipient, str):
                        raise ConfigurationError(f"{key} with a profile id in 'to'")
                    recipient[key] = value
                    if self.csv:  # mail merge: the templates see every column
                        data.setdefault(key, value)
                elif self.csv:
                    data[key] = value
                else:
                    raise ConfigurationError(
                        f"unknown field {key!r} (message: {', '.join(sorted(_MESSAGE_FIELDS))}; "
                        f"recipient: to, {', '.join(sorted(_RECIPIENT_FIELDS))}; channel)"
                    )
            if not recipient:
                raise ConfigurationError("no recipient: give 'to' (or email, phone, ...)")
            if isinstance(recipient, dict) and options.locale and "locale" not in recipient:
                recipient["locale"] = options.locale
            if data:
                message_fields["data"] = data
            return _Row(_message(message_fields), recipient, via)
        except ConfigurationError as exc:
            raise self._error(number, str(exc)) from None

    def check(self) -> int:
        """Build every row once (nothing is kept) and return how many there are."""
        count = 0
        for number, raw in self._raw():
            self._row(number, raw)
            count += 1
        if count == 0:
            raise ConfigurationError(f"--file {self.path}: no messages in it")
        return count

    def __iter__(self) -> Iterator[tuple[Message, dict[str, Any] | str]]:
        for number, raw in self._raw():
            row = self._row(number, raw)
            yield row.message, row.to

    def vias(self) -> Iterator[list[str] | None]:
        for number, raw in self._raw():
            yield self._row(number, raw).via


def _client(options: SendOptions) -> Client:
    import anysend

    providers = providers_from(options.providers)
    return anysend.Client(
        providers,
        templates=options.templates,
        store=options.store,
        default_region=options.region,
        # Every HTTP adapter's requests go to URL/PROVIDER/... (the sandbox's routes).
        sandbox=sandbox_url(options.sandbox) if options.sandbox else False,
    )


def send(options: SendOptions) -> int:
    """Run ``anysend send``; returns the exit code."""
    import contextlib
    import os

    if options.store is None:
        options.store = os.environ.get("ANYSEND_STORE") or None
    data = load_json(options.data)
    # With --json, standard output carries JSON only: what adapters print while sending (the
    # console provider) goes to standard error.
    real_stdout = sys.stdout
    quiet = contextlib.redirect_stdout(sys.stderr) if options.json else contextlib.nullcontext()
    if options.file is not None:
        if options.to:
            raise ConfigurationError("--to and --file: give the recipients in the file")
        rows = _Rows(options.file, options, data)
        total = rows.check()
        with _client(options) as client, quiet:
            return _send_file(client, rows, total, options, real_stdout)
    recipient = recipient_from(options.to, options.locale)
    message = _message(
        {
            "text": options.text,
            "subject": options.subject,
            "html": options.html,
            "template": options.template,
            "data": data or None,
            "category": options.category,
        }
    )
    with _client(options) as client, quiet:
        result = client.send(message, to=recipient, via=options.channels or None)
    _show(result, options.json)
    return 0 if result.ok else FAILED


def _show(result: SendResult, as_json: bool) -> None:
    if as_json:
        print_json(result.model_dump(mode="json", exclude={"receipt": {"raw"}}))
        return
    from rich.markup import escape
    from rich.table import Table

    console = out()
    where = " ".join(
        part
        for part in (
            result.channel.value if result.channel else None,
            f"via {result.provider}" if result.provider else None,
            f"to {result.address}" if result.address else None,
        )
        if part
    )
    mark = "[green]✓[/]" if result.ok else "[red]✗[/]"
    console.print(f"{mark} {result.status.value} {escape(where)}  [dim]{result.message_id}[/]")
    if result.scheduled_for is not None:
        console.print(f"  scheduled for {result.scheduled_for.isoformat()}")
    if not result.attempts and not result.ok:
        console.print(
            "  nothing was tried: no configured provider serves a channel the recipient has "
            "an address for (choose channels with --channel)"
        )
    elif len(result.attempts) > 1 or not result.ok:
        table = Table("channel", "provider", "outcome", "detail", box=None, pad_edge=False)
        for attempt in result.attempts:
            detail = attempt.detail or ""
            if attempt.error is not None:
                detail = f"{attempt.error.category.value}: {attempt.error.message}"
            elif attempt.skip_reason is not None:
                detail = f"{attempt.skip_reason.value}: {detail}".rstrip(": ")
            table.add_row(
                attempt.channel.value,
                attempt.provider or "-",
                attempt.outcome.value,
                escape(detail),
            )
        console.print(table)


def _item_json(item: BulkResult) -> dict[str, Any]:
    result = item.result
    return {
        "index": item.index,
        "ok": item.ok,
        "status": result.status.value if result else None,
        "channel": result.channel.value if result and result.channel else None,
        "provider": result.provider if result else None,
        "message_id": result.message_id if result else None,
        "error": (
            str(item.error)
            if item.error
            else (result.error.message if result and result.error else None)
        ),
    }


def _send_file(
    client: Client, rows: _Rows, total: int, options: SendOptions, stdout: IO[str]
) -> int:
    """Stream the rows through ``send_many`` with a progress bar; returns the exit code."""
    show_bar = options.progress if options.progress is not None else sys.stderr.isatty()
    chains = list(dict.fromkeys(tuple(v) if v else None for v in rows.vias()))
    update, close = _progress_bar(total) if show_bar else (None, _nothing)
    failures: list[dict[str, Any]] = []
    sent = 0
    try:
        if len(chains) <= 1:  # one chain for every row: one send_many
            via = chains[0] if chains else None
            results = client.send_many(
                iter(rows),
                via=list(via) if via else None,
                concurrency=options.concurrency,
                progress=update,
            )
        else:  # rows choose their own channels: one send_many per chain
            results = _per_chain(client, rows, chains, options, update)
        for item in results:
            sent += item.ok
            if options.json:
                print_json(_item_json(item), file=stdout)
            elif not item.ok and len(failures) < 20:
                failures.append(_item_json(item))
    finally:
        close()
    if not options.json:
        _summary(total, sent, failures)
    return 0 if sent == total else FAILED


def _per_chain(
    client: Client,
    rows: _Rows,
    chains: list[tuple[str, ...] | None],
    options: SendOptions,
    update: Any,
) -> Iterator[BulkResult]:
    """Rows with channels of their own: one ``send_many`` per chain, in file order."""
    import dataclasses
    from array import array

    finished = sent = 0
    for chain in chains:
        where = array("q")  # the group's items' positions in the file

        def group(
            chain: tuple[str, ...] | None = chain, where: array[int] = where
        ) -> Iterator[tuple[Message, dict[str, Any] | str]]:
            for index, (row_via, item) in enumerate(zip(rows.vias(), rows, strict=True)):
                if (tuple(row_via) if row_via else None) == chain:
                    where.append(index)
                    yield item

        results = client.send_many(
            group(), via=list(chain) if chain else None, concurrency=options.concurrency
        )
        for item in results:
            finished += 1
            sent += item.ok
            if update is not None:
                update(finished, sent)
            yield dataclasses.replace(item, index=where[item.index])


def _nothing() -> None:
    return None


def _progress_bar(total: int) -> tuple[Any, Any]:
    """A rich progress bar on standard error, and the function that closes it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[sent]} sent"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = bar.add_task("send", total=total, sent=0)
    bar.start()

    def update(finished: int, sent: int) -> None:
        bar.update(task, completed=finished, sent=sent)

    return update, bar.stop


def _summary(total: int, sent: int, failures: list[dict[str, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out()
    colour = "green" if sent == total else "red"
    console.print(f"[{colour}]{sent} of {total} sent[/], {total - sent} not sent")
    if failures:
        table = Table("row", "status", "error", box=None, pad_edge=False)
        for failure in failures:
            table.add_row(
                str(failure["index"] + 1), failure["status"] or "-", escape(failure["error"] or "")
            )
        console.print(table)
        if total - sent > len(failures):
            console.print(f"[dim]... and {total - sent - len(failures)} more[/]")
