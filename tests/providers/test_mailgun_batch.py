"""Mailgun batch sends: one Messages API call, recipient variables, a copy per recipient.

https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending:
several ``to`` parameters with ``recipient-variables`` (a JSON object keyed by plain address)
make Mailgun send each recipient an individual copy; at most 1,000 recipients a batch.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from anysend import (
    Attachment,
    Channel,
    ContentError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    OutboundMessage,
    ProviderError,
    Receipt,
    Recipient,
    UnsupportedFeatureError,
)
from anysend.providers.mailgun import (
    ID_VARIABLE,
    MAX_BATCH_RECIPIENTS,
    RECIPIENT_ID,
    Mailgun,
)
from tests.providers.test_mailgun import (
    EU_URL,
    MAILGUN_ID,
    QUEUED,
    SENDER,
    URL,
    basic,
    event_data,
    fields_of,
    make,
    parts_of,
    webhook,
)


def outbound(number: int, **fields: Any) -> OutboundMessage:
    """The ``number``-th message of a batch, as the client hands it to the adapter."""
    fields.setdefault("subject", "Spring sale")
    fields.setdefault("text", "Everything is 20% off")
    return OutboundMessage(
        id=f"msg-{number}", channel=Channel.EMAIL, to=f"user{number}@example.com", **fields
    )


def test_the_batch_request_is_one_call_with_recipient_variables() -> None:
    """The documented request: a `to` per recipient and each one's anysend id as a variable."""
    shared: dict[str, Any] = {
        "html": "<p>Everything is <b>20%</b> off</p>",
        "headers": {"X-Campaign": "spring"},
        "attachments": (Attachment(filename="prices.pdf", content=b"%PDF-1.4"),),
        "metadata": {"campaign": "spring"},
        "tags": ("sale",),
        "send_at": datetime(2026, 11, 21, 8, 30, tzinfo=timezone.utc),
        "provider_options": {"o:tracking": False},
    }
    messages = [
        outbound(0, recipient=Recipient(email="user0@example.com", name="Ann Example"), **shared),
        outbound(1, **shared),
        outbound(2, **shared),
    ]
    request = make().build_batch_request(messages)
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["authorization"] == basic()
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    fields = fields_of(request)
    assert fields == [
        ("from", SENDER),
        ("to", "Ann Example <user0@example.com>"),
        ("to", "user1@example.com"),
        ("to", "user2@example.com"),
        ("subject", "Spring sale"),
        ("text", "Everything is 20% off"),
        ("html", "<p>Everything is <b>20%</b> off</p>"),
        ("h:X-Campaign", "spring"),
        ("o:tag", "sale"),
        ("o:deliverytime", "Sat, 21 Nov 2026 08:30:00 GMT"),
        ("v:campaign", "spring"),
        (f"v:{ID_VARIABLE}", f"%recipient.{RECIPIENT_ID}%"),
        ("o:tracking", "no"),
        ("recipient-variables", fields[-1][1]),
    ]
    assert json.loads(fields[-1][1]) == {
        "user0@example.com": {"anysend_id": "msg-0"},
        "user1@example.com": {"anysend_id": "msg-1"},
        "user2@example.com": {"anysend_id": "msg-2"},
    }
    files = [part for part in parts_of(request) if part[1] is not None]
    assert files == [("attachment", "prices.pdf", "application/pdf", b"%PDF-1.4")]


def test_the_eu_region() -> None:
    request = make(region="eu").build_batch_request([outbound(0), outbound(1)])
    assert str(request.url) == EU_URL


def test_what_may_share_a_call() -> None:
    mailgun = make()
    assert Mailgun.max_batch == MAX_BATCH_RECIPIENTS == 1000
    assert Mailgun.batch_varies == frozenset()  # the subject is shared
    assert mailgun.batchable(outbound(0))
    assert not mailgun.batchable(outbound(0, cc=("boss@example.com",)))
    assert not mailgun.batchable(outbound(0, bcc=("audit@example.com",)))
    assert not mailgun.batchable(outbound(0, provider_options={"recipient-variables": {}}))
    assert not mailgun.batchable(outbound(0, provider_options={"to": "x@example.com"}))


def test_batches_breaking_mailgun_rules_are_refused() -> None:
    mailgun = make()
    with pytest.raises(UnsupportedFeatureError, match="at most 1000"):
        mailgun.build_batch_request([outbound(n) for n in range(1001)])
    named = Recipient(email="user1@example.com", name="Bob\r\nBcc: x@example.com")
    with pytest.raises(ContentError, match="injection"):
        mailgun.build_batch_request([outbound(0), outbound(1, recipient=named)])
    with pytest.raises(ContentError):
        mailgun.build_batch_request([])
    full = fields_of(mailgun.build_batch_request([outbound(n) for n in range(1000)]))
    assert sum(1 for name, _ in full if name == "to") == 1000


def test_every_message_gets_the_calls_id() -> None:
    messages = [outbound(0), outbound(1)]
    receipts = make().parse_batch_response(httpx.Response(200, json=QUEUED), messages)
    expected = Receipt(provider_message_id=MAILGUN_ID, status=DeliveryStatus.ACCEPTED, raw=QUEUED)
    assert receipts == [expected, expected]
    later = [outbound(n, send_at=datetime(2026, 11, 21, tzinfo=timezone.utc)) for n in range(2)]
    scheduled = make().parse_batch_response(httpx.Response(200, json=QUEUED), later)
    assert {r.status for r in scheduled} == {DeliveryStatus.SCHEDULED}


def test_a_refusal_refuses_the_whole_call() -> None:
    body = {"message": "'to' parameter is not a valid address. please check documentation"}
    with pytest.raises(ProviderError) as caught:
        make().parse_batch_response(httpx.Response(400, json=body), [outbound(0), outbound(1)])
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT
    with pytest.raises(ProviderError) as busy:
        make().parse_batch_response(httpx.Response(503, text="busy"), [outbound(0), outbound(1)])
    assert busy.value.category is ErrorCategory.UNAVAILABLE
    assert busy.value.retryable


def test_events_of_one_batch_name_each_recipients_message() -> None:
    """Each copy's user-variables carry its own anysend id (expanded from the variable)."""
    parsed = [
        make().parse_webhook(
            webhook(
                event_data(
                    "delivered.json",
                    id=f"event-{n}",
                    recipient=f"user{n}@example.com",
                    message={"headers": {"message-id": MAILGUN_ID}},
                    **{"user-variables": {ID_VARIABLE: f"msg-{n}", "campaign": "spring"}},
                ),
                token=f"{n}" * 50,
            )
        )[0]
        for n in range(2)
    ]
    assert [
        (e.message_id, e.provider_message_id, e.recipient)
        for e in parsed
        if isinstance(e, DeliveryEvent)
    ] == [
        ("msg-0", MAILGUN_ID, "user0@example.com"),
        ("msg-1", MAILGUN_ID, "user1@example.com"),
    ]
