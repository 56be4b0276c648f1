"""The Twilio adapter: form requests, error codes, signed callbacks, inbound and opt-outs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Attachment,
    Channel,
    ChatTemplate,
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
    SkipReason,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import WebhookResponse, _config
from anysend.providers.twilio import (
    ERROR_CODES,
    MESSAGE_ID_PARAM,
    REASONS,
    SIGNATURE_HEADER,
    STATUS_MAP,
    TWIML_EMPTY,
    Twilio,
    TwilioSettings,
    body_sha256,
    sign,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract
from tests.strategies import edited_bytes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twilio"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "twilio-test-token-5f2b9c0e7d4a"
API_KEY_SID = "SK00112233445566778899aabbccddeeff"
API_KEY_SECRET = "twilio-test-key-secret-8c1d77e0"
SERVICE_SID = "MG0123456789abcdef0123456789abcdef"
CONTENT_SID = "HX0123456789abcdef0123456789abcdef"
SENDER = "+15005550006"
ANN = "+48600700800"
MESSAGES_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CALLBACK_URL = "https://app.example.com/hooks/twilio/status"
INBOUND_URL = "https://app.example.com/hooks/twilio/inbound"
SID = "SM0123456789abcdef0123456789abcdef"

# Twilio's published example (twilio-python tests/unit/test_request_validator.py).
DOCS_TOKEN = "12345"
DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
DOCS_BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
DOCS_BODY_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="

STATUS_FIXTURES = [
    "status_sent.form",
    "status_delivered.form",
    "status_undelivered_30003.form",
    "status_undelivered_30007.form",
    "status_queued_messaging_service.form",
    "whatsapp_read.form",
    "whatsapp_failed_63016.form",
]
INBOUND_FIXTURES = [
    "inbound_sms.form",
    "inbound_whatsapp_media.form",
    "inbound_optout_stop.form",
    "inbound_optin_start.form",
]


def make(**settings: Any) -> Twilio:
    """A Twilio adapter with test credentials and sender."""
    values: dict[str, Any] = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}
    values.setdefault("sender", SENDER)
    values.update(settings)
    return Twilio(**values)


def fixture(name: str) -> bytes:
    """A fixture file's exact bytes."""
    return (FIXTURES / name).read_bytes()


