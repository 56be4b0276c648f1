"""The Viber adapter: send_message requests, in-body status codes, signed callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Channel,
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InboundMessage,
    Message,
    OutboundMessage,
    ProviderError,
    Reason,
    Recipient,
    RetryPolicy,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers.viber import (
    CONTACT_INVALID,
    ERROR_CODES,
    MAX_TEXT,
    REPLAY_WINDOW,
    STATUS_NAMES,
    Viber,
    signature,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract
from tests.strategies import damaged_json

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "viber"
TOKEN = "4a5b6c7d8e9f0a1b-2c3d4e5f6a7b8c9d-0e1f2a3b4c5d6e7f"
SEND_URL = "https://chatapi.viber.com/pa/send_message"
CALLBACK_URL = "https://app.example.com/hooks/viber"
USER = "01234567890A="
MESSAGE_TOKEN = 5741311803571721087  # above 2**53: must stay exact
AVATAR = "https://cdn.example.com/shop-avatar.jpg"

# Viber's published vector (Viber/viber-bot-python tests/api/test_api.py).
VECTOR_TOKEN = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
VECTOR_BODY = b'{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}'
VECTOR_SIGNATURE = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef"

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


def make(**settings: Any) -> Viber:
    """A Viber adapter with the test token and sender name."""
    values: dict[str, Any] = {"auth_token": TOKEN, "sender_name": "Shop"}
    values.update(settings)
    return Viber(**values)


def fixture(name: str) -> bytes:
    """A fixture file's exact bytes."""
    return (FIXTURES / name).read_bytes()


def stamp(body: bytes) -> float:
    """The callback's ``timestamp`` in seconds."""
    return float(json.loads(body)["timestamp"]) / 1000


def at(body: bytes, delay: float = 2.0, **settings: Any) -> Viber:
    """An adapter whose clock reads ``delay`` seconds after the callback's timestamp."""
    viber = make(**settings)
    now = stamp(body) + delay
    viber.now = lambda: now
    return viber


def sign(body: bytes, token: str = TOKEN) -> str:
    """Viber's X-Viber-Content-Signature, computed here independently of the adapter."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def callback(body: bytes, *, token: str = TOKEN) -> WebhookRequest:
    """A callback POST carrying ``body``, signed with ``token``."""
    headers = {"X-Viber-Content-Signature": sign(body, token), "Content-Type": "application/json"}
    return WebhookRequest(url=CALLBACK_URL, headers=headers, body=body)


def parse(name: str) -> list[DeliveryEvent | InboundMessage]:
    """A fixture, signed, verified and parsed by an adapter whose clock fits it."""
    body = fixture(name)
    return at(body).parse_webhook(callback(body))


def outbound(**fields: Any) -> OutboundMessage:
    """A Viber message as the client hands it to the adapter."""
    fields.setdefault("text", "Your order has shipped")
    return OutboundMessage(id="msg-1", channel=Channel.VIBER, to=USER, **fields)


def answer(status: int = 0, **fields: Any) -> httpx.Response:
    """Viber's HTTP 200 answer with an in-body status."""
    body: dict[str, Any] = {"status": status, "status_message": STATUS_NAMES.get(status, "x")}
    if status == 0:
        body |= {"message_token": MESSAGE_TOKEN, "chat_hostname": "SN-CHAT-05_"}
    body.update(fields)
    return httpx.Response(200, json=body)


def sent_json(route: respx.Route) -> Any:
    """The JSON body of the last request a route received."""
    return json.loads(route.calls.last.request.read())


def ann() -> Recipient:
    """A recipient reachable on Viber."""
    return Recipient(chat_ids={Channel.VIBER: USER})


