"""The Mailgun adapter: the Messages API request, error mapping, webhooks and inbound routes."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import respx
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
    InboundMessage,
    Message,
    OutboundMessage,
    ProviderError,
    Reason,
    Recipient,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers.mailgun import (
    ERROR_CODES,
    ID_VARIABLE,
    Mailgun,
    MailgunSettings,
    sign,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mailgun"
KEY = "fixture-mailgun-signing-key-not-a-secret"
API_KEY = "key-test-3f9a0c51e7d24b68"
DOMAIN = "mg.example.com"
SENDER = "Shop <shop@mg.example.com>"
URL = f"https://api.mailgun.net/v3/{DOMAIN}/messages"
EU_URL = f"https://api.eu.mailgun.net/v3/{DOMAIN}/messages"
HOOK_URL = "https://app.example.com/hooks/mailgun"
NOW = 1_795_161_604  # the timestamp signed in delivered.json
MAILGUN_ID = "20261120080000.1.ANYSENDFIXTURE@mg.example.com"
QUEUED = {"id": f"<{MAILGUN_ID}>", "message": "Queued. Thank you."}
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MULTIPART = {"Content-Type": "multipart/form-data; boundary=anysend-fixture-boundary-7f3a"}
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef01"
WIDE = "\uff11\uff12\uff13"  # digits, but not ASCII ones
JSON_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))
FORM_FIXTURES = {
    "inbound_forward.form": FORM,
    "inbound_mime.form": FORM,
    "inbound_attachments.multipart": MULTIPART,
}

# Mailgun's own published vector (mailgun/mailgun-php, tests/Api/WebhookTest.php).
PHP_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
PHP_TIMESTAMP = 1403645220
PHP_TOKEN = "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6"
PHP_OTHER_TOKEN = "owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr"
PHP_SIGNATURE = "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33"


def make(now: float = NOW, **settings: Any) -> Mailgun:
    """A Mailgun adapter with test settings and its clock pinned to ``now``."""
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "domain": DOMAIN,
        "sender": SENDER,
        "webhook_signing_key": KEY,
    }
    mailgun = Mailgun(**(values | settings))
    mailgun.now = lambda: float(now)
    return mailgun


def fixture(name: str) -> bytes:
    """A fixture file's exact bytes."""
    return (FIXTURES / name).read_bytes()


def fixture_request(name: str) -> WebhookRequest:
    """A fixture file as the request Mailgun posts."""
    return WebhookRequest(url=HOOK_URL, headers=FORM_FIXTURES.get(name, JSON), body=fixture(name))


def signed_at(name: str) -> int:
    """The timestamp a fixture file is signed at."""
    request = fixture_request(name)
    if name.endswith(".json"):
        return int(json.loads(request.body)["signature"]["timestamp"])
    if name.endswith(".multipart"):
        found = re.search(rb'name="timestamp"\r\n\r\n(\d+)', request.body)
        assert found is not None
        return int(found[1])
    return int(dict(parse_qsl(request.body.decode()))["timestamp"])


def webhook(
    event_data: dict[str, Any],
    *,
    key: str = KEY,
    timestamp: int = NOW,
    token: str = TOKEN,
    signature: str | None = None,
) -> WebhookRequest:
    """A JSON webhook for ``event_data``, signed at test time."""
    block = {
        "timestamp": str(timestamp),
        "token": token,
        "signature": sign(timestamp, token, key) if signature is None else signature,
    }
    body = json.dumps({"signature": block, "event-data": event_data}).encode()
    return WebhookRequest(url=HOOK_URL, headers=JSON, body=body)


def event_data(name: str, **changes: Any) -> dict[str, Any]:
    """The ``event-data`` of a JSON fixture, with ``changes`` applied."""
    data: dict[str, Any] = json.loads(fixture(name))["event-data"]
    return data | changes


def resigned_form(name: str, *, key: str = KEY, timestamp: int = NOW) -> WebhookRequest:
    """A urlencoded fixture with its signature fields replaced, signed at test time."""
    pairs = [
        (k, v)
        for k, v in parse_qsl(fixture(name).decode(), keep_blank_values=True)
        if k not in ("timestamp", "token", "signature")
    ]
    pairs += [("timestamp", str(timestamp)), ("token", TOKEN)]
    pairs += [("signature", sign(timestamp, TOKEN, key))]
    return WebhookRequest(url=HOOK_URL, headers=FORM, body=urlencode(pairs).encode())


def parts_of(request: httpx.Request) -> list[tuple[str, str | None, str | None, bytes]]:
    """The parts of a multipart/form-data request: name, filename, content type, bytes."""
    kind = request.headers["content-type"]
    assert kind.startswith("multipart/form-data; boundary=")
    delimiter = b"--" + kind.split("boundary=", 1)[1].encode()
    chunks = request.read().split(delimiter)
    assert chunks[0] == b""
    assert chunks[-1] == b"--\r\n"
    parts: list[tuple[str, str | None, str | None, bytes]] = []
    for chunk in chunks[1:-1]:
        assert chunk.startswith(b"\r\n")
        assert chunk.endswith(b"\r\n")
        head, _, content = chunk[2:-2].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        found = re.fullmatch(
            r'Content-Disposition: form-data; name="([^"]*)"(?:; filename="([^"]*)")?', lines[0]
        )
        assert found is not None, lines[0]
        kind_of = lines[1].removeprefix("Content-Type: ") if len(lines) > 1 else None
        parts.append((found[1], found[2], kind_of, content))
    return parts


