"""The APNs adapter: the ES256 provider token, the HTTP/2 request, and every error reason."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    AnysendError,
    Channel,
    ConfigurationError,
    ErrorCategory,
    Message,
    OutboundMessage,
    ProviderError,
    PushContent,
    PushTarget,
    Reason,
    Recipient,
    RetryPolicy,
    SendResult,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import apns as apns_module
from anysend.providers.apns import (
    APNS_ID_NAMESPACE,
    CONTACT_INVALID_REASONS,
    ERROR_CODES,
    MAX_PAYLOAD,
    MAX_VOIP_PAYLOAD,
    OPTIONS,
    REASONS,
    TOKEN_REFRESH_SECONDS,
    APNs,
    apns_id,
    provider_token,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "apns"
TEAM_ID = "ABCDE12345"
KEY_ID = "KEY1234567"
TOPIC = "com.example.shop"
TOKEN = "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad"
DEAD = "6f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
URL = f"https://api.push.apple.com/3/device/{TOKEN}"
NOW = 1_795_000_000.0
OK_ID = "7F1C2E4A-0000-4000-8000-00000000A001"
MESSAGE_ID = "0123456789abcdef0123456789abcdef"

KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()


class Clock:
    """A settable clock for the provider token (seconds since the epoch)."""

    def __init__(self, at: float = NOW) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def make_apns(*, clock: Clock | None = None, **overrides: Any) -> APNs:
    """An APNs adapter with the test key and a pinned clock."""
    options: dict[str, Any] = {
        "team_id": TEAM_ID,
        "key_id": KEY_ID,
        "private_key": PEM,
        "topic": TOPIC,
    }
    options.update(overrides)
    apns = APNs(**options)
    apns.now = clock or Clock()
    return apns


def fixture(name: str, request: httpx.Request | None = None) -> httpx.Response:
    """A raw HTTP response fixture (status line, CRLF headers, blank line, body) as httpx."""
    head, _, body = (FIXTURES / name).read_bytes().partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return httpx.Response(
        int(lines[0].split()[1]),
        headers=[(k, v) for k, v in headers],
        content=body,
        request=request,
    )


def answer(status: int, body: dict[str, Any] | None = None) -> httpx.Response:
    """An APNs error answer with a JSON body."""
    if body is None:
        return httpx.Response(status)
    return httpx.Response(status, json=body, headers={"apns-id": OK_ID})


def b64decode(text: str) -> bytes:
    """Base64url without padding, as JWS uses it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_jws(token: str, public_key: ec.EllipticCurvePublicKey) -> tuple[Any, Any]:
    """Verify an ES256 compact JWS (raw r || s signature); return its header and claims."""
    header, claims, signature = token.split(".")
    raw = b64decode(signature)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(b64decode(header)), json.loads(b64decode(claims))


def bearer(request: httpx.Request) -> str:
    """The provider token of a request."""
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "bearer"
    return token


def push_message(**fields: Any) -> OutboundMessage:
    """A push message as the client hands it to the adapter."""
    fields.setdefault("push", PushContent(title="Order 42", body="It has shipped"))
    fields.setdefault("push_target", PushTarget(kind="apns", token=fields.get("to", TOKEN)))
    fields.setdefault("to", TOKEN)
    return OutboundMessage(id=MESSAGE_ID, channel=Channel.PUSH, **fields)


ANN = Recipient(push=(PushTarget(kind="apns", token=TOKEN),))
ORDER = Message(push=PushContent(title="Order 42", body="It has shipped", data={"order": 42}))


def send(
    apns: APNs, response: httpx.Response, message: Message = ORDER, **client: Any
) -> tuple[SendResult, respx.Route]:
    """Send ``message`` to Ann through the sync client (no retries by default)."""
    client.setdefault("retry", RetryPolicy(max_attempts=1))
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(URL).mock(return_value=response)
        with anysend.Client([apns], clock=VirtualClock(), **client) as c:
            result = c.send(message, to=ANN)
    return result, route


