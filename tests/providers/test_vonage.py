"""The Vonage SMS API adapter: form requests, in-body errors, signed receipts and inbound SMS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

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
    EventType,
    InboundMessage,
    Message,
    OutboundMessage,
    ProviderError,
    Reason,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import WebhookResponse
from anysend.providers.vonage import (
    ERROR_CODES,
    EVENT_MAP,
    KEYWORDS,
    REASONS,
    STATUS_MAP,
    Vonage,
    decode_jwt,
    signature,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vonage"
NOW = 1_800_000_000
API_KEY = "abcd1234"
API_SECRET = "Zq8wX3vN7bT1yR5k"
SIG_SECRET = "sig-secret-9d2f4a7c1e6b"
OTHER_SECRET = "sig-secret-of-someone-else"
TOKEN = "hook-token-3c9e1b7f5a2d8e4c"
HOOK_URL = "https://app.example.com/hooks/vonage"
SMS_URL = "https://rest.nexmo.com/sms/json"
FORM = "application/x-www-form-urlencoded"
METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")

#: Vonage's documented success answer (troubleshooting guide), one part.
SEND_OK = {
    "message-count": "1",
    "messages": [
        {
            "to": "48600700800",
            "message-id": "0C000000217B7F02",
            "status": "0",
            "remaining-balance": "15.53590000",
            "message-price": "0.03330000",
            "network": "26001",
        }
    ],
}


def make(**settings: Any) -> Vonage:
    """A Vonage adapter with test credentials and its clock pinned to NOW."""
    settings.setdefault("api_key", API_KEY)
    if "signature_secret" not in settings:
        settings.setdefault("api_secret", API_SECRET)
    vonage = Vonage(**settings)
    vonage.now = lambda: float(NOW)
    return vonage


def signed_make(method: str = "md5hash", **settings: Any) -> Vonage:
    """A Vonage adapter that verifies callbacks signed with SIG_SECRET."""
    return make(
        api_secret=API_SECRET, signature_secret=SIG_SECRET, signature_method=method, **settings
    )


def outbound(**fields: Any) -> OutboundMessage:
    """An SMS as the client hands it to the adapter."""
    fields.setdefault("text", "Your code is 1234")
    fields.setdefault("sender", "AcmeInc")
    return OutboundMessage(id="msg-1", channel=Channel.SMS, to="+48600700800", **fields)


def answer(*entries: dict[str, str]) -> httpx.Response:
    """Vonage's HTTP 200 answer holding ``entries``."""
    return httpx.Response(200, json={"message-count": str(len(entries)), "messages": list(entries)})


def part(status: str, **extra: str) -> dict[str, str]:
    """One entry of an answer: an accepted part, or a refused one with its error text."""
    if status == "0":
        return {
            "to": "48600700800",
            "message-id": extra.pop("id", "0C00000000000001"),
            "status": "0",
        }
    return {"status": status, "error-text": extra.pop("text", "Refused")}


def form(request: httpx.Request) -> dict[str, str]:
    """A form-encoded request body as a dict (every key once)."""
    parsed = parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values())
    return {key: values[0] for key, values in parsed.items()}


# -- signing callbacks as Vonage does ------------------------------------------------------------


def fixture(name: str) -> bytes:
    """The exact bytes of a fixture file."""
    return (FIXTURES / name).read_bytes()


def documented_sig(params: dict[str, str], secret: str, method: str) -> str:
    """The ``sig`` computed step by step from Vonage's "Signing messages" guide."""
    text = ""
    for key in sorted(params):
        text += "&" + key + "=" + params[key].replace("&", "_").replace("=", "_")
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()  # noqa: S324 - Vonage's scheme
    return hmac.new(secret.encode(), text.encode(), method).hexdigest()


