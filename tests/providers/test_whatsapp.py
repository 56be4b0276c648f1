"""The WhatsApp Cloud API adapter: requests, the 24-hour window, media, errors, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
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
    ChatTemplate,
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
from anysend.providers import WebhookResponse, _config, _meta
from anysend.providers.whatsapp import (
    DEFAULT_API_VERSION,
    ERROR_CODES,
    MEDIA_LIMITS,
    REASONS,
    STATUS_MAP,
    WhatsApp,
    WhatsAppSettings,
)
from anysend.testing import MemoryProvider, VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract
from tests.strategies import edited_bytes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "whatsapp"
TOKEN = "EAAG-test-access-token-3f9a1c"
PHONE_ID = "100000000000002"
APP_SECRET = "meta-test-app-secret-77d1"
VERIFY_TOKEN = "verify-me-5c2e"
ANN = "+48600700800"
BASE = f"https://graph.facebook.com/{DEFAULT_API_VERSION}/{PHONE_ID}"
MESSAGES_URL = f"{BASE}/messages"
MEDIA_URL = f"{BASE}/media"
HOOK_URL = "https://app.example.com/hooks/whatsapp"
WAMID = "wamid.HBgLNDg2MDA3MDA4MDAVAgARGBJBTllTRU5ERklYVFVSRTAw00AA=="
TEMPLATE_WAMID = "wamid.HBgLNDg2MDA3MDA4MDAVAgARGBJBTllTRU5ERklYVFVSRTAw99AA=="

# GitHub's published X-Hub-Signature-256 example (the same HMAC-SHA256 hex scheme Meta uses):
# docs.github.com, "Validating webhook deliveries", "Testing the webhook payload validation".
VECTOR_SECRET = "It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

STATUS_FIXTURES = [
    "status_sent.json",
    "status_delivered.json",
    "status_read.json",
    "status_failed_131047.json",
    "status_failed_131026.json",
    "batch_mixed.json",
]
INBOUND_FIXTURES = ["inbound_text.json", "inbound_image.json"]


def make(**settings: Any) -> WhatsApp:
    """A WhatsApp adapter with test credentials."""
    values: dict[str, Any] = {
        "access_token": TOKEN,
        "phone_number_id": PHONE_ID,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }
    values.update(settings)
    return WhatsApp(**values)


def fixture(name: str) -> bytes:
    """A fixture file's exact bytes."""
    return (FIXTURES / name).read_bytes()


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    """Meta's X-Hub-Signature-256 for ``body``, computed here independently of the adapter."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def callback(body: bytes, *, secret: str = APP_SECRET) -> WebhookRequest:
    """A webhook POST carrying ``body``, signed with ``secret``."""
    headers = {"X-Hub-Signature-256": signature(body, secret), "Content-Type": "application/json"}
    return WebhookRequest(url=HOOK_URL, headers=headers, body=body)


def webhook_body(*values: dict[str, Any], field: str = "messages") -> bytes:
    """A webhook body as Meta serialises it: compact, non-ASCII escaped."""
    data = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"value": v, "field": field}]} for v in values],
    }
    return json.dumps(data, separators=(",", ":")).encode()


def outbound(**fields: Any) -> OutboundMessage:
    """A message as the client hands it to the adapter."""
    fields.setdefault("text", "Your order has shipped")
    return OutboundMessage(id="msg-1", channel=Channel.WHATSAPP, to=ANN, **fields)


def sent(wamid: str = WAMID, **extra: Any) -> httpx.Response:
    """The Cloud API's 200 answer to a send."""
    body = {
        "messaging_product": "whatsapp",
        "contacts": [{"input": ANN[1:], "wa_id": ANN[1:]}],
        "messages": [{"id": wamid, **extra}],
    }
    return httpx.Response(200, json=body)