def refusal(apns: APNs, message: OutboundMessage) -> ProviderError:
    """The ProviderError the adapter raises before any request."""
    with pytest.raises(ProviderError) as caught:
        apns.check_supported(message)
    with pytest.raises(ProviderError):
        apns.build_request(message)
    return caught.value


# -- the contract kit ------------------------------------------------------------------------------


class TestAPNsContract(ProviderContract):
    """The contract kit run against the APNs adapter."""

    expected_provider_message_id = OK_ID

    def make_provider(self) -> APNs:
        return make_apns()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        return fixture("200_ok.txt", request)

    def error_cases(self) -> list[ErrorCase]:
        def case(name: str, category: ErrorCategory, retryable: bool = False) -> ErrorCase:
            response = fixture(name)
            return ErrorCase(
                name=name,
                status=response.status_code,
                body=response.content,
                headers=dict(response.headers),
                category=category,
                retryable=retryable,
            )

        return [
            case("400_bad_device_token.txt", ErrorCategory.INVALID_RECIPIENT),
            case("400_device_token_not_for_topic.txt", ErrorCategory.CONFIGURATION),
            case("403_expired_provider_token.txt", ErrorCategory.AUTH, retryable=True),
            case("403_invalid_provider_token.txt", ErrorCategory.AUTH),
            case("410_unregistered.txt", ErrorCategory.INVALID_RECIPIENT),
            case("410_expired_token.txt", ErrorCategory.INVALID_RECIPIENT),
            case("413_payload_too_large.txt", ErrorCategory.PAYLOAD_TOO_LARGE),
            case("429_too_many_requests.txt", ErrorCategory.RATE_LIMITED, retryable=True),
            case("503_shutdown.txt", ErrorCategory.UNAVAILABLE, retryable=True),
        ]


# -- declarations and settings ---------------------------------------------------------------------


def test_declarations() -> None:
    """APNs serves push to apns devices over HTTP/2 and receives no callbacks."""
    assert APNs.name == "apns"
    assert APNs.channels == frozenset({Channel.PUSH})
    assert APNs.push_kinds == frozenset({"apns"})
    assert APNs.http2 is True
    assert APNs.capabilities.webhooks is False
    assert APNs.capabilities.idempotency is False


def test_no_callbacks() -> None:
    """A callback to the APNs adapter is refused: APNs sends none."""
    request = WebhookRequest(url="https://app.example.com/hooks/apns", headers={}, body=b"{}")
    with pytest.raises(WebhookVerificationError):
        make_apns().parse_webhook(request)


def test_private_key_never_printed() -> None:
    """The PEM key does not show in the adapter's repr."""
    apns = make_apns()
    assert "PRIVATE KEY" not in repr(apns)
    assert apns.secrets() == [PEM]


def test_key_with_escaped_newlines_is_read() -> None:
    """A PEM from an environment variable, with literal \\n escapes, loads."""
    escaped = PEM.strip().replace("\n", "\\n")
    apns = make_apns(private_key=escaped)
    _, claims = verify_jws(apns.provider_token(), KEY.public_key())
    assert claims["iss"] == TEAM_ID


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
    ],
    ids=["garbage", "rsa", "p384"],
)
def test_unusable_key_is_a_configuration_error(pem: str) -> None:
    """Only an EC P-256 PEM key is accepted, and the error does not show it."""
    with pytest.raises(ConfigurationError) as caught:
        make_apns(private_key=pem)
    assert pem not in str(caught.value)


@pytest.mark.parametrize(
    "setting",
    [{"priority": 7}, {"ttl": -1}, {"topic": "com.example/x"}, {"team_id": "AB CD"}],
)
def test_invalid_settings_are_refused(setting: dict[str, Any]) -> None:
    """Out-of-range priority, a negative ttl and malformed ids are configuration errors."""
    with pytest.raises(ConfigurationError):
        make_apns(**setting)


