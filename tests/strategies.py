"""Hypothesis strategies shared by the tests: real callback bodies, damaged; signed callbacks.

The second half builds genuine callbacks of every provider that authenticates them, signed as
the provider signs (with test secrets), for the hostile-input tests (``tests/test_fuzz.py``,
``tests/test_webhook_security.py``) to forge, move, replay, tamper with and pad.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlencode

from hypothesis import strategies as st

from anysend import WebhookRequest

if TYPE_CHECKING:
    from anysend.providers import Provider
    from anysend.testing import VirtualClock

P = TypeVar("P", bound="Provider")


def _mutate(value: Any, data: st.DataObject) -> Any:
    """``value`` with one randomly chosen node replaced by an arbitrary JSON value."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
        return [*value[:index], _mutate(value[index], data), *value[index + 1 :]]
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    return data.draw(
        st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner))
    )


def damaged_json(body: bytes, data: st.DataObject) -> bytes:
    """``body`` (a JSON callback) with a few bytes overwritten, or one JSON node replaced."""
    if data.draw(st.booleans()):
        damaged = bytearray(body)
        for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
            position = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1))
            damaged[position] = data.draw(st.integers(min_value=0, max_value=255))
        return bytes(damaged)
    return json.dumps(_mutate(json.loads(body), data)).encode()