def callback(
    name: str,
    *,
    secret: str | None = SIG_SECRET,
    method: str = "md5hash",
    at: int = NOW,
    url: str = HOOK_URL,
    body: bytes | None = None,
) -> WebhookRequest:
    """The fixture ``name`` as Vonage delivers it, with ``timestamp`` and ``sig`` when signed.

    The fixture's own bytes stay as they are; the signing parameters are added at the end.
    """
    raw = fixture(name) if body is None else body
    if name.endswith((".query", ".form")):
        params = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    else:
        params = json.loads(raw)
    extra: dict[str, str] = {}
    if secret is not None:
        params["timestamp"] = str(at)
        extra = {"timestamp": str(at), "sig": documented_sig(params, secret, method)}
    if name.endswith(".query"):
        query = raw.decode() + ("&" + urlencode(extra) if extra else "")
        return WebhookRequest(method="GET", url=f"{url}?{query}")
    if name.endswith(".form"):
        content = raw + (b"&" + urlencode(extra).encode() if extra else b"")
        return WebhookRequest(url=url, headers={"Content-Type": FORM}, body=content)
    content = raw
    for key, value in extra.items():
        field = f'"{key}":"{value}"'.encode()
        if f'"{key}":'.encode() in content:
            content = re.sub(f'"{key}":"[^"]*"'.encode(), field, content)
        else:
            content = content[:-1] + b"," + field + b"}"
    return WebhookRequest(url=url, headers={"Content-Type": "application/json"}, body=content)


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, Any], secret: str = SIG_SECRET, alg: str = "HS256") -> str:
    """An HS256 JWT over ``claims``, built by hand as RFC 7519 describes."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def jwt_callback(
    name: str = "dlr_delivered.json", *, body: bytes | None = None, **claims: Any
) -> WebhookRequest:
    """A Messages-API-style callback: the fixture body with a bearer JWT over its hash."""
    content = fixture(name) if body is None else body
    secret = claims.pop("secret", SIG_SECRET)
    alg = claims.pop("alg", "HS256")
    payload = {
        "iat": NOW,
        "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(fixture(name)).hexdigest(),
        "api_key": API_KEY,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {jwt(payload, secret, alg)}",
    }
    return WebhookRequest(url=HOOK_URL, headers=headers, body=content)


# -- the request ---------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
def test_request_is_a_form_post_with_the_api_secret(respx_mock: respx.MockRouter) -> None:
    """Client sends one form POST to /sms/json: credentials, from, to without +, text, ref."""
    route = respx_mock.post(SMS_URL).mock(return_value=httpx.Response(200, json=SEND_OK))
    vonage = make(sender="AcmeInc", callback_url="https://app.example.com/hooks/vonage")
    with anysend.Client([vonage], clock=VirtualClock()) as client:
        result = client.send(Message(text="Your code is 1234"), to={"phone": "+48 600 700 800"})
    assert result.ok
    assert result.provider_message_id == "0C000000217B7F02"
    assert result.receipt is not None
    assert result.receipt.raw == SEND_OK
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == SMS_URL
    assert request.headers["content-type"] == FORM
    assert "authorization" not in request.headers
    expected = {
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "from": "AcmeInc",
        "to": "48600700800",
        "text": "Your code is 1234",
        "type": "text",
        "client-ref": result.message_id,
        "callback": "https://app.example.com/hooks/vonage",
    }
    assert request.content == urlencode(expected).encode()


def test_text_outside_gsm7_is_sent_as_unicode() -> None:
    """A text with a character outside GSM-7 goes as type=unicode; GSM-7 extension stays text."""
    vonage = make()
    assert form(vonage.build_request(outbound(text="Zażółć gęślą jaźń")))["type"] == "unicode"
    assert form(vonage.build_request(outbound(text="Price: 5€ [VIP]")))["type"] == "text"
    assert form(vonage.build_request(outbound(text="Hi 👋")))["type"] == "unicode"


def test_message_sender_wins_over_the_setting() -> None:
    """The message's sender is the ``from``; the setting is the default."""
    vonage = make(sender="AcmeInc")
    assert form(vonage.build_request(outbound(sender="Shop")))["from"] == "Shop"
    assert form(vonage.build_request(outbound(sender=None)))["from"] == "AcmeInc"


@pytest.mark.parametrize("method", METHODS)
def test_signed_request_replaces_the_api_secret(method: str) -> None:
    """With sign_requests: timestamp and sig (as the guide computes it), never api_secret."""
    vonage = make(
        api_secret=API_SECRET,
        signature_secret=SIG_SECRET,
        signature_method=method,
        sign_requests=True,
    )
    fields = form(vonage.build_request(outbound(text="A&B=C")))
    assert "api_secret" not in fields
    assert fields["timestamp"] == str(NOW)
    assert fields["text"] == "A&B=C"
    unsigned = {k: v for k, v in fields.items() if k != "sig"}
    assert fields["sig"] == documented_sig(unsigned, SIG_SECRET, method)
    assert list(fields)[-2:] == ["timestamp", "sig"]


def test_without_api_secret_requests_are_signed() -> None:
    """A signature secret alone signs every request (the only way to authenticate)."""
    fields = form(make(signature_secret=SIG_SECRET).build_request(outbound()))
    assert fields["api_key"] == API_KEY
    assert "api_secret" not in fields
    assert fields["sig"] == documented_sig(
        {k: v for k, v in fields.items() if k != "sig"}, SIG_SECRET, "md5hash"
    )


def test_provider_options_are_added_and_signed() -> None:
    """Options go in verbatim (bools as true/false, numbers as text) and under the signature."""
    options = {"ttl": 900000, "status-report-req": False, "entity-id": "1101407360000017170"}
    message = outbound(provider_options=options)
    fields = form(make(signature_secret=SIG_SECRET).build_request(message))
    assert fields["ttl"] == "900000"
    assert fields["status-report-req"] == "false"
    assert fields["entity-id"] == "1101407360000017170"
    unsigned = {k: v for k, v in fields.items() if k != "sig"}
    assert fields["sig"] == documented_sig(unsigned, SIG_SECRET, "md5hash")


@pytest.mark.parametrize(
    ("message", "category"),
    [
        (outbound(provider_options={"api_secret": "x"}), ErrorCategory.CONFIGURATION),
        (outbound(provider_options={"sig": "x"}), ErrorCategory.CONFIGURATION),
        (outbound(provider_options={"ttl": [1]}), ErrorCategory.CONFIGURATION),
        (outbound(sender=None), ErrorCategory.CONFIGURATION),
        (outbound(text=None), ErrorCategory.CONTENT_REJECTED),
    ],
)
def test_unsendable_messages_are_refused_before_the_network(
    message: OutboundMessage, category: ErrorCategory
) -> None:
    """Credential options, non-scalar options, no sender or no text: refused by check_supported."""
    with pytest.raises(ProviderError) as caught:
        make().check_supported(message)
    assert (caught.value.category, caught.value.provider) == (category, "vonage")