def when(ms: int) -> datetime:
    """A UTC datetime from milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_request_through_the_client(respx_mock: respx.MockRouter) -> None:
    """One JSON POST with X-Viber-Auth-Token; message_token is the id, exact as text."""
    route = respx_mock.post(SEND_URL).mock(return_value=answer())
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Your order has shipped"), to=ann())
    assert result.ok
    assert (result.provider, result.address) == ("viber", USER)
    assert result.provider_message_id == "5741311803571721087"
    assert result.receipt is not None
    assert isinstance(result.receipt.raw, dict)
    assert result.receipt.raw["message_token"] == MESSAGE_TOKEN
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == SEND_URL
    assert request.headers["x-viber-auth-token"] == TOKEN
    assert request.headers["content-type"] == "application/json"
    assert sent_json(route) == {
        "receiver": USER,
        "sender": {"name": "Shop"},
        "tracking_data": result.message_id,
        "type": "text",
        "text": "Your order has shipped",
    }


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_with_avatar_and_options(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: the avatar is sent, and provider options are merged into the body."""
    route = respx_mock.post(SEND_URL).mock(return_value=answer())
    keyboard = {"Type": "keyboard", "Buttons": [{"ActionBody": "track", "Text": "Track"}]}
    message = Message(
        text="Your order has shipped",
        provider_options={"viber": {"min_api_version": 3, "keyboard": keyboard}},
    )
    async with anysend.AsyncClient([make(sender_avatar=AVATAR)], clock=VirtualClock()) as client:
        result = await client.send(message, to=ann())
    assert result.ok, result.attempts
    assert sent_json(route) == {
        "receiver": USER,
        "sender": {"name": "Shop", "avatar": AVATAR},
        "tracking_data": result.message_id,
        "type": "text",
        "text": "Your order has shipped",
        "min_api_version": 3,
        "keyboard": keyboard,
    }


def test_sender_subject_and_option_merging() -> None:
    """Message.sender names the sender; a subject leads; sender options merge; None removes."""
    body = make(sender_avatar=AVATAR).payload(
        outbound(
            sender="Shop Support",
            subject="Order 1042",
            provider_options={"sender": {"avatar": None}, "tracking_data": None},
        )
    )
    assert body == {
        "receiver": USER,
        "sender": {"name": "Shop Support"},
        "type": "text",
        "text": "Order 1042\nYour order has shipped",
    }


def test_other_message_types_through_options() -> None:
    """A picture goes with type, media and text as provider options."""
    options = {"type": "picture", "media": "https://cdn.example.com/p.jpg"}
    message = outbound(text="Caption", provider_options=options)
    make().check_supported(message)
    body = make().payload(message)
    assert (body["type"], body["media"], body["text"]) == (
        "picture",
        "https://cdn.example.com/p.jpg",
        "Caption",
    )


@pytest.mark.parametrize(
    ("fields", "category"),
    [
        ({"text": None}, ErrorCategory.CONTENT_REJECTED),
        ({"text": "x" * (MAX_TEXT + 1)}, ErrorCategory.PAYLOAD_TOO_LARGE),
        ({"sender": "S" * 29}, ErrorCategory.CONTENT_REJECTED),
        ({"sender": ""}, ErrorCategory.CONTENT_REJECTED),
    ],
)
def test_refused_before_the_network(fields: dict[str, Any], category: ErrorCategory) -> None:
    """Empty or long text and over-long sender names fail in check_supported."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(**fields))
    assert caught.value.category is category
    assert caught.value.provider == "viber"


def test_text_at_the_limit_is_accepted() -> None:
    """Exactly MAX_TEXT characters pass."""
    make().check_supported(outbound(text="ż" * MAX_TEXT))


@pytest.mark.parametrize(
    "settings",
    [
        {"sender_name": "S" * 29},
        {"sender_name": ""},
        {"sender_avatar": "avatar.jpg"},
        {"sender_avatar": "ftp://cdn.example.com/a.jpg"},
    ],
)
def test_bad_settings_are_refused_without_the_token(settings: dict[str, Any]) -> None:
    """Long or empty sender names and non-http avatars are ConfigurationErrors."""
    with pytest.raises(ConfigurationError) as caught:
        make(**settings)
    assert TOKEN not in str(caught.value)


def test_token_never_prints() -> None:
    """The auth token is hidden from reprs, settings and the client."""
    viber = make()
    with anysend.Client([viber]) as client:
        for text in (repr(viber), str(viber.settings), repr(client)):
            assert TOKEN not in text
    assert viber.secrets() == [TOKEN]


# -- errors ----------------------------------------------------------------------------------------

ERROR_ROWS = [
    # (status, category, reason, contact_invalid)
    (1, ErrorCategory.CONFIGURATION, None, False),
    (2, ErrorCategory.AUTH, None, False),
    (3, ErrorCategory.CONTENT_REJECTED, None, False),
    (4, ErrorCategory.CONTENT_REJECTED, None, False),
    (5, ErrorCategory.INVALID_RECIPIENT, Reason.UNKNOWN_RECIPIENT, True),
    (6, ErrorCategory.OPTED_OUT, Reason.OPTED_OUT, True),
    (7, ErrorCategory.CONFIGURATION, Reason.POLICY_BLOCKED, False),
    (8, ErrorCategory.CONFIGURATION, None, False),
    (9, ErrorCategory.CONFIGURATION, Reason.POLICY_BLOCKED, False),
    (10, ErrorCategory.CONFIGURATION, None, False),
    (11, ErrorCategory.INVALID_RECIPIENT, Reason.RECIPIENT_UNREACHABLE, False),
    (12, ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False),
    (13, ErrorCategory.CONTENT_REJECTED, Reason.RECIPIENT_UNREACHABLE, False),
    (14, ErrorCategory.CONTENT_REJECTED, None, False),
    (15, ErrorCategory.AUTH, None, False),
    (16, ErrorCategory.CONTENT_REJECTED, None, False),
    (17, ErrorCategory.CONFIGURATION, None, False),
    (18, ErrorCategory.CONFIGURATION, None, False),
    (19, ErrorCategory.CONFIGURATION, None, False),
    (20, ErrorCategory.CONFIGURATION, None, False),
    (99, ErrorCategory.UNKNOWN, None, False),
]


@pytest.mark.parametrize(("status", "category", "reason", "contact_invalid"), ERROR_ROWS)
def test_in_body_statuses_are_mapped(
    status: int, category: ErrorCategory, reason: Reason | None, contact_invalid: bool
) -> None:
    """Each documented status in an HTTP 200 answer maps to its category, reason and flag."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer(status), outbound())
    error = caught.value
    assert (error.category, error.reason, error.contact_invalid) == (
        category,
        reason,
        contact_invalid,
    )
    assert error.retryable is category.retryable
    assert (error.code, error.status_code, error.provider) == (str(status), 200, "viber")
    assert STATUS_NAMES.get(status, "x") in error.message
    assert error.raw == {"status": status, "status_message": STATUS_NAMES.get(status, "x")}


