"""The Webhook adapter: signed JSON POSTs, the receiver's verify_signature, error mapping."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

import anysend
from anysend import (
    Channel,
    ConfigurationError,
    ErrorCategory,
    Message,
    OutboundMessage,
    ProviderError,
    Recipient,
    RetryPolicy,
    SkipReason,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._transport import RawResponse
from anysend.providers.webhook import (
    ERROR_STATUSES,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhook,
    sign,
    verify_signature,
)
from anysend.testing import MemoryProvider, VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

NOW = 1_700_000_000
SENT_AT = "2023-11-14T22:13:20Z"  # NOW in ISO 8601 UTC
SECRET = "whsec_test_5f2b9c0e7d4a"
API_KEY = "crm-api-key-8c1d77e0a9"
CRM_URL = "https://crm.example.test/hooks/anysend"
ANN_URL = "https://hooks.example.test/people/ann"
ANN = Recipient(
    id="user-42",
    email="ann@example.com",
    phone="+48600700800",
    locale="pl-PL",
    webhook_url=ANN_URL,
    name="Ann",
)
MESSAGE = Message(
    text="Call Ann back",
    category="support",
    metadata={"ticket": "T-1042"},
    tags=("vip", "callback"),
    idempotency_key="ticket-1042",
)
USER_AGENT = f"anysend/{anysend.__version__}"


def make(**settings: Any) -> Webhook:
    """A Webhook adapter with its clock pinned to NOW."""
    hook = Webhook(**settings)
    hook.now = lambda: float(NOW)
    return hook


def outbound(to: str = ANN_URL, **fields: Any) -> OutboundMessage:
    """A webhook-channel message as the client would hand it to the adapter."""
    fields.setdefault("text", "Call Ann back")
    return OutboundMessage(id="msg-1", channel=Channel.WEBHOOK, to=to, **fields)


def expected_body(message_id: str) -> bytes:
    """The exact body MESSAGE to ANN serialises to."""
    return (
        '{"category":"support","channel":"webhook","html":null,"id":"'
        + message_id
        + '","metadata":{"ticket":"T-1042"},"recipient":{"email":"ann@example.com",'
        '"id":"user-42","locale":"pl-PL","phone":"+48600700800"},"sent_at":"'
        + SENT_AT
        + '","subject":null,"tags":["vip","callback"],"text":"Call Ann back",'
        '"type":"anysend.message","version":1}'
    ).encode()


def signed_headers(body: bytes, *, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    """The signature headers the adapter sends for ``body``."""
    return {TIMESTAMP_HEADER: str(at), SIGNATURE_HEADER: sign(body, secret, at)}


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_request_is_signed_json_to_the_recipient_url(respx_mock: respx.MockRouter) -> None:
    """Client sends one POST to the recipient's URL: exact headers, signature and body bytes."""
    route = respx_mock.post(ANN_URL).mock(return_value=httpx.Response(200, json={"id": "crm-1"}))
    hook = make(url=CRM_URL, secret=SECRET, headers={"X-Api-Key": API_KEY})
    with anysend.Client([hook], clock=VirtualClock()) as client:
        result = client.send(MESSAGE, to=ANN, via=["webhook"])
    assert result.ok
    assert result.provider_message_id == "crm-1"
    assert result.address == ANN_URL
    request = route.calls.last.request
    body = expected_body(result.message_id)
    assert request.method == "POST"
    assert str(request.url) == ANN_URL
    assert request.read() == body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["idempotency-key"] == "ticket-1042"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["x-anysend-timestamp"] == str(NOW)
    assert request.headers["x-anysend-signature"] == sign(body, SECRET, NOW)
    verify_signature(request.read(), request.headers, SECRET, now=NOW)


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_posts_unsigned_to_the_configured_url(
    respx_mock: respx.MockRouter,
) -> None:
    """AsyncClient: no recipient URL goes to the configured url; no secret, no signature."""
    route = respx_mock.post(CRM_URL).mock(return_value=httpx.Response(204))
    async with anysend.AsyncClient([make(url=CRM_URL)], clock=VirtualClock()) as client:
        result = await client.send(Message(text="Hello"), to={"id": "user-7"}, via=["webhook"])
    assert result.ok
    assert result.provider_message_id == result.message_id  # no id in the answer: ours
    assert result.address == ""
    request = route.calls.last.request
    assert TIMESTAMP_HEADER not in request.headers
    assert SIGNATURE_HEADER not in request.headers
    assert request.headers["idempotency-key"] == result.message_id
    assert json.loads(request.read()) == {
        "type": "anysend.message",
        "version": 1,
        "id": result.message_id,
        "channel": "webhook",
        "category": None,
        "subject": None,
        "text": "Hello",
        "html": None,
        "recipient": {"id": "user-7"},
        "metadata": {},
        "tags": [],
        "sent_at": SENT_AT,
    }