def test_client_ref_is_left_out_when_too_long() -> None:
    """An id longer than Vonage's 40-character client-ref is not sent (it would be refused)."""
    message = OutboundMessage(
        id="x" * 41, channel=Channel.SMS, to="+48600700800", text="Hi", sender="A"
    )
    assert "client-ref" not in form(make().build_request(message))
    assert form(make().build_request(outbound()))["client-ref"] == "msg-1"


@pytest.mark.anyio
@respx.mock(assert_all_called=True)
async def test_async_client_takes_the_first_part_id(respx_mock: respx.MockRouter) -> None:
    """AsyncClient: a two-part answer with status 0 everywhere is one receipt, first part's id."""
    long_answer = answer(part("0", id="62dfdf68-0001"), part("0", id="72ff9536-0002"))
    route = respx_mock.post(SMS_URL).mock(return_value=long_answer)
    async with anysend.AsyncClient([make(sender="AcmeInc")], clock=VirtualClock()) as client:
        result = await client.send(Message(text="x" * 200), to={"phone": "+48600700800"})
    assert result.ok
    assert result.provider_message_id == "62dfdf68-0001"
    assert form(route.calls.last.request)["text"] == "x" * 200


# -- errors ----------------------------------------------------------------------------------------

#: What the task's brief and Vonage's error table say each status means.
EXPECTED_CATEGORIES = {
    "1": (ErrorCategory.RATE_LIMITED, True),
    "2": (ErrorCategory.CONFIGURATION, False),
    "3": (ErrorCategory.CONFIGURATION, False),
    "4": (ErrorCategory.AUTH, False),
    "5": (ErrorCategory.UNAVAILABLE, True),
    "6": (ErrorCategory.INVALID_RECIPIENT, False),
    "7": (ErrorCategory.INVALID_RECIPIENT, False),
    "8": (ErrorCategory.CONFIGURATION, False),
    "9": (ErrorCategory.QUOTA, False),
    "10": (ErrorCategory.RATE_LIMITED, True),
    "11": (ErrorCategory.CONFIGURATION, False),
    "12": (ErrorCategory.PAYLOAD_TOO_LARGE, False),
    "14": (ErrorCategory.AUTH, False),
    "15": (ErrorCategory.CONFIGURATION, False),
    "22": (ErrorCategory.CONFIGURATION, False),
    "23": (ErrorCategory.CONFIGURATION, False),
    "29": (ErrorCategory.CONFIGURATION, False),
    "32": (ErrorCategory.CONFIGURATION, False),
    "33": (ErrorCategory.INVALID_RECIPIENT, False),
}


def test_error_table_covers_every_documented_status() -> None:
    """ERROR_CODES holds exactly the non-zero statuses of Vonage's SMS API error table."""
    assert {code: category for code, (category, _) in EXPECTED_CATEGORIES.items()} == ERROR_CODES


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED_CATEGORIES.items()))
def test_in_body_status_is_mapped(code: str, expected: tuple[ErrorCategory, bool]) -> None:
    """An HTTP 200 with a non-zero status raises its category, code and error text."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer(part(code, text="Number barred.")), outbound())
    error = caught.value
    assert (error.category, error.retryable) == expected
    assert (error.code, error.status_code, error.provider) == (code, 200, "vonage")
    assert "Number barred." in error.message
    assert isinstance(error.raw, dict)


def test_unknown_status_is_unknown_and_not_retried() -> None:
    """A status missing from the table is ``unknown`` with the code kept."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer(part("34", text="Something new")), outbound())
    assert (caught.value.category, caught.value.retryable, caught.value.code) == (
        ErrorCategory.UNKNOWN,
        False,
        "34",
    )


