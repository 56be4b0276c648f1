"""The delivery-status vocabulary: order, terminal states and forward-only moves."""

from __future__ import annotations

import pytest

from anysend import DeliveryStatus as S


def test_lifecycle_order_moves_forward_only() -> None:
    """Each lifecycle status may move to a later one and never back."""
    order = [S.PENDING, S.SCHEDULED, S.ACCEPTED, S.SENT, S.DEFERRED, S.DELIVERED, S.READ]
    for i, earlier in enumerate(order):
        for later in order[i + 1 :]:
            assert earlier.can_move_to(later)
            assert not later.can_move_to(earlier)


@pytest.mark.parametrize("terminal", [S.REJECTED, S.UNDELIVERABLE, S.FAILED, S.EXPIRED, S.CANCELED])
def test_terminal_statuses_end_the_lifecycle(terminal: S) -> None:
    """Nothing follows a terminal status, and any live status may end in one."""
    assert terminal.is_terminal
    assert not terminal.is_success
    assert not terminal.can_move_to(S.DELIVERED)
    assert not terminal.can_move_to(S.FAILED if terminal is not S.FAILED else S.REJECTED)
    assert S.SENT.can_move_to(terminal)


def test_bounce_after_delivered_is_allowed() -> None:
    """An email may bounce after the receiving server first took it."""
    assert S.DELIVERED.can_move_to(S.UNDELIVERABLE)


def test_unknown_is_replaced_by_any_real_status() -> None:
    """An unmapped status gives way to any known one."""
    assert S.UNKNOWN.can_move_to(S.PENDING)
    assert not S.ACCEPTED.can_move_to(S.UNKNOWN)
    assert not S.ACCEPTED.can_move_to(S.ACCEPTED)


def test_success_statuses() -> None:
    """Accepted and everything after it, short of a failure, counts as sent."""
    assert {s for s in S if s.is_success} == {S.ACCEPTED, S.SENT, S.DEFERRED, S.DELIVERED, S.READ}