def edited_bytes(body: bytes, data: st.DataObject) -> bytes:
    """``body`` with one to eight random byte flips, insertions or deletions."""
    edited = bytearray(body)
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        position = data.draw(st.integers(min_value=0, max_value=len(edited)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.integers(min_value=0, max_value=255))
        if action == "insert" or position == len(edited):
            edited.insert(position, byte)
        elif action == "flip":
            edited[position] = byte
        else:
            del edited[position]
    return bytes(edited)


# -- hostile callbacks: every provider that signs, signed the way it signs ------------------------
#
# tests/test_webhook_security.py and tests/test_fuzz.py build genuine callbacks from the real
# fixtures with these signers, then forge, move, replay, tamper with or pad them. Each signer
# follows the provider's documentation (cited in its adapter module), with test secrets.

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Where every provider calls back in these tests (``WebhookApp(prefix="/hooks")``).
HOOKS = "https://hooks.example.com/hooks"
#: The anysend message id the callback URL names (Twilio and Plivo put it in the query).
MESSAGE_QUERY = "anysend_message_id=msg-1"

Mode = Literal["genuine", "forged", "unsigned"]
#: ``(url, headers, body)`` of a callback as the provider sends it.
Parts = tuple[str, dict[str, str], bytes]


@dataclass(frozen=True)
class Payload:
    """One real callback from ``tests/fixtures``: a POST body, or a GET query."""

    file: str
    method: str
    content_type: str | None
    data: bytes

    @property
    def is_json(self) -> bool:
        """Whether the body is JSON."""
        return self.content_type == "application/json"

    def replace(self, data: bytes) -> Payload:
        """The same callback with other bytes."""
        return dataclasses.replace(self, data=data)


def payload(path: str) -> Payload:
    """The fixture ``provider/file``, with its method and content type from its extension."""
    data = (FIXTURES / path).read_bytes()
    suffix = Path(path).suffix
    if suffix == ".query":
        return Payload(path, "GET", None, data.strip())
    if suffix == ".multipart":
        boundary = data.split(b"\n", 1)[0].strip()[2:].decode()
        return Payload(path, "POST", f"multipart/form-data; boundary={boundary}", data)
    kind = "application/json" if suffix == ".json" else "application/x-www-form-urlencoded"
    return Payload(path, "POST", kind, data)


def payloads(provider: str, *skip: str) -> tuple[Payload, ...]:
    """Every callback fixture of ``provider`` (not its sources, nor the files in ``skip``)."""
    names = sorted(p.name for p in (FIXTURES / provider).iterdir())
    return tuple(
        payload(f"{provider}/{name}")
        for name in names
        if Path(name).suffix in (".json", ".form", ".query", ".multipart") and name not in skip
    )


@dataclass(frozen=True)
class SignedProvider:
    """How one provider signs its callbacks, to make genuine and hostile ones in tests.

    Attributes:
        key: the row's name in the tables (``"vonage-jwt"``).
        build: makes the adapter, its clock read from the given virtual clock.
        payloads: real callbacks (fixtures) it sends.
        sign: ``(url, payload, at, mode) -> (url, headers, body)``: the callback signed at
            unix time ``at`` (``genuine``), signed with a wrong secret or key (``forged``), or
            without any signature (``unsigned``). ``url`` is the callback URL without a GET
            callback's parameters.
        freshen: the payload with the times the provider signs set to ``at`` (Viber's body
            ``timestamp``, the SNS ``Timestamp``), so that a genuine callback is current.
        query: the callback URL's own query (Twilio and Plivo name the anysend message).
    """

    key: str
    build: Callable[[VirtualClock], Provider]
    payloads: tuple[Payload, ...]
    sign: Callable[[str, Payload, float, Mode], Parts]
    freshen: Callable[[Payload, float], Payload] = lambda p, at: p
    query: str = ""

    @property
    def name(self) -> str:
        """The adapter's name (the last part of its callback path)."""
        return self.key.split("-")[0]

    @property
    def url(self) -> str:
        """The callback URL the provider was given."""
        base = f"{HOOKS}/{self.name}"
        return f"{base}?{self.query}" if self.query else base

    def request(
        self, item: Payload, at: float, mode: Mode = "genuine", url: str | None = None
    ) -> WebhookRequest:
        """``item`` as the provider would send it at ``at`` (fresh, then signed per ``mode``)."""
        return self.signed(self.freshen(item, at), at, mode, url)

    def signed(
        self, item: Payload, at: float, mode: Mode = "genuine", url: str | None = None
    ) -> WebhookRequest:
        """``item`` signed as it is (no freshening: its bytes may be damaged)."""
        target, headers, body = self.sign(url or self.url, item, at, mode)
        if item.content_type is not None:
            headers = {"Content-Type": item.content_type, **headers}
        return WebhookRequest(method=item.method, url=target, headers=headers, body=body)


def clocked(provider: P, clock: VirtualClock) -> P:
    """``provider`` with its ``now`` (replay windows) read from ``clock``."""
    provider.now = lambda: clock.now().timestamp()  # type: ignore[attr-defined]
    return provider


def with_query(url: str, query: str) -> str:
    """``url`` with ``query`` appended to its own."""
    if not query:
        return url
    return f"{url}&{query}" if "?" in url else f"{url}?{query}"


def _split(url: str, item: Payload) -> tuple[str, bytes, list[tuple[str, str]]]:
    """The URL called, the body, and the parameters signed (form fields, or GET query)."""
    if item.method == "GET":
        target = with_query(url, item.data.decode("latin-1"))
        return target, b"", []
    text = item.data.decode("utf-8", "replace")
    fields = parse_qsl(text, keep_blank_values=True) if not item.is_json else []
    return url, item.data, fields


def _hmac_hex(key: str, data: bytes, digest: str = "sha256") -> str:
    return hmac.new(key.encode(), data, digest).hexdigest()


def _wrong(mode: Mode, right: str) -> str:
    return right if mode == "genuine" else "forged-" + right[::-1]


# Twilio: X-Twilio-Signature = base64 HMAC-SHA1(url + sorted form pairs), no timestamp.
TWILIO_TOKEN = "twilio-security-token-0c4e7a"


def _twilio(clock: VirtualClock) -> Provider:
    from anysend.providers.twilio import Twilio

    return clocked(Twilio(account_sid="AC" + "0" * 32, auth_token=TWILIO_TOKEN), clock)


def _twilio_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers import twilio

    target, body, fields = _split(url, item)
    if mode == "unsigned":
        return target, {}, body
    value = twilio.sign(target, fields, _wrong(mode, TWILIO_TOKEN))
    return target, {twilio.SIGNATURE_HEADER: value}, body


# SendGrid: ECDSA P-256 over timestamp + body, with the timestamp in a header.
@functools.cache
def _ec_keys() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def _sendgrid(clock: VirtualClock) -> Provider:
    from cryptography.hazmat.primitives import serialization

    from anysend.providers.sendgrid import SendGrid

    der = (
        _ec_keys()[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key = base64.b64encode(der).decode()
    return clocked(SendGrid(api_key="SG.security", webhook_public_key=key), clock)


def _sendgrid_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from anysend.providers import sendgrid

    if mode == "unsigned":
        return url, {}, item.data
    stamp = str(int(at))
    key = _ec_keys()[0 if mode == "genuine" else 1]
    der = key.sign(stamp.encode() + item.data, ec.ECDSA(hashes.SHA256()))
    headers = {
        sendgrid.SIGNATURE_HEADER: base64.b64encode(der).decode(),
        sendgrid.TIMESTAMP_HEADER: stamp,
    }
    return url, headers, item.data


# Mailgun: HMAC-SHA256(timestamp + token) in the body; the event itself is not signed.
MAILGUN_KEY = "mailgun-security-signing-key-5d1e"


def _mailgun(clock: VirtualClock) -> Provider:
    from anysend.providers.mailgun import Mailgun

    mailgun = Mailgun(
        api_key="key-security", domain="mg.example.com", webhook_signing_key=MAILGUN_KEY
    )
    return clocked(mailgun, clock)


def _mailgun_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers import mailgun

    stamp = str(int(at))
    token = hashlib.sha256(item.data + stamp.encode()).hexdigest()[:50]
    block = {
        "timestamp": stamp,
        "token": token,
        "signature": mailgun.sign(stamp, token, _wrong(mode, MAILGUN_KEY)),
    }
    if item.is_json:
        try:
            data = json.loads(item.data)
        except ValueError:
            return url, {}, item.data  # damaged: sent as it is, with whatever it holds
        if not isinstance(data, dict):
            return url, {}, item.data
        data.pop("signature", None)
        if mode != "unsigned":
            data["signature"] = block
        return url, {}, json.dumps(data).encode()
    if (item.content_type or "").startswith("multipart/"):
        body = item.data
        for name, value in block.items():  # each value is a part of its own
            part = re.compile(rb'(name="' + name.encode() + rb'"\r?\n\r?\n)[^\r\n]*')
            fill = b"" if mode == "unsigned" else value.encode()  # digits and hex only
            body = part.sub(rb"\g<1>" + fill, body, count=1)
        return url, {}, body
    fields = [
        (k, v)
        for k, v in parse_qsl(item.data.decode("utf-8", "replace"), keep_blank_values=True)
        if k not in block
    ]
    if mode != "unsigned":
        fields += list(block.items())
    return url, {}, urlencode(fields).encode()


# Postmark: HTTP Basic credentials in the webhook URL; nothing is signed.
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "postmark-security-pass-9b2c"


def _postmark(clock: VirtualClock) -> Provider:
    from anysend.providers.postmark import Postmark

    postmark = Postmark(
        server_token="pm-security",
        webhook_username=POSTMARK_USER,
        webhook_password=POSTMARK_PASSWORD,
    )
    return clocked(postmark, clock)


def _postmark_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    if mode == "unsigned":
        return url, {}, item.data
    pair = f"{POSTMARK_USER}:{_wrong(mode, POSTMARK_PASSWORD)}".encode()
    return url, {"Authorization": "Basic " + base64.b64encode(pair).decode()}, item.data


# Amazon SES through SNS: RSA signature over the SNS fields, the Timestamp among them.
SES_TOPIC = "arn:aws:sns:eu-west-1:123456789012:anysend-ses-events"
SES_CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem"


@functools.cache
def _rsa() -> tuple[Any, Any, bytes]:
    """A signing key, another key, and a self-made certificate of the first (2010-2035)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2010, 1, 1, tzinfo=timezone.utc))
        .not_valid_after(datetime(2035, 12, 31, tzinfo=timezone.utc))
        .sign(key, hashes.SHA256())
    )
    return key, other, certificate.public_bytes(serialization.Encoding.PEM)


def _ses(clock: VirtualClock) -> Provider:
    from anysend.providers.ses import SES

    ses = SES(
        access_key_id="AKIDSECURITY",
        secret_access_key="ses-security-secret",
        region="eu-west-1",
        topic_arns=[SES_TOPIC],
    )
    ses.add_certificate(SES_CERT_URL, _rsa()[2])
    return clocked(ses, clock)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def _ses_freshen(item: Payload, at: float) -> Payload:
    envelope = json.loads(item.data)
    envelope.update(
        Timestamp=_iso(at), TopicArn=SES_TOPIC, SigningCertURL=SES_CERT_URL, SignatureVersion="1"
    )
    return item.replace(json.dumps(envelope).encode())


def _ses_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from anysend import AnysendError
    from anysend.providers.ses import sns_string_to_sign

    try:
        envelope = json.loads(item.data)
        text = sns_string_to_sign(envelope).encode()
    except (ValueError, AttributeError, AnysendError):
        return url, {}, item.data  # damaged beyond signing: sent as it is
    envelope.pop("Signature", None)
    if mode != "unsigned":
        key = _rsa()[0] if mode == "genuine" else _rsa()[1]
        signature = key.sign(text, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - SNS v1
        envelope["Signature"] = base64.b64encode(signature).decode()
    return url, {}, json.dumps(envelope).encode()


# Vonage: a bearer JWT (HS256; iat and the body's SHA-256 among its claims), or ``sig``: a
# hash over the sorted parameters, ``timestamp`` among them.
VONAGE_KEY, VONAGE_SECRET = "abcd1234", "vonage-security-signature-secret"


def _vonage(clock: VirtualClock) -> Provider:
    from anysend.providers.vonage import Vonage

    vonage = Vonage(api_key=VONAGE_KEY, signature_secret=VONAGE_SECRET, signature_method="sha256")
    return clocked(vonage, clock)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def vonage_jwt(body: bytes, at: float, secret: str = VONAGE_SECRET) -> str:
    """A Vonage signed-webhook JWT for ``body`` issued at ``at``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "iat": int(at),
        "jti": hashlib.sha256(body).hexdigest()[:32],
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": VONAGE_KEY,
    }
    signing_input = f"{header}.{_b64url(json.dumps(claims).encode())}"
    digest = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(digest)}"


def _vonage_jwt_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    target, body, _ = _split(url, item)
    if mode == "unsigned":
        return target, {}, body
    token = vonage_jwt(body, at, _wrong(mode, VONAGE_SECRET))
    return target, {"Authorization": f"Bearer {token}"}, body


def _vonage_sig_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers.vonage import signature

    text = item.data.decode("utf-8", "replace")
    params = {k: v for k, v in parse_qsl(text, keep_blank_values=True) if k not in ("sig",)}
    params["timestamp"] = str(int(at))
    if mode != "unsigned":
        params["sig"] = signature(params, _wrong(mode, VONAGE_SECRET), "sha256")
    encoded = urlencode(params)
    if item.method == "GET":
        return with_query(url, encoded), {}, b""
    return url, {}, encoded.encode()


# Plivo: V3 = base64 HMAC-SHA256(url with sorted query + sorted body pairs + nonce); V2 signs
# the URL without its query. No timestamp.
PLIVO_TOKEN = "plivo-security-token-3e8a"
PLIVO_NONCE = "05429567804466091622"


def _plivo(clock: VirtualClock) -> Provider:
    from anysend.providers.plivo import Plivo

    return clocked(Plivo(auth_id="MASECURITY0000000000", auth_token=PLIVO_TOKEN), clock)


def _plivo_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers.plivo import signature_v2, signature_v3

    target, body, _ = _split(url, item)
    if mode == "unsigned":
        return target, {}, body
    token = _wrong(mode, PLIVO_TOKEN)
    params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    headers = {
        "X-Plivo-Signature-V3": signature_v3(
            target, PLIVO_NONCE, token, method=item.method, params=params
        ),
        "X-Plivo-Signature-V3-Nonce": PLIVO_NONCE,
        "X-Plivo-Signature-V2": signature_v2(target, PLIVO_NONCE, token),
        "X-Plivo-Signature-V2-Nonce": PLIVO_NONCE,
    }
    return target, headers, body


# SMSAPI: a secret in the callback URL (``?token=``); nothing is signed.
SMSAPI_SECRET = "smsapi-security-secret-7c2d"


def _smsapi(clock: VirtualClock) -> Provider:
    from anysend.providers.smsapi import SMSAPI

    return clocked(SMSAPI(token="smsapi-security", callback_secret=SMSAPI_SECRET), clock)


def _smsapi_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    if mode != "unsigned":
        url = with_query(url, f"token={_wrong(mode, SMSAPI_SECRET)}")
    target, body, _ = _split(url, item)
    return target, {}, body


# Telegram: the secret token given to setWebhook, in a header; nothing is signed.
TELEGRAM_SECRET = "telegram-security-secret_4b1f"


def _telegram(clock: VirtualClock) -> Provider:
    from anysend.providers.telegram import Telegram

    telegram = Telegram(
        bot_token="7000000001:AAsecurity-token_000000000000000", secret_token=TELEGRAM_SECRET
    )
    return clocked(telegram, clock)


def _telegram_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers.telegram import SECRET_HEADER

    headers = {} if mode == "unsigned" else {SECRET_HEADER: _wrong(mode, TELEGRAM_SECRET)}
    return url, headers, item.data


# Viber: hex HMAC-SHA256 of the body with the auth token; the body's ``timestamp`` (ms).
VIBER_TOKEN = "4a5b6c7d8e9f0a1b-2c3d4e5f6a7b8c9d-security000000000"


def _viber(clock: VirtualClock) -> Provider:
    from anysend.providers.viber import Viber

    return clocked(Viber(auth_token=VIBER_TOKEN, sender_name="Shop"), clock)


def _viber_freshen(item: Payload, at: float) -> Payload:
    data = json.loads(item.data)
    data["timestamp"] = int(at * 1000)
    return item.replace(json.dumps(data).encode())


def _viber_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers.viber import SIGNATURE_HEADER

    if mode == "unsigned":
        return url, {}, item.data
    return url, {SIGNATURE_HEADER: _hmac_hex(_wrong(mode, VIBER_TOKEN), item.data)}, item.data


# WhatsApp and Messenger: X-Hub-Signature-256 = sha256=<hex HMAC-SHA256 of the body>.
META_SECRET = "meta-security-app-secret-2a9d"


def _whatsapp(clock: VirtualClock) -> Provider:
    from anysend.providers.whatsapp import WhatsApp

    whatsapp = WhatsApp(
        access_token="EAAG-security", phone_number_id="100000000000002", app_secret=META_SECRET
    )
    return clocked(whatsapp, clock)


def _messenger(clock: VirtualClock) -> Provider:
    from anysend.providers.messenger import Messenger

    return clocked(Messenger(page_access_token="EAAG-security", app_secret=META_SECRET), clock)


def _meta_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    if mode == "unsigned":
        return url, {}, item.data
    value = "sha256=" + _hmac_hex(_wrong(mode, META_SECRET), item.data)
    return url, {"X-Hub-Signature-256": value}, item.data


# anysend's own Webhook scheme: v1=<hex HMAC-SHA256 of "<timestamp>." + body>.
WEBHOOK_SECRET = "whsec_security_0f3b"


def _webhook(clock: VirtualClock) -> Provider:
    from anysend.providers.webhook import Webhook

    return clocked(Webhook(secret=WEBHOOK_SECRET), clock)


def _webhook_sign(url: str, item: Payload, at: float, mode: Mode) -> Parts:
    from anysend.providers import webhook

    if mode == "unsigned":
        return url, {}, item.data
    stamp = int(at)
    headers = {
        webhook.TIMESTAMP_HEADER: str(stamp),
        webhook.SIGNATURE_HEADER: webhook.sign(item.data, _wrong(mode, WEBHOOK_SECRET), stamp),
    }
    return url, headers, item.data


#: Every provider that authenticates its callbacks, by row name.
SIGNED_PROVIDERS: dict[str, SignedProvider] = {
    signer.key: signer
    for signer in (
        SignedProvider(
            "twilio",
            _twilio,
            payloads("twilio", "docs_vector.form", "docs_vector_body.json"),
            _twilio_sign,
            query=MESSAGE_QUERY,
        ),
        SignedProvider(
            "sendgrid", _sendgrid, payloads("sendgrid", "sdk_signed_vector.json"), _sendgrid_sign
        ),
        SignedProvider("mailgun", _mailgun, payloads("mailgun"), _mailgun_sign),
        SignedProvider("postmark", _postmark, payloads("postmark"), _postmark_sign),
        SignedProvider(
            "ses",
            _ses,
            payloads("ses", "sns_subscription_confirmation.json"),
            _ses_sign,
            freshen=_ses_freshen,
        ),
        SignedProvider("vonage-jwt", _vonage, payloads("vonage"), _vonage_jwt_sign),
        SignedProvider(
            "vonage-sig",
            _vonage,
            tuple(p for p in payloads("vonage") if not p.is_json),
            _vonage_sig_sign,
        ),
        SignedProvider("plivo", _plivo, payloads("plivo"), _plivo_sign, query=MESSAGE_QUERY),
        SignedProvider("smsapi", _smsapi, payloads("smsapi"), _smsapi_sign),
        SignedProvider("telegram", _telegram, payloads("telegram"), _telegram_sign),
        SignedProvider("viber", _viber, payloads("viber"), _viber_sign, freshen=_viber_freshen),
        SignedProvider("whatsapp", _whatsapp, payloads("whatsapp"), _meta_sign),
        SignedProvider("messenger", _messenger, payloads("messenger"), _meta_sign),
    )
}

#: anysend's own ``Webhook`` adapter: it receives no callbacks, but checks requests signed by
#: another anysend (``verify_webhook``); only that check is tested.
ANYSEND_WEBHOOK = SignedProvider(
    "webhook", _webhook, (payload("sendgrid/delivered.json"),), _webhook_sign
)
