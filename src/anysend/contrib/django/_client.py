"""The ``ANYSEND`` setting and the shared client built from it: :func:`get_client`."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from anysend import Client
from anysend._exceptions import ConfigurationError
from anysend.providers import Provider, from_env, from_urls

__all__ = ["build_client", "get_client", "reset_client"]

_lock = threading.Lock()
_client: Client | None = None


def _client_arguments() -> frozenset[str]:
    """The keyword arguments of ``anysend.Client`` (the ``ANYSEND`` keys, lower-cased)."""
    parameters = inspect.signature(Client.__init__).parameters
    return frozenset(name for name in parameters if name not in ("self", "providers"))


def build_client(config: Mapping[str, Any]) -> Client:
    """A new ``anysend.Client`` from an ``ANYSEND``-style mapping.

    Args:
        config: ``PROVIDERS``: a list of provider URLs (``"smtp://..."``, see
            :func:`anysend.providers.from_url`) and provider objects, or one string of URLs
            separated by ``||``; without it, the providers come from the environment
            (``ANYSEND_PROVIDERS``, as for ``Client.from_env``). Every other key is a
            ``Client`` argument in upper case: ``STORE``, ``TEMPLATES``,
            ``DEFAULT_REGION``, ``RETRY``, ...

    Returns:
        The client (its owner closes it).

    Raises:
        ConfigurationError: the mapping is not one, a key is no ``Client`` argument, a
            provider entry is neither a URL nor a provider, or a provider is wrong.
    """
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"settings.ANYSEND must be a dict, not {type(config).__name__}")
    known = _client_arguments()
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        if key == "PROVIDERS":
            continue
        name = str(key).lower()
        if key != name.upper() or name not in known:
            choices = ", ".join(sorted(["PROVIDERS", *(k.upper() for k in known)]))
            raise ConfigurationError(f"settings.ANYSEND has no setting {key!r} (known: {choices})")
        kwargs[name] = value
    if "PROVIDERS" not in config:
        return Client(from_env(), **kwargs)
    return Client(_providers(config["PROVIDERS"]), **kwargs)


def _providers(value: object) -> list[Provider]:
    """The providers of ``ANYSEND["PROVIDERS"]``: URLs and provider objects, in order."""
    if isinstance(value, str):
        return from_urls(value)
    if isinstance(value, Provider) or not isinstance(value, (list, tuple)):
        raise ConfigurationError(
            'settings.ANYSEND["PROVIDERS"] must be a list of provider URLs and provider objects'
        )
    providers: list[Provider] = []
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            providers.extend(from_urls(entry))
        elif isinstance(entry, Provider):
            providers.append(entry)
        else:
            raise ConfigurationError(
                f'settings.ANYSEND["PROVIDERS"][{index}] is neither a provider URL nor a '
                f"provider object: {type(entry).__name__}"
            )
    return providers


def get_client() -> Client:
    """The client of ``settings.ANYSEND``, built on first use and shared by the process.

    The email backend and the webhook view use it; use it for your own sends too
    (``get_client().send(...)``). It is built again after ``reset_client()``, and when a test
    changes ``ANYSEND`` with ``override_settings``.

    Raises:
        ConfigurationError: ``ANYSEND`` is missing or wrong (see :func:`build_client`).
    """
    global _client
    client = _client
    if client is None:
        with _lock:
            if _client is None:
                config = getattr(settings, "ANYSEND", None)
                if config is None:
                    raise ConfigurationError(
                        "anysend.contrib.django needs settings.ANYSEND, such as "
                        '{"PROVIDERS": ["smtp://..."], "STORE": "anysend.db"}'
                    )
                _client = build_client(config)
            client = _client
    return client


def reset_client() -> None:
    """Close the shared client and forget it: the next :func:`get_client` builds a new one."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "ANYSEND":
        reset_client()


setting_changed.connect(_on_setting_changed, dispatch_uid="anysend.contrib.django.reset_client")
