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

import importlib
from typing import TYPE_CHECKING, Any

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
from anysend.providers._http import (
    category_for_status,
    error_from_response,
    parse_retry_after,
    response_body,
)

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from anysend._transport import RawRequest, RawResponse
    from anysend.providers._config import from_env, from_url, from_urls, redact_url, to_url

__all__ = [
    "Capabilities",
    "Provider",
    "ProviderSettings",
    "RawRequest",
    "RawResponse",
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

#: Loaded on first use (PEP 562): sending needs no configuration from URLs or the environment,
#: and that module takes milliseconds to import (its regular expressions, pydantic's types).
_FROM_CONFIG = frozenset({"from_env", "from_url", "from_urls", "redact_url", "to_url"})


#: The optional fast path's plain request and response (see ``Provider.raw_request``).
_FROM_TRANSPORT = frozenset({"RawRequest", "RawResponse"})


def __getattr__(name: str) -> Any:
    if name in _FROM_TRANSPORT:
        from anysend import _transport

        value = getattr(_transport, name)
        globals()[name] = value
        return value
    if name not in _FROM_CONFIG:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from anysend.providers import _config

    value = getattr(_config, name)
    globals()[name] = value
    return value


#: The built-in adapters: anysend's own entry points (pyproject.toml; tests/test_imports.py
#: keeps the two the same). A built-in name is loaded from here, without importing
#: ``importlib.metadata`` and reading every installed distribution's entry points, which
#: only :func:`available` and the names of other packages' adapters need.
_BUILTINS = {
    "console": "anysend.providers.console:Console",
    "memory": "anysend.testing:MemoryProvider",
    "smtp": "anysend.providers.smtp:SMTP",
    "webhook": "anysend.providers.webhook:Webhook",
    "slack": "anysend.providers.slack:Slack",
    "teams": "anysend.providers.teams:Teams",
    "discord": "anysend.providers.discord:Discord",
    "viber": "anysend.providers.viber:Viber",
    "messenger": "anysend.providers.messenger:Messenger",
    "telegram": "anysend.providers.telegram:Telegram",
    "whatsapp": "anysend.providers.whatsapp:WhatsApp",
    "apns": "anysend.providers.apns:APNs",
    "fcm": "anysend.providers.fcm:FCM",
    "webpush": "anysend.providers.webpush:WebPush",
    "ses": "anysend.providers.ses:SES",
    "smsapi": "anysend.providers.smsapi:SMSAPI",
    "plivo": "anysend.providers.plivo:Plivo",
    "mailgun": "anysend.providers.mailgun:Mailgun",
    "vonage": "anysend.providers.vonage:Vonage",
    "twilio": "anysend.providers.twilio:Twilio",
    "postmark": "anysend.providers.postmark:Postmark",
    "sendgrid": "anysend.providers.sendgrid:SendGrid",
}

#: The extra that brings what a built-in adapter imports (for the error when it is missing).
_EXTRAS = {"apns": "push", "fcm": "push", "webpush": "push", "sendgrid": "sendgrid", "ses": "ses"}


def _registered() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def available() -> dict[str, str]:
    """Every registered adapter: its name and the ``module:Class`` it loads from."""
    return {**_BUILTINS, **{ep.name: ep.value for ep in _registered() if ep.name not in _BUILTINS}}


def load(name: str) -> type[Provider]:
    """Import the adapter registered as ``name`` and return its class.

    A built-in name always means the built-in adapter.

    Raises:
        ConfigurationError: no adapter has that name, or what it names is not a Provider.
    """
    try:
        if name in _BUILTINS:
            module, _, attribute = _BUILTINS[name].partition(":")
            loaded: object = getattr(importlib.import_module(module), attribute)
        else:
            matches = [ep for ep in _registered() if ep.name == name]
            if not matches:
                known = ", ".join(sorted(available())) or "none"
                raise ConfigurationError(
                    f"no provider named {name!r} is installed (known: {known})"
                )
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
