"""The FCM adapter: service-account tokens, the token cache, messages:send, error mapping."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Attempt,
    Channel,
    ConfigurationError,
    ContentError,
    ErrorCategory,
    Message,
    OutboundMessage,
    ProviderError,
    PushContent,
    PushTarget,
    Reason,
    Receipt,
    Recipient,
    RetryPolicy,
    SendResult,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import Provider
from anysend.providers.fcm import (
    ERROR_CODES,
    FCM,
    MAX_PAYLOAD_BYTES,
    REFRESH_MARGIN,
    SCOPE,
    STATUS_CODES,
    TOKEN_ERRORS,
    sign_rs256,
    stringify,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fcm"
PROJECT = "anysend-fixture"
EMAIL = "anysend-push@anysend-fixture.iam.gserviceaccount.com"
KEY_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SEND_URL = f"https://fcm.googleapis.com/v1/projects/{PROJECT}/messages:send"
DEVICE = "fcm-device-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
MESSAGE_NAME = f"projects/{PROJECT}/messages/0:1795161600000000%31bd1c9631bd1c96"
ACCESS = "ya29.c.anysend-fixture-access-token-0000000000000000"
NOW = 1_795_161_600.0


@functools.lru_cache(maxsize=1)
def private_key() -> rsa.RSAPrivateKey:
    """The service account's RSA key, made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None) -> str:
    """A private key as the PKCS#8 PEM text a Google key file holds."""
    key = key or private_key()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account(**changes: Any) -> dict[str, Any]:
    """A service-account key file's fields, with ``changes`` applied (None removes a field)."""
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": pem(),
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": TOKEN_URL,
    }
    info.update(changes)
    return {k: v for k, v in info.items() if v is not None}


class Clock:
    """An adjustable ``FCM.now``."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_fcm(clock: Clock | None = None, **settings: Any) -> FCM:
    """An FCM adapter with a test service account and a pinned clock."""
    settings.setdefault("service_account", json.dumps(service_account()))
    fcm = FCM(**settings)
    fcm.now = clock or Clock()
    return fcm


def fixture(name: str) -> httpx.Response:
    """A raw HTTP response fixture (status line, headers, blank line, body) as a Response."""
    raw = (FIXTURES / name).read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = [
        (name.strip(), value.strip()) for name, value in (line.split(":", 1) for line in lines)
    ]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def token_answer(expires_in: int = 3599, value: str = ACCESS) -> httpx.Response:
    """The token endpoint's success answer."""
    return httpx.Response(
        200, json={"access_token": value, "expires_in": expires_in, "token_type": "Bearer"}
    )


