"""The SendGrid adapter: the Mail Send request, error mapping, and the signed Event Webhook."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Attachment,
    Channel,
    ConfigurationError,
    ContentError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InvalidRecipientError,
    Message,
    OutboundMessage,
    ProviderError,
    Reason,
    Recipient,
    SkipReason,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers.sendgrid import (
    MESSAGE_ID_ARG,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGrid,
    message_id_of,
    sign,
)
from anysend.testing import MemoryProvider, VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sendgrid"
NOW = 1_795_172_500
API_KEY = "SG.test-key.0123456789abcdef"
SENDER = "Shop <shop@example.com>"
URL = "https://app.example.com/hooks/sendgrid"
MAIL_SEND = "https://api.sendgrid.com/v3/mail/send"
MAIL_SEND_EU = "https://api.eu.sendgrid.com/v3/mail/send"
X_MESSAGE_ID = "FxAnySendFixtureMsg010"

PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The public half of ``key`` as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


PUBLIC_KEY = public_key_text(PRIVATE_KEY)

# SendGrid's published vector (sendgrid-python, test/unit/test_eventwebhook.py).
SDK_PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpV"
    "KS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SDK_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+l"
    "uQAbPIqHh89M15TluLtEZtM="
)
SDK_BAD_SIGNATURE = (
    "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSz"
    "oQsbVRamr2nlxFDWYNH3j/0="
)
SDK_BAD_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWH"
    "w8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
)
SDK_TIMESTAMP = "1600112502"


def fixture(name: str) -> bytes:
    """The exact bytes of a callback fixture."""
    return (FIXTURES / name).read_bytes()


def make(**settings: Any) -> SendGrid:
    """A SendGrid adapter with test settings and its clock pinned to NOW."""
    settings.setdefault("api_key", API_KEY)
    settings.setdefault("sender", SENDER)
    settings.setdefault("webhook_public_key", PUBLIC_KEY)
    provider = SendGrid(**settings)
    provider.now = lambda: float(NOW)
    return provider


def callback(
    body: bytes, *, key: ec.EllipticCurvePrivateKey = PRIVATE_KEY, at: int = NOW
) -> WebhookRequest:
    """An Event Webhook POST of ``body``, signed with ``key`` at time ``at``."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, at, key),
        TIMESTAMP_HEADER: str(at),
    }
    return WebhookRequest(url=URL, headers=headers, body=body)


def outbound(**fields: Any) -> OutboundMessage:
    """An email as the client would hand it to the adapter."""
    fields.setdefault("subject", "Your order")
    fields.setdefault("text", "It shipped")
    return OutboundMessage(id="msg-1", channel=Channel.EMAIL, to="ann@example.com", **fields)


def sent_json(request: httpx.Request) -> Any:
    """The JSON body of a request the adapter sent."""
    return json.loads(request.read())


