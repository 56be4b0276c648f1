"""The public API: what the package exports, and that import stays light."""

from __future__ import annotations

import subprocess
import sys

import anysend
import anysend.providers
import anysend.testing


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ names every public attribute of the package root, and only those."""
    public = {name for name in vars(anysend) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(anysend, name)).__name__ == "module"}
    assert set(anysend.__all__) - {"__version__"} == public - modules
    assert len(set(anysend.__all__)) == len(anysend.__all__)


def test_public_modules_have_all() -> None:
    """Public sub-modules declare __all__ and everything in it exists."""
    import anysend.sms

    for module in (anysend.providers, anysend.testing, anysend.sms):
        for name in module.__all__:
            assert getattr(module, name) is not None, (module.__name__, name)


def test_import_is_light() -> None:
    """import anysend loads no template engine, phone library, retry library or test tool."""
    code = (
        "import sys, anysend;"
        "heavy = [m for m in ('jinja2', 'phonenumbers', 'email_validator', 'tenacity', "
        "'pytest', 'inscriptis') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_version() -> None:
    """The package has a version string."""
    assert anysend.__version__