def test_body_is_deterministic_compact_and_utf8() -> None:
    """The same message gives the same bytes: sorted keys, no spaces, UTF-8 text."""
    hook = make()
    message = outbound(text="Zażółć gęślą jaźń", subject="Zgłoszenie", html="<p>Hi</p>")
    first, second = hook.build_request(message), hook.build_request(message)
    assert first.content == second.content
    assert b" " not in first.content.replace("Zażółć gęślą jaźń".encode(), b"")
    assert "Zażółć gęślą jaźń".encode() in first.content
    data = json.loads(first.content)
    assert list(data) == sorted(data)
    assert (data["subject"], data["html"]) == ("Zgłoszenie", "<p>Hi</p>")


def test_each_try_is_signed_with_its_own_time() -> None:
    """A retry built later carries a later timestamp and a signature that matches it."""
    hook = make(secret=SECRET)
    first = hook.build_request(outbound())
    hook.now = lambda: float(NOW + 7)
    second = hook.build_request(outbound())
    assert second.headers[TIMESTAMP_HEADER] == str(NOW + 7)
    assert second.headers[SIGNATURE_HEADER] == sign(second.content, SECRET, NOW + 7)
    assert second.headers[SIGNATURE_HEADER] != first.headers[SIGNATURE_HEADER]


# -- addressless -----------------------------------------------------------------------------------


def test_addressless_only_with_a_configured_url() -> None:
    """capabilities.addressless is per instance: on with url, off without; the class unchanged."""
    assert make(url=CRM_URL).capabilities.addressless
    assert not make().capabilities.addressless
    assert not Webhook.capabilities.addressless


def test_without_url_a_recipient_without_webhook_url_is_skipped() -> None:
    """No configured url and no recipient URL: the channel is skipped for lack of an address."""
    with anysend.Client([make()], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to={"id": "u"}, via=["webhook"])
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.skip_reason is SkipReason.NO_ADDRESS