def accepted(message_id: str = X_MESSAGE_ID) -> httpx.Response:
    """SendGrid's 202 Accepted: an empty body and the id in X-Message-Id."""
    return httpx.Response(202, headers={"X-Message-Id": message_id})


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_client_sends_the_documented_request(respx_mock: respx.MockRouter) -> None:
    """Every field goes where the Mail Send API documents it; 202 gives X-Message-Id."""
    route = respx_mock.post(MAIL_SEND).mock(return_value=accepted())
    send_at = datetime.fromtimestamp(NOW + 3600, tz=timezone.utc)
    message = Message(
        subject="Your order shipped",
        text="Order 1042 is on its way",
        html="<p>Order <b>1042</b> <img src='cid:logo'></p>",
        cc=("Ben <ben@example.com>",),
        bcc=("audit@example.com",),
        reply_to=("support@example.com",),
        headers={"X-Campaign": "autumn"},
        attachments=(
            Attachment(filename="invoice.pdf", content=b"%PDF-1.4"),
            Attachment(filename="logo.png", content=b"\x89PNG", inline=True, content_id="logo"),
        ),
        metadata={"order": "1042"},
        tags=("order-shipped", "transactional"),
        unsubscribe_url="https://shop.example.com/unsubscribe/ann",
        send_at=send_at,
    )
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(message, to=Recipient(email="ann@example.com", name="Ann"))
    assert result.ok
    assert result.provider_message_id == X_MESSAGE_ID
    assert result.status is DeliveryStatus.ACCEPTED  # SCHEDULED would not count as ok
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == MAIL_SEND
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert sent_json(request) == {
        "personalizations": [
            {
                "to": [{"email": "ann@example.com", "name": "Ann"}],
                "cc": [{"email": "ben@example.com", "name": "Ben"}],
                "bcc": [{"email": "audit@example.com"}],
            }
        ],
        "from": {"email": "shop@example.com", "name": "Shop"},
        "reply_to": {"email": "support@example.com"},
        "subject": "Your order shipped",
        "content": [
            {"type": "text/plain", "value": "Order 1042 is on its way"},
            {"type": "text/html", "value": "<p>Order <b>1042</b> <img src='cid:logo'></p>"},
        ],
        "attachments": [
            {
                "content": base64.b64encode(b"%PDF-1.4").decode(),
                "filename": "invoice.pdf",
                "type": "application/pdf",
                "disposition": "attachment",
            },
            {
                "content": base64.b64encode(b"\x89PNG").decode(),
                "filename": "logo.png",
                "type": "image/png",
                "disposition": "inline",
                "content_id": "logo",
            },
        ],
        "headers": {
            "X-Campaign": "autumn",
            "List-Unsubscribe": "<https://shop.example.com/unsubscribe/ann>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "categories": ["order-shipped", "transactional"],
        "custom_args": {"order": "1042", MESSAGE_ID_ARG: result.message_id},
        "send_at": NOW + 3600,
    }


def test_minimal_body_bytes() -> None:
    """A plain message serialises to compact UTF-8 JSON, exactly."""
    request = make().build_request(outbound(subject="Zamówienie", text="Wysłane"))
    assert (
        request.content
        == (
            '{"personalizations":[{"to":[{"email":"ann@example.com"}]}],'
            '"from":{"email":"shop@example.com","name":"Shop"},"subject":"Zamówienie",'
            '"content":[{"type":"text/plain","value":"Wysłane"}],'
            '"custom_args":{"anysend_message_id":"msg-1"}}'
        ).encode()
    )
    assert request.headers["content-length"] == str(len(request.content))


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_uses_the_eu_host(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: region "eu" posts to api.eu.sendgrid.com; the sender comes from the message."""
    route = respx_mock.post(MAIL_SEND_EU).mock(return_value=accepted("EuMsg01"))
    provider = make(region="eu", sender=None)
    async with anysend.AsyncClient([provider], clock=VirtualClock()) as client:
        result = await client.send(
            Message(subject="Hej", html="<p>Hej</p>", sender="eu@example.com"),
            to={"email": "ann@example.com"},
        )
    assert (result.status, result.provider_message_id) == (DeliveryStatus.ACCEPTED, "EuMsg01")
    body = sent_json(route.calls.last.request)
    assert body["from"] == {"email": "eu@example.com"}
    assert body["content"] == [  # the client derives the text part; text/plain goes first
        {"type": "text/plain", "value": "Hej"},
        {"type": "text/html", "value": "<p>Hej</p>"},
    ]
    assert route.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"


def test_several_reply_to_addresses_use_reply_to_list() -> None:
    """Two reply-to addresses go to reply_to_list (it and reply_to exclude each other)."""
    body = make().payload(outbound(reply_to=("a@example.com", "Bea <b@example.com>")))
    assert "reply_to" not in body
    assert body["reply_to_list"] == [
        {"email": "a@example.com"},
        {"email": "b@example.com", "name": "Bea"},
    ]


def test_repeated_addresses_are_dropped() -> None:
    """cc/bcc entries repeating the recipient or each other are left out (SendGrid refuses them)."""
    body = make().payload(
        outbound(cc=("ANN@example.com", "ben@example.com"), bcc=("Ben <ben@example.com>",))
    )
    assert body["personalizations"] == [
        {"to": [{"email": "ann@example.com"}], "cc": [{"email": "ben@example.com"}]}
    ]


def test_provider_options_are_merged() -> None:
    """Options go in verbatim; template data into the personalization; our id stays."""
    body = make().payload(
        outbound(
            subject=None,
            text=None,
            provider_options={
                "template_id": "d-123",
                "dynamic_template_data": {"order": 1042},
                "mail_settings": {"sandbox_mode": {"enable": True}},
                "custom_args": {"tenant": "eu-1", MESSAGE_ID_ARG: "forged"},
            },
        )
    )
    assert body["template_id"] == "d-123"
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert body["personalizations"][0]["dynamic_template_data"] == {"order": 1042}
    assert body["custom_args"] == {"tenant": "eu-1", MESSAGE_ID_ARG: "msg-1"}
    assert "subject" not in body
    assert "content" not in body


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"subject": None}, ContentError),
        ({"text": None}, ContentError),
        ({"tags": tuple(f"t{i}" for i in range(11))}, ContentError),
        ({"tags": ("zażółć",)}, ContentError),
        ({"tags": ("x" * 256,)}, ContentError),
        ({"headers": {"Reply-To": "x@example.com"}}, ContentError),
        ({"headers": {"X-Sg-Id": "1"}}, ContentError),
        ({"headers": {"Bad Name": "1"}}, ContentError),
        ({"headers": {"X-Ok": "a\r\nBcc: evil@example.com"}}, ContentError),
        (
            {
                "unsubscribe_url": "https://shop.example.com/u",
                "headers": {"List-Unsubscribe": "<mailto:u@example.com>"},
            },
            ContentError,
        ),
        ({"category": "marketing"}, ContentError),
        ({"reply_to": ("not an address",)}, ContentError),
        ({"cc": ("not an address",)}, InvalidRecipientError),
        ({"bcc": ("a@example.com, b@example.com",)}, InvalidRecipientError),
        ({"sender": "two@example.com, three@example.com"}, ContentError),
    ],
)
def test_messages_breaking_sendgrid_rules_are_refused(
    fields: dict[str, Any], error: type[Exception]
) -> None:
    """Content SendGrid would refuse raises before any request."""
    with pytest.raises(error):
        make().build_request(outbound(**fields))


def test_no_sender_is_a_configuration_error() -> None:
    """Without Message.sender or the sender setting, the adapter raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="sender"):
        make(sender=None).build_request(outbound())


def test_send_at_more_than_72_hours_ahead_is_unsupported() -> None:
    """SendGrid schedules up to 72 hours ahead: later is unsupported, earlier goes as send_at."""
    provider = make()
    later = datetime.fromtimestamp(NOW + 72 * 3600 + 60, tz=timezone.utc)
    with pytest.raises(UnsupportedFeatureError) as caught:
        provider.check_supported(outbound(send_at=later))
    assert caught.value.feature == "send_at"
    soon = datetime.fromtimestamp(NOW + 71 * 3600, tz=timezone.utc).replace(tzinfo=None)
    provider.check_supported(outbound(send_at=soon))  # naive datetimes are UTC
    assert provider.payload(outbound(send_at=soon))["send_at"] == NOW + 71 * 3600


def test_far_send_at_falls_back_to_the_next_provider() -> None:
    """Through the client, a send_at beyond 72 hours skips SendGrid as unsupported."""
    backup = MemoryProvider(name="backup", channels=frozenset({Channel.EMAIL}))
    later = datetime.fromtimestamp(NOW, tz=timezone.utc) + timedelta(days=5)
    message = Message(subject="Later", text="x", send_at=later)
    with anysend.Client([make(), backup], clock=VirtualClock()) as client:
        result = client.send(message, to={"email": "ann@example.com"})
    assert result.provider == "backup"
    assert result.attempts[0].skip_reason is SkipReason.UNSUPPORTED


def test_attachments_over_the_limit_are_refused_before_sending() -> None:
    """More than 22.5 MB of attachments (30 MB once base64-encoded) is payload_too_large."""
    big = Attachment(filename="big.bin", content=b"\0" * (22_500_000 + 1))
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(attachments=(big,)))
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE


def test_sandbox_answer_without_message_id() -> None:
    """Sandbox mode answers 200 with no X-Message-Id: accepted, without an id."""
    request = make().build_request(outbound())
    receipt = make().parse_response(httpx.Response(200, request=request), outbound())
    assert (receipt.provider_message_id, receipt.raw) == (None, None)
    assert receipt.status is DeliveryStatus.ACCEPTED


# -- errors ----------------------------------------------------------------------------------------


def sg_errors(*errors: tuple[str, str | None]) -> dict[str, Any]:
    """SendGrid's error body: ``{"errors": [{"message", "field", "help"}]}``."""
    return {"errors": [{"message": m, "field": f, "help": None} for m, f in errors]}


ERROR_CASES = [
    ErrorCase(
        name="invalid to address",
        status=400,
        body=sg_errors(("Does not contain a valid address.", "personalizations.0.to.0.email")),
        category=ErrorCategory.INVALID_RECIPIENT,
        retryable=False,
    ),
    ErrorCase(
        name="invalid from address",
        status=400,
        body=sg_errors(("The from email does not contain a valid address.", "from.email")),
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="unverified sender identity",
        status=403,
        body=sg_errors(
            ("The from address does not match a verified Sender Identity.", "from"),
        ),
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="key without the Mail Send permission",
        status=403,
        body=sg_errors(("access forbidden", None)),
        category=ErrorCategory.AUTH,
        retryable=False,
    ),
    ErrorCase(
        name="revoked key",
        status=401,
        body=sg_errors(("The provided authorization grant is invalid, expired, or revoked", None)),
        category=ErrorCategory.AUTH,
        retryable=False,
    ),
    ErrorCase(
        name="credits used up",
        status=401,
        body=sg_errors(("Maximum credits exceeded", None)),
        category=ErrorCategory.QUOTA,
        retryable=False,
    ),
    ErrorCase(
        name="bad attachment",
        status=400,
        body=sg_errors(("The attachment content must be base64 encoded.", "attachments.0.content")),
        category=ErrorCategory.CONTENT_REJECTED,
        retryable=False,
    ),
    ErrorCase(
        name="too many categories",
        status=400,
        body=sg_errors(("There is a limit of 10 categories", "categories")),
        category=ErrorCategory.CONTENT_REJECTED,
        retryable=False,
    ),
    ErrorCase(
        name="send_at too far",
        status=400,
        body=sg_errors(("Scheduling more than 72 hours in advance is forbidden.", "send_at")),
        category=ErrorCategory.CONTENT_REJECTED,
        retryable=False,
    ),
    ErrorCase(
        name="unknown template",
        status=400,
        body=sg_errors(("The template_id must be a valid template", "template_id")),
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="first known error decides",
        status=400,
        body=sg_errors(
            ("something new", "brand_new_field"),
            ("Each email address should be unique", "personalizations[0].to"),
        ),
        category=ErrorCategory.INVALID_RECIPIENT,
        retryable=False,
    ),
    ErrorCase(
        name="bad request without a field",
        status=400,
        body=sg_errors(("Bad Request", None)),
        category=ErrorCategory.UNKNOWN,
        retryable=False,
    ),
    ErrorCase(
        name="payload too large",
        status=413,
        body=sg_errors(("Payload too large", None)),
        category=ErrorCategory.PAYLOAD_TOO_LARGE,
        retryable=False,
    ),
    ErrorCase(
        name="invalid UTF-8",
        status=415,
        body=sg_errors(("Invalid UTF8 in request", None)),
        category=ErrorCategory.CONTENT_REJECTED,
        retryable=False,
    ),
    ErrorCase(
        name="wrong base URL",
        status=404,
        body="404 page not found",
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="rate limited until X-RateLimit-Reset",
        status=429,
        body=sg_errors(("too many requests", None)),
        headers={
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(NOW + 12),
        },
        category=ErrorCategory.RATE_LIMITED,
        retryable=True,
        retry_after=12.0,
    ),
    ErrorCase(
        name="server error",
        status=503,
        body=sg_errors(("The SendGrid v3 Web API is not available.", None)),
        category=ErrorCategory.UNAVAILABLE,
        retryable=True,
    ),
    ErrorCase(
        name="gateway timeout",
        status=504,
        body="",
        category=ErrorCategory.AMBIGUOUS_TIMEOUT,
        retryable=False,
    ),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda case: case.name)
