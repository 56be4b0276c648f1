"""send_batch through AsyncClient: provider batch APIs (tests/_sync is generated from this file).

Requests are mocked with respx and checked as SendGrid and Mailgun document them; callbacks go
through ``client.webhooks`` as a web endpoint would pass them.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from anysend import (
    AsyncClient,
    AttemptOutcome,
    ConfigurationError,
    DeliveryStatus,
    ErrorCategory,
    InvalidRecipientError,
    Message,
    RateLimit,
    Receipt,
    Recipient,
    SendResult,
    Templates,
    WebhookRequest,
)
from anysend._async._store import open_store
from anysend._events import DeliveryEvent
from anysend._results import Attempt
from anysend.providers.mailgun import Mailgun
from anysend.providers.mailgun import sign as mailgun_sign
from anysend.providers.sendgrid import (
    MESSAGE_ID_ARG,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGrid,
)
from anysend.providers.sendgrid import sign as sendgrid_sign
from anysend.testing import MemoryProvider, VirtualClock

pytestmark = pytest.mark.anyio

NOW = 1_795_172_500
SENDGRID_URL = "https://api.sendgrid.com/v3/mail/send"
SENDGRID_KEY = "SG.batch-test-key.0123456789"
MAILGUN_URL = "https://api.mailgun.net/v3/mg.example.com/messages"
MAILGUN_KEY = "key-batch-test-0123456789"
MAILGUN_SIGNING_KEY = "mailgun-signing-key-for-batch-tests"
MAILGUN_TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef01"
EVENT_KEY = ec.generate_private_key(ec.SECP256R1())
EVENT_PUBLIC_KEY = base64.b64encode(
    EVENT_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
NEWS = Message(subject="Spring sale", text="Everything is 20% off", metadata={"campaign": "spring"})


def sendgrid() -> SendGrid:
    provider = SendGrid(
        api_key=SENDGRID_KEY, sender="Shop <shop@example.com>", webhook_public_key=EVENT_PUBLIC_KEY
    )
    provider.now = lambda: float(NOW)
    return provider


def mailgun() -> Mailgun:
    provider = Mailgun(
        api_key=MAILGUN_KEY,
        domain="mg.example.com",
        sender="shop@mg.example.com",
        webhook_signing_key=MAILGUN_SIGNING_KEY,
    )
    provider.now = lambda: float(NOW)
    return provider


def people(count: int) -> list[Recipient]:
    return [Recipient(email=f"user{i}@example.com") for i in range(count)]


def accepted(x_message_id: str) -> httpx.Response:
    return httpx.Response(202, headers={"X-Message-Id": x_message_id})


def body(request: httpx.Request) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(request.content)
    return data


def sendgrid_events(events: list[dict[str, Any]]) -> WebhookRequest:
    raw = json.dumps(events).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sendgrid_sign(raw, NOW, EVENT_KEY),
        TIMESTAMP_HEADER: str(NOW),
    }
    return WebhookRequest(url="https://app.example.com/hooks/sendgrid", headers=headers, body=raw)


def mailgun_event(event_data: dict[str, Any]) -> WebhookRequest:
    signature = {
        "timestamp": str(NOW),
        "token": MAILGUN_TOKEN,
        "signature": mailgun_sign(NOW, MAILGUN_TOKEN, MAILGUN_SIGNING_KEY),
    }
    raw = json.dumps({"signature": signature, "event-data": event_data}).encode()
    return WebhookRequest(
        url="https://app.example.com/hooks/mailgun",
        headers={"Content-Type": "application/json"},
        body=raw,
    )


# -- one request per chunk ---------------------------------------------------------------------


async def test_one_request_per_chunk_of_1000_each_a_single_rate_limit_token() -> None:
    clock = VirtualClock()
    answers = iter([accepted("XM-0"), accepted("XM-1"), accepted("XM-2")])
    recipients = people(2_500)
    limits = {"sendgrid": RateLimit(per_second=1, burst=1)}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(side_effect=lambda request: next(answers))
        async with AsyncClient([sendgrid()], clock=clock, rate_limits=limits) as client:
            results = await client.send_batch(NEWS, recipients)
    assert route.call_count == 3
    sent = [body(call.request) for call in route.calls]
    assert [len(b["personalizations"]) for b in sent] == [1000, 1000, 500]
    for call in route.calls:
        assert call.request.headers["Authorization"] == f"Bearer {SENDGRID_KEY}"
        assert call.request.headers["Content-Type"] == "application/json"
    assert clock.monotonic() == 2.0  # three requests at one a second: not 2,500 sends

    assert [r.index for r in results] == list(range(2_500))
    assert all(r.error is None and r.result is not None and r.ok for r in results)
    by_address = {r.result.address: r.result for r in results if r.result is not None}
    assert len({r.message_id for r in by_address.values()}) == 2_500
    for number, request_body in enumerate(sent):
        assert request_body["subject"] == "Spring sale"
        assert request_body["content"] == [{"type": "text/plain", "value": "Everything is 20% off"}]
        assert request_body["custom_args"] == {"campaign": "spring"}
        for personalization in request_body["personalizations"]:
            [to] = personalization["to"]
            result = by_address[to["email"]]
            assert personalization["custom_args"] == {MESSAGE_ID_ARG: result.message_id}
            assert result.provider_message_id == f"XM-{number}"
            assert result.provider == "sendgrid"
            [attempt] = result.attempts
            assert attempt.outcome is AttemptOutcome.SENT
    assert [p["to"][0]["email"] for b in sent for p in b["personalizations"]] == [
        r.email for r in recipients
    ]


async def test_mailgun_chunks_at_1000_recipients_with_recipient_variables() -> None:
    answers = iter(
        [httpx.Response(200, json={"id": f"<batch-{n}@mg.example.com>"}) for n in range(2)]
    )
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(MAILGUN_URL).mock(side_effect=lambda request: next(answers))
        async with AsyncClient([mailgun()]) as client:
            results = await client.send_batch(NEWS, people(1_001))
    # 1,000 in one batch; the one left over goes alone, as send() sends it.
    assert route.call_count == 2
    ids = [r.result.provider_message_id for r in results if r.result]
    assert ids == ["batch-0@mg.example.com"] * 1000 + ["batch-1@mg.example.com"]
    batch, single = (call.request.content.decode() for call in route.calls)
    assert batch.count('name="to"') == 1000
    assert 'name="v:anysend-id"\r\n\r\n%recipient.anysend_id%\r\n' in batch
    assert 'name="recipient-variables"' in batch
    last = results[-1].result
    assert last is not None
    assert single.count('name="to"') == 1
    assert f'name="v:anysend-id"\r\n\r\n{last.message_id}\r\n' in single
    assert "recipient-variables" not in single


async def test_each_recipient_gets_their_own_subject_in_one_request() -> None:
    templates = Templates(
        {"welcome/email.subject.txt": "Welcome, {{ name }}", "welcome/email.txt": "Glad you came."}
    )
    message = Message(template="welcome", data={"name": "friend"})
    recipients: list[Any] = [
        (Recipient(email="ann@example.com", name="Ann"), {"name": "Ann"}),
        Recipient(email="bob@example.com"),
    ]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(return_value=accepted("XM-subjects"))
        async with AsyncClient([sendgrid()], templates=templates) as client:
            results = await client.send_batch(message, recipients)
    [call] = route.calls
    sent = body(call.request)
    ann, bob = (r.result for r in results)
    assert ann is not None
    assert bob is not None
    assert sent == {
        "personalizations": [
            {
                "to": [{"email": "ann@example.com", "name": "Ann"}],
                "custom_args": {MESSAGE_ID_ARG: ann.message_id},
            },
            {
                "to": [{"email": "bob@example.com"}],
                "custom_args": {MESSAGE_ID_ARG: bob.message_id},
                "subject": "Welcome, friend",
            },
        ],
        "from": {"email": "shop@example.com", "name": "Shop"},
        "subject": "Welcome, Ann",
        "content": [{"type": "text/plain", "value": "Glad you came."}],
    }


# -- callbacks and the store -------------------------------------------------------------------


async def test_sendgrid_callbacks_of_one_batch_land_on_each_recipients_message() -> None:
    seen: list[SendResult] = []

    async def on_result(result: SendResult) -> None:
        seen.append(result)

    recipients = [
        Recipient(id="u-ann", email="ann@example.com"),
        Recipient(id="u-bob", email="bob@example.com"),
    ]
    with respx.mock(assert_all_called=True) as mock:
        mock.post(SENDGRID_URL).mock(return_value=accepted("XM-shared"))
        async with AsyncClient([sendgrid()], store=":memory:", on_result=[on_result]) as client:
            ann, bob = (r.result for r in await client.send_batch(NEWS, recipients))
            assert ann is not None
            assert bob is not None
            events = [
                {
                    "email": "ann@example.com",
                    "event": "delivered",
                    "sg_message_id": "XM-shared.filterdrecv-1.0",
                    "sg_event_id": "ev-ann",
                    "timestamp": NOW,
                    MESSAGE_ID_ARG: ann.message_id,
                    "campaign": "spring",
                },
                {
                    "email": "bob@example.com",
                    "event": "bounce",
                    "type": "bounce",
                    "status": "5.1.1",
                    "reason": "550 5.1.1 no such user",
                    "sg_message_id": "XM-shared.filterdrecv-1.1",
                    "sg_event_id": "ev-bob",
                    "timestamp": NOW,
                    MESSAGE_ID_ARG: bob.message_id,
                    "campaign": "spring",
                },
            ]
            handled = [
                event
                for event in await client.webhooks.handle("sendgrid", sendgrid_events(events))
                if isinstance(event, DeliveryEvent)
            ]
            assert [e.message_id for e in handled] == [ann.message_id, bob.message_id]
            assert {e.provider_message_id for e in handled} == {"XM-shared"}
            store = client.store
            assert store is not None
            stored_ann = await store.get_message(ann.message_id)
            stored_bob = await store.get_message(bob.message_id)
            history = await client.history("u-bob")
    assert [r.message_id for r in seen] == [ann.message_id, bob.message_id]
    assert stored_ann is not None
    assert stored_bob is not None
    assert stored_ann.status is DeliveryStatus.DELIVERED
    assert stored_bob.status is DeliveryStatus.UNDELIVERABLE
    assert stored_ann.recipient_id == "u-ann"
    assert bob.message_id in {entry.message_id for entry in history}


async def test_mailgun_callbacks_of_one_batch_land_on_each_recipients_message() -> None:
    shared = "20261120080000.1.BATCH@mg.example.com"
    with respx.mock(assert_all_called=True) as mock:
        mock.post(MAILGUN_URL).mock(
            return_value=httpx.Response(200, json={"id": f"<{shared}>", "message": "Queued."})
        )
        async with AsyncClient([mailgun()], store=":memory:") as client:
            ann, bob = (r.result for r in await client.send_batch(NEWS, people(2)))
            assert ann is not None
            assert bob is not None

            def event(result: SendResult, name: str, event_id: str) -> dict[str, Any]:
                # Mailgun expands %recipient.anysend_id% in v:anysend-id for each copy.
                return {
                    "event": name,
                    "id": event_id,
                    "timestamp": NOW,
                    "recipient": result.address,
                    "message": {"headers": {"message-id": shared}},
                    "user-variables": {"anysend-id": result.message_id, "campaign": "spring"},
                }

            await client.webhooks.handle("mailgun", mailgun_event(event(bob, "delivered", "e-1")))
            store = client.store
            assert store is not None
            stored_ann = await store.get_message(ann.message_id)
            stored_bob = await store.get_message(bob.message_id)
    assert stored_ann is not None
    assert stored_bob is not None
    assert stored_bob.status is DeliveryStatus.DELIVERED
    assert stored_ann.status is DeliveryStatus.ACCEPTED


async def test_an_early_callback_waits_for_its_own_message_not_a_sibling() -> None:
    """A callback that comes before a batch is recorded is applied to its own message."""
    store = open_store(":memory:")
    assert store is not None
    at = datetime.fromtimestamp(NOW, tz=timezone.utc)
    early = DeliveryEvent(
        provider="sendgrid",
        provider_message_id="XM-early",
        message_id="bob-id",
        recipient="bob@example.com",
        status=DeliveryStatus.DELIVERED,
        event_id="ev-early",
    )
    outcome = await store.ingest(early, now=at)
    assert outcome.new
    assert outcome.message_id is None
    for message_id, address in (("ann-id", "ann@example.com"), ("bob-id", "bob@example.com")):
        receipt = Receipt(provider_message_id="XM-early")
        attempt = Attempt(
            channel="email",
            provider="sendgrid",
            outcome=AttemptOutcome.SENT,
            address=address,
            number=1,
            receipt=receipt,
        )
        result = SendResult(
            message_id=message_id,
            status=DeliveryStatus.ACCEPTED,
            channel="email",
            provider="sendgrid",
            address=address,
            receipt=receipt,
            attempts=(attempt,),
        )
        await store.save_result(result, now=at, recipient_id=None, category=None)
    ann, bob = await store.get_message("ann-id"), await store.get_message("bob-id")
    await store.aclose()
    assert ann is not None
    assert bob is not None
    assert ann.status is DeliveryStatus.ACCEPTED
    assert bob.status is DeliveryStatus.DELIVERED


# -- failures ----------------------------------------------------------------------------------


async def test_a_retryable_error_retries_the_whole_chunk() -> None:
    answers = iter([httpx.Response(503, text="busy"), accepted("XM-retried")])
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(side_effect=lambda request: next(answers))
        async with AsyncClient([sendgrid()], clock=VirtualClock()) as client:
            results = await client.send_batch(NEWS, people(3))
    assert route.call_count == 2
    first, second = (call.request.content for call in route.calls)
    assert first == second  # the same chunk, the same ids
    for item in results:
        assert item.result is not None
        assert item.result.ok
        failed, sent = item.result.attempts
        assert failed.outcome is AttemptOutcome.FAILED
        assert failed.number == 1
        assert failed.error is not None
        assert failed.error.category is ErrorCategory.UNAVAILABLE
        assert sent.outcome is AttemptOutcome.SENT
        assert sent.number == 2
        assert item.result.provider_message_id == "XM-retried"


async def test_a_permanent_error_fails_every_recipient_of_the_chunk_with_the_reason() -> None:
    refusal = {"errors": [{"message": "Invalid type. Expected: string.", "field": "subject"}]}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(return_value=httpx.Response(400, json=refusal))
        async with AsyncClient([sendgrid()], store=":memory:") as client:
            results = await client.send_batch(NEWS, people(3))
            store = client.store
            assert store is not None
            stored = [await store.get_message(r.result.message_id) for r in results if r.result]
    assert route.call_count == 1
    for item in results:
        assert item.result is not None
        assert not item.result.ok
        assert item.result.status is DeliveryStatus.REJECTED
        error = item.result.error
        assert error is not None
        assert error.category is ErrorCategory.CONTENT_REJECTED
        assert "Invalid type" in error.message
    assert [s.status if s else None for s in stored] == [DeliveryStatus.REJECTED] * 3


async def test_an_ambiguous_timeout_is_not_sent_again() -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(side_effect=httpx.ReadTimeout("no answer"))
        async with AsyncClient([sendgrid()], clock=VirtualClock()) as client:
            results = await client.send_batch(NEWS, people(2))
    assert route.call_count == 1
    assert [r.result.status for r in results if r.result] == [DeliveryStatus.UNKNOWN] * 2


async def test_bad_recipients_fail_alone_before_any_request() -> None:
    recipients: list[Any] = [
        Recipient(email="ann@example.com"),
        {"email": "not an address"},
        "no-such-profile",
        ("bob@example.com", {}),  # a bare string is a profile id, even in a pair
        {"emial": "dan@example.com"},  # a typo in a field name
        Recipient(email="cy@example.com"),
    ]
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(return_value=accepted("XM-good"))
        async with AsyncClient([sendgrid()], store=":memory:") as client:
            results = await client.send_batch(NEWS, recipients)
    [call] = route.calls
    sent = [p["to"][0]["email"] for p in body(call.request)["personalizations"]]
    assert sent == ["ann@example.com", "cy@example.com"]
    assert [type(r.error) for r in results] == [
        type(None),
        InvalidRecipientError,
        ConfigurationError,
        ConfigurationError,
        InvalidRecipientError,
        type(None),
    ]
    assert [r.index for r in results] == [0, 1, 2, 3, 4, 5]


async def test_malformed_items_are_typed_errors() -> None:
    async with AsyncClient([sendgrid()]) as client:
        results = await client.send_batch(NEWS, [42, ("a@example.com", "data")])  # type: ignore[list-item]
    assert [type(r.error) for r in results] == [ConfigurationError, ConfigurationError]


# -- what is not batched -----------------------------------------------------------------------


async def test_providers_without_a_batch_api_send_one_by_one() -> None:
    outbox = MemoryProvider(name="mail", channels=frozenset({"email"}))
    async with AsyncClient([outbox]) as client:
        results = await client.send_batch(NEWS, people(5))
    assert all(r.ok for r in results)
    assert sorted(m.to for m in outbox.messages) == [f"user{i}@example.com" for i in range(5)]
    assert len({r.result.message_id for r in results if r.result}) == 5


async def test_the_provider_argument_picks_the_batch_api() -> None:
    outbox = MemoryProvider(name="mail", channels=frozenset({"email"}))
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(return_value=accepted("XM-chosen"))
        async with AsyncClient([outbox, sendgrid()]) as client:
            chosen = await client.send_batch(NEWS, people(3), provider="sendgrid")
            default = await client.send_batch(NEWS, people(3))
            with pytest.raises(ConfigurationError, match="no provider named 'nope'"):
                await client.send_batch(NEWS, people(1), provider="nope")
    assert route.call_count == 1
    assert {r.result.provider for r in chosen if r.result} == {"sendgrid"}
    assert {r.result.provider for r in default if r.result} == {"mail"}
    assert len(outbox.messages) == 3


async def test_messages_that_cannot_share_a_request_go_one_by_one() -> None:
    copied = NEWS.model_copy(update={"cc": ("boss@example.com",)})
    keyed = NEWS.model_copy(update={"idempotency_key": "spring-2026"})
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SENDGRID_URL).mock(return_value=accepted("XM-single"))
        async with AsyncClient([sendgrid()]) as client:
            with_cc = await client.send_batch(copied, people(2))
            assert route.call_count == 2  # a cc would get one copy per recipient
            assert all(len(body(c.request)["personalizations"]) == 1 for c in route.calls)
            await client.send_batch(keyed, people(1))
            assert route.call_count == 3
            repeated = await client.send_batch(
                NEWS, [*people(2), Recipient(email="USER0@example.com")]
            )
    assert all(r.ok for r in with_cc + repeated)
    # user0 twice: SendGrid refuses an address twice in a request, so it goes alone.
    batch, alone = (body(c.request)["personalizations"] for c in route.calls[3:])
    assert [p["to"][0]["email"] for p in batch] == ["user0@example.com", "user1@example.com"]
    assert [p["to"][0]["email"] for p in alone] == ["USER0@example.com"]


async def test_a_closed_client_refuses() -> None:
    client = AsyncClient([sendgrid()])
    await client.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await client.send_batch(NEWS, people(1))
