"""Protocols and aliases for the callables and adapters the clients accept.

Each has a sync and an async twin; ``Client`` takes the plain ones, ``AsyncClient`` the
``Async`` ones (the generated sync client refers to the plain names).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from anysend._models import OutboundMessage
    from anysend._results import Attempt, Receipt, SendResult

__all__ = [
    "AsyncAttemptHook",
    "AsyncDirectProvider",
    "AsyncResultHook",
    "AttemptHook",
    "DirectProvider",
    "ResultHook",
]

#: Called by ``Client`` after every attempt (and every skip).
AttemptHook = Callable[["Attempt"], None]
#: Awaited by ``AsyncClient`` after every attempt (and every skip).
AsyncAttemptHook = Callable[["Attempt"], Awaitable[None]]
#: Called by ``Client`` with every result.
ResultHook = Callable[["SendResult"], None]
#: Awaited by ``AsyncClient`` with every result.
AsyncResultHook = Callable[["SendResult"], Awaitable[None]]


class DirectProvider(Protocol):
    """A non-HTTP adapter usable by ``Client``: it sends by itself."""

    def send(self, message: OutboundMessage) -> Receipt:
        """Send ``message``; raise ProviderError on failure."""


class AsyncDirectProvider(Protocol):
    """A non-HTTP adapter usable by ``AsyncClient``."""

    async def asend(self, message: OutboundMessage) -> Receipt:
        """Send ``message``; raise ProviderError on failure."""