def graph_error(code: int, status: int = 400, subcode: int | None = None) -> httpx.Response:
    """A Graph API error answer."""
    error: dict[str, Any] = {
        "message": f"(#{code}) refused",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": f"details of {code}"},
        "fbtrace_id": "AbCdEfGh",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return httpx.Response(status, json={"error": error})


def json_of(request: httpx.Request) -> Any:
    """A request's JSON body."""
    return json.loads(request.content)


def multipart_of(request: httpx.Request) -> dict[str, tuple[dict[str, str], bytes]]:
    """A multipart request's parts by field name: their headers and content."""
    raw = b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(raw + request.read())
    parts: dict[str, tuple[dict[str, str], bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        parts[name] = (dict(part.items()), payload)
    return parts


def run_flow(provider: WhatsApp, message: OutboundMessage, *responses: httpx.Response) -> Any:
    """Drive the send flow by hand, answering each request in turn; the requests and result."""
    flow = provider.send_flow(message)
    requests = [next(flow)]
    for response in responses:
        try:
            requests.append(flow.send(response))
        except StopIteration as stop:
            return requests, stop.value
    raise AssertionError("the flow wanted more answers")


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_text_is_one_exact_json_post(respx_mock: respx.MockRouter) -> None:
    """Client posts the documented text body with a bearer token to /{phone_number_id}/messages."""
    route = respx_mock.post(MESSAGES_URL).mock(return_value=sent())
    with anysend.Client([make()]) as client:
        result = client.send(Message(text="Your order has shipped"), to={"phone": ANN})
    assert result.ok
    assert result.provider_message_id == WAMID
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json_of(request) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "48600700800",
        "type": "text",
        "text": {"preview_url": False, "body": "Your order has shipped"},
        "biz_opaque_callback_data": f"anysend:{result.message_id}",
    }


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_template_only(respx_mock: respx.MockRouter) -> None:
    """AsyncClient sends a message with only a chat_template as a template message."""
    route = respx_mock.post(MESSAGES_URL).mock(
        return_value=sent(TEMPLATE_WAMID, message_status="accepted")
    )
    template = ChatTemplate(name="order_shipped", language="en_US", parameters=["Ann", 1042])
    async with anysend.AsyncClient([make()]) as client:
        result = await client.send(Message(chat_template=template), to={"phone": ANN})
    assert result.provider_message_id == TEMPLATE_WAMID
    body = json_of(route.calls.last.request)
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "order_shipped",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "1042"}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("parameters", "components"),
    [
        ([], None),
        (
            ["Ann", {"type": "currency", "currency": {"code": "PLN", "amount_1000": 9990}}],
            [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ann"},
                        {"type": "currency", "currency": {"code": "PLN", "amount_1000": 9990}},
                    ],
                }
            ],
        ),
        (
            {"customer": "Ann", "order": 1042},
            [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "parameter_name": "customer", "text": "Ann"},
                        {"type": "text", "parameter_name": "order", "text": "1042"},
                    ],
                }
            ],
        ),
        (
            {"components": [{"type": "header", "parameters": [{"type": "text", "text": "Hi"}]}]},
            [{"type": "header", "parameters": [{"type": "text", "text": "Hi"}]}],
        ),
    ],
    ids=["none", "list", "named", "components"],
)
def test_template_parameters(parameters: Any, components: Any) -> None:
    """Lists are body parameters, dicts named ones, and 'components' goes verbatim."""
    template = ChatTemplate(name="t", language="pl", parameters=parameters)
    body = json_of(make().build_request(outbound(text=None, chat_template=template)))
    expected: dict[str, Any] = {"name": "t", "language": {"code": "pl"}}
    if components is not None:
        expected["components"] = components
    assert body["template"] == expected


def test_preview_url_setting_and_provider_options() -> None:
    """preview_url is a setting; provider options merge into the body and None removes a key."""
    options = {"context": {"message_id": WAMID}, "biz_opaque_callback_data": None}
    request = make(preview_url=True).build_request(outbound(provider_options=options))
    body = json_of(request)
    assert body["text"] == {"preview_url": True, "body": "Your order has shipped"}
    assert body["context"] == {"message_id": WAMID}
    assert "biz_opaque_callback_data" not in body


def test_api_version_and_base_url_override() -> None:
    """api_version goes into the path; the client's base_urls override points elsewhere."""
    assert str(make(api_version="v24.0").build_request(outbound()).url) == (
        f"https://graph.facebook.com/v24.0/{PHONE_ID}/messages"
    )
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(
            f"https://proxy.example.com/graph/{DEFAULT_API_VERSION}/{PHONE_ID}/messages"
        )
        route.mock(return_value=sent())
        with anysend.Client(
            [make()], base_urls={"whatsapp": "https://proxy.example.com/graph"}
        ) as client:
            assert client.send(Message(text="hi"), to={"phone": ANN}).ok


def test_a_whatsapp_chat_id_is_normalised_and_sent_as_digits() -> None:
    """A WhatsApp chat id is a phone number: normalised by the client, sent without '+'."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(MESSAGES_URL).mock(return_value=sent())
        with anysend.Client([make()]) as client:
            recipient = Recipient(chat_ids={Channel.WHATSAPP: "+48 600 700 801"})
            assert client.send(Message(text="hi"), to=recipient).ok
    assert json_of(route.calls.last.request)["to"] == "48600700801"


# -- the 24-hour window ----------------------------------------------------------------------------


def test_window_closed_sends_the_template_in_the_same_attempt() -> None:
    """Error 131047 on the text sends the template next; its id is the receipt's."""
    template = ChatTemplate(name="order_shipped", language="en_US", parameters=["Ann"])
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(MESSAGES_URL).mock(
            side_effect=[graph_error(131047), sent(TEMPLATE_WAMID)]
        )
        with anysend.Client([make()], clock=VirtualClock()) as client:
            result = client.send(
                Message(text="Your order has shipped", chat_template=template), to={"phone": ANN}
            )
    assert result.ok
    assert result.provider_message_id == TEMPLATE_WAMID
    assert len(result.attempts) == 1
    first, second = (json_of(call.request) for call in route.calls)
    assert first["type"] == "text"
    assert second["type"] == "template"
    assert second["biz_opaque_callback_data"] == first["biz_opaque_callback_data"]


