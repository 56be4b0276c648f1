"""The Plivo adapter: the JSON send request, error mapping, V2/V3 signatures and callbacks."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import Provider, WebhookResponse, to_url
from anysend.providers import _config as config
from anysend.providers.plivo import (
    ERROR_DESCRIPTIONS,
    MESSAGE_ID_PARAM,
    REASONS,
    STATUS_MAP,
    XML_EMPTY,
    Plivo,
    signature_v2,
    signature_v3,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "plivo"
AUTH_ID = "MAZDQ1ZJIYMDZKMMZKYM"
AUTH_TOKEN = "plivo-test-token-7f3a9c2e1b"
OTHER_TOKEN = "plivo-other-token-00000000"
SENDER = "15555550100"
API_URL = f"https://api.plivo.com/v1/Account/{AUTH_ID}/Message/"
CALLBACK_URL = "https://app.example.com/hooks/plivo?tenant=7"
NONCE = "05429567804466091622"
UUID = "a0f7d1a0-0000-4000-8000-00000000c001"
ACCEPTED = {
    "api_id": "948b53a2-3f08-11e7-b6f4-061564b78b75",
    "message": "message(s) queued",
    "message_uuid": ["5b40a428-bfc7-4daf-9d06-726c558bf3b8"],
}


def make(**settings: Any) -> Plivo:
    """A Plivo adapter with test credentials (and a sender unless told otherwise)."""
    settings.setdefault("auth_id", AUTH_ID)
    settings.setdefault("auth_token", AUTH_TOKEN)
    if "powerpack_uuid" not in settings:
        settings.setdefault("sender", SENDER)
    return Plivo(**settings)


def outbound(**fields: Any) -> OutboundMessage:
    """An SMS as the client hands it to the adapter."""
    fields.setdefault("text", "Your code is 1234")
    fields.setdefault("to", "+15555550123")
    return OutboundMessage(id="msg-1", channel=Channel.SMS, **fields)


def fixture(name: str) -> bytes:
    """The raw bytes of a fixture file."""
    return (FIXTURES / name).read_bytes()


def signed(
    body: bytes,
    *,
    url: str = CALLBACK_URL,
    token: str = AUTH_TOKEN,
    method: str = "POST",
    version: int = 3,
    header: str | None = None,
) -> WebhookRequest:
    """A callback carrying ``body``, signed as Plivo signs it (V3 by default)."""
    if version == 3:
        params = {} if method == "GET" else parse_qs(body.decode(), keep_blank_values=True)
        signature = signature_v3(url, NONCE, token, method=method, params=params)
        headers = {
            header or "X-Plivo-Signature-V3": signature,
            "X-Plivo-Signature-V3-Nonce": NONCE,
        }
    else:
        headers = {
            header or "X-Plivo-Signature-V2": signature_v2(url, NONCE, token),
            "X-Plivo-Signature-V2-Nonce": NONCE,
        }
    if method == "POST":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return WebhookRequest(method=method, url=url, headers=headers, body=body)


def only_event(request: WebhookRequest, adapter: Plivo | None = None) -> DeliveryEvent:
    """The one DeliveryEvent a verified callback parses into."""
    [event] = (adapter or make()).parse_webhook(request)
    assert isinstance(event, DeliveryEvent)
    return event


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_request_is_json_with_basic_auth(respx_mock: respx.MockRouter) -> None:
    """Client POSTs JSON src/dst/text/type/url/method with Basic auth_id:auth_token."""
    route = respx_mock.post(API_URL).mock(return_value=httpx.Response(202, json=ACCEPTED))
    plivo = make(status_callback_url="https://app.example.com/hooks/plivo")
    with anysend.Client([plivo], clock=VirtualClock()) as client:
        result = client.send(Message(text="Your code is 1234"), to={"phone": "+48600700800"})
    assert result.ok
    assert result.provider == "plivo"
    assert result.provider_message_id == "5b40a428-bfc7-4daf-9d06-726c558bf3b8"
    assert result.receipt is not None
    assert result.receipt.raw == ACCEPTED
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == API_URL
    credentials = base64.b64encode(f"{AUTH_ID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "src": SENDER,
        "dst": "48600700800",
        "text": "Your code is 1234",
        "type": "sms",
        "url": f"https://app.example.com/hooks/plivo?{MESSAGE_ID_PARAM}={result.message_id}",
        "method": "POST",
    }


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_sends_through_a_powerpack(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: powerpack_uuid instead of src; no callback settings, no url/method."""
    route = respx_mock.post(API_URL).mock(return_value=httpx.Response(202, json=ACCEPTED))
    plivo = make(powerpack_uuid="d35f2e82-d387-427f-8594-6fa07703b3b9")
    async with anysend.AsyncClient([plivo], clock=VirtualClock()) as client:
        result = await client.send(Message(text="Hi"), to={"phone": "+48600700800"})
    assert result.ok
    assert json.loads(route.calls.last.request.content) == {
        "powerpack_uuid": "d35f2e82-d387-427f-8594-6fa07703b3b9",
        "dst": "48600700800",
        "text": "Hi",
        "type": "sms",
    }