def test_every_documented_status_is_mapped() -> None:
    """The error table covers statuses 1 to 20; 5 and 6 mark the contact dead."""
    assert sorted(ERROR_CODES) == list(range(1, 21))
    assert {5, 6} == CONTACT_INVALID


def test_http_errors_follow_the_shared_mapping() -> None:
    """A non-200 answer (an outage, a proxy) is read by its status."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(httpx.Response(503, text="Service Unavailable"), outbound())
    assert (caught.value.category, caught.value.retryable) == (ErrorCategory.UNAVAILABLE, True)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>ok</html>"),
        httpx.Response(200, json={"status": "0"}),
        httpx.Response(200, json={"status": True}),
        httpx.Response(200, json=[0]),
    ],
)
def test_unreadable_200_is_ambiguous(response: httpx.Response) -> None:
    """A 200 without a readable status may have been sent: ambiguous_timeout, not retried."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(response, outbound())
    assert (caught.value.category, caught.value.retryable) == (
        ErrorCategory.AMBIGUOUS_TIMEOUT,
        False,
    )


def test_success_without_a_token() -> None:
    """Status 0 without message_token is a receipt without an id."""
    receipt = make().parse_response(httpx.Response(200, json={"status": 0}), outbound())
    assert receipt.provider_message_id is None


def test_unsubscribed_user_reaches_the_invalid_address_hook() -> None:
    """Through the real client, status 6 flags the attempt and calls on_invalid_address."""
    dead: list[anysend.Attempt] = []
    with respx.mock(assert_all_called=True) as mock:
        mock.post(SEND_URL).mock(return_value=answer(6))
        with anysend.Client(
            [make()],
            clock=VirtualClock(),
            retry=RetryPolicy(max_attempts=1),
            on_invalid_address=[dead.append],
        ) as client:
            result = client.send(Message(text="hi"), to=ann())
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.contact_invalid
    assert attempt.error is not None
    assert (attempt.error.category, attempt.error.reason) == (
        ErrorCategory.OPTED_OUT,
        Reason.OPTED_OUT,
    )
    assert [a.address for a in dead] == [USER]


def test_too_many_requests_is_retried() -> None:
    """Status 12 is retried on the same provider; the second try succeeds."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SEND_URL).mock(side_effect=[answer(12), answer()])
        with anysend.Client([make()], clock=VirtualClock()) as client:
            result = client.send(Message(text="hi"), to=ann())
    assert result.ok
    assert route.call_count == 2


# -- callbacks: verification -----------------------------------------------------------------------


def test_published_signature_vector() -> None:
    """signature() reproduces Viber's published vector, and the adapter verifies it."""
    assert signature(VECTOR_BODY, VECTOR_TOKEN) == VECTOR_SIGNATURE
    viber = Viber(auth_token=VECTOR_TOKEN, sender_name="testbot")
    request = WebhookRequest(
        url=CALLBACK_URL, headers={"X-Viber-Content-Signature": VECTOR_SIGNATURE}, body=VECTOR_BODY
    )
    with pytest.raises(WebhookVerificationError, match="replay window"):
        viber.verify_webhook(request)  # the vector's timestamp is far from any real time
    viber.replay_window = None
    viber.verify_webhook(request)
    assert viber.parse_webhook(request) == []