def test_window_closed_without_template_moves_to_the_next_channel() -> None:
    """Without a template, 131047 is content_rejected/outside_messaging_window; SMS goes next."""
    sms = MemoryProvider(name="sms", channels={"sms"})
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(MESSAGES_URL).mock(return_value=graph_error(131047))
        with anysend.Client([make(), sms], clock=VirtualClock()) as client:
            result = client.send(
                Message(text="Your order has shipped"), to={"phone": ANN}, via=["whatsapp", "sms"]
            )
    assert result.ok
    assert route.call_count == 1
    failed, delivered = result.attempts
    assert failed.channel is Channel.WHATSAPP
    assert failed.error is not None
    assert failed.error.category is ErrorCategory.CONTENT_REJECTED
    assert failed.error.reason is Reason.OUTSIDE_MESSAGING_WINDOW
    assert failed.error.code == "131047"
    assert delivered.channel is Channel.SMS
    assert [m.text for m in sms.messages] == ["Your order has shipped"]


def test_other_errors_do_not_send_the_template() -> None:
    """Only the window errors fall back to the template; others raise at once."""
    message = outbound(chat_template=ChatTemplate(name="t"))
    flow = make().send_flow(message)
    next(flow)
    with pytest.raises(ProviderError) as caught:
        flow.send(graph_error(131026))
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT


def test_template_failure_after_the_window_closed_is_raised() -> None:
    """When the fallback template fails too, its own error is raised."""
    message = outbound(chat_template=ChatTemplate(name="missing"))
    flow = make().send_flow(message)
    next(flow)
    flow.send(graph_error(131047))
    with pytest.raises(ProviderError) as caught:
        flow.send(graph_error(132001))
    assert caught.value.category is ErrorCategory.CONFIGURATION
    assert caught.value.reason is Reason.TEMPLATE_ERROR


def test_prefer_template_sends_only_the_template() -> None:
    """With prefer_template, a message with text and a template sends the template alone."""
    message = outbound(
        chat_template=ChatTemplate(name="t"),
        attachments=(Attachment(filename="a.pdf", content=b"%PDF"),),
    )
    requests, receipt = run_flow(make(prefer_template=True), message, sent(TEMPLATE_WAMID))
    assert [str(r.url) for r in requests] == [MESSAGES_URL]
    assert json_of(requests[0])["type"] == "template"
    assert receipt.provider_message_id == TEMPLATE_WAMID


# -- media -----------------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_attachment_is_uploaded_then_sent(respx_mock: respx.MockRouter) -> None:
    """One file: a multipart upload to /media, then an image message naming the media id."""
    upload = respx_mock.post(MEDIA_URL).mock(return_value=httpx.Response(200, json={"id": "555"}))
    send = respx_mock.post(MESSAGES_URL).mock(return_value=sent())
    photo = Attachment(filename="parcel.jpg", content=b"\xff\xd8\xff\xe0jpeg")
    with anysend.Client([make()]) as client:
        result = client.send(Message(text="Your parcel", attachments=(photo,)), to={"phone": ANN})
    assert result.provider_message_id == WAMID
    request = upload.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = multipart_of(request)
    assert parts["messaging_product"][1] == b"whatsapp"
    assert parts["type"][1] == b"image/jpeg"
    headers, content = parts["file"]
    assert content == b"\xff\xd8\xff\xe0jpeg"
    assert headers["Content-Type"] == "image/jpeg"
    assert 'filename="parcel.jpg"' in headers["Content-Disposition"]
    body = json_of(send.calls.last.request)
    assert body["type"] == "image"
    assert body["image"] == {"id": "555", "caption": "Your parcel"}


@pytest.mark.parametrize(
    ("filename", "text", "kind", "media"),
    [
        (
            "invoice.pdf",
            "Your invoice",
            "document",
            {"caption": "Your invoice", "filename": "invoice.pdf"},
        ),
        ("clip.mp4", None, "video", {}),
        ("note.ogg", None, "audio", {}),
        ("note.ogg", "Listen", "document", {"caption": "Listen", "filename": "note.ogg"}),
    ],
)
def test_media_kinds(filename: str, text: str | None, kind: str, media: dict[str, str]) -> None:
    """Content types choose the media object; audio with text goes as a document."""
    message = outbound(text=text, attachments=(Attachment(filename=filename, content=b"x"),))
    requests, _ = run_flow(make(), message, httpx.Response(200, json={"id": "9"}), sent())
    body = json_of(requests[1])
    assert body["type"] == kind
    assert body[kind] == {"id": "9", **media}