def fields_of(request: httpx.Request) -> list[tuple[str, str]]:
    """The text fields of a multipart request, in order."""
    return [(n, c.decode()) for n, f, _, c in parts_of(request) if f is None]


def outbound(**fields: Any) -> OutboundMessage:
    """An email as the client hands it to the adapter."""
    fields.setdefault("text", "Hello")
    return OutboundMessage(id="msg-1", channel=Channel.EMAIL, to="ann@example.net", **fields)


def basic(key: str = API_KEY) -> str:
    """The Authorization header value for ``api:<key>``."""
    return "Basic " + base64.b64encode(f"api:{key}".encode()).decode()


# -- the contract kit ------------------------------------------------------------------------------

ERROR_CASES = [
    ErrorCase(
        name="invalid to",
        status=400,
        body={"message": "'to' parameter is not a valid address. please check documentation"},
        category=ErrorCategory.INVALID_RECIPIENT,
        retryable=False,
    ),
    ErrorCase(
        name="invalid from",
        status=400,
        body={"message": "'from' parameter is not a valid address. please check documentation"},
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="missing from",
        status=400,
        body={"message": "'from' parameter is missing"},
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="other bad request",
        status=400,
        body={"message": "Need at least one of 'text' or 'html' parameters specified"},
        category=ErrorCategory.CONTENT_REJECTED,
        retryable=False,
    ),
    ErrorCase(
        name="bad API key",
        status=401,
        body="Forbidden",
        headers={"Content-Type": "text/plain"},
        category=ErrorCategory.AUTH,
        retryable=False,
    ),
    ErrorCase(
        name="payment required",
        status=402,
        body={"message": "Request failed"},
        category=ErrorCategory.QUOTA,
        retryable=False,
    ),
    ErrorCase(
        name="sandbox domain",
        status=403,
        body={
            "message": "Domain sandbox0123.mailgun.org is not allowed to send: Sandbox "
            "subdomains are for test purposes only. Please add your own domain or add the "
            "address to authorized recipients in Account Settings."
        },
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="forbidden",
        status=403,
        body={"message": "Forbidden"},
        category=ErrorCategory.AUTH,
        retryable=False,
    ),
    ErrorCase(
        name="domain not found",
        status=404,
        body={"message": "Domain not found: mg.example.com"},
        category=ErrorCategory.CONFIGURATION,
        retryable=False,
    ),
    ErrorCase(
        name="too large",
        status=413,
        body="<html><body>413 Request Entity Too Large</body></html>",
        category=ErrorCategory.PAYLOAD_TOO_LARGE,
        retryable=False,
    ),
    ErrorCase(
        name="throttled",
        status=429,
        body={"message": "Too many requests"},
        headers={"Retry-After": "3"},
        category=ErrorCategory.RATE_LIMITED,
        retryable=True,
        retry_after=3.0,
    ),
    ErrorCase(
        name="server error",
        status=500,
        body={"message": "Internal Server Error"},
        category=ErrorCategory.UNAVAILABLE,
        retryable=True,
    ),
    ErrorCase(
        name="bad gateway",
        status=502,
        body="Bad Gateway",
        category=ErrorCategory.UNAVAILABLE,
        retryable=True,
    ),
    ErrorCase(
        name="gateway timeout",
        status=504,
        body="Gateway Timeout",
        category=ErrorCategory.AMBIGUOUS_TIMEOUT,
        retryable=False,
    ),
]