# -- the provider token ----------------------------------------------------------------------------


def test_provider_token_header_claims_and_signature() -> None:
    """The JWT has alg ES256 and kid, iss and iat, and verifies with the public key."""
    token = make_apns().provider_token()
    header, claims = verify_jws(token, KEY.public_key())
    assert header == {"alg": "ES256", "kid": KEY_ID}
    assert claims == {"iss": TEAM_ID, "iat": int(NOW)}


def test_provider_token_signed_by_another_key_fails() -> None:
    """The signature check is real: another key's public half does not verify the token."""
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(InvalidSignature):
        verify_jws(make_apns().provider_token(), other)


# RFC 7515 Appendix A.3: JWS using ECDSA P-256 SHA-256 (key, signing input, signature).
RFC_D = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
RFC_X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
RFC_Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
RFC_JWS = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)


def test_rfc7515_a3_vector_pins_the_signature_form() -> None:
    """RFC 7515 A.3's signature verifies as raw r || s; a token from its key verifies too."""
    rfc_key = ec.derive_private_key(int.from_bytes(b64decode(RFC_D), "big"), ec.SECP256R1())
    numbers = rfc_key.public_key().public_numbers()
    assert numbers.x.to_bytes(32, "big") == b64decode(RFC_X)
    assert numbers.y.to_bytes(32, "big") == b64decode(RFC_Y)
    header, claims = verify_jws(RFC_JWS, rfc_key.public_key())
    assert header == {"alg": "ES256"}
    assert claims["iss"] == "joe"
    ours = provider_token(rfc_key, TEAM_ID, KEY_ID, NOW)
    assert verify_jws(ours, rfc_key.public_key()) == (
        {"alg": "ES256", "kid": KEY_ID},
        {"iss": TEAM_ID, "iat": int(NOW)},
    )


def test_provider_token_is_reused_then_refreshed() -> None:
    """One token serves every send until TOKEN_REFRESH_SECONDS; then a new one is signed."""
    clock = Clock()
    apns = make_apns(clock=clock)
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=fixture("200_ok.txt"))
        with anysend.Client([apns], clock=VirtualClock()) as c:
            c.send(ORDER, to=ANN)
            clock.at = NOW + TOKEN_REFRESH_SECONDS - 1
            c.send(ORDER, to=ANN)
            clock.at = NOW + TOKEN_REFRESH_SECONDS
            c.send(ORDER, to=ANN)
    first, second, third = (bearer(call.request) for call in route.calls)
    assert first == second
    assert third != first
    assert verify_jws(third, KEY.public_key())[1]["iat"] == int(NOW + TOKEN_REFRESH_SECONDS)
    assert 20 * 60 <= TOKEN_REFRESH_SECONDS < 60 * 60  # Apple's window