def test_check_supported_limits() -> None:
    """Two files, inline images, oversized files and overlong text are refused up front."""
    wa = make()
    two = (Attachment(filename="a.pdf", content=b"1"), Attachment(filename="b.pdf", content=b"2"))
    with pytest.raises(UnsupportedFeatureError) as unsupported:
        wa.check_supported(outbound(attachments=two))
    assert unsupported.value.feature == "attachments"
    inline = Attachment(filename="logo.png", content=b"png", inline=True)
    with pytest.raises(UnsupportedFeatureError):
        wa.check_supported(outbound(attachments=(inline,)))
    big = Attachment(filename="big.png", content=b"0" * (MEDIA_LIMITS["image"] + 1))
    too_long = [
        outbound(attachments=(big,), text=None),
        outbound(attachments=(Attachment(filename="a.pdf", content=b"1"),), text="x" * 1025),
        outbound(text="x" * 4097),
    ]
    for message in too_long:
        with pytest.raises(ProviderError) as caught:
            wa.check_supported(message)
        assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE
    wa.check_supported(outbound(text="x" * 4096))
    make(prefer_template=True).check_supported(
        outbound(text="x" * 5000, chat_template=ChatTemplate(name="t"))
    )
    make(prefer_template=True).check_supported(
        outbound(attachments=two, chat_template=ChatTemplate(name="t"))
    )


def test_upload_errors() -> None:
    """A failed upload raises its Graph error; an upload answer without an id is refused."""
    message = outbound(attachments=(Attachment(filename="a.pdf", content=b"1"),))
    flow = make().send_flow(message)
    next(flow)
    with pytest.raises(ProviderError) as caught:
        flow.send(graph_error(131053))
    assert caught.value.category is ErrorCategory.CONTENT_REJECTED
    flow = make().send_flow(message)
    next(flow)
    with pytest.raises(ProviderError) as caught:
        flow.send(httpx.Response(200, json={"ok": True}))
    assert caught.value.category is ErrorCategory.UNKNOWN


def test_nothing_to_send_is_refused() -> None:
    """A WhatsApp message without text, file or template fails before any request."""
    with pytest.raises(anysend.ContentError):
        make().build_request(outbound(text=None, html="<p>hi</p>"))


# -- answers and errors ----------------------------------------------------------------------------


def test_receipt_keeps_the_body() -> None:
    """The receipt has the wamid and the parsed answer; a 200 without it is ambiguous."""
    receipt = make().parse_response(sent(message_status="accepted"), outbound())
    assert receipt.provider_message_id == WAMID
    assert receipt.status is DeliveryStatus.ACCEPTED
    assert isinstance(receipt.raw, dict)
    assert receipt.raw["messages"] == [{"id": WAMID, "message_status": "accepted"}]
    with pytest.raises(ProviderError) as caught:
        make().parse_response(httpx.Response(200, json={"messages": []}), outbound())
    assert caught.value.category is ErrorCategory.AMBIGUOUS_TIMEOUT
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("code", "subcode", "http", "category", "reason", "dead"),
    [
        (131026, None, 400, ErrorCategory.INVALID_RECIPIENT, Reason.UNKNOWN_RECIPIENT, True),
        (131047, None, 400, ErrorCategory.CONTENT_REJECTED, Reason.OUTSIDE_MESSAGING_WINDOW, False),
        (131050, None, 400, ErrorCategory.OPTED_OUT, Reason.OPTED_OUT, False),
        (131051, None, 400, ErrorCategory.CONTENT_REJECTED, Reason.CONTENT_REJECTED, False),
        (131056, None, 400, ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False),
        (130429, None, 429, ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False),
        (80007, None, 400, ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False),
        (4, None, 400, ErrorCategory.RATE_LIMITED, Reason.RATE_LIMITED, False),
        (131048, None, 400, ErrorCategory.QUOTA, Reason.RATE_LIMITED, False),
        (131049, None, 400, ErrorCategory.CONTENT_REJECTED, Reason.POLICY_BLOCKED, False),
        (131000, None, 500, ErrorCategory.UNAVAILABLE, None, False),
        (131042, None, 400, ErrorCategory.QUOTA, Reason.INSUFFICIENT_FUNDS, False),
        (190, 463, 401, ErrorCategory.AUTH, None, False),
        (0, None, 401, ErrorCategory.AUTH, None, False),
        (10, None, 403, ErrorCategory.AUTH, None, False),
        (250, None, 403, ErrorCategory.AUTH, None, False),
        (100, None, 400, ErrorCategory.CONTENT_REJECTED, None, False),
        (100, 33, 400, ErrorCategory.CONFIGURATION, None, False),
        (132000, None, 400, ErrorCategory.CONTENT_REJECTED, Reason.TEMPLATE_ERROR, False),
        (132001, None, 404, ErrorCategory.CONFIGURATION, Reason.TEMPLATE_ERROR, False),
        (368, None, 403, ErrorCategory.CONFIGURATION, Reason.POLICY_BLOCKED, False),
        (131021, None, 400, ErrorCategory.INVALID_RECIPIENT, Reason.INVALID_RECIPIENT, False),
        (999999, None, 400, ErrorCategory.UNKNOWN, None, False),
        (999999, None, 503, ErrorCategory.UNAVAILABLE, None, False),
    ],
)
def test_error_codes(
    code: int,
    subcode: int | None,
    http: int,
    category: ErrorCategory,
    reason: Reason | None,
    dead: bool,
) -> None:
    """Each Graph code maps to its category, reason and dead-contact flag; unknown ones by HTTP."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(graph_error(code, http, subcode), outbound())
    error = caught.value
    assert error.category is category
    assert error.retryable is category.retryable
    assert error.reason is reason
    assert error.contact_invalid is dead
    assert error.status_code == http
    assert error.code == (str(code) if subcode is None else f"{code}/{subcode}")
    assert error.provider == "whatsapp"
    assert f"details of {code}" in error.message
    assert isinstance(error.raw, dict)
    assert error.raw["error"]["fbtrace_id"] == "AbCdEfGh"


def test_transient_graph_error_is_retryable() -> None:
    """An unmapped code Meta marks is_transient is unavailable (retried)."""
    response = httpx.Response(
        400, json={"error": {"message": "try later", "code": 777, "is_transient": True}}
    )
    with pytest.raises(ProviderError) as caught:
        make().parse_response(response, outbound())
    assert caught.value.category is ErrorCategory.UNAVAILABLE


def test_rate_limit_honours_retry_after() -> None:
    """A 429 with Retry-After keeps the delay, with or without a Graph body."""
    response = httpx.Response(429, json=graph_error(130429).json(), headers={"Retry-After": "4"})
    with pytest.raises(ProviderError) as caught:
        make().parse_response(response, outbound())
    assert caught.value.retry_after == 4.0


def test_tables_are_keyed_by_meta_codes() -> None:
    """The error tables are keyed by integer codes and cover the brief's codes."""
    assert all(isinstance(code, int) for code in ERROR_CODES)
    assert set(REASONS) <= set(ERROR_CODES)
    for code in (131026, 131047, 131050, 131051, 131056, 130429, 131048, 131000, 190, 0):
        assert code in ERROR_CODES


