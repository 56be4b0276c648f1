"""The Postmark adapter: the /email request, error codes, basic-auth webhooks, events, inbound."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Attachment,
    Channel,
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
    SendResult,
    SkipReason,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import Provider
from anysend.providers.postmark import (
    BOUNCE_TYPES,
    CONTACT_INVALID_TYPES,
    ERROR_CODES,
    MAX_ATTACHMENT_BYTES,
    MESSAGE_ID_KEY,
    REASONS,
    Postmark,
    basic_auth,
)
from anysend.testing import MemoryProvider, VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "postmark"
TOKEN = "pm-server-token-3f9a0c7e-51d2"
HOOK_USER = "postmark-hooks"
HOOK_PASSWORD = "hook-pass-7Qm2xK9vLd"
HOOK_URL = "https://app.example.com/hooks/postmark"
API_URL = "https://api.postmarkapp.com/email"
MESSAGE_ID = "0f7d2c1e-0000-4000-8000-0000000000aa"
SENDER = "Shop <shop@example.com>"
OK = {
    "To": "ann@example.com",
    "SubmittedAt": "2026-11-20T08:00:00Z",
    "MessageID": MESSAGE_ID,
    "ErrorCode": 0,
    "Message": "OK",
}


def make_postmark(**overrides: Any) -> Postmark:
    """A Postmark adapter with test credentials."""
    options: dict[str, Any] = {
        "server_token": TOKEN,
        "sender": SENDER,
        "webhook_username": HOOK_USER,
        "webhook_password": HOOK_PASSWORD,
    }
    options.update(overrides)
    return Postmark(**options)


def fixture(name: str) -> bytes:
    """A callback body, byte for byte."""
    return (FIXTURES / name).read_bytes()


def callback(
    body: bytes | dict[str, Any], *, user: str = HOOK_USER, password: str = HOOK_PASSWORD
) -> WebhookRequest:
    """A Postmark POST with basic-auth credentials, as Postmark sends for a URL with userinfo."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": basic_auth(user, password)}
    return WebhookRequest(url=HOOK_URL, headers=headers, body=raw)


def record(name: str, **changes: Any) -> dict[str, Any]:
    """A fixture record as a dict, with ``changes`` applied."""
    data: dict[str, Any] = json.loads(fixture(name))
    data.update(changes)
    return data


def outbound(**fields: Any) -> OutboundMessage:
    """An email as the client hands it to the adapter."""
    fields.setdefault("text", "Hello")
    return OutboundMessage(id="msg-1", channel=Channel.EMAIL, to="ann@example.com", **fields)


def sent_json(route: respx.Route) -> Any:
    """The JSON body of the last request a route received."""
    return json.loads(route.calls.last.request.content)