def test_error_answers_map_to_categories(case: ErrorCase) -> None:
    """Each documented error answer raises a ProviderError with its category and delay."""
    provider = make()
    request = provider.build_request(outbound())
    with pytest.raises(ProviderError) as caught:
        provider.parse_response(case.response(request), outbound())
    error = caught.value
    assert (error.category, error.retryable) == (case.category, case.retryable)
    assert error.retry_after == case.retry_after
    assert (error.provider, error.status_code) == ("sendgrid", case.status)
    assert API_KEY not in str(error)


def test_error_keeps_field_and_messages() -> None:
    """The error's code is the field that decided; its message lists SendGrid's messages."""
    provider = make()
    body = sg_errors(
        ("Does not contain a valid address.", "personalizations.0.to.0.email"),
        ("The subject is required.", "subject"),
    )
    response = httpx.Response(400, json=body, request=provider.build_request(outbound()))
    error = provider.error_for(response)
    assert error.code == "personalizations.0.to.0.email"
    assert error.message == (
        "sendgrid refused the message: Does not contain a valid address.; The subject is required."
    )
    assert error.raw == body


@pytest.mark.parametrize("reset", ["soon", "inf", "nan", ""])
def test_unreadable_rate_limit_reset_gives_no_delay(reset: str) -> None:
    """A 429 whose X-RateLimit-Reset is not a finite number has no retry_after."""
    provider = make()
    request = provider.build_request(outbound())
    response = httpx.Response(429, headers={"X-RateLimit-Reset": reset}, request=request)
    error = provider.error_for(response)
    assert (error.category, error.retry_after) == (ErrorCategory.RATE_LIMITED, None)


@respx.mock
def test_rate_limit_waits_until_the_reset_through_the_client(respx_mock: respx.MockRouter) -> None:
    """A 429 with X-RateLimit-Reset 5 seconds away is retried after 5 seconds."""
    respx_mock.post(MAIL_SEND).mock(
        side_effect=[
            httpx.Response(429, headers={"X-RateLimit-Reset": str(NOW + 5)}, json={}),
            accepted("Retried01"),
        ]
    )
    clock = VirtualClock()
    with anysend.Client([make()], clock=clock) as client:
        result = client.send(Message(subject="s", text="t"), to={"email": "ann@example.com"})
    assert result.provider_message_id == "Retried01"
    assert clock.sleeps == [5.0]