def test_dead_number_reaches_on_invalid_address() -> None:
    """131026 (not on WhatsApp) flags the attempt and calls the on_invalid_address hooks."""
    dead: list[anysend.Attempt] = []
    with respx.mock(assert_all_called=True) as mock:
        mock.post(MESSAGES_URL).mock(return_value=graph_error(131026))
        with anysend.Client(
            [make()], on_invalid_address=[dead.append], clock=VirtualClock()
        ) as client:
            result = client.send(Message(text="hi"), to={"phone": ANN})
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.contact_invalid
    assert attempt.error is not None
    assert attempt.error.reason is Reason.UNKNOWN_RECIPIENT
    assert [a.address for a in dead] == [ANN]


def test_access_token_never_shows() -> None:
    """The token appears in no repr and in no error text."""
    wa = make()
    assert TOKEN not in repr(wa)
    with pytest.raises(ProviderError) as caught:
        wa.parse_response(graph_error(190, 401), outbound())
    assert TOKEN not in str(caught.value)
    assert set(wa.secrets()) == {TOKEN, APP_SECRET, VERIFY_TOKEN}


# -- webhook verification --------------------------------------------------------------------------


def test_published_x_hub_signature_vector() -> None:
    """sign() reproduces the published X-Hub-Signature-256 example, and it verifies."""
    assert _meta.sign(VECTOR_BODY, VECTOR_SECRET) == VECTOR_SIGNATURE
    request = WebhookRequest(
        url=HOOK_URL, headers={"X-Hub-Signature-256": VECTOR_SIGNATURE}, body=VECTOR_BODY
    )
    _meta.verify_signature(request, VECTOR_SECRET, provider="whatsapp")
    upper = request.model_copy(
        update={"headers": {"x-hub-signature-256": VECTOR_SIGNATURE.upper()}}
    )
    _meta.verify_signature(upper, VECTOR_SECRET, provider="whatsapp")


@pytest.mark.parametrize("name", STATUS_FIXTURES + INBOUND_FIXTURES)
def test_signed_fixtures_verify(name: str) -> None:
    """Every fixture signed over its exact bytes verifies and parses into events."""
    events = make().parse_webhook(callback(fixture(name)))
    assert events
    assert all(e.provider == "whatsapp" for e in events)


def test_signature_covers_the_escaped_bytes() -> None:
    """The signature is over Meta's \\u-escaped bytes: a re-serialised UTF-8 body fails."""
    raw = fixture("inbound_text.json")
    assert b"\\u0119" in raw
    request = callback(raw)
    reencoded = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode()
    assert reencoded != raw
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(request.model_copy(update={"body": reencoded}))


