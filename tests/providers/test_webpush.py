"""The Web Push adapter: RFC 8291 encryption vectors, VAPID tokens, the request, error mapping."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Attempt,
    Channel,
    ConfigurationError,
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
    SkipReason,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers.webpush import (
    CONTACT_INVALID_STATUSES,
    ERROR_CODES,
    MAX_BODY,
    MAX_PLAINTEXT,
    REASONS,
    TOKEN_LIFETIME,
    TOKEN_RENEW_BEFORE,
    WebPush,
    b64url,
    b64url_decode,
    encrypt,
    key_schedule,
    origin,
    vapid_keys,
    vapid_token,
)
from anysend.testing import VirtualClock
from anysend.testing.contract import ErrorCase, ProviderContract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webpush"

# RFC 8291 §5 and Appendix A (base64url; the RFC's line breaks removed).
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PUBLIC = (
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_ECDH_SECRET = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs"
RFC_PRK_KEY = "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k"
RFC_KEY_INFO = (
    "V2ViUHVzaDogaW5mbwAEJXGyvs3942BVGq8e0PTNNmwRzr5VX4m8t7GGpTM5FzFo7OLr4BhZe9MEebhuPI-OztV3"
    "ylkYfpJGmQ22ggCLDgT-M_SrDepxkU21WCP3O1SUj0EwbZIHMtu5pZpTKGSCIA5Zent7wmC6HCJ5mFgJkuk5cwAv"
    "MBKiiujwa7t45ewP"
)
RFC_IKM = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg"
RFC_PRK = "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc"
RFC_CEK = "oIhVW04MRdy2XN9CiKLxTg"
RFC_NONCE = "4h_95klXJ5E_qnoN"
RFC_HEADER = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmY"
    "WAmS6TlzAC8wEqKK6PBru3jl7A8"
)
RFC_CIPHERTEXT = "8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmY"
    "WAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexS"
    "gSxsj_Qulcy4a-fN"
)

# RFC 8292 §2.4: the example JWT and the key that signed it.
RFC8292_HEADER = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9"
RFC8292_CLAIMS = (
    "eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpw"
    "dXNoQGV4YW1wbGUuY29tIn0"
)
RFC8292_SIGNATURE = (
    "i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA"
)
RFC8292_KEY = (
    "BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs"
)

# The test application server (a VAPID key made for these tests only).
VAPID_PRIVATE = "DrrvItnUEFuq1_kFErYy1103DH2F2EvTaVe3Or2DC8w"
VAPID_PUBLIC = (
    "BEBytHFk0fQjgfW6eAlpvsIATsD488MTAqcW9R44TT1S3GsRFa0A9cj8yDDp62nrk8-mV9q7XtSxZeRv5xfNPU8"
)
SUBJECT = "mailto:ops@example.com"
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ENDPOINT = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABfixtureSubscriptionNotReal"
FCM_ENDPOINT = "https://fcm.googleapis.com/fcm/send/fixture-subscription-not-real:APA91b"
LOCATION = "https://updates.push.services.mozilla.com/m/gAAAAABfixtureMessageIdNotReal"
AUTHORIZATION = re.compile(r"vapid t=(?P<t>[\w-]+\.[\w-]+\.[\w-]+), k=(?P<k>[\w-]+)")


def make_push(**overrides: Any) -> WebPush:
    """A WebPush adapter with the test VAPID key and a fixed clock."""
    options: dict[str, Any] = {"vapid_private_key": VAPID_PRIVATE, "vapid_subject": SUBJECT}
    options.update(overrides)
    push = WebPush(**options)
    push.now = lambda: NOW
    return push


def browser(endpoint: str = ENDPOINT) -> PushTarget:
    """A subscription whose keys are RFC 8291's user agent keys (so tests can decrypt)."""
    return PushTarget.webpush(
        {"endpoint": endpoint, "keys": {"p256dh": RFC_UA_PUBLIC, "auth": RFC_AUTH}}
    )


def outbound(**fields: Any) -> OutboundMessage:
    """A web push message as the client hands it to the adapter."""
    fields.setdefault("push", PushContent(title="Order shipped", body="It is on its way"))
    fields.setdefault("push_target", browser())
    return OutboundMessage(id="msg-1", channel=Channel.PUSH, to=ENDPOINT, **fields)


def response_parts(name: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A fixture's status, headers and body (the files are raw HTTP responses)."""
    head, _, body = (FIXTURES / name).read_bytes().partition(b"\r\n\r\n")
    status_line, *lines = head.decode("ascii").split("\r\n")
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines)]
    return int(status_line.split()[1]), headers, body