def send(message: Message, answer: httpx.Response, **settings: Any) -> tuple[SendResult, Any]:
    """Send ``message`` to Ann through the sync client (no retries); the result and the body."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(API_URL).mock(return_value=answer)
        retry = RetryPolicy(max_attempts=1)
        with anysend.Client([make_postmark(**settings)], clock=VirtualClock(), retry=retry) as c:
            result = c.send(message, to=Recipient(email="ann@example.com", name="Ann Example"))
        body = sent_json(route) if route.called else None
    return result, body


def only(events: list[DeliveryEvent | InboundMessage]) -> DeliveryEvent:
    """The one DeliveryEvent of a callback."""
    assert len(events) == 1
    assert isinstance(events[0], DeliveryEvent)
    return events[0]


# -- the contract kit ------------------------------------------------------------------------------


class TestPostmarkContract(ProviderContract):
    """The contract kit run against the Postmark adapter."""

    expected_provider_message_id = MESSAGE_ID
    signature_headers: tuple[str, ...] = ("Authorization",)
    unknown_raw_status = "Teleported"

    def make_provider(self) -> Provider:
        """Postmark with test credentials."""
        return make_postmark()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Postmark accepts the message."""
        return httpx.Response(200, json=OK, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Postmark's own error codes and statuses."""

        def case(
            name: str, status: int, code: int, category: ErrorCategory, **kw: Any
        ) -> ErrorCase:
            body = {"ErrorCode": code, "Message": f"{name} happened"}
            return ErrorCase(
                name=name,
                status=status,
                body=body,
                category=category,
                retryable=category.retryable,
                **kw,
            )

        return [
            case("bad token", 401, 10, ErrorCategory.AUTH),
            case("invalid request", 422, 300, ErrorCategory.CONTENT_REJECTED),
            case("no sender signature", 422, 400, ErrorCategory.CONFIGURATION),
            case("out of credits", 422, 405, ErrorCategory.QUOTA),
            case("inactive recipient", 422, 406, ErrorCategory.OPTED_OUT),
            case("forbidden attachment", 422, 411, ErrorCategory.CONTENT_REJECTED),
            case("no such stream", 422, 1235, ErrorCategory.CONFIGURATION),
            case(
                "rate limited",
                429,
                429,
                ErrorCategory.RATE_LIMITED,
                headers={"Retry-After": "4"},
                retry_after=4.0,
            ),
            case("maintenance", 503, 100, ErrorCategory.UNAVAILABLE),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A genuine delivery webhook with the right credentials."""
        return callback(fixture("delivery.json"))

    def forged_webhook(self) -> WebhookRequest | None:
        """Basic auth does not cover the body: nothing to forge."""
        return None

    def wrong_secret_webhook(self) -> WebhookRequest:
        """A delivery webhook with another password."""
        return callback(fixture("delivery.json"), password="not-the-password")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A record type the adapter does not know."""
        return callback(record("delivery.json", RecordType="Teleported"))

    def inbound_webhook(self) -> WebhookRequest:
        """A genuine inbound email."""
        return callback(fixture("inbound.json"))


# -- the request -----------------------------------------------------------------------------------


def test_full_message_request_is_exactly_as_documented() -> None:
    """Every field goes where Postmark's /email documents it, with the token header."""
    message = Message(
        subject="Your order",
        text="Thanks",
        html='<p>Thanks <img src="cid:logo"></p>',
        sender="Orders <orders@example.com>",
        cc=("boss@example.com",),
        bcc=("audit@example.com",),
        reply_to=("help@example.com", "sales@example.com"),
        headers={"X-Order": "1042"},
        attachments=(
            Attachment(filename="invoice.pdf", content=b"%PDF-1.4"),
            Attachment(filename="logo.png", content=b"\x89PNG", inline=True, content_id="logo"),
        ),
        metadata={"order": "1042"},
        tags=("order", "vip"),
    )
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(API_URL).mock(return_value=httpx.Response(200, json=OK))
        with anysend.Client([make_postmark()], clock=VirtualClock()) as client:
            result = client.send(message, to=Recipient(email="ann@example.com", name="Ann Example"))
    assert (result.status, result.provider, result.provider_message_id) == (
        DeliveryStatus.ACCEPTED,
        "postmark",
        MESSAGE_ID,
    )
    assert result.receipt is not None
    assert result.receipt.raw == OK
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == API_URL
    assert request.headers["X-Postmark-Server-Token"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert "Idempotency-Key" not in request.headers
    assert sent_json(route) == {
        "From": "Orders <orders@example.com>",
        "To": "Ann Example <ann@example.com>",
        "Cc": "boss@example.com",
        "Bcc": "audit@example.com",
        "ReplyTo": "help@example.com, sales@example.com",
        "Subject": "Your order",
        "TextBody": "Thanks",
        "HtmlBody": '<p>Thanks <img src="cid:logo"></p>',
        "Headers": [{"Name": "X-Order", "Value": "1042"}],
        "Attachments": [
            {"Name": "invoice.pdf", "Content": "JVBERi0xLjQ=", "ContentType": "application/pdf"},
            {
                "Name": "logo.png",
                "Content": "iVBORw==",
                "ContentType": "image/png",
                "ContentID": "cid:logo",
            },
        ],
        "Tag": "order",
        "Metadata": {"order": "1042", MESSAGE_ID_KEY: result.message_id},
        "MessageStream": "outbound",
    }


def test_minimal_message_sends_only_what_it_has() -> None:
    """A text-only message: the settings' sender, no optional fields, the default stream."""
    request = make_postmark().build_request(outbound())
    assert json.loads(request.content) == {
        "From": SENDER,
        "To": "ann@example.com",
        "TextBody": "Hello",
        "Metadata": {MESSAGE_ID_KEY: "msg-1"},
        "MessageStream": "outbound",
    }


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_sends_the_same_request(respx_mock: respx.MockRouter) -> None:
    """AsyncClient drives the same sans-I/O adapter and reads the MessageID."""
    route = respx_mock.post(API_URL).mock(return_value=httpx.Response(200, json=OK))
    async with anysend.AsyncClient([make_postmark()], clock=VirtualClock()) as client:
        result = await client.send(
            Message(subject="Hi", html="<b>Hi</b>"), to={"email": "ann@example.com"}
        )
    assert (result.ok, result.provider_message_id) == (True, MESSAGE_ID)
    body = sent_json(route)
    assert (body["HtmlBody"], body["Subject"]) == ("<b>Hi</b>", "Hi")
    assert route.calls.last.request.headers["X-Postmark-Server-Token"] == TOKEN


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ann Example", "Ann Example <ann@example.com>"),
        ("Joe Sender, jr", '"Joe Sender, jr" <ann@example.com>'),
        ('Ann "The Boss" Ex', '"Ann \\"The Boss\\" Ex" <ann@example.com>'),
        ("Zoë Żółć", "Zoë Żółć <ann@example.com>"),
    ],
)
def test_recipient_name_is_quoted_when_needed(name: str, expected: str) -> None:
    """Names with punctuation are quote-escaped, as Postmark's ErrorCode 300 article asks."""
    message = outbound(recipient=Recipient(email="ann@example.com", name=name))
    assert json.loads(make_postmark().build_request(message).content)["To"] == expected


def test_international_domain_goes_as_idna() -> None:
    """A non-ASCII domain is sent in its ASCII form (Postmark's domain check is ASCII)."""
    message = outbound().model_copy(update={"to": "ann@bücher.example"})
    assert json.loads(make_postmark().build_request(message).content)["To"] == (
        "ann@xn--bcher-kva.example"
    )


def test_marketing_goes_to_the_broadcast_stream() -> None:
    """category="marketing" uses broadcast_stream, where Postmark manages unsubscribes."""
    result, body = send(
        Message(text="Sale!", category="marketing"),
        httpx.Response(200, json=OK),
        broadcast_stream="newsletters",
    )
    assert result.ok
    assert body["MessageStream"] == "newsletters"
    assert "Headers" not in body


def test_unsubscribe_url_becomes_rfc8058_headers() -> None:
    """unsubscribe_url gives List-Unsubscribe and List-Unsubscribe-Post, after custom headers."""
    message = outbound(unsubscribe_url="https://shop.example/u/42", headers={"X-A": "1"})
    body = json.loads(make_postmark().build_request(message).content)
    assert body["Headers"] == [
        {"Name": "X-A", "Value": "1"},
        {"Name": "List-Unsubscribe", "Value": "<https://shop.example/u/42>"},
        {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
    ]


def test_provider_options_merge_into_the_body() -> None:
    """TrackOpens, TrackLinks and MessageStream pass through; Metadata merges, our id wins."""
    options = {
        "TrackOpens": True,
        "TrackLinks": "HtmlAndText",
        "MessageStream": "receipts",
        "Metadata": {"campaign": "c-7", MESSAGE_ID_KEY: "forged"},
    }
    message = Message(text="Hi", metadata={"order": "9"}, provider_options={"postmark": options})
    result, body = send(message, httpx.Response(200, json=OK))
    assert (body["TrackOpens"], body["TrackLinks"], body["MessageStream"]) == (
        True,
        "HtmlAndText",
        "receipts",
    )
    assert body["Metadata"] == {"campaign": "c-7", "order": "9", MESSAGE_ID_KEY: result.message_id}


def test_marketing_on_the_transactional_stream_needs_an_unsubscribe_url() -> None:
    """Forced onto the transactional stream, marketing without unsubscribe_url is refused."""
    options = {"postmark": {"MessageStream": "outbound"}}
    result, body = send(
        Message(text="Sale!", category="marketing", provider_options=options),
        httpx.Response(200, json=OK),
    )
    assert body is None
    assert result.error is not None
    assert result.error.category is ErrorCategory.CONTENT_REJECTED
    assert "unsubscribe_url" in result.error.message


@pytest.mark.parametrize(
    ("message", "category", "words"),
    [
        (
            Message(attachments=(Attachment(filename="a.txt", content=b"x"),)),
            ErrorCategory.CONTENT_REJECTED,
            "text or HTML body",
        ),
        (
            Message(text="x", cc=tuple(f"c{i}@example.com" for i in range(50))),
            ErrorCategory.CONTENT_REJECTED,
            "50 recipients",
        ),
        (
            Message(text="x", headers={"Subject": "sneaky"}),
            ErrorCategory.CONTENT_REJECTED,
            "set by anysend",
        ),
        (
            Message(text="x", provider_options={"postmark": {"TrackLinks": "Always"}}),
            ErrorCategory.CONTENT_REJECTED,
            "TrackLinks",
        ),
        (
            Message(text="x", provider_options={"postmark": {"TrackOpens": "yes"}}),
            ErrorCategory.CONTENT_REJECTED,
            "TrackOpens",
        ),
        (
            Message(
                html="<img src='cid:my logo'>",
                attachments=(
                    Attachment(filename="l.png", content=b"x", inline=True, content_id="my logo"),
                ),
            ),
            ErrorCategory.CONTENT_REJECTED,
            "ASCII without spaces",
        ),
    ],
)
def test_messages_postmark_would_refuse_fail_before_any_request(
    message: Message, category: ErrorCategory, words: str
) -> None:
    """Rules Postmark documents are checked locally: no request, a clear content error."""
    result, body = send(message, httpx.Response(200, json=OK))
    assert body is None
    assert result.error is not None
    assert (result.error.category, words in result.error.message) == (category, True)


def test_without_a_sender_the_attempt_is_a_configuration_error() -> None:
    """No Message.sender and no sender setting: configuration, nothing sent."""
    result, body = send(Message(text="x"), httpx.Response(200, json=OK), sender=None)
    assert body is None
    assert result.error is not None
    assert result.error.category is ErrorCategory.CONFIGURATION


def test_send_at_is_unsupported() -> None:
    """Postmark cannot schedule: the provider is skipped with unsupported."""
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    result, body = send(Message(text="x", send_at=later), httpx.Response(200, json=OK))
    assert body is None
    assert result.attempts[0].skip_reason is SkipReason.UNSUPPORTED


def test_attachments_over_the_limit_are_payload_too_large() -> None:
    """More than MAX_ATTACHMENT_BYTES (10 MB once base64-encoded) fails before sending."""
    big = Attachment(filename="big.bin", content=b"\0" * (MAX_ATTACHMENT_BYTES + 1))
    result, body = send(Message(text="x", attachments=(big,)), httpx.Response(200, json=OK))
    assert body is None
    assert result.error is not None
    assert result.error.category is ErrorCategory.PAYLOAD_TOO_LARGE


# -- answers and errors ----------------------------------------------------------------------------


def error_for(status: int, body: Any, headers: dict[str, str] | None = None) -> ProviderError:
    """The ProviderError the adapter raises for one answer."""
    response = httpx.Response(status, json=body, headers=headers)
    with pytest.raises(ProviderError) as caught:
        make_postmark().parse_response(response, outbound())
    return caught.value


@pytest.mark.parametrize(("code", "category"), sorted(ERROR_CODES.items()))
def test_every_documented_error_code_maps_to_its_category(
    code: int, category: ErrorCategory
) -> None:
    """A 422 with each ErrorCode gets its category, retry flag and the code as a string."""
    error = error_for(422, {"ErrorCode": code, "Message": "nope"})
    assert (error.category, error.retryable, error.code) == (
        category,
        category.retryable,
        str(code),
    )
    assert (error.provider, error.status_code) == ("postmark", 422)
    assert error.message == "postmark refused the message: nope"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Invalid 'To' address: 'ann@'.", ErrorCategory.INVALID_RECIPIENT),
        (
            "Error parsing 'Cc': Illegal email domain 'x' in address 'a@x'.",
            ErrorCategory.INVALID_RECIPIENT,
        ),
        (
            "Error parsing 'Bcc': Illegal email address 'b'. It must contain the '@' symbol.",
            ErrorCategory.INVALID_RECIPIENT,
        ),
        ("Invalid 'From' address: 'shop'.", ErrorCategory.CONFIGURATION),
        ("Error parsing 'Reply-To': Illegal email domain 'x'.", ErrorCategory.CONTENT_REJECTED),
        ("Provide either email TextBody or HtmlBody or both.", ErrorCategory.CONTENT_REJECTED),
    ],
)
def test_error_300_is_refined_by_the_field_it_names(text: str, category: ErrorCategory) -> None:
    """Invalid email request: a bad To/Cc/Bcc is the recipient's, a bad From is ours."""
    assert error_for(422, {"ErrorCode": 300, "Message": text}).category is category