def test_nowhere_to_send_fails_before_the_network() -> None:
    """check_supported refuses a message with no recipient URL when no url is configured."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(to=""))
    assert caught.value.category is ErrorCategory.CONFIGURATION
    assert caught.value.provider == "webhook"


# -- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected_id"),
    [
        (httpx.Response(200, json={"id": "crm-9", "queued": True}), "crm-9"),
        (httpx.Response(201, json={"id": 123}), "123"),
        (httpx.Response(202, json={"status": "queued"}), "msg-1"),
        (httpx.Response(204), "msg-1"),
        (httpx.Response(200, text="OK"), "msg-1"),
    ],
)
def test_any_2xx_is_accepted(answer: httpx.Response, expected_id: str) -> None:
    """Any 2xx is a receipt: the answer's id when it gives one, else anysend's message id."""
    receipt = make().parse_response(answer, outbound())
    assert receipt.provider_message_id == expected_id


@pytest.mark.parametrize(
    ("status", "to", "category"),
    [
        (400, ANN_URL, ErrorCategory.CONTENT_REJECTED),
        (422, ANN_URL, ErrorCategory.CONTENT_REJECTED),
        (404, ANN_URL, ErrorCategory.INVALID_RECIPIENT),
        (410, ANN_URL, ErrorCategory.INVALID_RECIPIENT),
        (404, "", ErrorCategory.CONFIGURATION),
        (410, "", ErrorCategory.CONFIGURATION),
        (401, ANN_URL, ErrorCategory.AUTH),
        (403, ANN_URL, ErrorCategory.AUTH),
        (413, ANN_URL, ErrorCategory.PAYLOAD_TOO_LARGE),
        (409, ANN_URL, ErrorCategory.UNKNOWN),
        (500, ANN_URL, ErrorCategory.UNAVAILABLE),
        (503, "", ErrorCategory.UNAVAILABLE),
    ],
)
def test_error_statuses(status: int, to: str, category: ErrorCategory) -> None:
    """Each documented status maps to its category; 404/410 of the configured url is config."""
    hook = make(url=CRM_URL)
    answer = httpx.Response(status, json={"error": "nope"})
    with pytest.raises(ProviderError) as caught:
        hook.parse_response(answer, outbound(to=to))
    assert caught.value.category is category
    assert (caught.value.status_code, caught.value.provider) == (status, "webhook")
    assert caught.value.code == "nope"


def test_error_statuses_table_is_what_the_adapter_uses() -> None:
    """ERROR_STATUSES is the documented table of the receiver's own statuses."""
    assert ERROR_STATUSES == {
        400: ErrorCategory.CONTENT_REJECTED,
        404: ErrorCategory.INVALID_RECIPIENT,
        410: ErrorCategory.INVALID_RECIPIENT,
        422: ErrorCategory.CONTENT_REJECTED,
    }


@respx.mock
def test_rate_limit_honours_retry_after_through_the_client(respx_mock: respx.MockRouter) -> None:
    """A 429 with Retry-After: 4 is retried after 4 seconds, then accepted."""
    respx_mock.post(ANN_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "4"}, text="slow down"),
            httpx.Response(200, json={"id": "crm-2"}),
        ]
    )
    clock = VirtualClock()
    with anysend.Client([make(secret=SECRET)], clock=clock) as client:
        result = client.send(MESSAGE, to=ANN, via=["webhook"])
    assert result.provider_message_id == "crm-2"
    error = result.attempts[0].error
    assert error is not None
    assert (error.category, error.retry_after) == (ErrorCategory.RATE_LIMITED, 4.0)


@respx.mock
def test_gone_endpoint_moves_on_to_the_next_channel(respx_mock: respx.MockRouter) -> None:
    """A 410 from the recipient's URL is invalid_recipient: the next channel is tried."""
    respx_mock.post(ANN_URL).mock(return_value=httpx.Response(410, text="Gone"))
    email = MemoryProvider(name="mail", channels=frozenset({Channel.EMAIL}))
    retry = RetryPolicy(max_attempts=1)
    with anysend.Client([make(), email], clock=VirtualClock(), retry=retry) as client:
        result = client.send(MESSAGE, to=ANN, via=["webhook", "email"])
    assert result.channel is Channel.EMAIL
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.INVALID_RECIPIENT


# -- settings and secrets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"url": "crm.example.test/hooks"},
        {"url": "ftp://crm.example.test/hooks"},
        {"secret": ""},
        {"headers": {"Content-Type": "text/plain"}},
        {"headers": {"X-Anysend-Signature": "v1=forged"}},
        {"headers": {"idempotency-key": "fixed"}},
        {"headers": {"X-Api-Key": "a\r\nX-Evil: 1"}},
        {"timeout": 5},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any]) -> None:
    """Bad URLs, empty secrets, reserved or CR/LF headers and unknown settings are refused."""
    with pytest.raises(ConfigurationError):
        Webhook(**settings)


