"""Where the commands find their configuration: providers, the store, JSON data.

Providers come from ``--provider URL`` options (repeatable, in failover order) or, without
them, from the environment (``ANYSEND_PROVIDERS`` and the ``ANYSEND_<NAME>_<FIELD>``
variables, see the configuration guide). The store comes from ``--store`` or
``ANYSEND_STORE``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anysend._exceptions import ConfigurationError

if TYPE_CHECKING:
    from anysend.providers import Provider

__all__ = ["existing_store", "load_json", "providers_from", "sandbox_url", "store_from"]

NO_PROVIDERS = (
    "no providers: give --provider URL (e.g. --provider console://) or set ANYSEND_PROVIDERS"
)


def providers_from(urls: list[str], *, required: bool = True) -> list[Provider]:
    """The providers of ``--provider`` options, or else of the environment.

    Raises:
        ConfigurationError: a URL is wrong, or none is given while ``required``.
    """
    from anysend.providers import from_env, from_url

    if urls:
        return [from_url(url) for url in urls]
    if os.environ.get("ANYSEND_PROVIDERS", "").strip():
        return from_env()
    if required:
        raise ConfigurationError(NO_PROVIDERS)
    return []


def sandbox_url(url: str) -> str:
    """The ``--sandbox`` URL, checked (the client sends ``URL/PROVIDER/...`` there)."""
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"--sandbox takes an http:// URL, not {url!r}")
    return url


def store_from(store: str | None, *, required: bool = True) -> str | None:
    """The store path of ``--store``, or else of ``ANYSEND_STORE``.

    Raises:
        ConfigurationError: none is given while ``required``, or the file does not exist
            (a report or a check of a store that is not there is a typo, not a new store).
    """
    path = store or os.environ.get("ANYSEND_STORE")
    if not path:
        if required:
            raise ConfigurationError("no store: give --store PATH or set ANYSEND_STORE")
        return None
    return path


def existing_store(store: str | None) -> str:
    """The store path, which must be an existing SQLite file."""
    path = store_from(store)
    assert path is not None
    plain = path.removeprefix("sqlite:///")
    if plain != ":memory:" and not Path(plain).is_file():
        raise ConfigurationError(f"the store {path!r} does not exist")
    return path


def load_json(text: str | None, what: str = "--data") -> dict[str, Any]:
    """A JSON object given inline, or as ``@file.json``.

    Raises:
        ConfigurationError: the file cannot be read, or the text is not a JSON object.
    """
    if text is None:
        return {}
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text("utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{what}: cannot read {text[1:]!r}: {exc.strerror}") from exc
    try:
        value = json.loads(source)
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"{what} must be a JSON object ({{...}}), not {type(value).__name__}"
        )
    return value