class TestMailgunContract(ProviderContract):
    """The contract kit run against Mailgun."""

    expected_provider_message_id = MAILGUN_ID
    unknown_raw_status = "teleported"

    def make_provider(self) -> Mailgun:
        """A Mailgun adapter with its clock at delivered.json's timestamp."""
        return make()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Mailgun's documented answer to an accepted message."""
        return httpx.Response(200, json=QUEUED, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Mailgun's documented error answers."""
        return ERROR_CASES

    def signed_webhook(self) -> WebhookRequest:
        """delivered.json, exactly as Mailgun posts it."""
        return fixture_request("delivered.json")

    def unsigned_webhook(self) -> WebhookRequest:
        """delivered.json without its signature block."""
        data = json.loads(fixture("delivered.json"))
        del data["signature"]
        return WebhookRequest(url=HOOK_URL, headers=JSON, body=json.dumps(data).encode())

    def forged_webhook(self) -> WebhookRequest:
        """delivered.json with its token changed after signing (the body is not signed)."""
        body = fixture("delivered.json").replace(b'"token":"d010', b'"token":"e010')
        return WebhookRequest(url=HOOK_URL, headers=JSON, body=body)

    def stale_webhook(self) -> WebhookRequest:
        """delivered's event signed an hour before the clock."""
        return webhook(event_data("delivered.json"), timestamp=NOW - 3600)

    def wrong_secret_webhook(self) -> WebhookRequest:
        """delivered's event signed with another key."""
        return webhook(event_data("delivered.json"), key="someone-elses-signing-key")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A signed event whose name the adapter does not know."""
        return webhook(event_data("delivered.json", event="teleported"))

    def inbound_webhook(self) -> WebhookRequest:
        """A signed route POST."""
        return resigned_form("inbound_forward.form")


# -- sending -------------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_send_posts_the_documented_form(respx_mock: respx.MockRouter) -> None:
    """The client POSTs multipart form fields to /v3/<domain>/messages with api:<key> auth."""
    route = respx_mock.post(URL).mock(return_value=httpx.Response(200, json=QUEUED))
    message = Message(
        subject="Your cart is waiting",
        text="Come back",
        html="<p>Come back</p>",
        cc=("ben@example.org",),
        bcc=("audit@example.com",),
        reply_to=("help@example.com", "sales@example.com"),
        headers={"X-Campaign": "cart"},
        tags=("cart-reminder",),
        metadata={"order": "4521"},
        unsubscribe_url="https://shop.example.com/unsubscribe/ann",
        provider_options={"mailgun": {"o:tracking-clicks": "htmlonly", "o:testmode": True}},
    )
    ann = Recipient(email="ann@example.net", name="Ann Example")
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(message, to=ann, via=["email"])
    assert result.ok
    assert result.provider_message_id == MAILGUN_ID
    assert result.receipt is not None
    assert result.receipt.raw == QUEUED
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["authorization"] == basic()
    assert fields_of(request) == [
        ("from", SENDER),
        ("to", "Ann Example <ann@example.net>"),
        ("cc", "ben@example.org"),
        ("bcc", "audit@example.com"),
        ("subject", "Your cart is waiting"),
        ("text", "Come back"),
        ("html", "<p>Come back</p>"),
        ("h:Reply-To", "help@example.com, sales@example.com"),
        ("h:X-Campaign", "cart"),
        ("h:List-Unsubscribe", "<https://shop.example.com/unsubscribe/ann>"),
        ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("o:tag", "cart-reminder"),
        ("v:order", "4521"),
        (f"v:{ID_VARIABLE}", result.message_id),
        ("o:tracking-clicks", "htmlonly"),
        ("o:testmode", "yes"),
    ]


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_sends_files_to_the_eu_region(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: EU host, attachments as `attachment`, inline images as `inline` by cid."""
    route = respx_mock.post(EU_URL).mock(return_value=httpx.Response(200, json=QUEUED))
    message = Message(
        subject="Invoice",
        html='<img src="cid:logo">',
        attachments=(
            Attachment(filename="invoice.pdf", content=b"%PDF-1.4\r\n\x00\xff"),
            Attachment(filename="logo.png", content=b"\x89PNG\r\n", inline=True, content_id="logo"),
        ),
    )
    async with anysend.AsyncClient([make(region="eu")], clock=VirtualClock()) as client:
        result = await client.send(message, to={"email": "ann@example.net"}, via=["email"])
    assert result.provider_message_id == MAILGUN_ID
    request = route.calls.last.request
    assert request.headers["authorization"] == basic()
    files = [p for p in parts_of(request) if p[1] is not None]
    assert files == [
        ("attachment", "invoice.pdf", "application/pdf", b"%PDF-1.4\r\n\x00\xff"),
        ("inline", "logo", "image/png", b"\x89PNG\r\n"),
    ]


def test_send_at_is_rfc_2822_and_the_receipt_is_scheduled() -> None:
    """send_at becomes o:deliverytime in RFC 2822 GMT (naive means UTC); status scheduled."""
    mailgun = make()
    aware = datetime(2026, 11, 21, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    for when in (aware, datetime(2026, 11, 21, 8, 30)):
        message = outbound(send_at=when)
        fields = mailgun.form_fields(message)
        assert ("o:deliverytime", "Sat, 21 Nov 2026 08:30:00 GMT") in fields
        answer = httpx.Response(200, json=QUEUED, request=mailgun.build_request(message))
        assert mailgun.parse_response(answer, message).status is DeliveryStatus.SCHEDULED


def test_recipient_names_are_quoted_where_needed() -> None:
    """The `to` field carries the recipient's name, quoted as RFC 5322 requires."""
    mailgun = make()
    for name, expected in [
        (None, "ann@example.net"),
        ("Zoë Ann", "Zoë Ann <ann@example.net>"),
        ('Ann "Nan", Jr.', '"Ann \\"Nan\\", Jr." <ann@example.net>'),
    ]:
        fields = mailgun.form_fields(outbound(recipient=Recipient(name=name)))
        assert fields[1] == ("to", expected)


def test_provider_options_replace_remove_and_convert() -> None:
    """Options replace same-named fields; None removes; lists repeat; dicts become JSON."""
    options = {
        "o:tag": ["a", "b"],
        "text": None,
        "t:variables": {"name": "Ann"},
        "o:tracking": False,
        "o:deliverytime-optimize-period": 24,
    }
    fields = make().form_fields(outbound(tags=("x",), provider_options=options))
    assert ("text", "Hello") not in fields
    assert [v for k, v in fields if k == "o:tag"] == ["a", "b"]
    assert ("t:variables", '{"name": "Ann"}') in fields
    assert ("o:tracking", "no") in fields
    assert ("o:deliverytime-optimize-period", "24") in fields
    with pytest.raises(ConfigurationError):
        make().form_fields(outbound(provider_options={"o:tag": object()}))


def test_metadata_cannot_replace_the_message_id() -> None:
    """A metadata entry named anysend-id is dropped: the variable carries anysend's id."""
    fields = make().form_fields(outbound(metadata={ID_VARIABLE: "spoofed", "a": "1"}))
    assert [v for k, v in fields if k.startswith("v:")] == ["1", "msg-1"]


@pytest.mark.parametrize(
    "fields",
    [
        {"headers": {"X-Note": "a\r\nBcc: eve@example.org"}},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"Reply-To": "eve@example.org"}},
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"X-Mailgun-Variables": "{}"}},
        {"subject": "Hi\nBcc: eve@example.org"},
        {"recipient": Recipient(name="Ann\r\nBcc: eve@example.org")},
        {"category": "marketing"},
    ],
)
def test_unsafe_content_is_refused_before_sending(fields: dict[str, Any]) -> None:
    """Header injection, reserved headers and unsubscribable marketing raise ContentError."""
    with pytest.raises(ContentError):
        make().build_request(outbound(**fields))


