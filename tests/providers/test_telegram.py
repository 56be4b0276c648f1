"""The Telegram adapter: sendMessage and uploads, error descriptions, secret-token updates."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from email.message import Message as MimeMessage
from email.parser import BytesParser
from email.policy import HTTP
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
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InboundMessage,
    Media,
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
from anysend.providers import Provider, _config
from anysend.providers.telegram import (
    CONTACT_INVALID,
    ERROR_CODES,
    EVENT_MAP,
    MAX_PHOTO_BYTES,
    REASONS,
    SECRET_HEADER,
    Telegram,
    TelegramSettings,
    bold,
    escape_markdown_v2,
    visible_length,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract
from tests.strategies import edited_bytes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
TOKEN = "7000000001:AAFixture-token_not-a-real-one-000000"
SECRET = "hook-secret_3f9a0c7e-51d2"
HOOK_URL = "https://app.example.com/hooks/telegram"
API = f"https://api.telegram.org/bot{TOKEN}"
CHAT = "1111111"
UPDATE_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))


def make(**overrides: Any) -> Telegram:
    """A Telegram adapter with the test token and webhook secret."""
    options: dict[str, Any] = {"bot_token": TOKEN, "secret_token": SECRET}
    options.update(overrides)
    return Telegram(**options)


def fixture(name: str) -> bytes:
    """An update body, byte for byte."""
    return (FIXTURES / name).read_bytes()


def update(body: bytes | dict[str, Any], *, secret: str | None = SECRET) -> WebhookRequest:
    """A webhook POST as Telegram sends it, with the secret-token header unless ``None``."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return WebhookRequest(url=HOOK_URL, headers=headers, body=raw)


def sent(chat_id: int = 1111111, message_id: int = 1366, **result: Any) -> dict[str, Any]:
    """Telegram's answer to a successful send."""
    message = {
        "message_id": message_id,
        "from": {"id": 7000000001, "is_bot": True, "first_name": "Fixture Bot"},
        "chat": {"id": chat_id, "first_name": "Test Firstname", "type": "private"},
        "date": 1795161600,
        **result,
    }
    return {"ok": True, "result": message}


def failure(status: int, description: str, **parameters: Any) -> httpx.Response:
    """Telegram's answer to a failed call (the HTTP status equals error_code)."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return httpx.Response(status, json=body)


def outbound(**fields: Any) -> OutboundMessage:
    """A Telegram message as the client hands it to the adapter."""
    fields.setdefault("text", "Hello")
    fields.setdefault("to", CHAT)
    return OutboundMessage(id="msg-1", channel=Channel.TELEGRAM, **fields)


def send(
    message: Message, answer: httpx.Response, *, method: str = "sendMessage", **settings_: Any
) -> tuple[SendResult, respx.Route]:
    """Send ``message`` to the test chat through the sync client, without retries."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(f"{API}/{method}").mock(return_value=answer)
        retry = RetryPolicy(max_attempts=1)
        with anysend.Client([make(**settings_)], clock=VirtualClock(), retry=retry) as client:
            result = client.send(message, to={"chat_ids": {"telegram": CHAT}})
    return result, route


def multipart(request: httpx.Request) -> dict[str, MimeMessage]:
    """The parts of a multipart/form-data request, by field name."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    document = BytesParser(policy=HTTP).parsebytes(head + request.content)
    assert document.is_multipart()
    parts: dict[str, MimeMessage] = {}
    for part in document.iter_parts():
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str)
        parts[name] = part
    return parts


def field(part: MimeMessage) -> str:
    """A multipart text field's value."""
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def only(events: list[DeliveryEvent | InboundMessage]) -> DeliveryEvent | InboundMessage:
    """The one event of an update."""
    assert len(events) == 1
    return events[0]


# -- the contract kit ------------------------------------------------------------------------------