def test_provider_token_is_signed_once_for_concurrent_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads asking for the token at once share one signature."""
    apns = make_apns()
    signed: list[str] = []
    real = apns_module.provider_token

    def counting(*args: Any) -> str:
        token = real(*args)
        signed.append(token)
        return token

    monkeypatch.setattr(apns_module, "provider_token", counting)
    start = threading.Barrier(16)
    tokens: list[str] = []

    def ask() -> None:
        start.wait()
        tokens.append(apns.provider_token())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(signed) == 1
    assert tokens == signed * 16


def test_expired_provider_token_is_replaced_and_retried_once() -> None:
    """403 ExpiredProviderToken drops the token; the retry carries a fresh one and succeeds."""
    apns = make_apns()
    with respx.mock() as mock:
        route = mock.post(URL).mock(
            side_effect=[fixture("403_expired_provider_token.txt"), fixture("200_ok.txt")]
        )
        with anysend.Client([apns], clock=VirtualClock()) as c:
            result = c.send(ORDER, to=ANN)
    assert result.ok
    assert result.provider_message_id == OK_ID
    first, second = (bearer(call.request) for call in route.calls)
    assert first != second
    assert apns.provider_token() == second
    assert [a.outcome.value for a in result.attempts] == ["failed", "sent"]


def test_invalid_provider_token_is_dropped_but_not_retried() -> None:
    """403 InvalidProviderToken fails the attempt (auth) and the next send signs anew."""
    apns = make_apns()
    before = apns.provider_token()
    result, route = send(apns, fixture("403_invalid_provider_token.txt"), retry=RetryPolicy())
    assert route.call_count == 1
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.AUTH
    assert not result.attempts[0].error.retryable
    assert apns.provider_token() != before


def test_a_rejected_token_already_replaced_is_kept() -> None:
    """A late rejection of an old token does not throw away the one that replaced it."""
    apns = make_apns()
    old = apns.build_request(push_message())
    apns._drop_token(None)
    current = apns.provider_token()
    with pytest.raises(ProviderError):
        apns.parse_response(fixture("403_expired_provider_token.txt", old), push_message())
    assert apns.provider_token() == current


# -- the request -----------------------------------------------------------------------------------


def apns_headers(request: httpx.Request) -> dict[str, str]:
    """The apns-* headers of a request."""
    return {k: v for k, v in request.headers.items() if k.startswith("apns-")}


def test_alert_request_exactly() -> None:
    """POST /3/device/<token>: bearer JWT, the apns-* headers, compact JSON with data keys."""
    result, route = send(make_apns(), fixture("200_ok.txt"))
    request = route.calls.last.request
    assert request.method == "POST"
    assert str(request.url) == URL
    assert verify_jws(bearer(request), KEY.public_key())[0]["kid"] == KEY_ID
    assert apns_headers(request) == {
        "apns-topic": TOPIC,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-id": str(uuid.UUID(hex=result.message_id)),
    }
    assert "content-type" not in request.headers
    assert request.content == (
        b'{"aps":{"alert":{"title":"Order 42","body":"It has shipped"}},"order":42}'
    )
    assert result.ok
    assert result.provider_message_id == OK_ID
    assert result.attempts[0].receipt is not None
    assert result.attempts[0].receipt.raw == {"apns-id": OK_ID}


def test_sandbox_host() -> None:
    """sandbox=True sends to api.sandbox.push.apple.com."""
    request = make_apns(sandbox=True).build_request(push_message())
    assert str(request.url) == f"https://api.sandbox.push.apple.com/3/device/{TOKEN}"


def test_background_push_for_data_only() -> None:
    """Data without title or body is a background push: priority 5, content-available."""
    message = push_message(push=PushContent(data={"sync": True}))
    request = make_apns().build_request(message)
    assert apns_headers(request) == {
        "apns-topic": TOPIC,
        "apns-push-type": "background",
        "apns-priority": "5",
        "apns-id": str(uuid.UUID(hex=MESSAGE_ID)),
    }
    assert request.content == b'{"aps":{"content-available":1},"sync":true}'


def test_settings_defaults_apply() -> None:
    """push_type, priority, ttl and sound settings shape every message."""
    apns = make_apns(priority=5, ttl=3600, sound="default", push_type="alert")
    request = apns.build_request(push_message(push=PushContent(body="Hi")))
    assert apns_headers(request)["apns-priority"] == "5"
    assert apns_headers(request)["apns-expiration"] == str(int(NOW) + 3600)
    assert request.content == b'{"aps":{"alert":{"body":"Hi"},"sound":"default"}}'


def test_ttl_zero_means_deliver_once() -> None:
    """ttl 0 sends apns-expiration 0 (deliver once, do not store)."""
    request = make_apns(ttl=0).build_request(push_message())
    assert apns_headers(request)["apns-expiration"] == "0"


def test_provider_options_set_headers_and_merge_into_the_body() -> None:
    """Options override headers, add aps keys (alert dicts merged) and top-level keys."""
    options = {
        "priority": 5,
        "expiration": 1_800_000_000,
        "collapse_id": "order-42",
        "topic": f"{TOPIC}.voip",
        "push_type": "voip",
        "sound": "chime.caf",
        "badge": 3,
        "mutable_content": True,
        "aps": {"alert": {"subtitle": "Parcel"}, "thread-id": "orders"},
        "payload": {"deeplink": "shop://orders/42"},
    }
    message = push_message(
        push=PushContent(title="Order 42", body="It has shipped", data={"order": 42}),
        provider_options=options,
    )
    request = make_apns().build_request(message)
    assert apns_headers(request) == {
        "apns-topic": f"{TOPIC}.voip",
        "apns-push-type": "voip",
        "apns-priority": "5",
        "apns-id": str(uuid.UUID(hex=MESSAGE_ID)),
        "apns-expiration": "1800000000",
        "apns-collapse-id": "order-42",
    }
    assert json.loads(request.content) == {
        "aps": {
            "alert": {"title": "Order 42", "body": "It has shipped", "subtitle": "Parcel"},
            "sound": "chime.caf",
            "badge": 3,
            "mutable-content": 1,
            "thread-id": "orders",
        },
        "order": 42,
        "deeplink": "shop://orders/42",
    }


def test_ttl_option_is_relative_to_now() -> None:
    """The ttl option sets apns-expiration to now + ttl."""
    message = push_message(provider_options={"ttl": 60})
    request = make_apns(ttl=3600).build_request(message)
    assert apns_headers(request)["apns-expiration"] == str(int(NOW) + 60)


def test_provider_options_reach_the_adapter_through_the_client() -> None:
    """Message.provider_options['apns'] is what the request carries."""
    message = Message(
        push=PushContent(title="Sale"), provider_options={"apns": {"collapse_id": "sale"}}
    )
    _, route = send(make_apns(), fixture("200_ok.txt"), message)
    assert route.calls.last.request.headers["apns-collapse-id"] == "sale"


def test_subject_and_text_stand_in_without_push_content() -> None:
    """Called directly without push content, the subject and text become title and body."""
    message = push_message(push=None, subject="Hello", text="World")
    assert make_apns().build_request(message).content == (
        b'{"aps":{"alert":{"title":"Hello","body":"World"}}}'
    )


def test_apns_id_is_derived_from_the_message_id() -> None:
    """A 32-hex id is used as the UUID; any other id gets a stable uuid5."""
    assert apns_id(MESSAGE_ID) == "01234567-89ab-cdef-0123-456789abcdef"
    assert apns_id("order-42") == str(uuid.uuid5(APNS_ID_NAMESPACE, "order-42"))
    assert apns_id("order-42") == apns_id("order-42")
    assert str(uuid.UUID(apns_id("order-42"))) == apns_id("order-42")  # canonical form


# -- refused before any request --------------------------------------------------------------------


def test_payload_limit_is_4096_bytes() -> None:
    """A 4096-byte payload goes; one byte more is payload_too_large before any request."""
    apns = make_apns()
    empty = len(b'{"aps":{"alert":{"body":""}}}')
    fits = push_message(push=PushContent(body="x" * (MAX_PAYLOAD - empty)))
    assert len(apns.build_request(fits).content) == MAX_PAYLOAD
    over = push_message(push=PushContent(body="x" * (MAX_PAYLOAD - empty + 1)))
    assert refusal(apns, over).category is ErrorCategory.PAYLOAD_TOO_LARGE


def test_voip_payload_limit_is_5120_bytes() -> None:
    """VoIP pushes may carry 5120 bytes."""
    apns = make_apns()
    empty = len(b'{"aps":{"alert":{"body":""}}}')
    options = {"push_type": "voip"}
    fits = push_message(
        push=PushContent(body="x" * (MAX_VOIP_PAYLOAD - empty)), provider_options=options
    )
    assert len(apns.build_request(fits).content) == MAX_VOIP_PAYLOAD
    over = push_message(
        push=PushContent(body="x" * (MAX_VOIP_PAYLOAD - empty + 1)), provider_options=options
    )
    assert refusal(apns, over).category is ErrorCategory.PAYLOAD_TOO_LARGE


def test_oversized_payload_fails_in_the_client_without_a_request() -> None:
    """Through the client, a payload over the limit is a failed attempt; nothing is sent."""
    message = Message(
        push=PushContent(title="Big", data={"blob": "x" * 3000}),
        provider_options={"apns": {"payload": {"more": "y" * 1500}}},
    )
    result, route = send(make_apns(), fixture("200_ok.txt"), message)
    assert not route.called
    assert not result.ok
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize(
    ("options", "category"),
    [
        ({"collapse_id": "c" * 65}, ErrorCategory.CONTENT_REJECTED),
        ({"collapse_id": "é" * 33}, ErrorCategory.CONTENT_REJECTED),  # 66 bytes
        ({"priority": 7}, ErrorCategory.CONTENT_REJECTED),
        ({"priority": True}, ErrorCategory.CONTENT_REJECTED),
        ({"priority": 10.0}, ErrorCategory.CONTENT_REJECTED),
        ({"expiration": -1}, ErrorCategory.CONTENT_REJECTED),
        ({"ttl": "soon"}, ErrorCategory.CONTENT_REJECTED),
        ({"push_type": "Alert Now"}, ErrorCategory.CONTENT_REJECTED),
        ({"topic": "a\nb"}, ErrorCategory.CONTENT_REJECTED),
        ({"topic": "com.example/x"}, ErrorCategory.CONTENT_REJECTED),
        ({"aps": ["not", "a", "dict"]}, ErrorCategory.CONTENT_REJECTED),
        ({"payload": "nope"}, ErrorCategory.CONTENT_REJECTED),
        ({"payload": {"aps": {}}}, ErrorCategory.CONTENT_REJECTED),
        ({"colapse_id": "typo"}, ErrorCategory.CONTENT_REJECTED),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], category: ErrorCategory) -> None:
    """Invalid or unknown provider options fail before any request."""
    assert refusal(make_apns(), push_message(provider_options=options)).category is category


def test_every_option_is_documented() -> None:
    """OPTIONS lists what the adapter reads (the docs page renders it)."""
    assert set(OPTIONS) == {
        "push_type",
        "priority",
        "expiration",
        "ttl",
        "collapse_id",
        "topic",
        "sound",
        "badge",
        "mutable_content",
        "aps",
        "payload",
    }


def test_aps_data_key_is_refused() -> None:
    """A data key named aps would replace APNs' own dictionary: refused."""
    message = push_message(push=PushContent(title="x", data={"aps": {"badge": 1}}))
    assert refusal(make_apns(), message).category is ErrorCategory.CONTENT_REJECTED