def test_partly_accepted_message_is_never_sent_again() -> None:
    """One part accepted, one throttled: ambiguous, not retryable (a resend repeats part 1)."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(answer(part("0"), part("1", text="Throttled")), outbound())
    error = caught.value
    assert (error.category, error.retryable, error.code) == (
        ErrorCategory.AMBIGUOUS_TIMEOUT,
        False,
        "1",
    )
    assert "1 of 2 parts" in error.message


@pytest.mark.parametrize(
    "body",
    [
        b"<html>ok</html>",
        b"{}",
        b'{"message-count": "0", "messages": []}',
        b"[]",
        b'{"messages": {}}',
    ],
)
def test_unreadable_200_is_ambiguous(body: bytes) -> None:
    """A 200 without readable messages may still have been accepted: ambiguous, not retried."""
    with pytest.raises(ProviderError) as caught:
        make().parse_response(httpx.Response(200, content=body), outbound())
    assert (caught.value.category, caught.value.retryable) == (
        ErrorCategory.AMBIGUOUS_TIMEOUT,
        False,
    )


def test_http_errors_use_the_shared_mapping() -> None:
    """A 401 is auth; a 503 is unavailable (the shared HTTP mapping)."""
    for status, category in ((401, ErrorCategory.AUTH), (503, ErrorCategory.UNAVAILABLE)):
        with pytest.raises(ProviderError) as caught:
            make().parse_response(httpx.Response(status, text="no"), outbound())
        assert (caught.value.category, caught.value.status_code) == (category, status)


@respx.mock
def test_throttled_is_retried_through_the_client(respx_mock: respx.MockRouter) -> None:
    """Status 1 in a 200 is retried on Vonage, then the send is accepted."""
    respx_mock.post(SMS_URL).mock(
        side_effect=[answer(part("1", text="Throttled")), httpx.Response(200, json=SEND_OK)]
    )
    with anysend.Client([make(sender="AcmeInc")], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to={"phone": "+48600700800"})
    assert result.provider_message_id == "0C000000217B7F02"
    assert [a.error.category for a in result.attempts if a.error] == [ErrorCategory.RATE_LIMITED]


@respx.mock
def test_partial_send_is_tried_once(respx_mock: respx.MockRouter) -> None:
    """A partly accepted message is neither retried nor sent elsewhere."""
    route = respx_mock.post(SMS_URL).mock(return_value=answer(part("0"), part("1")))
    with anysend.Client([make(sender="AcmeInc")], clock=VirtualClock()) as client:
        result = client.send(Message(text="x" * 300), to={"phone": "+48600700800"})
    assert route.call_count == 1
    assert not result.ok
    assert result.status is DeliveryStatus.UNKNOWN


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"api_key": API_KEY},
        {"api_key": API_KEY, "api_secret": API_SECRET, "sign_requests": True},
        {"api_key": API_KEY, "api_secret": ""},
        {"api_key": "", "api_secret": API_SECRET},
        {"api_key": API_KEY, "api_secret": API_SECRET, "callback_url": "example.com/dlr"},
        {"api_key": API_KEY, "api_secret": API_SECRET, "signature_method": "sha384"},
        {"api_key": API_KEY, "api_secret": API_SECRET, "replay_window": 0},
    ],
)
def test_invalid_settings_are_refused(values: dict[str, Any]) -> None:
    """No secret, signing without a signature secret, empty values, bad URL or method: refused."""
    with pytest.raises(ConfigurationError):
        Vonage(**values)


def test_url_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """``vonage://KEY:SECRET@default?from=...`` fills api_key, api_secret and sender."""
    from anysend.providers import _config, to_url

    monkeypatch.setattr(_config, "load", lambda name: Vonage)  # as once registered
    vonage = _config.from_url(
        f"vonage://{API_KEY}:{API_SECRET}@default?from=AcmeInc&signature_method=sha256"
        f"&signature_secret={SIG_SECRET}"
    )
    assert isinstance(vonage, Vonage)
    assert (vonage.settings.api_key, vonage.settings.sender) == (API_KEY, "AcmeInc")
    assert vonage.settings.api_secret is not None
    assert vonage.settings.api_secret.get_secret_value() == API_SECRET
    assert vonage.settings.signature_method == "sha256"
    assert to_url(vonage).startswith(f"vonage://{API_KEY}:***@default?")


def test_secrets_are_listed_and_hidden() -> None:
    """The three secret settings are secrets and never show in reprs."""
    vonage = make(api_secret=API_SECRET, signature_secret=SIG_SECRET, webhook_token=TOKEN)
    assert set(vonage.secrets()) == {API_SECRET, SIG_SECRET, TOKEN}
    for text in (repr(vonage), str(vonage.settings)):
        assert all(secret not in text for secret in (API_SECRET, SIG_SECRET, TOKEN))


# -- signatures: Vonage's published vectors --------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "secret", "method", "expected"),
    [
        # vonage-python-sdk 2.x/3.x tests (test_signature, test_check_signature): "MD5 hash".
        ({"a": "1", "b": "2", "timestamp": "1461605396"}, "secret", "md5hash",
         "6af838ef94998832dbfc29020b564830"),
        # vonage-python-sdk 4.x http_client/tests/test_auth.py: HMAC digests.
        ({"param1": "value1", "param2": "value2", "timestamp": 1234567890}, "signature_secret",
         "sha256", "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"),
        ({"param1": "value1", "param2": "value2", "timestamp": 1234567890}, "signature_secret",
         "md5", "724c2bf6ca423c36e20631b11d1c5753"),
        ({"param1": "value&1", "param2": "value=2", "timestamp": 1234567890}, "signature_secret",
         "md5", "2bbf0abafb2c55e5af6231513896a2ac"),
        ({"param": "value", "timestamp": 1234567890, "sig": "655a4d0b7f064dff438defc52b012cf5"},
         "signature_secret", "md5", "655a4d0b7f064dff438defc52b012cf5"),
    ],
)  # fmt: skip
def test_signature_matches_vonage_sdk_vectors(
    params: dict[str, object], secret: str, method: Any, expected: str
) -> None:
    """signature() reproduces the signatures Vonage's Python SDK tests pin."""
    assert signature(params, secret, method) == expected


def test_decode_jwt_matches_the_vonage_sdk_vector() -> None:
    """The HS256 token of vonage-python-sdk's jwt tests verifies with its secret, not another."""
    token = (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2"
        "MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQH"
        "ZTC29y6CGM"
    )
    claims = decode_jwt(token, "qwertyuiopasdfghjklzxcvbnm123456")
    assert (claims["iss"], claims["iat"]) == ("Online JWT Builder", 1697634680)
    with pytest.raises(WebhookVerificationError):
        decode_jwt(token, "asdf")
    with pytest.raises(WebhookVerificationError):
        decode_jwt("asdf", "qwertyuiopasdfghjklzxcvbnm123456")