@respx.mock
def test_missing_sender_is_a_configuration_failure(respx_mock: respx.MockRouter) -> None:
    """Without any sender the adapter refuses before the request: the attempt is configuration."""
    route = respx_mock.post(URL)
    with pytest.raises(ConfigurationError):
        make(sender=None).build_request(outbound())
    with anysend.Client([make(sender=None)], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to={"email": "ann@example.net"}, via=["email"])
    assert not result.ok
    assert result.error is not None
    assert result.error.category is ErrorCategory.CONFIGURATION
    assert not route.called


@pytest.mark.parametrize("tags", [("a", "b", "c", "d"), ("x" * 129,), ("zażółć",), ("a\nb",)])
def test_tags_mailgun_cannot_take_are_unsupported(tags: tuple[str, ...]) -> None:
    """More than 3 tags, or a long or non-ASCII tag, makes the adapter unsupported."""
    with pytest.raises(UnsupportedFeatureError) as caught:
        make().check_supported(outbound(tags=tags))
    assert caught.value.feature == "tags"
    make().check_supported(outbound(tags=("a", "b", "x" * 128)))


def test_attachments_over_25_mb_are_too_large() -> None:
    """Attachments beyond Mailgun's 25 MB are refused before any request."""
    big = Attachment(filename="big.bin", content=b"\0" * 25_000_001)
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(attachments=(big,)))
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE


def test_success_without_an_id_gives_a_receipt_without_one() -> None:
    """A 2xx without an id is still accepted; the receipt has no provider id."""
    message = outbound()
    answer = httpx.Response(200, text="Queued", request=make().build_request(message))
    receipt = make().parse_response(answer, message)
    assert (receipt.provider_message_id, receipt.status) == (None, DeliveryStatus.ACCEPTED)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda case: case.name)
def test_error_answers_keep_mailguns_message(case: ErrorCase) -> None:
    """Each error carries the status, the category and Mailgun's message, never the key."""
    mailgun = make()
    message = outbound()
    with pytest.raises(ProviderError) as caught:
        mailgun.parse_response(case.response(mailgun.build_request(message)), message)
    error = caught.value
    assert (error.category, error.status_code, error.provider) == (
        case.category,
        case.status,
        "mailgun",
    )
    if isinstance(case.body, dict):
        assert case.body["message"] in error.message
    assert "<html" not in error.message
    assert API_KEY not in str(error)


def test_error_code_table() -> None:
    """ERROR_CODES holds only what differs from the shared HTTP mapping."""
    assert ERROR_CODES == {
        400: ErrorCategory.CONTENT_REJECTED,
        404: ErrorCategory.CONFIGURATION,
    }


@respx.mock
def test_throttling_is_retried_after_retry_after(respx_mock: respx.MockRouter) -> None:
    """A 429 with Retry-After: 4 is retried after 4 seconds, then accepted."""
    respx_mock.post(URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "4"}, json={"message": "slow down"}),
            httpx.Response(200, json=QUEUED),
        ]
    )
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to={"email": "ann@example.net"}, via=["email"])
    assert result.provider_message_id == MAILGUN_ID
    error = result.attempts[0].error
    assert error is not None
    assert (error.category, error.retry_after) == (ErrorCategory.RATE_LIMITED, 4.0)