def test_message_sender_wins_and_options_are_merged() -> None:
    """Message.sender replaces the setting (and a Powerpack); provider_options go in verbatim."""
    plivo = make(powerpack_uuid="pp-1", status_callback_url=CALLBACK_URL)
    message = outbound(sender="ShopCo", provider_options={"log": False, "message_expiry": 600})
    body = json.loads(plivo.build_request(message).content)
    assert body["src"] == "ShopCo"
    assert "powerpack_uuid" not in body
    assert (body["log"], body["message_expiry"]) == (False, 600)
    assert body["url"] == f"{CALLBACK_URL}&{MESSAGE_ID_PARAM}=msg-1"


@pytest.mark.parametrize(
    ("message", "category"),
    [
        (outbound(text="x" * 1601), ErrorCategory.PAYLOAD_TOO_LARGE),
        (outbound(text="ż" * 738), ErrorCategory.PAYLOAD_TOO_LARGE),
        (outbound(text=""), ErrorCategory.CONTENT_REJECTED),
    ],
)
def test_refused_before_the_network(message: OutboundMessage, category: ErrorCategory) -> None:
    """Texts over 1600 GSM-7 / 737 UCS-2 units, or empty, are refused by check_supported."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(message)
    assert caught.value.category is category
    make().check_supported(outbound(text="x" * 1600))
    make().check_supported(outbound(text="ż" * 737))


def test_no_sender_anywhere_is_configuration() -> None:
    """Without sender, powerpack_uuid or Message.sender the message is refused (configuration)."""
    plivo = Plivo(auth_id=AUTH_ID, auth_token=AUTH_TOKEN)
    with pytest.raises(ProviderError) as caught:
        plivo.check_supported(outbound())
    assert caught.value.category is ErrorCategory.CONFIGURATION
    plivo.check_supported(outbound(sender="+15555550199"))


@pytest.mark.parametrize(
    "settings",
    [
        {"sender": SENDER, "powerpack_uuid": "pp-1"},
        {"status_callback_url": "/hooks/plivo"},
        {"auth_id": "MA/../x"},
    ],
)
def test_invalid_settings(settings: dict[str, Any]) -> None:
    """Both sender and powerpack, a relative callback URL or a strange auth_id are refused."""
    with pytest.raises(ConfigurationError) as caught:
        Plivo(**({"auth_id": AUTH_ID, "auth_token": AUTH_TOKEN} | settings))
    assert AUTH_TOKEN not in str(caught.value)


def test_url_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """plivo://AUTH_ID:AUTH_TOKEN@default?from=... builds the adapter; to_url hides the token."""

    def load(name: str) -> type[Provider]:
        """The registry, as it will be once plivo is registered."""
        assert name == "plivo"
        return Plivo

    monkeypatch.setattr(config, "load", load)
    plivo = config.from_url(f"plivo://{AUTH_ID}:{AUTH_TOKEN}@default?from=+15555550100")
    assert isinstance(plivo, Plivo)
    assert plivo.settings.auth_id == AUTH_ID
    assert plivo.settings.auth_token.get_secret_value() == AUTH_TOKEN
    assert plivo.settings.sender == "+15555550100"
    assert AUTH_TOKEN not in to_url(plivo)


