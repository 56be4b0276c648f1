"""The SMSAPI adapter: the form request, errors in 200 bodies, URL-secret callbacks, batches."""

from __future__ import annotations

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
    RetryPolicy,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import Provider, WebhookResponse, to_url
from anysend.providers import _config as config
from anysend.providers.smsapi import (
    ERROR_CODES,
    REASONS,
    SMSAPI,
    STATUS_MAP,
    STATUS_NAMES,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "smsapi"
TOKEN = "smsapi-oauth-test-token-5c2e"
SECRET = "cb-secret-8d1f0a7c3e9b4d26"
OTHER_SECRET = "cb-secret-0000000000000000"
HOOK = f"https://app.example.com/hooks/smsapi/{SECRET}"
PL_URL = "https://api.smsapi.pl/sms.do"
ENTRY: dict[str, Any] = {
    "id": "6F00000000000000000000A1",
    "points": 0.16,
    "number": "48600700800",
    "date_sent": 1795161600,
    "submitted_number": "48600700800",
    "status": "QUEUE",
    "error": None,
    "idx": "msg-1",
}
ACCEPTED: dict[str, Any] = {"count": 1, "list": [ENTRY]}


def make(**settings: Any) -> SMSAPI:
    """An SMSAPI adapter with a test token, sender and callback secret."""
    settings.setdefault("token", TOKEN)
    settings.setdefault("sender", "Sklep")
    settings.setdefault("callback_secret", SECRET)
    return SMSAPI(**settings)


def outbound(**fields: Any) -> OutboundMessage:
    """An SMS as the client hands it to the adapter."""
    fields.setdefault("text", "Paczka jest w drodze")
    fields.setdefault("to", "+48600700800")
    return OutboundMessage(id="msg-1", channel=Channel.SMS, **fields)


def fixture(name: str) -> bytes:
    """The raw bytes of a fixture file."""
    return (FIXTURES / name).read_bytes()


def report(name: str, *, base: str = HOOK) -> WebhookRequest:
    """A GET delivery report: the fixture's query string on the secret callback URL."""
    joiner = "&" if "?" in base else "?"
    return WebhookRequest(method="GET", url=f"{base}{joiner}{fixture(name).decode()}")


def mo(name: str = "mo_sms.form", *, base: str = HOOK) -> WebhookRequest:
    """A POSTed inbound message on the secret callback URL."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return WebhookRequest(method="POST", url=base, headers=headers, body=fixture(name))


def events(request: WebhookRequest, adapter: SMSAPI | None = None) -> list[DeliveryEvent]:
    """The DeliveryEvents a verified callback parses into."""
    parsed = (adapter or make()).parse_webhook(request)
    assert all(isinstance(e, DeliveryEvent) for e in parsed)
    return [e for e in parsed if isinstance(e, DeliveryEvent)]


def answer(body: Any, status: int = 200) -> httpx.Response:
    """An SMSAPI answer with a JSON body."""
    return httpx.Response(status, json=body)


# -- the request -----------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_request_is_a_form_with_bearer_token(respx_mock: respx.MockRouter) -> None:
    """Client POSTs the documented form to /sms.do with the bearer token and check_idx."""
    route = respx_mock.post(PL_URL).mock(return_value=httpx.Response(200, json=ACCEPTED))
    smsapi = make(callback_url=HOOK, normalize=True)
    with anysend.Client([smsapi], clock=VirtualClock()) as client:
        result = client.send(Message(text="Paczka jest w drodze"), to={"phone": "+48600700800"})
    assert result.ok
    assert result.provider_message_id == "6F00000000000000000000A1"
    assert result.receipt is not None
    assert result.receipt.raw == ACCEPTED
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == PL_URL
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode(), keep_blank_values=True)
    assert form == {
        "to": ["48600700800"],
        "from": ["Sklep"],
        "message": ["Paczka jest w drodze"],
        "format": ["json"],
        "encoding": ["utf-8"],
        "idx": [result.message_id],
        "check_idx": ["1"],
        "notify_url": [HOOK],
        "normalize": ["1"],
    }


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_uses_the_com_platform(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: region com goes to api.smsapi.com; no sender or callback, none sent."""
    route = respx_mock.post("https://api.smsapi.com/sms.do").mock(
        return_value=httpx.Response(200, json=ACCEPTED)
    )
    smsapi = SMSAPI(token=TOKEN, region="com")
    async with anysend.AsyncClient([smsapi], clock=VirtualClock()) as client:
        result = await client.send(Message(text="Hi"), to={"phone": "+48600700800"})
    assert result.ok
    form = parse_qs(route.calls.last.request.content.decode())
    assert set(form) == {"to", "message", "format", "encoding", "idx", "check_idx"}


def test_send_at_options_and_sender() -> None:
    """send_at becomes date (UTC seconds) with date_validate; options are added as 1/0 text."""
    when = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
    message = outbound(
        send_at=when, sender="Firma", provider_options={"fast": True, "max_parts": 3}
    )
    form = parse_qs(make().build_request(message).content.decode())
    assert form["date"] == [str(int(when.timestamp()))]
    assert form["date_validate"] == ["1"]
    assert (form["fast"], form["max_parts"], form["from"]) == (["1"], ["3"], ["Firma"])
    naive = parse_qs(make().build_request(outbound(send_at=when.replace(tzinfo=None))).content)
    assert naive[b"date"] == [str(int(when.timestamp())).encode()]
    receipt = make().parse_response(answer(ACCEPTED), message)
    assert receipt.status is DeliveryStatus.SCHEDULED


def test_empty_text_is_refused_before_the_network() -> None:
    """A message without text is content_rejected by check_supported."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(outbound(text=""))
    assert caught.value.category is ErrorCategory.CONTENT_REJECTED


@pytest.mark.parametrize(
    "settings",
    [
        {"region": "bg"},
        {"callback_secret": "short"},
        {"callback_secret": "has spaces in it, sixteen+"},
        {"callback_url": "/hooks/smsapi"},
        {"callback_url": "https://app.example.com/hooks/smsapi/other-segment-1234"},
    ],
)
def test_invalid_settings(settings: dict[str, Any]) -> None:
    """Unknown regions, weak secrets and callback URLs without the secret are refused."""
    with pytest.raises(ConfigurationError) as caught:
        make(**settings)
    assert SECRET not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_secret_may_ride_in_the_query() -> None:
    """A callback URL with ?token=<secret> is accepted, and so are callbacks to it."""
    url = f"https://app.example.com/hooks/smsapi?token={SECRET}"
    smsapi = make(callback_url=url)
    [event] = events(report("dlr_404_delivered.query", base=url), smsapi)
    assert event.status is DeliveryStatus.DELIVERED
    assert "token" not in event.raw


def test_url_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """smsapi://:TOKEN@default?from=...&region=com builds it; to_url hides token and URL."""

    def load(name: str) -> type[Provider]:
        """The registry, as it will be once smsapi is registered."""
        assert name == "smsapi"
        return SMSAPI

    monkeypatch.setattr(config, "load", load)
    smsapi = config.from_url(f"smsapi://:{TOKEN}@default?from=Sklep&region=com")
    assert isinstance(smsapi, SMSAPI)
    assert smsapi.settings.token.get_secret_value() == TOKEN
    assert (smsapi.settings.sender, smsapi.base_url) == ("Sklep", "https://api.smsapi.com")
    with_hook = make(callback_url=HOOK)
    shown = to_url(with_hook)
    assert TOKEN not in shown
    assert SECRET not in shown
    assert SECRET not in repr(with_hook)


# -- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "category", "code"),
    [
        (200, {"error": 13, "message": "No correct phone numbers"}, "invalid_recipient", "13"),
        (200, {"error": 11, "message": "Message too long"}, "content_rejected", "11"),
        (200, {"error": 12, "message": "More parts than max_parts"}, "payload_too_large", "12"),
        (200, {"error": 8, "message": "Error in request"}, "unknown", "8"),
        (400, {"error": 14, "message": "Wrong sender name"}, "configuration", "14"),
        (200, {"error": 57, "message": "Number is blacklisted"}, "opted_out", "57"),
        (200, {"error": 59, "message": "Number on OptOut list"}, "opted_out", "59"),
        (401, {"error": 101, "message": "Invalid authorization info"}, "auth", "101"),
        (200, {"error": 102, "message": "Invalid username or password"}, "auth", "102"),
        (200, {"error": "103", "message": "Insufficient credits"}, "quota", "103"),
        (200, {"error": 105, "message": "Wrong IP address"}, "auth", "105"),
        (200, {"error": 201, "message": "System internal error"}, "unavailable", "201"),
        (200, {"error": 202, "message": "Too many simultaneous requests"}, "rate_limited", "202"),
        (200, {"error": 203, "message": "Too many requests"}, "rate_limited", "203"),
        (200, {"error": 4242, "message": "Future error"}, "unknown", "4242"),
        (500, {"error": 4242, "message": "Future error"}, "unavailable", "4242"),
    ],
)
def test_error_codes(status: int, body: dict[str, Any], category: str, code: str) -> None:
    """Error codes map onto categories, also in HTTP 200 bodies; unknown codes follow the status."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer(body, status), outbound())
    error = caught.value
    assert error.category is ErrorCategory(category)
    assert error.retryable is ErrorCategory(category).retryable
    assert (error.code, error.provider, error.status_code) == (code, "smsapi", status)
    assert body["message"] in error.message
    assert error.raw == body


def test_error_inside_the_list_entry() -> None:
    """An accepted request whose list entry carries an error code still fails."""
    body = {"count": 1, "list": [ENTRY | {"error": 13}]}
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer(body), outbound())
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT


def test_idx_already_used_is_accepted() -> None:
    """Error 53 (idx already sent, check_idx=1) means a former try went through: accepted."""
    body = {"error": 53, "message": "Not unique idx parameter"}
    receipt = make().parse_response(answer(body), outbound())
    assert receipt.status is DeliveryStatus.ACCEPTED
    assert receipt.provider_message_id is None
    assert receipt.raw == body


@respx.mock(assert_all_called=True)
def test_ambiguous_timeout_is_retried_safely(respx_mock: respx.MockRouter) -> None:
    """With check_idx the client retries a lost answer; the retry's error 53 is success."""
    route = respx_mock.post(PL_URL).mock(
        side_effect=[
            httpx.ReadTimeout("no answer"),
            httpx.Response(200, json={"error": 53, "message": "Not unique idx parameter"}),
        ]
    )
    retry = RetryPolicy(max_attempts=3)
    with anysend.Client([make()], clock=VirtualClock(), retry=retry) as client:
        result = client.send(Message(text="Hi"), to={"phone": "+48600700800"})
    assert result.ok
    assert route.call_count == 2
    failed = result.attempts[0].error
    assert failed is not None
    assert failed.category is ErrorCategory.AMBIGUOUS_TIMEOUT
    first, second = (parse_qs(c.request.content.decode()) for c in route.calls)
    assert first["idx"] == second["idx"] == [result.message_id]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, text="OK:6F00000000000000000000B9:0.16"), "6F00000000000000000000B9"),
        (httpx.Response(200, json={"count": 1, "list": [{"id": 123, "status": "QUEUE"}]}), "123"),
    ],
)
def test_other_accepted_shapes(response: httpx.Response, expected: str) -> None:
    """The plain-text OK:<id> answer and numeric ids are read too."""
    assert make().parse_response(response, outbound()).provider_message_id == expected