@pytest.mark.parametrize(
    "settings",
    [
        {"domain": "mg.example.com/../v4"},
        {"domain": ""},
        {"region": "asia"},
        {"replay_window": 0},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    """Invalid settings raise ConfigurationError without showing the key."""
    with pytest.raises(ConfigurationError) as caught:
        make(**settings)
    assert API_KEY not in str(caught.value)


def test_settings_defaults() -> None:
    """The defaults: US region, 300-second window, reused tokens refused, no signing key."""
    settings = MailgunSettings(api_key=API_KEY, domain=DOMAIN)
    assert (settings.region, settings.replay_window, settings.reject_reused_tokens) == (
        "us",
        300.0,
        True,
    )
    assert settings.sender is None
    assert settings.webhook_signing_key is None
    assert Mailgun(settings).url == URL


# -- signatures ----------------------------------------------------------------------------------


def test_mailguns_published_signature_vector() -> None:
    """sign() reproduces the vector of Mailgun's PHP SDK; its bad-token twin does not match."""
    assert sign(PHP_TIMESTAMP, PHP_TOKEN, PHP_KEY) == PHP_SIGNATURE
    assert sign(PHP_TIMESTAMP, PHP_OTHER_TOKEN, PHP_KEY) != PHP_SIGNATURE
    mailgun = make(now=PHP_TIMESTAMP + 10, webhook_signing_key=PHP_KEY)
    data = event_data("delivered.json")
    mailgun.verify_webhook(webhook(data, timestamp=PHP_TIMESTAMP, token=PHP_TOKEN, key=PHP_KEY))
    forged = webhook(data, timestamp=PHP_TIMESTAMP, token=PHP_OTHER_TOKEN, signature=PHP_SIGNATURE)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        mailgun.verify_webhook(forged)


@pytest.mark.parametrize("name", [*JSON_FIXTURES, *FORM_FIXTURES])
def test_fixture_files_verify_as_they_are(name: str) -> None:
    """Every fixture verifies with the fixture key at its own timestamp, and not 301 s later."""
    request = fixture_request(name)
    make(now=signed_at(name)).verify_webhook(request)
    make(now=signed_at(name) + 300).verify_webhook(request)
    with pytest.raises(WebhookVerificationError, match="replay window"):
        make(now=signed_at(name) + 301).verify_webhook(request)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        make(now=signed_at(name), webhook_signing_key="another-key").verify_webhook(request)


@pytest.mark.parametrize(
    "block",
    [
        None,
        {},
        {"timestamp": str(NOW), "token": TOKEN},
        {"timestamp": str(NOW), "token": TOKEN, "signature": ""},
        {"timestamp": "soon", "token": TOKEN, "signature": sign("soon", TOKEN, KEY)},
        {"timestamp": WIDE, "token": TOKEN, "signature": sign(WIDE, TOKEN, KEY)},
        {"timestamp": NOW, "token": 5, "signature": "00"},
        "not an object",
    ],
)
def test_missing_or_malformed_signature_blocks_are_refused(block: object) -> None:
    """A webhook without a usable signature block raises WebhookVerificationError."""
    data: dict[str, Any] = {"event-data": event_data("delivered.json")}
    if block is not None:
        data["signature"] = block
    request = WebhookRequest(url=HOOK_URL, headers=JSON, body=json.dumps(data).encode())
    with pytest.raises(WebhookVerificationError):
        make().parse_webhook(request)


def test_integer_timestamps_verify() -> None:
    """A timestamp sent as a JSON number is read as its decimal digits."""
    data = {
        "signature": {"timestamp": NOW, "token": TOKEN, "signature": sign(NOW, TOKEN, KEY)},
        "event-data": event_data("delivered.json"),
    }
    make().verify_webhook(
        WebhookRequest(url=HOOK_URL, headers=JSON, body=json.dumps(data).encode())
    )


def test_future_timestamps_are_refused_and_the_window_is_a_setting() -> None:
    """The window applies both ways; replay_window widens it."""
    request = webhook(event_data("delivered.json"), timestamp=NOW + 400)
    with pytest.raises(WebhookVerificationError, match="replay window"):
        make().verify_webhook(request)
    make(replay_window=600).verify_webhook(request)


def test_no_signing_key_refuses_every_callback() -> None:
    """Without webhook_signing_key nothing verifies (the API key is not the signing key)."""
    with pytest.raises(WebhookVerificationError, match="webhook_signing_key"):
        make(webhook_signing_key=None).parse_webhook(fixture_request("delivered.json"))


def test_a_reused_token_with_another_body_is_refused() -> None:
    """The same request verifies twice; the same token on other event-data is refused."""
    mailgun = make()
    genuine = fixture_request("delivered.json")
    mailgun.verify_webhook(genuine)
    [event] = mailgun.parse_webhook(genuine)
    assert isinstance(event, DeliveryEvent)
    swapped = genuine.body.replace(b'"event":"delivered"', b'"event":"failed"')
    forged = genuine.model_copy(update={"body": swapped})
    with pytest.raises(WebhookVerificationError, match="reuses the token"):
        mailgun.verify_webhook(forged)
    make().verify_webhook(forged)  # the signature alone does not cover event-data
    unchecked = make(reject_reused_tokens=False)
    unchecked.verify_webhook(genuine)
    unchecked.verify_webhook(forged)


def test_the_token_memory_is_bounded_and_forgets_stale_tokens() -> None:
    """Tokens outside the replay window, and beyond token_cache_size, are forgotten."""

    class SmallMemory(Mailgun):
        token_cache_size = 2

    clock = [float(NOW)]
    mailgun = SmallMemory(api_key=API_KEY, domain=DOMAIN, webhook_signing_key=KEY)
    mailgun.now = lambda: clock[0]
    data = event_data("delivered.json")
    for number in range(3):
        mailgun.verify_webhook(webhook(data, token=f"{TOKEN[:-1]}{number}"))
    assert len(mailgun._tokens) == 2
    other = event_data("delivered.json", id="another-event")
    mailgun.verify_webhook(webhook(other, token=f"{TOKEN[:-1]}0"))  # forgotten: accepted
    clock[0] = NOW + 301
    mailgun.verify_webhook(webhook(data, timestamp=NOW + 301))
    assert next(iter(mailgun._tokens.values()))[0] == NOW + 301


# -- delivery webhooks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "event", "reason", "message_id"),
    [
        ("accepted.json", DeliveryStatus.ACCEPTED, None, None, "01JD4X8Y2N3P4Q5R6S7T8V9W0X"),
        ("delivered.json", DeliveryStatus.DELIVERED, None, None, None),
        ("failed_temporary.json", DeliveryStatus.DEFERRED, None, Reason.OTHER, None),
        (
            "failed_permanent_suppress_bounce.json",
            DeliveryStatus.REJECTED,
            None,
            Reason.SUPPRESSED_BOUNCE,
            None,
        ),
        (
            "failed_permanent_bounce.json",
            DeliveryStatus.UNDELIVERABLE,
            None,
            Reason.UNKNOWN_RECIPIENT,
            "01JD4X8Y2N3P4Q5R6S7T8V9W0Z",
        ),
        (
            "rejected.json",
            DeliveryStatus.REJECTED,
            None,
            Reason.OTHER,
            "01JD4X8Y2N3P4Q5R6S7T8V9W0Y",
        ),
        ("opened.json", None, EventType.OPENED, None, None),
        ("clicked.json", None, EventType.CLICKED, None, None),
        ("complained.json", None, EventType.COMPLAINED, None, None),
        ("unsubscribed.json", None, EventType.OPTED_OUT, None, "01JD4X8Y2N3P4Q5R6S7T8V9W0X"),
    ],
)
def test_fixtures_map_onto_the_vocabulary(
    name: str,
    status: DeliveryStatus | None,
    event: EventType | None,
    reason: Reason | None,
    message_id: str | None,
) -> None:
    """Each fixture becomes one event with status or event, reason, ids and time."""
    data = json.loads(fixture(name))["event-data"]
    [parsed] = make(now=signed_at(name)).parse_webhook(fixture_request(name))
    assert isinstance(parsed, DeliveryEvent)
    assert (parsed.status, parsed.event, parsed.reason) == (status, event, reason)
    assert parsed.raw_status == data["event"]
    assert parsed.provider == "mailgun"
    assert parsed.channel is Channel.EMAIL
    assert parsed.message_id == message_id
    assert parsed.provider_message_id == data["message"]["headers"]["message-id"]
    assert parsed.recipient == data["recipient"]
    assert parsed.event_id == data["id"]
    assert parsed.occurred_at == datetime.fromtimestamp(data["timestamp"], tz=timezone.utc)
    assert parsed.raw == data


def test_failure_descriptions_come_from_the_delivery_status() -> None:
    """The description is Mailgun's delivery-status text."""
    [suppressed] = make().parse_webhook(
        fixture_request("failed_permanent_suppress_bounce.json"), verify=False
    )
    assert isinstance(suppressed, DeliveryEvent)
    assert suppressed.description == "Not delivering to previously bounced address"


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"severity": "permanent", "reason": "old"}, DeliveryStatus.FAILED, Reason.TIMED_OUT),
        (
            {"severity": "permanent", "reason": "suppress-unsubscribe"},
            DeliveryStatus.REJECTED,
            Reason.OPTED_OUT,
        ),
        (
            {"severity": "permanent", "reason": "suppress-complaint"},
            DeliveryStatus.REJECTED,
            Reason.SUPPRESSED_COMPLAINT,
        ),
        (
            {"severity": "permanent", "reason": "espblock"},
            DeliveryStatus.UNDELIVERABLE,
            Reason.POLICY_BLOCKED,
        ),
        ({"severity": "internal", "reason": "generic"}, DeliveryStatus.FAILED, Reason.OTHER),
        (
            {"severity": "temporary", "reason": "greylisted"},
            DeliveryStatus.DEFERRED,
            Reason.RECIPIENT_UNREACHABLE,
        ),
        ({"severity": None, "reason": "generic"}, DeliveryStatus.UNKNOWN, Reason.OTHER),
        (
            {"severity": "permanent", "reason": "brand-new"},
            DeliveryStatus.UNDELIVERABLE,
            Reason.OTHER,
        ),
    ],
)
def test_failed_events_by_severity_and_reason(
    changes: dict[str, Any], status: DeliveryStatus, reason: Reason
) -> None:
    """A failure's severity and reason choose the status and reason; unknowns stay raw."""
    data = event_data("failed_temporary.json", **changes)
    [event] = make().parse_webhook(webhook(data))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.reason, event.raw_status) == (status, reason, "failed")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("5.1.1", Reason.UNKNOWN_RECIPIENT),
        ("5.1.3", Reason.INVALID_RECIPIENT),
        ("5.2.2", Reason.RECIPIENT_UNREACHABLE),
        ("5.7.1", Reason.POLICY_BLOCKED),
        ("4.4.7", Reason.TIMED_OUT),
        ("5.9.9", Reason.OTHER),
        ("garbage", Reason.OTHER),
    ],
)
def test_enhanced_codes_refine_a_bounce(code: str, reason: Reason) -> None:
    """A bounce's enhanced status code names the reason where it can."""
    data = event_data("failed_permanent_bounce.json")
    data["delivery-status"]["enhanced-code"] = code
    [event] = make().parse_webhook(webhook(data))
    assert isinstance(event, DeliveryEvent)
    assert event.reason is reason