# -- answers ---------------------------------------------------------------------------------------


def test_receipt_without_uuid_still_accepts() -> None:
    """A 2xx without message_uuid is accepted, with no provider id."""
    receipt = make().parse_response(httpx.Response(202, json={"api_id": "x"}), outbound())
    assert receipt.provider_message_id is None
    assert receipt.status is DeliveryStatus.ACCEPTED


@pytest.mark.parametrize(
    ("status", "error", "category"),
    [
        (400, "'15555550123' is not a valid phone number.", ErrorCategory.INVALID_RECIPIENT),
        (400, "invalid dst parameter", ErrorCategory.INVALID_RECIPIENT),
        (400, "src parameter not a valid sender id", ErrorCategory.CONFIGURATION),
        (400, "Invalid powerpack_uuid", ErrorCategory.CONFIGURATION),
        (400, "Insufficient credit", ErrorCategory.QUOTA),
        (400, "text is too long", ErrorCategory.PAYLOAD_TOO_LARGE),
        (400, "invalid json data sent in raw POST", ErrorCategory.CONTENT_REJECTED),
        (401, "Authentication failed", ErrorCategory.AUTH),
        (404, "not found", ErrorCategory.CONFIGURATION),
        (429, "too many requests", ErrorCategory.RATE_LIMITED),
        (500, "server error", ErrorCategory.UNAVAILABLE),
        (503, "unavailable", ErrorCategory.UNAVAILABLE),
    ],
)
def test_error_mapping(status: int, error: str, category: ErrorCategory) -> None:
    """The error text and then the HTTP status decide the category; the text is kept."""
    answer = httpx.Response(status, json={"api_id": "a-1", "error": error})
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    assert caught.value.category is category
    assert caught.value.retryable is category.retryable
    assert (caught.value.provider, caught.value.status_code) == ("plivo", status)
    assert error in caught.value.message
    assert caught.value.raw == {"api_id": "a-1", "error": error}


def test_rate_limit_keeps_retry_after() -> None:
    """A 429 with Retry-After is rate_limited with that delay."""
    answer = httpx.Response(429, json={"error": "rate limited"}, headers={"Retry-After": "4"})
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    assert caught.value.retry_after == 4.0


@respx.mock(assert_all_called=True)
def test_invalid_number_moves_to_the_next_channel(respx_mock: respx.MockRouter) -> None:
    """Through the client, an invalid destination fails the SMS channel and is not retried."""
    respx_mock.post(API_URL).mock(
        return_value=httpx.Response(400, json={"error": "'48600700800' is not a valid number"})
    )
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to={"phone": "+48600700800"}, via=["sms"])
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.error is not None
    assert attempt.error.category is ErrorCategory.INVALID_RECIPIENT


# -- signatures ------------------------------------------------------------------------------------

#: (url, nonce, signature, token): plivo-python tests/resources/test_signature.py and plivo-node
#: test/utils.js (the same V2 vectors in every official SDK).
V2_VECTORS = [
    (
        "https://answer.url",
        "12345",
        "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=",
        "my_auth_token",
    ),
    (
        "https://answer.url:8000",
        "24725744043720739450",
        "LDphWoWimP4QM5AoWI1uwP6WmlWtt5ITPZjXIWYvCNU=",
        "my_auth_token",
    ),
    (
        "https://answer.url:8080",
        "123456",
        "xeV6S6BPIQJ/rgKCjCm/Fo2ve5zNe1fatQoHyRT8vxQ=",
        "my_auth_tokens",
    ),
]