def answer(name: str, request: httpx.Request | None = None) -> httpx.Response:
    """A fixture as an httpx.Response."""
    status, headers, body = response_parts(name)
    return httpx.Response(status, headers=headers, content=body, request=request)


def decrypt(body: bytes, ua_private: str = RFC_UA_PRIVATE, auth: str = RFC_AUTH) -> bytes:
    """Decrypt an aes128gcm Web Push body as a browser does (cryptography's own HKDF)."""
    salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    as_public = body[21 : 21 + idlen]
    record = body[21 + idlen :]
    assert len(record) <= rs
    receiver = ec.derive_private_key(
        int.from_bytes(b64url_decode(ua_private), "big"), ec.SECP256R1()
    )
    ua_public = receiver.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    ecdh = receiver.exchange(ec.ECDH(), sender)
    info = b"WebPush: info\x00" + ua_public + as_public
    ikm = HKDF(hashes.SHA256(), 32, salt=b64url_decode(auth), info=info).derive(ecdh)
    cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00").derive(ikm)
    padded = AESGCM(cek).decrypt(nonce, record, None).rstrip(b"\x00")
    assert padded.endswith(b"\x02"), "the last record ends with the 0x02 delimiter"
    return padded[:-1]


def verify_jwt(token: str, public_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify an ES256 JWT (JOSE r||s signature) with a base64url point; header and claims."""
    header, claims, signature = token.split(".")
    raw = b64url_decode(signature)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(public_key))
    key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(claims))


def send(
    message: Message, reply: httpx.Response, *targets: PushTarget, **settings: Any
) -> tuple[SendResult, httpx.Request | None]:
    """Send to the given browsers through the sync client (no retries); result and request."""
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(ENDPOINT).mock(return_value=reply)
        retry = RetryPolicy(max_attempts=1)
        with anysend.Client([make_push(**settings)], clock=VirtualClock(), retry=retry) as c:
            result = c.send(message, to=Recipient(push=targets or (browser(),)))
        return result, route.calls.last.request if route.called else None


# -- RFC 8291 encryption -----------------------------------------------------------------------


def test_key_schedule_matches_rfc8291_appendix_a() -> None:
    """ECDH secret, PRK_key, key_info, IKM, PRK, CEK and NONCE are RFC 8291's, byte for byte."""
    keys = key_schedule(
        RFC_UA_PUBLIC,
        RFC_AUTH,
        salt=b64url_decode(RFC_SALT),
        sender_private_key=b64url_decode(RFC_AS_PRIVATE),
    )
    assert b64url(keys.as_public) == RFC_AS_PUBLIC
    assert b64url(keys.ecdh_secret) == RFC_ECDH_SECRET
    assert b64url(keys.prk_key) == RFC_PRK_KEY
    assert b64url(keys.key_info) == RFC_KEY_INFO
    assert b64url(keys.ikm) == RFC_IKM
    assert b64url(keys.prk) == RFC_PRK
    assert b64url(keys.cek) == RFC_CEK
    assert b64url(keys.nonce) == RFC_NONCE


def test_encrypt_reproduces_rfc8291_section_5() -> None:
    """The RFC's inputs give the RFC's message body: header, then ciphertext, byte for byte."""
    body = encrypt(
        RFC_PLAINTEXT,
        RFC_UA_PUBLIC,
        RFC_AUTH,
        salt=b64url_decode(RFC_SALT),
        sender_private_key=b64url_decode(RFC_AS_PRIVATE),
    )
    assert b64url(body[:86]) == RFC_HEADER
    assert b64url(body[86:]) == RFC_CIPHERTEXT
    assert body == b64url_decode(RFC_BODY)
    assert decrypt(body) == RFC_PLAINTEXT


def test_encrypt_takes_raw_bytes_and_key_objects() -> None:
    """Raw key bytes and a cryptography private key give the same body as base64url text."""
    scalar = int.from_bytes(b64url_decode(RFC_AS_PRIVATE), "big")
    body = encrypt(
        RFC_PLAINTEXT,
        b64url_decode(RFC_UA_PUBLIC),
        b64url_decode(RFC_AUTH),
        salt=b64url_decode(RFC_SALT),
        sender_private_key=ec.derive_private_key(scalar, ec.SECP256R1()),
    )
    assert body == b64url_decode(RFC_BODY)


def test_encrypt_reads_padded_and_standard_base64() -> None:
    """Keys stored with '=' padding or in the standard alphabet decode to the same bytes."""
    standard = RFC_UA_PUBLIC.replace("-", "+").replace("_", "/") + "="
    body = encrypt(
        RFC_PLAINTEXT,
        standard,
        RFC_AUTH + "==",
        salt=b64url_decode(RFC_SALT),
        sender_private_key=b64url_decode(RFC_AS_PRIVATE),
    )
    assert body == b64url_decode(RFC_BODY)


def test_encrypt_uses_a_fresh_salt_and_key_each_time() -> None:
    """Without salt and key, two encryptions differ in salt, key and ciphertext; both decrypt."""
    first = encrypt(b"hello", RFC_UA_PUBLIC, RFC_AUTH)
    second = encrypt(b"hello", RFC_UA_PUBLIC, RFC_AUTH)
    assert first[:16] != second[:16]
    assert first[21:86] != second[21:86]
    assert first[16:21] == second[16:21] == (4096).to_bytes(4, "big") + bytes([65])
    assert decrypt(first) == decrypt(second) == b"hello"


@pytest.mark.parametrize(
    ("p256dh", "auth", "extra", "match"),
    [
        (RFC_UA_PUBLIC[:-4], RFC_AUTH, {}, "p256dh"),
        ("B" + "A" * 86, RFC_AUTH, {}, None),  # 65 bytes, not a point on the curve
        (b"\x02" + bytes(32), RFC_AUTH, {}, "p256dh"),  # compressed form
        ("not base64!", RFC_AUTH, {}, "base64"),
        (RFC_UA_PUBLIC, "AQI", {}, "auth"),
        (RFC_UA_PUBLIC, RFC_AUTH, {"salt": b"short"}, "salt"),
        (RFC_UA_PUBLIC, RFC_AUTH, {"sender_private_key": b"\x01" * 31}, "32 bytes"),
        (RFC_UA_PUBLIC, RFC_AUTH, {"sender_private_key": bytes(32)}, None),  # scalar 0
        (RFC_UA_PUBLIC, RFC_AUTH, {"record_size": 17}, "record_size"),
        (RFC_UA_PUBLIC, RFC_AUTH, {"record_size": 57}, "do not fit"),
    ],
)
def test_encrypt_refuses_malformed_input(
    p256dh: str | bytes, auth: str, extra: dict[str, Any], match: str | None
) -> None:
    """Malformed keys, salts and record sizes raise ValueError."""
    with pytest.raises(ValueError, match=match):
        encrypt(RFC_PLAINTEXT, p256dh, auth, **extra)


def test_encrypt_refuses_a_sender_key_on_another_curve() -> None:
    """A sender key that is not P-256 raises ValueError."""
    with pytest.raises(ValueError, match="P-256"):
        encrypt(
            b"x",
            RFC_UA_PUBLIC,
            RFC_AUTH,
            sender_private_key=ec.generate_private_key(ec.SECP384R1()),
        )


def test_max_plaintext_fills_exactly_4096_bytes() -> None:
    """3993 bytes of plaintext make a 4096-byte body: 86 header + 1 delimiter + 16 tag."""
    assert MAX_PLAINTEXT == 3993
    body = encrypt(b"x" * MAX_PLAINTEXT, RFC_UA_PUBLIC, RFC_AUTH)
    assert len(body) == MAX_BODY
    assert decrypt(body) == b"x" * MAX_PLAINTEXT


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=MAX_PLAINTEXT))
def test_encrypt_round_trips(plaintext: bytes) -> None:
    """Any plaintext up to the limit decrypts back to itself, in a body of len + 103 bytes."""
    body = encrypt(plaintext, RFC_UA_PUBLIC, RFC_AUTH)
    assert len(body) == len(plaintext) + 103
    assert decrypt(body) == plaintext