# -- callbacks: verification -----------------------------------------------------------------------

CALLBACK_FILES = sorted(
    p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".form", ".query")
)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", CALLBACK_FILES)
def test_signed_callbacks_verify(name: str, method: str) -> None:
    """Every fixture, as GET query, form POST or JSON POST, verifies when signed (each method)."""
    vonage = signed_make(method)
    events = vonage.parse_webhook(callback(name, method=method))
    assert events
    assert all(e.provider == "vonage" for e in events)


def test_uppercase_sig_verifies() -> None:
    """A sig in upper-case hex (as the API reference's example shows) is accepted."""
    request = callback("dlr_expired.query", method="sha256")
    url = re.sub(r"sig=([0-9a-f]+)", lambda m: "sig=" + m.group(1).upper(), request.url)
    signed_make("sha256").verify_webhook(request.model_copy(update={"url": url}))


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (callback("dlr_delivered.json", secret=None), "no sig parameter"),
        (callback("dlr_delivered.json", secret=OTHER_SECRET), "does not match"),
        (callback("dlr_delivered.json", method="sha256"), "does not match"),
        (callback("dlr_delivered.json", at=NOW - 301), "replay window"),
        (callback("dlr_delivered.json", at=NOW + 301), "replay window"),
        (callback("dlr_expired.query", secret=None), "no sig parameter"),
        (callback("inbound_stop.form", secret=OTHER_SECRET), "does not match"),
    ],
    ids=["unsigned", "other-secret", "other-method", "stale", "future", "get-unsigned", "form"],
)
def test_bad_signatures_are_rejected(request_: WebhookRequest, why: str) -> None:
    """Unsigned, wrong-secret, wrong-method, stale and future callbacks are refused."""
    with pytest.raises(WebhookVerificationError, match=why):
        signed_make().parse_webhook(request_)


def test_changed_parameter_is_rejected() -> None:
    """Changing one signed value (delivered -> failed) breaks the signature."""
    request = callback("dlr_buffered.query")
    forged = request.model_copy(
        update={"url": request.url.replace("status=buffered", "status=failed")}
    )
    with pytest.raises(WebhookVerificationError, match="does not match"):
        signed_make().verify_webhook(forged)


@pytest.mark.parametrize("timestamp", ["", "soon", "-5"])
def test_unreadable_timestamp_is_rejected(timestamp: str) -> None:
    """A signed callback whose timestamp is not unix seconds is refused."""
    params = {"messageId": "0B01", "status": "delivered", "timestamp": timestamp}
    params["sig"] = signature(params, SIG_SECRET)
    request = WebhookRequest(method="GET", url=f"{HOOK_URL}?{urlencode(params)}")
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        signed_make().verify_webhook(request)


def test_unreadable_signed_body_is_a_verification_error() -> None:
    """A body that cannot be read cannot be verified: a verification error, not a parse error."""
    request = WebhookRequest(url=HOOK_URL, headers={"Content-Type": "application/json"}, body=b"{")
    with pytest.raises(WebhookVerificationError):
        signed_make().verify_webhook(request)


def test_replay_window_is_a_setting() -> None:
    """A wider replay_window accepts an older callback."""
    request = callback("dlr_delivered.json", at=NOW - 900)
    signed_make(replay_window=1000).verify_webhook(request)


def test_jwt_signed_callback_verifies() -> None:
    """A bearer JWT (HS256, payload_hash of the body, recent iat) authenticates the callback."""
    [event] = signed_make().parse_webhook(jwt_callback())
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (jwt_callback(body=fixture("dlr_delivered.json").replace(b"delivered", b"failed!!!")),
         "does not match its JWT"),
        (jwt_callback(secret=OTHER_SECRET), "signature does not match"),
        (jwt_callback(iat=NOW - 600), "replay window"),
        (jwt_callback(iat=None), "no iat"),
        (jwt_callback(iat="yesterday"), "no iat"),
        (jwt_callback(iat=True), "no iat"),
        (jwt_callback(payload_hash=None), "no payload_hash"),
        (jwt_callback(api_key="other123"), "another API key"),
        (jwt_callback(alg="none"), "HS256"),
        (jwt_callback(alg="HS512"), "HS256"),
    ],
    ids=["body", "secret", "stale", "no-iat", "bad-iat", "bool-iat", "no-hash", "api-key", "none",
         "hs512"],
)  # fmt: skip
def test_bad_jwts_are_rejected(request_: WebhookRequest, why: str) -> None:
    """A changed body, another secret, an old iat, missing claims or another alg are refused."""
    with pytest.raises(WebhookVerificationError, match=why):
        signed_make().verify_webhook(request_)


@pytest.mark.parametrize(
    "token", ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.!!!.x", "W10.e30.x", "bm90IGpzb24.e30.x"]
)
def test_malformed_jwts_are_rejected(token: str) -> None:
    """Tokens that are not three base64url JSON objects are a WebhookVerificationError."""
    request = WebhookRequest(url=HOOK_URL, headers={"Authorization": f"Bearer {token}"}, body=b"{}")
    with pytest.raises(WebhookVerificationError):
        signed_make().verify_webhook(request)