def expected_signature(url: str, body: bytes, token: str = AUTH_TOKEN) -> str:
    """Twilio's signature, computed here independently of the adapter."""
    pairs = sorted(parse_qsl(body.decode(), keep_blank_values=True))
    data = url + "".join(name + value for name, value in pairs)
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def callback(
    body: bytes, url: str = CALLBACK_URL, *, token: str = AUTH_TOKEN, method: str = "POST"
) -> WebhookRequest:
    """A callback to ``url`` carrying ``body``, signed with ``token``."""
    headers = {
        SIGNATURE_HEADER: expected_signature(url, body, token),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return WebhookRequest(method=method, url=url, headers=headers, body=body)


def outbound(channel: Channel = Channel.SMS, **fields: Any) -> OutboundMessage:
    """A message as the client hands it to the adapter."""
    fields.setdefault("text", "Your code is 123456")
    return OutboundMessage(id="msg-1", channel=channel, to=ANN, **fields)


def accepted(status: str = "queued", sid: str = SID) -> httpx.Response:
    """Twilio's 201 answer with a Message resource."""
    return httpx.Response(
        201,
        json={
            "sid": sid,
            "status": status,
            "account_sid": ACCOUNT_SID,
            "to": ANN,
            "from": SENDER,
            "error_code": None,
            "error_message": None,
            "num_segments": "1",
        },
    )


def twilio_error(code: int, status: int, message: str = "refused") -> dict[str, Any]:
    """Twilio's JSON error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def basic(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def form_of(request: httpx.Request) -> dict[str, list[str]]:
    """A form request's fields, each with all its values."""
    return parse_qs(request.content.decode(), keep_blank_values=True)


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_sms_request_is_an_exact_form_post(respx_mock: respx.MockRouter) -> None:
    """Client sends one form POST to Messages.json with Basic auth and the documented fields."""
    route = respx_mock.post(MESSAGES_URL).mock(return_value=accepted())
    twilio = make(status_callback_url=CALLBACK_URL)
    with anysend.Client([twilio], clock=VirtualClock()) as client:
        result = client.send(Message(text="Your code is 123456"), to={"phone": ANN})
    assert result.ok
    assert result.provider_message_id == SID
    assert result.receipt is not None
    assert result.receipt.raw is not None
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == MESSAGES_URL
    assert request.headers["authorization"] == basic(ACCOUNT_SID, AUTH_TOKEN)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    status_callback = urlencode({"": f"{CALLBACK_URL}?{MESSAGE_ID_PARAM}={result.message_id}"})
    expected = "To=%2B48600700800&From=%2B15005550006&Body=Your+code+is+123456&StatusCallback"
    assert request.content == (expected + status_callback).encode()


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_whatsapp_template_with_an_api_key(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: WhatsApp addresses, ContentSid and ContentVariables, API key auth, no Body."""
    route = respx_mock.post(MESSAGES_URL).mock(return_value=accepted("accepted"))
    twilio = Twilio(
        account_sid=ACCOUNT_SID,
        api_key_sid=API_KEY_SID,
        api_key_secret=API_KEY_SECRET,
        whatsapp_sender="+15550100200",
        sender=SENDER,
        content_sids={"order_shipped:pl": CONTENT_SID},
    )
    template = ChatTemplate(name="order_shipped", language="pl", parameters=["Ann", 42])
    async with anysend.AsyncClient([twilio], clock=VirtualClock()) as client:
        result = await client.send(
            Message(text="ignored with a template", chat_template=template),
            to={"phone": ANN},
            via=["whatsapp"],
        )
    assert result.ok, result.attempts
    assert result.provider_message_id == SID
    request = route.calls.last.request
    assert request.headers["authorization"] == basic(API_KEY_SID, API_KEY_SECRET)
    assert form_of(request) == {
        "To": [f"whatsapp:{ANN}"],
        "From": ["whatsapp:+15550100200"],
        "ContentSid": [CONTENT_SID],
        "ContentVariables": ['{"1":"Ann","2":"42"}'],
    }


def test_named_template_variables_and_raw_content_sid() -> None:
    """Named parameters pass as they are; a ContentSid given as the name is used directly."""
    template = ChatTemplate(name=CONTENT_SID, parameters={"name": "Ann", "total": 9.5})
    request = make().build_request(outbound(Channel.WHATSAPP, chat_template=template))
    fields = form_of(request)
    assert fields["ContentSid"] == [CONTENT_SID]
    assert json.loads(fields["ContentVariables"][0]) == {"name": "Ann", "total": "9.5"}
    assert "Body" not in fields


def test_template_lookup_prefers_the_language() -> None:
    """content_sids: "name:language" wins over the bare name."""
    other = "HX" + "f" * 32
    twilio = make(content_sids={"welcome": other, "welcome:de": CONTENT_SID})
    german = outbound(chat_template=ChatTemplate(name="welcome", language="de"))
    english = outbound(chat_template=ChatTemplate(name="welcome", language="en"))
    assert form_of(twilio.build_request(german))["ContentSid"] == [CONTENT_SID]
    assert form_of(twilio.build_request(english))["ContentSid"] == [other]


def test_unknown_template_fails_before_the_network() -> None:
    """A template with no ContentSid is a configuration error from check_supported."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(chat_template=ChatTemplate(name="nope")))
    assert caught.value.category is ErrorCategory.CONFIGURATION
    assert caught.value.provider == "twilio"


def test_messaging_service_and_send_at() -> None:
    """send_at becomes ScheduleType=fixed and SendAt in UTC; the service picks the sender."""
    twilio = make(sender=None, messaging_service_sid=SERVICE_SID)
    when = datetime(2030, 1, 2, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    message = outbound(send_at=when)
    twilio.check_supported(message)
    assert form_of(twilio.build_request(message)) == {
        "To": [ANN],
        "MessagingServiceSid": [SERVICE_SID],
        "Body": ["Your code is 123456"],
        "ScheduleType": ["fixed"],
        "SendAt": ["2030-01-02T09:30:00Z"],
    }
    receipt = twilio.parse_response(accepted("scheduled"), message)
    assert receipt.status is DeliveryStatus.SCHEDULED


def test_send_at_needs_a_messaging_service() -> None:
    """Without a Messaging Service, send_at is refused as unsupported; an MG sender will do."""
    when = datetime(2030, 1, 2, tzinfo=timezone.utc)
    with pytest.raises(UnsupportedFeatureError) as caught:
        make().check_supported(outbound(send_at=when))
    assert caught.value.feature == "send_at"
    make().check_supported(outbound(send_at=when, sender=SERVICE_SID))


def test_provider_options_are_merged_verbatim() -> None:
    """Options join the form: lists repeat, bools lower-case, numbers as text, None removes."""
    message = outbound(
        provider_options={
            "ValidityPeriod": 600,
            "MediaUrl": ["https://example.com/a.jpg", "https://example.com/b.jpg"],
            "ShortenUrls": True,
            "StatusCallback": None,
        }
    )
    fields = form_of(make(status_callback_url=CALLBACK_URL).build_request(message))
    assert fields["ValidityPeriod"] == ["600"]
    assert fields["MediaUrl"] == ["https://example.com/a.jpg", "https://example.com/b.jpg"]
    assert fields["ShortenUrls"] == ["true"]
    assert "StatusCallback" not in fields


def test_status_callback_keeps_its_own_query() -> None:
    """Our message id is added to a StatusCallback URL that already has a query."""
    twilio = make(status_callback_url="https://app.example.com/hooks?tenant=7")
    fields = form_of(twilio.build_request(outbound()))
    assert fields["StatusCallback"] == [
        f"https://app.example.com/hooks?tenant=7&{MESSAGE_ID_PARAM}=msg-1"
    ]


def test_message_sender_wins_and_whatsapp_prefix_is_not_doubled() -> None:
    """Message.sender replaces the setting; an address already prefixed keeps one prefix."""
    message = outbound(Channel.WHATSAPP, sender="whatsapp:+15550100300")
    fields = form_of(make().build_request(message))
    assert fields["From"] == ["whatsapp:+15550100300"]
    assert fields["To"] == [f"whatsapp:{ANN}"]


def test_no_sender_is_a_configuration_error() -> None:
    """Neither a sender nor a Messaging Service: refused before any request."""
    with pytest.raises(ProviderError) as caught:
        make(sender=None).check_supported(outbound())
    assert caught.value.category is ErrorCategory.CONFIGURATION


def test_attachments_are_skipped_as_unsupported() -> None:
    """Twilio takes media by URL only: a message with file bytes skips the provider."""
    message = Message(text="see file", attachments=(Attachment(filename="a.pdf", content=b"%"),))
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(message, to={"phone": ANN})
    assert not result.ok
    assert result.attempts[0].skip_reason is SkipReason.UNSUPPORTED


# -- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", DeliveryStatus.ACCEPTED),
        ("accepted", DeliveryStatus.ACCEPTED),
        ("scheduled", DeliveryStatus.SCHEDULED),
        ("teleported", DeliveryStatus.ACCEPTED),
    ],
)
def test_receipt_status(status: str, expected: DeliveryStatus) -> None:
    """The Message resource's status sets the receipt's; unknown ones count as accepted."""
    receipt = make().parse_response(accepted(status), outbound())
    assert (receipt.provider_message_id, receipt.status) == (SID, expected)
    assert isinstance(receipt.raw, dict)
    assert receipt.raw["sid"] == SID


@pytest.mark.parametrize(
    ("code", "http_status", "category"),
    [
        (21211, 400, ErrorCategory.INVALID_RECIPIENT),
        (21614, 400, ErrorCategory.INVALID_RECIPIENT),
        (21635, 400, ErrorCategory.INVALID_RECIPIENT),
        (21610, 400, ErrorCategory.OPTED_OUT),
        (21408, 400, ErrorCategory.CONFIGURATION),
        (21606, 400, ErrorCategory.CONFIGURATION),
        (21212, 400, ErrorCategory.CONFIGURATION),
        (21608, 400, ErrorCategory.CONFIGURATION),
        (35118, 400, ErrorCategory.CONFIGURATION),
        (20404, 404, ErrorCategory.CONFIGURATION),
        (20003, 401, ErrorCategory.AUTH),
        (20429, 429, ErrorCategory.RATE_LIMITED),
        (21617, 400, ErrorCategory.PAYLOAD_TOO_LARGE),
        (30007, 400, ErrorCategory.CONTENT_REJECTED),
        (63016, 400, ErrorCategory.CONTENT_REJECTED),
        (63028, 400, ErrorCategory.CONTENT_REJECTED),
        (12345, 400, ErrorCategory.UNKNOWN),
        (20500, 500, ErrorCategory.UNAVAILABLE),
        (20503, 503, ErrorCategory.UNAVAILABLE),
    ],
)
def test_error_codes(code: int, http_status: int, category: ErrorCategory) -> None:
    """Each documented code maps to its category; unknown codes fall back to the HTTP status."""
    answer = httpx.Response(http_status, json=twilio_error(code, http_status, "nope"))
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    error = caught.value
    assert error.category is category
    assert error.retryable is category.retryable
    assert (error.code, error.status_code, error.provider) == (str(code), http_status, "twilio")
    assert error.message == "twilio refused the message: nope"
    assert isinstance(error.raw, dict)
    assert error.raw["code"] == code


def test_rate_limit_honours_retry_after() -> None:
    """A 429 (20429) is retryable and keeps the Retry-After delay."""
    answer = httpx.Response(
        429, json=twilio_error(20429, 429, "Too Many Requests"), headers={"Retry-After": "4"}
    )
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    assert caught.value.category is ErrorCategory.RATE_LIMITED
    assert caught.value.retryable
    assert caught.value.retry_after == 4.0


def test_failed_inside_a_201_is_an_error() -> None:
    """A 201 whose resource is already failed with an error code raises by that code."""
    answer = httpx.Response(
        201, json={"sid": SID, "status": "failed", "error_code": 21610, "error_message": "STOP"}
    )
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    assert caught.value.category is ErrorCategory.OPTED_OUT


def test_opted_out_moves_on_without_retrying() -> None:
    """Through the client: 21610 fails the SMS attempt once as opted_out, nothing re-sent."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(MESSAGES_URL).mock(
            return_value=httpx.Response(400, json=twilio_error(21610, 400))
        )
        with anysend.Client([make()], clock=VirtualClock()) as client:
            result = client.send(Message(text="Hi"), to={"phone": ANN}, via=["sms"])
    assert not result.ok
    assert route.call_count == 1
    [attempt] = result.attempts
    assert attempt.error is not None
    assert attempt.error.category is ErrorCategory.OPTED_OUT


def test_tables_are_keyed_by_twilio_codes() -> None:
    """ERROR_CODES and REASONS are keyed by Twilio's integer codes; STATUS_MAP by raw status."""
    assert all(isinstance(code, int) for code in [*ERROR_CODES, *REASONS])
    assert set(STATUS_MAP) >= {"queued", "sent", "delivered", "undelivered", "failed", "read"}


# -- signatures: Twilio's published vectors --------------------------------------------------------


def test_published_vector_signs_and_verifies() -> None:
    """Twilio's example (token 12345, mycompany.com, CallSid...) gives its published signature."""
    body = fixture("docs_vector.form")
    assert sign(DOCS_URL, parse_qsl(body.decode()), DOCS_TOKEN) == DOCS_SIGNATURE
    request = WebhookRequest(url=DOCS_URL, headers={SIGNATURE_HEADER: DOCS_SIGNATURE}, body=body)
    make(auth_token=DOCS_TOKEN).verify_webhook(request)


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", DOCS_SIGNATURE),
        (DOCS_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed with :443
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # :80
    ],
)
def test_published_port_variants(url: str, signature: str) -> None:
    """The URL is accepted with or without its port, as in Twilio's SDK tests."""
    request = WebhookRequest(
        url=url, headers={SIGNATURE_HEADER: signature}, body=fixture("docs_vector.form")
    )
    make(auth_token=DOCS_TOKEN).verify_webhook(request)