def test_inactive_recipient_is_opted_out_and_never_retried() -> None:
    """ErrorCode 406 (hard bounce, complaint or suppression): recipient-scoped, not retried."""
    error = error_for(
        422,
        {
            "ErrorCode": 406,
            "Message": "You tried to send to recipient(s) "
            "that have been marked as inactive. Found inactive addresses: "
            "ann@example.com.",
        },
    )
    assert (error.category, error.retryable, error.category.scope) == (
        ErrorCategory.OPTED_OUT,
        False,
        "recipient",
    )
    assert isinstance(error.raw, dict)
    assert error.raw["ErrorCode"] == 406


@pytest.mark.parametrize(
    ("status", "body", "headers", "category", "retry_after"),
    [
        (500, {"ErrorCode": 500, "Message": "Internal"}, None, ErrorCategory.UNAVAILABLE, None),
        (503, {"ErrorCode": 503, "Message": "Busy"}, None, ErrorCategory.UNAVAILABLE, None),
        (
            413,
            {"ErrorCode": 413, "Message": "Too big"},
            None,
            ErrorCategory.PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            429,
            {"ErrorCode": 0, "Message": "Slow down"},
            {"Retry-After": "12"},
            ErrorCategory.RATE_LIMITED,
            12.0,
        ),
        (401, {}, None, ErrorCategory.AUTH, None),
        (422, {"ErrorCode": 9999, "Message": "new"}, None, ErrorCategory.UNKNOWN, None),
        (200, {"ErrorCode": 406, "Message": "inactive"}, None, ErrorCategory.OPTED_OUT, None),
    ],
)
def test_http_status_decides_where_the_error_code_cannot(
    status: int,
    body: Any,
    headers: dict[str, str] | None,
    category: ErrorCategory,
    retry_after: float | None,
) -> None:
    """5xx, 413 and 429 follow the HTTP status (ErrorCode 500/503/413 mean other things)."""
    error = error_for(status, body, headers)
    assert (error.category, error.retry_after) == (category, retry_after)