@pytest.mark.parametrize("token", ["not-hex", "abc/../../x", "a b"])
def test_malformed_device_token_is_refused(token: str) -> None:
    """A token that is not hex digits is an invalid recipient, never put in the path."""
    error = refusal(make_apns(), push_message(to=token))
    assert error.category is ErrorCategory.INVALID_RECIPIENT
    assert error.reason is Reason.INVALID_RECIPIENT


# -- responses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "category", "retryable", "dead", "reason"),
    [
        ("400_bad_device_token.txt", "invalid_recipient", False, True, "invalid_recipient"),
        ("400_device_token_not_for_topic.txt", "configuration", False, False, None),
        ("403_expired_provider_token.txt", "auth", True, False, None),
        ("403_invalid_provider_token.txt", "auth", False, False, None),
        ("410_unregistered.txt", "invalid_recipient", False, True, "token_unregistered"),
        ("410_expired_token.txt", "invalid_recipient", False, True, "token_unregistered"),
        ("413_payload_too_large.txt", "payload_too_large", False, False, None),
        ("429_too_many_requests.txt", "rate_limited", True, False, "rate_limited"),
        ("503_shutdown.txt", "unavailable", True, False, None),
    ],
)
def test_fixture_responses_are_mapped(
    name: str, category: str, retryable: bool, dead: bool, reason: str | None
) -> None:
    """Each fixture answer becomes the documented category, flags and reason."""
    response = fixture(name)
    result, _ = send(make_apns(), response)
    assert not result.ok
    error = result.attempts[0].error
    assert error is not None
    assert error.category.value == category
    assert error.retryable is retryable
    assert error.contact_invalid is dead
    assert result.attempts[0].contact_invalid is dead
    assert (error.reason.value if error.reason else None) == reason
    assert error.status_code == response.status_code
    assert error.code == response.json()["reason"]
    assert error.raw == response.json()