def test_published_vector_with_repeated_keys() -> None:
    """Repeated names sort by value too (Twilio's duplicate-parameter vector)."""
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert sign(DOCS_URL, pairs, DOCS_TOKEN) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    request = WebhookRequest(
        url=DOCS_URL,
        headers={SIGNATURE_HEADER: "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
        body=urlencode(pairs).encode(),
    )
    make(auth_token=DOCS_TOKEN).verify_webhook(request)


def test_published_json_body_vector() -> None:
    """JSON bodies: bodySHA256 is the body's hash and the signature covers the URL only."""
    body = fixture("docs_vector_body.json")
    assert body_sha256(body) == DOCS_BODY_HASH
    url = f"{DOCS_URL}&bodySHA256={DOCS_BODY_HASH}"
    headers = {SIGNATURE_HEADER: DOCS_BODY_SIGNATURE, "Content-Type": "application/json"}
    twilio = make(auth_token=DOCS_TOKEN)
    twilio.verify_webhook(WebhookRequest(url=url, headers=headers, body=body))
    with pytest.raises(WebhookVerificationError, match="bodySHA256"):
        twilio.verify_webhook(WebhookRequest(url=url, headers=headers, body=body + b" "))
    with pytest.raises(WebhookParseError):  # verified, but no Messaging callback
        twilio.parse_webhook(WebhookRequest(url=url, headers=headers, body=body))


# -- signatures: rejections ------------------------------------------------------------------------


def test_signed_fixture_verifies() -> None:
    """A fixture signed with the test token verifies, through the module's sign as well."""
    body = fixture("status_delivered.form")
    request = callback(body)
    assert request.header(SIGNATURE_HEADER) == sign(
        CALLBACK_URL, parse_qsl(body.decode(), keep_blank_values=True), AUTH_TOKEN
    )
    make().verify_webhook(request)


def rejected() -> Iterator[tuple[str, Twilio, WebhookRequest]]:
    """Callbacks that must not verify, each with the adapter that checks it."""
    body = fixture("status_delivered.form")
    good = callback(body)
    yield "unsigned", make(), WebhookRequest(url=CALLBACK_URL, body=body)
    yield "forged", make(), good.model_copy(update={"body": body.replace(b"delivered", b"read")})
    yield "wrong token", make(), callback(body, token="another-auth-token")
    yield "other url", make(), good.model_copy(update={"url": CALLBACK_URL + "?x=1"})
    yield "extra field", make(), good.model_copy(update={"body": body + b"&Extra=1"})
    yield "not utf-8", make(), good.model_copy(update={"body": b"Body=\xff"})
    yield (
        "api key only",
        Twilio(account_sid=ACCOUNT_SID, api_key_sid=API_KEY_SID, api_key_secret=API_KEY_SECRET),
        good,
    )


@pytest.mark.parametrize(("what", "twilio", "request_"), list(rejected()))
def test_rejected_callbacks(what: str, twilio: Twilio, request_: WebhookRequest) -> None:
    """Missing, forged, wrong-token, re-pointed and unverifiable callbacks are refused."""
    with pytest.raises(WebhookVerificationError) as caught:
        twilio.parse_webhook(request_)
    assert AUTH_TOKEN not in str(caught.value), what


def test_get_callbacks_are_signed_by_url_alone() -> None:
    """A GET callback: the signature covers the URL with its query; fields come from it."""
    query = fixture("status_sent.form").decode()
    url = f"{CALLBACK_URL}?{query}"
    request = callback(b"", url, method="GET")
    [event] = make().parse_webhook(request)
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.SENT


# -- status callbacks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "raw", "reason", "channel", "recipient"),
    [
        ("status_sent.form", DeliveryStatus.SENT, "sent", None, Channel.SMS, "+15555550100"),
        (
            "status_delivered.form",
            DeliveryStatus.DELIVERED,
            "delivered",
            None,
            Channel.SMS,
            "+15555550100",
        ),
        (
            "status_undelivered_30003.form",
            DeliveryStatus.UNDELIVERABLE,
            "undelivered",
            Reason.RECIPIENT_UNREACHABLE,
            Channel.SMS,
            "+15555550101",
        ),
        (
            "status_undelivered_30007.form",
            DeliveryStatus.UNDELIVERABLE,
            "undelivered",
            Reason.CONTENT_REJECTED,
            Channel.SMS,
            "+15555550101",
        ),
        (
            "status_queued_messaging_service.form",
            DeliveryStatus.ACCEPTED,
            "queued",
            None,
            Channel.SMS,
            "+15555550102",
        ),
        (
            "whatsapp_read.form",
            DeliveryStatus.READ,
            "read",
            None,
            Channel.WHATSAPP,
            "+15555550103",
        ),
        (
            "whatsapp_failed_63016.form",
            DeliveryStatus.REJECTED,
            "failed",
            Reason.OUTSIDE_MESSAGING_WINDOW,
            Channel.WHATSAPP,
            "+15555550103",
        ),
    ],
)
def test_status_callbacks(
    name: str,
    status: DeliveryStatus,
    raw: str,
    reason: Reason | None,
    channel: Channel,
    recipient: str,
) -> None:
    """Each fixture becomes one event: status, raw status, reason, channel and our id."""
    body = fixture(name)
    url = f"{CALLBACK_URL}?{MESSAGE_ID_PARAM}=msg-42"
    [event] = make().parse_webhook(callback(body, url))
    assert isinstance(event, DeliveryEvent)
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    assert event.provider == "twilio"
    assert event.provider_message_id == fields["MessageSid"]
    assert event.message_id == "msg-42"
    assert (event.status, event.raw_status, event.reason) == (status, raw, reason)
    assert (event.channel, event.recipient) == (channel, recipient)
    assert event.event_id == f"{fields['MessageSid']}:{raw}"
    assert event.occurred_at is None  # RawDlrDoneDate has no time zone
    assert event.raw == fields