def test_webhook_token_protects_unsigned_callbacks() -> None:
    """Without signatures, the token must be a path segment of the callback URL."""
    vonage = make(webhook_token=TOKEN)
    good = callback("dlr_expired.query", secret=None, url=f"{HOOK_URL}/{TOKEN}")
    [event] = vonage.parse_webhook(good)
    assert isinstance(event, DeliveryEvent)
    for url in (HOOK_URL, f"{HOOK_URL}/{TOKEN[:-1]}", f"{HOOK_URL}?token={TOKEN}"):
        with pytest.raises(WebhookVerificationError, match="webhook token"):
            vonage.verify_webhook(callback("dlr_expired.query", secret=None, url=url))


def test_token_and_signature_are_both_checked() -> None:
    """With a token and a signature secret, a callback needs both."""
    vonage = signed_make(webhook_token=TOKEN)
    vonage.verify_webhook(callback("dlr_delivered.json", url=f"{HOOK_URL}/{TOKEN}"))
    with pytest.raises(WebhookVerificationError, match="no sig"):
        vonage.verify_webhook(
            callback("dlr_delivered.json", secret=None, url=f"{HOOK_URL}/{TOKEN}")
        )
    with pytest.raises(WebhookVerificationError, match="webhook token"):
        vonage.verify_webhook(callback("dlr_delivered.json"))


def test_nothing_to_verify_with_is_rejected() -> None:
    """Without signature secret and token, no callback is trusted."""
    with pytest.raises(WebhookVerificationError, match="signature_secret or webhook_token"):
        make().verify_webhook(callback("dlr_delivered.json"))


# -- callbacks: parsing ----------------------------------------------------------------------------


def test_delivered_receipt() -> None:
    """The typical DLR: delivered, the recipient in E.164, UTC time and a stable event id."""
    [event] = signed_make().parse_webhook(callback("dlr_delivered.json"))
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED
    assert (event.raw_status, event.reason, event.description) == ("delivered", None, None)
    assert event.provider_message_id == "0B00000000FA0001"
    assert event.message_id is None
    assert event.recipient == "+48600700800"
    assert event.channel is Channel.SMS
    assert event.occurred_at == datetime(2026, 11, 20, 8, 10, 29, tzinfo=timezone.utc)
    assert event.event_id == "0B00000000FA0001:delivered:0:2611200810"
    assert event.raw["price"] == "0.03330000"


def test_expired_receipt_from_a_get_carries_our_message_id() -> None:
    """A GET receipt: expired, err-code 2 (absent subscriber, temporary), client-ref kept."""
    [event] = signed_make().parse_webhook(callback("dlr_expired.query"))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.reason) == (DeliveryStatus.EXPIRED, Reason.RECIPIENT_UNREACHABLE)
    assert (event.message_id, event.description) == ("order-4521", "err-code 2")
    assert event.recipient == "+48600700801"


def test_buffered_receipt_is_deferred() -> None:
    """buffered means held for later delivery: deferred, no reason."""
    [event] = signed_make().parse_webhook(callback("dlr_buffered.query"))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.reason) == (DeliveryStatus.DEFERRED, None)


def test_opted_out_receipt_also_reports_the_opt_out() -> None:
    """failed, err-code 9 (the Opt-out Assist example): undeliverable plus an opted_out event."""
    status, opt_out = signed_make().parse_webhook(callback("dlr_failed_err9_optout.json"))
    assert isinstance(status, DeliveryEvent)
    assert isinstance(opt_out, DeliveryEvent)
    assert (status.status, status.reason) == (DeliveryStatus.UNDELIVERABLE, Reason.OPTED_OUT)
    assert (opt_out.event, opt_out.reason) == (EventType.OPTED_OUT, Reason.OPTED_OUT)
    assert opt_out.recipient == "+447700900000"
    assert opt_out.event_id == f"{status.event_id}:opted_out"
    assert status.occurred_at == datetime(2020, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_rejected_form_receipt() -> None:
    """A form-POST receipt: rejected by the carrier's anti-spam filter, matched by client-ref."""
    [event] = signed_make().parse_webhook(callback("dlr_rejected_err6.form"))
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.reason) == (DeliveryStatus.REJECTED, Reason.CONTENT_REJECTED)
    assert event.message_id == "4f1c0b7e9a2d4c6e8b0a1f3d5c7e9b2a"


def dlr(**fields: str) -> WebhookRequest:
    """An unsigned GET receipt with ``fields`` over a basic delivered one."""
    params = {"msisdn": "48600700800", "messageId": "0B01", "status": "delivered", "err-code": "0"}
    params.update(fields)
    return WebhookRequest(method="GET", url=f"{HOOK_URL}?{urlencode(params)}")


@pytest.mark.parametrize(("raw", "status"), sorted(STATUS_MAP.items()))
def test_every_receipt_status_is_mapped(raw: str, status: DeliveryStatus) -> None:
    """Each documented DLR status becomes its anysend status."""
    [event] = make().parse_webhook(dlr(status=raw), verify=False)
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status) == (status, raw)


