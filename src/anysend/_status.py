"""One delivery-status vocabulary for every channel, and the events that do not move it.

A message's :class:`DeliveryStatus` only moves forward along its lifecycle::

    pending → scheduled → accepted → sent → deferred → delivered → read
                                          ↘ rejected | undeliverable | failed | expired | canceled

``unknown`` stands for a raw provider value we cannot map (the raw value is always kept next
to it). :class:`EventType` names the signals that do not move the status (opens, clicks,
complaints, opt-outs, inbound replies). :class:`Reason` is the fixed list of reasons an event or
a failure carries. The vocabulary follows the peer study's section 7 (django-anymail's
``EventType`` widened to SMS, push and chat apps).
"""

from __future__ import annotations

import enum

__all__ = ["DeliveryStatus", "EventType", "Reason"]


class DeliveryStatus(str, enum.Enum):
    """Where a message is in its life, the same for every channel and provider.

    Values (in lifecycle order):

    * ``pending``: created here, not yet handed to a provider (in our queue or retrying).
    * ``scheduled``: held for a later time (``send_at``, quiet hours, or a provider schedule).
    * ``accepted``: the provider's API took it (HTTP 2xx, SMTP 250).
    * ``sent``: handed on to the next hop (carrier, MTA, push service, the chat itself).
    * ``deferred``: a temporary delivery problem; the provider is still trying.
    * ``delivered``: reached the mailbox, handset, device or chat.
    * ``read``: the recipient saw it (WhatsApp and Viber read receipts, RCS). An email open is
      the ``opened`` event, not this status.
    * ``rejected`` (terminal): refused before any delivery attempt (invalid address,
      suppression, policy, opt-out).
    * ``undeliverable`` (terminal): refused downstream after acceptance (hard bounce, unknown
      number, push token unregistered).
    * ``failed`` (terminal): could not be processed, through no fault of the recipient, or every
      retry was used up.
    * ``expired`` (terminal): its validity period or TTL ran out before delivery.
    * ``canceled`` (terminal): withdrawn before it was sent.
    * ``unknown``: the provider's value could not be mapped, or a timeout left it unclear
      whether the provider accepted the message. The raw value is kept beside it.
    """

    PENDING = "pending"
    SCHEDULED = "scheduled"
    ACCEPTED = "accepted"
    SENT = "sent"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    READ = "read"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether no later status can follow (rejected, undeliverable, failed, ...)."""
        return self in _TERMINAL

    @property
    def is_success(self) -> bool:
        """Whether the provider has taken the message (accepted or any later good status)."""
        return self in _SUCCESS

    @property
    def rank(self) -> int:
        """Position in the lifecycle; a status only replaces one of lower rank.

        Terminal statuses share the top rank: the first terminal status wins, and any terminal
        status may follow any live one, ``delivered`` included (an email can bounce after
        the receiving server first took it). ``unknown`` has rank -1: any real status
        replaces it.
        """
        return _RANK[self]

    def can_move_to(self, new: DeliveryStatus) -> bool:
        """Whether a message in this status may move to ``new`` (status only moves forward)."""
        if self is new:
            return False
        if self.is_terminal:
            return False
        return new.rank > self.rank


_TERMINAL = frozenset(
    {
        DeliveryStatus.REJECTED,
        DeliveryStatus.UNDELIVERABLE,
        DeliveryStatus.FAILED,
        DeliveryStatus.EXPIRED,
        DeliveryStatus.CANCELED,
    }
)
_SUCCESS = frozenset(
    {
        DeliveryStatus.ACCEPTED,
        DeliveryStatus.SENT,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
    }
)
_RANK = {
    DeliveryStatus.UNKNOWN: -1,
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.SCHEDULED: 1,
    DeliveryStatus.ACCEPTED: 2,
    DeliveryStatus.SENT: 3,
    DeliveryStatus.DEFERRED: 4,
    DeliveryStatus.DELIVERED: 5,
    DeliveryStatus.READ: 6,
    **dict.fromkeys(_TERMINAL, 7),
}


class EventType(str, enum.Enum):
    """Signals about a message or contact that do not move its :class:`DeliveryStatus`.

    * ``opened``: the recipient opened it (email pixel; low confidence, proxies open too).
    * ``clicked``: the recipient followed a tracked link.
    * ``complained``: the recipient marked it as spam.
    * ``opted_out``: the recipient unsubscribed, sent STOP, or blocked the bot.
    * ``opted_in``: the recipient subscribed again (START, resubscribe).
    * ``contact_invalid``: the address, number, push token or chat is dead; stop using it.
    * ``inbound``: the recipient sent a message (see :class:`~anysend.InboundMessage`).
    """

    OPENED = "opened"
    CLICKED = "clicked"
    COMPLAINED = "complained"
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    CONTACT_INVALID = "contact_invalid"
    INBOUND = "inbound"


class Reason(str, enum.Enum):
    """The fixed list of reasons attached to a failure or an event.

    * ``invalid_recipient``: malformed or impossible address.
    * ``unknown_recipient``: well-formed, but no such mailbox, subscriber or chat.
    * ``recipient_unreachable``: temporarily unreachable (mailbox full, handset off).
    * ``token_unregistered``: a push token or subscription is gone.
    * ``suppressed_bounce``: on the provider's suppression list after earlier bounces.
    * ``suppressed_complaint``: suppressed after a spam complaint.
    * ``opted_out``: the recipient unsubscribed or sent STOP.
    * ``blocked_by_recipient``: the recipient blocked the sender or bot.
    * ``policy_blocked``: refused by the provider's or carrier's policy.
    * ``content_rejected``: spam or carrier filtering, template not approved.
    * ``outside_messaging_window``: WhatsApp's 24-hour window is closed; use a template.
    * ``template_error``: the provider could not render its template.
    * ``timed_out``: validity period or TTL elapsed, or no answer in time.
    * ``rate_limited``: throttled.
    * ``insufficient_funds``: no credit or quota left.
    * ``other``: anything else (the raw value says more).
    """

    INVALID_RECIPIENT = "invalid_recipient"
    UNKNOWN_RECIPIENT = "unknown_recipient"
    RECIPIENT_UNREACHABLE = "recipient_unreachable"
    TOKEN_UNREGISTERED = "token_unregistered"  # noqa: S105 - a reason, not a secret
    SUPPRESSED_BOUNCE = "suppressed_bounce"
    SUPPRESSED_COMPLAINT = "suppressed_complaint"
    OPTED_OUT = "opted_out"
    BLOCKED_BY_RECIPIENT = "blocked_by_recipient"
    POLICY_BLOCKED = "policy_blocked"
    CONTENT_REJECTED = "content_rejected"
    OUTSIDE_MESSAGING_WINDOW = "outside_messaging_window"
    TEMPLATE_ERROR = "template_error"
    TIMED_OUT = "timed_out"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    OTHER = "other"