def test_validity_period_expiry_is_expired() -> None:
    """Error 30036 on a failed message means its validity period ran out."""
    body = fixture("status_undelivered_30003.form").replace(b"30003", b"30036")
    body = body.replace(b"undelivered", b"failed")
    [event] = make().parse_webhook(callback(body))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.reason) == (DeliveryStatus.EXPIRED, Reason.TIMED_OUT)


def test_unknown_status_and_error_code_are_kept() -> None:
    """An unknown status is UNKNOWN with the raw value; an unknown code is reason OTHER."""
    body = fixture("status_undelivered_30003.form").replace(b"30003", b"39999")
    body = body.replace(b"MessageStatus=undelivered", b"MessageStatus=teleported")
    [event] = make().parse_webhook(callback(body))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status, event.reason) == (
        DeliveryStatus.UNKNOWN,
        "teleported",
        Reason.OTHER,
    )


def test_received_status_without_body_is_an_inbound_event() -> None:
    """A status callback about an inbound message is the inbound event, not a status."""
    body = fixture("status_sent.form").replace(b"MessageStatus=sent", b"MessageStatus=received")
    [event] = make().parse_webhook(callback(body))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.event) == (None, EventType.INBOUND)


# -- inbound ---------------------------------------------------------------------------------------


def test_inbound_sms() -> None:
    """An incoming SMS becomes an InboundMessage with the decoded text and no opt-out event."""
    body = fixture("inbound_sms.form")
    [message] = make().parse_webhook(callback(body, INBOUND_URL))
    assert isinstance(message, InboundMessage)
    assert message.channel is Channel.SMS
    assert (message.sender, message.recipient) == ("+15555550104", "+15005550006")
    assert message.text == "Is my order #4521 ready? Thanks & see you"
    assert message.provider_message_id == "SM0000000000000000000000000000b001"
    assert message.media == ()
    assert message.raw == dict(parse_qsl(body.decode(), keep_blank_values=True))