@pytest.mark.parametrize("reason", sorted(ERROR_CODES))
def test_every_documented_reason_is_mapped(reason: str) -> None:
    """Every reason in ERROR_CODES raises its category, retry flag and dead-token flag."""
    apns = make_apns()
    message = push_message()
    request = apns.build_request(message)
    status = {"Unregistered": 410, "ExpiredToken": 410, "PayloadTooLarge": 413}.get(reason, 400)
    with pytest.raises(ProviderError) as caught:
        apns.parse_response(
            httpx.Response(status, json={"reason": reason}, request=request), message
        )
    error = caught.value
    assert error.category is ERROR_CODES[reason]
    assert error.retryable is (reason == "ExpiredProviderToken" or error.category.retryable)
    assert error.contact_invalid is (reason in CONTACT_INVALID_REASONS)
    assert error.reason is REASONS.get(reason)
    assert error.code == reason
    assert error.provider == "apns"


def test_unregistered_message_gives_the_timestamp() -> None:
    """A 410's timestamp (ms) is named in the error message."""
    apns = make_apns()
    with pytest.raises(ProviderError) as caught:
        apns.parse_response(fixture("410_unregistered.txt"), push_message())
    assert "2026-11-19T08:00:00+00:00" in caught.value.message


@pytest.mark.parametrize(
    ("response", "category", "dead"),
    [
        (answer(400, {"reason": "SomethingNew"}), ErrorCategory.UNKNOWN, False),
        (answer(410, {"reason": "SomethingNew"}), ErrorCategory.INVALID_RECIPIENT, True),
        (answer(410, {"reason": "Unregistered", "timestamp": "soon"}), "invalid_recipient", True),
        (answer(404), ErrorCategory.CONFIGURATION, False),
        (answer(405, {"reason": "MethodNotAllowed"}), ErrorCategory.CONFIGURATION, False),
        (answer(403, {}), ErrorCategory.AUTH, False),
        (answer(500), ErrorCategory.UNAVAILABLE, False),
        (httpx.Response(502, text="<html>bad gateway</html>"), ErrorCategory.UNAVAILABLE, False),
    ],
)
def test_unknown_reasons_fall_back_to_the_status(
    response: httpx.Response, category: ErrorCategory | str, dead: bool
) -> None:
    """Unknown or missing reasons use the status: 410 is still a dead token."""
    with pytest.raises(ProviderError) as caught:
        make_apns().parse_response(response, push_message())
    assert caught.value.category is ErrorCategory(category)
    assert caught.value.contact_invalid is dead