# -- RFC 8292 VAPID ----------------------------------------------------------------------------


def test_rfc8292_example_token_verifies_and_our_signing_input_matches() -> None:
    """RFC 8292's JWT verifies with its key, and our header and claims encode to its bytes."""
    header, claims = verify_jwt(
        f"{RFC8292_HEADER}.{RFC8292_CLAIMS}.{RFC8292_SIGNATURE}", RFC8292_KEY
    )
    assert header == {"typ": "JWT", "alg": "ES256"}
    assert claims == {
        "aud": "https://push.example.net",
        "exp": 1453523768,
        "sub": "mailto:push@example.com",
    }
    key = ec.generate_private_key(ec.SECP256R1())
    ours = vapid_token(key, audience=claims["aud"], subject=claims["sub"], expires=claims["exp"])
    assert ours.rsplit(".", 1)[0] == f"{RFC8292_HEADER}.{RFC8292_CLAIMS}"


def test_vapid_authorization_header_claims_and_signature() -> None:
    """The header is 'vapid t=<JWT>, k=<key>'; the JWT is ES256 for the endpoint's origin."""
    push = make_push()
    match = AUTHORIZATION.fullmatch(push.authorization(ENDPOINT))
    assert match is not None
    assert match["k"] == push.application_server_key == VAPID_PUBLIC
    header, claims = verify_jwt(match["t"], match["k"])
    assert header == {"typ": "JWT", "alg": "ES256"}
    assert claims == {
        "aud": "https://updates.push.services.mozilla.com",
        "exp": int(NOW) + TOKEN_LIFETIME,
        "sub": SUBJECT,
    }
    assert NOW < claims["exp"] <= NOW + 24 * 3600