def b64decode(part: str) -> bytes:
    """base64url without padding, decoded."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_jwt(token: str, key: rsa.RSAPublicKey | None = None) -> tuple[dict[str, Any], ...]:
    """A JWT's header and claims, after checking its RS256 signature with ``key``."""
    header, claims, signature = token.split(".")
    (key or private_key().public_key()).verify(
        b64decode(signature),
        f"{header}.{claims}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(b64decode(header)), json.loads(b64decode(claims))


def outbound(**fields: Any) -> OutboundMessage:
    """A push message as the client hands it to the adapter."""
    fields.setdefault("push", PushContent(title="Order shipped", body="It is on its way"))
    return OutboundMessage(
        id="msg-1",
        channel=Channel.PUSH,
        to=DEVICE,
        push_target=PushTarget(kind="fcm", token=DEVICE),
        **fields,
    )


def sent(route: respx.Route, index: int = -1) -> Any:
    """The JSON body of a request a route received."""
    return json.loads(route.calls[index].request.content)


def drive(fcm: FCM, message: OutboundMessage, *answers: httpx.Response) -> Receipt:
    """Run the send flow by hand, answering its requests in order; return the receipt."""
    flow = fcm.send_flow(message)
    request = next(flow)
    for answer in answers:
        try:
            request = flow.send(answer)
        except StopIteration as stop:
            receipt = stop.value
            break
    else:
        raise AssertionError(f"the flow still wants {request.url}")
    assert isinstance(receipt, Receipt)
    return receipt


def failure(fcm: FCM, message: OutboundMessage, *answers: httpx.Response) -> ProviderError:
    """The ProviderError the send flow raises for ``answers``."""
    with pytest.raises(ProviderError) as caught:
        drive(fcm, message, *answers)
    return caught.value


DEVICES = Recipient(push=(PushTarget(kind="fcm", token=DEVICE),))
PUSH = Message(push=PushContent(title="Order shipped", body="It is on its way", data={"order": 42}))


def send(fcm: FCM, message: Message = PUSH, send_answer: httpx.Response | None = None) -> Any:
    """Send through the sync client with respx; the result and the two routes."""
    with respx.mock(assert_all_called=False) as mock:
        token = mock.post(TOKEN_URL).mock(return_value=fixture("token_200.txt"))
        route = mock.post(SEND_URL).mock(return_value=send_answer or fixture("200_ok.txt"))
        retry = RetryPolicy(max_attempts=1)
        with anysend.Client([fcm], clock=VirtualClock(), retry=retry) as client:
            result = client.send(message, to=DEVICES)
    return result, token, route


# -- the contract kit ------------------------------------------------------------------------------


class TestFCMContract(ProviderContract):
    """The contract kit run against the FCM adapter (each send fetches its own token)."""

    expected_provider_message_id = MESSAGE_NAME

    def make_provider(self) -> Provider:
        """FCM with a test service account."""
        return make_fcm()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """A token that expires within the refresh margin (so never reused), then a name."""
        if request.url == TOKEN_URL:
            return token_answer(expires_in=60)
        return fixture("200_ok.txt")

    def error_cases(self) -> list[ErrorCase]:
        """The token endpoint's errors (step 0) and FCM's own (step 1)."""

        def case(name: str, file: str, category: ErrorCategory, **kw: Any) -> ErrorCase:
            answer = fixture(file)
            return ErrorCase(
                name=name,
                status=answer.status_code,
                body=answer.content,
                headers=dict(answer.headers),
                category=category,
                retryable=category.retryable,
                step=kw.pop("step", 1),
                **kw,
            )

        return [
            case("invalid grant", "token_400_invalid_grant.txt", ErrorCategory.AUTH, step=0),
            case("unregistered", "404_unregistered.txt", ErrorCategory.INVALID_RECIPIENT),
            case("bad token", "400_invalid_argument_token.txt", ErrorCategory.INVALID_RECIPIENT),
            case("bad payload", "400_invalid_argument_payload.txt", ErrorCategory.CONTENT_REJECTED),
            case("sender id", "403_sender_id_mismatch.txt", ErrorCategory.CONFIGURATION),
            case("third party", "401_third_party_auth_error.txt", ErrorCategory.CONFIGURATION),
            case("token refused", "401_unauthenticated.txt", ErrorCategory.AUTH),
            case(
                "quota",
                "429_quota_exceeded.txt",
                ErrorCategory.RATE_LIMITED,
                retry_after=60.0,
            ),
            case("unavailable", "503_unavailable.txt", ErrorCategory.UNAVAILABLE, retry_after=30.0),
            case("internal", "500_internal.txt", ErrorCategory.UNAVAILABLE),
        ]


# -- the service account and the JWT ---------------------------------------------------------------


def test_rs256_matches_rfc7515_appendix_a2() -> None:
    """sign_rs256 reproduces the RS256 signature of RFC 7515 Appendix A.2 byte for byte."""
    n = (
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0"
        "Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXn"
        "dS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5"
        "IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
    )
    p = (
        "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_"
        "Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc"
    )
    expected = (
        "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2"
        "Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkS"
        "jtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCn"
        "vWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
    )
    modulus, prime = (int.from_bytes(b64decode(v), "big") for v in (n, p))
    other = modulus // prime
    assert prime * other == modulus
    e = 65537
    d = pow(e, -1, (prime - 1) * (other - 1))
    key = rsa.RSAPrivateNumbers(
        prime,
        other,
        d,
        rsa.rsa_crt_dmp1(d, prime),
        rsa.rsa_crt_dmq1(d, other),
        rsa.rsa_crt_iqmp(prime, other),
        rsa.RSAPublicNumbers(e, modulus),
    ).private_key()
    signing_input = (
        b"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
        b"cGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    )
    assert base64.urlsafe_b64encode(sign_rs256(key, signing_input)).rstrip(b"=") == (
        expected.encode()
    )


def test_assertion_header_claims_and_signature() -> None:
    """The JWT names the key, carries Google's claims for one hour and verifies."""
    fcm = make_fcm()
    header, claims = decode_jwt(fcm.assertion(NOW + 0.75))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    assert claims == {
        "iss": EMAIL,
        "scope": SCOPE,
        "aud": TOKEN_URL,
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }


def test_assertion_fails_verification_with_another_key() -> None:
    """The assertion is signed with the service account's key and no other."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidSignature):
        decode_jwt(make_fcm().assertion(NOW), other.public_key())


def test_assertion_without_key_id_has_no_kid() -> None:
    """A key file without private_key_id gives a header without kid."""
    fcm = make_fcm(service_account=json.dumps(service_account(private_key_id=None)))
    header, _ = decode_jwt(fcm.assertion(NOW))
    assert header == {"alg": "RS256", "typ": "JWT"}


def test_token_request_is_the_jwt_bearer_grant() -> None:
    """The token request POSTs the form grant_type=jwt-bearer&assertion=<jwt> to token_uri."""
    request = make_fcm().token_request(NOW)
    assert request.method == "POST"
    assert request.url == TOKEN_URL
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode(), strict_parsing=True)
    assert set(form) == {"grant_type", "assertion"}
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert request.content.startswith(
        b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"
    )
    _, claims = decode_jwt(form["assertion"][0])
    assert claims["iat"] == int(NOW)


def test_token_uri_from_the_key_file_is_used() -> None:
    """The JWT audience and the token request follow the key file's token_uri."""
    uri = "https://oauth2.example.com/token"
    fcm = make_fcm(service_account=json.dumps(service_account(token_uri=uri)))
    assert fcm.token_request(NOW).url == uri
    assert decode_jwt(fcm.assertion(NOW))[1]["aud"] == uri


def test_service_account_file_is_read_at_construction(tmp_path: Path) -> None:
    """service_account_file is read when the adapter is built; later changes do not matter."""
    path = tmp_path / "key.json"
    path.write_text(json.dumps(service_account()), encoding="utf-8")
    fcm = FCM(service_account_file=str(path))
    path.unlink()
    assert (fcm.project_id, fcm.client_email) == (PROJECT, EMAIL)
    assert pem() in fcm.secrets()
    decode_jwt(fcm.assertion(NOW))


def test_project_id_setting_overrides_the_key_file() -> None:
    """project_id picks the project in the send URL instead of the key's own."""
    fcm = make_fcm(project_id="other-project-42")
    assert fcm.project_id == "other-project-42"
    request = drive_first_send(fcm)
    assert request.url == "https://fcm.googleapis.com/v1/projects/other-project-42/messages:send"


def drive_first_send(fcm: FCM) -> httpx.Request:
    """The send request that follows a successful token exchange."""
    flow = fcm.send_flow(outbound())
    next(flow)
    request = flow.send(token_answer())
    flow.close()
    return request


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({}, "exactly one of service_account and service_account_file"),
        (
            {"service_account": "{}", "service_account_file": "/nowhere.json"},
            "exactly one of service_account and service_account_file",
        ),
        ({"service_account": "not json"}, "service_account is not JSON"),
        ({"service_account": "[1, 2]"}, "service_account is not a JSON object"),
        ({"service_account_file": "/no/such/key.json"}, "cannot read service_account_file"),
        (
            {"service_account": json.dumps(service_account(type="authorized_user"))},
            "is not a service account key",
        ),
        (
            {"service_account": json.dumps(service_account(client_email=None))},
            "client_email is missing",
        ),
        (
            {"service_account": json.dumps(service_account(private_key="-----BEGIN junk"))},
            "private_key is not an unencrypted PEM key",
        ),
        (
            {
                "service_account": json.dumps(
                    service_account(private_key=pem(ec.generate_private_key(ec.SECP256R1())))
                )
            },
            "private_key is not an RSA key",
        ),
        (
            {"service_account": json.dumps(service_account(project_id=None))},
            "needs a project_id",
        ),
        (
            {"service_account": json.dumps(service_account(token_uri="http://insecure/token"))},
            "token_uri must be an https URL",
        ),
        (
            {"service_account": json.dumps(service_account(token_uri="::::"))},
            "token_uri must be an https URL",
        ),
        (
            {"service_account": json.dumps(service_account()), "project_id": "Bad/Project"},
            "project_id is not a Google Cloud project id",
        ),
    ],
)
def test_bad_settings_are_configuration_errors(settings: dict[str, Any], problem: str) -> None:
    """Broken or missing keys raise ConfigurationError naming the problem, never the key."""
    with pytest.raises(ConfigurationError, match=problem) as caught:
        FCM(**settings)
    assert "PRIVATE KEY" not in str(caught.value)
    assert pem() not in str(caught.value)


