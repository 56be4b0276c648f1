"""The back-in-stock story end to end, on a virtual clock, with real adapters and callbacks.

Email goes out through the Mailgun adapter and SMS through the Twilio adapter (both mocked with
respx, each request checked as the provider documents it); delivery and open callbacks are
signed the way Mailgun signs them and arrive through ``anysend.asgi.WebhookApp``. Three runs:

1. the email is delivered but not opened within three days: the SMS with the discount goes;
2. an open callback arrives on day two: the SMS never goes;
3. the customer buys in the store: the cart is cancelled and nothing more is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from anysend import (
    AsyncClient,
    Client,
    DeliveryStatus,
    EventType,
    Flow,
    Message,
    NotOpened,
    Recipient,
    Step,
    StepState,
)
from anysend.asgi import WebhookApp
from anysend.providers.mailgun import Mailgun
from anysend.providers.twilio import Twilio
from anysend.testing import VirtualClock

pytestmark = pytest.mark.anyio

SIGNING_KEY = "mailgun-signing-key-test-0b5e"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
MAILGUN_URL = "https://api.mailgun.net/v3/mg.example.com/messages"
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
MAILGUN_ID = "20261123090000.1.BACKINSTOCK@mg.example.com"
TWILIO_SID = "SM0123456789abcdef0123456789abcdef"
START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)

TEMPLATES = {
    "back_in_stock/email.subject.txt": "{{ product }} is back in size {{ size }}",
    "back_in_stock/email.txt": "Good news: {{ product }} in size {{ size }} is back.",
    "discount/sms.txt": "{{ product }} in {{ size }} is back: 10% off with code {{ code }}",
}

BACK_IN_STOCK = Flow(
    name="back-in-stock",
    category="marketing",
    cancel_on=["purchase"],
    steps=[
        Step(
            via="email",
            message=Message(
                template="back_in_stock", unsubscribe_url="https://shop.example.com/unsubscribe"
            ),
        ),
        Step(via="sms", template="discount", when=NotOpened(within=timedelta(days=3))),
    ],
)


@dataclass
class Shop:
    client: AsyncClient
    clock: VirtualClock
    web: httpx.AsyncClient
    mailgun: respx.Route
    twilio: respx.Route


def adapters(clock: VirtualClock) -> tuple[Mailgun, Twilio]:
    """Mailgun for email (its replay window on the virtual clock) and Twilio for SMS."""
    mailgun = Mailgun(
        api_key="key-test-3f9a",
        domain="mg.example.com",
        sender="Shop <shop@mg.example.com>",
        webhook_signing_key=SIGNING_KEY,
    )
    mailgun.now = lambda: clock.now().timestamp()
    twilio = Twilio(account_sid=ACCOUNT_SID, auth_token="twilio-token", sender="+15005550006")
    return mailgun, twilio


@contextmanager
def provider_apis() -> Iterator[tuple[respx.Route, respx.Route]]:
    """Both providers' send endpoints mocked as they answer an accepted message."""
    with respx.mock(assert_all_called=False) as mock:
        email_route = mock.post(MAILGUN_URL).respond(
            200, json={"id": f"<{MAILGUN_ID}>", "message": "Queued. Thank you."}
        )
        sms_route = mock.post(TWILIO_URL).respond(201, json={"sid": TWILIO_SID, "status": "queued"})
        mock.route(host="shop.example.com").pass_through()
        yield email_route, sms_route


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    clock = VirtualClock(start=START)
    with provider_apis() as (email_route, sms_route):
        async with AsyncClient(
            list(adapters(clock)), templates=TEMPLATES, store=":memory:", clock=clock
        ) as client:
            await client.profiles.upsert(
                Recipient(id="ann", email="ann@example.net", phone="+48 600 700 800")
            )
            transport = httpx.ASGITransport(app=WebhookApp(client, prefix="/hooks"))
            async with httpx.AsyncClient(
                transport=transport, base_url="https://shop.example.com"
            ) as web:
                yield Shop(client, clock, web, email_route, sms_route)


def mailgun_callback(event: str, at: datetime, event_id: str) -> bytes:
    """A Mailgun event webhook for the email, signed with the signing key."""
    timestamp = str(int(at.timestamp()))
    token = hashlib.sha256(event_id.encode()).hexdigest()[:50]
    signature = hmac.new(
        SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": event,
            "id": event_id,
            "timestamp": at.timestamp(),
            "recipient": "ann@example.net",
            "message": {"headers": {"message-id": MAILGUN_ID, "to": "ann@example.net"}},
        },
    }
    return json.dumps(body).encode()


async def post_callback(shop: Shop, event: str, event_id: str) -> httpx.Response:
    body = mailgun_callback(event, shop.clock.now(), event_id)
    return await shop.web.post(
        "/hooks/mailgun", content=body, headers={"Content-Type": "application/json"}
    )


async def email_goes_out(shop: Shop) -> str:
    run_id = await shop.client.start(
        BACK_IN_STOCK,
        to="ann",
        data={"product": "Trail runner", "size": "42", "code": "BACK10"},
        key="cart:123",
    )
    assert await shop.client.run_due() == 1
    assert shop.mailgun.call_count == 1
    request = shop.mailgun.calls.last.request
    assert request.headers["Authorization"].startswith("Basic ")
    body = request.content.decode("latin-1")
    assert "Trail runner is back in size 42" in body
    assert "ann@example.net" in body
    clock = shop.clock
    clock.advance(timedelta(minutes=2))
    response = await post_callback(shop, "delivered", "evt-delivered")
    assert response.status_code == 200
    return run_id