def test_inbound_whatsapp_with_media() -> None:
    """A WhatsApp message: prefixes stripped, channel whatsapp, each media URL and type."""
    [message] = make().parse_webhook(callback(fixture("inbound_whatsapp_media.form"), INBOUND_URL))
    assert isinstance(message, InboundMessage)
    assert message.channel is Channel.WHATSAPP
    assert (message.sender, message.recipient) == (ANN, "+15005550006")
    [media] = message.media
    assert media.content_type == "image/jpeg"
    assert media.url is not None
    assert media.url.endswith("/Media/ME00000000000000000000000000000001")


@pytest.mark.parametrize(
    ("name", "event", "reason"),
    [
        ("inbound_optout_stop.form", EventType.OPTED_OUT, Reason.OPTED_OUT),
        ("inbound_optin_start.form", EventType.OPTED_IN, None),
    ],
)
def test_opt_out_and_opt_in(name: str, event: EventType, reason: Reason | None) -> None:
    """OptOutType STOP/START adds an opted_out/opted_in event after the inbound message."""
    message, change = make().parse_webhook(callback(fixture(name), INBOUND_URL))
    assert isinstance(message, InboundMessage)
    assert isinstance(change, DeliveryEvent)
    assert (change.event, change.reason, change.status) == (event, reason, None)
    assert change.recipient == "+15555550104"
    assert change.raw_status == name.split("_")[2].split(".")[0].upper()
    assert change.provider_message_id == message.provider_message_id