def test_secrets_never_printed() -> None:
    """The signing secret and header values show in no repr, setting dump or error."""
    hook = make(url=CRM_URL, secret=SECRET, headers={"X-Api-Key": API_KEY})
    assert set(hook.secrets()) == {SECRET, API_KEY}
    with pytest.raises(ProviderError) as caught:
        hook.parse_response(httpx.Response(401, text="bad key"), outbound())
    shown = [repr(hook), str(hook.settings), repr(caught.value), str(caught.value)]
    for text in shown:
        assert SECRET not in text
        assert API_KEY not in text


# -- verify_signature (the receiver's side) --------------------------------------------------------

BODY = b'{"id":"msg-1","text":"Call Ann back","type":"anysend.message","version":1}'


def test_verify_signature_accepts_a_genuine_request() -> None:
    """A body signed with the secret at the current time verifies."""
    verify_signature(BODY, signed_headers(BODY), SECRET, now=NOW + 10)


def test_verify_signature_accepts_any_header_case_and_mapping() -> None:
    """Header names match case-insensitively, from a plain dict or httpx.Headers."""
    lowered = {k.lower(): v for k, v in signed_headers(BODY).items()}
    verify_signature(BODY, lowered, SECRET, now=NOW)
    verify_signature(BODY, httpx.Headers(signed_headers(BODY)), SECRET, now=NOW)


def test_verify_signature_accepts_v1_among_several_signatures() -> None:
    """A v1 signature among others (a future scheme) is found."""
    headers = signed_headers(BODY)
    headers[SIGNATURE_HEADER] = f"v2=abc, {headers[SIGNATURE_HEADER]}"
    verify_signature(BODY, headers, SECRET, now=NOW)


def test_verify_signature_rejects_a_tampered_body() -> None:
    """One changed byte of the body fails verification."""
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_signature(BODY.replace(b"Ann", b"Bob"), signed_headers(BODY), SECRET, now=NOW)