def test_status_table() -> None:
    """accepted is sent (the carrier has it), failed undeliverable, rejected rejected."""
    assert STATUS_MAP["accepted"] is DeliveryStatus.SENT
    assert STATUS_MAP["failed"] is DeliveryStatus.UNDELIVERABLE
    assert STATUS_MAP["rejected"] is DeliveryStatus.REJECTED
    assert set(STATUS_MAP) == {
        "accepted", "delivered", "buffered", "expired", "failed", "rejected", "unknown"
    }  # fmt: skip


def test_unknown_status_is_kept() -> None:
    """A status Vonage may add later is unknown, with the raw value kept."""
    [event] = make().parse_webhook(dlr(status="deleted"), verify=False)
    assert isinstance(event, DeliveryEvent)
    assert (event.status, event.raw_status) == (DeliveryStatus.UNKNOWN, "deleted")


@pytest.mark.parametrize(("code", "reason"), sorted(REASONS.items()))
def test_every_err_code_has_its_reason(code: str, reason: Reason) -> None:
    """Each documented err-code on a failed receipt gives its reason."""
    events = make().parse_webhook(dlr(status="failed", **{"err-code": code}), verify=False)
    assert isinstance(events[0], DeliveryEvent)
    assert events[0].reason is reason
    signals = [e.event for e in events[1:] if isinstance(e, DeliveryEvent)]
    assert signals == ([EVENT_MAP[code]] if code in EVENT_MAP else [])


def test_dead_number_is_contact_invalid() -> None:
    """err-code 3 (absent subscriber, permanent) also says the number is dead."""
    events = make().parse_webhook(dlr(status="failed", **{"err-code": "3"}), verify=False)
    assert [getattr(e, "event", None) for e in events] == [None, EventType.CONTACT_INVALID]


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [
        ("failed", "", Reason.OTHER),
        ("failed", "77", Reason.OTHER),
        ("expired", "0", Reason.TIMED_OUT),
        ("delivered", "0", None),
        ("buffered", "2", Reason.RECIPIENT_UNREACHABLE),
    ],
)
def test_reason_without_a_known_code(status: str, code: str, reason: Reason | None) -> None:
    """Failures without a known code are other, expiry timed_out, successes have none."""
    [event, *_] = make().parse_webhook(dlr(status=status, **{"err-code": code}), verify=False)
    assert isinstance(event, DeliveryEvent)
    assert event.reason is reason


def test_inbound_sms() -> None:
    """An inbound JSON SMS becomes an InboundMessage with E.164 numbers and its time."""
    [message] = signed_make().parse_webhook(callback("inbound_text.json"))
    assert isinstance(message, InboundMessage)
    assert (message.sender, message.recipient) == ("+447700900001", "+447700900000")
    assert (message.text, message.channel) == ("Hello world", Channel.SMS)
    assert message.provider_message_id == "0A0000000123ABCD1"
    assert message.received_at == datetime(2020, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert message.raw["keyword"] == "HELLO"


def test_inbound_unicode_from_a_get() -> None:
    """A unicode inbound SMS by GET keeps its text (percent-encoded UTF-8 decoded)."""
    [message] = signed_make().parse_webhook(callback("inbound_unicode.query"))
    assert isinstance(message, InboundMessage)
    assert message.text == "Zażółć gęślą jaźń"


def test_stop_is_an_opt_out() -> None:
    """An inbound "Stop" is the message plus an opted_out event for the sender."""
    message, opt_out = signed_make().parse_webhook(callback("inbound_stop.form"))
    assert isinstance(message, InboundMessage)
    assert isinstance(opt_out, DeliveryEvent)
    assert (opt_out.event, opt_out.reason) == (EventType.OPTED_OUT, Reason.OPTED_OUT)
    assert (opt_out.recipient, opt_out.raw_status) == ("+48600700800", "STOP")
    assert opt_out.event_id == "0A00000000000FA5:STOP"


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("START", EventType.OPTED_IN),
        (" unsubscribe. ", EventType.OPTED_OUT),
        ("Stop sending me these", None),
        ("Cancel my order", None),
        ("Hello", None),
    ],
)
def test_only_a_lone_keyword_changes_consent(text: str, event: EventType | None) -> None:
    """A text that is only a keyword opts out or in; a sentence starting with one does not."""
    params = {"msisdn": "48600700800", "to": "48600700900", "messageId": "0A01", "text": text}
    params |= {"type": "text", "keyword": text.split()[0].upper()}
    request = WebhookRequest(
        url=HOOK_URL, headers={"Content-Type": FORM}, body=urlencode(params).encode()
    )
    events = make().parse_webhook(request, verify=False)
    assert [getattr(e, "event", None) for e in events[1:]] == ([event] if event else [])
    assert set(KEYWORDS.values()) == {EventType.OPTED_OUT, EventType.OPTED_IN}


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b"null", b'"text"', b'{"unexpected": true}', b"\xff\xfe",
     b'{"status": "delivered"}', b'{"messageId": "x", "status": 5.5}',
     b'{"msisdn": [1], "text": "x"}', b'{"status": ["delivered"], "messageId": "x"}'],
)  # fmt: skip
def test_malformed_bodies_are_parse_errors(body: bytes) -> None:
    """Bodies that are not a receipt or an inbound SMS raise WebhookParseError."""
    request = WebhookRequest(url=HOOK_URL, headers={"Content-Type": "application/json"}, body=body)
    with pytest.raises(WebhookParseError):
        make().parse_webhook(request, verify=False)