def test_success_without_apns_id() -> None:
    """A 200 without the apns-id header is accepted with no provider id."""
    receipt = make_apns().parse_response(httpx.Response(200), push_message())
    assert receipt.provider_message_id is None
    assert receipt.status.is_success


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(p.name for p in FIXTURES.glob("*.txt"))),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    status=st.sampled_from([200, 400, 403, 404, 410, 413, 429, 500, 503]),
)
def test_mutated_responses_raise_only_our_errors(
    name: str, flips: list[tuple[int, int]], status: int
) -> None:
    """Mutated response bodies give a receipt or a ProviderError; callbacks only our errors."""
    body = bytearray(fixture(name).content or b"{}")
    for position, value in flips:
        body[position % len(body)] = value
    apns = make_apns()
    response = httpx.Response(status, content=bytes(body), headers={"apns-id": OK_ID})
    if status == 200:
        assert apns.parse_response(response, push_message()).provider_message_id == OK_ID
    else:
        with pytest.raises(ProviderError, match="apns"):
            apns.parse_response(response, push_message())
    request = WebhookRequest(url="https://app.example.com/hooks/apns", headers={}, body=body)
    with pytest.raises(AnysendError):
        apns.parse_webhook(request, verify=False)


# -- through the clients ---------------------------------------------------------------------------