def test_verify_signature_rejects_a_wrong_secret() -> None:
    """A request signed with another secret fails verification."""
    headers = signed_headers(BODY, secret="whsec_someone_else")
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_signature(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize("drift", [-301, 301, -3600])
def test_verify_signature_rejects_stale_timestamps(drift: int) -> None:
    """A signature older or newer than the tolerance is a replay."""
    with pytest.raises(WebhookVerificationError, match="seconds from now"):
        verify_signature(BODY, signed_headers(BODY), SECRET, now=NOW + drift)


def test_verify_signature_tolerance_is_configurable() -> None:
    """A larger tolerance accepts an older signature; the boundary itself is inside."""
    verify_signature(BODY, signed_headers(BODY), SECRET, now=NOW + 300)
    verify_signature(BODY, signed_headers(BODY), SECRET, now=NOW + 3600, tolerance=3600)


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_verify_signature_rejects_missing_headers(missing: str) -> None:
    """Without the timestamp or the signature header nothing verifies."""
    headers = {k: v for k, v in signed_headers(BODY).items() if k != missing}
    with pytest.raises(WebhookVerificationError, match=f"no {missing}"):
        verify_signature(BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [("yesterday", None), (str(NOW), "deadbeef"), (str(NOW), "v1=")],
)
def test_verify_signature_rejects_malformed_headers(timestamp: str, signature: str | None) -> None:
    """A timestamp that is no integer, or a signature without v1=, is refused."""
    headers = signed_headers(BODY)
    headers[TIMESTAMP_HEADER] = timestamp
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    with pytest.raises(WebhookVerificationError):
        verify_signature(BODY, headers, SECRET, now=NOW)


def test_verify_signature_refuses_an_empty_secret() -> None:
    """An empty secret is a programming error, not a verification result."""
    with pytest.raises(ValueError, match="empty"):
        verify_signature(BODY, signed_headers(BODY), "", now=NOW)


def test_verify_signature_errors_do_not_quote_the_secret() -> None:
    """Verification errors never contain the secret."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(BODY, signed_headers(BODY, secret="other"), SECRET, now=NOW)
    assert SECRET not in str(caught.value)


def test_adapter_verifies_its_own_requests() -> None:
    """verify_webhook accepts a request the adapter signed and refuses a changed one."""
    hook = make(secret=SECRET)
    sent = hook.build_request(outbound())
    received = WebhookRequest(url=ANN_URL, headers=dict(sent.headers), body=sent.content)
    hook.verify_webhook(received)
    forged = received.model_copy(update={"body": sent.content.replace(b"Ann", b"Bob")})
    with pytest.raises(WebhookVerificationError):
        hook.verify_webhook(forged)
    hook.now = lambda: float(NOW + 301)
    with pytest.raises(WebhookVerificationError):
        hook.verify_webhook(received)


def test_adapter_without_secret_verifies_nothing() -> None:
    """Without a secret verify_webhook refuses every request; webhooks are not parsed."""
    hook = make()
    with pytest.raises(WebhookVerificationError, match="no secret"):
        hook.verify_webhook(WebhookRequest(url=ANN_URL, headers=signed_headers(BODY), body=BODY))
    assert not hook.capabilities.webhooks


# -- the contract kit ------------------------------------------------------------------------------


class TestWebhookContract(ProviderContract):
    """The contract kit run against the Webhook adapter."""

    expected_provider_message_id = "crm-1"

    def make_provider(self) -> Webhook:
        """A Webhook with a configured url, a secret and an API-key header."""
        return make(url=CRM_URL, secret=SECRET, headers={"X-Api-Key": API_KEY})

    def sample_message(self) -> OutboundMessage:
        """A webhook-channel message to a recipient URL."""
        return outbound(idempotency_key="contract-key-1")

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """The receiver accepts with its own id."""
        return httpx.Response(200, json={"id": "crm-1"}, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """The receiver's statuses and what they become."""
        cases = [
            (400, ErrorCategory.CONTENT_REJECTED),
            (422, ErrorCategory.CONTENT_REJECTED),
            (404, ErrorCategory.INVALID_RECIPIENT),
            (410, ErrorCategory.INVALID_RECIPIENT),
            (401, ErrorCategory.AUTH),
            (403, ErrorCategory.AUTH),
            (503, ErrorCategory.UNAVAILABLE),
        ]
        return [
            ErrorCase(
                name=f"HTTP {status}",
                status=status,
                body={"error": "refused"},
                category=category,
                retryable=category.retryable,
            )
            for status, category in cases
        ] + [
            ErrorCase(
                name="HTTP 429 with Retry-After",
                status=429,
                body="slow down",
                headers={"Retry-After": "12"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=12.0,
            )
        ]


# -- the raw path (what AsyncClient sends through aiohttp) -----------------------------------------


def wire(request: httpx.Request) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """A request as it goes on the wire: method, URL, headers in order, body."""
    headers = [(k.decode(), v.decode()) for k, v in request.headers.raw]
    return request.method, str(request.url), headers, request.read()


RAW_CASES = {
    "signed, extra header, to the recipient": (
        {"secret": SECRET, "headers": {"X-Api-Key": API_KEY}},
        {"recipient": ANN, "idempotency_key": "ticket-1042", "metadata": {"b": "2", "a": "1"}},
        ANN_URL,
    ),
    "unsigned, to the configured url": ({"url": CRM_URL}, {}, ""),
    "a port, a query and a non-ASCII path": (
        {"url": "http://127.0.0.1:8080/hooks/żółw?team=a b&x=%2F"},
        {"subject": "Zażółć", "html": "<b>gęślą</b>", "tags": ("a", "b"), "category": "c"},
        "",
    ),
    "an https URL with its default port": (
        {"url": "https://crm.example.test:443/hook"},
        {"idempotency_key": None},
        "",
    ),
}


@pytest.mark.parametrize(("settings", "fields", "to"), RAW_CASES.values(), ids=RAW_CASES.keys())
def test_the_raw_request_is_the_httpx_request(
    settings: dict[str, Any], fields: dict[str, Any], to: str
) -> None:
    hook = make(**settings)
    message = outbound(to, **fields)

    raw = hook.raw_request(message)

    assert raw is not None
    assert (raw.method, raw.url, list(raw.headers.items()), raw.content) == wire(
        hook.build_request(message)
    )
    assert wire(raw.to_httpx()) == wire(hook.build_request(message))


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"url": CRM_URL, "headers": {"X-Name": "Zoë"}}, "k-1"),  # httpx refuses the value
        ({"url": CRM_URL, "headers": {"X-A": "1", "x-a": "2"}}, "k-1"),  # httpx sends both
        ({"url": CRM_URL, "headers": {"user-agent": "mine"}}, "k-1"),
        ({"url": CRM_URL}, "klucz-żółw"),  # a non-ASCII idempotency key
    ],
)
def test_no_raw_request_for_headers_httpx_treats_its_own_way(
    settings: dict[str, Any], key: str
) -> None:
    assert make(**settings).raw_request(outbound("", idempotency_key=key)) is None