def _rejected() -> list[tuple[str, WhatsApp, WebhookRequest]]:
    body = fixture("status_delivered.json")
    good = callback(body)
    return [
        ("unsigned", make(), good.model_copy(update={"headers": {}})),
        ("forged", make(), good.model_copy(update={"body": body.replace(b"delivered", b"read")})),
        ("wrong secret", make(), callback(body, secret="another-secret")),
        (
            "sha1 scheme",
            make(),
            good.model_copy(
                update={"headers": {"X-Hub-Signature-256": "sha1=" + signature(body)[7:]}}
            ),
        ),
        (
            "no prefix",
            make(),
            good.model_copy(update={"headers": {"X-Hub-Signature-256": signature(body)[7:]}}),
        ),
        ("no app secret", make(app_secret=None), good),
    ]


@pytest.mark.parametrize(("what", "wa", "request_"), _rejected(), ids=[r[0] for r in _rejected()])
def test_rejected_callbacks(what: str, wa: WhatsApp, request_: WebhookRequest) -> None:
    """Unsigned, forged, wrong-secret and malformed signatures are refused, secret-free."""
    with pytest.raises(WebhookVerificationError) as caught:
        wa.parse_webhook(request_)
    assert APP_SECRET not in str(caught.value)


def test_subscription_handshake() -> None:
    """verify_subscription returns hub.challenge for the right token and mode, else refuses."""
    wa = make()

    def handshake(query: str) -> WebhookRequest:
        return WebhookRequest(method="GET", url=f"{HOOK_URL}?{query}")

    good = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    assert wa.verify_subscription(handshake(good)) == "1158201444"
    bad = [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        f"hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1",
        f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}",
        "hub.mode=subscribe&hub.challenge=1",
        "",
    ]
    for query in bad:
        with pytest.raises(WebhookVerificationError) as caught:
            wa.verify_subscription(handshake(query))
        assert VERIFY_TOKEN not in str(caught.value)
    with pytest.raises(WebhookVerificationError):
        make(verify_token=None).verify_subscription(handshake(good))