@respx.mock
def test_invalid_recipient_moves_on_to_the_next_channel(respx_mock: respx.MockRouter) -> None:
    """A 400 about the to address is not retried and the next channel is tried."""
    body = sg_errors(("Does not contain a valid address.", "personalizations.0.to.0.email"))
    route = respx_mock.post(MAIL_SEND).mock(return_value=httpx.Response(400, json=body))
    sms = MemoryProvider(name="sms", channels=frozenset({Channel.SMS}))
    with anysend.Client([make(), sms], clock=VirtualClock()) as client:
        result = client.send(
            Message(subject="s", text="t"),
            to={"email": "ann@example.com", "phone": "+48600700800"},
            via=["email", "sms"],
        )
    assert route.call_count == 1
    assert result.channel is Channel.SMS


# -- settings --------------------------------------------------------------------------------------


def test_public_key_may_be_pem() -> None:
    """The verification key is also accepted as PEM."""
    pem = PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    provider = make(webhook_public_key=pem.decode())
    provider.verify_webhook(callback(fixture("delivered.json")))


@pytest.mark.parametrize(
    "settings",
    [
        {"api_key": ""},
        {"api_key": "SG.a b"},
        {"region": "us"},
        {"sender": "not an address"},
        {"sender": "shop@example.com\r\nBcc: x@example.com"},
        {"webhook_public_key": "not base64!"},
        {"webhook_public_key": base64.b64encode(b"not DER").decode()},
        {"replay_window": 0},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any]) -> None:
    """Bad settings raise ConfigurationError when the provider is built."""
    with pytest.raises(ConfigurationError):
        make(**settings)


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["P-384", "RSA"],
)
def test_only_p256_keys_are_accepted(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    """A public key that is not ECDSA P-256 is refused."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigurationError, match="P-256"):
        make(webhook_public_key=base64.b64encode(der).decode())


# -- callbacks: verification -----------------------------------------------------------------------


def sdk_request(**headers: str) -> WebhookRequest:
    """SendGrid's published vector as a request (headers may be replaced)."""
    sent = {SIGNATURE_HEADER: SDK_SIGNATURE, TIMESTAMP_HEADER: SDK_TIMESTAMP, **headers}
    return WebhookRequest(url=URL, headers=sent, body=fixture("sdk_signed_vector.json"))


def sdk_provider(key: str = SDK_PUBLIC_KEY, at: float = 1_600_112_502 + 30) -> SendGrid:
    """A provider with the SDK's public key, its clock near the vector's timestamp."""
    provider = make(webhook_public_key=key)
    provider.now = lambda: at
    return provider


def test_sendgrid_published_vector_verifies_and_parses() -> None:
    """The sendgrid-python signed payload verifies and parses into a dropped event."""
    [event] = sdk_provider().parse_webhook(sdk_request())
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status, event.reason) == (
        DeliveryStatus.REJECTED,
        "dropped",
        Reason.SUPPRESSED_BOUNCE,
    )
    assert event.provider_message_id == "LRzXl_NHStOGhQ4kofSm_A"
    assert event.recipient == "hello@world.com"
    assert event.event_id == "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA"
    assert event.occurred_at == datetime.fromtimestamp(1_600_112_492, tz=timezone.utc)


@pytest.mark.parametrize(
    ("provider_key", "headers", "body_suffix"),
    [
        (SDK_BAD_KEY, {}, b""),
        (SDK_PUBLIC_KEY, {SIGNATURE_HEADER: SDK_BAD_SIGNATURE}, b""),
        (SDK_PUBLIC_KEY, {TIMESTAMP_HEADER: "1600112503"}, b""),
        (SDK_PUBLIC_KEY, {}, b" "),
    ],
    ids=["other key", "other signature", "other timestamp", "changed body"],
)
def test_sendgrid_published_vector_negative_cases(
    provider_key: str, headers: dict[str, str], body_suffix: bytes
) -> None:
    """The SDK's negative cases (bad key, signature, timestamp, payload) are rejected."""
    request = sdk_request(**headers)
    request = request.model_copy(update={"body": request.body + body_suffix})
    with pytest.raises(WebhookVerificationError):
        sdk_provider(provider_key).verify_webhook(request)


def test_sendgrid_published_vector_is_a_replay_today() -> None:
    """The 2020 vector is outside the replay window for a clock at NOW."""
    with pytest.raises(WebhookVerificationError, match="replay"):
        sdk_provider(at=float(NOW)).verify_webhook(sdk_request())


@pytest.mark.parametrize("offset", [-301, 301])
def test_replay_window_both_ways(offset: int) -> None:
    """A signature older or newer than 300 seconds is refused; 300 is still accepted."""
    body = fixture("delivered.json")
    make().verify_webhook(callback(body, at=NOW + (300 if offset > 0 else -300)))
    with pytest.raises(WebhookVerificationError, match="replay"):
        make().verify_webhook(callback(body, at=NOW + offset))