async def test_not_opened_within_three_days_sends_the_discount_sms(shop: Shop) -> None:
    run_id = await email_goes_out(shop)
    shop.clock.advance(timedelta(days=2, hours=23))
    assert await shop.client.run_due() == 0  # not yet: three days have not passed
    shop.clock.advance(timedelta(hours=1))
    assert await shop.client.run_due() == 1
    assert shop.twilio.call_count == 1
    form = parse_qs(shop.twilio.calls.last.request.content.decode())
    assert form["To"] == ["+48600700800"]
    assert form["Body"] == ["Trail runner in 42 is back: 10% off with code BACK10"]

    steps = await shop.client.store.run_steps(run_id)  # type: ignore[union-attr]
    assert [s.state for s in steps] == [StepState.SENT, StepState.SENT]
    email = await shop.client.store.get_message(steps[0].message_id or "")  # type: ignore[union-attr]
    assert email is not None
    assert email.status is DeliveryStatus.DELIVERED
    assert email.opened_at is None
    history = await shop.client.history("ann")
    assert [
        (h.kind, h.channel and h.channel.value, h.status and h.status.value) for h in history
    ] == [
        ("message", "email", "accepted"),
        ("status", "email", "delivered"),
        ("message", "sms", "accepted"),
    ]
    # A late open of the email changes the record, not what already happened.
    response = await post_callback(shop, "opened", "evt-opened-late")
    assert response.status_code == 200
    assert await shop.client.run_due() == 0
    assert shop.twilio.call_count == 1


async def test_an_open_within_three_days_means_no_sms(shop: Shop) -> None:
    run_id = await email_goes_out(shop)
    shop.clock.advance(timedelta(days=2))
    response = await post_callback(shop, "opened", "evt-opened")
    assert response.status_code == 200
    # The same callback again (a provider retry) changes nothing.
    again = await post_callback(shop, "opened", "evt-opened")
    assert again.status_code == 200
    shop.clock.advance(timedelta(days=1, seconds=1))
    assert await shop.client.run_due() == 1
    assert shop.twilio.call_count == 0
    steps = await shop.client.store.run_steps(run_id)  # type: ignore[union-attr]
    assert [s.state for s in steps] == [StepState.SENT, StepState.SKIPPED]
    assert steps[1].detail == "step 0 was opened"
    events = [h.event.value for h in await shop.client.history("ann") if h.event]
    assert events == ["opened"]


async def test_a_purchase_in_the_store_cancels_the_cart_reminder(shop: Shop) -> None:
    run_id = await email_goes_out(shop)
    shop.clock.advance(timedelta(hours=5))
    assert await shop.client.record_event("ann", "purchase", {"order": "4521"}) == 1
    shop.clock.advance(timedelta(days=5))
    assert await shop.client.run_due() == 0
    assert shop.twilio.call_count == 0
    steps = await shop.client.store.run_steps(run_id)  # type: ignore[union-attr]
    assert [s.state for s in steps] == [StepState.SENT, StepState.CANCELED]
    run = await shop.client.store.get_run(run_id)  # type: ignore[union-attr]
    assert run is not None
    assert run["state"] == "canceled"


async def test_cancel_by_key_and_unverified_callbacks(shop: Shop) -> None:
    await email_goes_out(shop)
    assert await shop.client.cancel("cart:123") == 1
    body = mailgun_callback("clicked", shop.clock.now(), "evt-click")
    headers = {"Content-Type": "application/json"}
    assert (await shop.web.post("/hooks/mailgun", content=body, headers=headers)).status_code == 200
    # Mailgun signs the timestamp and token only: the adapter refuses a token that comes back
    # with another body (a replay), and a signature made with another key.
    forged = body.replace(b'"clicked"', b'"opened"')
    assert (
        await shop.web.post("/hooks/mailgun", content=forged, headers=headers)
    ).status_code == 401
    wrong = json.loads(mailgun_callback("opened", shop.clock.now(), "evt-other"))
    wrong["signature"]["signature"] = "0" * 64
    response = await shop.web.post(
        "/hooks/mailgun", content=json.dumps(wrong).encode(), headers=headers
    )
    assert response.status_code == 401
    events = [h.event.value for h in await shop.client.history("ann") if h.event]
    assert events == ["clicked"]  # nothing unverified was stored
    shop.clock.advance(timedelta(days=4))
    assert await shop.client.run_due() == 0
    assert shop.twilio.call_count == 0


async def test_the_sync_client_behind_the_asgi_app() -> None:
    """The same story with the sync Client: the app runs its webhook handling in a thread."""
    clock = VirtualClock(start=START)
    with (
        provider_apis() as (email_route, sms_route),
        Client(list(adapters(clock)), templates=TEMPLATES, store=":memory:", clock=clock) as client,
    ):
        client.profiles.upsert(Recipient(id="ann", email="ann@example.net", phone="+48600700800"))
        client.start(BACK_IN_STOCK, to="ann", data={"product": "Boots", "size": "40", "code": "B"})
        assert client.run_due() == 1
        assert email_route.call_count == 1
        transport = httpx.ASGITransport(app=WebhookApp(client, prefix="/hooks"))
        async with httpx.AsyncClient(
            transport=transport, base_url="https://shop.example.com"
        ) as web:
            clock.advance(timedelta(days=1))
            body = mailgun_callback("opened", clock.now(), "evt-sync-open")
            response = await web.post(
                "/hooks/mailgun", content=body, headers={"Content-Type": "application/json"}
            )
        assert response.status_code == 200
        clock.advance(timedelta(days=2))
        assert client.run_due() == 1
        assert sms_route.call_count == 0
        assert [h.event for h in client.history("ann") if h.event] == [EventType.OPENED]