def test_vapid_signature_by_another_key_does_not_verify() -> None:
    """The token does not verify under another public key (the check above is meaningful)."""
    match = AUTHORIZATION.fullmatch(make_push().authorization(ENDPOINT))
    assert match is not None
    with pytest.raises(InvalidSignature):
        verify_jwt(match["t"], RFC8292_KEY)


def test_vapid_token_is_cached_per_audience_until_near_expiry() -> None:
    """The same push service reuses its token until an hour before expiry; others get theirs."""
    push = make_push()
    clock = [NOW]
    push.now = lambda: clock[0]
    first = push.authorization(ENDPOINT)
    assert push.authorization(ENDPOINT + "-other-subscription") == first
    fcm = push.authorization(FCM_ENDPOINT)
    assert fcm != first
    match = AUTHORIZATION.fullmatch(fcm)
    assert match is not None
    assert verify_jwt(match["t"], match["k"])[1]["aud"] == "https://fcm.googleapis.com"
    clock[0] = NOW + TOKEN_LIFETIME - TOKEN_RENEW_BEFORE - 1
    assert push.authorization(ENDPOINT) == first
    clock[0] += 1
    renewed = push.authorization(ENDPOINT)
    assert renewed != first
    match = AUTHORIZATION.fullmatch(renewed)
    assert match is not None
    assert verify_jwt(match["t"], match["k"])[1]["exp"] == int(clock[0]) + TOKEN_LIFETIME


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc?x=1", "https://fcm.googleapis.com"),
        ("https://Web.Push.Apple.com/QGx", "https://web.push.apple.com"),
        ("https://push.example.net:8443/p/abc", "https://push.example.net:8443"),
        ("https://push.example.net:443/p/abc", "https://push.example.net"),
    ],
)
def test_audience_is_the_endpoint_origin(endpoint: str, expected: str) -> None:
    """The JWT audience is scheme://host[:port] of the endpoint, without path or query."""
    assert origin(endpoint) == expected


def test_vapid_keys_generates_a_usable_pair() -> None:
    """vapid_keys() gives a 32-byte private key whose adapter announces the 65-byte public key."""
    private, public = vapid_keys()
    assert len(b64url_decode(private)) == 32
    assert b64url_decode(public)[0] == 0x04
    assert len(b64url_decode(public)) == 65
    push = WebPush(vapid_private_key=private, vapid_subject=SUBJECT)
    assert push.application_server_key == public
    assert vapid_keys() != (private, public)


# -- settings ----------------------------------------------------------------------------------


