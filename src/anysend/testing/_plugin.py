"""The anysend pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``anysend_outbox``: a fresh :class:`~anysend.testing.MemoryProvider` serving every
  channel; pass it to your client and assert on ``anysend_outbox.messages``.
* ``anysend_clock``: a fresh :class:`~anysend.testing.VirtualClock`.

The plugin imports anysend only when a fixture is used: pytest loads plugins before coverage
starts, and an import here would hide the package's module-level lines from your coverage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from anysend.testing import MemoryProvider, VirtualClock


@pytest.fixture
def anysend_outbox() -> MemoryProvider:
    """A MemoryProvider for every channel: what your code sent lands in ``.messages``."""
    from anysend.testing import MemoryProvider

    return MemoryProvider()


@pytest.fixture
def anysend_clock() -> VirtualClock:
    """A virtual clock: pass it as ``clock=`` so retries and waits take no real time."""
    from anysend.testing import VirtualClock

    return VirtualClock()