def test_help_is_only_an_inbound_message() -> None:
    """OptOutType HELP changes nothing: just the inbound message."""
    body = fixture("inbound_optout_stop.form").replace(b"OptOutType=STOP", b"OptOutType=HELP")
    events = make().parse_webhook(callback(body, INBOUND_URL))
    assert [type(e) for e in events] == [InboundMessage]


# -- malformed bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"null",
        b"MessageStatus=delivered",  # no MessageSid
        b"NumMedia=zz&Body=x",  # no From
        b"From=%2B1&NumMedia=999999999999&Body=x",
        b"MessageSid=SM1&MessageStatus=sent&ErrorCode=x%00",
    ],
)
def test_malformed_bodies_raise_only_our_errors(body: bytes) -> None:
    """Broken bodies give a list or WebhookParseError, never a foreign exception."""
    try:
        events = make().parse_webhook(WebhookRequest(url=CALLBACK_URL, body=body), verify=False)
    except WebhookParseError:
        return
    assert isinstance(events, list)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(STATUS_FIXTURES + INBOUND_FIXTURES),
    data=st.data(),
)
def test_mutated_fixtures_raise_only_our_errors(name: str, data: st.DataObject) -> None:
    """Fixture bodies with random byte edits parse or raise only anysend's webhook errors."""
    body = edited_bytes(fixture(name), data)
    request = WebhookRequest(url=CALLBACK_URL, body=body)
    try:
        events = make().parse_webhook(request, verify=False)
    except (WebhookParseError, WebhookVerificationError):
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