# -- webhook parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "raw", "reason"),
    [
        ("status_sent.json", DeliveryStatus.SENT, "sent", None),
        ("status_delivered.json", DeliveryStatus.DELIVERED, "delivered", None),
        ("status_read.json", DeliveryStatus.READ, "read", None),
        (
            "status_failed_131047.json",
            DeliveryStatus.REJECTED,
            "failed",
            Reason.OUTSIDE_MESSAGING_WINDOW,
        ),
    ],
)
def test_status_webhooks(
    name: str, status: DeliveryStatus, raw: str, reason: Reason | None
) -> None:
    """Each status maps onto the lifecycle, with time, recipient, dedup id and raw payload."""
    [event] = make().parse_webhook(callback(fixture(name)))
    assert isinstance(event, DeliveryEvent)
    data = json.loads(fixture(name))
    source = data["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert event.status is status
    assert event.raw_status == raw
    assert event.reason is reason
    assert event.channel is Channel.WHATSAPP
    assert event.provider_message_id == source["id"]
    assert event.recipient == "+" + source["recipient_id"]
    assert event.occurred_at is not None
    assert event.occurred_at.timestamp() == int(source["timestamp"])
    assert event.event_id == f"{source['id']}:{raw}"
    assert event.raw == source  # conversation and pricing are kept
    assert event.message_id is None


def test_window_failure_is_described() -> None:
    """A failed status carries Meta's details as the description."""
    [event] = make().parse_webhook(callback(fixture("status_failed_131047.json")))
    assert isinstance(event, DeliveryEvent)
    assert event.description is not None
    assert event.description.startswith("Message failed to send because more than 24 hours")


def test_dead_number_status_adds_a_contact_invalid_event() -> None:
    """failed/131026 is undeliverable plus a contact_invalid event; both name our message."""
    status, invalid = make().parse_webhook(callback(fixture("status_failed_131026.json")))
    assert isinstance(status, DeliveryEvent)
    assert isinstance(invalid, DeliveryEvent)
    assert status.status is DeliveryStatus.UNDELIVERABLE
    assert status.reason is Reason.UNKNOWN_RECIPIENT
    assert invalid.event is EventType.CONTACT_INVALID
    assert invalid.status is None
    assert invalid.recipient == "+48600700822"
    assert status.message_id == invalid.message_id == "msg-dead-1"
    assert invalid.event_id != status.event_id


def test_batch_gives_every_event_in_order() -> None:
    """Two entries: sent (our id), failed/131050 plus opted_out, then an interactive reply."""
    events = make().parse_webhook(callback(fixture("batch_mixed.json")))
    sent_, failed, opted_out, reply = events
    assert isinstance(sent_, DeliveryEvent)
    assert sent_.status is DeliveryStatus.SENT
    assert sent_.message_id == "msg-batch-1"
    assert isinstance(failed, DeliveryEvent)
    assert failed.status is DeliveryStatus.REJECTED
    assert failed.reason is Reason.OPTED_OUT
    assert isinstance(opted_out, DeliveryEvent)
    assert opted_out.event is EventType.OPTED_OUT
    assert opted_out.recipient == "+48600700824"
    assert isinstance(reply, InboundMessage)
    assert reply.text == "Potwierdź"
    assert reply.sender == "+48600700823"
    assert reply.recipient == "+15550100001"
    assert reply.in_reply_to == sent_.provider_message_id
    assert reply.raw["contact"]["profile"]["name"] == "Anna Nowak"


def test_inbound_text_with_escaped_non_ascii() -> None:
    """An inbound text decodes Meta's \\u escapes; sender and recipient are E.164."""
    [message] = make().parse_webhook(callback(fixture("inbound_text.json")))
    assert isinstance(message, InboundMessage)
    assert message.channel is Channel.WHATSAPP
    assert message.text == "Czy mogę zmienić rozmiar? Does it come in another color?"
    assert message.sender == "+48600700821"
    assert message.recipient == "+15550100001"
    assert message.provider_message_id is not None
    assert message.provider_message_id.startswith("wamid.")
    assert message.received_at is not None
    assert message.raw["contact"]["profile"]["name"] == "Zoë Kowalska"


def test_inbound_image_is_media_with_its_id() -> None:
    """An inbound image gives a Media with Meta's media id and type, and its caption as text."""
    [message] = make().parse_webhook(callback(fixture("inbound_image.json")))
    assert isinstance(message, InboundMessage)
    assert message.text == "This is a caption"
    [media] = message.media
    assert media.provider_media_id == "2754859441498128"
    assert media.content_type == "image/jpeg"
    assert media.url is None


@pytest.mark.parametrize(
    ("message", "text", "in_reply_to", "filename"),
    [
        (
            {"type": "button", "button": {"payload": "STOP", "text": "Stop promotions"}},
            "Stop promotions",
            None,
            None,
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "r2", "title": "Tomorrow"},
                },
            },
            "Tomorrow",
            None,
            None,
        ),
        (
            {"type": "reaction", "reaction": {"message_id": WAMID, "emoji": "\U0001f44d"}},
            "\U0001f44d",
            WAMID,
            None,
        ),
        (
            {
                "type": "document",
                "document": {
                    "id": "77",
                    "mime_type": "application/pdf",
                    "filename": "cv.pdf",
                    "caption": "CV",
                },
            },
            "CV",
            None,
            "cv.pdf",
        ),
        ({"type": "location", "location": {"latitude": 52.2, "longitude": 21.0}}, None, None, None),
        ({"type": "unsupported", "errors": [{"code": 131051}]}, None, None, None),
    ],
    ids=["button", "list_reply", "reaction", "document", "location", "unsupported"],
)
def test_inbound_kinds(
    message: dict[str, Any], text: str | None, in_reply_to: str | None, filename: str | None
) -> None:
    """Button and list replies give their titles, reactions the emoji, documents a file."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100001", "phone_number_id": PHONE_ID},
        "messages": [
            {"from": "48600700800", "id": "wamid.in", "timestamp": "1795162300", **message}
        ],
    }
    [inbound] = make().parse_webhook(callback(webhook_body(value)))
    assert isinstance(inbound, InboundMessage)
    assert inbound.text == text
    assert inbound.in_reply_to == in_reply_to
    assert (inbound.media[0].filename if inbound.media else None) == filename


def test_system_messages_and_other_fields_give_no_events() -> None:
    """System notices and non-message fields (template updates) parse into nothing."""
    system = {
        "messages": [
            {
                "from": "48600700800",
                "id": "wamid.s",
                "type": "system",
                "system": {"body": "changed"},
            }
        ]
    }
    assert make().parse_webhook(callback(webhook_body(system))) == []
    assert make().parse_webhook(callback(fixture("template_status_update.json"))) == []


def test_unknown_status_is_kept() -> None:
    """An unknown status is unknown with the raw value; failed without errors stays failed."""
    value = {
        "statuses": [
            {"id": "wamid.1", "status": "deleted", "timestamp": "1795161601", "recipient_id": "1"},
            {"id": "wamid.2", "status": "failed", "timestamp": "x", "recipient_id": "2"},
        ]
    }
    unknown, failed = make().parse_webhook(callback(webhook_body(value)))
    assert isinstance(unknown, DeliveryEvent)
    assert unknown.status is DeliveryStatus.UNKNOWN
    assert unknown.raw_status == "deleted"
    assert isinstance(failed, DeliveryEvent)
    assert failed.status is DeliveryStatus.FAILED
    assert failed.reason is None
    assert failed.occurred_at is None


def test_status_map_values() -> None:
    """The status table covers Meta's documented statuses."""
    assert set(STATUS_MAP) >= {"sent", "delivered", "read", "failed"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"null",
        b"[]",
        b'{"object":"page","entry":[]}',
        b'{"object":"whatsapp_business_account"}',
        b'{"object":"whatsapp_business_account","entry":[1]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":{}}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"statuses":[{"id":1}]}}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":5}]}}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":"x"}}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"statuses":[{"id":"w","status":"sent","timestamp":"99999999999999999999"}]}}]}]}',
    ],
)
def test_malformed_bodies_raise_only_our_errors(body: bytes) -> None:
    """Broken bodies give a list or WebhookParseError, never a foreign exception."""
    try:
        events = make().parse_webhook(WebhookRequest(url=HOOK_URL, body=body), verify=False)
    except WebhookParseError:
        return
    assert isinstance(events, list)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(STATUS_FIXTURES + INBOUND_FIXTURES), data=st.data())
