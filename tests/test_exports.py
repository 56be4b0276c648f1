"""The public API: what the package exports, and that import stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import anysend
import anysend.providers
import anysend.testing


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute of the package root, and only those."""
    assert len(set(anysend.__all__)) == len(anysend.__all__)
    assert set(anysend.__all__) == set(anysend._EXPORTS) | {"__version__"}
    for name in anysend.__all__:
        assert getattr(anysend, name) is not None, name
        assert name in dir(anysend)
    with pytest.raises(AttributeError):
        anysend.NoSuchThing  # noqa: B018


def test_every_public_object_is_defined_where_it_is_exported_from() -> None:
    """Each lazily exported name comes from the module the export table names."""
    for name, module in anysend._EXPORTS.items():
        assert getattr(anysend, name).__module__ in (module, "anysend._version"), name


def test_public_modules_have_all() -> None:
    """Public sub-modules declare __all__ and everything in it exists."""
    import anysend.asgi
    import anysend.sandbox
    import anysend.sms
    import anysend.wsgi

    for module in (
        anysend.providers,
        anysend.testing,
        anysend.sms,
        anysend.asgi,
        anysend.wsgi,
        anysend.sandbox,
    ):
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)


def test_import_is_light() -> None:
    """import anysend loads no HTTP, model, template, phone, retry or test library."""
    code = (
        "import sys, anysend;"
        "heavy = [m for m in ('jinja2', 'phonenumbers', 'email_validator', 'tenacity', "
        "'pytest', 'inscriptis', 'httpx', 'pydantic', 'cryptography', 'h2') "
        "if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_version() -> None:
    """The package has a version string."""
    assert anysend.__version__


def test_a_first_time_success_builds_no_retry_machinery() -> None:
    """A send that succeeds at once never imports tenacity, the retry library."""
    code = (
        "import sys, anysend\n"
        "from anysend.testing import MemoryProvider\n"
        "with anysend.Client([MemoryProvider()]) as c:\n"
        "    assert c.send(anysend.Message(text='hi'), to={'phone': '+48600700800'}).ok\n"
        "print('tenacity' in sys.modules)\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
