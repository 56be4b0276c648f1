"""The Messenger adapter: Send API requests, Graph errors, signed webhooks and the handshake."""

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
from anysend.providers import WebhookResponse
from anysend.providers.messenger import (
    ERROR_CODES,
    ERROR_SUBCODES,
    GRAPH_API_VERSION,
    MAX_TEXT,
    Messenger,
    sign,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract
from tests.strategies import damaged_json

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "messenger"
PAGE_TOKEN = "EAAGmessengerTestPageToken0123456789"
APP_SECRET = "messenger-test-app-secret-4f1c"
VERIFY_TOKEN = "messenger-test-verify-token-77"
SECRETS = (PAGE_TOKEN, APP_SECRET, VERIFY_TOKEN)
PAGE_ID = "1000000000000001"
PSID = "2000000000000001"
SEND_URL = f"https://graph.facebook.com/{GRAPH_API_VERSION}/me/messages"
CALLBACK_URL = "https://app.example.com/hooks/messenger"
MID = "m_AnySendFixtureOut0001"

# GitHub's published example of the same X-Hub-Signature-256 scheme (HMAC-SHA256 hex of the raw
# body, "sha256=" prefix): docs.github.com, "Validating webhook deliveries", "Testing the
# webhook payload validation".
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


def make(**settings: Any) -> Messenger:
    """A Messenger adapter with the test Page token, app secret and verify token."""
    values: dict[str, Any] = {
        "page_access_token": PAGE_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }
    values.update(settings)
    return Messenger(**values)


def fixture(name: str) -> bytes:
    """A fixture file's exact bytes."""
    return (FIXTURES / name).read_bytes()


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    """Meta's X-Hub-Signature-256, computed here independently of the adapter."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def callback(body: bytes, *, secret: str = APP_SECRET) -> WebhookRequest:
    """A webhook POST carrying ``body``, signed with ``secret``."""
    headers = {"X-Hub-Signature-256": signature(body, secret), "Content-Type": "application/json"}
    return WebhookRequest(url=CALLBACK_URL, headers=headers, body=body)


def outbound(**fields: Any) -> OutboundMessage:
    """A Messenger message as the client hands it to the adapter."""
    fields.setdefault("text", "Your order has shipped")
    return OutboundMessage(id="msg-1", channel=Channel.MESSENGER, to=PSID, **fields)


def accepted(message_id: str = MID) -> httpx.Response:
    """Meta's answer to an accepted Send API request."""
    return httpx.Response(200, json={"recipient_id": PSID, "message_id": message_id})


def graph_error(code: int, subcode: int | None = None, **extra: Any) -> dict[str, Any]:
    """A Graph API error body."""
    error: dict[str, Any] = {
        "message": f"(#{code}) refused",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    return {"error": error}


def sent_json(route: respx.Route) -> Any:
    """The JSON body of the last request a route received."""
    return json.loads(route.calls.last.request.read())


def ann() -> Recipient:
    """A recipient reachable on Messenger."""
    return Recipient(chat_ids={Channel.MESSENGER: PSID})


def one_try() -> RetryPolicy:
    """A retry policy that tries each provider once."""
    return RetryPolicy(max_attempts=1)


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_request_through_the_client(respx_mock: respx.MockRouter) -> None:
    """One JSON POST to /me/messages with the Page token as a bearer, never in the URL."""
    route = respx_mock.post(SEND_URL).mock(return_value=accepted())
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Your order has shipped"), to=ann())
    assert result.ok
    assert (result.provider, result.address, result.provider_message_id) == (
        "messenger",
        PSID,
        MID,
    )
    assert result.receipt is not None
    assert result.receipt.raw == {"recipient_id": PSID, "message_id": MID}
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == SEND_URL
    assert PAGE_TOKEN not in str(request.url)
    assert request.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert sent_json(route) == {
        "recipient": {"id": PSID},
        "messaging_type": "UPDATE",
        "message": {"text": "Your order has shipped", "metadata": result.message_id},
    }


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_with_a_human_agent_tag(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: a tag from provider options makes the message a MESSAGE_TAG message."""
    route = respx_mock.post(SEND_URL).mock(return_value=accepted())
    message = Message(
        text="An agent will call you", provider_options={"messenger": {"tag": "HUMAN_AGENT"}}
    )
    async with anysend.AsyncClient([make()], clock=VirtualClock()) as client:
        result = await client.send(message, to=ann())
    assert result.ok, result.attempts
    assert sent_json(route) == {
        "recipient": {"id": PSID},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
        "message": {"text": "An agent will call you", "metadata": result.message_id},
    }


def test_settings_tag_and_messaging_type() -> None:
    """message_tag from the settings tags every message; messaging_type applies without one."""
    tagged = make(message_tag="HUMAN_AGENT").payload(outbound())
    assert (tagged["messaging_type"], tagged["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    response = make(messaging_type="RESPONSE").payload(outbound())
    assert response["messaging_type"] == "RESPONSE"
    assert "tag" not in response
    untagged = make(message_tag="HUMAN_AGENT").payload(outbound(provider_options={"tag": None}))
    assert (untagged["messaging_type"], "tag" in untagged) == ("UPDATE", False)


def test_provider_options_are_merged() -> None:
    """Options go into the body; a message dict merges into the message; None removes keys."""
    attachment = {"type": "image", "payload": {"url": "https://cdn.example.com/a.png"}}
    options = {
        "messaging_type": "RESPONSE",
        "notification_type": "SILENT_PUSH",
        "message": {"text": None, "attachment": attachment},
    }
    body = make().payload(outbound(provider_options=options))
    assert body == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"metadata": "msg-1", "attachment": attachment},
        "notification_type": "SILENT_PUSH",
    }
    make().check_supported(outbound(text=None, provider_options={"message": {"attachment": {}}}))


def test_subject_is_the_first_line() -> None:
    """A subject comes first, on its own line; alone it is the whole text."""
    assert make().payload(outbound(subject="Order 1042"))["message"]["text"] == (
        "Order 1042\nYour order has shipped"
    )
    assert make().payload(outbound(subject="Order 1042", text=None))["message"]["text"] == (
        "Order 1042"
    )


def test_api_version_setting_changes_the_path() -> None:
    """api_version goes into the URL path."""
    request = make(api_version="v26.0").build_request(outbound())
    assert str(request.url) == "https://graph.facebook.com/v26.0/me/messages"


@pytest.mark.parametrize(
    ("fields", "category"),
    [
        ({"text": None}, ErrorCategory.CONTENT_REJECTED),
        ({"text": "x" * (MAX_TEXT + 1)}, ErrorCategory.PAYLOAD_TOO_LARGE),
        ({"provider_options": {"tag": "ACCOUNT_UPDATE"}}, ErrorCategory.CONTENT_REJECTED),
        ({"provider_options": {"tag": 7}}, ErrorCategory.CONTENT_REJECTED),
        ({"provider_options": {"messaging_type": "MESSAGE_TAG"}}, ErrorCategory.CONTENT_REJECTED),
        (
            {"provider_options": {"messaging_type": "RESPONSE", "tag": "HUMAN_AGENT"}},
            ErrorCategory.CONTENT_REJECTED,
        ),
        ({"provider_options": {"messaging_type": ["UPDATE"]}}, ErrorCategory.CONTENT_REJECTED),
    ],
)
def test_refused_before_the_network(fields: dict[str, Any], category: ErrorCategory) -> None:
    """Empty or long text and impossible tag combinations fail in check_supported."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(**fields))
    assert caught.value.category is category
    assert caught.value.provider == "messenger"


def test_text_at_the_limit_is_accepted() -> None:
    """Exactly MAX_TEXT characters pass."""
    make().check_supported(outbound(text="ż" * MAX_TEXT))


@pytest.mark.parametrize(
    "settings",
    [
        {"message_tag": "CONFIRMED_EVENT_UPDATE"},
        {"message_tag": "human agent"},
        {"api_version": "27"},
        {"messaging_type": "MESSAGE_TAG"},
    ],
)
def test_bad_settings_are_refused_without_secrets(settings: dict[str, Any]) -> None:
    """Retired tags, malformed versions and types are ConfigurationErrors that hide secrets."""
    with pytest.raises(ConfigurationError) as caught:
        make(**settings)
    for secret in SECRETS:
        assert secret not in str(caught.value)


def test_secrets_never_print() -> None:
    """The token, app secret and verify token are hidden from reprs, settings and the client."""
    messenger = make()
    with anysend.Client([messenger]) as client:
        shown = [repr(messenger), str(messenger.settings), repr(client)]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text
    assert sorted(messenger.secrets()) == sorted(SECRETS)


# -- errors ----------------------------------------------------------------------------------------

ERRORS = [
    # (status, body, category, reason, contact_invalid, code)
    (
        400,
        graph_error(551, 1545041),
        ErrorCategory.INVALID_RECIPIENT,
        Reason.BLOCKED_BY_RECIPIENT,
        True,
        "551/1545041",
    ),
    (
        400,
        graph_error(551),
        ErrorCategory.INVALID_RECIPIENT,
        Reason.BLOCKED_BY_RECIPIENT,
        True,
        "551",
    ),
    (
        400,
        graph_error(100, 2018001),
        ErrorCategory.INVALID_RECIPIENT,
        Reason.UNKNOWN_RECIPIENT,
        True,
        "100/2018001",
    ),
    (
        400,
        graph_error(10, 2018278),
        ErrorCategory.CONTENT_REJECTED,
        Reason.OUTSIDE_MESSAGING_WINDOW,
        False,
        "10/2018278",
    ),
    (
        400,
        graph_error(10, 2018065),
        ErrorCategory.CONTENT_REJECTED,
        Reason.OUTSIDE_MESSAGING_WINDOW,
        False,
        "10/2018065",
    ),
    (
        400,
        graph_error(10, 2018108),
        ErrorCategory.CONTENT_REJECTED,
        Reason.OUTSIDE_MESSAGING_WINDOW,
        False,
        "10/2018108",
    ),
    (400, graph_error(10), ErrorCategory.CONFIGURATION, None, False, "10"),
    (
        400,
        graph_error(10, 1893063),
        ErrorCategory.CONFIGURATION,
        Reason.POLICY_BLOCKED,
        False,
        "10/1893063",
    ),
    (400, graph_error(613), ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False, "613"),
    (400, graph_error(4), ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False, "4"),
    (400, graph_error(32), ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False, "32"),
    (400, graph_error(80006), ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False, "80006"),
    (401, graph_error(190, 463), ErrorCategory.AUTH, None, False, "190/463"),
    (403, graph_error(200), ErrorCategory.CONFIGURATION, None, False, "200"),
    (400, graph_error(200, 2018028), ErrorCategory.CONFIGURATION, None, False, "200/2018028"),
    (400, graph_error(230), ErrorCategory.CONFIGURATION, None, False, "230"),
    (400, graph_error(368), ErrorCategory.CONFIGURATION, Reason.POLICY_BLOCKED, False, "368"),
    (500, graph_error(1200), ErrorCategory.UNAVAILABLE, None, False, "1200"),
    (500, graph_error(2), ErrorCategory.UNAVAILABLE, None, False, "2"),
    (400, graph_error(100), ErrorCategory.CONTENT_REJECTED, None, False, "100"),
    (400, graph_error(2022), ErrorCategory.CONFIGURATION, None, False, "2022"),
    (400, graph_error(98765, is_transient=True), ErrorCategory.UNAVAILABLE, None, False, "98765"),
    (400, graph_error(98765), ErrorCategory.UNKNOWN, None, False, "98765"),
]


@pytest.mark.parametrize(
    ("status", "body", "category", "reason", "contact_invalid", "code"),
    ERRORS,
    ids=[row[5] + ("-transient" if "is_transient" in row[1]["error"] else "") for row in ERRORS],
)
def test_graph_errors_are_mapped(
    status: int,
    body: dict[str, Any],
    category: ErrorCategory,
    reason: Reason | None,
    contact_invalid: bool,
    code: str,
) -> None:
    """Each documented Graph error code and subcode maps to its category, reason and flag."""
    response = httpx.Response(status, json=body)
    with pytest.raises(ProviderError) as caught:
        make().parse_response(response, outbound())
    error = caught.value
    assert (error.category, error.reason, error.contact_invalid) == (
        category,
        reason,
        contact_invalid,
    )
    assert error.retryable is category.retryable
    assert (error.code, error.status_code, error.provider) == (code, status, "messenger")
    assert error.raw == body


def test_subcodes_win_over_codes() -> None:
    """Every subcode's category is checked before its code's."""
    assert ERROR_CODES[10] is ErrorCategory.CONFIGURATION
    assert ERROR_SUBCODES[2018278] is ErrorCategory.CONTENT_REJECTED


def test_an_echoed_token_is_redacted() -> None:
    """A Graph message that quotes the Page token is shown with *** instead."""
    body = graph_error(190, message=f"Malformed access token {PAGE_TOKEN}")
    with pytest.raises(ProviderError) as caught:
        make().parse_response(httpx.Response(400, json=body), outbound())
    for text in (str(caught.value), repr(caught.value), json.dumps(caught.value.raw)):
        assert PAGE_TOKEN not in text
    assert "***" in str(caught.value)


def test_error_inside_a_200_is_an_error() -> None:
    """A 200 whose body is a Graph error object raises; a 200 without message_id has no id."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(httpx.Response(200, json=graph_error(551)), outbound())
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT
    receipt = make().parse_response(httpx.Response(200, json={"recipient_id": PSID}), outbound())
    assert receipt.provider_message_id is None


def test_blocked_psid_reaches_the_invalid_address_hook() -> None:
    """Through the real client, a 551 flags the attempt and calls on_invalid_address."""
    dead: list[anysend.Attempt] = []
    with respx.mock(assert_all_called=True) as mock:
        mock.post(SEND_URL).mock(return_value=httpx.Response(400, json=graph_error(551, 1545041)))
        with anysend.Client(
            [make()], clock=VirtualClock(), retry=one_try(), on_invalid_address=[dead.append]
        ) as client:
            result = client.send(Message(text="hi"), to=ann())
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.contact_invalid
    assert attempt.error is not None
    assert attempt.error.reason is Reason.BLOCKED_BY_RECIPIENT
    assert [a.address for a in dead] == [PSID]


def test_rate_limit_is_retried() -> None:
    """Code 613 is retried on the same provider; the second try succeeds."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SEND_URL).mock(
            side_effect=[httpx.Response(400, json=graph_error(613)), accepted()]
        )
        with anysend.Client([make()], clock=VirtualClock()) as client:
            result = client.send(Message(text="hi"), to=ann())
    assert result.ok
    assert route.call_count == 2


# -- callbacks: verification -----------------------------------------------------------------------


def test_signature_matches_the_published_example() -> None:
    """sign() reproduces the published X-Hub-Signature-256 example value."""
    assert sign(VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE
    vector = Messenger(page_access_token=PAGE_TOKEN, app_secret=VECTOR_SECRET)
    request = WebhookRequest(
        url=CALLBACK_URL, headers={"X-Hub-Signature-256": VECTOR_SIGNATURE}, body=VECTOR_BODY
    )
    vector.verify_webhook(request)


def test_uppercase_hex_is_accepted() -> None:
    """The hex digest is compared case-insensitively."""
    body = fixture("message_text.json")
    header = "sha256=" + signature(body).split("=", 1)[1].upper()
    request = WebhookRequest(url=CALLBACK_URL, headers={"X-Hub-Signature-256": header}, body=body)
    make().verify_webhook(request)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": "sha256="},
        {"X-Hub-Signature-256": "sha1=" + "0" * 40},
        {"X-Hub-Signature": "sha1=" + "0" * 40},
        {"X-Hub-Signature-256": signature(b"another body")},
        {"X-Hub-Signature-256": signature(b"x", "other-secret")},
    ],
)
def test_bad_signatures_are_rejected(headers: dict[str, str]) -> None:
    """Missing, empty, SHA-1, other-body and other-secret signatures are refused."""
    request = WebhookRequest(url=CALLBACK_URL, headers=headers, body=fixture("read.json"))
    with pytest.raises(WebhookVerificationError):
        make().parse_webhook(request)


def test_no_app_secret_refuses_every_callback() -> None:
    """Without app_secret nothing verifies (parse_webhook(verify=False) still parses)."""
    messenger = Messenger(page_access_token=PAGE_TOKEN)
    request = callback(fixture("read.json"))
    with pytest.raises(WebhookVerificationError, match="app_secret"):
        messenger.verify_webhook(request)
    assert messenger.parse_webhook(request, verify=False)


def test_subscription_handshake() -> None:
    """The right verify token returns hub.challenge; anything else is refused."""
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }

    def handshake(**changes: str | None) -> WebhookRequest:
        params = {k: v for k, v in {**query, **changes}.items() if v is not None}
        return WebhookRequest(method="GET", url=f"{CALLBACK_URL}?{urlencode(params)}")

    assert make().verify_subscription(handshake()) == "1158201444"
    for bad in (
        handshake(**{"hub.verify_token": "wrong"}),
        handshake(**{"hub.verify_token": None}),
        handshake(**{"hub.mode": "unsubscribe"}),
        handshake(**{"hub.challenge": None}),
    ):
        with pytest.raises(WebhookVerificationError) as caught:
            make().verify_subscription(bad)
        assert VERIFY_TOKEN not in str(caught.value)
    with pytest.raises(WebhookVerificationError, match="verify_token"):
        Messenger(page_access_token=PAGE_TOKEN).verify_subscription(handshake())