def test_repr_hides_the_service_account() -> None:
    """Neither the key file nor the private key shows in reprs."""
    fcm = make_fcm()
    for text in (repr(fcm), str(fcm.settings), repr(fcm.settings)):
        assert "PRIVATE KEY" not in text
        assert EMAIL not in text


# -- the request -----------------------------------------------------------------------------------


def test_send_through_the_client_exactly_as_documented() -> None:
    """A send exchanges the JWT for a token, then POSTs the JSON message with the bearer token."""
    result, token, route = send(make_fcm())
    assert result.ok
    assert (result.provider, result.provider_message_id) == ("fcm", MESSAGE_NAME)
    assert result.attempts[0].receipt is not None
    assert result.attempts[0].receipt.raw == {"name": MESSAGE_NAME}
    assert token.call_count == 1
    form = parse_qs(token.calls.last.request.content.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    decode_jwt(form["assertion"][0])
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == SEND_URL
    assert request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-GOOG-API-FORMAT-VERSION"] == "2"
    assert request.content == (
        b'{"message":{"token":"' + DEVICE.encode() + b'","notification":{"title":"Order shipped",'
        b'"body":"It is on its way"},"data":{"order":"42"}}}'
    )


@pytest.mark.anyio
async def test_async_client_sends_with_a_cached_token() -> None:
    """AsyncClient drives the same flow; its second send reuses the token."""
    fcm = make_fcm()
    with respx.mock() as mock:
        token = mock.post(TOKEN_URL).mock(return_value=token_answer())
        route = mock.post(SEND_URL).mock(return_value=fixture("200_ok.txt"))
        async with anysend.AsyncClient([fcm], clock=VirtualClock()) as client:
            first = await client.send(PUSH, to=DEVICES)
            second = await client.send(PUSH, to=DEVICES)
    assert first.ok
    assert second.provider_message_id == MESSAGE_NAME
    assert (token.call_count, route.call_count) == (1, 2)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {ACCESS}"


def test_data_values_become_strings() -> None:
    """FCM takes only string data: other values are sent as compact JSON or str()."""
    data = {
        "s": "text",
        "i": 12,
        "f": 1.5,
        "t": True,
        "n": None,
        "l": [1, "a"],
        "d": {"k": "ż"},
        "p": Path("a/b"),
    }
    payload = make_fcm().payload(outbound(push=PushContent(title="T", data=data)))
    assert payload["message"]["data"] == {
        "s": "text",
        "i": "12",
        "f": "1.5",
        "t": "true",
        "n": "null",
        "l": '[1,"a"]',
        "d": '{"k":"ż"}',
        "p": "a/b",
    }
    assert stringify("already") == "already"


def test_provider_options_merge_into_the_message() -> None:
    """Platform overrides are added; notification, data and fcm_options merge key by key."""
    options = {
        "android": {"priority": "high", "ttl": "3600s", "collapse_key": "orders"},
        "apns": {"headers": {"apns-priority": "10"}, "payload": {"aps": {"sound": "default"}}},
        "webpush": {"fcm_options": {"link": "https://shop.example.com/orders/42"}},
        "notification": {"image": "https://shop.example.com/box.png"},
        "data": {"step": 3},
        "fcm_options": {"analytics_label": "order-shipped"},
        "validate_only": True,
    }
    message = outbound(
        push=PushContent(title="T", body="B", data={"order": "42"}),
        provider_options=options,
        tags=("ignored-when-an-option-sets-the-label",),
    )
    assert make_fcm().payload(message) == {
        "message": {
            "token": DEVICE,
            "notification": {
                "title": "T",
                "body": "B",
                "image": "https://shop.example.com/box.png",
            },
            "data": {"order": "42", "step": "3"},
            "android": options["android"],
            "apns": options["apns"],
            "webpush": options["webpush"],
            "fcm_options": {"analytics_label": "order-shipped"},
        },
        "validate_only": True,
    }


def test_first_tag_is_the_analytics_label() -> None:
    """The first tag goes to fcm_options.analytics_label."""
    payload = make_fcm().payload(outbound(tags=("order-shipped", "second")))
    assert payload["message"]["fcm_options"] == {"analytics_label": "order-shipped"}


def test_without_push_content_subject_and_text_are_used() -> None:
    """A message without push parts falls back to subject and text."""
    message = OutboundMessage(
        id="m", channel=Channel.PUSH, to=DEVICE, subject="Hi", text="Hello", push=None
    )
    assert make_fcm().payload(message)["message"] == {
        "token": DEVICE,
        "notification": {"title": "Hi", "body": "Hello"},
    }


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"push": PushContent(title="T", data={"from": "x"})}, "reserves the data keys from"),
        ({"push": PushContent(title="T", data={"message_type": "x"})}, "message_type"),
        ({"push": PushContent(title="T", data={"google.c.a": "x"})}, "google.c.a"),
        ({"push": PushContent(title="T", data={"gcm.notification": "x"})}, "gcm.notification"),
        ({"provider_options": {"data": {"from": 1}}}, "reserves the data keys from"),
        ({"tags": ("has spaces",)}, "analytics label"),
        ({"tags": ("x" * 51,)}, "analytics label"),
        ({"provider_options": {"fcm_options": {"analytics_label": 7}}}, "analytics label"),
        ({"provider_options": {"topic": "news"}}, "may not set a target"),
        ({"provider_options": {"token": "other"}}, "may not set a target"),
        ({"provider_options": {"validate_only": "yes"}}, "validate_only"),
        ({"provider_options": {"data": ["not", "a", "dict"]}}, "data must be an object"),
    ],
)
def test_content_fcm_refuses_is_refused_before_any_request(
    fields: dict[str, Any], problem: str
) -> None:
    """Reserved data keys, bad labels and bad options raise ContentError without a request."""
    fcm = make_fcm()
    message = outbound(**fields)
    with pytest.raises(ContentError, match=problem):
        fcm.check_supported(message)
    with pytest.raises(ContentError, match=problem):
        next(fcm.send_flow(message))


