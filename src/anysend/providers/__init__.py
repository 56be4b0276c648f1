"""Provider adapters, and the extension point for writing your own.

Built-in adapters live in their own modules (``anysend.providers.console``, ...) and are
imported only when used. Adapters from other packages register under the
``anysend.providers`` entry-point group; :func:`available` lists every registered adapter and
:func:`load` imports one by name::

    # pyproject.toml of a third-party package
    [project.entry-points."anysend.providers"]
    acme = "acme_anysend:AcmeSMS"

The entry-point name is the provider's ``Provider.name``, and also its URL scheme:
:func:`from_url` builds a provider from ``smtp://user:pass@host:587?from=shop@example.com``,
:func:`from_urls` a failover list (``"a || b"``), :func:`from_env` the list in the
``ANYSEND_PROVIDERS`` environment variable (see the configuration guide).

Adapter authors also get the shared HTTP error mapping here: :func:`error_from_response`,
:func:`category_for_status`, :func:`parse_retry_after` and :func:`response_body`; and
:class:`WebhookResponse`, the answer an adapter gives a callback or handshake.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from anysend._exceptions import ConfigurationError
from anysend.providers._base import (
    Capabilities,
    Provider,
    ProviderSettings,
    SendFlow,
    WebhookFlow,
    WebhookResponse,
    check_replay_window,
    compare_signatures,
)
from anysend.providers._config import from_env, from_url, from_urls, redact_url, to_url
from anysend.providers._http import (
    category_for_status,
    error_from_response,
    parse_retry_after,
    response_body,
)

__all__ = [
    "Capabilities",
    "Provider",
    "ProviderSettings",
    "SendFlow",
    "WebhookFlow",
    "WebhookResponse",
    "available",
    "category_for_status",
    "check_replay_window",
    "compare_signatures",
    "error_from_response",
    "from_env",
    "from_url",
    "from_urls",
    "load",
    "parse_retry_after",
    "redact_url",
    "response_body",
    "to_url",
]

GROUP = "anysend.providers"

#: The extra that brings what a built-in adapter imports (for the error when it is missing).
_EXTRAS = {"apns": "push", "fcm": "push", "webpush": "push", "sendgrid": "sendgrid", "ses": "ses"}


def available() -> dict[str, str]:
    """Every registered adapter: its name and the ``module:Class`` it loads from."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load(name: str) -> type[Provider]:
    """Import the adapter registered as ``name`` and return its class.

    Raises:
        ConfigurationError: no adapter has that name, or what it names is not a Provider.
    """
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available())) or "none"
        raise ConfigurationError(f"no provider named {name!r} is installed (known: {known})")
    try:
        loaded = matches[0].load()
    except ImportError as exc:
        extra = _EXTRAS.get(name)
        hint = f'pip install "anysend[{extra}]"' if extra else "install what it needs"
        raise ConfigurationError(
            f"provider {name!r} needs {exc.name or 'a package'} that is not installed: {hint}"
        ) from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
        raise ConfigurationError(f"entry point {name!r} does not name a Provider subclass")
    return loaded