def test_sig_query_parameter_and_uppercase_hex() -> None:
    """The signature may come as the sig query parameter, and in upper case."""
    body = fixture("delivered.json")
    query = urlencode({"sig": sign(body).upper()})
    request = WebhookRequest(url=f"{CALLBACK_URL}?{query}", body=body)
    assert at(body).parse_webhook(request)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Viber-Content-Signature": ""},
        {"X-Viber-Content-Signature": sign(b"another body")},
        {"X-Viber-Content-Signature": sign(fixture("delivered.json"), "another-token")},
    ],
)
def test_bad_signatures_are_rejected(headers: dict[str, str]) -> None:
    """Missing, empty, other-body and other-token signatures are refused."""
    body = fixture("delivered.json")
    request = WebhookRequest(url=CALLBACK_URL, headers=headers, body=body)
    with pytest.raises(WebhookVerificationError):
        at(body).parse_webhook(request)


@pytest.mark.parametrize("delay", [REPLAY_WINDOW + 1, -(REPLAY_WINDOW + 1), 3600.0])
def test_replayed_callbacks_are_rejected(delay: float) -> None:
    """A genuine callback whose timestamp is outside the window either way is refused."""
    body = fixture("seen.json")
    with pytest.raises(WebhookVerificationError, match="replay window"):
        at(body, delay).verify_webhook(callback(body))
    at(body, REPLAY_WINDOW - 1).verify_webhook(callback(body))


@pytest.mark.parametrize(
    "body",
    [b'{"event":"seen"}', b'{"event":"seen","timestamp":"1795161700000"}', b"not json", b"[]"],
)
def test_signed_bodies_without_a_timestamp_are_rejected(body: bytes) -> None:
    """With the replay window on, a signed body must carry a numeric timestamp."""
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(callback(body))


# -- callbacks: parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "token", "ms"),
    [
        ("delivered.json", DeliveryStatus.DELIVERED, "5741311803571721001", 1795161603000),
        ("seen.json", DeliveryStatus.READ, "5741311803571721001", 1795161700000),
        ("failed.json", DeliveryStatus.UNDELIVERABLE, "5741311803571721002", 1795161604000),
    ],
)
def test_status_callbacks(name: str, status: DeliveryStatus, token: str, ms: int) -> None:
    """delivered, seen and failed report the message_token's status for the user."""
    [event] = parse(name)
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.provider_message_id, event.recipient) == (status, token, USER)
    assert (event.channel, event.occurred_at) == (Channel.VIBER, when(ms))
    assert event.event_id == f"{token}:{event.raw_status}"


def test_failed_carries_the_description() -> None:
    """failed keeps Viber's desc as the description, with reason other."""
    [event] = parse("failed.json")
    assert isinstance(event, DeliveryEvent)
    assert (event.description, event.reason) == ("failure description", Reason.OTHER)


@pytest.mark.parametrize(
    ("name", "event_type", "reason"),
    [
        ("subscribed.json", EventType.OPTED_IN, None),
        ("unsubscribed.json", EventType.OPTED_OUT, Reason.OPTED_OUT),
        ("conversation_started.json", EventType.INBOUND, None),
    ],
)
def test_user_events(name: str, event_type: EventType, reason: Reason | None) -> None:
    """Subscriptions, unsubscriptions and opened conversations are events about the user."""
    [event] = parse(name)
    assert isinstance(event, DeliveryEvent)
    assert (event.event, event.status, event.reason) == (event_type, None, reason)
    assert (event.recipient, event.provider_message_id) == (USER, None)
    assert event.event_id == f"{USER}:{event.raw_status}:{json.loads(fixture(name))['timestamp']}"


def test_inbound_text() -> None:
    """A text message becomes an InboundMessage from the user id, with its token."""
    [message] = parse("message_text.json")
    assert isinstance(message, InboundMessage)
    assert (message.provider, message.channel, message.sender) == ("viber", Channel.VIBER, USER)
    assert message.text == "a message to the service"
    assert message.provider_message_id == "5741311803571721003"
    assert message.received_at == when(1795161800000)
    assert message.raw["message"]["tracking_data"] == "cart-4521"


