"""The anysend pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``anysend_outbox``: a fresh :class:`~anysend.testing.MemoryProvider` serving every
  channel; pass it to your client and assert on ``anysend_outbox.messages``.
* ``anysend_clock``: a fresh :class:`~anysend.testing.VirtualClock`.
"""

from __future__ import annotations

import pytest

from anysend.testing._clock import VirtualClock
from anysend.testing._memory import MemoryProvider


@pytest.fixture
def anysend_outbox() -> MemoryProvider:
    """A MemoryProvider for every channel: what your code sent lands in ``.messages``."""
    return MemoryProvider()


@pytest.fixture
def anysend_clock() -> VirtualClock:
    """A virtual clock: pass it as ``clock=`` so retries and waits take no real time."""
    return VirtualClock()