def test_tolerance_is_a_setting() -> None:
    """replay_window widens or narrows the replay window."""
    body = fixture("delivered.json")
    make(replay_window=3600).verify_webhook(callback(body, at=NOW - 3000))
    with pytest.raises(WebhookVerificationError):
        make(replay_window=10).verify_webhook(callback(body, at=NOW - 11))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SIGNATURE_HEADER: "abc"},
        {TIMESTAMP_HEADER: str(NOW)},
        {SIGNATURE_HEADER: "%%% not base64", TIMESTAMP_HEADER: str(NOW)},
        {SIGNATURE_HEADER: base64.b64encode(b"not DER").decode(), TIMESTAMP_HEADER: str(NOW)},
        {SIGNATURE_HEADER: SDK_SIGNATURE, TIMESTAMP_HEADER: "soon"},
        {SIGNATURE_HEADER: SDK_SIGNATURE, TIMESTAMP_HEADER: "-1"},
    ],
)
def test_missing_or_garbled_signatures_are_rejected(headers: dict[str, str]) -> None:
    """Missing headers, bad base64 or DER, or a non-numeric timestamp fail verification."""
    request = WebhookRequest(url=URL, headers=headers, body=fixture("delivered.json"))
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(request)


def test_signature_covers_the_timestamp() -> None:
    """The same signature under another timestamp header is rejected."""
    request = callback(fixture("delivered.json"))
    moved = dict(request.headers, **{TIMESTAMP_HEADER.lower(): str(NOW + 1)})
    with pytest.raises(WebhookVerificationError, match="does not match"):
        make().verify_webhook(request.model_copy(update={"headers": moved}))


def test_without_a_public_key_nothing_verifies() -> None:
    """With no webhook_public_key every callback is rejected (parse with verify=False only)."""
    provider = make(webhook_public_key=None)
    request = callback(fixture("delivered.json"))
    with pytest.raises(WebhookVerificationError, match="webhook_public_key"):
        provider.parse_webhook(request)
    assert len(provider.parse_webhook(request, verify=False)) == 1


# -- callbacks: parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "reason", "provider_message_id"),
    [
        ("processed.json", DeliveryStatus.ACCEPTED, None, "FxAnySendFixtureMsg001"),
        ("deferred.json", DeliveryStatus.DEFERRED, None, "FxAnySendFixtureMsg002"),
        ("delivered.json", DeliveryStatus.DELIVERED, None, "FxAnySendFixtureMsg001"),
        (
            "bounce.json",
            DeliveryStatus.UNDELIVERABLE,
            Reason.UNKNOWN_RECIPIENT,
            "FxAnySendFixtureMsg003",
        ),
        (
            "bounce_blocked.json",
            DeliveryStatus.UNDELIVERABLE,
            Reason.POLICY_BLOCKED,
            "FxAnySendFixtureMsg004",
        ),
    ],
)
def test_delivery_fixtures(
    name: str, status: DeliveryStatus, reason: Reason | None, provider_message_id: str
) -> None:
    """Each delivery fixture gives one status event keyed by the X-Message-Id."""
    body = fixture(name)
    [event] = make().parse_webhook(callback(body))
    assert isinstance(event, DeliveryEvent)
    raw = json.loads(body)[0]
    assert (event.status, event.event, event.reason) == (status, None, reason)
    assert event.raw_status == raw["event"]
    assert event.provider_message_id == provider_message_id
    assert (event.recipient, event.event_id, event.raw) == (raw["email"], raw["sg_event_id"], raw)
    assert event.occurred_at == datetime.fromtimestamp(raw["timestamp"], tz=timezone.utc)
    assert event.description == (raw.get("reason") or raw.get("response"))
    assert event.channel is Channel.EMAIL
    assert event.message_id is None  # these were not sent by anysend


def test_engagement_fixtures() -> None:
    """Opens and spam reports are events, not statuses."""
    [opened] = make().parse_webhook(callback(fixture("open.json")))
    [spam] = make().parse_webhook(callback(fixture("spamreport.json")))
    assert isinstance(opened, DeliveryEvent)
    assert isinstance(spam, DeliveryEvent)
    assert (opened.status, opened.event) == (None, EventType.OPENED)
    assert (spam.event, spam.reason) == (EventType.COMPLAINED, Reason.SUPPRESSED_COMPLAINT)