#: plivo-go utils_test.go, TestValidateSignatureV3Pass1..4: one call's parameters, POST and GET,
#: with and without a query in the URL.
V3_TOKEN = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
V3_NONCE = "31627761595286130198"
V3_URL = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"
V3_PARAMS = {
    "Direction": "outbound",
    "From": "19792014278",
    "ALegUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "CallStatus": "in-progress",
    "BillRate": "0.002",
    "ParentAuthID": "MANWVLYTK4ZWU1YTY4QA",
    "To": "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
    "ALegRequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "CallUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "RequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "SIP-H-To": "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
    "SessionStart": "2020-04-08 11:34:33.238707",
    "Event": "StartApp",
}
V3_VECTORS = [
    (V3_URL + "/?a=b&c=d", "POST", "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="),
    (V3_URL + "/?a=b&c=d", "GET", "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ="),
    (V3_URL, "POST", "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
    (V3_URL, "GET", "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc="),
]


@pytest.mark.parametrize(("url", "nonce", "expected", "token"), V2_VECTORS)
def test_v2_signature_matches_the_sdk_vectors(
    url: str, nonce: str, expected: str, token: str
) -> None:
    """signature_v2 reproduces the V2 vectors published by Plivo's SDKs."""
    assert signature_v2(url, nonce, token) == expected


@pytest.mark.parametrize(("url", "method", "expected"), V3_VECTORS)
def test_v3_signature_matches_the_sdk_vectors(url: str, method: str, expected: str) -> None:
    """signature_v3 reproduces plivo-go's four V3 vectors (POST/GET, with/without query)."""
    assert signature_v3(url, V3_NONCE, V3_TOKEN, method=method, params=V3_PARAMS) == expected


@pytest.mark.parametrize(("url", "method", "expected"), V3_VECTORS)
def test_verify_accepts_the_sdk_v3_vectors(url: str, method: str, expected: str) -> None:
    """verify_webhook accepts each published V3 vector as a real request (form body or query)."""
    plivo = Plivo(auth_id=AUTH_ID, auth_token=V3_TOKEN)
    if method == "POST":
        request = WebhookRequest(
            method="POST",
            url=url,
            headers={"X-Plivo-Signature-V3": expected, "X-Plivo-Signature-V3-Nonce": V3_NONCE},
            body=str(httpx.QueryParams(V3_PARAMS)).encode(),
        )
    else:
        query = str(httpx.QueryParams(V3_PARAMS))
        joiner = "&" if "?" in url else "?"
        request = WebhookRequest(
            method="GET",
            url=url + joiner + query,
            headers={"X-Plivo-Signature-V3": expected, "X-Plivo-Signature-V3-Nonce": V3_NONCE},
        )
    plivo.verify_webhook(request)


def test_verify_accepts_the_sdk_v2_vector() -> None:
    """verify_webhook accepts the published V2 vector (the query is not signed by V2)."""
    plivo = Plivo(auth_id=AUTH_ID, auth_token="my_auth_token")
    request = WebhookRequest(
        url="https://answer.url?ignored=1",
        headers={
            "X-Plivo-Signature-V2": "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=",
            "X-Plivo-Signature-V2-Nonce": "12345",
        },
        body=fixture("status_sent.form"),
    )
    plivo.verify_webhook(request)


def test_several_signatures_and_the_main_account_header() -> None:
    """A comma-separated list matches on any entry; X-Plivo-Signature-Ma-V3 is accepted too."""
    body = fixture("status_delivered.form")
    genuine = signed(body)
    good = genuine.header("X-Plivo-Signature-V3")
    rotated = dict(genuine.headers) | {"X-Plivo-Signature-V3": f"bm90LXRoZS1zaWduYXR1cmU=, {good}"}
    make().verify_webhook(WebhookRequest(url=genuine.url, headers=rotated, body=body))
    make().verify_webhook(signed(body, header="X-Plivo-Signature-Ma-V3"))


@pytest.mark.parametrize(
    ("what", "request_"),
    [
        ("another token", signed(fixture("status_delivered.form"), token=OTHER_TOKEN)),
        (
            "a changed body",
            signed(fixture("status_delivered.form")).model_copy(
                update={"body": fixture("status_delivered.form").replace(b"delivered", b"failed")}
            ),
        ),
        (
            "another URL",
            signed(fixture("status_delivered.form")).model_copy(
                update={"url": "https://app.example.com/hooks/plivo?tenant=8"}
            ),
        ),
        ("no signature", WebhookRequest(url=CALLBACK_URL, body=fixture("status_sent.form"))),
        (
            "a nonce without signature",
            WebhookRequest(
                url=CALLBACK_URL,
                headers={"X-Plivo-Signature-V3-Nonce": NONCE},
                body=fixture("status_sent.form"),
            ),
        ),
        ("a V2 with another token", signed(fixture("status_sent.form"), version=2, token="x")),
    ],
)
def test_rejected_callbacks(what: str, request_: WebhookRequest) -> None:
    """Forged, unsigned, re-addressed or wrongly keyed callbacks raise WebhookVerificationError."""
    with pytest.raises(WebhookVerificationError):
        make().parse_webhook(request_)


def test_a_wrong_v3_does_not_fall_back_to_v2() -> None:
    """When V3 headers are present they decide, even if a valid V2 signature comes along."""
    body = fixture("status_sent.form")
    v2 = signed(body, version=2)
    headers = dict(v2.headers) | {
        "X-Plivo-Signature-V3": "bm9wZQ==",
        "X-Plivo-Signature-V3-Nonce": NONCE,
    }
    request = WebhookRequest(url=v2.url, headers=headers, body=body)
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(request)


def test_v2_can_be_refused() -> None:
    """accept_v2_signatures=False refuses a genuine V2-only callback; V3 still passes."""
    body = fixture("status_sent.form")
    strict = make(accept_v2_signatures=False)
    make().verify_webhook(signed(body, version=2))
    with pytest.raises(WebhookVerificationError):
        strict.verify_webhook(signed(body, version=2))
    strict.verify_webhook(signed(body))


def test_non_utf8_body_fails_verification_not_parsing() -> None:
    """A body that is not UTF-8 with V3 headers is a verification failure."""
    request = signed(b"").model_copy(update={"body": b"\xff\xfe"})
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(request)


# -- callbacks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "raw_status", "sequence"),
    [
        ("status_queued.form", DeliveryStatus.ACCEPTED, "queued", "1"),
        ("status_sent.form", DeliveryStatus.SENT, "sent", "2"),
        ("status_delivered.form", DeliveryStatus.DELIVERED, "delivered", "3"),
    ],
)
def test_status_callbacks(
    name: str, status: DeliveryStatus, raw_status: str, sequence: str
) -> None:
    """Each fixture's Status maps onto the vocabulary with the UUID, number and event id."""
    event = only_event(signed(fixture(name)))
    assert event.status is status
    assert event.raw_status == raw_status
    assert event.provider == "plivo"
    assert event.provider_message_id == UUID
    assert event.recipient == "+15555550201"
    assert event.channel is Channel.SMS
    assert event.reason is None
    assert event.event_id == f"{UUID}:{raw_status}:{sequence}"
    assert event.raw["MCC"] == "310"


def test_delivered_time_is_the_delivery_report_time() -> None:
    """occurred_at is the latest time given (DeliveryReportTime), read as UTC."""
    event = only_event(signed(fixture("status_delivered.form")))
    assert event.occurred_at == datetime(2026, 11, 20, 8, 0, 4, 456789, tzinfo=timezone.utc)
    queued = only_event(signed(fixture("status_queued.form")))
    assert queued.occurred_at == datetime(2026, 11, 20, 8, 0, 0, 234567, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("name", "status", "reason", "description"),
    [
        (
            "status_undelivered_30.form",
            DeliveryStatus.UNDELIVERABLE,
            Reason.CONTENT_REJECTED,
            "Spam detected",
        ),
        (
            "status_failed_900.form",
            DeliveryStatus.FAILED,
            Reason.INSUFFICIENT_FUNDS,
            "Insufficient credit",
        ),
        (
            "status_undelivered_420.form",
            DeliveryStatus.EXPIRED,
            Reason.TIMED_OUT,
            "Message expired",
        ),
    ],
)
def test_failures_carry_the_error_code(
    name: str, status: DeliveryStatus, reason: Reason, description: str
) -> None:
    """ErrorCode gives the reason and description; code 420 makes the status expired."""
    event = only_event(signed(fixture(name)))
    assert (event.status, event.reason, event.description) == (status, reason, description)
    assert status.is_terminal


def test_unknown_error_code_is_other() -> None:
    """An error code Plivo has not documented is reason other, with the code in description."""
    body = fixture("status_undelivered_30.form").replace(b"ErrorCode=30", b"ErrorCode=4242")
    event = only_event(signed(body))
    assert (event.reason, event.description) == (Reason.OTHER, "error 4242")


def test_callback_url_id_becomes_message_id() -> None:
    """The anysend_message_id the adapter put into the callback URL comes back as message_id."""
    url = f"https://app.example.com/hooks/plivo?{MESSAGE_ID_PARAM}=msg-77"
    event = only_event(signed(fixture("status_sent.form"), url=url))
    assert event.message_id == "msg-77"


def test_get_callback_reads_the_query() -> None:
    """With method GET, the attributes arrive (and are signed) in the query string."""
    query = fixture("status_delivered.form").decode()
    url = f"https://app.example.com/hooks/plivo?{MESSAGE_ID_PARAM}=msg-9&{query}"
    event = only_event(signed(b"", url=url, method="GET"))
    assert (event.status, event.message_id) == (DeliveryStatus.DELIVERED, "msg-9")


def test_redelivered_callback_has_the_same_event_id() -> None:
    """Plivo signs no time, so a replayed callback verifies: dedupe it on event_id."""
    first = only_event(signed(fixture("status_sent.form")))
    again = only_event(signed(fixture("status_sent.form")))
    assert first.event_id == again.event_id


def test_inbound_sms() -> None:
    """An incoming SMS becomes an InboundMessage with E.164 numbers and the text."""
    [message] = make().parse_webhook(signed(fixture("inbound_sms.form")))
    assert isinstance(message, InboundMessage)
    assert message.provider == "plivo"
    assert message.channel is Channel.SMS
    assert message.sender == "+15555550203"
    assert message.recipient == "+15555550200"
    assert message.text == "Can I change my delivery slot to Friday?"
    assert message.provider_message_id == "a0f7d1a0-0000-4000-8000-00000000d001"


def test_tables_are_consistent() -> None:
    """Every documented error code has a reason and a description; statuses are lowercase."""
    assert set(REASONS) == set(ERROR_DESCRIPTIONS)
    assert all(key == key.lower() for key in STATUS_MAP)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"Status=delivered",
        b"MessageUUID=x",
        b"To=1&Text=hi",
        b"\xff\xfe",
        b"{}",
        b"Status=&MessageUUID=x",
    ],
)
def test_malformed_bodies_raise_parse_errors(body: bytes) -> None:
    """Bodies without the fields a callback needs raise WebhookParseError (verify=False)."""
    request = WebhookRequest(url=CALLBACK_URL, body=body)
    with pytest.raises(WebhookParseError):
        make().parse_webhook(request, verify=False)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.form"))),
    cut=st.integers(min_value=0, max_value=500),
    junk=st.binary(max_size=40),
)
def test_mutated_fixtures_only_raise_our_errors(name: str, cut: int, junk: bytes) -> None:
    """Truncated and spliced fixture bodies give events or WebhookParseError, nothing else."""
    body = fixture(name)
    mutated = body[:cut] + junk + body[cut + len(junk) :]
    request = WebhookRequest(url=CALLBACK_URL, body=mutated)
    try:
        events = make().parse_webhook(request, verify=False)
    except WebhookParseError:
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


# -- the contract kit ------------------------------------------------------------------------------


class TestPlivoContract(ProviderContract):
    """The contract kit run against the Plivo adapter."""

    expected_provider_message_id = "5b40a428-bfc7-4daf-9d06-726c558bf3b8"
    signature_headers = ("X-Plivo-Signature-V3", "X-Plivo-Signature-V3-Nonce")
    unknown_raw_status = "teleported"

    def make_provider(self) -> Plivo:
        """Plivo with test credentials."""
        return make(status_callback_url=CALLBACK_URL)

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Plivo queues the message (202)."""
        return httpx.Response(202, json=ACCEPTED, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Plivo's documented error answers."""
        return [
            ErrorCase(
                name="invalid destination",
                status=400,
                body={"api_id": "a", "error": "invalid dst parameter"},
                category=ErrorCategory.INVALID_RECIPIENT,
                retryable=False,
            ),
            ErrorCase(
                name="invalid source",
                status=400,
                body={"api_id": "a", "error": "invalid src parameter"},
                category=ErrorCategory.CONFIGURATION,
                retryable=False,
            ),
            ErrorCase(
                name="bad credentials",
                status=401,
                body={"api_id": "a", "error": "Authentication failed"},
                category=ErrorCategory.AUTH,
                retryable=False,
            ),
            ErrorCase(
                name="no such account",
                status=404,
                body={"api_id": "a", "error": "not found"},
                category=ErrorCategory.CONFIGURATION,
                retryable=False,
            ),
            ErrorCase(
                name="rate limited",
                status=429,
                body={"api_id": "a", "error": "too many requests"},
                headers={"Retry-After": "2"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=2.0,
            ),
            ErrorCase(
                name="server error",
                status=500,
                body={"api_id": "a", "error": "internal error"},
                category=ErrorCategory.UNAVAILABLE,
                retryable=True,
            ),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A genuine V3-signed delivery report."""
        return signed(fixture("status_delivered.form"))

    def wrong_secret_webhook(self) -> WebhookRequest:
        """A delivery report signed with another auth token."""
        return signed(fixture("status_delivered.form"), token=OTHER_TOKEN)

    def unknown_status_webhook(self) -> WebhookRequest:
        """A genuine report with a status Plivo does not document."""
        body = fixture("status_delivered.form").replace(b"Status=delivered", b"Status=teleported")
        return signed(body)

    def inbound_webhook(self) -> WebhookRequest:
        """A genuine incoming SMS."""
        return signed(fixture("inbound_sms.form"))


# -- answers to callbacks --------------------------------------------------------------------------


def test_callbacks_are_answered_with_empty_xml() -> None:
    """An empty Plivo XML document as application/xml: no reply to an incoming SMS."""
    plivo = make()
    expected = WebhookResponse(
        status=200, body=b"<Response></Response>", content_type="application/xml"
    )
    assert expected.body == XML_EMPTY
    for request in (signed(fixture("inbound_sms.form")), signed(fixture("status_sent.form"))):
        assert plivo.webhook_response(request, plivo.parse_webhook(request)) == expected
        assert plivo.handshake(request) is None


def test_get_callbacks() -> None:
    """Plivo calls back with GET when told to: GET is a callback method."""
    assert Plivo.webhook_methods == frozenset({"GET", "POST"})
    url = f"{CALLBACK_URL}&{fixture('status_sent.form').decode()}"
    event = only_event(signed(b"", url=url, method="GET"))
    assert event.status is DeliveryStatus.SENT