def test_partial_inactive_answer_is_still_accepted() -> None:
    """200 "Message OK, but will not deliver to these inactive addresses" is a receipt."""
    body = dict(
        OK,
        Message="Message OK, but will not deliver to these inactive addresses: "
        "boss@example.com. Inactive recipients are ones that have generated a hard "
        "bounce or a spam complaint.",
    )
    receipt = make_postmark().parse_response(httpx.Response(200, json=body), outbound())
    assert (receipt.provider_message_id, receipt.status, receipt.raw) == (
        MESSAGE_ID,
        DeliveryStatus.ACCEPTED,
        body,
    )


def test_inactive_recipient_moves_on_to_the_next_channel() -> None:
    """Through the client, a 406 fails email at once (no retry) and SMS takes the message."""
    sms = MemoryProvider(channels={"sms"})
    answer = httpx.Response(422, json={"ErrorCode": 406, "Message": "inactive"})
    with respx.mock() as mock:
        route = mock.post(API_URL).mock(return_value=answer)
        with anysend.Client([make_postmark(), sms], clock=VirtualClock()) as client:
            result = client.send(
                Message(text="x"),
                to=Recipient(email="ann@example.com", phone="+48600700800"),
                via=["email", "sms"],
            )
    assert route.call_count == 1
    email, text = result.attempts
    assert email.error is not None
    assert (email.error.category, email.error.code) == (ErrorCategory.OPTED_OUT, "406")
    assert (result.ok, result.channel, text.provider) == (True, Channel.SMS, sms.name)