def _pem(fmt: serialization.PrivateFormat) -> str:
    key = ec.derive_private_key(int.from_bytes(b64url_decode(VAPID_PRIVATE), "big"), ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


@pytest.mark.parametrize(
    "key",
    [
        _pem(serialization.PrivateFormat.PKCS8),
        _pem(serialization.PrivateFormat.TraditionalOpenSSL),
        _pem(serialization.PrivateFormat.PKCS8).replace("\n", "\\n"),  # from an env variable
        VAPID_PRIVATE + "=",
    ],
    ids=["pkcs8", "sec1", "escaped-newlines", "padded-base64url"],
)
def test_vapid_key_as_pem_or_raw(key: str) -> None:
    """PEM (PKCS#8 or SEC1, newlines escaped or not) and raw base64url give the same key."""
    assert WebPush(vapid_private_key=key, vapid_subject=SUBJECT).application_server_key == (
        VAPID_PUBLIC
    )


@pytest.mark.parametrize(
    "key",
    [
        "short",
        "A" * 43,  # the scalar 0
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
        "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----",
    ],
    ids=["short", "zero", "p384", "broken-pem"],
)
def test_bad_vapid_key_is_a_configuration_error_that_hides_it(key: str) -> None:
    """A key that is not P-256 PEM or raw 32 bytes is refused without quoting it."""
    with pytest.raises(ConfigurationError, match="vapid_private_key") as caught:
        WebPush(vapid_private_key=key, vapid_subject=SUBJECT)
    assert key not in str(caught.value)


@pytest.mark.parametrize("subject", ["ops@example.com", "http://example.com", "mailto:a b@x"])
def test_subject_must_be_mailto_or_https(subject: str) -> None:
    """vapid_subject must be a mailto: or https: URI (RFC 8292 §2.1)."""
    with pytest.raises(ConfigurationError, match="vapid_subject"):
        WebPush(vapid_private_key=VAPID_PRIVATE, vapid_subject=subject)


def test_settings_defaults_and_secret_hidden() -> None:
    """ttl defaults to a day, urgency to none; the private key never shows in a repr."""
    push = make_push()
    assert (push.settings.ttl, push.settings.urgency) == (86400, None)
    assert VAPID_PRIVATE not in repr(push)
    assert VAPID_PRIVATE not in str(push.settings)
    assert push.secrets() == [VAPID_PRIVATE]


# -- the request -------------------------------------------------------------------------------


def test_request_through_the_client() -> None:
    """One encrypted POST to the endpoint with RFC 8030 headers; Location is the message id."""
    message = Message(
        subject="ignored for push",
        text="ignored too",
        push=PushContent(title="Order shipped", body="It is on its way", data={"order": 42}),
    )
    result, request = send(message, answer("201_created_autopush.txt"))
    assert result.ok
    assert (result.channel, result.provider, result.address) == (Channel.PUSH, "webpush", ENDPOINT)
    assert result.provider_message_id == LOCATION
    assert result.receipt is not None
    assert result.receipt.raw == {"status": 201, "ttl": 86400, "body": None}
    assert request is not None
    assert request.method == "POST"
    assert str(request.url) == ENDPOINT
    assert request.headers["TTL"] == "86400"
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert "Urgency" not in request.headers
    assert "Topic" not in request.headers
    match = AUTHORIZATION.fullmatch(request.headers["Authorization"])
    assert match is not None
    assert match["k"] == VAPID_PUBLIC
    assert verify_jwt(match["t"], match["k"])[1]["aud"] == origin(ENDPOINT)
    body = request.content
    assert int(request.headers["Content-Length"]) == len(body) <= MAX_BODY
    assert body[16:20] == (4096).to_bytes(4, "big")
    plaintext = decrypt(body)
    assert plaintext == (b'{"title":"Order shipped","body":"It is on its way","data":{"order":42}}')


def test_default_payload_falls_back_to_subject_and_text() -> None:
    """Without push title and body, the service worker gets the subject and text, data {}."""
    result, request = send(
        Message(subject="Zamówienie", text="Wysłane 📦"), answer("201_created_autopush.txt")
    )
    assert result.ok
    assert request is not None
    assert json.loads(decrypt(request.content)) == {
        "title": "Zamówienie",
        "body": "Wysłane 📦",
        "data": {},
    }
    assert "📦".encode() in decrypt(request.content)  # UTF-8, not \\u escapes


def test_settings_ttl_and_urgency_become_headers() -> None:
    """The ttl and urgency settings are sent on every message."""
    _, request = send(
        Message(text="hi"), answer("201_created_autopush.txt"), ttl=60, urgency="high"
    )
    assert request is not None
    assert (request.headers["TTL"], request.headers["Urgency"]) == ("60", "high")


def test_provider_options_override_per_message() -> None:
    """ttl, urgency, topic and payload from provider_options replace the defaults."""
    options = {"ttl": 0, "urgency": "very-low", "topic": "order-42", "payload": {"v": 1}}
    message = Message(text="hi", provider_options={"webpush": options})
    _, request = send(message, answer("201_created_autopush.txt"), urgency="high")
    assert request is not None
    assert request.headers["TTL"] == "0"
    assert request.headers["Urgency"] == "very-low"
    assert request.headers["Topic"] == "order-42"
    assert decrypt(request.content) == b'{"v":1}'


@pytest.mark.parametrize(
    ("custom", "plaintext"),
    [("plain text ü", "plain text ü".encode()), (b"\x00\xff", b"\x00\xff"), ([1, 2], b"[1,2]")],
)
def test_payload_option_forms(custom: Any, plaintext: bytes) -> None:
    """A str payload goes as UTF-8, bytes as they are, a list as JSON."""
    push = make_push()
    request = push.build_request(outbound(provider_options={"payload": custom}))
    assert decrypt(request.content) == plaintext


@pytest.mark.parametrize(
    ("collapse_key", "topic"),
    [
        ("order-42", "order-42"),
        ("order 42 status", b64url(hashlib.sha256(b"order 42 status").digest())[:32]),
    ],
)
def test_collapse_key_becomes_a_topic(collapse_key: str, topic: str) -> None:
    """A collapse key that is a valid Topic is sent as is; any other is hashed into one."""
    request = make_push().build_request(outbound(provider_options={"collapse_key": collapse_key}))
    assert request.headers["Topic"] == topic
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", request.headers["Topic"])


def test_topic_wins_over_collapse_key() -> None:
    """An explicit topic is used even when a collapse key is given too."""
    options = {"topic": "t1", "collapse_key": "other"}
    assert make_push().build_request(outbound(provider_options=options)).headers["Topic"] == "t1"


@pytest.mark.parametrize(
    "options",
    [
        {"TTL": 5},
        {"ttl": -1},
        {"ttl": "60"},
        {"ttl": True},
        {"urgency": "urgent"},
        {"topic": "x" * 33},
        {"topic": "with space"},
        {"collapse_key": ""},
        {"collapse_key": 7},
        {"payload": 3.5},
        {"payload": {"when": object()}},
        {"payload": {"ratio": float("nan")}},
    ],
)
def test_bad_options_are_refused_before_sending(options: dict[str, Any]) -> None:
    """Unknown or malformed provider options are content_rejected, before any request."""
    with pytest.raises(ProviderError) as caught:
        make_push().check_supported(outbound(provider_options=options))
    assert caught.value.category is ErrorCategory.CONTENT_REJECTED
    assert caught.value.provider == "webpush"


def test_payload_size_limit_is_exact() -> None:
    """A 3993-byte plaintext is sent (a 4096-byte body); 3994 bytes fail payload_too_large."""
    push = make_push()
    fits = outbound(provider_options={"payload": b"x" * MAX_PLAINTEXT})
    push.check_supported(fits)
    assert len(push.build_request(fits).content) == MAX_BODY
    too_big = outbound(provider_options={"payload": b"x" * (MAX_PLAINTEXT + 1)})
    with pytest.raises(ProviderError) as caught:
        push.check_supported(too_big)
    assert caught.value.category is ErrorCategory.PAYLOAD_TOO_LARGE
    assert "3994" in str(caught.value)


def test_oversized_payload_fails_through_the_client_without_a_request() -> None:
    """Through the client, a too-large JSON payload ends payload_too_large and nothing is sent."""
    data = {"blob": "é" * 2000}  # under the core's 4096-character check, over 3993 bytes
    result, request = send(
        Message(text="hi", push=PushContent(data=data)), answer("201_created_autopush.txt")
    )
    assert request is None
    assert not result.ok
    [attempt] = result.attempts
    assert attempt.error is not None
    assert attempt.error.category is ErrorCategory.PAYLOAD_TOO_LARGE


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (outbound(push_target=None), "no web push subscription"),
        (outbound(push_target=PushTarget(kind="fcm", token="fcm-token")), "no web push"),
        (
            outbound(
                push_target=PushTarget(
                    kind="webpush", token=ENDPOINT, keys={"p256dh": "AAAA", "auth": RFC_AUTH}
                )
            ),
            "p256dh",
        ),
        (
            outbound(
                push_target=PushTarget(
                    kind="webpush", token=ENDPOINT, keys={"p256dh": RFC_UA_PUBLIC, "auth": "A"}
                )
            ),
            "malformed",
        ),
        (outbound().model_copy(update={"to": "http://push.example.net/p/1"}), "https"),
        (outbound().model_copy(update={"to": "not a url at all"}), "https"),
    ],
)
def test_bad_subscription_is_invalid_recipient_not_dead(message: OutboundMessage, why: str) -> None:
    """A missing or malformed subscription is invalid_recipient, but not reported as dead."""
    with pytest.raises(ProviderError, match=why) as caught:
        make_push().check_supported(message)
    assert caught.value.category is ErrorCategory.INVALID_RECIPIENT
    assert caught.value.reason is Reason.INVALID_RECIPIENT
    assert not caught.value.contact_invalid


