"""Import discipline: what ``import anysend`` and a first send load, and what they must not.

Each check runs in a fresh interpreter, since this process has imported everything already.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import anysend
import anysend.providers
from anysend.providers import Provider, available, load
from anysend.providers.console import Console
from anysend.providers.webhook import Webhook
from tests.acme_adapter import AcmeSMS

#: Never loaded by ``import anysend``: it must cost next to nothing until a name is used.
NOT_ON_IMPORT = (
    "aiohttp",
    "asyncio",
    "click",
    "email_validator",
    "h2",
    "httpcore",
    "httpx",
    "importlib.metadata",
    "jinja2",
    "phonenumbers",
    "pydantic",
    "pydantic_core",
    "pygments",
    "rich",
    "sqlite3",
    "tenacity",
)

#: Never loaded by building a sync Client with a built-in provider and sending a message:
#: httpx's command line (and what it pulls in), the store and what only it needs, the async
#: twins, the configuration parser, templates' engine, the retry library (a first send that
#: succeeds never retries) and entry-point discovery of anysend's own adapters.
NOT_ON_FIRST_SEND = (
    "aiohttp",
    "anysend._async._client",
    "anysend._async._store",
    "anysend._records",
    "anysend._sync._flows",
    "anysend._sync._store",
    "anysend.providers._config",
    "click",
    "httpx._main",
    "jinja2",
    "pygments",
    "rich",
    "sqlite3",
    "tenacity",
)


def run(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return what it printed."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` are in ``sys.modules`` once ``code`` has run."""
    out = run(f"{textwrap.dedent(code)}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    present = set(json.loads(out.strip().splitlines()[-1]))
    return [name for name in modules if name in present]


def test_import_anysend_loads_only_its_root() -> None:
    """``import anysend`` loads the package root and its version, nothing heavy."""
    out = run(
        """
        import sys, anysend
        print(sorted(m for m in sys.modules if m.split(".")[0] == "anysend"))
        """
    )
    assert out.strip() == "['anysend', 'anysend._version']"
    assert loaded_after("import anysend", NOT_ON_IMPORT) == []


def test_first_sync_send_loads_only_what_it_needs() -> None:
    """A sync Client with built-in providers sends without the store, httpx's CLI, ..."""
    code = """
        import io
        import anysend
        from anysend.providers.console import Console
        from anysend.providers.webhook import Webhook

        providers = [Webhook(url="http://127.0.0.1:9/hook"), Console(stream=io.StringIO())]
        with anysend.Client(providers) as client:
            result = client.send(anysend.Message(text="hi"), to={"email": "a@example.com"})
        assert result.ok, result
    """
    assert loaded_after(code, NOT_ON_FIRST_SEND) == []


def test_a_store_loads_its_module() -> None:
    """The store's module is loaded when, and because, the client is given a store."""
    code = """
        import anysend
        client = anysend.Client(store=":memory:")
        client.close()
    """
    assert loaded_after(code, ("anysend._sync._store", "sqlite3")) == [
        "anysend._sync._store",
        "sqlite3",
    ]


def test_sync_clock_and_primitives_do_without_asyncio() -> None:
    """The sync clock and synchronisation primitives never import asyncio."""
    code = """
        from anysend._clock import SystemClock
        from anysend._synchronization import Event, Lock, Semaphore
        SystemClock().sleep(0)
        with Lock(), Semaphore(2):
            Event().set()
    """
    assert loaded_after(code, ("asyncio",)) == []


def test_async_primitives_still_work() -> None:
    """The async twins import asyncio themselves, inside a running loop."""
    out = run(
        """
        import asyncio
        from anysend._clock import SystemClock
        from anysend._synchronization import AsyncEvent, AsyncLock, AsyncSemaphore

        async def main():
            event, lock, slots = AsyncEvent(), AsyncLock(), AsyncSemaphore(1)
            async with lock, slots:
                event.set()
                await event.wait()
            await slots.acquire()
            waiter = asyncio.create_task(slots.acquire())
            await SystemClock().asleep(0)
            slots.release()
            await waiter
            return "ok"

        print(asyncio.run(main()))
        """
    )
    assert out.strip() == "ok"


# -- the adapters' registry ---------------------------------------------------------------------


def test_builtins_are_anysend_own_entry_points() -> None:
    """The built-in table is exactly what anysend registers in its entry points."""
    own = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group=anysend.providers.GROUP)
        if ep.dist is not None and ep.dist.name == "anysend"
    }
    assert own == anysend.providers._BUILTINS


def test_builtin_adapters_load_without_reading_entry_points() -> None:
    """Loading a built-in adapter (by name or URL) never scans the installed packages."""
    out = run(
        """
        import importlib.metadata

        real = importlib.metadata.entry_points

        def guarded(**selection):
            assert selection.get("group") != "anysend.providers", "entry points were read"
            return real(**selection)

        importlib.metadata.entry_points = guarded

        from anysend.providers import from_url, load
        from anysend.providers.webhook import Webhook

        assert load("webhook") is Webhook
        print(type(from_url("console://")).__name__)
        """
    )
    assert out.strip() == "Console"