def test_batch_from_anysend_carries_our_message_id() -> None:
    """A batch gives one event per entry, each with anysend's id from the custom args."""
    events = make().parse_webhook(callback(fixture("batch_anysend.json")))
    assert all(isinstance(e, DeliveryEvent) for e in events)
    summary = [
        (e.raw_status, e.status or e.event, e.reason)
        for e in events
        if isinstance(e, DeliveryEvent)
    ]
    assert summary == [
        ("processed", DeliveryStatus.ACCEPTED, None),
        ("delivered", DeliveryStatus.DELIVERED, None),
        ("open", EventType.OPENED, None),
        ("click", EventType.CLICKED, None),
        ("group_unsubscribe", EventType.OPTED_OUT, Reason.OPTED_OUT),
        ("group_resubscribe", EventType.OPTED_IN, None),
        ("unsubscribe", EventType.OPTED_OUT, Reason.OPTED_OUT),
        ("spamreport", EventType.COMPLAINED, Reason.SUPPRESSED_COMPLAINT),
    ]
    for event in events:
        assert isinstance(event, DeliveryEvent)
        assert event.message_id == "0193a7c2-anysend-fixture-0010"
        assert event.provider_message_id == X_MESSAGE_ID
        assert event.raw["order"] == "1042"
    assert len({e.event_id for e in events if isinstance(e, DeliveryEvent)}) == 8


def test_dropped_reasons() -> None:
    """Dropped events are rejected, with the reason SendGrid gave."""
    events = make().parse_webhook(callback(fixture("dropped.json")))
    assert [(e.status, e.reason, e.message_id) for e in events if isinstance(e, DeliveryEvent)] == [
        (DeliveryStatus.REJECTED, Reason.OPTED_OUT, "0193a7c2-anysend-fixture-0011"),
        (DeliveryStatus.REJECTED, Reason.INVALID_RECIPIENT, "0193a7c2-anysend-fixture-0012"),
    ]


def test_documentation_batch_of_every_event_type() -> None:
    """The reference's example batch parses into 11 events in order."""
    events = make().parse_webhook(callback(fixture("batch_all_event_types.json")))
    kinds = [e.status or e.event for e in events if isinstance(e, DeliveryEvent)]
    assert kinds == [
        DeliveryStatus.ACCEPTED,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.DELIVERED,
        EventType.OPENED,
        EventType.CLICKED,
        DeliveryStatus.UNDELIVERABLE,
        DeliveryStatus.REJECTED,
        EventType.COMPLAINED,
        EventType.OPTED_OUT,
        EventType.OPTED_OUT,
        EventType.OPTED_IN,
    ]
    bounce = events[5]
    assert isinstance(bounce, DeliveryEvent)
    assert bounce.reason is Reason.OTHER  # "500 unknown recipient", status 5.0.0


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("5.1.1", "550 5.1.1 user unknown", Reason.UNKNOWN_RECIPIENT),
        ("5.1.3", "553 bad syntax", Reason.INVALID_RECIPIENT),
        ("5.2.2", "552 mailbox full", Reason.RECIPIENT_UNREACHABLE),
        ("5.7.1", "554 5.7.1 rejected by policy", Reason.POLICY_BLOCKED),
        (None, "550 5.1.1 The email account does not exist", Reason.UNKNOWN_RECIPIENT),
        (None, "no code at all", Reason.OTHER),
        ("4.4.7", "timed out", Reason.RECIPIENT_UNREACHABLE),
    ],
)
def test_bounce_reasons_from_enhanced_codes(
    status: str | None, reason: str, expected: Reason
) -> None:
    """A bounce's enhanced status code (or the one in its reason) picks the reason."""
    item: dict[str, Any] = {
        "event": "bounce",
        "email": "a@example.com",
        "type": "bounce",
        "reason": reason,
    }
    if status is not None:
        item["status"] = status
    [event] = make().parse_webhook(callback(json.dumps([item]).encode()))
    assert isinstance(event, DeliveryEvent)
    assert event.reason is expected


@pytest.mark.parametrize(
    ("sg_message_id", "expected"),
    [
        (
            "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
            "LRzXl_NHStOGhQ4kofSm_A",
        ),
        ("FxAnySendFixtureMsg001.recvd-7b8f9b5b9-x2fzq-1-69000000-1.0", "FxAnySendFixtureMsg001"),
        ("fPJrJPIRTxC_obpgfTy74w.stfilter-015.5185.55F883564.0", "fPJrJPIRTxC_obpgfTy74w"),
        ("14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "14c5d75ce93.dfd.64b469"),
        ("A6FilwaAR_Wm_VTCEFql_w.something-new.0", "A6FilwaAR_Wm_VTCEFql_w"),
        ("A6FilwaAR_Wm_VTCEFql_w", "A6FilwaAR_Wm_VTCEFql_w"),
    ],
)
def test_message_id_of_strips_the_suffix(sg_message_id: str, expected: str) -> None:
    """sg_message_id without SendGrid's per-recipient suffix is the X-Message-Id."""
    assert message_id_of(sg_message_id) == expected


def test_missing_ids_fall_back() -> None:
    """Without sg_message_id the smtp-id gives the id; without sg_event_id a hash does."""
    item = {
        "event": "open",
        "email": "a@example.com",
        "timestamp": "1795172400",
        "smtp-id": "<Abc123@geopod-ismtpd-1>",
    }
    [first] = make().parse_webhook(callback(json.dumps([item]).encode()))
    [again] = make().parse_webhook(callback(json.dumps([item], indent=1).encode()))
    assert isinstance(first, DeliveryEvent)
    assert isinstance(again, DeliveryEvent)
    assert first.provider_message_id == "Abc123"
    assert first.event_id is not None
    assert first.event_id.startswith("sha256:")
    assert first.event_id == again.event_id  # the same event, however serialised
    assert first.occurred_at == datetime.fromtimestamp(1_795_172_400, tz=timezone.utc)


def test_unknown_event_is_kept() -> None:
    """An event SendGrid adds later is status unknown with its raw value."""
    body = json.dumps([{"event": "machine_opened", "email": "a@example.com", "timestamp": 1}])
    [event] = make().parse_webhook(callback(body.encode()))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status) == (DeliveryStatus.UNKNOWN, "machine_opened")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff",
        b"null",
        b"{}",
        b'{"event": "delivered"}',
        b"[1]",
        b'[{"event": 5}]',
        b'[{"email": "a@example.com"}]',
        b'[{"event": "delivered"}, "x"]',
    ],
)
def test_malformed_bodies_raise_parse_errors(body: bytes) -> None:
    """Bodies that are not an array of event objects raise WebhookParseError."""
    with pytest.raises(WebhookParseError):
        make().parse_webhook(callback(body))


def test_odd_values_do_not_break_parsing() -> None:
    """Wrong-typed or out-of-range fields are left out, not errors."""
    item = {
        "event": "bounce",
        "timestamp": 10**20,
        "email": 5,
        "sg_message_id": 7,
        "sg_event_id": None,
        "reason": ["x"],
        "status": 5,
        MESSAGE_ID_ARG: 9,
    }
    [event] = make().parse_webhook(callback(json.dumps([item]).encode()))
    assert isinstance(event, DeliveryEvent)
    assert (event.occurred_at, event.recipient, event.provider_message_id) == (None, None, None)
    assert (event.message_id, event.description, event.reason) == (None, None, Reason.OTHER)


def _mutations() -> st.SearchStrategy[bytes]:
    """Fixture bodies with bytes flipped, cut or inserted, or a JSON value replaced."""
    names = sorted(p.name for p in FIXTURES.glob("*.json"))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        """One fixture body, mutated once."""
        body = fixture(draw(st.sampled_from(names)))
        how = draw(st.sampled_from(["flip", "cut", "insert", "value"]))
        if how == "value":
            events = json.loads(body)
            item = events[draw(st.integers(0, len(events) - 1))]
            key = draw(st.sampled_from([*sorted(item), "event", "timestamp"]))
            item[key] = draw(json_values)
            return json.dumps(events).encode()
        at = draw(st.integers(0, len(body) - 1))
        if how == "flip":
            return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
        if how == "cut":
            return body[:at]
        return body[:at] + draw(st.binary(min_size=1, max_size=8)) + body[at:]

    return mutated()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_mutations())
def test_mutated_fixtures_only_raise_our_errors(body: bytes) -> None:
    """Mutated fixture bodies parse into events or raise only WebhookParseError."""
    request = WebhookRequest(url=URL, headers={}, body=body)
    try:
        events = make().parse_webhook(request, verify=False)
    except (WebhookParseError, WebhookVerificationError):
        return
    assert all(isinstance(e, DeliveryEvent) and e.raw_status for e in events)


# -- the contract kit ------------------------------------------------------------------------------


class TestSendGridContract(ProviderContract):
    """The contract kit run against the SendGrid adapter."""

    expected_provider_message_id = X_MESSAGE_ID
    signature_headers: tuple[str, ...] = (SIGNATURE_HEADER, TIMESTAMP_HEADER)
    unknown_raw_status = "teleported"

    def make_provider(self) -> SendGrid:
        """SendGrid with test settings and a pinned clock."""
        return make()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """SendGrid accepts the message."""
        return httpx.Response(202, headers={"X-Message-Id": X_MESSAGE_ID}, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """SendGrid's documented error answers."""
        return list(ERROR_CASES)

    def signed_webhook(self) -> WebhookRequest:
        """A delivered event signed with the test key."""
        return callback(fixture("delivered.json"))

    def stale_webhook(self) -> WebhookRequest:
        """A delivered event signed an hour ago."""
        return callback(fixture("delivered.json"), at=NOW - 3600)

    def wrong_secret_webhook(self) -> WebhookRequest:
        """A delivered event signed with another key."""
        return callback(fixture("delivered.json"), key=OTHER_KEY)

    def unknown_status_webhook(self) -> WebhookRequest:
        """An event with a made-up name."""
        body = fixture("delivered.json").replace(b'"event":"delivered"', b'"event":"teleported"')
        return callback(body)
