"""The ``anysend`` command line (typer + rich): every command, its JSON and its errors.

Commands run in process through ``anysend.__main__.main`` (what the script calls) with the
output captured, through typer's ``CliRunner``, and as subprocesses where the process itself
matters (``python -m anysend``, start-up imports, shell completion).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner

import anysend
from anysend.__main__ import main
from anysend.cli import app
from tests.smtp_server import SMTPServer

SID = "AC" + "0" * 32
TOKEN = "twilio-token"
TWILIO = f"twilio://{SID}:{TOKEN}@default?from=%2B15005550006"
LIMIT = 60


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration leaks in from the machine; wide output, no colours."""
    for name in list(os.environ):
        if name.startswith("ANYSEND_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``anysend ARGS`` in process; the exit code, standard output and standard error."""
    try:
        code = main(list(args))
    except SystemExit as stopped:
        code = int(stopped.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> Any:
    """Run a command with ``--json`` and parse what it printed."""
    got, out, err = run(capsys, *args, "--json")
    assert got == code, err
    return json.loads(out)


def assert_one_error(err: str, command: str, says: str) -> None:
    """One error line (and a hint line at most), no traceback."""
    lines = err.splitlines()
    assert lines[0].startswith(f"anysend {command}: error: "), err
    assert says in lines[0], err
    assert len(lines) <= 2, err
    assert "Traceback" not in err


def store_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- the application ---------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version and exits 0."""
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"anysend {anysend.__version__}\n")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """The help names every command; no command at all is exit code 2."""
    code, out, _ = run(capsys)
    assert code == 2
    for command in (
        "send",
        "render",
        "check",
        "providers",
        "worker",
        "webhooks",
        "report",
        "sandbox",
        "demo",
    ):
        assert command in out


def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown option: one red line with a hint, exit code 2, no traceback."""
    code, out, err = run(capsys, "send", "--bogus")
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "anysend send: error: No such option: --bogus",
        "hint: see `anysend send --help`",
    ]


def test_cli_runner_drives_the_app() -> None:
    """typer's CliRunner runs the same application (standalone mode)."""
    result = CliRunner().invoke(
        app, ["send", "--to", "ann@example.com", "--text", "hi", "-p", "memory://", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "accepted"


def test_without_the_cli_extra_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without typer: the worker still parses its options; other commands say what to install."""
    for name in [m for m in sys.modules if m == "anysend.cli" or m.startswith("anysend.cli.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "typer", None)
    code, _, err = run(capsys, "send", "--to", "x@example.com")
    assert code == 2
    assert 'pip install "anysend[cli]"' in err
    code, _, err = run(capsys, "worker", "--poll", "0")
    assert code == 2
    assert "argument --poll: " in err


def test_python_dash_m_with_json() -> None:
    """``python -m anysend send --json`` prints one JSON document on standard output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYSEND_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "anysend",
            "send",
            "--to",
            "+48600100200",
            "--text",
            "hi",
            "--provider",
            "console://",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # the console provider printed on stderr, not here
    assert (result["status"], result["channel"], result["provider"]) == (
        "accepted",
        "sms",
        "console",
    )
    assert "hi" in done.stderr


def test_start_up_stays_light() -> None:
    """Building the command line loads no client, store, HTTP, template or table code."""
    code = (
        "import sys, anysend.cli\n"
        "from typer.main import get_command\n"
        "get_command(anysend.cli.app)\n"
        "heavy = ['httpx', 'pydantic', 'jinja2', 'sqlite3', 'uvicorn',\n"
        "         'anysend._sync._client', 'anysend._records', 'phonenumbers']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=LIMIT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_shell_completion_completes_commands() -> None:
    """typer's completion: the script answers a bash completion request."""
    env = {
        **os.environ,
        "_ANYSEND_COMPLETE": "complete_bash",
        "COMP_WORDS": "anysend rep",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from anysend.__main__ import main; sys.exit(main())"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
        env=env,
    )
    assert done.stdout.split() == ["report"], done.stderr


# -- send --------------------------------------------------------------------------------------


def test_send_one_sms_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """--to a phone number and --text: an SMS, the result as JSON."""
    result = run_json(capsys, "send", "--to", "+48600100200", "--text", "hi", "-p", "memory://")
    assert (result["status"], result["channel"], result["address"]) == (
        "accepted",
        "sms",
        "+48600100200",
    )
    assert [a["outcome"] for a in result["attempts"]] == ["sent"]


def test_send_shows_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json: one line with the status, channel and provider."""
    code, out, _ = run(
        capsys,
        "send",
        "--to",
        "ann@example.com",
        "--subject",
        "S",
        "--text",
        "hi",
        "-p",
        "memory://",
    )
    assert code == 0
    assert "accepted email via memory to ann@example.com" in out


def test_send_into_a_store_and_a_fallback_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-c sms -c email with only an email provider: SMS is skipped, email sent, both stored."""
    store = tmp_path / "anysend.db"
    result = run_json(
        capsys,
        "send",
        "--to",
        "+48600100200",
        "--to",
        "ann@example.com",
        "--text",
        "hi",
        "--subject",
        "S",
        "-c",
        "sms",
        "-c",
        "email",
        "-p",
        "memory://?channels=email",
        "--store",
        str(store),
    )
    assert result["channel"] == "email"
    assert [(a["channel"], a["outcome"]) for a in result["attempts"]] == [
        ("sms", "skipped"),
        ("email", "sent"),
    ]
    assert store_rows(store, "SELECT id FROM messages") == [(result["message_id"],)]


def test_send_to_a_profile_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--to a profile id with --store: the stored person's address is used."""
    store = tmp_path / "anysend.db"
    with anysend.Client(store=str(store)) as client:
        client.profiles.upsert(anysend.Recipient(id="user-42", phone="+48600100200"))
    result = run_json(
        capsys, "send", "--to", "user-42", "--text", "hi", "-p", "memory://", "--store", str(store)
    )
    assert (result["channel"], result["address"]) == ("sms", "+48600100200")
    code, _, err = run(
        capsys, "send", "--to", "user-43", "--text", "hi", "-p", "memory://", "--store", str(store)
    )
    assert code == 2
    assert_one_error(err, "send", "no profile with id 'user-43'")


def test_a_send_that_fails_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """No provider serves the channel: the result says so and the exit code is 1."""
    code, out, _ = run(
        capsys, "send", "--to", "+48600100200", "--text", "hi", "-p", "memory://?channels=email"
    )
    assert code == 1
    assert "nothing was tried" in out
    code, out, _ = run(
        capsys,
        "send",
        "--to",
        "+48600100200",
        "--text",
        "hi",
        "-c",
        "sms",
        "-p",
        "memory://?channels=email",
    )
    assert code == 1
    assert "no_provider: no provider serves sms" in out


def test_send_with_a_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--template and --data render per channel and locale."""
    folder = tmp_path / "templates" / "welcome"
    (folder / "pl").mkdir(parents=True)
    (folder / "sms.txt").write_text("Hi {{ name }}")
    (folder / "pl" / "sms.txt").write_text("Cześć {{ name }}")
    data = tmp_path / "data.json"
    data.write_text('{"name": "Ann"}')
    code, out, err = run(
        capsys,
        "send",
        "--to",
        "+48600100200",
        "--template",
        "welcome",
        "--data",
        f"@{data}",
        "--locale",
        "pl",
        "-T",
        str(tmp_path / "templates"),
        "-p",
        "console://",
    )
    assert code == 0, err
    assert "Cześć Ann" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["--to", "+48600100200", "--text", "hi"], "no providers", id="no-providers"),
        pytest.param(["--to", "x@example.com", "-p", "memory://"], "nothing to send", id="empty"),
        pytest.param(["--text", "hi", "-p", "memory://"], "give --to", id="no-to"),
        pytest.param(["--to", "a@b.co", "--text", "x", "-p", "nosuch://"], "nosuch", id="url"),
        pytest.param(
            ["--to", "a@b.co", "--template", "t", "--data", "[1]", "-p", "memory://"],
            "--data must be a JSON object",
            id="data",
        ),
        pytest.param(
            ["--to", "a@b.co", "--template", "t", "--data", "{", "-p", "memory://"],
            "--data is not valid JSON",
            id="data-json",
        ),
        pytest.param(
            ["--to", "ann@", "--text", "x", "-p", "memory://"], "not a valid email", id="email"
        ),
        pytest.param(
            ["--to", "pigeon:7", "--text", "x", "-p", "memory://"], "no channel 'pigeon'", id="ch"
        ),
        pytest.param(
            ["--to", "user-1", "--to", "a@b.co", "--text", "x", "-p", "memory://"],
            "cannot be mixed",
            id="profile-mixed",
        ),
        pytest.param(
            ["--to", "a@b.co", "--text", "x", "-p", "memory://", "--sandbox", "ftp://x"],
            "--sandbox takes an http:// URL",
            id="sandbox-url",
        ),
    ],
)
def test_send_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    """Wrong input: one red line and a hint, exit code 2, nothing sent, no traceback."""
    code, out, err = run(capsys, "send", *args)
    assert code == 2
    assert out == ""
    assert_one_error(err, "send", says)


def test_send_into_a_file_that_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --store that is not SQLite: one error line, exit 2, no traceback."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    code, _, err = run(
        capsys, "send", "--to", "a@b.co", "--text", "x", "-p", "memory://", "--store", str(path)
    )
    assert code == 2
    assert_one_error(err, "send", "the store cannot be used: file is not a database")


def test_send_to_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    """--sandbox sends each adapter's requests to URL/PROVIDER instead of the provider."""
    base = "http://127.0.0.1:8780/twilio"
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{base}/2010-04-01/Accounts/{SID}/Messages.json").respond(
            201, json={"sid": "SM" + "1" * 32, "status": "queued"}
        )
        result = run_json(
            capsys, "send", "--to", "+48600100200", "--text", "hi", "-p", TWILIO, "--sandbox"
        )
    assert result["status"] == "accepted"
    assert route.call_count == 1


def test_send_to_a_sandbox_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bare --sandbox reads ANYSEND_SANDBOX_URL; providers come from ANYSEND_PROVIDERS."""
    monkeypatch.setenv("ANYSEND_SANDBOX_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("ANYSEND_PROVIDERS", TWILIO)
    with respx.mock(assert_all_called=True) as mock:
        mock.post(url__startswith="http://127.0.0.1:9999/twilio/").respond(
            201, json={"sid": "SM" + "2" * 32, "status": "queued"}
        )
        result = run_json(capsys, "send", "--sandbox", "--to", "+48600100200", "--text", "hi")
    assert result["provider"] == "twilio"


# -- send --file -------------------------------------------------------------------------------


def test_send_a_jsonl_file_with_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--file: every line sent through send_many, a progress bar on stderr, a summary."""
    lines: list[dict[str, Any]] = [
        {"to": f"+4860010020{n}", "text": f"message {n}"} for n in range(5)
    ]
    lines.append({"to": {"email": "ann@example.com"}, "subject": "S", "text": "mail"})
    messages = tmp_path / "messages.jsonl"
    messages.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    store = tmp_path / "anysend.db"
    code, out, err = run(
        capsys,
        "send",
        "--file",
        str(messages),
        "-p",
        "memory://",
        "--store",
        str(store),
        "--progress",
    )
    assert code == 0, err
    assert "6 of 6 sent" in out
    assert "sending" in err
    assert "6/6" in err
    assert store_rows(store, "SELECT count(*) FROM messages") == [(6,)]


def test_send_a_file_as_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--file --json: one JSON object per item; a failed item makes the exit code 1."""
    messages = tmp_path / "messages.jsonl"
    messages.write_text(
        '{"to": "+48600100200", "text": "ok"}\n{"to": "bad@@example.com", "text": "no"}\n'
    )
    code, out, err = run(
        capsys, "send", "-f", str(messages), "-p", "memory://", "--json", "--no-progress"
    )
    assert code == 1, err
    items = sorted((json.loads(line) for line in out.splitlines()), key=lambda i: i["index"])
    assert [(i["index"], i["ok"]) for i in items] == [(0, True), (1, False)]
    assert "not a valid email" in items[1]["error"]


def test_send_a_csv_file_with_a_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV: the columns fill the recipient and the template's data (mail merge)."""
    folder = tmp_path / "templates" / "sale"
    folder.mkdir(parents=True)
    (folder / "sms.txt").write_text("{{ name }}: {{ discount }} off")
    (folder / "email.subject.txt").write_text("Sale for {{ name }}")
    (folder / "email.txt").write_text("{{ discount }} off")
    rows = tmp_path / "people.csv"
    rows.write_text(
        "to,name,discount,channel\n+48600100200,Ann,10%,sms\nbob@example.com,Bob,20%,email\n"
    )
    code, out, err = run(
        capsys,
        "send",
        "-f",
        str(rows),
        "--template",
        "sale",
        "-T",
        str(tmp_path / "templates"),
        "-p",
        "console://",
        "--json",
    )
    assert code == 0, out
    items = sorted((json.loads(line) for line in out.splitlines()), key=lambda i: i["index"])
    assert [(i["index"], i["channel"]) for i in items] == [(0, "sms"), (1, "email")]
    assert "Ann: 10% off" in err  # the console provider's output goes to stderr with --json
    assert "Sale for Bob" in err


def test_a_bad_row_stops_the_file_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every row is checked first: line 3 is wrong, so nothing at all is sent."""
    messages = tmp_path / "messages.jsonl"
    messages.write_text('{"to": "+48600100200", "text": "a"}\n\n{"to": "+48600100201", "txt": 1}\n')
    store = tmp_path / "anysend.db"
    code, _, err = run(
        capsys, "send", "-f", str(messages), "-p", "memory://", "--store", str(store)
    )
    assert code == 2
    assert_one_error(err, "send", f"--file {messages}, line 3: unknown field 'txt'")
    assert not store.exists()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("m.txt", "x", "expected a .jsonl"),
        ("m.jsonl", "", "no messages in it"),
        ("m.jsonl", "not json\n", "line 1: not valid JSON"),
        ("m.jsonl", "[1]\n", "line 1: each line must be a JSON object"),
        ("m.jsonl", '{"text": "x"}\n', "line 1: no recipient"),
        ("m.csv", "to,text\n+48600100200,\n", "line 2: nothing to send"),
    ],
)
def test_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, says: str
) -> None:
    """A file that cannot be read as messages: one error line naming the line, exit 2."""
    path = tmp_path / name
    path.write_text(content)
    code, _, err = run(capsys, "send", "-f", str(path), "-p", "memory://")
    assert code == 2
    assert_one_error(err, "send", says)


# -- render ------------------------------------------------------------------------------------


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A template with email, SMS (GSM-7 and, in Polish, UCS-2), push and chat parts."""
    root = tmp_path / "templates"
    folder = root / "welcome"
    (folder / "pl").mkdir(parents=True)
    files = {
        "email.subject.txt": "Welcome {{ name }}",
        "email.html": "<p>Hello {{ name }}</p>",
        "sms.txt": "Hi {{ name }}, welcome!",
        "push.title.txt": "Hi {{ name }}",
        "chat.txt": "Hello {{ name }} on {{ channel }}",
        "telegram.txt": "Telegram hello",
        "pl/sms.txt": "Cześć {{ name }} 👋",
        "pl/email.subject.txt": "Witaj {{ name }}",
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (root / "long").mkdir()
    (root / "long" / "sms.txt").write_text("ż" * 700, encoding="utf-8")
    return root


def test_render_every_channel_and_locale_as_json(
    templates: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each channel in each locale folder, with SMS segments and encoding."""
    result = run_json(
        capsys, "render", "welcome", "-T", str(templates), "--data", '{"name": "Ann"}'
    )
    shown = {(tuple(p["channels"]), p["locale"]): p for p in result["previews"]}
    assert shown[("sms",), None]["stats"]["encoding"] == "GSM-7"
    assert shown[("sms",), None]["parts"]["text"] == "Hi Ann, welcome!"
    polish = shown[("sms",), "pl"]
    assert (polish["stats"]["encoding"], polish["stats"]["segments"]) == ("UCS-2", 1)
    assert shown[("email",), "pl"]["parts"]["subject"] == "Witaj Ann"
    assert shown[("push",), None]["stats"]["payload_bytes"] < 4096
    assert shown[("telegram",), None]["parts"]["text"] == "Telegram hello"
    # The chat-like channels whose text differs (it names the channel) are shown one by one;
    # the Polish folder has no chat part, so the root's is not repeated under "pl".
    assert shown[("whatsapp",), None]["parts"]["text"] == "Hello Ann on whatsapp"
    assert not any(locale == "pl" and "whatsapp" in c for c, locale in shown)


def test_render_groups_chat_channels_with_one_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One chat.txt for every chat-like channel: one preview listing them all."""
    (tmp_path / "t" / "hello").mkdir(parents=True)
    (tmp_path / "t" / "hello" / "chat.txt").write_text("Hello")
    result = run_json(capsys, "render", "hello", "-T", str(tmp_path / "t"))
    (preview,) = result["previews"]
    assert set(preview["channels"]) == {
        "whatsapp",
        "telegram",
        "messenger",
        "viber",
        "chat",
        "webhook",
    }


def test_render_as_text(templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The panels show the parts and the sizes."""
    code, out, _ = run(
        capsys,
        "render",
        "welcome",
        "-T",
        str(templates),
        "--data",
        '{"name": "Ann"}',
        "-c",
        "sms",
        "--locale",
        "pl",
    )
    assert code == 0
    assert "welcome · sms · pl" in out
    assert "Cześć Ann 👋" in out
    assert "encoding UCS-2, segments 1" in out


def test_render_over_a_limit_is_exit_1(templates: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An SMS over ChannelLimits.sms_max_segments: a warning, and exit code 1 for CI."""
    result = run_json(capsys, "render", "long", "-T", str(templates), code=1)
    (preview,) = result["previews"]
    assert preview["stats"]["segments"] == 11
    assert preview["over_limit"] is True
    assert "over the limit of 10" in preview["warnings"][0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["welcome"], "'name' is undefined"),
        (["nothing"], "no template named 'nothing'"),
        (["welcome", "--data", '{"name": 1}', "-c", "pigeon"], "unknown channel"),
    ],
)
def test_render_errors(
    templates: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    """Missing data, a missing template, a wrong channel: one error line, exit 2."""
    code, _, err = run(capsys, "render", *args, "-T", str(templates))
    assert code == 2
    assert_one_error(err, "render", says)


# -- check -------------------------------------------------------------------------------------


def test_check_offline(templates: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--offline: the providers' settings, the templates and the store, no network."""
    store = tmp_path / "anysend.db"
    anysend.SQLiteStore(store).close()
    result = run_json(
        capsys,
        "check",
        "--offline",
        "-p",
        TWILIO,
        "-p",
        "console://",
        "-T",
        str(templates),
        "--store",
        str(store),
    )
    assert result["ok"] is True
    statuses = [(c["item"], c["status"]) for c in result["checks"]]
    assert ("provider twilio", "ok") in statuses
    assert ("provider twilio", "skipped") in statuses
    assert (f"templates {templates}", "ok") in statuses
    assert (f"store {store}", "ok") in statuses
    assert TOKEN not in json.dumps(result)


def test_check_reads_the_environment(
    templates: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ANYSEND_PROVIDERS (with a secret in its own variable), _TEMPLATES and _STORE."""
    monkeypatch.setenv("ANYSEND_PROVIDERS", "twilio://?from=%2B15005550006")
    monkeypatch.setenv("ANYSEND_TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("ANYSEND_TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("ANYSEND_TEMPLATES", str(templates))
    monkeypatch.setenv("ANYSEND_STORE", str(tmp_path / "new.db"))
    result = run_json(capsys, "check", "--offline")
    items = [c["item"] for c in result["checks"]]
    assert items == [
        "provider twilio",
        f"templates {templates}",
        f"store {tmp_path / 'new.db'}",
        "provider twilio",
    ]
    assert "2 template(s): long, welcome" in result["checks"][1]["detail"]
    assert not (tmp_path / "new.db").exists()  # checking does not create it


def test_check_finds_every_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong URL, a template that does not compile: each its own line, exit code 2."""
    broken = tmp_path / "t" / "oops"
    broken.mkdir(parents=True)
    (broken / "sms.txt").write_text("{% if %}")
    result = run_json(
        capsys,
        "check",
        "--offline",
        "-p",
        "twilio://AC1:secret@default",
        "-p",
        "nosuch://",
        "-T",
        str(tmp_path / "t"),
        code=2,
    )
    errors = [c for c in result["checks"] if c["status"] == "error"]
    assert len(errors) == 3
    assert "secret" not in json.dumps(result)


def test_check_without_providers(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing configured: the check says what to set."""
    code, out, _ = run(capsys, "check")
    assert code == 2
    assert "ANYSEND_PROVIDERS" in out


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [(200, 0, "credentials accepted"), (401, 1, "credentials refused"), (500, 1, "answered 500")],
)
def test_check_reaches_twilio(
    capsys: pytest.CaptureFixture[str], status: int, code: int, says: str
) -> None:
    """Online: Twilio's account endpoint with the account's credentials."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(f"https://api.twilio.com/2010-04-01/Accounts/{SID}.json").respond(status)
        result = run_json(capsys, "check", "-p", TWILIO, code=code)
    request = route.calls.last.request
    assert request.headers["authorization"] == httpx.BasicAuth(SID, TOKEN)._auth_header
    assert says in result["checks"][-1]["detail"]


def test_check_hides_the_telegram_token(capsys: pytest.CaptureFixture[str]) -> None:
    """Telegram's token is in the URL path: never printed."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get("https://api.telegram.org/bot123:secret-token/getMe").respond(
            200, json={"ok": True}
        )
        code, out, _ = run(capsys, "check", "-p", "telegram://?bot_token=123:secret-token")
    assert code == 0
    assert "secret-token" not in out
    assert "/bot***/getMe" in out


def test_check_when_a_provider_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    """A connection error is a failed check, exit code 1."""
    with respx.mock() as mock:
        mock.get(url__startswith="https://api.sendgrid.com/").mock(
            side_effect=httpx.ConnectError("refused")
        )
        result = run_json(capsys, "check", "-p", "sendgrid://?api_key=SG.x", code=1)
    assert "cannot reach api.sendgrid.com" in result["checks"][-1]["detail"]


def test_check_logs_in_to_smtp(capsys: pytest.CaptureFixture[str]) -> None:
    """SMTP: a real login to a local server; a wrong password is refused."""
    server = SMTPServer(users={"shop": "right"}, auth_require_tls=False).start()
    try:
        url = f"smtp://shop:{{}}@127.0.0.1:{server.port}?security=none"
        good = run_json(capsys, "check", "-p", url.format("right"))
        bad = run_json(capsys, "check", "-p", url.format("wrong"), code=1)
    finally:
        server.stop()
    assert "logged in" in good["checks"][-1]["detail"]
    assert "credentials refused" in bad["checks"][-1]["detail"]
    assert server.handler.received == []


# -- providers ---------------------------------------------------------------------------------


def test_providers_lists_built_ins_and_entry_points(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every built-in adapter, and a third-party one registered as an entry point."""
    group = anysend.providers.GROUP
    registered = importlib.metadata.EntryPoints(
        [importlib.metadata.EntryPoint("acme", "tests.acme_adapter:AcmeSMS", group)]
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: registered)
    rows = {row["name"]: row for row in run_json(capsys, "providers")}
    assert set(anysend.providers._BUILTINS) < set(rows)
    assert rows["acme"]["builtin"] is False
    assert rows["acme"]["channels"] == ["sms"]
    assert rows["twilio"]["auth_check"] is True
    assert rows["console"]["installed"] is True
    code, out, _ = run(capsys, "providers")
    assert code == 0
    assert "entry point tests.acme_adapter:AcmeSMS" in out


# -- report ------------------------------------------------------------------------------------


@pytest.fixture
def report_store(tmp_path: Path) -> Path:
    """A store with an email and an SMS sent and an SMS that no provider took."""
    path = tmp_path / "anysend.db"
    from anysend.testing import MemoryProvider

    with anysend.Client([MemoryProvider()], store=str(path)) as client:
        client.send(anysend.Message(text="a", subject="s"), to={"email": "a@example.com"})
        client.send(anysend.Message(text="b"), to={"phone": "+48600100200"}, via="sms")
        promo = anysend.Message(text="c", category="<b>promo</b>")
        client.send(promo, to={"email": "x@example.com"}, via="sms")  # no phone: skipped
    return path


def test_report_as_json(report_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The funnel per channel, with the rates, as JSON."""
    result = run_json(capsys, "report", "--store", str(report_store))
    rows = {row["key"]: row for row in result["rows"]}
    assert (rows["email"]["sent"], rows["sms"]["messages"]) == (1, 2)
    assert rows["sms"]["skipped"] == 1
    assert result["total"]["messages"] == 3
    assert result["total"]["delivery_rate"] == 0.0


def test_report_table(report_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rich table: a row per channel and the total."""
    code, out, _ = run(capsys, "report", "--store", str(report_store), "--by", "provider")
    assert code == 0
    assert "provider" in out
    assert "memory" in out
    assert "total" in out


class _Tags(HTMLParser):
    """Counts the elements of a page and checks that every opened one is closed."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: dict[str, int] = {}
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        self.attributes.extend(attrs)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open, tag
        assert self.open[-1] == tag, (tag, self.open)
        self.open.pop()


def test_report_html_is_a_self_contained_page(
    report_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html writes valid HTML with an inline SVG chart per row, nothing fetched."""
    page = tmp_path / "report.html"
    result = run_json(
        capsys, "report", "--store", str(report_store), "--html", str(page), "--by", "category"
    )
    assert result["html"] == str(page)
    text = page.read_text("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    tags = _Tags()
    tags.feed(text)
    tags.close()
    assert tags.open == []
    assert tags.seen["svg"] == 3  # "<b>promo</b>", no category, total
    assert tags.seen["rect"] == 3 * 7
    assert "b" not in tags.seen  # the category is text, escaped
    assert "&lt;b&gt;promo&lt;/b&gt;" in text
    assert "script" not in tags.seen
    assert "link" not in tags.seen
    assert not [value for name, value in tags.attributes if name in ("src", "href")]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--store", "nowhere.db"], "does not exist"),
        (["--store", "NOT_A_DB"], "file is not a database"),
        ([], "no store"),
        (["--store", "STORE", "--since", "yesterday"], "--since 'yesterday'"),
        (["--store", "STORE", "--by", "colour"], "--by 'colour'"),
        (["--store", "STORE", "--since", "1d", "--until", "2d"], "--until must be after"),
    ],
)
def test_report_errors(
    report_store: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    """A missing store, a wrong period or grouping: one error line, exit 2."""
    not_a_db = report_store.parent / "notes.txt"
    not_a_db.write_text("hello, this is not SQLite" * 10)
    places = {"STORE": str(report_store), "NOT_A_DB": str(not_a_db)}
    args = [places.get(a, a) for a in args]
    code, _, err = run(capsys, "report", *args)
    assert code == 2
    assert_one_error(err, "report", says)


# -- worker and demo through the new command line ----------------------------------------------


def test_worker_help_keeps_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The worker's options are all there, as before."""
    code, out, _ = run(capsys, "worker", "--help")
    assert code == 0
    for option in (
        "--app",
        "--store",
        "--providers",
        "--templates",
        "--id",
        "--poll",
        "--lease",
        "--once",
        "--retention-days",
        "--log-level",
    ):
        assert option in out


def test_worker_runs_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``anysend worker --once`` through typer: the worker's own lines, exit 0."""
    store = tmp_path / "anysend.db"
    code, _, err = run(
        capsys,
        "worker",
        "--store",
        str(store),
        "--providers",
        "console://",
        "--once",
        "--poll",
        "0.5",
        "--id",
        "w1",
    )
    assert code == 0
    assert err == "anysend worker: w1 running\nanysend worker: 0 step(s) run\n"


def test_worker_log_level_choices(capsys: pytest.CaptureFixture[str]) -> None:
    """--log-level takes the four levels only."""
    code, _, err = run(capsys, "worker", "--log-level", "LOUD")
    assert code == 2
    assert "argument --log-level: invalid choice: 'LOUD'" in err


# -- check: the other providers' authenticated reads (#9) ---------------------------------------

PLIVO_ID = "MA" + "A" * 18
DISCORD_HOOK = "https://discord.com/api/webhooks/123456/discord-secret-token"

#: Per adapter: its URL, the secret that must never be printed, and the exact request made.
PROBED = [
    pytest.param(
        "whatsapp://100000000000002:wa-secret-token@default",
        "wa-secret-token",
        "GET",
        "https://graph.facebook.com/v25.0/100000000000002",
        {"authorization": "Bearer wa-secret-token"},
        b"",
        id="whatsapp",
    ),
    pytest.param(
        "messenger://?page_access_token=page-secret-token&api_version=v24.0",
        "page-secret-token",
        "GET",
        "https://graph.facebook.com/v24.0/me",
        {"authorization": "Bearer page-secret-token"},
        b"",
        id="messenger",
    ),
    pytest.param(
        "viber://?auth_token=viber-secret-token&sender_name=Shop",
        "viber-secret-token",
        "POST",
        "https://chatapi.viber.com/pa/get_account_info",
        {"x-viber-auth-token": "viber-secret-token", "content-type": "application/json"},
        b"{}",
        id="viber",
    ),
    pytest.param(
        "vonage://?api_key=abcd1234&api_secret=vonage-secret",
        "vonage-secret",
        "GET",
        "https://rest.nexmo.com/account/get-balance",
        {"authorization": httpx.BasicAuth("abcd1234", "vonage-secret")._auth_header},
        b"",
        id="vonage",
    ),
    pytest.param(
        f"plivo://{PLIVO_ID}:plivo-secret@default",
        "plivo-secret",
        "GET",
        f"https://api.plivo.com/v1/Account/{PLIVO_ID}/",
        {"authorization": httpx.BasicAuth(PLIVO_ID, "plivo-secret")._auth_header},
        b"",
        id="plivo",
    ),
    pytest.param(
        "smsapi://:smsapi-secret-token@default?region=com",
        "smsapi-secret-token",
        "GET",
        "https://api.smsapi.com/profile",
        {"authorization": "Bearer smsapi-secret-token"},
        b"",
        id="smsapi",
    ),
    pytest.param(
        "discord://?webhook_url=" + DISCORD_HOOK.replace(":", "%3A").replace("/", "%2F"),
        "discord-secret-token",
        "GET",
        DISCORD_HOOK,
        {},
        b"",
        id="discord",
    ),
]


@pytest.mark.parametrize(("url", "secret", "method", "target", "headers", "body"), PROBED)
def test_check_reaches_each_providers_auth_endpoint(
    capsys: pytest.CaptureFixture[str],
    url: str,
    secret: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    """The documented read, with the adapter's credentials; accepted is exit 0."""
    answer = {"status": 0} if "viber" in url else {"ok": True}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.route(method=method, url=target).respond(200, json=answer)
        result = run_json(capsys, "check", "-p", url)
    assert route.call_count == 1
    request = route.calls.last.request
    assert (request.method, str(request.url), request.content) == (method, target, body)
    for name, value in headers.items():
        assert request.headers[name] == value
    detail = result["checks"][-1]["detail"]
    assert result["checks"][-1]["status"] == "ok"
    assert detail.startswith("credentials accepted (")
    assert secret not in json.dumps(result)


@pytest.mark.parametrize(("url", "secret", "method", "target", "headers", "body"), PROBED)
def test_check_a_refused_credential_is_exit_1_and_prints_no_secret(
    capsys: pytest.CaptureFixture[str],
    url: str,
    secret: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    """401: a failed line, exit 1, in JSON and in the table, and the secret nowhere."""
    with respx.mock(assert_all_called=True) as mock:
        mock.route(method=method, url=target).respond(401, json={"error": secret})
        result = run_json(capsys, "check", "-p", url, code=1)
        code, out, err = run(capsys, "check", "-p", url)
    last = result["checks"][-1]
    assert (last["status"], code) == ("failed", 1)
    assert last["detail"].startswith("credentials refused (")
    assert last["detail"].endswith(": 401)")
    assert "credentials refused" in out
    assert secret not in json.dumps(result) + out + err


def test_check_hides_the_discord_webhook_token(capsys: pytest.CaptureFixture[str]) -> None:
    """Discord's token is in the webhook path: shown as ***, and the query is not sent."""
    url = "discord://?webhook_url=" + (DISCORD_HOOK + "?thread_id=9").replace(":", "%3A").replace(
        "/", "%2F"
    ).replace("?", "%3F").replace("=", "%3D")
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(DISCORD_HOOK).respond(200, json={"id": "123456"})
        result = run_json(capsys, "check", "-p", url)
    assert route.calls.last.request.url.query == b""
    detail = result["checks"][-1]["detail"]
    assert detail == ("credentials accepted (GET https://discord.com/api/webhooks/123456/***: 200)")


def test_check_offline_reaches_no_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--offline: every adapter is settings only, and no request is made."""
    urls = [p.values[0] for p in PROBED] + [
        "ses://AKIDEXAMPLE:ses-secret@eu-west-1",
        "slack://?webhook_url=https%3A%2F%2Fhooks.slack.com%2Fservices%2FT0%2FB0%2FX",
    ]
    args = [arg for url in urls for arg in ("-p", str(url))]
    with respx.mock(assert_all_mocked=True) as mock:
        result = run_json(capsys, "check", "--offline", *args)
    assert not mock.calls
    reached = [c for c in result["checks"] if c["detail"] == "--offline: not reached"]
    assert len(reached) == len(urls)


def test_check_viber_reads_the_status_of_a_200(capsys: pytest.CaptureFixture[str]) -> None:
    """Viber refuses a bad token with HTTP 200 and status 2: a refusal, exit 1."""
    url = "viber://?auth_token=viber-secret-token&sender_name=Shop"
    answer = {"status": 2, "status_message": "invalidAuthToken viber-secret-token"}
    with respx.mock(assert_all_called=True) as mock:
        mock.post("https://chatapi.viber.com/pa/get_account_info").respond(200, json=answer)
        refused = run_json(capsys, "check", "-p", url, code=1)
        mock.post("https://chatapi.viber.com/pa/get_account_info").respond(200, json={"status": 9})
        failed = run_json(capsys, "check", "-p", url, code=1)
    assert refused["checks"][-1]["detail"] == (
        "credentials refused (POST https://chatapi.viber.com/pa/get_account_info: 200, status 2)"
    )
    assert failed["checks"][-1]["detail"] == (
        "POST https://chatapi.viber.com/pa/get_account_info answered 200, status 9"
    )
    assert "viber-secret-token" not in json.dumps([refused, failed])


GRAPH_PHONE = "https://graph.facebook.com/v25.0/100000000000002"


@pytest.mark.parametrize(
    ("graph_code", "detail"),
    [
        (190, f"credentials refused (GET {GRAPH_PHONE}: 400, Graph error 190)"),
        (10, f"credentials refused (GET {GRAPH_PHONE}: 400, Graph error 10)"),
        (100, f"GET {GRAPH_PHONE} answered 400, Graph error 100"),
    ],
)
def test_check_reads_graph_api_error_codes(
    capsys: pytest.CaptureFixture[str], graph_code: int, detail: str
) -> None:
    """The Graph API refuses a token with 400 and an auth code: a refusal, exit 1."""
    error = {"message": "bad wa-secret-token", "type": "OAuthException", "code": graph_code}
    with respx.mock(assert_all_called=True) as mock:
        mock.get(GRAPH_PHONE).respond(400, json={"error": error})
        result = run_json(
            capsys, "check", "-p", "whatsapp://100000000000002:wa-secret-token@default", code=1
        )
    assert result["checks"][-1]["detail"] == detail
    assert "wa-secret-token" not in json.dumps(result)


def test_check_vonage_without_an_api_secret_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    """Signed requests only: no API secret for the balance endpoint, so nothing is called."""
    url = "vonage://?api_key=abcd1234&signature_secret=sig-secret&sign_requests=true"
    with respx.mock(assert_all_mocked=True) as mock:
        result = run_json(capsys, "check", "-p", url)
    assert not mock.calls
    assert result["checks"][-1] == {
        "item": "provider vonage",
        "status": "skipped",
        "detail": "no api_secret (signed requests only): the balance endpoint needs it",
    }


def test_check_slack_webhook_has_no_auth_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    """A Slack incoming-webhook URL: settings only, and the line says why; nothing is posted."""
    url = "slack://?webhook_url=https%3A%2F%2Fhooks.slack.com%2Fservices%2FT0%2FB0%2Fslack-secret"
    with respx.mock(assert_all_mocked=True) as mock:
        result = run_json(capsys, "check", "-p", url)
    assert not mock.calls
    assert result["checks"][-1]["status"] == "skipped"
    assert "incoming-webhook URL has no auth endpoint" in result["checks"][-1]["detail"]
    assert "slack-secret" not in json.dumps(result)


SES_NOW = 1_795_161_600.0


@pytest.mark.parametrize(("status", "code", "says"), [(200, 0, "accepted"), (403, 1, "refused")])
def test_check_ses_get_account_signed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
    code: int,
    says: str,
) -> None:
    """SES v2 GetAccount, SigV4-signed by the adapter's signer at the adapter's clock."""
    pytest.importorskip("cryptography")
    from datetime import datetime, timezone

    from anysend.providers._sigv4 import Credentials, sign
    from anysend.providers.ses import SES

    monkeypatch.setattr(SES, "now", staticmethod(lambda: SES_NOW))
    target = "https://email.eu-west-1.amazonaws.com/v2/email/account"
    url = "ses://AKIDEXAMPLE:ses-secret-key@eu-west-1?session_token=ses-session"
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(target).respond(status, json={"SendingEnabled": True})
        result = run_json(capsys, "check", "-p", url, code=code)
    request = route.calls.last.request
    when = datetime.fromtimestamp(SES_NOW, tz=timezone.utc)
    expected = sign(
        httpx.Request("GET", target),
        Credentials("AKIDEXAMPLE", "ses-secret-key", "ses-session"),
        region="eu-west-1",
        service="ses",
        when=when,
    )
    assert (request.method, str(request.url), request.content) == ("GET", target, b"")
    assert request.headers["x-amz-date"] == "20261120T080000Z"
    assert request.headers["x-amz-security-token"] == "ses-session"
    assert request.headers["authorization"] == expected.headers["authorization"]
    assert request.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261120/eu-west-1/ses/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
    )
    assert f"credentials {says}" in result["checks"][-1]["detail"]
    assert "ses-secret-key" not in json.dumps(result)
    assert "ses-session" not in json.dumps(result)


@pytest.mark.parametrize(
    ("status", "answer", "code", "detail"),
    [
        (
            200,
            {"access_token": "ya29.fcm-access-secret", "expires_in": 3599},
            0,
            "credentials accepted (POST https://oauth2.googleapis.com/token: 200)",
        ),
        (
            400,
            {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
            1,
            "credentials refused (POST https://oauth2.googleapis.com/token: 400, invalid_grant)",
        ),
        (
            503,
            {"error": "temporarily_unavailable"},
            1,
            "POST https://oauth2.googleapis.com/token answered 503, temporarily_unavailable",
        ),
    ],
)
def test_check_fcm_exchanges_its_jwt_for_a_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
    answer: dict[str, Any],
    code: int,
    detail: str,
) -> None:
    """FCM: the adapter's own token request (a JWT signed with the key); the token is not shown."""
    pytest.importorskip("cryptography")
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from anysend.providers.fcm import FCM, GRANT_TYPE, SCOPE

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "anysend-check",
        "private_key": pem,
        "client_email": "push@anysend-check.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(info))
    monkeypatch.setattr(FCM, "now", staticmethod(lambda: 1_795_161_600.0))
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("https://oauth2.googleapis.com/token").respond(status, json=answer)
        result = run_json(
            capsys, "check", "-p", f"fcm://?service_account_file={key_file}", code=code
        )
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert set(form) == {"grant_type", "assertion"}
    assert form["grant_type"] == GRANT_TYPE
    head, claims, signature = form["assertion"].split(".")

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(unb64(head)) == {"alg": "RS256", "typ": "JWT"}
    assert json.loads(unb64(claims)) == {
        "iss": "push@anysend-check.iam.gserviceaccount.com",
        "scope": SCOPE,
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1_795_161_600,
        "exp": 1_795_161_600 + 3600,
    }
    key.public_key().verify(  # raises if the signature is wrong
        unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert result["checks"][-1]["detail"] == detail
    printed = json.dumps(result)
    assert "fcm-access-secret" not in printed
    assert form["assertion"] not in printed
    assert "PRIVATE KEY" not in printed


def test_providers_lists_the_new_auth_checks(capsys: pytest.CaptureFixture[str]) -> None:
    """``anysend providers`` says which adapters ``check`` can reach."""
    rows = {row["name"]: row for row in run_json(capsys, "providers")}
    for name in ("whatsapp", "messenger", "viber", "vonage", "plivo", "smsapi", "ses", "fcm"):
        assert rows[name]["auth_check"] is True, name
    assert rows["discord"]["auth_check"] is True
    for name in ("slack", "teams", "apns", "webpush", "console"):
        assert rows[name]["auth_check"] is False, name
