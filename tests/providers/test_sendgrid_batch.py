"""SendGrid batch sends: several messages in one Mail Send request, one personalization each.

https://www.twilio.com/docs/sendgrid/for-developers/sending-email/personalizations: up to
1,000 personalizations a request; fields set in a personalization (``subject``,
``custom_args``, ``dynamic_template_data``) apply to that copy only.
"""

from __future__ import annotations

import base64
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
from anysend.providers.sendgrid import MAX_PERSONALIZATIONS, MESSAGE_ID_ARG, SendGrid
from tests.providers.test_sendgrid import (
    API_KEY,
    MAIL_SEND,
    MAIL_SEND_EU,
    NOW,
    callback,
    make,
)


def outbound(number: int, **fields: Any) -> OutboundMessage:
    """The ``number``-th message of a batch, as the client hands it to the adapter."""
    fields.setdefault("subject", "Spring sale")
    fields.setdefault("text", "Everything is 20% off")
    return OutboundMessage(
        id=f"msg-{number}", channel=Channel.EMAIL, to=f"user{number}@example.com", **fields
    )


def sent_json(request: httpx.Request) -> Any:
    return json.loads(request.read())


def test_the_batch_request_is_one_mail_send_with_a_personalization_each() -> None:
    """The documented request: shared content once, each recipient their own copy and id."""
    shared: dict[str, Any] = {
        "html": "<p>Everything is <b>20%</b> off</p>",
        "reply_to": ("support@example.com",),
        "headers": {"X-Campaign": "spring"},
        "attachments": (Attachment(filename="prices.pdf", content=b"%PDF-1.4"),),
        "metadata": {"campaign": "spring"},
        "tags": ("sale",),
        "category": "marketing",
        "unsubscribe_url": "https://shop.example.com/unsubscribe",
        "send_at": datetime.fromtimestamp(NOW + 600, tz=timezone.utc),
    }
    messages = [
        outbound(0, recipient=Recipient(email="user0@example.com", name="Ann"), **shared),
        outbound(1, **shared),
    ]
    request = make().build_batch_request(messages)
    assert request.method == "POST"
    assert str(request.url) == MAIL_SEND
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert sent_json(request) == {
        "personalizations": [
            {
                "to": [{"email": "user0@example.com", "name": "Ann"}],
                "custom_args": {MESSAGE_ID_ARG: "msg-0"},
            },
            {"to": [{"email": "user1@example.com"}], "custom_args": {MESSAGE_ID_ARG: "msg-1"}},
        ],
        "from": {"email": "shop@example.com", "name": "Shop"},
        "reply_to": {"email": "support@example.com"},
        "subject": "Spring sale",
        "content": [
            {"type": "text/plain", "value": "Everything is 20% off"},
            {"type": "text/html", "value": "<p>Everything is <b>20%</b> off</p>"},
        ],
        "attachments": [
            {
                "content": base64.b64encode(b"%PDF-1.4").decode(),
                "filename": "prices.pdf",
                "type": "application/pdf",
                "disposition": "attachment",
            }
        ],
        "headers": {
            "X-Campaign": "spring",
            "List-Unsubscribe": "<https://shop.example.com/unsubscribe>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "categories": ["sale"],
        "custom_args": {"campaign": "spring"},
        "send_at": NOW + 600,
    }


def test_the_eu_region_and_compact_bytes() -> None:
    request = make(region="eu").build_batch_request([outbound(0), outbound(1)])
    assert str(request.url) == MAIL_SEND_EU
    assert request.content == (
        b'{"personalizations":[{"to":[{"email":"user0@example.com"}],'
        b'"custom_args":{"anysend_message_id":"msg-0"}},{"to":[{"email":"user1@example.com"}],'
        b'"custom_args":{"anysend_message_id":"msg-1"}}],'
        b'"from":{"email":"shop@example.com","name":"Shop"},"subject":"Spring sale",'
        b'"content":[{"type":"text/plain","value":"Everything is 20% off"}]}'
    )


def test_a_subject_goes_into_the_personalizations_whose_subject_differs() -> None:
    messages = [outbound(0, subject="Hi Ann"), outbound(1, subject="Hi Bob"), outbound(2)]
    sent = make().batch_payload(messages)
    assert sent["subject"] == "Hi Ann"
    assert [p.get("subject") for p in sent["personalizations"]] == [
        None,
        "Hi Bob",
        "Spring sale",
    ]


def test_a_dynamic_template_gives_each_personalization_its_data() -> None:
    """With a template_id, dynamic_template_data and substitutions belong to personalizations."""

    def templated(number: int, name: str) -> OutboundMessage:
        options = {
            "template_id": "d-0123456789abcdef",
            "dynamic_template_data": {"name": name},
            "substitutions": {"-n-": name},
        }
        return outbound(number, subject=None, text=None, provider_options=options)

    sent = make().batch_payload([templated(0, "Ann"), templated(1, "Bob")])
    assert sent["template_id"] == "d-0123456789abcdef"
    assert "subject" not in sent
    assert "content" not in sent
    assert sent["personalizations"] == [
        {
            "to": [{"email": "user0@example.com"}],
            "custom_args": {MESSAGE_ID_ARG: "msg-0"},
            "dynamic_template_data": {"name": "Ann"},
            "substitutions": {"-n-": "Ann"},
        },
        {
            "to": [{"email": "user1@example.com"}],
            "custom_args": {MESSAGE_ID_ARG: "msg-1"},
            "dynamic_template_data": {"name": "Bob"},
            "substitutions": {"-n-": "Bob"},
        },
    ]


def test_extra_custom_args_stay_shared_and_ours_is_per_personalization() -> None:
    options = {"custom_args": {"batch": "7"}}
    sent = make().batch_payload([outbound(0, provider_options=options), outbound(1)])
    assert sent["custom_args"] == {"batch": "7"}
    assert [p["custom_args"] for p in sent["personalizations"]] == [
        {MESSAGE_ID_ARG: "msg-0"},
        {MESSAGE_ID_ARG: "msg-1"},
    ]


def test_what_may_share_a_request() -> None:
    sendgrid = make()
    assert SendGrid.max_batch == MAX_PERSONALIZATIONS == 1000
    assert SendGrid.batch_varies == frozenset({"subject"})
    assert sendgrid.batchable(outbound(0))
    assert not sendgrid.batchable(outbound(0, cc=("boss@example.com",)))
    assert not sendgrid.batchable(outbound(0, bcc=("audit@example.com",)))
    assert not sendgrid.batchable(outbound(0, provider_options={"personalizations": []}))


def test_batches_breaking_sendgrid_rules_are_refused() -> None:
    sendgrid = make()
    with pytest.raises(UnsupportedFeatureError, match="at most 1000"):
        sendgrid.build_batch_request([outbound(n) for n in range(1001)])
    with pytest.raises(ContentError, match="needs a subject"):
        sendgrid.build_batch_request([outbound(0), outbound(1, subject=None)])
    with pytest.raises(ContentError):
        sendgrid.build_batch_request([])
    assert (
        len(
            sent_json(sendgrid.build_batch_request([outbound(n) for n in range(1000)]))[
                "personalizations"
            ]
        )
        == 1000
    )


def test_every_message_gets_the_requests_message_id() -> None:
    messages = [outbound(0), outbound(1), outbound(2)]
    answer = httpx.Response(202, headers={"X-Message-Id": "XM-batch"})
    receipts = make().parse_batch_response(answer, messages)
    assert receipts == [Receipt(provider_message_id="XM-batch", status=DeliveryStatus.ACCEPTED)] * 3


def test_a_refusal_refuses_the_whole_request() -> None:
    body = {
        "errors": [
            {
                "message": "Does not contain a valid address.",
                "field": "personalizations.1.to.0.email",
                "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html",
            }
        ]
    }
    answer = httpx.Response(400, json=body)
    with pytest.raises(ProviderError) as caught:
        make().parse_batch_response(answer, [outbound(0), outbound(1)])
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT
    assert caught.value.code == "personalizations.1.to.0.email"
    assert not caught.value.retryable


def test_events_of_one_batch_name_each_recipients_message() -> None:
    """Each copy's events carry its personalization's custom_args and the request's id."""
    events = [
        {
            "email": f"user{n}@example.com",
            "event": "delivered",
            "sg_event_id": f"ev-{n}",
            "sg_message_id": f"XM-batch.filterdrecv-5bd6f6d8c6-abcde-1-{n}",
            "timestamp": NOW,
            MESSAGE_ID_ARG: f"msg-{n}",
            "campaign": "spring",
        }
        for n in range(2)
    ]
    parsed = make().parse_webhook(callback(json.dumps(events).encode()))
    assert [
        (e.message_id, e.provider_message_id, e.recipient)
        for e in parsed
        if isinstance(e, DeliveryEvent)
    ] == [
        ("msg-0", "XM-batch", "user0@example.com"),
        ("msg-1", "XM-batch", "user1@example.com"),
    ]