def test_unknown_events_keep_the_raw_name() -> None:
    """An event the adapter does not know is status unknown with its raw name."""
    [event] = make().parse_webhook(webhook(event_data("delivered.json", event="stored")))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status) == (DeliveryStatus.UNKNOWN, "stored")


def test_sparse_events_still_parse() -> None:
    """Only `event` is needed: ids fall back to a payload hash, the rest stays empty."""
    [event] = make().parse_webhook(webhook({"event": "delivered", "timestamp": "bad"}))
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED
    assert event.event_id is not None
    assert len(event.event_id) == 32
    assert (event.provider_message_id, event.occurred_at, event.recipient) == (None, None, None)


# -- inbound ---------------------------------------------------------------------------------------


def test_inbound_route_post_becomes_an_inbound_message() -> None:
    """A parsed route POST: sender from From, the stripped reply text, ids without <>."""
    [message] = make().parse_webhook(resigned_form("inbound_forward.form"))
    assert isinstance(message, InboundMessage)
    assert message.provider == "mailgun"
    assert message.channel is Channel.EMAIL
    assert message.sender == "ann@example.net"
    assert message.recipient == "support@mg.example.com"
    assert message.subject == "Re: Your cart is waiting"
    assert message.text == "Can I still use the 10% code?"
    assert message.provider_message_id == "CAFixtureReply0001@mail.example.net"
    assert message.in_reply_to == MAILGUN_ID
    assert message.received_at == datetime.fromtimestamp(NOW, tz=timezone.utc)
    assert message.media == ()
    assert isinstance(message.raw, dict)
    assert message.raw["body-plain"].startswith("Can I still use the 10% code?\r\n")