# -- settings --------------------------------------------------------------------------------------


def test_url_form_configures_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """twilio://SID:TOKEN@default?from=... fills account_sid, auth_token and sender."""
    monkeypatch.setattr(_config, "load", lambda name: Twilio)
    twilio = _config.from_url(f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@default?from=+15005550006")
    assert isinstance(twilio, Twilio)
    assert twilio.settings == TwilioSettings(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, sender=SENDER
    )
    assert AUTH_TOKEN not in repr(twilio)
    assert AUTH_TOKEN not in _config.redact_url(
        f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@default", Twilio
    )


@pytest.mark.parametrize(
    "settings_",
    [
        {"account_sid": "SK0123456789abcdef0123456789abcdef", "auth_token": AUTH_TOKEN},
        {"account_sid": ACCOUNT_SID},
        {"account_sid": ACCOUNT_SID, "api_key_sid": API_KEY_SID},
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_key_sid": "AC1"},
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "messaging_service_sid": "x"},
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "status_callback_url": "/x"},
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "content_sids": {"a": "b"}},
    ],
)
def test_invalid_settings(settings_: dict[str, Any]) -> None:
    """Malformed SIDs, incomplete credentials and bad URLs are ConfigurationErrors."""
    with pytest.raises(ConfigurationError):
        Twilio(**settings_)