# -- callbacks: verification -----------------------------------------------------------------------


def test_basic_auth_helper_matches_rfc7617_vector() -> None:
    """RFC 7617's example: Aladdin / open sesame."""
    assert basic_auth("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def test_genuine_credentials_are_accepted_case_insensitively() -> None:
    """The scheme name is case-insensitive; the credentials are checked exactly."""
    token = base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    request = WebhookRequest(
        url=HOOK_URL, headers={"authorization": f"BASIC {token}"}, body=fixture("delivery.json")
    )
    make_postmark().verify_webhook(request)


def test_password_with_colons_and_unicode_verifies() -> None:
    """Only the first colon separates user and password; the password is UTF-8."""
    postmark = make_postmark(webhook_password="p:ä:ss")
    postmark.verify_webhook(callback(fixture("delivery.json"), password="p:ä:ss"))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic",
        "Basic !!!not-base64!!!",
        f"Bearer {base64.b64encode(f'{HOOK_USER}:{HOOK_PASSWORD}'.encode()).decode()}",
        basic_auth("someone-else", HOOK_PASSWORD),
        basic_auth(HOOK_USER, HOOK_PASSWORD + "x"),
        basic_auth(HOOK_USER, ""),
        "Basic " + base64.b64encode(HOOK_USER.encode()).decode(),
    ],
)
def test_missing_or_wrong_credentials_are_rejected(authorization: str | None) -> None:
    """No header, another scheme, bad base64, wrong user or password: verification fails."""
    headers = {} if authorization is None else {"Authorization": authorization}
    request = WebhookRequest(url=HOOK_URL, headers=headers, body=fixture("delivery.json"))
    postmark = make_postmark()
    with pytest.raises(WebhookVerificationError) as caught:
        postmark.parse_webhook(request)
    assert HOOK_PASSWORD not in str(caught.value)