def test_only_webpush_devices_are_routed_here() -> None:
    """A recipient's FCM device finds no provider; the browser gets the message."""
    phone = PushTarget(kind="fcm", token="fcm-token")
    result, request = send(Message(text="hi"), answer("201_created_autopush.txt"), phone, browser())
    assert result.ok
    assert request is not None
    skipped, sent = result.attempts
    assert skipped.skip_reason is SkipReason.NO_PROVIDER
    assert sent.provider == "webpush"


@pytest.mark.anyio
async def test_async_client_sends_the_same_request() -> None:
    """AsyncClient sends the same encrypted, VAPID-signed request and reads the Location."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(FCM_ENDPOINT).mock(
            return_value=httpx.Response(201, headers={"Location": "https://fcm.example/m/1"})
        )
        async with anysend.AsyncClient([make_push(urgency="low")], clock=VirtualClock()) as c:
            result = await c.send(
                Message(push=PushContent(title="Hi", body="There")),
                to=Recipient(push=(browser(FCM_ENDPOINT),)),
            )
    assert result.ok
    assert result.provider_message_id == "https://fcm.example/m/1"
    request = route.calls.last.request
    assert request.headers["Urgency"] == "low"
    match = AUTHORIZATION.fullmatch(request.headers["Authorization"])
    assert match is not None
    assert verify_jwt(match["t"], match["k"])[1]["aud"] == "https://fcm.googleapis.com"
    assert json.loads(decrypt(request.content)) == {"title": "Hi", "body": "There", "data": {}}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "category", "reason", "dead", "code", "retry_after"),
    [
        (
            "404_autopush_invalid_token.txt",
            "invalid_recipient",
            "token_unregistered",
            1,
            "102",
            None,
        ),
        ("410_fcm_unsubscribed.txt", "invalid_recipient", "token_unregistered", 1, None, None),
        ("401_autopush_invalid_auth.txt", "auth", None, 0, "109", None),
        ("413_autopush_too_large.txt", "payload_too_large", None, 0, "104", None),
        ("429_autopush_retry_after.txt", "rate_limited", "rate_limited", 0, "201", 120.0),
    ],
)
def test_push_service_errors_from_fixtures(
    fixture: str,
    category: str,
    reason: str | None,
    dead: int,
    code: str | None,
    retry_after: float | None,
) -> None:
    """Each documented push-service answer maps to its category, reason, code and delay."""
    with pytest.raises(ProviderError) as caught:
        make_push().parse_response(answer(fixture), outbound())
    error = caught.value
    assert error.category.value == category
    assert (error.reason.value if error.reason else None) == reason
    assert error.contact_invalid is bool(dead)
    assert error.code == code
    assert error.retry_after == retry_after
    assert error.retryable is (category == "rate_limited")
    assert error.provider == "webpush"


@pytest.mark.parametrize(
    ("status", "body", "category"),
    [
        (400, {"errno": 111, "message": "Missing TTL header"}, ErrorCategory.CONTENT_REJECTED),
        (403, {"reason": "BadJwtToken"}, ErrorCategory.AUTH),
        (410, {"reason": "Unregistered"}, ErrorCategory.INVALID_RECIPIENT),
        (500, "oops", ErrorCategory.UNAVAILABLE),
        (503, {"errno": 202}, ErrorCategory.UNAVAILABLE),
        (504, "", ErrorCategory.AMBIGUOUS_TIMEOUT),
        (301, "", ErrorCategory.UNKNOWN),
    ],
)
def test_other_statuses(status: int, body: Any, category: ErrorCategory) -> None:
    """400, 403 (Apple's reason as code), 5xx and the unmapped fall where documented."""
    kwargs: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"text": body}
    with pytest.raises(ProviderError) as caught:
        make_push().parse_response(httpx.Response(status, **kwargs), outbound())
    assert caught.value.category is category
    if isinstance(body, dict):
        assert caught.value.code == str(next(iter(body.values())))
    assert caught.value.contact_invalid is (status in CONTACT_INVALID_STATUSES)