# -- the contract kit ------------------------------------------------------------------------------


class TestTwilioContract(ProviderContract):
    """The contract kit run against the Twilio adapter."""

    expected_provider_message_id = SID
    signature_headers: tuple[str, ...] = (SIGNATURE_HEADER,)
    unknown_raw_status = "teleported"

    def make_provider(self) -> Twilio:
        """Twilio with test credentials and a status callback URL."""
        return make(status_callback_url=CALLBACK_URL)

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Twilio's 201 with a Message resource."""
        return accepted()

    def error_cases(self) -> list[ErrorCase]:
        """Twilio's documented error codes."""

        def case(name: str, code: int, status: int, category: ErrorCategory) -> ErrorCase:
            return ErrorCase(
                name=name,
                status=status,
                body=twilio_error(code, status),
                category=category,
                retryable=category.retryable,
            )

        return [
            case("invalid To", 21211, 400, ErrorCategory.INVALID_RECIPIENT),
            case("not a mobile number", 21614, 400, ErrorCategory.INVALID_RECIPIENT),
            case("unsubscribed (STOP)", 21610, 400, ErrorCategory.OPTED_OUT),
            case("region not enabled", 21408, 400, ErrorCategory.CONFIGURATION),
            case("From not capable", 21606, 400, ErrorCategory.CONFIGURATION),
            case("authentication", 20003, 401, ErrorCategory.AUTH),
            case("WhatsApp window closed", 63016, 400, ErrorCategory.CONTENT_REJECTED),
            ErrorCase(
                name="too many requests",
                status=429,
                body=twilio_error(20429, 429),
                headers={"Retry-After": "2"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=2.0,
            ),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """The delivered fixture, signed with the test token."""
        return callback(fixture("status_delivered.form"))

    def wrong_secret_webhook(self) -> WebhookRequest:
        """The delivered fixture signed with another token."""
        return callback(fixture("status_delivered.form"), token="not-the-auth-token")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A signed status callback with MessageStatus=teleported."""
        body = fixture("status_sent.form").replace(b"=sent", b"=teleported")
        return callback(body)

    def inbound_webhook(self) -> WebhookRequest:
        """The inbound SMS fixture, signed."""
        return callback(fixture("inbound_sms.form"), INBOUND_URL)


# -- answers to callbacks --------------------------------------------------------------------------


def test_callbacks_are_answered_with_empty_twiml() -> None:
    """Inbound SMS and status callbacks alike get an empty TwiML document: no auto-reply."""
    twilio = make()
    expected = WebhookResponse(
        status=200,
        body=b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
        content_type="text/xml",
    )
    assert expected.body == TWIML_EMPTY
    inbound = callback(fixture("inbound_sms.form"), INBOUND_URL)
    assert twilio.webhook_response(inbound, twilio.parse_webhook(inbound)) == expected
    status = callback(fixture("status_delivered.form"))
    assert twilio.webhook_response(status, twilio.parse_webhook(status)) == expected


def test_no_handshake_but_get_callbacks() -> None:
    """Twilio makes no GET handshake, but may call back with GET (the method is set per URL)."""
    twilio = make()
    query = fixture("status_delivered.form").decode()
    url = f"{CALLBACK_URL}?{query}"
    headers = {SIGNATURE_HEADER: expected_signature(url, b"")}
    request = WebhookRequest(method="GET", url=url, headers=headers)
    assert twilio.handshake(request) is None
    assert Twilio.webhook_methods == frozenset({"GET", "POST"})
    [event] = twilio.parse_webhook(request)
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED
