"""The Amazon SES adapter: SigV4 vectors, the SendEmail request, errors, SNS-delivered events."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
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
    Message,
    OutboundMessage,
    ProviderError,
    Reason,
    Recipient,
    RetryPolicy,
    SkipReason,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import _config as provider_config
from anysend.providers import from_url
from anysend.providers import ses as ses_module
from anysend.providers._sigv4 import (
    Credentials,
    canonical_request,
    sign,
    signature,
    string_to_sign,
)
from anysend.providers.ses import (
    DELAY_REASONS,
    ERROR_CODES,
    MESSAGE_ID_TAG,
    REASONS,
    SES,
    sns_string_to_sign,
)
from anysend.testing import MemoryProvider, VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ses"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENvalue0123456789"
REGION = "eu-west-1"
API_URL = "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"
SENDER = "Shop <shop@example.com>"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:anysend-ses-events"
DOC_TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
DOC_CERT_URL = "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem"
HOOK_URL = "https://app.example.com/hooks/ses"
SES_MESSAGE_ID = "0107019000000001-0a0b0c0d-0000-4000-8000-00000000a001-000000"
SEND_TIME = datetime(2026, 11, 20, 8, 0, 0, tzinfo=timezone.utc)


def at(timestamp: str) -> float:
    """Unix time of an ISO 8601 timestamp such as ``2026-11-20T08:00:12.101Z``."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


# -- test keys and certificate (made here; nothing is signed by AWS) -------------------------------


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2010, 1, 1, tzinfo=timezone.utc))
        .not_valid_after(datetime(2030, 12, 31, tzinfo=timezone.utc))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CERT_PEM = _certificate(KEY)


# -- SNS messages --------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    """A fixture body, byte for byte."""
    return (FIXTURES / name).read_bytes()


def expected_string_to_sign(message: dict[str, Any]) -> str:
    """The string SNS signs, built here independently of the adapter (AWS's documented list)."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{name}\n{message[name]}\n" for name in names if name in message)


def layout(message: dict[str, Any]) -> bytes:
    """An SNS body in the documented pretty layout of the fixtures."""
    lines = [f"  {json.dumps(k)} : {json.dumps(v)}" for k, v in message.items()]
    return ("{\n" + ",\n".join(lines) + "\n}").encode()


def signed(
    body: bytes, *, key: rsa.RSAPrivateKey = KEY, version: str = "1", **changes: Any
) -> bytes:
    """``body`` with ``changes`` applied (re-laid out) and a real SNS signature in place."""
    message = json.loads(body)
    if changes or version != message["SignatureVersion"]:
        message.update(changes)
        message["SignatureVersion"] = version
        message = {k: v for k, v in message.items() if v is not None}
        body = layout(message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    text = expected_string_to_sign(message).encode()
    value = base64.b64encode(key.sign(text, padding.PKCS1v15(), digest)).decode()
    old = f'"Signature" : {json.dumps(message["Signature"])}'.encode()
    assert body.count(old) == 1
    return body.replace(old, f'"Signature" : "{value}"'.encode())


def with_signature(body: bytes, value: str) -> bytes:
    """``body`` with its Signature field replaced by ``value``."""
    message = json.loads(body)
    message["Signature"] = value
    return layout(message)


def with_record(body: bytes, record: dict[str, Any], **changes: Any) -> bytes:
    """A signed Notification like ``body`` carrying ``record`` as its SES event."""
    return signed(body, Message=json.dumps(record, separators=(",", ":")), **changes)


def record_of(name: str) -> dict[str, Any]:
    """The SES record inside a fixture's Message."""
    record: dict[str, Any] = json.loads(json.loads(fixture(name))["Message"])
    return record


def callback(body: bytes, **headers: str) -> WebhookRequest:
    """The request SNS makes with ``body``, with its x-amz-sns-* headers."""
    try:
        message = json.loads(body)
    except ValueError:
        message = None
    message = message if isinstance(message, dict) else {}
    sns = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": str(message.get("Type", "Notification")),
        "x-amz-sns-message-id": str(message.get("MessageId", "")),
        "x-amz-sns-topic-arn": str(message.get("TopicArn", TOPIC)),
    }
    sns.update(headers)
    return WebhookRequest(url=HOOK_URL, headers=sns, body=body)


def timestamp_of(body: bytes) -> float:
    """The SNS Timestamp of a body, as unix time."""
    return at(json.loads(body)["Timestamp"])


def make(*, now: float | None = None, cached: bool = True, **overrides: Any) -> SES:
    """An SES adapter with test credentials, the test certificate cached, the clock pinned."""
    options: dict[str, Any] = {
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "region": REGION,
        "sender": SENDER,
        "topic_arns": [TOPIC, DOC_TOPIC],
    }
    options.update(overrides)
    ses = SES(**options)
    pinned = SEND_TIME.timestamp() if now is None else now
    ses.now = lambda: pinned
    if cached:
        ses.add_certificate(CERT_URL, CERT_PEM)
        ses.add_certificate(DOC_CERT_URL, CERT_PEM)
    return ses


def parse(body: bytes, **overrides: Any) -> list[DeliveryEvent]:
    """Verify and parse a signed body with the clock at its Timestamp."""
    ses = make(now=timestamp_of(body) + 2, **overrides)
    events = ses.parse_webhook(callback(body))
    assert all(isinstance(e, DeliveryEvent) for e in events)
    return [e for e in events if isinstance(e, DeliveryEvent)]


def outbound(**fields: Any) -> OutboundMessage:
    """An email as the client hands it to the adapter."""
    fields.setdefault("subject", "Your cart is waiting")
    fields.setdefault("text", "Come back for your cart")
    fields.setdefault("to", "ann@example.com")
    return OutboundMessage(id="5f0c1d2e3a4b4c5d8e9f0a1b2c3d4e5f", channel=Channel.EMAIL, **fields)


# -- SigV4: AWS's published test suite ------------------------------------------------------------

SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=timezone.utc)
SUITE_SCOPE = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


@pytest.mark.parametrize(
    ("name", "method", "url", "headers", "body", "token", "expected"),
    [
        (
            "get-vanilla",
            "GET",
            "https://example.amazonaws.com/",
            {},
            b"",
            None,
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            "POST",
            "https://example.amazonaws.com/",
            {},
            b"",
            None,
            "SignedHeaders=host;x-amz-date, "
            "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            {},
            b"",
            None,
            "SignedHeaders=host;x-amz-date, "
            "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "post-x-www-form-urlencoded",
            "POST",
            "https://example.amazonaws.com/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Param1=value1",
            None,
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        ),
        (
            "get-vanilla-with-session-token",
            "GET",
            "https://example.amazonaws.com/",
            {},
            b"",
            "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        ),
    ],
)
def test_sigv4_matches_the_aws_test_suite(
    name: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    token: str | None,
    expected: str,
) -> None:
    """The signer reproduces the Authorization header of AWS's SigV4 test-suite vectors."""
    credentials = Credentials(SUITE.access_key_id, SUITE.secret_access_key, token)
    request = httpx.Request(method, url, headers=headers, content=body)
    sign(request, credentials, region="us-east-1", service="service", when=SUITE_TIME)
    assert request.headers["X-Amz-Date"] == "20150830T123600Z"
    assert request.headers["Authorization"] == f"AWS4-HMAC-SHA256 {SUITE_SCOPE}, {expected}"
    if token:
        assert request.headers["X-Amz-Security-Token"] == token


def test_sigv4_canonical_request_and_string_to_sign_of_get_vanilla() -> None:
    """The intermediate steps of get-vanilla match the suite's .creq and .sts files."""
    headers = httpx.Headers({"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"})
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    canonical, signed_names = canonical_request(
        "GET", httpx.URL("https://example.amazonaws.com/"), headers, empty
    )
    assert canonical == (
        f"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{empty}"
    )
    assert signed_names == "host;x-amz-date"
    text = string_to_sign(canonical, SUITE_TIME, "us-east-1", "service")
    assert text == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    assert signature(SUITE.secret_access_key, text, SUITE_TIME, "us-east-1", "service") == (
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_sigv4_credentials_repr_hides_the_secret() -> None:
    """Credentials never print the secret access key."""
    assert SUITE.secret_access_key not in repr(SUITE)


# -- the SendEmail request -------------------------------------------------------------------------


def expected_authorization(request: httpx.Request, *, token: str | None = None) -> str:
    """The Authorization header the request must carry (recomputed with the vetted steps)."""
    payload = hashlib.sha256(request.content).hexdigest()
    canonical, names = canonical_request(request.method, request.url, request.headers, payload)
    text = string_to_sign(canonical, SEND_TIME, REGION, "ses")
    value = signature(SECRET_KEY, text, SEND_TIME, REGION, "ses")
    scope = f"Credential={ACCESS_KEY}/20261120/{REGION}/ses/aws4_request"
    return f"AWS4-HMAC-SHA256 {scope}, SignedHeaders={names}, Signature={value}"


@respx.mock(assert_all_called=True)
def test_simple_request_through_the_client(respx_mock: respx.MockRouter) -> None:
    """Client sends one signed JSON POST: exact URL, headers, addresses, content and tags."""
    route = respx_mock.post(API_URL).mock(
        return_value=httpx.Response(200, json={"MessageId": SES_MESSAGE_ID})
    )
    ses = make(configuration_set="anysend-events")
    message = Message(
        subject="Your cart is waiting",
        text="Come back for your cart",
        html="<p>Come back for your cart</p>",
        cc=("Bob <bob@example.org>",),
        bcc=("audit@example.com",),
        reply_to=("Support <help@example.com>",),
        headers={"X-Campaign": "cart-42"},
        unsubscribe_url="https://shop.example.com/u/ann",
        metadata={"order": "1042"},
        tags=("cart", "reminder"),
    )
    with anysend.Client([ses], clock=VirtualClock()) as client:
        result = client.send(message, to=Recipient(email="ann@example.com", name="Ann Smith"))
    assert result.ok
    assert result.provider_message_id == SES_MESSAGE_ID
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == API_URL
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == "email.eu-west-1.amazonaws.com"
    assert request.headers["x-amz-date"] == "20261120T080000Z"
    assert "x-amz-security-token" not in request.headers
    assert request.headers["authorization"] == expected_authorization(request)
    assert "SignedHeaders=content-type;host;x-amz-date," in request.headers["authorization"]
    assert json.loads(request.content) == {
        "FromEmailAddress": "Shop <shop@example.com>",
        "Destination": {
            "ToAddresses": ["Ann Smith <ann@example.com>"],
            "CcAddresses": ["bob@example.org"],
            "BccAddresses": ["audit@example.com"],
        },
        "ReplyToAddresses": ["Support <help@example.com>"],
        "Content": {
            "Simple": {
                "Subject": {"Data": "Your cart is waiting", "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": "Come back for your cart", "Charset": "UTF-8"},
                    "Html": {"Data": "<p>Come back for your cart</p>", "Charset": "UTF-8"},
                },
                "Headers": [
                    {"Name": "X-Campaign", "Value": "cart-42"},
                    {"Name": "List-Unsubscribe", "Value": "<https://shop.example.com/u/ann>"},
                    {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                ],
            }
        },
        "EmailTags": [
            {"Name": MESSAGE_ID_TAG, "Value": result.message_id},
            {"Name": "order", "Value": "1042"},
            {"Name": "cart", "Value": "true"},
            {"Name": "reminder", "Value": "true"},
        ],
        "ConfigurationSetName": "anysend-events",
    }


def test_minimal_body_and_utf8() -> None:
    """A text-only message has no optional fields; non-ASCII text goes as UTF-8 JSON."""
    request = make().build_request(outbound(subject="Zażółć", text="gęślą jaźń"))
    assert "Zażółć".encode() in request.content
    assert json.loads(request.content) == {
        "FromEmailAddress": "Shop <shop@example.com>",
        "Destination": {"ToAddresses": ["ann@example.com"]},
        "Content": {
            "Simple": {
                "Subject": {"Data": "Zażółć", "Charset": "UTF-8"},
                "Body": {"Text": {"Data": "gęślą jaźń", "Charset": "UTF-8"}},
            }
        },
        "EmailTags": [{"Name": MESSAGE_ID_TAG, "Value": "5f0c1d2e3a4b4c5d8e9f0a1b2c3d4e5f"}],
    }


def test_html_only_and_non_ascii_names_are_encoded_words() -> None:
    """HTML alone has no Text part; a non-ASCII display name is an RFC 2047 encoded word."""
    message = outbound(
        text=None,
        html="<p>Hi</p>",
        sender="Sklep Zoë <shop@example.com>",
        recipient=Recipient(email="ann@example.com", name="Anna Łucka"),
    )
    body = json.loads(make().build_request(message).content)
    assert body["Content"]["Simple"]["Body"] == {"Html": {"Data": "<p>Hi</p>", "Charset": "UTF-8"}}
    assert body["FromEmailAddress"] == "=?utf-8?q?Sklep_Zo=C3=AB?= <shop@example.com>"
    assert body["Destination"]["ToAddresses"] == ["=?utf-8?q?Anna_=C5=81ucka?= <ann@example.com>"]


def test_session_token_is_sent_and_signed() -> None:
    """Temporary credentials add X-Amz-Security-Token, covered by the signature."""
    request = make(session_token=SESSION_TOKEN).build_request(outbound())
    assert request.headers["X-Amz-Security-Token"] == SESSION_TOKEN
    authorization = request.headers["Authorization"]
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in authorization
    assert authorization == expected_authorization(request)


def test_endpoint_url_replaces_the_regional_endpoint() -> None:
    """endpoint_url (a FIPS or VPC endpoint) is where the request goes, signed for its host."""
    ses = make(endpoint_url="https://email-fips.us-east-1.amazonaws.com/")
    request = ses.build_request(outbound())
    assert str(request.url) == "https://email-fips.us-east-1.amazonaws.com/v2/email/outbound-emails"
    assert request.headers["host"] == "email-fips.us-east-1.amazonaws.com"


def test_provider_options_are_merged_into_the_body() -> None:
    """provider_options["ses"] fields go to the top level of the body as given."""
    options = {
        "ListManagementOptions": {"ContactListName": "Newsletter", "TopicName": "offers"},
        "ConfigurationSetName": "other-set",
    }
    body = json.loads(
        make(configuration_set="anysend-events")
        .build_request(outbound(provider_options=options))
        .content
    )
    assert body["ListManagementOptions"] == options["ListManagementOptions"]
    assert body["ConfigurationSetName"] == "other-set"


def test_attachments_go_as_raw_mime() -> None:
    """With attachments the body is Content.Raw: the composed MIME message, base64."""
    message = outbound(
        html='<p>Logo: <img src="cid:logo"></p>',
        bcc=("audit@example.com",),
        attachments=(
            Attachment(
                filename="invoice.pdf", content=b"%PDF-1.4 fake", content_type="application/pdf"
            ),
            Attachment(
                filename="logo.png", content=b"\x89PNG fake", inline=True, content_id="logo"
            ),
        ),
    )
    body = json.loads(make().build_request(message).content)
    assert set(body) == {"FromEmailAddress", "Destination", "Content", "EmailTags"}
    assert body["Destination"] == {
        "ToAddresses": ["ann@example.com"],
        "BccAddresses": ["audit@example.com"],
    }
    mime = message_from_bytes(
        base64.b64decode(body["Content"]["Raw"]["Data"]), policy=policy.default
    )
    assert mime["From"] == SENDER
    assert mime["To"] == "ann@example.com"
    assert mime["Bcc"] is None
    assert mime["X-Anysend-Message-Id"] == message.id
    assert mime["Subject"] == "Your cart is waiting"
    parts = {part.get_filename(): part for part in mime.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_content() == b"%PDF-1.4 fake"
    assert parts["logo.png"]["Content-ID"] == "<logo>"


def test_headers_the_simple_form_cannot_hold_go_as_raw_mime() -> None:
    """A non-ASCII header value (or more than 15 headers) switches to Content.Raw."""
    non_ascii = json.loads(make().build_request(outbound(headers={"X-Note": "Zażółć"})).content)
    many = {f"X-H{i}": "v" for i in range(16)}
    too_many = json.loads(make().build_request(outbound(headers=many)).content)
    assert "Raw" in non_ascii["Content"]
    assert "Raw" in too_many["Content"]
    mime = message_from_bytes(
        base64.b64decode(non_ascii["Content"]["Raw"]["Data"]), policy=policy.default
    )
    assert mime["X-Note"] == "Zażółć"


def test_a_message_over_40_mb_is_payload_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """A raw message over SES's size limit fails with payload_too_large before any request."""
    monkeypatch.setattr(ses_module, "MAX_MESSAGE_BYTES", 2000)
    big = Attachment(filename="big.bin", content=b"x" * 3000)
    with pytest.raises(ProviderError) as caught:
        make().build_request(outbound(attachments=(big,)))
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE
    assert caught.value.provider == "ses"


@pytest.mark.parametrize(
    ("fields", "feature"),
    [
        ({"metadata": {"order": "42 / b"}}, "metadata"),
        ({"metadata": {"order id": "42"}}, "metadata"),
        ({"tags": ("vip customer",)}, "tags"),
        ({"tags": ("x" * 257,)}, "tags"),
        ({"metadata": {"vip": "1"}, "tags": ("vip",)}, "tags"),
        ({"metadata": {MESSAGE_ID_TAG: "mine"}}, "metadata"),
    ],
)
def test_tags_ses_cannot_carry_are_unsupported(fields: dict[str, Any], feature: str) -> None:
    """Metadata and tags outside SES's tag alphabet, or repeated names, are refused up front."""
    with pytest.raises(UnsupportedFeatureError) as caught:
        make().check_supported(outbound(**fields))
    assert caught.value.feature == feature


@respx.mock
def test_unfit_tags_skip_ses_for_the_next_provider(respx_mock: respx.MockRouter) -> None:
    """Through the client, a message with unfit tags skips SES (unsupported) and goes on."""
    route = respx_mock.post(API_URL)
    backup = MemoryProvider(name="backup", channels=frozenset({Channel.EMAIL}))
    with anysend.Client([make(), backup], clock=VirtualClock()) as client:
        result = client.send(
            Message(subject="Hi", text="Hello", tags=("vip customer",)),
            to={"email": "a@example.com"},
        )
    assert result.provider == "backup"
    assert result.attempts[0].skip_reason is SkipReason.UNSUPPORTED
    assert not route.called


def test_addresses_needing_smtputf8_are_refused() -> None:
    """SES has no SMTPUTF8: a non-ASCII local part is a ContentError before any request."""
    with pytest.raises(ContentError, match="non-ASCII"):
        make().build_request(outbound(to="zoë@example.com"))


def test_no_sender_is_a_configuration_error() -> None:
    """Without Message.sender or the sender setting, the adapter cannot build a request."""
    with pytest.raises(ConfigurationError, match="sender"):
        make(sender=None).build_request(outbound())


def test_header_injection_and_reserved_headers_are_refused() -> None:
    """Custom headers may not replace the ones SES and anysend write (shared MIME checks)."""
    with pytest.raises(ContentError):
        make().build_request(outbound(headers={"From": "evil@example.com"}))


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_sends_the_same_request(respx_mock: respx.MockRouter) -> None:
    """AsyncClient drives the same sans-I/O adapter: signed POST, receipt with MessageId."""
    route = respx_mock.post(API_URL).mock(
        return_value=httpx.Response(200, json={"MessageId": SES_MESSAGE_ID})
    )
    async with anysend.AsyncClient([make()], clock=VirtualClock()) as client:
        result = await client.send(
            Message(subject="Hi", text="Hello"), to={"email": "ann@example.com"}
        )
    assert result.provider_message_id == SES_MESSAGE_ID
    request = route.calls.last.request
    assert request.headers["authorization"] == expected_authorization(request)
    assert json.loads(request.content)["EmailTags"] == [
        {"Name": MESSAGE_ID_TAG, "Value": result.message_id}
    ]


# -- answers and errors ----------------------------------------------------------------------------


def test_success_answer_is_the_receipt() -> None:
    """200 {"MessageId"} gives a receipt with that id and the body as raw."""
    answer = httpx.Response(200, json={"MessageId": SES_MESSAGE_ID})
    receipt = make().parse_response(answer, outbound())
    assert receipt.provider_message_id == SES_MESSAGE_ID
    assert receipt.raw == {"MessageId": SES_MESSAGE_ID}
    assert receipt.status is DeliveryStatus.ACCEPTED


def error_answer(code: str, status: int = 400, *, in_body: bool = False) -> httpx.Response:
    """An SES v2 error answer naming ``code`` in the header (or only in the body)."""
    if in_body:
        return httpx.Response(
            status, json={"__type": f"com.amazonaws.sesv2#{code}", "message": "no"}
        )
    headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"}
    return httpx.Response(status, json={"message": "the reason"}, headers=headers)


@pytest.mark.parametrize(("code", "category"), list(ERROR_CODES.items()))
@pytest.mark.parametrize("in_body", [False, True])
def test_every_error_name_maps_to_its_category(
    code: str, category: ErrorCategory, in_body: bool
) -> None:
    """Each SES error name, from x-amzn-ErrorType or from __type, gives its category."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(error_answer(code, in_body=in_body), outbound())
    error = caught.value
    assert (error.category, error.code, error.provider) == (category, code, "ses")
    assert error.retryable is category.retryable
    assert error.status_code == 400


@pytest.mark.parametrize(
    ("answer", "category", "retryable"),
    [
        (error_answer("MessageRejected"), ErrorCategory.CONTENT_REJECTED, False),
        (error_answer("SendingPausedException"), ErrorCategory.CONFIGURATION, False),
        (error_answer("NotFoundException", 404), ErrorCategory.CONFIGURATION, False),
        (error_answer("TooManyRequestsException", 429), ErrorCategory.RATE_LIMITED, True),
        (error_answer("Throttling"), ErrorCategory.RATE_LIMITED, True),
        (error_answer("InvalidSignatureException", 403), ErrorCategory.AUTH, False),
        (httpx.Response(403, json={"message": "forbidden"}), ErrorCategory.AUTH, False),
        (httpx.Response(503, text="<html>down</html>"), ErrorCategory.UNAVAILABLE, True),
        (httpx.Response(400, json={"message": "?"}), ErrorCategory.UNKNOWN, False),
        (error_answer("SomethingNew"), ErrorCategory.UNKNOWN, False),
    ],
)
def test_documented_errors(
    answer: httpx.Response, category: ErrorCategory, retryable: bool
) -> None:
    """SES's documented errors and bare HTTP statuses map as documented, retryable or not."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    assert (caught.value.category, caught.value.retryable) == (category, retryable)


def test_error_message_and_raw_are_kept() -> None:
    """The error carries SES's message, the error name as code, and the parsed body."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(error_answer("MessageRejected"), outbound())
    assert "the reason" in caught.value.message
    assert caught.value.raw == {"message": "the reason"}


def test_echoed_secrets_are_redacted() -> None:
    """A signature error that quotes the canonical request leaks no secret setting."""
    echo = f"canonical: x-amz-security-token:{SESSION_TOKEN} key {SECRET_KEY}"
    answer = httpx.Response(
        403,
        json={"message": echo},
        headers={"x-amzn-ErrorType": "InvalidSignatureException"},
    )
    with pytest.raises(ProviderError) as caught:
        make(session_token=SESSION_TOKEN).parse_response(answer, outbound())
    shown = [str(caught.value), repr(caught.value), json.dumps(caught.value.raw)]
    for text in shown:
        assert SESSION_TOKEN not in text
        assert SECRET_KEY not in text
    assert "***" in caught.value.message


@respx.mock
def test_auth_failure_fails_over_to_the_next_provider(respx_mock: respx.MockRouter) -> None:
    """A 403 signature error is auth: not retried, the next email provider is tried."""
    respx_mock.post(API_URL).mock(return_value=error_answer("UnrecognizedClientException", 403))
    backup = MemoryProvider(name="backup", channels=frozenset({Channel.EMAIL}))
    retry = RetryPolicy(max_attempts=3)
    with anysend.Client([make(), backup], clock=VirtualClock(), retry=retry) as client:
        result = client.send(Message(subject="Hi", text="Hello"), to={"email": "a@example.com"})
    assert result.provider == "backup"
    [failed] = [a for a in result.attempts if a.provider == "ses"]
    assert failed.error is not None
    assert failed.error.category is ErrorCategory.AUTH


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_",
    [
        {"region": "eu-west-1.evil.example"},
        {"region": "EU-WEST-1"},
        {"endpoint_url": "http://email.eu-west-1.amazonaws.com"},
        {"endpoint_url": "https://email.example.com/?x=1"},
        {"topic_arns": ["arn:aws:sqs:eu-west-1:123456789012:queue"]},
        {"configuration_set": "has space"},
        {"sender": "not an address"},
        {"access_key_id": "AKIA EXAMPLE"},
        {"replay_window": 0},
        {"replay_window": 7200},
        {"timeout": 5},
    ],
)
def test_invalid_settings_are_refused(settings_: dict[str, Any]) -> None:
    """Bad regions, endpoints, ARNs, names, senders and windows are configuration errors."""
    with pytest.raises(ConfigurationError):
        make(cached=False, **settings_)


def test_settings_from_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """ses://KEY:SECRET@region?from=...&topic_arns=... builds the same adapter."""
    real = provider_config.load
    monkeypatch.setattr(provider_config, "load", lambda n: SES if n == "ses" else real(n))
    secret = SECRET_KEY.replace("/", "%2F")
    built = from_url(
        f"ses://{ACCESS_KEY}:{secret}@{REGION}?from=shop@example.com&topic_arns={TOPIC}"
    )
    assert isinstance(built, SES)
    assert built.settings.access_key_id == ACCESS_KEY
    assert built.settings.secret_access_key.get_secret_value() == SECRET_KEY
    assert (built.settings.region, built.settings.sender) == (REGION, "shop@example.com")
    assert built.settings.topic_arns == [TOPIC]
    assert SECRET_KEY not in repr(built)


# -- SNS: signature verification ------------------------------------------------------------------


def test_string_to_sign_matches_the_documented_example() -> None:
    """sns_string_to_sign gives AWS's documented Notification example, Subject included."""
    message = {
        "Type": "Notification",
        "MessageId": "4d4dc071-ddbf-465d-bba8-08f81c89da64",
        "TopicArn": "arn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P",
        "Subject": "My subject",
        "Message": "My Test Message",
        "Timestamp": "2012-06-05T04:37:04.321Z",
        "SignatureVersion": "1",
    }
    assert sns_string_to_sign(message) == (
        "Message\nMy Test Message\nMessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\n"
        "Subject\nMy subject\nTimestamp\n2012-06-05T04:37:04.321Z\n"
        "TopicArn\narn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P\n"
        "Type\nNotification\n"
    )
    del message["Subject"]
    assert "Subject" not in sns_string_to_sign(message)


@pytest.mark.parametrize("version", ["1", "2"])
def test_both_signature_versions_verify(version: str) -> None:
    """SignatureVersion 1 (SHA1withRSA) and 2 (SHA256withRSA) both verify."""
    body = signed(fixture("delivery.json"), version=version)
    make(now=timestamp_of(body)).verify_webhook(callback(body))


def test_a_notification_without_subject_verifies() -> None:
    """A message without Subject is signed without that line, and verifies."""
    body = signed(fixture("bounce_suppressed_notification.json"))
    assert b'"Subject"' not in body
    make(now=timestamp_of(body)).verify_webhook(callback(body))


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("another key", lambda b: signed(b, key=OTHER_KEY)),
        ("changed message", lambda b: signed(b).replace(b"ann@example.net", b"bob@example.net")),
        (
            "SHA1 labelled 2",
            lambda b: signed(b).replace(b'"SignatureVersion" : "1"', b'"SignatureVersion" : "2"'),
        ),
        (
            "version 3",
            lambda b: signed(b).replace(b'"SignatureVersion" : "1"', b'"SignatureVersion" : "3"'),
        ),
        ("not base64", lambda b: with_signature(signed(b), "%%%")),
        ("empty signature", lambda b: with_signature(signed(b), "")),
        ("placeholder", lambda b: b),
    ],
)
def test_bad_signatures_are_rejected(name: str, mutate: Any) -> None:
    """Wrong key, changed content, wrong version or a malformed signature is rejected."""
    body = mutate(fixture("delivery.json"))
    ses = make(now=timestamp_of(body))
    with pytest.raises(WebhookVerificationError):
        ses.verify_webhook(callback(body))
    with pytest.raises(WebhookVerificationError):
        ses.parse_webhook(callback(body))


def test_unsigned_message_is_rejected() -> None:
    """A message without its Signature field does not verify."""
    message = json.loads(signed(fixture("delivery.json")))
    del message["Signature"]
    with pytest.raises(WebhookVerificationError, match="no Signature"):
        make(now=at(message["Timestamp"])).verify_webhook(callback(layout(message)))


@pytest.mark.parametrize("drift", [-301, 301, 3600, -86400])
def test_messages_outside_the_replay_window_are_rejected(drift: int) -> None:
    """A Timestamp more than replay_window seconds from now (either way) is a replay."""
    body = signed(fixture("delivery.json"))
    with pytest.raises(WebhookVerificationError, match="replay"):
        make(now=timestamp_of(body) + drift).verify_webhook(callback(body))


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [({"MessageId": 7}, "no string 'MessageId'"), ({"Timestamp": "yesterday"}, "ISO 8601")],
)
def test_malformed_signed_fields_are_rejected(changes: dict[str, Any], complaint: str) -> None:
    """A signed field that is not a string, or a Timestamp that is no time, fails verification."""
    body = signed(fixture("delivery.json"), **changes)
    with pytest.raises(WebhookVerificationError, match=complaint):
        make(now=CONTRACT_NOW).verify_webhook(WebhookRequest(url=HOOK_URL, body=body))


def test_replay_window_is_a_setting() -> None:
    """A longer replay_window accepts an SNS retry an hour after publishing."""
    body = signed(fixture("delivery.json"))
    make(now=timestamp_of(body) + 3500, replay_window=3600).verify_webhook(callback(body))


def test_expired_certificate_is_rejected() -> None:
    """A message signed by a certificate that is not valid now is rejected."""
    body = signed(fixture("delivery.json"), Timestamp="2031-06-01T00:00:00.000Z")
    with pytest.raises(WebhookVerificationError, match="not valid now"):
        make(now=at("2031-06-01T00:00:01Z")).verify_webhook(callback(body))


@pytest.mark.parametrize("topics", [[], ["arn:aws:sns:eu-west-1:123456789012:someone-else"]])
def test_topics_not_allowed_are_rejected_before_any_fetch(topics: list[str]) -> None:
    """A message for a topic outside topic_arns (or with none set) is refused, even unfetched."""
    body = signed(fixture("delivery.json"))
    ses = make(now=timestamp_of(body), topic_arns=topics)
    with pytest.raises(WebhookVerificationError, match="topic"):
        ses.verify_webhook(callback(body))
    with pytest.raises(WebhookVerificationError, match="topic"):
        make(now=timestamp_of(body), topic_arns=topics, cached=False).certificate_request(
            callback(body)
        )


@pytest.mark.parametrize(
    "header",
    ["x-amz-sns-message-type", "x-amz-sns-topic-arn", "x-amz-sns-message-id"],
)
def test_headers_that_contradict_the_body_are_rejected(header: str) -> None:
    """The x-amz-sns-* headers, when present, must agree with the signed body."""
    body = signed(fixture("delivery.json"))
    request = callback(body, **{header: "SubscriptionConfirmation"})
    with pytest.raises(WebhookVerificationError, match=header):
        make(now=timestamp_of(body)).verify_webhook(request)


def test_verification_needs_the_cached_certificate() -> None:
    """Without the certificate cached, verification fails and says how to fetch it."""
    body = signed(fixture("delivery.json"))
    with pytest.raises(WebhookVerificationError, match="certificate_request"):
        make(now=timestamp_of(body), cached=False).verify_webhook(callback(body))


# -- SNS: the signing certificate ------------------------------------------------------------------


def test_certificate_request_is_a_get_of_the_signing_certificate() -> None:
    """An uncached certificate gives a GET of SigningCertURL; once added, None."""
    body = signed(fixture("delivery.json"))
    ses = make(now=timestamp_of(body), cached=False)
    request = ses.certificate_request(callback(body))
    assert request is not None
    assert (request.method, str(request.url)) == ("GET", CERT_URL)
    ses.add_certificate(str(request.url), CERT_PEM)
    assert ses.certificate_request(callback(body)) is None
    ses.verify_webhook(callback(body))


@respx.mock(assert_all_called=True)
def test_application_flow_fetches_the_certificate_once(respx_mock: respx.MockRouter) -> None:
    """The documented flow: fetch once with any client, cache, then parse every message."""
    route = respx_mock.get(CERT_URL).mock(return_value=httpx.Response(200, content=CERT_PEM))
    ses = make(cached=False)
    events: list[Any] = []
    with httpx.Client() as http:
        for name in ("send.json", "delivery.json"):
            body = signed(fixture(name))
            ses.now = lambda body=body: timestamp_of(body)  # type: ignore[misc]
            request = callback(body)
            fetch = ses.certificate_request(request)
            if fetch is not None:
                answer = http.send(fetch)
                answer.raise_for_status()
                ses.add_certificate(str(fetch.url), answer.content)
            events += ses.parse_webhook(request)
    assert route.call_count == 1
    assert [e.status for e in events] == [DeliveryStatus.ACCEPTED, DeliveryStatus.DELIVERED]


@respx.mock(assert_all_called=True)
def test_client_fetches_the_certificate_once_through_its_pool(
    respx_mock: respx.MockRouter,
) -> None:
    """client.parse_webhook("ses", ...) fetches the certificate itself, once, and caches it."""
    route = respx_mock.get(CERT_URL).mock(return_value=httpx.Response(200, content=CERT_PEM))
    ses = make(cached=False)
    events: list[Any] = []
    with anysend.Client([ses]) as client:
        for name in ("send.json", "delivery.json"):
            body = signed(fixture(name))
            ses.now = lambda body=body: timestamp_of(body)  # type: ignore[misc]
            events += client.parse_webhook("ses", callback(body))
    assert route.call_count == 1
    assert [e.status for e in events] == [DeliveryStatus.ACCEPTED, DeliveryStatus.DELIVERED]


@respx.mock(assert_all_called=True)
def test_client_refuses_when_the_certificate_cannot_be_had(respx_mock: respx.MockRouter) -> None:
    """A certificate URL that answers 404 leaves the callback unverified."""
    respx_mock.get(CERT_URL).mock(return_value=httpx.Response(404))
    ses = make(cached=False)
    body = signed(fixture("delivery.json"))
    ses.now = lambda: timestamp_of(body)
    with anysend.Client([ses]) as client, pytest.raises(WebhookVerificationError, match="404"):
        client.parse_webhook("ses", callback(body))


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/x.pem",
        "https://user@sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
        "https://sns.eu-west-1.amazonaws.com/x.pem?download=1",
        "https://sns.eu-west-1.amazonaws.com/x.pem#frag",
        "https://sns.eu-west-1.amazonaws.com/x.crt",
        "https://s3.amazonaws.com/sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.x.amazonaws.com/x.pem",
        "",
        None,
    ],
)
def test_certificate_urls_off_sns_hosts_are_refused(url: str | None) -> None:
    """Only https://sns.<region>.amazonaws.com[.cn]/...pem is ever fetched or cached."""
    body = signed(fixture("delivery.json"), SigningCertURL=url)
    ses = make(now=timestamp_of(body), cached=False)
    with pytest.raises(WebhookVerificationError):
        ses.certificate_request(callback(body))
    with pytest.raises(WebhookVerificationError):
        ses.verify_webhook(callback(body))
    if url:
        with pytest.raises(WebhookVerificationError):
            ses.add_certificate(url, CERT_PEM)


def test_china_partition_certificate_url_is_accepted() -> None:
    """The China partition's SNS host (amazonaws.com.cn) is an SNS host too."""
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem"
    make(cached=False).add_certificate(url, CERT_PEM)


@pytest.mark.parametrize(
    "pem",
    [b"not a certificate", _certificate(ec.generate_private_key(ec.SECP256R1()))],
)
def test_add_certificate_refuses_what_is_not_an_rsa_certificate(pem: bytes) -> None:
    """A fetched body that is no PEM certificate, or has no RSA key, is refused."""
    with pytest.raises(WebhookVerificationError):
        make(cached=False).add_certificate(CERT_URL, pem)


def test_certificate_cache_is_bounded() -> None:
    """The adapter keeps at most MAX_CERTIFICATES certificates, dropping the oldest."""
    ses = make(cached=False)
    for i in range(ses_module.MAX_CERTIFICATES + 3):
        ses.add_certificate(f"https://sns.eu-west-1.amazonaws.com/cert-{i}.pem", CERT_PEM)
    body = signed(
        fixture("delivery.json"), SigningCertURL="https://sns.eu-west-1.amazonaws.com/cert-0.pem"
    )
    assert ses.certificate_request(callback(body)) is not None


# -- SNS: subscription confirmations --------------------------------------------------------------

DOC_CONFIRMATION_TIME = at("2012-04-26T20:45:05Z")


def test_subscription_confirmation_parses_into_no_events() -> None:
    """A verified SubscriptionConfirmation gives no events; subscribe_url gives its URL."""
    body = signed(fixture("sns_subscription_confirmation.json"))
    ses = make(now=DOC_CONFIRMATION_TIME)
    assert ses.parse_webhook(callback(body)) == []
    assert ses.subscribe_url(callback(body)) == (
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription"
        "&TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37..."
    )


def test_unsubscribe_confirmation_parses_into_no_events() -> None:
    """A verified UnsubscribeConfirmation gives no events and no URL to confirm."""
    body = signed(fixture("sns_subscription_confirmation.json"), Type="UnsubscribeConfirmation")
    ses = make(now=DOC_CONFIRMATION_TIME)
    assert ses.parse_webhook(callback(body)) == []
    assert ses.subscribe_url(callback(body)) is None


def test_subscribe_url_is_none_for_notifications() -> None:
    """subscribe_url has nothing to confirm for a Notification."""
    body = signed(fixture("delivery.json"))
    assert make(now=timestamp_of(body)).subscribe_url(callback(body)) is None


def test_subscriptions_to_other_topics_are_never_confirmed() -> None:
    """A confirmation for a topic outside topic_arns fails verification: no URL is given."""
    body = signed(fixture("sns_subscription_confirmation.json"))
    ses = make(now=DOC_CONFIRMATION_TIME, topic_arns=[TOPIC])
    with pytest.raises(WebhookVerificationError, match="topic"):
        ses.subscribe_url(callback(body))


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/?Action=ConfirmSubscription&TopicArn=" + DOC_TOPIC,
        "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&TopicArn=" + DOC_TOPIC,
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
    ],
)
def test_subscribe_urls_that_do_not_confirm_this_topic_are_refused(url: str) -> None:
    """A signed SubscribeURL off SNS, for another action or another topic is refused."""
    body = signed(fixture("sns_subscription_confirmation.json"), SubscribeURL=url)
    with pytest.raises(WebhookVerificationError):
        make(now=DOC_CONFIRMATION_TIME).subscribe_url(callback(body))


# -- SES events ------------------------------------------------------------------------------------


def test_delivery() -> None:
    """Delivery is delivered, per recipient, with the SMTP answer, time and ids."""
    [event] = parse(signed(fixture("delivery.json")))
    assert event.status is DeliveryStatus.DELIVERED
    assert event.event is None
    assert (event.raw_status, event.recipient, event.channel) == (
        "Delivery",
        "ann@example.net",
        Channel.EMAIL,
    )
    assert event.provider == "ses"
    assert event.provider_message_id == SES_MESSAGE_ID
    assert event.message_id is None
    assert event.description == "250 2.6.0 Message received"
    assert event.occurred_at == datetime(2026, 11, 20, 8, 0, 11, 893000, tzinfo=timezone.utc)
    assert event.event_id == "5b0e7c1a-0000-4000-8000-0000000f0001:ann@example.net"
    assert event.raw == record_of("delivery.json")


def test_delivery_to_two_recipients_carries_anysends_id() -> None:
    """A delivery to to and cc gives one event each; the anysend-id tag is the message id."""
    events = parse(signed(fixture("delivery_two_recipients.json")))
    assert [e.recipient for e in events] == ["ann@example.net", "bob@example.org"]
    assert {e.message_id for e in events} == {"5f0c1d2e3a4b4c5d8e9f0a1b2c3d4e5f"}
    assert len({e.event_id for e in events}) == 2


def test_message_id_falls_back_to_the_anysend_header() -> None:
    """Without the tag, the X-Anysend-Message-Id header of a raw send gives the message id."""
    record = record_of("delivery.json")
    record["mail"]["headers"].append({"name": "X-Anysend-Message-Id", "value": "abc123"})
    [event] = parse(with_record(fixture("delivery.json"), record))
    assert event.message_id == "abc123"


def test_permanent_bounce() -> None:
    """A hard bounce is undeliverable, unknown_recipient for a 5.1.x DSN, with the diagnostic."""
    [event] = parse(signed(fixture("bounce_permanent.json")))
    assert (event.status, event.reason, event.recipient) == (
        DeliveryStatus.UNDELIVERABLE,
        Reason.UNKNOWN_RECIPIENT,
        "nobody@example.net",
    )
    assert event.description == "Permanent/General; smtp; 550 5.1.1 user unknown"
    assert event.occurred_at == datetime(2026, 11, 20, 8, 1, 2, 669000, tzinfo=timezone.utc)


def test_transient_bounce_is_final() -> None:
    """SES publishes a soft bounce only after it stopped retrying: undeliverable, not deferred."""
    [event] = parse(signed(fixture("bounce_transient.json")))
    assert (event.status, event.reason) == (
        DeliveryStatus.UNDELIVERABLE,
        Reason.RECIPIENT_UNREACHABLE,
    )
    assert event.description == "Transient/MailboxFull; smtp; 552 5.2.2 Mailbox full"


def test_suppressed_bounce_notification_is_rejected() -> None:
    """A suppression-list bounce (identity notification) is rejected: SES never tried."""
    [event] = parse(signed(fixture("bounce_suppressed_notification.json")))
    assert (event.status, event.reason, event.raw_status) == (
        DeliveryStatus.REJECTED,
        Reason.SUPPRESSED_BOUNCE,
        "Bounce",
    )
    assert event.recipient == "gone@example.net"


@pytest.mark.parametrize(
    ("bounce_type", "subtype", "dsn", "status", "reason"),
    [
        ("Permanent", "General", "5.7.1", DeliveryStatus.UNDELIVERABLE, Reason.OTHER),
        ("Permanent", "NoEmail", "5.1.1", DeliveryStatus.UNDELIVERABLE, Reason.UNKNOWN_RECIPIENT),
        (
            "Permanent",
            "OnAccountSuppressionList",
            "5.1.1",
            DeliveryStatus.REJECTED,
            Reason.SUPPRESSED_BOUNCE,
        ),
        (
            "Transient",
            "ContentRejected",
            "5.7.1",
            DeliveryStatus.UNDELIVERABLE,
            Reason.CONTENT_REJECTED,
        ),
        ("Undetermined", "Undetermined", "", DeliveryStatus.UNDELIVERABLE, Reason.OTHER),
        ("Brand", "New", "", DeliveryStatus.UNDELIVERABLE, Reason.OTHER),
    ],
)
def test_bounce_types(
    bounce_type: str, subtype: str, dsn: str, status: DeliveryStatus, reason: Reason
) -> None:
    """Each bounce type and subtype gives its status and reason (unknown ones: other)."""
    record = record_of("bounce_permanent.json")
    record["bounce"].update(bounceType=bounce_type, bounceSubType=subtype)
    record["bounce"]["bouncedRecipients"][0]["status"] = dsn
    [event] = parse(with_record(fixture("bounce_permanent.json"), record))
    assert (event.status, event.reason) == (status, reason)


def test_reasons_tables_use_only_the_fixed_vocabulary() -> None:
    """REASONS and DELAY_REASONS map onto Reason members."""
    assert all(isinstance(r, Reason) for r in [*REASONS.values(), *DELAY_REASONS.values()])


def test_complaint() -> None:
    """A complaint is the complained event, with the feedback type as description."""
    [event] = parse(signed(fixture("complaint.json")))
    assert (event.event, event.status, event.recipient, event.description) == (
        EventType.COMPLAINED,
        None,
        "dan@example.org",
        "abuse",
    )


def test_complaint_on_the_suppression_list_is_rejected() -> None:
    """complaintSubType OnAccountSuppressionList means SES did not send: rejected."""
    record = record_of("complaint.json")
    record["complaint"]["complaintSubType"] = "OnAccountSuppressionList"
    [event] = parse(with_record(fixture("complaint.json"), record))
    assert (event.status, event.reason) == (DeliveryStatus.REJECTED, Reason.SUPPRESSED_COMPLAINT)


def test_delivery_delay_is_deferred() -> None:
    """DeliveryDelay is deferred, with the delay type's reason and the diagnostic."""
    [event] = parse(signed(fixture("delivery_delay.json")))
    assert (event.status, event.reason, event.recipient) == (
        DeliveryStatus.DEFERRED,
        Reason.RECIPIENT_UNREACHABLE,
        "slow@example.org",
    )
    assert event.description == (
        "TransientCommunicationFailure; smtp; 421 4.4.1 Unable to connect to remote host"
    )


def test_send_is_accepted_at_the_mail_time() -> None:
    """Send means SES took the message: accepted, at mail.timestamp."""
    [event] = parse(signed(fixture("send.json")))
    assert (event.status, event.recipient) == (DeliveryStatus.ACCEPTED, "ben@example.org")
    assert event.occurred_at == datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    assert event.event_id == "5b0e7c1a-0000-4000-8000-0000000f0006"


def test_open_and_click() -> None:
    """Opens and clicks are events of the only recipient; a click describes its link."""
    [opened] = parse(signed(fixture("open.json")))
    [clicked] = parse(signed(fixture("click.json")))
    assert (opened.event, opened.recipient) == (EventType.OPENED, "ann@example.net")
    assert (clicked.event, clicked.description) == (EventType.CLICKED, "https://shop.example/cart")
    assert clicked.occurred_at == datetime(2026, 11, 20, 9, 1, 25, 570000, tzinfo=timezone.utc)


def test_open_of_a_message_to_several_recipients_names_nobody() -> None:
    """With several recipients SES does not say who opened: recipient is None, not a guess."""
    record = record_of("open.json")
    record["mail"]["destination"] = ["ann@example.net", "bob@example.org"]
    [event] = parse(with_record(fixture("open.json"), record))
    assert event.recipient is None


def test_reject_and_rendering_failure() -> None:
    """Reject (a virus) is rejected/content_rejected; a rendering failure failed/template_error."""
    [rejected] = parse(signed(fixture("reject.json")))
    [failed] = parse(signed(fixture("rendering_failure.json")))
    assert (rejected.status, rejected.reason, rejected.description) == (
        DeliveryStatus.REJECTED,
        Reason.CONTENT_REJECTED,
        "Bad content",
    )
    assert (failed.status, failed.reason, failed.raw_status) == (
        DeliveryStatus.FAILED,
        Reason.TEMPLATE_ERROR,
        "Rendering Failure",
    )
    assert failed.description == "Attribute 'attributeName' is not present in the rendering data."


def test_subscription_events() -> None:
    """Unsubscribing from all topics is opted_out; a topic opt-in is opted_in."""
    [out] = parse(signed(fixture("subscription_unsubscribe_all.json")))
    assert (out.event, out.reason) == (EventType.OPTED_OUT, Reason.OPTED_OUT)
    record = record_of("subscription_unsubscribe_all.json")
    record["subscription"]["newTopicPreferences"] = {
        "unsubscribeAll": False,
        "topicSubscriptionStatus": [{"topicName": "offers", "subscriptionStatus": "OptIn"}],
    }
    [back] = parse(with_record(fixture("subscription_unsubscribe_all.json"), record))
    assert back.event is EventType.OPTED_IN


@pytest.mark.parametrize(
    "name", ["event_destination_validation.json", "subscription_succeeded_notification.json"]
)
def test_setup_messages_parse_into_no_events(name: str) -> None:
    """SES's event-destination check and identity-notification setup message are not events."""
    assert parse(signed(fixture(name))) == []


def test_unknown_event_type_is_kept_as_unknown() -> None:
    """An event type this adapter does not know is status unknown, with the raw value."""
    record = record_of("delivery.json")
    record["eventType"] = "Teleported"
    [event] = parse(with_record(fixture("delivery.json"), record))
    assert (event.status, event.raw_status) == (DeliveryStatus.UNKNOWN, "Teleported")


def test_round_trip_message_id_from_send_to_event() -> None:
    """The anysend-id tag sent with a message comes back as the event's message_id."""
    message = outbound()
    tags = json.loads(make().build_request(message).content)["EmailTags"]
    record = record_of("delivery.json")
    record["mail"]["tags"].update({t["Name"]: [t["Value"]] for t in tags})
    [event] = parse(with_record(fixture("delivery.json"), record))
    assert event.message_id == message.id


# -- malformed bodies ------------------------------------------------------------------------------

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"Type": "Notification"}',
        b'{"Type": "Notification", "Message": "{}"}',
        b'{"Type": "Notification", "Message": "[1]"}',
        b'{"Type": "Notification", "Message": "not json"}',
        b'{"Type": ["Notification"], "Message": 1}',
        b'{"Type": "Notification", "Message": "{\\"eventType\\": 7}"}',
        b'{"Type": "Other"}',
    ],
)
def test_malformed_bodies_raise_only_our_errors(body: bytes) -> None:
    """Unparseable or odd SNS bodies raise WebhookParseError (or verification errors)."""
    ses = make()
    with pytest.raises(WebhookParseError):
        ses.parse_webhook(callback(body), verify=False)
    with pytest.raises(WebhookVerificationError):
        ses.verify_webhook(callback(body))


def test_odd_but_valid_records_still_parse() -> None:
    """Wrong-typed fields inside a known event give an event, not an exception."""
    record = {
        "eventType": "Bounce",
        "bounce": {"bouncedRecipients": [7, {"emailAddress": 3}], "timestamp": "yesterday"},
        "mail": {"destination": "nobody", "tags": [], "headers": {"a": 1}, "messageId": 5},
    }
    [event] = parse(with_record(fixture("delivery.json"), record))
    assert (event.status, event.recipient, event.provider_message_id) == (
        DeliveryStatus.UNDELIVERABLE,
        None,
        None,
    )


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A fixture body with bytes changed, cut or inserted, or a field of its record replaced."""
    body = fixture(draw(st.sampled_from(ALL_FIXTURES)))
    how = draw(st.sampled_from(["bytes", "cut", "record"]))
    if how == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if how == "bytes":
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    message = json.loads(body)
    leaves: st.SearchStrategy[Any] = (
        st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    )
    values: st.SearchStrategy[Any] = st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )
    try:
        record = json.loads(message["Message"])
    except ValueError:
        message[draw(st.sampled_from(sorted(message)))] = draw(values)
        return layout(message)
    if isinstance(record, dict):
        target = record
        detail = [k for k, v in record.items() if isinstance(v, dict)]
        deeper = draw(st.booleans())
        if detail and deeper:
            target = record[draw(st.sampled_from(detail))]
        keys = sorted(target) or ["x"]
        target[draw(st.sampled_from(keys))] = draw(values)
    message["Message"] = json.dumps(record)
    return layout(message)


@settings(max_examples=100, deadline=None)
@given(body=mutated_bodies())
def test_mutated_bodies_only_raise_our_errors(body: bytes) -> None:
    """Mutated fixture bodies parse into events or raise only anysend's webhook errors."""
    try:
        events = make().parse_webhook(callback(body), verify=False)
    except (WebhookParseError, WebhookVerificationError):
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, DeliveryEvent)


# -- the contract kit ------------------------------------------------------------------------------

CONTRACT_BODY = fixture("delivery.json")
CONTRACT_NOW = timestamp_of(CONTRACT_BODY) + 5


class TestSESContract(ProviderContract):
    """The shared adapter contract, run against SES."""

    expected_provider_message_id = SES_MESSAGE_ID
    unknown_raw_status = "Teleported"

    def make_provider(self) -> SES:
        """An SES adapter with test credentials, the certificate cached and the clock pinned."""
        return make(now=CONTRACT_NOW, session_token=SESSION_TOKEN)

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """SES's answer to SendEmail."""
        return httpx.Response(200, json={"MessageId": SES_MESSAGE_ID}, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """SES's documented SendEmail errors."""

        def case(code: str, status: int, category: ErrorCategory) -> ErrorCase:
            return ErrorCase(
                name=code,
                status=status,
                body={"message": f"{code} happened"},
                headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"},
                category=category,
                retryable=category.retryable,
            )

        return [
            case("MessageRejected", 400, ErrorCategory.CONTENT_REJECTED),
            case("MailFromDomainNotVerifiedException", 400, ErrorCategory.CONFIGURATION),
            case("NotFoundException", 404, ErrorCategory.CONFIGURATION),
            case("AccountSuspendedException", 400, ErrorCategory.CONFIGURATION),
            case("SendingPausedException", 400, ErrorCategory.CONFIGURATION),
            case("LimitExceededException", 400, ErrorCategory.QUOTA),
            case("TooManyRequestsException", 429, ErrorCategory.RATE_LIMITED),
            case("BadRequestException", 400, ErrorCategory.UNKNOWN),
            case("InvalidSignatureException", 403, ErrorCategory.AUTH),
            case("InternalServiceErrorException", 500, ErrorCategory.UNAVAILABLE),
            ErrorCase(
                name="throttled with Retry-After",
                status=400,
                body={"__type": "Throttling", "message": "Rate exceeded"},
                headers={"Retry-After": "2"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=2.0,
            ),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A genuine Delivery event."""
        return callback(signed(CONTRACT_BODY))

    def unsigned_webhook(self) -> WebhookRequest:
        """The Delivery event without its Signature field."""
        message = json.loads(CONTRACT_BODY)
        del message["Signature"]
        return callback(layout(message))

    def stale_webhook(self) -> WebhookRequest:
        """A genuine Delivery event published an hour ago."""
        stamp = datetime.fromtimestamp(CONTRACT_NOW - 3600, tz=timezone.utc)
        return callback(signed(CONTRACT_BODY, Timestamp=stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")))

    def wrong_secret_webhook(self) -> WebhookRequest:
        """A Delivery event signed with a key other than the certificate's."""
        return callback(signed(CONTRACT_BODY, key=OTHER_KEY))

    def unknown_status_webhook(self) -> WebhookRequest:
        """A genuine event of a type the adapter does not know."""
        record = record_of("delivery.json")
        record["eventType"] = "Teleported"
        return callback(with_record(CONTRACT_BODY, record))


def test_send_window_clock_is_the_signing_time() -> None:
    """The request's X-Amz-Date is the adapter clock, so a retry built later is signed anew."""
    ses = make()
    first = ses.build_request(outbound())
    ses.now = lambda: SEND_TIME.timestamp() + 61
    second = ses.build_request(outbound())
    assert first.headers["X-Amz-Date"] == "20261120T080000Z"
    assert second.headers["X-Amz-Date"] == "20261120T080101Z"
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert (SEND_TIME + timedelta(seconds=61)).strftime("%H%M%S") == "080101"


def test_client_webhooks_confirm_a_verified_subscription(respx_mock: respx.MockRouter) -> None:
    """client.webhooks.handle GETs the SubscribeURL of a verified confirmation, once."""
    body = signed(fixture("sns_subscription_confirmation.json"))
    confirm = respx_mock.get(url__startswith="https://sns.us-west-2.amazonaws.com/").mock(
        return_value=httpx.Response(200, text="<ConfirmSubscriptionResponse/>")
    )
    with anysend.Client([make(now=DOC_CONFIRMATION_TIME)], store=":memory:") as client:
        assert client.webhooks.handle("ses", callback(body)) == []
    assert confirm.call_count == 1
    assert confirm.calls.last.request.url.params["Action"] == "ConfirmSubscription"


def test_client_webhooks_report_a_confirmation_that_cannot_be_sent(
    respx_mock: respx.MockRouter,
) -> None:
    """A confirmation GET that fails is a verification error: SNS will send it again."""
    body = signed(fixture("sns_subscription_confirmation.json"))
    respx_mock.get(url__startswith="https://sns.us-west-2.amazonaws.com/").mock(
        side_effect=httpx.ConnectError("refused")
    )
    with (
        anysend.Client([make(now=DOC_CONFIRMATION_TIME)], store=":memory:") as client,
        pytest.raises(WebhookVerificationError, match="could not confirm"),
    ):
        client.webhooks.handle("ses", callback(body))