@pytest.mark.parametrize(
    ("response", "category"),
    [
        (httpx.Response(200, text="ERROR:13"), ErrorCategory.INVALID_RECIPIENT),
        (httpx.Response(200, json={"count": 0, "list": []}), ErrorCategory.UNKNOWN),
        (httpx.Response(200, text="<html>maintenance</html>"), ErrorCategory.UNKNOWN),
        (httpx.Response(503, text="<html>maintenance</html>"), ErrorCategory.UNAVAILABLE),
        (httpx.Response(429, headers={"Retry-After": "9"}), ErrorCategory.RATE_LIMITED),
    ],
)
def test_other_failures(response: httpx.Response, category: ErrorCategory) -> None:
    """Plain-text errors, empty lists and non-JSON answers fail with a fitting category."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(response, outbound())
    assert caught.value.category is category
    if response.status_code == 429:
        assert caught.value.retry_after == 9.0


# -- callbacks: verification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com/hooks/smsapi",
        f"https://app.example.com/hooks/smsapi/{OTHER_SECRET}",
        f"https://app.example.com/hooks/smsapi?token={OTHER_SECRET}",
        f"https://app.example.com/hooks/smsapi?other={SECRET}",
        f"https://app.example.com/hooks/smsapi/{SECRET[:-1]}",
        f"https://app.example.com/hooks/smsapi/{SECRET}x",
    ],
)
def test_callbacks_without_the_secret_are_refused(url: str) -> None:
    """A URL without the secret (as a segment or ?token=) raises WebhookVerificationError."""
    with pytest.raises(WebhookVerificationError) as caught:
        make().parse_webhook(report("dlr_404_delivered.query", base=url))
    assert SECRET not in str(caught.value)


def test_no_configured_secret_refuses_everything() -> None:
    """Without callback_secret the adapter cannot verify, so it refuses every callback."""
    smsapi = SMSAPI(token=TOKEN)
    with pytest.raises(WebhookVerificationError):
        smsapi.verify_webhook(report("dlr_404_delivered.query"))


def test_percent_encoded_segment_matches() -> None:
    """A path segment is compared after percent-decoding (~ sent as %7E)."""
    smsapi = make(callback_secret="cb~secret~8d1f0a7c3e9b")
    url = "https://app.example.com/hooks/smsapi/cb%7Esecret%7E8d1f0a7c3e9b"
    smsapi.verify_webhook(report("dlr_404_delivered.query", base=url))


# -- callbacks: parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "raw_status", "reason", "message_id"),
    [
        ("dlr_404_delivered.query", DeliveryStatus.DELIVERED, "404", None, "order-4521"),
        ("dlr_403_sent.query", DeliveryStatus.SENT, "403", None, None),
        ("dlr_402_expired.query", DeliveryStatus.EXPIRED, "402", Reason.TIMED_OUT, "order-4522"),
    ],
)
def test_delivery_reports(
    name: str,
    status: DeliveryStatus,
    raw_status: str,
    reason: Reason | None,
    message_id: str | None,
) -> None:
    """Each report maps its status code; idx is the message id; donedate the time."""
    [event] = events(report(name))
    assert (event.status, event.raw_status, event.reason) == (status, raw_status, reason)
    assert event.message_id == message_id
    assert event.provider == "smsapi"
    assert event.channel is Channel.SMS
    assert event.description == STATUS_NAMES[raw_status]
    assert event.recipient is not None
    assert event.recipient.startswith("+48600700")
    assert event.occurred_at is not None
    assert event.occurred_at.tzinfo is timezone.utc
    assert event.event_id == f"{event.provider_message_id}:{raw_status}:{event.raw['donedate']}"
    assert "token" not in event.raw


def test_delivered_report_fields() -> None:
    """The delivered fixture's id, number, time and raw values come through exactly."""
    [event] = events(report("dlr_404_delivered.query"))
    assert event.provider_message_id == "6F00000000000000000000A1"
    assert event.recipient == "+48600700810"
    assert event.occurred_at == datetime.fromtimestamp(1795162000, tz=timezone.utc)
    assert event.raw["points"] == "0.16"
    assert event.raw["username"] == "anysend-fixture"