class TestTelegramContract(ProviderContract):
    """The contract kit run against the Telegram adapter."""

    expected_provider_message_id = "123456:1366"
    signature_headers: tuple[str, ...] = (SECRET_HEADER,)
    unknown_raw_status = "teleported"

    def make_provider(self) -> Provider:
        """Telegram with the test token and secret."""
        return make()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Telegram's ok answer with the sent message."""
        return httpx.Response(200, json=sent(chat_id=123456), request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Telegram's own error answers."""

        def case(status: int, description: str, category: ErrorCategory, **kw: Any) -> ErrorCase:
            body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
            if "parameters" in kw:
                body["parameters"] = kw.pop("parameters")
            return ErrorCase(
                name=description,
                status=status,
                body=body,
                category=category,
                retryable=category.retryable,
                **kw,
            )

        return [
            case(403, "Forbidden: bot was blocked by the user", ErrorCategory.OPTED_OUT),
            case(403, "Forbidden: user is deactivated", ErrorCategory.INVALID_RECIPIENT),
            case(400, "Bad Request: chat not found", ErrorCategory.INVALID_RECIPIENT),
            case(400, "Bad Request: message is too long", ErrorCategory.PAYLOAD_TOO_LARGE),
            case(400, "Bad Request: can't parse entities: x", ErrorCategory.CONTENT_REJECTED),
            case(401, "Unauthorized", ErrorCategory.AUTH),
            case(404, "Not Found", ErrorCategory.AUTH),
            case(
                429,
                "Too Many Requests: retry after 5",
                ErrorCategory.RATE_LIMITED,
                parameters={"retry_after": 5},
                retry_after=5.0,
            ),
            case(502, "Bad Gateway", ErrorCategory.UNAVAILABLE),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A genuine update with the right secret token."""
        return update(fixture("my_chat_member_kicked.json"))

    def forged_webhook(self) -> WebhookRequest | None:
        """The secret token does not cover the body: nothing to forge."""
        return None

    def wrong_secret_webhook(self) -> WebhookRequest:
        """An update with another secret token."""
        return update(fixture("my_chat_member_kicked.json"), secret="not-the-secret")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A my_chat_member update with a status the adapter does not know."""
        data = json.loads(fixture("my_chat_member_kicked.json"))
        data["my_chat_member"]["new_chat_member"]["status"] = "teleported"
        return update(data)

    def inbound_webhook(self) -> WebhookRequest:
        """A genuine text message."""
        return update(fixture("message_text.json"))


# -- sendMessage -----------------------------------------------------------------------------------


def test_send_message_request_is_exactly_as_documented() -> None:
    """One JSON POST to /bot<token>/sendMessage; the receipt is sent, id chat:message."""
    result, route = send(Message(text="Your order shipped"), httpx.Response(200, json=sent()))
    assert result.ok, result.attempts
    assert (result.status, result.provider, result.provider_message_id) == (
        DeliveryStatus.SENT,
        "telegram",
        "1111111:1366",
    )
    assert result.receipt is not None
    assert result.receipt.raw == sent()
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == f"{API}/sendMessage"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.content == b'{"chat_id":1111111,"text":"Your order shipped"}'


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_sends_the_same_request(respx_mock: respx.MockRouter) -> None:
    """AsyncClient drives the same sans-I/O adapter, with the parse mode and link previews off."""
    route = respx_mock.post(f"{API}/sendMessage").mock(
        return_value=httpx.Response(200, json=sent(chat_id=-1001000000001, message_id=7))
    )
    telegram = make(parse_mode="HTML", disable_web_page_preview=True)
    async with anysend.AsyncClient([telegram], clock=VirtualClock()) as client:
        result = await client.send(
            Message(text="<b>Sale</b> https://shop.example.com"),
            to=Recipient(chat_ids={Channel.TELEGRAM: "@anysend_fixture_channel"}),
        )
    assert (result.ok, result.provider_message_id) == (True, "-1001000000001:7")
    assert json.loads(route.calls.last.request.content) == {
        "chat_id": "@anysend_fixture_channel",
        "text": "<b>Sale</b> https://shop.example.com",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


@pytest.mark.parametrize(
    ("parse_mode", "expected"),
    [
        (None, "Order #1 <shipped> *now*\n\nbody"),
        ("HTML", "<b>Order #1 &lt;shipped&gt; *now*</b>\n\nbody"),
        ("MarkdownV2", "*Order \\#1 <shipped\\> \\*now\\**\n\nbody"),
        ("Markdown", "*Order #1 <shipped> *\\**now*\\*\n\nbody"),
    ],
)
def test_subject_is_a_bold_line_escaped_for_the_parse_mode(
    parse_mode: str | None, expected: str
) -> None:
    """The subject is escaped as the parse mode requires; the text is sent as it is."""
    message = outbound(subject="Order #1 <shipped> *now*", text="body")
    body = json.loads(make(parse_mode=parse_mode).build_request(message).content)
    assert body["text"] == expected
    assert body.get("parse_mode") == parse_mode


def test_subject_alone_is_the_whole_text() -> None:
    """A subject without text is sent as the bold line only."""
    body = json.loads(
        make(parse_mode="HTML").build_request(outbound(subject="Hi", text=None)).content
    )
    assert body["text"] == "<b>Hi</b>"


def test_provider_options_are_merged_and_choose_the_parse_mode() -> None:
    """Options go into the body verbatim; a parse_mode option also decides the escaping."""
    keyboard = {"inline_keyboard": [[{"text": "Track", "url": "https://shop.example.com/t/1"}]]}
    options = {
        "reply_markup": keyboard,
        "disable_notification": True,
        "protect_content": True,
        "message_thread_id": 42,
        "parse_mode": "MarkdownV2",
    }
    message = outbound(subject="Done.", text="ok", provider_options=options)
    body = json.loads(make(parse_mode="HTML").build_request(message).content)
    assert body == {"chat_id": 1111111, "text": "*Done\\.*\n\nok", **options}


def test_link_preview_options_win_over_the_flag() -> None:
    """The whole LinkPreviewOptions object is sent when set, instead of is_disabled."""
    preview = {"url": "https://shop.example.com", "prefer_small_media": True}
    telegram = make(disable_web_page_preview=True, link_preview_options=preview)
    body = json.loads(telegram.build_request(outbound()).content)
    assert body["link_preview_options"] == preview


def test_api_base_points_elsewhere() -> None:
    """A local Bot API server gets the same path."""
    request = make(api_base="http://127.0.0.1:8081/").build_request(outbound())
    assert str(request.url) == f"http://127.0.0.1:8081/bot{TOKEN}/sendMessage"


# -- attachments -----------------------------------------------------------------------------------


def test_one_attachment_goes_as_a_document_with_the_caption() -> None:
    """sendDocument as multipart: chat_id, caption, parse_mode, options, and the file."""
    message = Message(
        subject="Invoice 1042",
        text="Attached.",
        attachments=(Attachment(filename="invoice.pdf", content=b"%PDF-1.4 fake"),),
        provider_options={"telegram": {"reply_markup": {"remove_keyboard": True}}},
    )
    result, route = send(
        message,
        httpx.Response(200, json=sent(document={"file_id": "BQAC", "file_name": "invoice.pdf"})),
        method="sendDocument",
        parse_mode="HTML",
    )
    assert result.ok, result.attempts
    request = route.calls.last.request
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = multipart(request)
    assert set(parts) == {"chat_id", "caption", "parse_mode", "reply_markup", "document"}
    assert field(parts["chat_id"]) == CHAT
    assert field(parts["caption"]) == "Attached."  # the client gives chat apps no subject
    assert field(parts["parse_mode"]) == "HTML"
    assert field(parts["reply_markup"]) == '{"remove_keyboard":true}'
    document = parts["document"]
    assert document.get_filename() == "invoice.pdf"
    assert document.get_content_type() == "application/pdf"
    assert document.get_payload(decode=True) == b"%PDF-1.4 fake"


def test_document_caption_with_a_subject_and_no_parse_mode() -> None:
    """Directly built: the caption carries the plain subject line; no parse_mode field."""
    pdf = Attachment(filename="a.pdf", content=b"%PDF")
    message = outbound(subject="Invoice", text="See file", attachments=(pdf,))
    parts = multipart(make().build_request(message))
    assert field(parts["caption"]) == "Invoice\n\nSee file"
    assert "parse_mode" not in parts


def test_images_go_as_photos_when_asked() -> None:
    """images_as_photos sends a PNG with sendPhoto; a larger or other file stays a document."""
    png = Attachment(filename="chart.png", content=b"\x89PNG fake")
    telegram = make(images_as_photos=True)
    request = telegram.build_request(outbound(attachments=(png,)))
    assert str(request.url) == f"{API}/sendPhoto"
    assert multipart(request)["photo"].get_filename() == "chart.png"
    big = Attachment(filename="big.png", content=b"\0" * (MAX_PHOTO_BYTES + 1))
    assert str(telegram.build_request(outbound(attachments=(big,))).url) == f"{API}/sendDocument"
    assert str(make().build_request(outbound(attachments=(png,))).url) == f"{API}/sendDocument"


def test_two_attachments_or_an_inline_image_are_unsupported() -> None:
    """More than one file, or an inline image, skips the provider with unsupported."""
    files = (Attachment(filename="a.pdf", content=b"1"), Attachment(filename="b.pdf", content=b"2"))
    inline = (Attachment(filename="logo.png", content=b"1", inline=True),)
    for attachments in (files, inline):
        result, route = send(Message(text="x", attachments=attachments), httpx.Response(200))
        assert not route.called
        assert result.attempts[0].skip_reason is SkipReason.UNSUPPORTED


# -- local limits ----------------------------------------------------------------------------------


def test_text_over_4096_characters_fails_before_sending() -> None:
    """4097 characters is payload_too_large with no request; 4096 is sent."""
    result, route = send(Message(text="x" * 4097), httpx.Response(200, json=sent()))
    assert not route.called
    assert result.error is not None
    assert result.error.category is ErrorCategory.PAYLOAD_TOO_LARGE
    ok, _ = send(Message(text="ж" * 4096), httpx.Response(200, json=sent()))
    assert ok.ok


def test_markup_does_not_count_towards_the_limit() -> None:
    """Tags, entities, escapes and link targets are not counted: Telegram counts parsed text."""
    html_text = "<b>" + "a" * 4000 + "</b>" + "&amp;" * 96
    make(parse_mode="HTML").check_supported(outbound(text=html_text))
    link = "[" + "a" * 4090 + "](https://example.com/" + "p" * 200 + ")"
    make(parse_mode="MarkdownV2").check_supported(outbound(text=link))
    with pytest.raises(ProviderError) as caught:
        make(parse_mode="HTML").check_supported(outbound(text="<i>" + "a" * 4097 + "</i>"))
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE


def test_caption_over_1024_characters_fails_before_sending() -> None:
    """A caption is limited to 1024 characters."""
    pdf = (Attachment(filename="a.pdf", content=b"%PDF"),)
    make().check_supported(outbound(text="c" * 1024, attachments=pdf))
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(text="c" * 1025, attachments=pdf))
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize("to", ["ann@example.com", "12ab", "@ab", "+48600700800"])
def test_malformed_chat_id_is_an_invalid_recipient(to: str) -> None:
    """A chat id is an integer or @channelusername; anything else is refused locally."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(to=to))
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT


def test_bad_options_and_parse_mode_are_content_rejected() -> None:
    """Options that are not JSON, or an unknown parse_mode, are refused before sending."""
    for options in ({"reply_markup": {1, 2}}, {"parse_mode": "BBCode"}):
        with pytest.raises(ProviderError) as caught:
            make().check_supported(outbound(provider_options=options))
        assert caught.value.category is ErrorCategory.CONTENT_REJECTED


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=60))
def test_escaped_subjects_count_as_their_own_length(text: str) -> None:
    """A MarkdownV2- or HTML-escaped title counts exactly as many characters as its text."""
    assert visible_length(bold(text, "MarkdownV2"), "MarkdownV2") == len(text.strip())
    assert visible_length(bold(text, "HTML"), "HTML") == len(text.strip())
    assert escape_markdown_v2(text).replace("\\", "") == text.replace("\\", "")


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "description", "category", "reason", "contact_invalid"),
    [
        (
            403,
            "Forbidden: bot was blocked by the user",
            ErrorCategory.OPTED_OUT,
            Reason.BLOCKED_BY_RECIPIENT,
            True,
        ),
        (
            403,
            "Forbidden: user is deactivated",
            ErrorCategory.INVALID_RECIPIENT,
            Reason.UNKNOWN_RECIPIENT,
            True,
        ),
        (
            403,
            "Forbidden: bot can't initiate conversation with a user",
            ErrorCategory.INVALID_RECIPIENT,
            Reason.UNKNOWN_RECIPIENT,
            False,
        ),
        (
            403,
            "Forbidden: bot was kicked from the supergroup chat",
            ErrorCategory.INVALID_RECIPIENT,
            Reason.BLOCKED_BY_RECIPIENT,
            True,
        ),
        (
            403,
            "Forbidden: bot is not a member of the channel chat",
            ErrorCategory.INVALID_RECIPIENT,
            Reason.UNKNOWN_RECIPIENT,
            False,
        ),
        (403, "Forbidden: something new", ErrorCategory.INVALID_RECIPIENT, None, False),
        (
            400,
            "Bad Request: chat not found",
            ErrorCategory.INVALID_RECIPIENT,
            Reason.UNKNOWN_RECIPIENT,
            True,
        ),
        (
            400,
            "Bad Request: have no rights to send a message",
            ErrorCategory.INVALID_RECIPIENT,
            Reason.POLICY_BLOCKED,
            False,
        ),
        (400, "Bad Request: message is too long", ErrorCategory.PAYLOAD_TOO_LARGE, None, False),
        (
            400,
            "Bad Request: can't parse entities: Can't find end of the entity starting at byte "
            "offset 12",
            ErrorCategory.CONTENT_REJECTED,
            Reason.CONTENT_REJECTED,
            False,
        ),
        (
            400,
            "Bad Request: message thread not found",
            ErrorCategory.CONTENT_REJECTED,
            None,
            False,
        ),
        (401, "Unauthorized", ErrorCategory.AUTH, None, False),
        (404, "Not Found", ErrorCategory.AUTH, None, False),
        (
            409,
            "Conflict: terminated by other getUpdates request",
            ErrorCategory.CONFIGURATION,
            None,
            False,
        ),
        (413, "Request Entity Too Large", ErrorCategory.PAYLOAD_TOO_LARGE, None, False),
        (500, "Internal Server Error: chat not found", ErrorCategory.UNAVAILABLE, None, False),
        (502, "Bad Gateway", ErrorCategory.UNAVAILABLE, None, False),
        (504, "Gateway Timeout", ErrorCategory.AMBIGUOUS_TIMEOUT, None, False),
    ],
)
def test_error_descriptions(
    status: int,
    description: str,
    category: ErrorCategory,
    reason: Reason | None,
    contact_invalid: bool,
) -> None:
    """Each documented description maps to its category, reason and contact_invalid flag."""
    answer = failure(status, description)
    answer.request = make().build_request(outbound())
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    error = caught.value
    assert (error.category, error.reason, error.contact_invalid) == (
        category,
        reason,
        contact_invalid,
    )
    assert error.retryable is category.retryable
    assert (error.status_code, error.code, error.provider) == (status, description, "telegram")
    assert error.raw == json.loads(answer.content)


def test_rate_limit_uses_parameters_retry_after() -> None:
    """A 429 waits parameters.retry_after, even without a Retry-After header."""
    result, _ = send(
        Message(text="x"),
        failure(429, "Too Many Requests: retry after 17", retry_after=17),
    )
    assert result.error is not None
    assert (result.error.category, result.error.retry_after, result.error.retryable) == (
        ErrorCategory.RATE_LIMITED,
        17.0,
        True,
    )
    assert result.error.reason is Reason.RATE_LIMITED


def test_rate_limit_falls_back_to_the_description() -> None:
    """Without parameters, the seconds in "retry after N" are used."""
    answer = failure(429, "Too Many Requests: retry after 9")
    answer.request = httpx.Request("POST", f"{API}/sendMessage")
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer, outbound())
    assert caught.value.retry_after == 9.0


def test_group_upgraded_to_supergroup_names_the_new_chat_id() -> None:
    """migrate_to_chat_id: invalid_recipient, dead address, the new id in message and raw."""
    result, _ = send(
        Message(text="x"),
        failure(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=-1001000000002,
        ),
    )
    error = result.error
    assert error is not None
    assert (error.category, error.contact_invalid, error.reason) == (
        ErrorCategory.INVALID_RECIPIENT,
        True,
        Reason.INVALID_RECIPIENT,
    )
    assert "-1001000000002" in error.message
    assert error.raw["parameters"]["migrate_to_chat_id"] == -1001000000002


def test_error_inside_a_200_is_an_error() -> None:
    """{"ok": false} with HTTP 200 is read by its error_code and description."""
    body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    result, _ = send(Message(text="x"), httpx.Response(200, json=body))
    assert result.error is not None
    assert result.error.category is ErrorCategory.OPTED_OUT


def test_unreadable_200_is_ambiguous_and_not_resent() -> None:
    """A 2xx that is not a Bot API answer may have been delivered: status unknown, no retry."""
    result, route = send(Message(text="x"), httpx.Response(200, text="<html>proxy</html>"))
    assert route.call_count == 1
    assert result.status is DeliveryStatus.UNKNOWN
    assert result.error is not None
    assert result.error.category is ErrorCategory.AMBIGUOUS_TIMEOUT


def test_the_token_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    """The token is in no error, repr, raw answer or httpx log line, even when echoed back."""
    caplog.set_level(logging.DEBUG)
    echo = {"ok": False, "error_code": 404, "description": f"Not Found: /bot{TOKEN}/sendMessage"}
    result, route = send(Message(text="x"), httpx.Response(404, json=echo))
    assert route.called
    error = result.error
    assert error is not None
    shown = [str(error), repr(error), str(error.raw), str(error.code), error.message]
    shown += [repr(make()), str(make().settings), caplog.text]
    assert all(TOKEN not in text for text in shown)
    assert "***" in str(error.raw)


def test_blocked_bot_reaches_the_invalid_address_hooks() -> None:
    """A blocked bot flags the attempt contact_invalid and calls on_invalid_address."""
    dead: list[anysend.Attempt] = []
    with respx.mock() as mock:
        mock.post(f"{API}/sendMessage").mock(
            return_value=failure(403, "Forbidden: bot was blocked by the user")
        )
        with anysend.Client([make()], on_invalid_address=[dead.append]) as client:
            result = client.send(Message(text="x"), to={"chat_ids": {"telegram": CHAT}})
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.contact_invalid
    assert [a.address for a in dead] == [CHAT]


def test_tables_agree() -> None:
    """Every reason and contact-invalid fragment is a known description fragment."""
    assert set(REASONS) <= set(ERROR_CODES)
    assert set(CONTACT_INVALID) <= set(ERROR_CODES)
    assert all(key == key.lower() for key in ERROR_CODES)


# -- webhooks: verification ------------------------------------------------------------------------


def test_genuine_update_verifies() -> None:
    """The configured secret in X-Telegram-Bot-Api-Secret-Token is accepted."""
    make().verify_webhook(update(fixture("message_text.json")))


@pytest.mark.parametrize(
    ("secret", "expected"),
    [(None, "no X-Telegram-Bot-Api-Secret-Token"), ("guess", "does not match"), ("", "match")],
)
def test_missing_or_wrong_secret_is_rejected(secret: str | None, expected: str) -> None:
    """No header, a wrong or an empty secret raise WebhookVerificationError."""
    with pytest.raises(WebhookVerificationError, match=expected) as caught:
        make().parse_webhook(update(fixture("message_text.json"), secret=secret))
    assert SECRET not in str(caught.value)


def test_without_a_configured_secret_every_update_is_refused() -> None:
    """No secret_token setting: refused, even with a header, and the error says how to fix it."""
    with pytest.raises(WebhookVerificationError, match=r"setWebhook\(secret_token="):
        make(secret_token=None).verify_webhook(update(fixture("message_text.json")))


def test_client_parse_webhook_verifies_too() -> None:
    """client.parse_webhook("telegram", ...) verifies and parses."""
    with anysend.Client([make()]) as client:
        events = client.parse_webhook("telegram", update(fixture("message_text.json")))
        with pytest.raises(WebhookVerificationError):
            client.parse_webhook("telegram", update(fixture("message_text.json"), secret="x"))
    assert isinstance(only(events), InboundMessage)


# -- webhooks: parsing -----------------------------------------------------------------------------


def test_text_message_is_inbound() -> None:
    """A message: sender is the chat id, recipient the bot, ids as chat:message."""
    message = only(
        make(bot_username="anysend_fixture_bot").parse_webhook(update(fixture("message_text.json")))
    )
    assert message == InboundMessage(
        provider="telegram",
        channel=Channel.TELEGRAM,
        sender="1111111",
        recipient="anysend_fixture_bot",
        text="/start",
        provider_message_id="1111111:1365",
        received_at=datetime(2015, 9, 7, 17, 5, 32, tzinfo=timezone.utc),
        raw=json.loads(fixture("message_text.json")),
    )


def test_edited_message_is_inbound_at_its_edit_date() -> None:
    """An edited message is inbound too, received at edit_date; raw says it was an edit."""
    message = only(make().parse_webhook(update(fixture("edited_message.json"))))
    assert isinstance(message, InboundMessage)
    assert (message.text, message.recipient) == ("Edited text", None)
    assert message.received_at == datetime.fromtimestamp(1441646600, tz=timezone.utc)
    assert "edited_message" in message.raw


def test_reply_names_the_message_it_answers() -> None:
    """reply_to_message becomes in_reply_to as chat:message."""
    message = only(make().parse_webhook(update(fixture("message_reply.json"))))
    assert isinstance(message, InboundMessage)
    assert message.in_reply_to == "1111111:1334"


def test_document_is_media_by_file_id() -> None:
    """A document is Media by file_id, type and name; no URL (getFile's URL holds the token)."""
    message = only(make().parse_webhook(update(fixture("message_document.json"))))
    assert isinstance(message, InboundMessage)
    assert message.text is None
    assert message.media == (
        Media(
            provider_media_id="AwADBAADbXXXXXXXXXXXGBdhD2l6_XX",
            content_type="application/pdf",
            filename="Testfile.pdf",
        ),
    )


def test_channel_post_photo_takes_the_largest_size_and_the_caption() -> None:
    """A channel post: sender is the channel, text the caption, media the largest photo."""
    message = only(make().parse_webhook(update(fixture("channel_post_photo.json"))))
    assert isinstance(message, InboundMessage)
    assert (message.sender, message.text) == ("-1001000000001", "New arrivals 🌿")
    assert message.media == (Media(provider_media_id="AgACAgQAAxkBAAFixture-photo-x"),)


def test_animation_is_not_reported_twice() -> None:
    """An animation also comes as a document with the same file_id: one Media."""
    data = json.loads(fixture("message_text.json"))
    gif = {"file_id": "CgAC", "mime_type": "video/mp4", "file_name": "a.mp4"}
    data["message"].update(animation=gif, document=gif)
    message = only(make().parse_webhook(update(data)))
    assert isinstance(message, InboundMessage)
    assert len(message.media) == 1


def test_button_press_is_inbound_with_the_callback_data() -> None:
    """callback_query: the text is its data, in_reply_to the message with the button."""
    message = only(make().parse_webhook(update(fixture("callback_query_button.json"))))
    assert isinstance(message, InboundMessage)
    assert (message.sender, message.text) == ("1111111", "rate:1042:good")
    assert (message.provider_message_id, message.in_reply_to) == (
        "4382bfdwdsb323b2e0",
        "1111111:1366",
    )


def test_inline_button_press_comes_from_the_user() -> None:
    """A callback under an inline-mode message has no chat: the sender is the user."""
    message = only(make().parse_webhook(update(fixture("callback_query_inline.json"))))
    assert isinstance(message, InboundMessage)
    assert (message.sender, message.text, message.in_reply_to) == (
        "1111111",
        "Data from button callback",
        None,
    )


def test_blocking_the_bot_is_an_opt_out() -> None:
    """my_chat_member with new status kicked: opted_out, blocked_by_recipient, update_id."""
    event = only(make().parse_webhook(update(fixture("my_chat_member_kicked.json"))))
    assert event == DeliveryEvent(
        provider="telegram",
        recipient="1111111",
        channel=Channel.TELEGRAM,
        event=EventType.OPTED_OUT,
        raw_status="kicked",
        reason=Reason.BLOCKED_BY_RECIPIENT,
        description="the user blocked the bot",
        occurred_at=datetime.fromtimestamp(1795161600, tz=timezone.utc),
        event_id="10001",
        raw=json.loads(fixture("my_chat_member_kicked.json")),
    )


def test_unblocking_the_bot_is_an_opt_in() -> None:
    """my_chat_member with new status member: opted_in."""
    event = only(make().parse_webhook(update(fixture("my_chat_member_member.json"))))
    assert isinstance(event, DeliveryEvent)
    assert (event.event, event.reason, event.event_id) == (EventType.OPTED_IN, None, "10003")


@pytest.mark.parametrize("status", [*sorted(EVENT_MAP), "restricted", "creator"])
def test_member_statuses(status: str) -> None:
    """Known bot statuses are events; others are status unknown with the raw value kept."""
    data = json.loads(fixture("my_chat_member_kicked.json"))
    data["my_chat_member"]["new_chat_member"]["status"] = status
    event = only(make().parse_webhook(update(data)))
    assert isinstance(event, DeliveryEvent)
    assert event.raw_status == status
    if status in EVENT_MAP:
        assert (event.event, event.status) == (EVENT_MAP[status], None)
    else:
        assert (event.event, event.status) == (None, DeliveryStatus.UNKNOWN)


def test_other_updates_give_no_events() -> None:
    """An inline query (or any update anysend does not report) parses to no events."""
    body = {"update_id": 10000, "inline_query": {"id": "1", "query": "q", "offset": ""}}
    assert make().parse_webhook(update(body)) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"null",
        b"[]",
        b'{"message": {}}',
        b'{"update_id": "1", "message": {}}',
        b'{"update_id": true}',
        b'{"update_id": 1, "message": []}',
        b'{"update_id": 1, "message": {"chat": {"id": "x"}}}',
        b'{"update_id": 1, "message": {"chat": {"id": 1}, "date": 99999999999999999999}}',
        b'{"update_id": 1, "callback_query": {"from": {}}}',
        b'{"update_id": 1, "my_chat_member": {"chat": {"id": 1}, "new_chat_member": {}}}',
    ],
)
def test_malformed_bodies_raise_only_our_errors(body: bytes) -> None:
    """Broken bodies raise WebhookParseError, never a foreign exception."""
    with pytest.raises(WebhookParseError):
        make().parse_webhook(update(body), verify=False)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(UPDATE_FIXTURES), data=st.data())