def test_reserved_key_skips_to_the_next_channel_without_a_request() -> None:
    """Through the client a reserved data key is content_rejected, and nothing is sent."""
    message = Message(push=PushContent(title="T", data={"from": "shop"}), text="fallback")
    with respx.mock() as mock:
        with anysend.Client([make_fcm()], clock=VirtualClock()) as client:
            result = client.send(message, to=DEVICES)
        assert not mock.calls
    assert result.error is not None
    assert result.error.category is ErrorCategory.CONTENT_REJECTED


def test_payload_limit_counts_the_message_without_its_token() -> None:
    """Exactly MAX_PAYLOAD_BYTES passes; one byte more is payload_too_large before any request."""
    fcm = make_fcm()
    empty = outbound(push=PushContent(title="T", data={"k": ""}))
    base = len(
        json.dumps({"notification": {"title": "T"}, "data": {"k": ""}}, separators=(",", ":"))
    )
    fits = outbound(
        push=PushContent(title="T", data={"k": "ł" * ((MAX_PAYLOAD_BYTES - base) // 2)})
    )
    fcm.check_supported(empty)
    fcm.check_supported(fits)
    too_big = outbound(
        push=PushContent(title="T", data={"k": "ł" * ((MAX_PAYLOAD_BYTES - base) // 2) + "x"})
    )
    with pytest.raises(ProviderError) as caught:
        fcm.check_supported(too_big)
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE
    assert caught.value.provider == "fcm"


def test_base_url_override_sends_both_requests_there() -> None:
    """A client base-URL override moves the token request and the send alike."""
    fcm = make_fcm()
    with respx.mock() as mock:
        token = mock.post("http://127.0.0.1:8085/token").mock(return_value=token_answer())
        route = mock.post(f"http://127.0.0.1:8085/v1/projects/{PROJECT}/messages:send").mock(
            return_value=fixture("200_ok.txt")
        )
        base = {"fcm": "http://127.0.0.1:8085"}
        with anysend.Client([fcm], base_urls=base, clock=VirtualClock()) as client:
            assert client.send(PUSH, to=DEVICES).ok
    assert (token.call_count, route.call_count) == (1, 1)


# -- the token cache -------------------------------------------------------------------------------


def test_token_is_cached_until_the_refresh_margin() -> None:
    """Sends reuse one token until REFRESH_MARGIN seconds before it expires, then fetch anew."""
    clock = Clock()
    fcm = make_fcm(clock)
    with respx.mock() as mock:
        token = mock.post(TOKEN_URL).mock(
            side_effect=[token_answer(3599, "first"), token_answer(3599, "second")]
        )
        route = mock.post(SEND_URL).mock(return_value=fixture("200_ok.txt"))
        with anysend.Client([fcm], clock=VirtualClock()) as client:
            client.send(PUSH, to=DEVICES)
            clock.t = NOW + 3599 - REFRESH_MARGIN - 0.001
            client.send(PUSH, to=DEVICES)
            clock.t = NOW + 3599 - REFRESH_MARGIN
            client.send(PUSH, to=DEVICES)
            client.send(PUSH, to=DEVICES)
    assert token.call_count == 2
    used = [call.request.headers["Authorization"] for call in route.calls]
    assert used == ["Bearer first", "Bearer first", "Bearer second", "Bearer second"]
    _, claims = decode_jwt(parse_qs(token.calls.last.request.content.decode())["assertion"][0])
    assert claims["iat"] == int(NOW + 3599 - REFRESH_MARGIN)


def test_short_lived_or_dateless_tokens_serve_one_send() -> None:
    """A token living less than the margin, or without expires_in, is used once, not reused."""
    fcm = make_fcm()
    for answer in (token_answer(expires_in=60), httpx.Response(200, json={"access_token": "x"})):
        drive(fcm, outbound(), answer, fixture("200_ok.txt"))
        assert fcm._cached_token() is None


def test_cached_token_refused_is_replaced_within_the_send() -> None:
    """A 401 on a cached token drops it, fetches a new one and sends once more."""
    fcm = make_fcm()
    drive(fcm, outbound(), token_answer(value="old"), fixture("200_ok.txt"))
    flow = fcm.send_flow(outbound())
    first = next(flow)
    assert first.headers["Authorization"] == "Bearer old"
    again = flow.send(fixture("401_unauthenticated.txt"))
    assert again.url == TOKEN_URL
    assert fcm._cached_token() is None
    retry = flow.send(token_answer(value="new"))
    assert retry.headers["Authorization"] == "Bearer new"
    assert retry.content == first.content
    with pytest.raises(StopIteration) as done:
        flow.send(fixture("200_ok.txt"))
    assert done.value.value.provider_message_id == MESSAGE_NAME
    assert fcm._cached_token() == "new"


def test_fresh_token_refused_is_auth_and_dropped() -> None:
    """A 401 on a token fetched for this send is auth; the next send fetches again."""
    fcm = make_fcm()
    error = failure(fcm, outbound(), token_answer(value="bad"), fixture("401_unauthenticated.txt"))
    assert error.category is ErrorCategory.AUTH
    assert not error.retryable
    assert error.code == "UNAUTHENTICATED"
    assert fcm._cached_token() is None
    assert next(fcm.send_flow(outbound())).url == TOKEN_URL


def test_refused_twice_reports_auth() -> None:
    """A cached token refused, then the new one refused too: auth, nothing cached."""
    fcm = make_fcm()
    drive(fcm, outbound(), token_answer(value="old"), fixture("200_ok.txt"))
    refused = fixture("401_unauthenticated.txt")
    error = failure(fcm, outbound(), refused, token_answer(value="new"), refused)
    assert error.category is ErrorCategory.AUTH
    assert fcm._cached_token() is None


def test_third_party_auth_error_keeps_the_token() -> None:
    """THIRD_PARTY_AUTH_ERROR (APNs or web push credentials) is configuration; no refetch."""
    fcm = make_fcm()
    drive(fcm, outbound(), token_answer(value="kept"), fixture("200_ok.txt"))
    error = failure(fcm, outbound(), fixture("401_third_party_auth_error.txt"))
    assert (error.category, error.code) == (ErrorCategory.CONFIGURATION, "THIRD_PARTY_AUTH_ERROR")
    assert fcm._cached_token() == "kept"


def test_cold_start_concurrent_sends_each_fetch_and_one_token_is_kept() -> None:
    """Two sends on an empty cache both fetch; the longer-lived token is the one kept."""
    fcm = make_fcm()
    first, second = fcm.send_flow(outbound()), fcm.send_flow(outbound())
    assert next(first).url == TOKEN_URL
    assert next(second).url == TOKEN_URL
    second_send = second.send(token_answer(3599, "b"))
    first_send = first.send(token_answer(1800, "a"))
    assert first_send.headers["Authorization"] == "Bearer a"
    assert second_send.headers["Authorization"] == "Bearer b"
    assert fcm._cached_token() == "b"
    third = fcm.send_flow(outbound())
    assert next(third).headers["Authorization"] == "Bearer b"
    for flow in (first, second, third):
        flow.close()


def test_a_late_refusal_does_not_drop_a_newer_token() -> None:
    """A 401 answered to an old token leaves a newer cached token alone."""
    fcm = make_fcm()
    with pytest.raises(ProviderError):
        drive(fcm, outbound(), token_answer(value="old"), fixture("401_unauthenticated.txt"))
    drive(fcm, outbound(), token_answer(value="new"), fixture("200_ok.txt"))
    with pytest.raises(ProviderError):
        fcm.parse_send_response(fixture("401_unauthenticated.txt"), "old")
    assert fcm._cached_token() == "new"


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "category", "code", "reason", "dead", "retry_after"),
    [
        (
            "404_unregistered.txt",
            ErrorCategory.INVALID_RECIPIENT,
            "UNREGISTERED",
            Reason.TOKEN_UNREGISTERED,
            True,
            None,
        ),
        (
            "400_invalid_argument_token.txt",
            ErrorCategory.INVALID_RECIPIENT,
            "INVALID_ARGUMENT",
            Reason.INVALID_RECIPIENT,
            True,
            None,
        ),
        (
            "400_invalid_argument_token_field.txt",
            ErrorCategory.INVALID_RECIPIENT,
            "INVALID_ARGUMENT",
            Reason.INVALID_RECIPIENT,
            True,
            None,
        ),
        (
            "400_invalid_argument_payload.txt",
            ErrorCategory.CONTENT_REJECTED,
            "INVALID_ARGUMENT",
            None,
            False,
            None,
        ),
        (
            "403_sender_id_mismatch.txt",
            ErrorCategory.CONFIGURATION,
            "SENDER_ID_MISMATCH",
            None,
            False,
            None,
        ),
        (
            "403_permission_denied.txt",
            ErrorCategory.CONFIGURATION,
            "PERMISSION_DENIED",
            None,
            False,
            None,
        ),
        (
            "429_quota_exceeded.txt",
            ErrorCategory.RATE_LIMITED,
            "QUOTA_EXCEEDED",
            Reason.RATE_LIMITED,
            False,
            60.0,
        ),
        ("503_unavailable.txt", ErrorCategory.UNAVAILABLE, "UNAVAILABLE", None, False, 30.0),
        ("500_internal.txt", ErrorCategory.UNAVAILABLE, "INTERNAL", None, False, None),
        (
            "401_third_party_auth_error.txt",
            ErrorCategory.CONFIGURATION,
            "THIRD_PARTY_AUTH_ERROR",
            None,
            False,
            None,
        ),
        ("401_unauthenticated.txt", ErrorCategory.AUTH, "UNAUTHENTICATED", None, False, None),
    ],
)
def test_fcm_errors_map(
    file: str,
    category: ErrorCategory,
    code: str,
    reason: Reason | None,
    dead: bool,
    retry_after: float | None,
) -> None:
    """Each documented FCM error answer maps to its category, code, reason and dead flag."""
    answer = fixture(file)
    error = failure(make_fcm(), outbound(), token_answer(), answer)
    assert error.category is category
    assert error.retryable is category.retryable
    assert error.code == code
    assert error.reason is reason
    assert error.contact_invalid is dead
    assert error.retry_after == retry_after
    assert error.status_code == answer.status_code
    assert error.raw == answer.json()
    assert error.message.startswith("fcm refused the message: ")


@pytest.mark.parametrize(
    ("status", "body", "category", "code"),
    [
        (404, {"error": {"code": 404, "status": "NOT_FOUND"}}, ErrorCategory.CONFIGURATION, None),
        (400, {"error": {"status": "INVALID_ARGUMENT"}}, ErrorCategory.CONTENT_REJECTED, None),
        (504, {"error": {"status": "DEADLINE_EXCEEDED"}}, ErrorCategory.AMBIGUOUS_TIMEOUT, None),
        (500, {"error": {"details": [{"@type": "x", "errorCode": "INTERNAL"}]}}, None, None),
        (400, {"error": {"status": "SOMETHING_NEW"}}, ErrorCategory.UNKNOWN, "SOMETHING_NEW"),
        (
            400,
            {
                "error": {
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "UNSPECIFIED_ERROR",
                        }
                    ]
                }
            },
            ErrorCategory.UNKNOWN,
            "UNSPECIFIED_ERROR",
        ),
        (502, "<html>Bad Gateway</html>", ErrorCategory.UNAVAILABLE, None),
    ],
)
def test_status_fallbacks(
    status: int, body: Any, category: ErrorCategory | None, code: str | None
) -> None:
    """Without an FcmError the canonical status decides, then the HTTP status."""
    answer = (
        httpx.Response(status, json=body)
        if isinstance(body, dict)
        else httpx.Response(status, text=body)
    )
    error = make_fcm().error_for(answer)
    assert error.category is (category or ErrorCategory.UNAVAILABLE)
    expected_code = code or (body["error"].get("status") if isinstance(body, dict) else None)
    assert error.code == expected_code
    assert not error.contact_invalid


def test_unregistered_reaches_the_on_invalid_address_hook() -> None:
    """Through the real client an UNREGISTERED token flags the attempt and reaches the hook."""
    dead: list[Attempt] = []
    fcm = make_fcm()
    live = PushTarget(kind="fcm", token="live-token")
    ann = Recipient(push=(PushTarget(kind="fcm", token=DEVICE), live))
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(return_value=token_answer())
        mock.post(SEND_URL).mock(
            side_effect=[fixture("404_unregistered.txt"), fixture("200_ok.txt")]
        )
        with anysend.Client(
            [fcm], clock=VirtualClock(), on_invalid_address=[dead.append]
        ) as client:
            result = client.send(PUSH, to=ann)
    assert result.ok
    first, second = result.attempts
    assert first.contact_invalid
    assert first.error is not None
    assert first.error.reason is Reason.TOKEN_UNREGISTERED
    assert not second.contact_invalid
    assert [a.address for a in dead] == [DEVICE]


def test_quota_exceeded_is_retried_after_retry_after() -> None:
    """QUOTA_EXCEEDED waits Retry-After, then the retry succeeds with the cached token."""
    fcm = make_fcm()
    clock = VirtualClock()
    with respx.mock() as mock:
        token = mock.post(TOKEN_URL).mock(return_value=token_answer())
        route = mock.post(SEND_URL).mock(
            side_effect=[fixture("429_quota_exceeded.txt"), fixture("200_ok.txt")]
        )
        with anysend.Client([fcm], clock=clock) as client:
            result: SendResult = client.send(PUSH, to=DEVICES)
    assert result.ok
    assert clock.sleeps == [60.0]
    assert (token.call_count, route.call_count) == (1, 2)


@pytest.mark.parametrize(
    ("answer", "category", "code"),
    [
        (fixture("token_400_invalid_grant.txt"), ErrorCategory.AUTH, "invalid_grant"),
        (httpx.Response(400, json={"error": "invalid_scope"}), ErrorCategory.CONFIGURATION, None),
        (httpx.Response(401, json={"error": "invalid_client"}), ErrorCategory.AUTH, None),
        (httpx.Response(400, json={"error": "something_new"}), ErrorCategory.AUTH, None),
        (httpx.Response(403, text="Forbidden"), ErrorCategory.AUTH, None),
        (
            httpx.Response(400, json={"error": "temporarily_unavailable"}),
            ErrorCategory.UNAVAILABLE,
            None,
        ),
        (httpx.Response(503, text="<html>oops</html>"), ErrorCategory.UNAVAILABLE, None),
        (
            httpx.Response(429, text="slow down", headers={"Retry-After": "5"}),
            ErrorCategory.RATE_LIMITED,
            None,
        ),
        (httpx.Response(200, json={"token_type": "Bearer"}), ErrorCategory.UNAVAILABLE, None),
        (httpx.Response(200, text="not json"), ErrorCategory.UNAVAILABLE, None),
    ],
)
def test_token_endpoint_errors(
    answer: httpx.Response, category: ErrorCategory, code: str | None
) -> None:
    """Token endpoint failures map through TOKEN_ERRORS, else by status; nothing is cached."""
    fcm = make_fcm()
    error = failure(fcm, outbound(), answer)
    assert error.category is category
    assert error.provider == "fcm"
    body = (
        answer.json()
        if answer.headers.get("content-type", "").startswith("application/json")
        else None
    )
    assert error.code == (code or (body.get("error") if isinstance(body, dict) else None))
    assert fcm._cached_token() is None
    if answer.status_code == 429:
        assert error.retry_after == 5.0
    assert pem() not in str(error)


def test_invalid_grant_fails_over_without_sending() -> None:
    """A refused service account fails the FCM attempt with auth; the message is never sent."""
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).mock(return_value=fixture("token_400_invalid_grant.txt"))
        route = mock.post(SEND_URL)
        with anysend.Client([make_fcm()], clock=VirtualClock()) as client:
            result = client.send(PUSH, to=DEVICES)
    assert not route.called
    assert result.error is not None
    assert (result.error.category, result.error.code) == (ErrorCategory.AUTH, "invalid_grant")
    assert result.error.message == (
        "fcm could not get an access token: invalid_grant: Invalid JWT Signature."
    )


def test_the_mapping_tables_cover_the_documented_codes() -> None:
    """Every FcmError code of FCM's reference, and the OAuth errors, are in the tables."""
    assert set(ERROR_CODES) >= {
        "UNSPECIFIED_ERROR",
        "INVALID_ARGUMENT",
        "UNREGISTERED",
        "SENDER_ID_MISMATCH",
        "QUOTA_EXCEEDED",
        "UNAVAILABLE",
        "INTERNAL",
        "THIRD_PARTY_AUTH_ERROR",
    }
    assert {"UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND"} <= set(STATUS_CODES)
    assert TOKEN_ERRORS["invalid_grant"] is ErrorCategory.AUTH


_BODIES = [
    fixture(name).content
    for name in (
        "200_ok.txt",
        "404_unregistered.txt",
        "400_invalid_argument_token.txt",
        "400_invalid_argument_payload.txt",
        "429_quota_exceeded.txt",
        "401_unauthenticated.txt",
    )
]


@functools.lru_cache(maxsize=1)
def shared_fcm() -> FCM:
    """One adapter for the many hypothesis examples (loading an RSA key takes a while)."""
    return make_fcm()


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    body=st.sampled_from(_BODIES),
    cut=st.integers(min_value=0, max_value=400),
    junk=st.binary(max_size=8),
    status=st.sampled_from([200, 400, 401, 403, 404, 429, 500, 503]),
)
def test_mutated_answers_give_only_receipts_or_provider_errors(
    body: bytes, cut: int, junk: bytes, status: int
) -> None:
    """Mutated fixture bodies under any status give a Receipt or a ProviderError, nothing else."""
    mutated = body[:cut] + junk + body[cut + len(junk) :]
    answer = httpx.Response(status, content=mutated, headers={"Content-Type": "application/json"})
    fcm = shared_fcm()
    outcomes: list[object] = []
    for parse in (
        lambda: fcm.parse_send_response(answer, ACCESS),
        lambda: fcm.parse_token_response(answer, NOW),
    ):
        try:
            outcomes.append(parse())
        except ProviderError as exc:
            outcomes.append(exc)
    send_outcome, token_outcome = outcomes
    assert isinstance(send_outcome, (Receipt, ProviderError))
    assert isinstance(token_outcome, (tuple, ProviderError))
    assert all(o.provider == "fcm" for o in outcomes if isinstance(o, ProviderError))


def test_fcm_has_no_callbacks() -> None:
    """FCM posts no delivery callbacks: parse_webhook refuses with WebhookVerificationError."""
    fcm = make_fcm()
    assert not fcm.capabilities.webhooks
    request = WebhookRequest(url="https://example.com/hooks/fcm", headers={}, body=b"{}")
    with pytest.raises(WebhookVerificationError):
        fcm.parse_webhook(request, verify=False)


def test_declarations() -> None:
    """FCM serves the push channel, for FCM tokens only, over HTTP/1.1 or 2."""
    assert FCM.name == "fcm"
    assert FCM.channels == frozenset({Channel.PUSH})
    assert FCM.push_kinds == frozenset({"fcm"})
    assert not FCM.capabilities.idempotency
    assert FCM.capabilities.tags