def test_batched_reports_give_one_event_each() -> None:
    """A batch (comma-separated lists) gives one event per MsgId, in order."""
    first, second = events(report("dlr_batch_404_407.query"))
    assert (first.provider_message_id, first.status) == (
        "6F00000000000000000000A4",
        DeliveryStatus.DELIVERED,
    )
    assert (second.provider_message_id, second.status) == (
        "6F00000000000000000000A5",
        DeliveryStatus.REJECTED,
    )
    assert (first.message_id, second.message_id) == ("order-4523", "order-4524")
    assert (first.recipient, second.recipient) == ("+48600700813", "+48600700814")
    assert (first.raw["mnc"], second.raw["mnc"]) == ("2", "3")
    assert second.reason is Reason.OTHER


def test_batch_with_a_shared_value_and_an_empty_idx() -> None:
    """A value given once applies to every report; an empty idx gives no message id."""
    queued, accepted, failed = events(report("dlr_batch_3_shared_username.query"))
    assert [e.status for e in (queued, accepted, failed)] == [
        DeliveryStatus.ACCEPTED,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
    ]
    assert accepted.message_id is None
    assert {e.raw["username"] for e in (queued, accepted, failed)} == {"anysend-fixture"}


def test_inbound_sms() -> None:
    """A POSTed MO message becomes an InboundMessage with E.164 numbers and UTF-8 text."""
    [message] = make().parse_webhook(mo())
    assert isinstance(message, InboundMessage)
    assert message.provider == "smsapi"
    assert message.channel is Channel.SMS
    assert message.sender == "+48600700815"
    assert message.recipient == "+48500600700"
    assert message.text == "Czy mogę zmienić termin dostawy?"
    assert message.provider_message_id == "6F00000000000000000000B1"
    assert message.received_at == datetime.fromtimestamp(1795162200, tz=timezone.utc)