def test_error_tables_are_consistent() -> None:
    """The dead statuses are invalid_recipient with reason token_unregistered."""
    for status in CONTACT_INVALID_STATUSES:
        assert ERROR_CODES[status] is ErrorCategory.INVALID_RECIPIENT
        assert REASONS[status] is Reason.TOKEN_UNREGISTERED


def test_202_accepted_without_location() -> None:
    """A 202 without Location is accepted with no provider message id; TTL is kept in raw."""
    receipt = make_push().parse_response(httpx.Response(202, headers={"TTL": "3600"}), outbound())
    assert receipt == Receipt(raw={"status": 202, "ttl": 3600, "body": None})


def test_dead_subscription_reaches_on_invalid_address() -> None:
    """A 410 flags the attempt contact_invalid and calls on_invalid_address; the other browser
    still gets its message."""
    dead: list[Attempt] = []
    gone = browser(FCM_ENDPOINT)
    with respx.mock(assert_all_called=True) as mock:
        mock.post(FCM_ENDPOINT).mock(return_value=answer("410_fcm_unsubscribed.txt"))
        mock.post(ENDPOINT).mock(return_value=answer("201_created_autopush.txt"))
        with anysend.Client(
            [make_push()], clock=VirtualClock(), on_invalid_address=[dead.append]
        ) as client:
            result = client.send(Message(text="hi"), to=Recipient(push=(gone, browser())))
    assert result.ok
    assert result.provider_message_id == LOCATION
    first, second = result.attempts
    assert first.contact_invalid
    assert first.error is not None
    assert first.error.reason is Reason.TOKEN_UNREGISTERED
    assert not second.contact_invalid
    assert [a.address for a in dead] == [FCM_ENDPOINT]