# -- callbacks: parsing ----------------------------------------------------------------------------


def when(ms: int) -> datetime:
    """A UTC datetime from milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def test_inbound_text() -> None:
    """A text message becomes an InboundMessage with the PSID, the Page, the text and mid."""
    [message] = make().parse_webhook(callback(fixture("message_text.json")))
    assert isinstance(message, InboundMessage)
    assert (message.provider, message.channel) == ("messenger", Channel.MESSENGER)
    assert (message.sender, message.recipient) == (PSID, PAGE_ID)
    assert message.text == "hello, world! Zażółć"
    assert message.provider_message_id == "m_AnySendFixtureMid0001"
    assert message.received_at == when(1795161600478)
    assert message.media == ()


def test_inbound_attachments_and_reply() -> None:
    """Attachments become Media with their URLs (file titles as names); reply_to is kept."""
    [message] = make().parse_webhook(callback(fixture("message_attachments.json")))
    assert isinstance(message, InboundMessage)
    assert message.text is None
    assert [(m.url, m.filename) for m in message.media] == [
        ("https://scontent.example.com/v/t1.15752-9/photo.jpg", None),
        ("https://cdn.example.com/files/invoice-1042.pdf", "invoice-1042.pdf"),
    ]
    assert message.in_reply_to == MID


def test_postback_text_is_the_payload() -> None:
    """A postback becomes an InboundMessage whose text is the button's payload."""
    [message] = make().parse_webhook(callback(fixture("postback.json")))
    assert isinstance(message, InboundMessage)
    assert message.text == "TRACK_ORDER_1042"
    assert message.provider_message_id == "m_AnySendFixturePostback01"
    assert message.sender == PSID


