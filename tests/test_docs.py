"""The documentation is tested: every Python example runs, and the vocabulary pages are complete.

Each page's ```python blocks (``docs/**/*.md`` and ``README.md``) run in order in one shared
namespace, like a doctest session, in a temporary working directory, with every connection
to a host other than the local machine refused (examples use Console, MemoryProvider or
respx). A ```text block that directly follows a python block is its expected standard
output; ``...`` or ``…`` in it stands for any text (ids, for instance). Fences in other
languages (toml, bash) are not run. A page whose examples define a ``ProviderContract``
subclass also gets that contract kit run, as pytest would run it.

The provider pages are checked against the code too: every built-in adapter has a page with
the same five sections, every settings field is on it, every error-mapping dict of its module
is rendered there by the ``docs/_ext/anysend_tables.py`` hook (never copied by hand), and the
few hand-written tables (SMTP's stage rules and failures without a reply) agree with what the
code returns for each row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import importlib.util
import io
import re
import smtplib
import socket
import ssl
import sys
import textwrap
import types
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import anysend
from anysend import ErrorCategory, ProviderError
from anysend.providers import Provider, available, load
from anysend.providers.smtp import SMTP, ComposedEmail, category_for_reply
from anysend.testing.contract import ProviderContract

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


PYTHON = frozenset({"python", "py"})


@dataclass(frozen=True)
class Block:
    """One fenced code block: language, code, first code line and closing-fence line (1-based).

    ``output`` is the expected standard output of a python block (see the module docstring).
    """

    language: str
    code: str
    line: int
    end: int
    output: str | None = None


def code_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, indented ones (admonitions, tabs) included."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip().lstrip("{").strip()
        language = info.split()[0].lstrip(".").lower() if info else ""
        body: list[str] = []
        index += 1
        start = index + 1  # 1-based line number of the first code line
        while index < len(lines):
            line = lines[index]
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1
        code = textwrap.dedent("\n".join(body)) + "\n"
        blocks.append(Block(language, code, start, end=index))
    return blocks


def python_examples(text: str) -> list[Block]:
    """The python blocks of a Markdown text, in order, each with its expected output."""
    blocks = code_blocks(text)
    lines = text.splitlines()
    examples: list[Block] = []
    for position, block in enumerate(blocks):
        if block.language not in PYTHON:
            continue
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if (
            following is not None
            and following.language == "text"
            and not "".join(lines[block.end : following.line - 2]).strip()
        ):
            block = dataclasses.replace(block, output=following.code)
        examples.append(block)
    return examples


def python_blocks(page: Path) -> list[Block]:
    """The python blocks of ``page``, in order, each with its expected output."""
    return python_examples(page.read_text("utf-8"))


def output_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` output fits ``expected``, where ``...`` or ``…`` match any text."""

    def tidy(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

    pattern = ".*?".join(re.escape(part) for part in re.split(r"\.\.\.|…", tidy(expected)))
    return re.fullmatch(pattern, tidy(actual), re.DOTALL) is not None


def page_id(page: Path) -> str:
    """A page's path relative to the repository root, as the test id."""
    return page.relative_to(ROOT).as_posix()


def example_pages() -> list[Path]:
    """The documentation pages (and README.md, when present) that have python examples."""
    pages = sorted(DOCS.rglob("*.md"))
    if (ROOT / "README.md").exists():
        pages.append(ROOT / "README.md")
    return [page for page in pages if python_blocks(page)]


def _refuse_remote(address: object) -> None:
    """Raise for a socket address that is not on this machine."""
    if isinstance(address, (str, bytes)):  # an AF_UNIX path
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not (isinstance(host, str) and host.lower() in LOCAL_HOSTS):
        raise AssertionError(f"a documentation example tried to use the network: {address!r}")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every socket connection to a host other than the local machine."""
    real_connect = socket.socket.connect
    real_create_connection = socket.create_connection

    def connect(sock: socket.socket, address: Any) -> None:
        _refuse_remote(address)
        real_connect(sock, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        _refuse_remote(address)
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)


def run_contracts(namespace: dict[str, Any]) -> None:
    """Run the test methods of every ProviderContract subclass an example defined."""
    for value in list(namespace.values()):
        if not (
            isinstance(value, type)
            and issubclass(value, ProviderContract)
            and value is not ProviderContract
            and value.__name__.startswith("Test")
        ):
            continue
        for name in sorted(dir(value)):
            if not name.startswith("test_"):
                continue
            try:
                getattr(value(), name)()
            except pytest.skip.Exception:
                continue


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("page", example_pages(), ids=page_id)
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every python block of the page runs, in order, in one namespace, without the network."""
    monkeypatch.chdir(tmp_path)
    # A real module, so that pydantic can resolve the annotations of models an example defines.
    module = types.ModuleType("anysend_docs_" + re.sub(r"\W", "_", page_id(page)))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in python_blocks(page):
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            exec(code, module.__dict__)  # noqa: S102 - running the documentation is the point
        if block.output is not None:
            assert output_matches(block.output, stdout.getvalue()), (
                f"{page_id(page)}, the example at line {block.line} printed:\n"
                f"{stdout.getvalue()}\nbut the page shows:\n{block.output}"
            )
    run_contracts(module.__dict__)
    capsys.readouterr()


def test_code_blocks_are_found_in_admonitions() -> None:
    """The block finder sees indented fences, keeps line numbers and pairs outputs."""
    text = "# T\n\n```python\nprint(1)\n```\n\n```text\n1\n```\n\n!!! note\n\n"
    text += "    ```python\n    b = 2\n    ```\n\nSee:\n\n```text\nnot an output\n```\n"
    blocks = code_blocks(text)
    assert [(b.language, b.line) for b in blocks] == [
        ("python", 4),
        ("text", 8),
        ("python", 14),
        ("text", 20),
    ]
    assert [(b.code, b.output) for b in python_examples(text)] == [
        ("print(1)\n", "1\n"),
        ("b = 2\n", None),
    ]


def test_output_comparison_allows_ellipsis() -> None:
    """Expected output matches exactly, except trailing spaces and ... or … wildcards."""
    assert output_matches("id: ...\nok\n", "id: 3f2a9c  \nok")
    assert output_matches("id: …", "id: 3f2a9c")
    assert not output_matches("ok", "ok\nextra")
    assert not output_matches("id: ...", "other: 1")


def _values_in(enum_type: type[enum.Enum], page: Path) -> list[str]:
    """The values of ``enum_type`` that do not appear as inline code in ``page``."""
    text = page.read_text("utf-8")
    return [m.value for m in enum_type if f"`{m.value}`" not in text]


@pytest.mark.parametrize(
    ("enum_type", "page"),
    [
        (anysend.DeliveryStatus, "concepts/statuses.md"),
        (anysend.EventType, "concepts/statuses.md"),
        (anysend.Reason, "concepts/statuses.md"),
        (anysend.ErrorCategory, "concepts/errors.md"),
        (anysend.ErrorCategory, "concepts/routing.md"),
        (anysend.SkipReason, "concepts/routing.md"),
        (anysend.Channel, "concepts/channels.md"),
        (anysend.AttemptOutcome, "getting-started.md"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else str(value),
)
def test_every_enum_member_is_documented(enum_type: type[enum.Enum], page: str) -> None:
    """Every member value of the enum appears as inline code on the page that explains it."""
    assert _values_in(enum_type, DOCS / page) == []


def test_retry_defaults_are_documented() -> None:
    """Every RetryPolicy field appears on the retries page with its default value."""
    text = (DOCS / "concepts" / "retries.md").read_text("utf-8")
    for name, field in anysend.RetryPolicy.model_fields.items():
        assert f"`{name}`" in text, name
        assert f"`{field.default!r}`" in text or f"`{field.default}`" in text, name


def test_every_page_is_in_the_nav() -> None:
    """Every Markdown page under docs/ is listed in mkdocs.yml's nav."""
    config = (ROOT / "mkdocs.yml").read_text("utf-8")
    missing = [
        page.relative_to(DOCS).as_posix()
        for page in DOCS.rglob("*.md")
        if f": {page.relative_to(DOCS).as_posix()}" not in config
    ]
    assert missing == []


# -- the provider pages -------------------------------------------------------------------------

PROVIDER_DOCS = DOCS / "providers"
#: The sections of every provider page, in this order (and no others).
PROVIDER_SECTIONS = ["Settings", "What it supports", "Limits and quirks", "Errors", "Callbacks"]


def builtin_providers() -> dict[str, type[Provider]]:
    """The adapters anysend registers itself (entry points that load from ``anysend``)."""
    return {
        name: load(name)
        for name, target in sorted(available().items())
        if target.split(":")[0].split(".")[0] == "anysend"
    }


def provider_pages() -> list[Path]:
    """The provider pages (every page under docs/providers/ except the overview)."""
    return sorted(p for p in PROVIDER_DOCS.glob("*.md") if p.name != "index.md")


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (whose ``#`` lines are not headings)."""
    kept: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence is None and opening is not None:
            fence = opening["fence"]
        elif fence is not None and line.strip().startswith(fence) and not line.strip(" `~"):
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def headings(text: str, level: int = 2) -> list[str]:
    """The titles of the headings of ``level`` outside code blocks, in order."""
    mark = "#" * level + " "
    return [line[len(mark) :].strip() for line in prose(text).splitlines() if line.startswith(mark)]


def section(text: str, title: str) -> str:
    """The prose of the level-2 section ``title`` (up to the next level-2 heading)."""
    body = prose(text)
    start = body.index(f"\n## {title}\n")
    end = body.find("\n## ", start + 1)
    return body[start : end if end >= 0 else len(body)]


def table_rows(text: str, marker: str) -> list[list[str]]:
    """The body rows of the Markdown table right after ``<!-- marker -->``, cells stripped.

    Backticks around a cell are dropped, and ``\\|`` inside a cell is kept as a pipe.
    """
    lines = text[text.index(f"<!-- {marker} -->") :].splitlines()[1:]
    rows: list[list[str]] = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("`").replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]
        rows.append(cells[1:-1])
    assert len(rows) > 2, f"no table after <!-- {marker} -->"
    return rows[2:]  # without the header and the |---| line


def tables_hook() -> types.ModuleType:
    """The mkdocs hook of docs/_ext/ that renders the error-mapping tables."""
    path = DOCS / "_ext" / "anysend_tables.py"
    spec = importlib.util.spec_from_file_location("anysend_docs_tables", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def category_dicts(module_name: str) -> list[str]:
    """The module-level dicts of ``module_name`` that map something to ErrorCategory."""
    module = importlib.import_module(module_name)
    found: dict[int, str] = {}
    for name, value in vars(module).items():
        if (
            isinstance(value, dict)
            and value
            and all(isinstance(v, ErrorCategory) for v in value.values())
        ):
            found.setdefault(id(value), name)
    return sorted(found.values())


def test_every_builtin_provider_has_a_page() -> None:
    """Every entry point anysend registers has a page named after it, and no page is extra."""
    names = set(builtin_providers())
    assert {"console", "memory", "smtp"} <= names
    assert {page.stem for page in provider_pages()} == names


@pytest.mark.parametrize("page", provider_pages(), ids=page_id)
def test_provider_page_sections(page: Path) -> None:
    """Every provider page has the five sections, in order, and no other level-2 heading."""
    assert headings(page.read_text("utf-8")) == PROVIDER_SECTIONS


@pytest.mark.parametrize("name", sorted(builtin_providers()))
def test_every_setting_is_documented(name: str) -> None:
    """Every settings field of the adapter appears as inline code in its Settings section."""
    settings = section((PROVIDER_DOCS / f"{name}.md").read_text("utf-8"), "Settings")
    fields = builtin_providers()[name].Settings.model_fields
    assert [field for field in fields if f"`{field}`" not in settings] == []


@pytest.mark.parametrize("name", sorted(builtin_providers()))
def test_error_mappings_are_generated(name: str) -> None:
    """Each error-mapping dict of the adapter's module is rendered on its page by a marker."""
    module_name = builtin_providers()[name].__module__
    text = (PROVIDER_DOCS / f"{name}.md").read_text("utf-8")
    marked = {m["target"] for m in tables_hook().MARKER.finditer(text)}
    expected = {f"{module_name}:{dict_name}" for dict_name in category_dicts(module_name)}
    assert expected - marked == set()


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=page_id)
def test_table_markers_render(page: Path) -> None:
    """Every ``anysend-table`` marker names a category dict, and becomes a table with its rows."""
    hook = tables_hook()
    text = page.read_text("utf-8")
    rendered: str = hook.render_markdown(text)
    assert "anysend-table" not in rendered
    for match in hook.MARKER.finditer(text):
        mapping = hook.load_mapping(match["target"])
        for key, category in mapping.items():
            assert f"| `{key}` | `{category.value}` |" in rendered


def test_table_hook_refuses_bad_markers() -> None:
    """A marker naming a missing module, a missing dict or a non-category dict fails the build."""
    hook = tables_hook()
    for target in (
        "anysend.nowhere:X",
        "anysend.providers.slack:NOTHING",
        "anysend.providers.smtp:_DEFAULT_PORTS",
    ):
        with pytest.raises(hook.TableError):
            hook.render_markdown(f"<!-- anysend-table: {target} -->")
    with pytest.raises(hook.TableError, match="malformed"):
        hook.render_markdown("<!-- anysend-table: no colon here -->")


def _reply(text: str) -> tuple[int, str | None]:
    code, _, enhanced = text.partition(" ")
    return int(code), enhanced or None


def test_smtp_stage_table_matches_the_code() -> None:
    """Each row of SMTP's stage table is what category_for_reply returns, with and without it."""
    rows = table_rows((PROVIDER_DOCS / "smtp.md").read_text("utf-8"), "checked: smtp-stages")
    for stage, reply, alone, at_stage, _why in rows:
        code, enhanced = _reply(reply)
        assert category_for_reply(code, enhanced).value == alone, reply
        assert category_for_reply(code, enhanced, stage=stage).value == at_stage, (stage, reply)  # type: ignore[arg-type]


def _smtp_failures() -> dict[str, list[ProviderError]]:
    """For each row of SMTP's table of failures without a reply, errors the adapter makes."""
    smtp = SMTP(host="127.0.0.1", security="none")
    library = (smtplib.SMTPException,)
    composed = ComposedEmail(
        message=EmailMessage(),
        mail_from="shop@example.com",
        rcpt_to=("zoë@example.com",),
        message_id="id@example.com",
        smtputf8=True,
    )

    def without_smtputf8() -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            smtp._mail_options(lambda extension: False, composed, 100)
        return caught.value

    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    certificate = ssl.SSLCertVerificationError("certificate verify failed")
    return {
        "the connection is refused or lost before `DATA`, or DNS fails": [
            smtp._failure(ConnectionRefusedError(111, "Connection refused"), refusals=library),
            smtp._failure(smtplib.SMTPServerDisconnected("gone"), refusals=library),
            smtp._failure(ConnectionResetError(104, "reset"), refusals=()),
            smtp._failure(dns, refusals=library),
        ],
        "a timeout before the message was handed over": [
            smtp._failure(TimeoutError("timed out"), refusals=library),
            smtp._failure(TimeoutError("timed out"), refusals=()),
        ],
        "a timeout or a lost connection after `DATA`": [
            smtp._failure(TimeoutError("timed out"), refusals=(), after_data=True),
            smtp._failure(ConnectionResetError(104, "reset"), refusals=(), after_data=True),
        ],
        "the certificate does not verify": [smtp._failure(certificate, refusals=library)],
        "the server does not offer `STARTTLS`": [smtp._no_starttls()],
        "the server offers no `AUTH`, or no mechanism the adapter can use": [
            smtp._failure(smtplib.SMTPNotSupportedError("no AUTH"), refusals=library),
            smtp._failure(smtplib.SMTPException("No suitable mechanism"), refusals=library),
        ],
        "the server lacks `SMTPUTF8`, needed for a non-ASCII address": [without_smtputf8()],
    }


def test_smtp_failure_table_matches_the_code() -> None:
    """Each row of SMTP's table of failures without a reply is the category the adapter gives."""
    rows = table_rows((PROVIDER_DOCS / "smtp.md").read_text("utf-8"), "checked: smtp-failures")
    failures = _smtp_failures()
    assert [row[0] for row in rows] == [label.strip("`") for label in failures]
    for (label, errors), (_, category) in zip(failures.items(), rows, strict=True):
        assert [error.category.value for error in errors] == [category] * len(errors), label


def _row(text: str, start: str) -> str:
    """The first table row of ``text`` that starts with ``start``."""
    return next(line for line in text.splitlines() if line.startswith(start))


@pytest.mark.parametrize("name", sorted(builtin_providers()))
def test_builtin_schemes_table(name: str) -> None:
    """The configuration page's scheme table has every built-in with its entry point."""
    text = (DOCS / "configuration.md").read_text("utf-8")
    row = _row(text, f"| `{name}` |")
    assert f"`{available()[name]}`" in row
    assert f"(providers/{name}.md)" in row


@pytest.mark.parametrize("name", sorted(builtin_providers()))
def test_provider_overview_row(name: str) -> None:
    """The providers overview has a row per built-in, with the scheme and the channels."""
    text = (PROVIDER_DOCS / "index.md").read_text("utf-8")
    row = next(line for line in text.splitlines() if f"]({name}.md) |" in line)
    assert f"| `{name}` |" in row
    channels = builtin_providers()[name].channels
    if channels == frozenset(anysend.Channel):
        assert "every channel" in row
    else:
        assert all(f"`{channel.value}`" in row for channel in channels)


def test_getting_started_has_the_readme_test_command() -> None:
    """The test command on the getting-started page is the one README.md gives."""
    readme = (ROOT / "README.md").read_text("utf-8")
    marked = readme.split("<!-- test-command -->", 1)[1].split("<!-- /test-command -->", 1)[0]
    [command] = [block.code.strip() for block in code_blocks(marked)]
    page = (DOCS / "getting-started.md").read_text("utf-8")
    commands = [block.code.strip() for block in code_blocks(page) if block.language == "bash"]
    assert command in commands


def test_prose_helpers() -> None:
    """Headings inside code blocks are not headings; table rows keep escaped pipes."""
    text = "# T\n\n## A\n\n```bash\n## not one\n```\n\n<!-- m -->\n| a | b |\n|---|---|\n"
    text += "| `x \\| y` | z |\n\n## B\n"
    assert headings(text) == ["A", "B"]
    assert table_rows(text, "m") == [["x | y", "z"]]
    assert "not one" not in prose(text)