def test_without_configured_credentials_every_callback_is_refused() -> None:
    """Postmark signs nothing, so an adapter without credentials trusts no callback."""
    postmark = Postmark(server_token=TOKEN)
    with pytest.raises(WebhookVerificationError, match="signs nothing"):
        postmark.verify_webhook(callback(fixture("delivery.json")))


@pytest.mark.parametrize(
    "settings",
    [
        {"webhook_username": "u"},
        {"webhook_password": "p"},
        {"webhook_username": "u:x", "webhook_password": "p"},
        {"webhook_username": "", "webhook_password": "p"},
        {"webhook_username": "u", "webhook_password": ""},
        {"server_token": " "},
        {"sender": "a@example.com\r\nBcc: x@example.com"},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any]) -> None:
    """Credentials come in pairs, a user name has no colon, nothing is empty or has CR/LF."""
    options = {"server_token": TOKEN, **settings}
    with pytest.raises(anysend.ConfigurationError) as caught:
        Postmark(**options)
    assert TOKEN not in str(caught.value)


def test_url_form_puts_the_token_in_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """postmark://:TOKEN@default?from=... builds the adapter; to_url hides the secrets."""
    from anysend.providers import _config, from_url, to_url

    real = _config.load
    monkeypatch.setattr(_config, "load", lambda n: Postmark if n == "postmark" else real(n))
    built = from_url(
        f"postmark://:{TOKEN}@default?from=shop@example.com"
        f"&webhook_username={HOOK_USER}&webhook_password={HOOK_PASSWORD}"
    )
    assert isinstance(built, Postmark)
    assert built.settings.server_token.get_secret_value() == TOKEN
    assert (built.settings.sender, built.settings.webhook_username) == (
        "shop@example.com",
        HOOK_USER,
    )
    shown = to_url(built)
    assert TOKEN not in shown
    assert HOOK_PASSWORD not in shown


# -- callbacks: events -----------------------------------------------------------------------------


def test_delivery_is_delivered_with_time_recipient_and_details() -> None:
    """Delivery -> delivered, at DeliveredAt, for Recipient, matched by MessageID."""
    event = only(make_postmark().parse_webhook(callback(fixture("delivery.json"))))
    assert (event.status, event.event, event.raw_status) == (
        DeliveryStatus.DELIVERED,
        None,
        "Delivery",
    )
    assert event.provider_message_id == "0f7d2c1e-0000-4000-8000-00000000e001"
    assert (event.recipient, event.channel) == ("ann@example.net", Channel.EMAIL)
    assert event.occurred_at is not None
    assert event.occurred_at.isoformat() == ("2026-11-20T08:00:04+00:00")
    assert event.description is not None
    assert event.description.startswith("smtp;250")
    assert event.raw == json.loads(fixture("delivery.json"))
    assert event.event_id is not None
    assert event.event_id.startswith("Delivery:")


def test_our_message_id_comes_back_from_metadata() -> None:
    """The anysend_message_id metadata key sets DeliveryEvent.message_id."""
    data = record("open.json", Metadata={"order": "1", MESSAGE_ID_KEY: "msg-77"})
    assert only(make_postmark().parse_webhook(callback(data))).message_id == "msg-77"