def test_other_packages_adapters_come_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that is not built in is looked up in the entry points; a built-in name is not."""
    group = anysend.providers.GROUP
    registered = importlib.metadata.EntryPoints(
        [
            importlib.metadata.EntryPoint("acme", "tests.acme_adapter:AcmeSMS", group),
            importlib.metadata.EntryPoint("webhook", "tests.acme_adapter:AcmeSMS", group),
            importlib.metadata.EntryPoint("broken", "tests.acme_adapter:hmac", group),
        ]
    )
    seen: list[str | None] = []

    def entry_points(**selection: Any) -> importlib.metadata.EntryPoints:
        seen.append(selection.get("group"))
        return registered.select(**selection)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert load("webhook") is Webhook
    assert seen == []
    assert load("acme") is AcmeSMS
    assert seen == [group]
    listed = available()
    assert listed["acme"] == "tests.acme_adapter:AcmeSMS"
    assert listed["webhook"] == "anysend.providers.webhook:Webhook"
    assert listed["console"] == "anysend.providers.console:Console"
    with pytest.raises(anysend.ConfigurationError, match="does not name a Provider"):
        load("broken")
    with pytest.raises(anysend.ConfigurationError, match=r"no provider named 'nope'.*acme"):
        load("nope")


def test_configuration_helpers_are_loaded_on_first_use() -> None:
    """``anysend.providers.from_url`` and friends load their module when first used."""
    out = run(
        """
        import sys
        import anysend.providers as providers
        before = "anysend.providers._config" in sys.modules
        redact = providers.redact_url
        print(before, "anysend.providers._config" in sys.modules, redact.__module__)
        """
    )
    assert out.split() == ["False", "True", "anysend.providers._config"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        anysend.providers.nothing  # noqa: B018
    assert issubclass(load("console"), Provider)
    assert load("console") is Console


# -- httpx's command line -----------------------------------------------------------------------

_CLI_DEPENDENCIES = "all(importlib.util.find_spec(m) for m in ('click', 'pygments', 'rich'))"


def test_httpx_is_imported_without_its_command_line() -> None:
    """After ``import anysend``, ``import httpx`` loads neither httpx._main nor click or rich."""
    out = run(
        f"""
        import importlib.util, sys
        import anysend
        import httpx
        print(sorted(m for m in ("httpx._main", "click", "rich", "pygments") if m in sys.modules))
        print(hasattr(httpx, "_main"), callable(httpx.main))
        print([type(f).__name__ for f in sys.meta_path if "Httpx" in type(f).__name__])
        if {_CLI_DEPENDENCIES}:
            import httpx._main  # asked for: the real module
            print(httpx._main.__file__.endswith("_main.py"), "click" in sys.modules)
        else:
            print(True, True)
        """
    )
    assert out.splitlines() == ["[]", "False True", "[]", "True True"]


def test_httpx_command_line_still_runs() -> None:
    """``httpx.main`` imports and runs the real command line when called."""
    out = run(
        f"""
        import importlib.util, sys
        if not {_CLI_DEPENDENCIES}:
            print("A next generation HTTP client.")  # nothing to run without click and rich
            raise SystemExit(0)
        import anysend, httpx
        httpx.main(["--help"])
        """
    )
    assert "A next generation HTTP client." in out


def test_httpx_command_line_without_its_dependencies() -> None:
    """Without click, ``httpx.main`` says what to install, as httpx itself does."""
    code = """
        import sys
        import anysend, httpx
        sys.modules["click"] = None
        httpx.main()
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1
    assert "pip install 'httpx[cli]'" in done.stdout


def test_httpx_imported_first_is_left_alone() -> None:
    """With httpx imported before anysend, anysend installs no import hook."""
    out = run(
        """
        import sys
        import httpx
        import anysend
        print(httpx.main is anysend._httpx_main, "httpx._main" in sys.modules)
        print([type(f).__name__ for f in sys.meta_path if "Httpx" in type(f).__name__])
        """
    )
    assert out.splitlines()[0].split()[0] == "False"
    assert out.splitlines()[1] == "[]"


def test_httpx_stand_in_hands_over_the_real_module() -> None:
    """A name other than ``main`` taken from the stand-in comes from the real module."""
    out = run(
        f"""
        import importlib.util, sys
        import anysend, httpx
        stand_in = anysend._HttpxCLIStandIn("httpx._main")
        try:
            stand_in.__wrapped__
        except AttributeError:
            print("no dunder")
        if {_CLI_DEPENDENCIES}:
            print(stand_in.print_help.__module__, "httpx._main" in sys.modules)
        else:
            print("httpx._main True")
        """
    )
    assert out.splitlines() == ["no dunder", "httpx._main True"]