def test_dead_token_reaches_on_invalid_address_hook() -> None:
    """A 410 Unregistered flags the attempt and calls on_invalid_address; the live token works."""
    dead: list[anysend.Attempt] = []
    ann = Recipient(
        push=(PushTarget(kind="apns", token=DEAD), PushTarget(kind="apns", token=TOKEN))
    )
    with respx.mock() as mock:
        mock.post(f"https://api.push.apple.com/3/device/{DEAD}").mock(
            return_value=fixture("410_unregistered.txt")
        )
        mock.post(URL).mock(return_value=fixture("200_ok.txt"))
        with anysend.Client(
            [make_apns()], clock=VirtualClock(), on_invalid_address=[dead.append]
        ) as c:
            result = c.send(ORDER, to=ann)
    assert result.ok
    assert [a.address for a in dead] == [DEAD]
    assert dead[0].error is not None
    assert dead[0].error.reason is Reason.TOKEN_UNREGISTERED


def test_device_token_not_for_topic_fails_over_to_the_next_app() -> None:
    """DeviceTokenNotForTopic tries the next APNs provider (another app's topic)."""
    first = make_apns()
    second = make_apns(topic="com.example.other")
    with respx.mock() as mock:
        route = mock.post(URL).mock(
            side_effect=[fixture("400_device_token_not_for_topic.txt"), fixture("200_ok.txt")]
        )
        with anysend.Client([first, second], clock=VirtualClock()) as c:
            result = c.send(ORDER, to=ANN)
    assert result.ok
    topics = [call.request.headers["apns-topic"] for call in route.calls]
    assert topics == [TOPIC, "com.example.other"]
    assert not result.attempts[0].contact_invalid


def test_requests_go_through_the_http2_pool() -> None:
    """The client sends APNs requests through its HTTP/2 pool, not the HTTP/1.1 one."""
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=fixture("200_ok.txt"))
        with anysend.Client([make_apns()], clock=VirtualClock()) as c:
            result = c.send(ORDER, to=ANN)
            pool = c._http2
            assert pool is not None
            assert c._http is None
            transport = pool._transport
            assert isinstance(transport, httpx.HTTPTransport)
            assert transport._pool._http2 is True
    assert result.ok


@pytest.mark.anyio
async def test_async_client_sends_through_http2() -> None:
    """AsyncClient sends the same request through its HTTP/2 pool."""
    apns = make_apns()
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=fixture("200_ok.txt"))
        async with anysend.AsyncClient([apns], clock=VirtualClock()) as c:
            result = await c.send(ORDER, to=ANN)
            assert c._http2 is not None
            assert c._http is None
    assert result.ok
    assert result.provider_message_id == OK_ID
    request = route.calls.last.request
    assert bearer(request) == apns.provider_token()
    assert apns_headers(request)["apns-push-type"] == "alert"