def test_inbound_files_become_media_and_attachments() -> None:
    """A multipart route POST: files are Media, and inbound_attachments gives their bytes."""
    name = "inbound_attachments.multipart"
    mailgun = make(now=signed_at(name))
    request = fixture_request(name)
    [message] = mailgun.parse_webhook(request)
    assert isinstance(message, InboundMessage)
    assert message.sender == "ben@example.org"
    assert [(m.provider_media_id, m.filename, m.content_type, m.url) for m in message.media] == [
        ("attachment-1", "invoice 1042.txt", "text/plain", None),
        ("attachment-2", "photo.png", "image/png", None),
    ]
    assert isinstance(message.raw, dict)
    assert message.raw["attachment-2"] == {
        "filename": "photo.png",
        "content-type": "image/png",
        "size": 29,
    }
    invoice, photo = mailgun.inbound_attachments(request)
    assert invoice.content == b"Invoice 1042\r\nTotal: 99.00 PLN\r\n"
    assert not invoice.inline
    assert photo.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert (photo.inline, photo.content_id) == (True, "photo@example.org")
    with pytest.raises(WebhookVerificationError):
        make().inbound_attachments(request)
    assert len(make().inbound_attachments(request, verify=False)) == 2


def test_inbound_raw_mime_route_is_read_from_the_mime() -> None:
    """A route to a URL ending in `mime`: text, ids and files come from body-mime."""
    name = "inbound_mime.form"
    mailgun = make(now=signed_at(name))
    [message] = mailgun.parse_webhook(fixture_request(name))
    assert isinstance(message, InboundMessage)
    assert message.text is not None
    assert message.text.strip() == "Where is order 77? Zażółć."
    assert message.provider_message_id == "CAFixtureMime0003@mail.example.org"
    assert message.in_reply_to == "20261120080000.3.ANYSENDFIXTURE@mg.example.com"
    assert [(m.filename, m.content_type) for m in message.media] == [
        ("receipt.pdf", "application/pdf")
    ]
    [receipt] = mailgun.inbound_attachments(fixture_request(name))
    assert receipt.content == b"%PDF-1.4\n% fixture\n"