def test_mutated_fixtures_raise_only_our_errors(name: str, data: st.DataObject) -> None:
    """Fixture bodies with random byte edits parse or raise only anysend's webhook errors."""
    body = edited_bytes(fixture(name), data)
    request = WebhookRequest(url=HOOK_URL, body=body)
    try:
        events = make().parse_webhook(request, verify=False)
    except (WebhookParseError, WebhookVerificationError):
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


# -- settings --------------------------------------------------------------------------------------


def test_url_form_configures_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """whatsapp://PHONE_ID:TOKEN@default?app_secret=... fills the settings."""
    monkeypatch.setattr(_config, "load", lambda name: WhatsApp)
    wa = _config.from_url(
        f"whatsapp://{PHONE_ID}:{TOKEN}@default?app_secret={APP_SECRET}"
        f"&verify_token={VERIFY_TOKEN}&prefer_template=true"
    )
    assert isinstance(wa, WhatsApp)
    assert wa.settings == WhatsAppSettings(
        access_token=TOKEN,
        phone_number_id=PHONE_ID,
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
        prefer_template=True,
    )
    assert TOKEN not in repr(wa)


@pytest.mark.parametrize(
    "settings_",
    [
        {"phone_number_id": "+15550100001"},
        {"api_version": "21.0"},
        {"access_token": None},
    ],
)
def test_invalid_settings(settings_: dict[str, Any]) -> None:
    """A phone number instead of its id, a malformed version or no token is refused."""
    with pytest.raises(anysend.ConfigurationError) as caught:
        make(**settings_)
    assert TOKEN not in str(caught.value)


# -- the contract kit ------------------------------------------------------------------------------


class TestWhatsAppContract(ProviderContract):
    """The shared adapter contract, run against WhatsApp."""

    expected_provider_message_id = WAMID
    unknown_raw_status = "warning"
    signature_headers = ("X-Hub-Signature-256",)

    def make_provider(self) -> WhatsApp:
        """A WhatsApp adapter with test settings."""
        return make()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Meta's answer to an upload or a send."""
        if request.url.path.endswith("/media"):
            return httpx.Response(200, json={"id": "555"}, request=request)
        return httpx.Response(200, json=sent().json(), request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Meta's own error codes."""
        return [
            ErrorCase(
                name="131026 not on WhatsApp",
                status=400,
                body=graph_error(131026).json(),
                category=ErrorCategory.INVALID_RECIPIENT,
                retryable=False,
            ),
            ErrorCase(
                name="131047 window closed",
                status=400,
                body=graph_error(131047).json(),
                category=ErrorCategory.CONTENT_REJECTED,
                retryable=False,
            ),
            ErrorCase(
                name="130429 throughput",
                status=429,
                body=graph_error(130429).json(),
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
            ),
            ErrorCase(
                name="190 token expired",
                status=401,
                body=graph_error(190).json(),
                category=ErrorCategory.AUTH,
                retryable=False,
            ),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A signed delivered status."""
        return callback(fixture("status_delivered.json"))

    def wrong_secret_webhook(self) -> WebhookRequest:
        """A status signed with another app secret."""
        return callback(fixture("status_delivered.json"), secret="not-the-app-secret")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A signed status Meta might add later."""
        value = {"statuses": [{"id": WAMID, "status": "warning", "timestamp": "1795161601"}]}
        return callback(webhook_body(value))

    def inbound_webhook(self) -> WebhookRequest:
        """A signed inbound text."""
        return callback(fixture("inbound_text.json"))


# -- answers to callbacks --------------------------------------------------------------------------


def test_handshake_answers_the_challenge_as_plain_text() -> None:
    """handshake: 200 with hub.challenge as text/plain; a wrong token raises (answer 4xx)."""
    wa = make()
    query = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    good = WebhookRequest(method="GET", url=f"{HOOK_URL}?{query}")
    assert wa.handshake(good) == WebhookResponse(
        status=200, body=b"1158201444", content_type="text/plain; charset=utf-8"
    )
    wrong = WebhookRequest(method="GET", url=f"{HOOK_URL}?{query.replace(VERIFY_TOKEN, 'no')}")
    with pytest.raises(WebhookVerificationError) as caught:
        wa.handshake(wrong)
    assert VERIFY_TOKEN not in str(caught.value)
    with pytest.raises(WebhookVerificationError):
        make(verify_token=None).handshake(good)


def test_callbacks_get_a_plain_200() -> None:
    """Meta needs only a 200 for a webhook POST."""
    wa = make()
    request = callback(fixture("inbound_text.json"))
    assert wa.webhook_response(request, wa.parse_webhook(request)) == WebhookResponse()
    assert WhatsApp.webhook_methods == frozenset({"POST"})