def test_unknown_status_is_kept() -> None:
    """A status code SMSAPI has not documented is unknown, with the raw code kept."""
    body = fixture("dlr_404_delivered.query").replace(b"status=404", b"status=499")
    request = WebhookRequest(method="GET", url=f"{HOOK}?{body.decode()}")
    [event] = events(request)
    assert (event.status, event.raw_status) == (DeliveryStatus.UNKNOWN, "499")


def test_tables_are_consistent() -> None:
    """Every mapped status has a name; reasons are for failure statuses; codes are digits."""
    assert set(STATUS_MAP) == set(STATUS_NAMES)
    assert all(STATUS_MAP[code].is_terminal for code in REASONS)
    assert all(code.isdigit() for code in ERROR_CODES)
    assert "53" not in ERROR_CODES  # read as success, not as an error


@pytest.mark.parametrize(
    "query",
    [
        "",
        "MsgId=&status=404",
        "MsgId=A1,A2&status=404",
        "MsgId=A1&status=",
        "status=404",
        "sms_from=&sms_text=hi",
    ],
)
def test_malformed_callbacks_raise_parse_errors(query: str) -> None:
    """Callbacks missing what a report or message needs raise WebhookParseError."""
    request = WebhookRequest(method="GET", url=f"{HOOK}?{query}")
    with pytest.raises(WebhookParseError):
        make().parse_webhook(request)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.iterdir() if p.suffix != ".md")),
    cut=st.integers(min_value=0, max_value=400),
    junk=st.binary(max_size=40),
)
def test_mutated_fixtures_only_raise_our_errors(name: str, cut: int, junk: bytes) -> None:
    """Mutated query strings and bodies give events or WebhookParseError, nothing else."""
    data = fixture(name)
    mutated = data[:cut] + junk + data[cut + len(junk) :]
    if name.endswith(".query"):
        query = mutated.decode("latin-1").replace("#", "%23")
        request = WebhookRequest(method="GET", url=f"{HOOK}?{query}")
    else:
        request = WebhookRequest(method="POST", url=HOOK, body=mutated)
    try:
        parsed = make().parse_webhook(request, verify=False)
    except WebhookParseError:
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in parsed)