def test_delivery_gives_one_event_per_mid() -> None:
    """A delivery with mids reports each mid delivered, dated by the entry (no timestamp)."""
    [event] = make().parse_webhook(callback(fixture("delivery.json")))
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED
    assert (event.raw_status, event.provider_message_id, event.recipient) == ("delivery", MID, PSID)
    assert event.occurred_at == when(1795161605451)
    assert event.event_id == f"{MID}:delivery"
    assert event.channel is Channel.MESSENGER


def test_batched_deliveries_and_the_watermark() -> None:
    """Batched entries give every event; a watermark-only delivery is recipient-level."""
    events = [
        e
        for e in make().parse_webhook(callback(fixture("delivery_batch.json")))
        if isinstance(e, DeliveryEvent)
    ]
    assert [(e.provider_message_id, e.recipient, e.event_id) for e in events] == [
        (None, PSID, f"{PSID}:delivery:1795161605253"),
        ("m_AnySendFixtureOut0002", "2000000000000002", "m_AnySendFixtureOut0002:delivery"),
        ("m_AnySendFixtureOut0003", "2000000000000002", "m_AnySendFixtureOut0003:delivery"),
    ]
    assert {e.status for e in events} == {DeliveryStatus.DELIVERED}


def test_read_is_recipient_level() -> None:
    """A read receipt has no mids: status read for the PSID, the watermark in the event id."""
    [event] = make().parse_webhook(callback(fixture("read.json")))
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.READ
    assert (event.provider_message_id, event.recipient) == (None, PSID)
    assert event.event_id == f"{PSID}:read:1795161605253"
    assert event.occurred_at == when(1795161700463)
    assert event.raw["read"]["watermark"] == 1795161605253