def test_mutated_fixtures_raise_only_our_errors(name: str, data: st.DataObject) -> None:
    """Fixture bodies with random byte edits parse or raise only anysend's webhook errors."""
    body = edited_bytes(fixture(name), data)
    try:
        events = make().parse_webhook(update(body), verify=False)
    except (WebhookParseError, WebhookVerificationError):
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_",
    [
        {"bot_token": "not-a-token"},
        {"bot_token": f"{TOKEN}/../getMe?x="},
        {"bot_token": TOKEN, "secret_token": "has spaces in it"},
        {"bot_token": TOKEN, "secret_token": "x" * 257},
        {"bot_token": TOKEN, "api_base": "api.telegram.org"},
        {"bot_token": TOKEN, "parse_mode": "BBCode"},
    ],
)
def test_invalid_settings(settings_: dict[str, Any]) -> None:
    """Malformed settings are a ConfigurationError that does not repeat the values."""
    with pytest.raises(ConfigurationError) as caught:
        Telegram(**settings_)
    assert "has spaces" not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_url_form_configures_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """telegram://?bot_token=...&parse_mode=HTML fills the settings; to_url hides the secrets."""
    monkeypatch.setattr(_config, "load", lambda name: Telegram)
    telegram = _config.from_url(
        f"telegram://?bot_token={TOKEN}&secret_token={SECRET}&parse_mode=HTML"
        "&disable_web_page_preview=true"
    )
    assert telegram.settings == TelegramSettings(
        bot_token=TOKEN, secret_token=SECRET, parse_mode="HTML", disable_web_page_preview=True
    )
    shown = _config.to_url(telegram)
    assert TOKEN not in shown
    assert SECRET not in shown
