"""The pytest plugin's fixtures, as an application's tests use them."""

from __future__ import annotations

import anysend
from anysend.testing import MemoryProvider, VirtualClock


def test_outbox_fixture_collects_messages(anysend_outbox: MemoryProvider) -> None:
    """Messages sent through the outbox fixture can be asserted on."""
    with anysend.Client([anysend_outbox]) as client:
        client.send(anysend.Message(text="hi"), to=anysend.Recipient(phone="+48600700800"))
    assert [m.text for m in anysend_outbox.on("sms")] == ["hi"]
    assert anysend_outbox.to("+48600700800")
    anysend_outbox.reset()
    assert anysend_outbox.messages == []


def test_clock_fixture_is_virtual(anysend_clock: VirtualClock) -> None:
    """The clock fixture moves only when told."""
    start = anysend_clock.monotonic()
    anysend_clock.sleep(5)
    assert anysend_clock.monotonic() - start == 5
    assert anysend_clock.sleeps == [5]