def test_event_ids_are_stable_for_retried_callbacks() -> None:
    """The same record posted twice (Postmark retries) has the same event_id; others differ."""
    postmark = make_postmark()
    first = only(postmark.parse_webhook(callback(fixture("open.json"))))
    again = only(postmark.parse_webhook(callback(fixture("open.json"))))
    other = only(
        postmark.parse_webhook(callback(record("open.json", ReceivedAt="2026-11-21T00:00:00Z")))
    )
    assert first.event_id == again.event_id != other.event_id


def test_hard_bounce_is_undeliverable_and_the_contact_invalid() -> None:
    """HardBounce -> undeliverable (unknown_recipient) plus contact_invalid, ids from ID."""
    status, contact = make_postmark().parse_webhook(callback(fixture("bounce_hard.json")))
    assert isinstance(status, DeliveryEvent)
    assert isinstance(contact, DeliveryEvent)
    assert (status.status, status.reason, status.raw_status) == (
        DeliveryStatus.UNDELIVERABLE,
        Reason.UNKNOWN_RECIPIENT,
        "HardBounce",
    )
    assert (contact.event, contact.reason) == (EventType.CONTACT_INVALID, Reason.UNKNOWN_RECIPIENT)
    assert status.event_id == "bounce:4323372036854775002"
    assert contact.event_id == "bounce:4323372036854775002:contact"
    assert status.recipient == contact.recipient == "nobody@example.net"
    assert status.occurred_at is not None
    assert status.occurred_at.isoformat() == "2026-11-20T08:05:00.123456+00:00"
    assert status.description is not None
    assert "unable to deliver" in status.description


def test_soft_bounce_is_deferred() -> None:
    """SoftBounce is temporary: deferred, recipient_unreachable, no contact_invalid."""
    event = only(make_postmark().parse_webhook(callback(fixture("bounce_soft.json"))))
    assert (event.status, event.reason, event.raw_status) == (
        DeliveryStatus.DEFERRED,
        Reason.RECIPIENT_UNREACHABLE,
        "SoftBounce",
    )


@pytest.mark.parametrize("kind", sorted(BOUNCE_TYPES))
def test_every_bounce_type_maps_as_the_table_says(kind: str) -> None:
    """Each documented bounce Type gives its status or event and reason, raw Type kept."""
    events = make_postmark().parse_webhook(callback(record("bounce_hard.json", Type=kind)))
    first = events[0]
    assert isinstance(first, DeliveryEvent)
    meaning = BOUNCE_TYPES[kind]
    assert (first.status or first.event) is meaning
    assert (first.reason, first.raw_status) == (REASONS.get(kind), kind)
    assert len(events) == (2 if kind in CONTACT_INVALID_TYPES else 1)


def test_unknown_bounce_type_is_unknown_with_the_raw_type_kept() -> None:
    """A bounce Type Postmark may add later: status unknown, raw Type kept, no exception."""
    event = only(
        make_postmark().parse_webhook(callback(record("bounce_hard.json", Type="Quantum")))
    )
    assert (event.status, event.raw_status, event.reason) == (
        DeliveryStatus.UNKNOWN,
        "Quantum",
        None,
    )


@pytest.mark.parametrize(
    ("name", "event", "description"),
    [
        ("open.json", EventType.OPENED, None),
        ("click.json", EventType.CLICKED, "https://shop.example/cart"),
        ("spam_complaint.json", EventType.COMPLAINED, "Test spam complaint details"),
    ],
)
def test_engagement_records_are_events(
    name: str, event: EventType, description: str | None
) -> None:
    """Open, Click and SpamComplaint are events; a click's description is the link."""
    parsed = only(make_postmark().parse_webhook(callback(fixture(name))))
    assert (parsed.event, parsed.status, parsed.description) == (event, None, description)
    assert parsed.occurred_at is not None
    assert parsed.recipient


def test_unsubscribe_is_opted_out() -> None:
    """SubscriptionChange with SuppressSending true (ManualSuppression) -> opted_out."""
    event = only(
        make_postmark().parse_webhook(callback(fixture("subscription_change_unsubscribe.json")))
    )
    assert (event.event, event.reason, event.raw_status) == (
        EventType.OPTED_OUT,
        Reason.OPTED_OUT,
        "SubscriptionChange",
    )
    assert (event.recipient, event.occurred_at is not None) == ("eve@example.org", True)


