"""The documentation is tested: every Python example runs, and the vocabulary pages are complete.

Each page's ```python blocks (``docs/**/*.md`` and ``README.md``) run in order in one shared
namespace, like a doctest session, in a temporary working directory, with every connection
to a host other than the local machine refused (examples use Console, MemoryProvider or
respx). A ```text block that directly follows a python block is its expected standard
output; ``...`` or ``…`` in it stands for any text (ids, for instance). Fences in other
languages (toml, bash) are not run. A page whose examples define a ``ProviderContract``
subclass also gets that contract kit run, as pytest would run it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import re
import socket
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import anysend
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