def test_inbound_picture() -> None:
    """A picture gives its caption as text and its media URL and file name."""
    [message] = parse("message_picture.json")
    assert isinstance(message, InboundMessage)
    assert message.text == "Zażółć gęślą jaźń"
    [media] = message.media
    assert (media.url, media.filename) == (
        "https://dl-media.viber.example.com/5/share/2/long/vibes/picture.jpg",
        "picture.jpg",
    )


def test_inbound_url_message() -> None:
    """A URL message carries its URL as the text."""
    body = json.dumps(
        {
            "event": "message",
            "timestamp": 1795161800000,
            "message_token": 1,
            "sender": {"id": USER},
            "message": {"type": "url", "media": "https://example.com/track/1042"},
        }
    ).encode()
    [message] = at(body).parse_webhook(callback(body))
    assert isinstance(message, InboundMessage)
    assert (message.text, message.media) == ("https://example.com/track/1042", ())


def test_webhook_check_gives_no_events() -> None:
    """The set_webhook check callback verifies and gives an empty list."""
    assert parse("webhook.json") == []


def test_unknown_event_keeps_its_name() -> None:
    """An event the adapter does not know is status unknown with the event as raw status."""
    [event] = parse("unknown_event.json")
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status) == (DeliveryStatus.UNKNOWN, "client_status")


@pytest.mark.parametrize(
    "body",
    [
        {"timestamp": 1},
        {"event": "", "timestamp": 1},
        {"event": "delivered", "timestamp": 1, "message_token": 1},
        {"event": "message", "timestamp": 1, "message": {"type": "text"}},
        {"event": "message", "timestamp": 1, "sender": {"id": USER}},
    ],
)
def test_malformed_bodies_raise_parse_errors(body: dict[str, Any]) -> None:
    """Callbacks without an event, a user or a message raise WebhookParseError."""
    with pytest.raises(WebhookParseError):
        make().parse_webhook(
            WebhookRequest(url=CALLBACK_URL, body=json.dumps(body).encode()), verify=False
        )


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(ALL_FIXTURES), data=st.data())
def test_mutated_fixtures_raise_only_our_errors(name: str, data: st.DataObject) -> None:
    """Fixtures with bytes or JSON nodes changed parse or raise only anysend's webhook errors."""
    raw = damaged_json(fixture(name), data)
    try:
        events = make().parse_webhook(WebhookRequest(url=CALLBACK_URL, body=raw), verify=False)
    except (WebhookParseError, WebhookVerificationError):
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


# -- the contract kit ------------------------------------------------------------------------------

NOW = stamp(fixture("message_text.json"))


class TestViberContract(ProviderContract):
    """The contract kit run against the Viber adapter."""

    expected_provider_message_id = str(MESSAGE_TOKEN)
    signature_headers = ("X-Viber-Content-Signature",)
    unknown_raw_status = "client_status"

    def make_provider(self) -> Viber:
        """A Viber adapter with the test token and its clock at the callbacks' time."""
        viber = make()
        viber.now = lambda: NOW
        return viber

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Viber's answer accepting the message."""
        return httpx.Response(
            200,
            json={"status": 0, "status_message": "ok", "message_token": MESSAGE_TOKEN},
            request=request,
        )

    def error_cases(self) -> list[ErrorCase]:
        """In-body statuses with HTTP 200."""
        return [
            ErrorCase(
                name=f"status {status}",
                status=200,
                body={"status": status, "status_message": STATUS_NAMES[status]},
                category=category,
                retryable=category.retryable,
            )
            for status, category in ERROR_CODES.items()
        ]

    def _at_now(self, name: str, **changes: Any) -> bytes:
        """A fixture re-timed to the pinned clock, re-serialised compactly as Viber sends it."""
        data = json.loads(fixture(name))
        data.update({"timestamp": int(NOW * 1000), **changes})
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def signed_webhook(self) -> WebhookRequest:
        """A genuine inbound text message."""
        return callback(fixture("message_text.json"))

    def stale_webhook(self) -> WebhookRequest:
        """A genuine delivery report from an hour before the clock."""
        return callback(self._at_now("delivered.json", timestamp=int((NOW - 3600) * 1000)))

    def wrong_secret_webhook(self) -> WebhookRequest:
        """The message signed with another bot's token."""
        return callback(fixture("message_text.json"), token="another-bots-auth-token")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A genuine callback with an event the adapter does not know."""
        return callback(self._at_now("unknown_event.json"))

    def inbound_webhook(self) -> WebhookRequest:
        """A genuine inbound text message."""
        return callback(fixture("message_text.json"))