def test_echo_reports_sent_with_our_message_id() -> None:
    """A message echo is status sent for the mid, with anysend's id from the metadata."""
    [event] = make().parse_webhook(callback(fixture("message_echo.json")))
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.SENT
    assert (event.provider_message_id, event.message_id, event.recipient) == (MID, "msg-1", PSID)
    assert event.raw_status == "message_echoes"


def test_unknown_event_keeps_its_name() -> None:
    """An event kind the adapter does not map is status unknown with the kind as raw status."""
    [event] = make().parse_webhook(callback(fixture("reaction.json")))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status, event.provider_message_id) == (
        DeliveryStatus.UNKNOWN,
        "reaction",
        MID,
    )


def test_standby_and_changes_are_skipped() -> None:
    """Handover-protocol standby items and feed changes give no events."""
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {"id": PAGE_ID, "time": 1, "standby": [{"sender": {"id": PSID}, "read": {}}]},
                {"id": PAGE_ID, "time": 1, "changes": [{"field": "feed", "value": {}}]},
            ],
        }
    ).encode()
    assert make().parse_webhook(callback(body)) == []


@pytest.mark.parametrize(
    "body",
    [
        {"object": "whatsapp_business_account", "entry": []},
        {"object": "page"},
        {"object": "page", "entry": ["x"]},
        {"object": "page", "entry": [{"messaging": {}}]},
        {"object": "page", "entry": [{"messaging": [1]}]},
        {"object": "page", "entry": [{"messaging": [{"read": {}}]}]},
        {"object": "page", "entry": [{"messaging": [{"sender": {"id": PSID}}]}]},
    ],
)
def test_malformed_bodies_raise_parse_errors(body: dict[str, Any]) -> None:
    """Bodies that are not Page webhooks raise WebhookParseError."""
    with pytest.raises(WebhookParseError):
        make().parse_webhook(callback(json.dumps(body).encode()))


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