def test_stored_message_attachments_are_urls() -> None:
    """A store() notification's `attachments` JSON becomes Media with URLs."""
    stored = [
        {"url": "https://storage.example/att/1", "name": "a.txt", "content-type": "text/plain"}
    ]
    pairs = [("sender", "ann@example.net"), ("attachments", json.dumps(stored))]
    request = WebhookRequest(url=HOOK_URL, headers=FORM, body=urlencode(pairs).encode())
    [message] = make().parse_webhook(request, verify=False)
    assert isinstance(message, InboundMessage)
    assert [(m.url, m.filename) for m in message.media] == [
        ("https://storage.example/att/1", "a.txt")
    ]


def test_odd_multipart_parts_are_read_leniently() -> None:
    """Nameless parts are skipped; odd charsets, untyped and unnamed files still come out."""
    parts = [
        b"Content-Type: text/plain\r\n\r\nno name",
        b'Content-Disposition: form-data; name="sender"\r\n'
        b"Content-Type: text/plain; charset=x-bogus\r\n\r\nann@example.net",
        b'Content-Disposition: form-data; name="timestamp"\r\n\r\n1e300',
        b'Content-Disposition: form-data; name="attachment-1"; filename=".."\r\n\r\n\x00\x01',
    ]
    body = b"".join(b"--b\r\n" + p + b"\r\n" for p in parts) + b"--b--\r\n"
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    request = WebhookRequest(url=HOOK_URL, headers=headers, body=body)
    [message] = make().parse_webhook(request, verify=False)
    assert isinstance(message, InboundMessage)
    assert (message.sender, message.received_at) == ("ann@example.net", None)
    assert [(m.filename, m.content_type) for m in message.media] == [("..", None)]
    [file] = make().inbound_attachments(request, verify=False)
    assert (file.filename, file.content, file.content_type) == (
        "attachment-1",
        b"\x00\x01",
        "application/octet-stream",
    )


def test_inbound_without_a_sender_and_legacy_webhooks_are_parse_errors() -> None:
    """A form with no sender, or a legacy form webhook, raises WebhookParseError."""
    for pairs in ([("subject", "hi")], [("event", "delivered"), ("recipient", "a@example.com")]):
        request = WebhookRequest(url=HOOK_URL, headers=FORM, body=urlencode(pairs).encode())
        with pytest.raises(WebhookParseError):
            make().parse_webhook(request, verify=False)


# -- malformed and mutated bodies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (JSON, b""),
        (JSON, b"{"),
        (JSON, b'{"event-data": []}'),
        (JSON, b'{"event-data": {"event": 5}}'),
        (JSON, b"\xff\xfe"),
        ({}, b"[1, 2]"),
        (FORM, b"\xff\xfe=1"),
        (MULTIPART, b"not multipart at all"),
        ({"Content-Type": "multipart/form-data"}, b"--x\r\n\r\n--x--"),
        ({"Content-Type": "multipart/form-data; boundary=x\r\nX-Evil: 1"}, b""),
        ({"Content-Type": "multipart/form-data; boundary=é"}, b""),
    ],
)
def test_malformed_bodies_raise_only_our_errors(headers: dict[str, str], body: bytes) -> None:
    """Unusable bodies raise WebhookParseError (unverified) or WebhookVerificationError."""
    request = WebhookRequest(url=HOOK_URL, headers=headers, body=body)
    with pytest.raises(WebhookParseError):
        make().parse_webhook(request, verify=False)
    with pytest.raises(WebhookVerificationError):
        make().parse_webhook(request)
    with pytest.raises((WebhookParseError, WebhookVerificationError)):
        make().inbound_attachments(request, verify=False)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from([*JSON_FIXTURES, *FORM_FIXTURES]),
    position=st.floats(min_value=0, max_value=1),
    cut=st.integers(min_value=0, max_value=40),
    insert=st.binary(max_size=12),
)
def test_mutated_fixtures_raise_only_our_errors(
    name: str, position: float, cut: int, insert: bytes
) -> None:
    """Bodies with bytes cut out and inserted parse to a list or raise only our errors."""
    request = fixture_request(name)
    at = int(position * len(request.body))
    body = request.body[:at] + insert + request.body[at + cut :]
    mutated = request.model_copy(update={"body": body})
    mailgun = make(now=signed_at(name))
    try:
        events = mailgun.parse_webhook(mutated, verify=False)
    except (WebhookParseError, WebhookVerificationError):
        pass
    else:
        assert isinstance(events, list)
        assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)
    with contextlib.suppress(WebhookVerificationError):
        mailgun.verify_webhook(mutated)
    with contextlib.suppress(WebhookParseError, WebhookVerificationError):
        mailgun.inbound_attachments(mutated, verify=False)
