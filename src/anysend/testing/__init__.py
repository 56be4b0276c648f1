"""Test helpers that ship with anysend: use them in your application's tests.

* :class:`MemoryProvider`: records messages; fails on demand in any error category.
* :class:`ScriptedProvider`: a fake provider scripted per send (:class:`Script`), with
  signed delivery callbacks that fall due on a clock.
* :class:`VirtualClock`: time that passes instantly.
* :class:`ProviderContract`: the contract test kit for adapter authors.
* :class:`WebhookServer`: your app's callback endpoint on a local port, for tests against
  the sandbox (:class:`anysend.sandbox.Sandbox`).
* a pytest plugin with the ``anysend_outbox`` and ``anysend_clock`` fixtures (loaded
  automatically once anysend is installed).

Names load on first use, so that the pytest plugin costs nothing until a fixture is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anysend.testing._clock import VirtualClock
    from anysend.testing._memory import MemoryProvider, MemorySettings
    from anysend.testing._scripted import Script, ScriptedProvider
    from anysend.testing._webhook_server import WebhookServer
    from anysend.testing.contract import ErrorCase, ProviderContract

__all__ = [
    "ErrorCase",
    "MemoryProvider",
    "MemorySettings",
    "ProviderContract",
    "Script",
    "ScriptedProvider",
    "VirtualClock",
    "WebhookServer",
]

_EXPORTS = {
    "ErrorCase": "anysend.testing.contract",
    "MemoryProvider": "anysend.testing._memory",
    "MemorySettings": "anysend.testing._memory",
    "ProviderContract": "anysend.testing.contract",
    "Script": "anysend.testing._scripted",
    "ScriptedProvider": "anysend.testing._scripted",
    "VirtualClock": "anysend.testing._clock",
    "WebhookServer": "anysend.testing._webhook_server",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anysend.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