class TestMessengerContract(ProviderContract):
    """The contract kit run against the Messenger adapter."""

    expected_provider_message_id = MID
    signature_headers = ("X-Hub-Signature-256",)
    unknown_raw_status = "reaction"

    def make_provider(self) -> Messenger:
        """A Messenger adapter with test secrets."""
        return make()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Meta's answer accepting the message."""
        return httpx.Response(
            200, json={"recipient_id": "123456", "message_id": MID}, request=request
        )

    def error_cases(self) -> list[ErrorCase]:
        """Graph errors by code and subcode."""
        return [
            ErrorCase(
                name="person unavailable",
                status=400,
                body=graph_error(551, 1545041),
                category=ErrorCategory.INVALID_RECIPIENT,
                retryable=False,
            ),
            ErrorCase(
                name="outside the window",
                status=400,
                body=graph_error(10, 2018278),
                category=ErrorCategory.CONTENT_REJECTED,
                retryable=False,
            ),
            ErrorCase(
                name="rate limited",
                status=400,
                body=graph_error(613),
                headers={"Retry-After": "5"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=5.0,
            ),
            ErrorCase(
                name="token expired",
                status=400,
                body=graph_error(190, 463),
                category=ErrorCategory.AUTH,
                retryable=False,
            ),
            ErrorCase(
                name="temporary failure",
                status=500,
                body=graph_error(1200),
                category=ErrorCategory.UNAVAILABLE,
                retryable=True,
            ),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A genuine inbound text message."""
        return callback(fixture("message_text.json"))

    def wrong_secret_webhook(self) -> WebhookRequest:
        """The message signed with another app secret."""
        return callback(fixture("message_text.json"), secret="someone-elses-app-secret")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A genuine reaction event, which the adapter does not map."""
        return callback(fixture("reaction.json"))

    def inbound_webhook(self) -> WebhookRequest:
        """A genuine inbound text message."""
        return callback(fixture("message_text.json"))


# -- answers to callbacks --------------------------------------------------------------------------


def test_handshake_answers_the_challenge_as_plain_text() -> None:
    """handshake: 200 with hub.challenge as text/plain; a wrong token raises (answer 4xx)."""
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    good = WebhookRequest(method="GET", url=f"{CALLBACK_URL}?{urlencode(query)}")
    assert make().handshake(good) == WebhookResponse(
        status=200, body=b"42", content_type="text/plain; charset=utf-8"
    )
    wrong = {**query, "hub.verify_token": "wrong"}
    with pytest.raises(WebhookVerificationError) as caught:
        make().handshake(WebhookRequest(method="GET", url=f"{CALLBACK_URL}?{urlencode(wrong)}"))
    assert VERIFY_TOKEN not in str(caught.value)
    with pytest.raises(WebhookVerificationError, match="verify_token"):
        Messenger(page_access_token=PAGE_TOKEN).handshake(good)


def test_callbacks_get_a_plain_200() -> None:
    """Meta needs only a 200 for a webhook POST."""
    messenger = make()
    request = callback(fixture("message_text.json"))
    answer = messenger.webhook_response(request, messenger.parse_webhook(request))
    assert answer == WebhookResponse()
    assert Messenger.webhook_methods == frozenset({"POST"})