def test_reactivation_is_opted_in() -> None:
    """SubscriptionChange with SuppressSending false -> opted_in."""
    event = only(
        make_postmark().parse_webhook(callback(fixture("subscription_change_reactivate.json")))
    )
    assert (event.event, event.reason) == (EventType.OPTED_IN, None)


@pytest.mark.parametrize(
    ("why", "event", "reason"),
    [
        ("HardBounce", EventType.CONTACT_INVALID, Reason.SUPPRESSED_BOUNCE),
        ("SpamComplaint", EventType.OPTED_OUT, Reason.SUPPRESSED_COMPLAINT),
        ("SomethingNew", EventType.OPTED_OUT, Reason.OTHER),
    ],
)
def test_suppression_reason_refines_the_event(why: str, event: EventType, reason: Reason) -> None:
    """A hard-bounce suppression is a dead contact, not an opt-out; unknown reasons are other."""
    data = record("subscription_change_unsubscribe.json", SuppressionReason=why)
    parsed = only(make_postmark().parse_webhook(callback(data)))
    assert (parsed.event, parsed.reason) == (event, reason)


def test_inbound_email_becomes_an_inbound_message() -> None:
    """Postmark's inbound post: sender, our address, the stripped reply, subject, attachments."""
    [message] = make_postmark().parse_webhook(callback(fixture("inbound.json")))
    assert isinstance(message, InboundMessage)
    assert (message.provider, message.channel, message.sender) == (
        "postmark",
        Channel.EMAIL,
        "ann@example.net",
    )
    assert message.recipient == "support+order-4521@inbound.example.com"
    assert (message.text, message.subject) == (
        "Is the blue one still in stock?",
        "Re: Your cart is waiting",
    )
    assert message.provider_message_id == "0f7d2c1e-0000-4000-8000-00000000e101"
    assert message.received_at is not None
    assert message.received_at.isoformat() == "2026-11-20T10:15:00+01:00"
    assert [(m.filename, m.content_type) for m in message.media] == [("photo.png", "image/png")]
    assert message.raw["Attachments"][0]["Content"] == "iVBORw0KGgo="


def test_inbound_without_a_stripped_reply_uses_the_text_body() -> None:
    """A fresh email (not a reply) keeps its TextBody; FromFull missing falls back to From."""
    data = record("inbound.json", StrippedTextReply="", FromFull=None, Date="not a date")
    [message] = make_postmark().parse_webhook(callback(data))
    assert isinstance(message, InboundMessage)
    assert message.text is not None
    assert message.text.startswith("Is the blue one")
    assert (message.sender, message.received_at) == ("ann@example.net", None)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"RecordType": 7}',
        b'{"RecordType": "Bounce"}',
        b'{"RecordType": "SubscriptionChange", "SuppressSending": "yes"}',
        b'{"FromFull": {"Email": 3}}',
        b'{"Subject": "no sender"}',
        b"\xff",
    ],
)
def test_malformed_records_raise_only_parse_errors(body: bytes) -> None:
    """Bodies Postmark never sends give WebhookParseError, nothing else."""
    with pytest.raises(WebhookParseError):
        make_postmark().parse_webhook(callback(body), verify=False)


FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A fixture body with bytes flipped or cut, or with one field's value replaced."""
    body = fixture(draw(st.sampled_from(FIXTURE_NAMES)))
    if draw(st.booleans()):
        data = json.loads(body)
        key = draw(st.sampled_from(sorted(data)) | st.text(max_size=12))
        data[key] = draw(JSON_VALUES)
        return json.dumps(data).encode()
    raw = bytearray(body)
    for index, value in draw(
        st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4)
    ):
        raw[index] = value
    return bytes(raw[: draw(st.integers(0, len(raw)))])


@settings(max_examples=100, deadline=None)
@given(body=mutated_bodies())
def test_mutated_fixtures_raise_only_our_errors(body: bytes) -> None:
    """Whatever a mutated body holds, parsing gives events or WebhookParseError only."""
    try:
        events = make_postmark().parse_webhook(callback(body), verify=False)
    except WebhookParseError:
        return
    for item in events:
        assert isinstance(item, (DeliveryEvent, InboundMessage))
        assert item.provider == "postmark"