def raw_answer(answer: httpx.Response) -> RawResponse:
    body = answer.read()
    return RawResponse(
        answer.status_code,
        headers=answer.headers,
        raw_headers=answer.headers.raw,
        body=body,
        reason_phrase=answer.reason_phrase,
    )


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"id": "crm-9", "queued": True}),
        httpx.Response(201, json={"id": 123}),
        httpx.Response(201, json={"id": True}),
        httpx.Response(202, json={"status": "queued"}),
        httpx.Response(200, json=["a", 1]),
        httpx.Response(200, json="text"),
        httpx.Response(204),
        httpx.Response(200, content=b""),
    ],
)
def test_the_raw_receipt_is_the_parsed_receipt(answer: httpx.Response) -> None:
    hook = make()
    message = outbound()

    receipt = hook.raw_receipt(raw_answer(answer), message)

    assert receipt == hook.parse_response(answer, message)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="OK"),  # text: its charset is httpx's to work out
        httpx.Response(200, content="żółw".encode("utf-16")),
        httpx.Response(503, json={"error": "down"}),
        httpx.Response(404),
    ],
)
def test_other_answers_are_left_to_parse_response(answer: httpx.Response) -> None:
    assert make().raw_receipt(raw_answer(answer), outbound()) is None


@given(
    text=st.none() | st.text(),
    subject=st.none() | st.text(),
    category=st.none() | st.text(max_size=20),
    metadata=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    tags=st.lists(st.text(max_size=10), max_size=4).map(tuple),
    name=st.none() | st.text(min_size=1, max_size=20),
)
def test_the_body_is_json_dumps_of_the_payload(
    text: str | None,
    subject: str | None,
    category: str | None,
    metadata: dict[str, str],
    tags: tuple[str, ...],
    name: str | None,
) -> None:
    """The hand-written body is exactly the sorted, compact JSON of the payload."""
    hook = make()
    message = OutboundMessage(
        id="msg-1",
        channel=Channel.WEBHOOK,
        to="",
        recipient=Recipient(id=name, email="ann@example.com" if name else None),
        text=text,
        subject=subject,
        category=category,
        metadata=metadata,
        tags=tags,
    )
    payload = hook._payload(message, NOW)
    expected = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        body = hook.body(message, NOW)
    except UnicodeEncodeError:  # a lone surrogate: json.dumps' text cannot be encoded either
        with pytest.raises(UnicodeEncodeError):
            expected.encode("utf-8")
        return
    assert body == expected.encode("utf-8")