def test_rate_limit_is_retried_after_retry_after() -> None:
    """A 429 is retried on the same push service after its Retry-After."""
    clock = VirtualClock()
    with respx.mock(assert_all_called=True) as mock:
        mock.post(ENDPOINT).mock(
            side_effect=[answer("429_autopush_retry_after.txt"), answer("201_created_autopush.txt")]
        )
        retry = RetryPolicy(max_attempts=2, max_retry_after=300, deadline=600)
        with anysend.Client([make_push()], clock=clock, retry=retry) as client:
            result = client.send(Message(text="hi"), to=Recipient(push=(browser(),)))
    assert result.ok
    assert clock.sleeps == [120.0]


# -- no callbacks ------------------------------------------------------------------------------


def test_no_callbacks() -> None:
    """Web push has no delivery callbacks: webhooks is off and parse_webhook refuses."""
    push = make_push()
    assert not push.capabilities.webhooks
    assert not push.capabilities.inbound
    assert not push.capabilities.idempotency
    request = WebhookRequest(url="https://app.example.com/hooks/webpush", body=b"{}")
    with pytest.raises(WebhookVerificationError):
        push.parse_webhook(request)


_FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.txt"))


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(_FIXTURE_NAMES),
    status=st.one_of(
        st.sampled_from([200, 201, 202, 400, 401, 403, 404, 410, 413, 429]), st.integers(100, 599)
    ),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    ttl=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=8),
    retry_after=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
)
def test_mutated_answers_give_only_receipts_or_provider_errors(
    name: str, status: int, flips: list[tuple[int, int]], ttl: str, retry_after: str
) -> None:
    """Mutated fixture answers (status, body bytes, headers) give a Receipt or a ProviderError."""
    _, headers, body = response_parts(name)
    mutated = bytearray(body)
    for index, value in flips:
        if mutated:
            mutated[index % len(mutated)] = value
    extra = [("TTL", ttl.strip()), ("Retry-After", retry_after.strip())]
    raw_headers = [(k.encode(), v.encode("latin-1")) for k, v in headers + extra]
    response = httpx.Response(status, headers=raw_headers, content=bytes(mutated))
    outcome: Receipt | ProviderError
    try:
        outcome = make_push().parse_response(response, outbound())
    except ProviderError as exc:
        outcome = exc
    if isinstance(outcome, ProviderError):
        assert not response.is_success
        assert outcome.provider == "webpush"
    else:
        assert response.is_success
        assert isinstance(outcome, Receipt)


# -- the contract kit --------------------------------------------------------------------------


def _case(fixture: str, category: ErrorCategory, retry_after: float | None = None) -> ErrorCase:
    status, headers, body = response_parts(fixture)
    return ErrorCase(
        name=fixture,
        status=status,
        body=body,
        headers=dict(headers),
        category=category,
        retryable=category.retryable,
        retry_after=retry_after,
    )


class TestWebPushContract(ProviderContract):
    """The contract kit's checks, on the Web Push adapter."""

    expected_provider_message_id = LOCATION

    def make_provider(self) -> WebPush:
        """A WebPush adapter with the test VAPID key."""
        return make_push()

    def sample_message(self) -> OutboundMessage:
        """A push to a browser subscription (RFC 8291's user agent keys)."""
        return outbound(text="Hello", idempotency_key="anysend-contract-key-1")

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Autopush's 201 Created with the message's Location."""
        return answer("201_created_autopush.txt", request)

    def error_cases(self) -> list[ErrorCase]:
        """Every push-service error fixture."""
        return [
            _case("404_autopush_invalid_token.txt", ErrorCategory.INVALID_RECIPIENT),
            _case("410_fcm_unsubscribed.txt", ErrorCategory.INVALID_RECIPIENT),
            _case("401_autopush_invalid_auth.txt", ErrorCategory.AUTH),
            _case("413_autopush_too_large.txt", ErrorCategory.PAYLOAD_TOO_LARGE),
            _case("429_autopush_retry_after.txt", ErrorCategory.RATE_LIMITED, 120.0),
        ]