# -- the contract kit ------------------------------------------------------------------------------


class TestSMSAPIContract(ProviderContract):
    """The contract kit run against the SMSAPI adapter."""

    expected_provider_message_id = "6F00000000000000000000A1"
    unknown_raw_status = "499"

    def make_provider(self) -> SMSAPI:
        """SMSAPI with test settings and a callback URL carrying the secret."""
        return make(callback_url=HOOK)

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """SMSAPI queues the message."""
        return httpx.Response(200, json=ACCEPTED, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """SMSAPI's error codes, in HTTP 200 bodies as SMSAPI sends most of them."""

        def case(code: int, category: ErrorCategory, status: int = 200) -> ErrorCase:
            """An SMSAPI error answer with ``code``."""
            return ErrorCase(
                name=f"error {code}",
                status=status,
                body={"error": code, "message": f"error {code}"},
                category=category,
                retryable=category.retryable,
            )

        return [
            case(13, ErrorCategory.INVALID_RECIPIENT),
            case(14, ErrorCategory.CONFIGURATION),
            case(11, ErrorCategory.CONTENT_REJECTED),
            case(59, ErrorCategory.OPTED_OUT),
            case(101, ErrorCategory.AUTH, status=401),
            case(103, ErrorCategory.QUOTA),
            case(202, ErrorCategory.RATE_LIMITED),
            case(201, ErrorCategory.UNAVAILABLE),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A delivery report on the URL carrying the secret."""
        return report("dlr_404_delivered.query")

    def unsigned_webhook(self) -> WebhookRequest:
        """The report on the bare URL, without the secret."""
        return report("dlr_404_delivered.query", base="https://app.example.com/hooks/smsapi")

    def forged_webhook(self) -> WebhookRequest | None:
        """SMSAPI signs no body: a changed report on the secret URL is indistinguishable."""
        return None

    def wrong_secret_webhook(self) -> WebhookRequest:
        """The report on a URL with another secret."""
        return report(
            "dlr_404_delivered.query", base=f"https://app.example.com/hooks/smsapi/{OTHER_SECRET}"
        )

    def unknown_status_webhook(self) -> WebhookRequest:
        """A report with a status code SMSAPI does not document."""
        query = fixture("dlr_404_delivered.query").decode().replace("status=404", "status=499")
        return WebhookRequest(method="GET", url=f"{HOOK}?{query}")

    def inbound_webhook(self) -> WebhookRequest:
        """An inbound (MO) message."""
        return mo()

    def malformed_webhooks(self) -> list[WebhookRequest]:
        """Broken queries and bodies on the secret URL."""
        queries = ["", "MsgId", "MsgId=%ff", "status=404&MsgId=", "MsgId=A,B&status=1"]
        requests = [WebhookRequest(method="GET", url=f"{HOOK}?{q}") for q in queries]
        bodies = [b"", b"{", b"\xff\xfe", b"sms_from=", b"null"]
        requests += [WebhookRequest(method="POST", url=HOOK, body=b) for b in bodies]
        return requests


# -- answers to callbacks --------------------------------------------------------------------------


def test_callbacks_are_answered_ok() -> None:
    """SMSAPI repeats a callback unless it gets the text OK: reports and MO SMS alike."""
    adapter = make()
    expected = WebhookResponse(status=200, body=b"OK", content_type="text/plain; charset=utf-8")
    for request in (report("dlr_404_delivered.query"), mo()):
        assert adapter.webhook_response(request, adapter.parse_webhook(request)) == expected
        assert adapter.handshake(request) is None


def test_reports_come_by_get() -> None:
    """Delivery reports are GET requests, so GET is a callback method."""
    assert SMSAPI.webhook_methods == frozenset({"GET", "POST"})
    assert report("dlr_404_delivered.query").method == "GET"