def _mutate(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for position, chunk in edits:
        at = position % (len(out) + 1)
        out[at : at + len(chunk)] = chunk
    return bytes(out)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(CALLBACK_FILES),
    edits=st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=4)), max_size=6),
)
def test_mutated_bodies_raise_only_our_errors(name: str, edits: list[tuple[int, bytes]]) -> None:
    """Fixture bytes with random edits give events or our parse error, never anything else."""
    data = _mutate(fixture(name), edits)
    if name.endswith(".query"):
        request = WebhookRequest(method="GET", url=f"{HOOK_URL}?{data.decode('latin-1')}")
    else:
        ctype = FORM if name.endswith(".form") else "application/json"
        request = WebhookRequest(url=HOOK_URL, headers={"Content-Type": ctype}, body=data)
    try:
        events = make().parse_webhook(request, verify=False)
    except WebhookParseError:
        return
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from([n for n in CALLBACK_FILES if n.endswith(".json")]),
    changes=st.dictionaries(
        st.sampled_from(["msisdn", "to", "messageId", "status", "err-code", "text", "type",
                         "message-timestamp", "scts", "client-ref", "keyword"]),
        _JSON_VALUES,
        max_size=4,
    ),
)  # fmt: skip
def test_retyped_json_fields_raise_only_our_errors(name: str, changes: dict[str, Any]) -> None:
    """Fields of any JSON type in a verified-off JSON callback never leak a foreign exception."""
    body = json.loads(fixture(name)) | changes
    request = WebhookRequest(
        url=HOOK_URL, headers={"Content-Type": "application/json"}, body=json.dumps(body).encode()
    )
    try:
        events = make().parse_webhook(request, verify=False)
    except WebhookParseError:
        return
    assert all(e.provider == "vonage" for e in events)


# -- the contract kit ------------------------------------------------------------------------------


class TestVonageContract(ProviderContract):
    """The contract kit run against the Vonage adapter (sig-signed JSON receipts)."""

    expected_provider_message_id = "0C000000217B7F02"
    unknown_raw_status = "deleted"

    def make_provider(self) -> Vonage:
        """A Vonage adapter with an API secret, a signature secret and a sender."""
        return signed_make(sender="AcmeInc")

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Vonage's documented one-part success answer."""
        return httpx.Response(200, json=SEND_OK, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Vonage's in-body statuses on HTTP 200, and a partly accepted message."""
        cases = [
            ("throttled", [part("1", text="Throttled")], ErrorCategory.RATE_LIMITED, True),
            ("internal error", [part("5")], ErrorCategory.UNAVAILABLE, True),
            ("bad credentials", [part("4", text="Bad Credentials")], ErrorCategory.AUTH, False),
            ("barred", [part("7", text="Number barred.")], ErrorCategory.INVALID_RECIPIENT, False),
            ("no credit", [part("9")], ErrorCategory.QUOTA, False),
            ("too long", [part("12")], ErrorCategory.PAYLOAD_TOO_LARGE, False),
            ("bad sender", [part("15")], ErrorCategory.CONFIGURATION, False),
            ("partial", [part("0"), part("1")], ErrorCategory.AMBIGUOUS_TIMEOUT, False),
        ]
        return [
            ErrorCase(
                name=name,
                status=200,
                body={"message-count": str(len(body)), "messages": body},
                category=category,
                retryable=retryable,
            )
            for name, body, category, retryable in cases
        ]

    def signed_webhook(self) -> WebhookRequest:
        """The typical delivered receipt as a JSON POST, signed."""
        return callback("dlr_delivered.json")

    def unsigned_webhook(self) -> WebhookRequest:
        """The same receipt without timestamp and sig."""
        return callback("dlr_delivered.json", secret=None)

    def stale_webhook(self) -> WebhookRequest:
        """The receipt signed an hour ago."""
        return callback("dlr_delivered.json", at=NOW - 3600)

    def wrong_secret_webhook(self) -> WebhookRequest:
        """The receipt signed with another signature secret."""
        return callback("dlr_delivered.json", secret=OTHER_SECRET)

    def unknown_status_webhook(self) -> WebhookRequest:
        """A signed receipt with a status the adapter does not know."""
        body = fixture("dlr_delivered.json").replace(b'"delivered"', b'"deleted"')
        return callback("dlr_delivered.json", body=body)

    def inbound_webhook(self) -> WebhookRequest:
        """The documented inbound SMS, signed."""
        return callback("inbound_text.json")


# -- answers to callbacks --------------------------------------------------------------------------


def test_callbacks_get_a_plain_200_and_may_come_by_get() -> None:
    """Vonage needs 200 (or 204); its callbacks may be GET queries, so GET is a callback method."""
    adapter = make()
    request = callback("dlr_buffered.query")
    assert request.method == "GET"
    assert adapter.webhook_response(request, []) == WebhookResponse()
    assert adapter.handshake(request) is None
    assert Vonage.webhook_methods == frozenset({"GET", "POST"})
