"""Test helpers that ship with anysend: use them in your application's tests.

* :class:`MemoryProvider`: records messages; fails on demand in any error category.
* :class:`VirtualClock`: time that passes instantly.
* :class:`ProviderContract`: the contract test kit for adapter authors.
* a pytest plugin with the ``anysend_outbox`` and ``anysend_clock`` fixtures (loaded
  automatically once anysend is installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anysend.testing._clock import VirtualClock
from anysend.testing._memory import MemoryProvider, MemorySettings

if TYPE_CHECKING:
    from anysend.testing.contract import ProviderContract

__all__ = ["MemoryProvider", "MemorySettings", "ProviderContract", "VirtualClock"]


def __getattr__(name: str) -> Any:
    # The contract kit imports pytest; load it only when asked for.
    if name == "ProviderContract":
        from anysend.testing.contract import ProviderContract

        return ProviderContract
    raise AttributeError(f"module 'anysend.testing' has no attribute {name!r}")
