"""The Django integration: the ANYSEND setting, the shared client, the email backend, the view."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from email.mime.image import MIMEImage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import django
import httpx
import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import include, path, reverse

import anysend
from anysend import (
    ConfigurationError,
    ContentError,
    DeliveryError,
    DeliveryStatus,
    ErrorCategory,
    Recipient,
)
from anysend.contrib.django import (
    EmailBackend,
    build_client,
    get_client,
    reset_client,
    to_messages,
    webhook_view,
)
from anysend.providers._meta import sign as meta_sign
from anysend.providers.twilio import TWIML_EMPTY, Twilio, sign
from anysend.providers.whatsapp import WhatsApp
from anysend.testing import MemoryProvider
from tests.smtp_server import SMTPServer

#: What these tests need, applied around each test (whoever configured Django first).
SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "ALLOWED_HOSTS": ["testserver", "shop.example.com", "public.example.com"],
    "ROOT_URLCONF": __name__,
    "MIDDLEWARE": [
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    "EMAIL_BACKEND": "anysend.contrib.django.EmailBackend",
    "DEFAULT_FROM_EMAIL": "Shop <shop@example.com>",
}

if not settings.configured:  # another test module may have configured Django already
    settings.configure(SECRET_KEY="anysend-tests-only", INSTALLED_APPS=[], USE_TZ=True, **SETTINGS)
    django.setup()

urlpatterns = [
    path("webhooks/", include("anysend.contrib.django.urls")),
    path("hooks/<str:provider>", webhook_view),
]

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-django-test-token-2c8e"
APP_SECRET = "django-app-secret-5b1d"
VERIFY_TOKEN = "django-verify-token-0e4f"
SENDER = "+15005550006"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture(autouse=True)
def django_settings() -> Iterator[None]:
    """This module's settings and URLconf, whatever settings another module configured."""
    with override_settings(**SETTINGS):
        yield


def configured(**anysend_settings: Any) -> Any:
    """override_settings for ANYSEND (the shared client is rebuilt, and closed afterwards)."""
    return override_settings(ANYSEND=anysend_settings)


@pytest.fixture
def memory() -> Iterator[MemoryProvider]:
    """ANYSEND with one MemoryProvider for email."""
    provider = MemoryProvider(name="mail", channels={"email"})
    with configured(PROVIDERS=[provider]):
        yield provider


def twilio_accepts(request: httpx.Request) -> httpx.Response:
    """Twilio's API, taking every message (201 with a Message resource)."""
    return httpx.Response(201, json={"sid": "SM" + "b" * 32, "status": "queued"})


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[anysend.Client]:
    """ANYSEND with real Twilio and WhatsApp adapters and a SQLite store on disk."""
    providers = [
        Twilio(account_sid=ACCOUNT_SID, auth_token=TWILIO_TOKEN, sender=SENDER),
        WhatsApp(
            access_token="EAAG-django-token",
            phone_number_id="100000000000002",
            app_secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
        ),
    ]
    http_client = httpx.Client(transport=httpx.MockTransport(twilio_accepts))
    with configured(
        PROVIDERS=providers,
        STORE=str(tmp_path / "anysend.db"),
        DEFAULT_REGION="PL",
        HTTP_CLIENT=http_client,
    ):
        client = get_client()
        client.profiles.upsert(Recipient(id="bob", phone="600 700 801"))
        client.profiles.upsert(Recipient(id="zoe", phone="+48 600 700 821"))
        yield client
    http_client.close()


def web() -> DjangoClient:
    """Django's test client, with CSRF checks on (the view must be exempt)."""
    return DjangoClient(enforce_csrf_checks=True)


def twilio_post(url: str, form: dict[str, str], *, signed_for: str | None = None) -> Any:
    """POST ``form`` to ``url`` as Twilio does, signed for ``signed_for`` (``url`` by default)."""
    full = "https://shop.example.com" + url
    return web().post(
        url,
        data=urlencode(form),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": sign(signed_for or full, form, TWILIO_TOKEN)},
        secure=True,
        HTTP_HOST="shop.example.com",
    )


# -- settings and the shared client ---------------------------------------------------------------


def test_get_client_is_built_once_from_the_settings(memory: MemoryProvider) -> None:
    """One client per process, with the providers of ANYSEND."""
    client = get_client()
    assert get_client() is client
    assert client.providers == {"mail": memory}


def test_changing_the_setting_builds_a_new_client(tmp_path: Path) -> None:
    """override_settings(ANYSEND=...) closes the old client and the next one uses the new value."""
    with configured(PROVIDERS=[MemoryProvider(name="one")]):
        first = get_client()
        with configured(PROVIDERS=["memory://?name=two"], STORE=str(tmp_path / "a.db")):
            second = get_client()
            assert list(second.providers) == ["two"]
            assert second.store is not None
        with pytest.raises(ConfigurationError, match="closed"):
            first.send(anysend.Message(text="hi"), to={"email": "ann@example.com"})
        assert list(get_client().providers) == ["one"]


def test_reset_client_closes_it(memory: MemoryProvider) -> None:
    """reset_client() closes the shared client; the next get_client() builds another."""
    client = get_client()
    reset_client()
    reset_client()  # nothing left to close
    with pytest.raises(ConfigurationError, match="closed"):
        client.send(anysend.Message(text="hi"), to={"email": "ann@example.com"})
    assert get_client() is not client


def test_providers_as_urls_and_objects() -> None:
    """PROVIDERS takes URLs (with || failover inside one string) and provider objects."""
    memory = MemoryProvider(name="obj")
    client = build_client(
        {"PROVIDERS": ["memory://?name=a || memory://?name=b", memory], "DEFAULT_REGION": "PL"}
    )
    assert list(client.providers) == ["a", "b", "obj"]
    assert list(build_client({"PROVIDERS": "memory://?name=c"}).providers) == ["c"]


def test_providers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PROVIDERS, ANYSEND_PROVIDERS of the environment names them."""
    monkeypatch.setenv("ANYSEND_PROVIDERS", "memory://?name=from-env")
    assert list(build_client({}).providers) == ["from-env"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"PROVIDERS": [], "STOR": "a.db"}, r"no setting 'STOR' \(known: .*STORE"),
        ({"PROVIDERS": [], "store": "a.db"}, "no setting 'store'"),
        ({"PROVIDERS": [42]}, r"\[0\] is neither a provider URL nor a provider object: int"),
        ({"PROVIDERS": MemoryProvider()}, "must be a list"),
        ({"PROVIDERS": ["gopher://nowhere"]}, "gopher"),
        (["memory://"], "must be a dict, not list"),
    ],
)
def test_wrong_settings_are_configuration_errors(config: Any, message: str) -> None:
    """A typo or a wrong value is refused with a clear ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message):
        build_client(config)


def test_a_missing_setting_is_a_configuration_error() -> None:
    """No ANYSEND at all: get_client() says what to set."""
    with override_settings(ANYSEND=None), pytest.raises(ConfigurationError, match="ANYSEND"):
        get_client()


# -- the email backend: conversion, MemoryProvider ------------------------------------------------


def full_message() -> EmailMultiAlternatives:
    """A Django message with every field the backend maps."""
    message = EmailMultiAlternatives(
        subject="Your order #42",
        body="It shipped.",
        from_email="Shop <orders@example.com>",
        to=["Ann Smith <ann@example.com>", "bob@example.com"],
        cc=["carol@example.com"],
        bcc=["audit@example.com"],
        reply_to=["help@example.com"],
        headers={"X-Order": "42", "List-Id": "orders.example.com"},
    )
    message.attach_alternative("<p>It <b>shipped</b>.</p>", "text/html")
    message.attach("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf")
    message.attach("notes.txt", "Leave at the door", "text/plain")
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-ID", "<logo>")
    logo.add_header("Content-Disposition", "inline", filename="logo.png")
    message.attach(logo)
    return message


def test_every_field_reaches_the_provider(memory: MemoryProvider) -> None:
    """to, cc, bcc, reply_to, from, subject, body, HTML, attachments and headers are kept."""
    assert full_message().send() == 1
    first, second = memory.messages
    assert (first.to, first.recipient.name) == ("ann@example.com", "Ann Smith")
    assert (second.to, second.recipient.name) == ("bob@example.com", None)
    assert first.sender == "Shop <orders@example.com>"
    assert first.subject == "Your order #42"
    assert first.text == "It shipped."
    assert first.html == "<p>It <b>shipped</b>.</p>"
    assert first.reply_to == ("help@example.com",)
    assert (first.cc, first.bcc) == (("carol@example.com",), ("audit@example.com",))
    assert (second.cc, second.bcc) == ((), ())  # one copy for cc and bcc
    assert first.headers == {"X-Order": "42", "List-Id": "orders.example.com"}
    invoice, notes, logo = first.attachments
    assert (invoice.filename, invoice.content, invoice.content_type) == (
        "invoice.pdf",
        b"%PDF-1.4 invoice",
        "application/pdf",
    )
    assert (notes.filename, notes.content, notes.content_type) == (
        "notes.txt",
        b"Leave at the door",
        "text/plain",
    )
    assert (logo.filename, logo.content, logo.content_type) == ("logo.png", PNG, "image/png")
    assert (logo.inline, logo.content_id) == (True, "logo")
    assert second.attachments == first.attachments


def test_send_mail_uses_the_default_sender(memory: MemoryProvider) -> None:
    """send_mail(): DEFAULT_FROM_EMAIL when no sender is given; returns the count."""
    assert mail.send_mail("Hi", "Hello", None, ["ann@example.com"]) == 1
    [message] = memory.messages
    assert message.sender == "Shop <shop@example.com>"
    assert (message.subject, message.text, message.html) == ("Hi", "Hello", None)


def test_html_body_and_header_overrides(memory: MemoryProvider) -> None:
    """content_subtype html makes the body HTML; From and Reply-To headers set those fields."""
    message = EmailMessage(
        "Hi",
        "<p>Hello</p>",
        "a@example.com",
        ["ann@example.com"],
        headers={"From": "Team <team@example.com>", "Reply-To": "x@example.com, y@example.com"},
    )
    message.content_subtype = "html"
    message.metadata = {"order": 42}  # type: ignore[attr-defined]
    message.tags = ["orders"]  # type: ignore[attr-defined]
    assert message.send() == 1
    [sent] = memory.messages
    assert sent.html == "<p>Hello</p>"
    assert (sent.text or "").strip() == "Hello"  # anysend's plain part, made from the HTML
    assert sent.sender == "Team <team@example.com>"
    assert sent.reply_to == ("x@example.com", "y@example.com")
    assert sent.headers == {}
    assert (sent.metadata, sent.tags) == ({"order": "42"}, ("orders",))


def test_without_to_each_cc_and_bcc_gets_a_copy(memory: MemoryProvider) -> None:
    """A message with only cc and bcc goes to each of them alone; none at all is skipped."""
    only_bcc = EmailMessage("Hi", "Hello", None, cc=["c@example.com"], bcc=["d@example.com"])
    nobody = EmailMessage("Hi", "Hello", None)
    assert mail.get_connection().send_messages([only_bcc, nobody]) == 1
    assert [(m.to, m.cc, m.bcc) for m in memory.messages] == [
        ("c@example.com", (), ()),
        ("d@example.com", (), ()),
    ]
    assert to_messages(nobody) == []


def test_send_mass_mail_counts_what_was_sent(memory: MemoryProvider) -> None:
    """The count is the number of Django messages sent."""
    datatuple = [
        ("A", "a", None, ["a@example.com"]),
        ("B", "b", None, ["b@example.com", "c@example.com"]),
    ]
    assert mail.send_mass_mail(datatuple) == 2
    assert len(memory.messages) == 3
    assert mail.get_connection().send_messages([]) == 0


def test_a_failed_send_raises_unless_silent(memory: MemoryProvider) -> None:
    """A provider failure raises DeliveryError; fail_silently counts it as not sent."""
    memory.fail_always(ErrorCategory.CONTENT_REJECTED)
    with pytest.raises(DeliveryError):
        mail.send_mail("Hi", "Hello", None, ["ann@example.com"])
    assert mail.send_mail("Hi", "Hello", None, ["ann@example.com"], fail_silently=True) == 0
    ok = EmailMessage("Hi", "Hello", None, ["ann@example.com"])
    memory.reset()
    memory.fail(ErrorCategory.CONTENT_REJECTED)
    failed = EmailMessage("Hi", "Hello", None, ["bob@example.com"])
    backend = mail.get_connection(fail_silently=True)
    assert backend.send_messages([failed, ok]) == 1
    assert [m.to for m in memory.messages] == ["ann@example.com"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda m: m.attach_alternative("BEGIN:VCALENDAR", "text/calendar"), "text/calendar"),
        (lambda m: m.attach_alternative("<p>b</p>", "text/html"), "two HTML parts"),
        (lambda m: setattr(m, "subject", "Hi\nBcc: x@example.com"), "cannot be sent: subject"),
        (lambda m: setattr(m, "to", ["not-an-address"]), "not a valid email address"),
        (lambda m: setattr(m, "to", ["a@example.com, b@example.com"]), "not a valid email"),
        (lambda m: m.extra_headers.update({"Message-ID": "<1@x>"}), "set by anysend"),
        (lambda m: m.extra_headers.update({"To": "x@example.com"}), "set by anysend"),
    ],
)
def test_what_anysend_cannot_send_is_refused(
    memory: MemoryProvider, change: Any, error: str
) -> None:
    """Another alternative, header injection, a bad address, a To header: clear errors."""

    def message() -> EmailMultiAlternatives:
        made = EmailMultiAlternatives("Hi", "Hello", None, ["ann@example.com"])
        made.attach_alternative("<p>a</p>", "text/html")
        change(made)
        return made

    with pytest.raises(anysend.AnysendError, match=error):
        message().send()
    assert message().send(fail_silently=True) == 0
    assert memory.messages == []


def test_an_empty_message_is_refused() -> None:
    """No body, no HTML and no attachment: nothing to send."""
    with pytest.raises(ContentError, match="no body"):
        to_messages(EmailMessage("Hi", "", None, ["ann@example.com"]))


def test_a_multipart_attachment_is_refused() -> None:
    """A MIME multipart given as an attachment cannot be expressed."""
    from email.mime.multipart import MIMEMultipart

    message = EmailMessage("Hi", "Hello", None, ["ann@example.com"])
    message.attach(MIMEMultipart())
    with pytest.raises(ContentError, match="multipart"):
        to_messages(message)


def test_a_client_given_to_the_backend() -> None:
    """get_connection(client=...) sends through that client instead of the shared one."""
    memory = MemoryProvider(name="own")
    with anysend.Client([memory]) as client:
        connection = mail.get_connection(client=client)
        assert isinstance(connection, EmailBackend)
        assert connection.client is client
        with connection:
            sent = mail.send_mail("Hi", "Hello", None, ["a@example.com"], connection=connection)
    assert sent == 1
    assert [m.to for m in memory.messages] == ["a@example.com"]


# -- the email backend: a real SMTP server ------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """The project's aiosmtpd server on 127.0.0.1."""
    server = SMTPServer().start()
    yield server
    server.stop()


def test_a_real_smtp_server_gets_the_whole_message(smtp_server: SMTPServer) -> None:
    """Through an smtp:// provider URL: envelope, headers, both bodies and the attachments."""
    url = f"smtp://127.0.0.1:{smtp_server.port}?security=none&timeout=5&local_hostname=client.test"
    with configured(PROVIDERS=[url]):
        message = full_message()
        message.to = ["Ann Smith <ann@example.com>"]
        assert message.send() == 1
    [received] = smtp_server.handler.received
    assert received.mail_from == "orders@example.com"
    assert sorted(received.rcpt_tos) == [
        "ann@example.com",
        "audit@example.com",
        "carol@example.com",
    ]
    parsed = received.parsed()
    assert parsed["From"] == "Shop <orders@example.com>"
    assert parsed["To"] == "Ann Smith <ann@example.com>"
    assert parsed["Cc"] == "carol@example.com"
    assert parsed["Bcc"] is None
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed["Subject"] == "Your order #42"
    assert parsed["X-Order"] == "42"
    assert parsed["List-Id"] == "orders.example.com"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "It shipped."
    assert html.get_content().strip() == "<p>It <b>shipped</b>.</p>"
    files = {
        part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
        for part in parsed.walk()
        if part.get_filename()
    }
    assert files == {
        "invoice.pdf": ("application/pdf", b"%PDF-1.4 invoice"),
        "notes.txt": ("text/plain", b"Leave at the door"),
        "logo.png": ("image/png", PNG),
    }
    [logo] = [part for part in parsed.walk() if part.get_filename() == "logo.png"]
    assert logo["Content-ID"] == "<logo>"


# -- the webhook view ----------------------------------------------------------------------------


def test_signed_twilio_callbacks_reach_the_store(shop: anysend.Client) -> None:
    """A status callback updates the stored message, a STOP suppresses; the answer is TwiML."""
    result = shop.send(anysend.Message(text="Your order shipped"), to="bob")
    assert result.ok
    status = {"MessageSid": result.provider_message_id or "", "MessageStatus": "delivered"}
    stop = {"MessageSid": "SM" + "1" * 32, "From": "+48600700801", "To": SENDER, "Body": "STOP"}
    for form in (status, stop):
        response = twilio_post("/webhooks/twilio", form)
        assert response.status_code == 200
        assert response.content == TWIML_EMPTY
        assert response["Content-Type"] == "text/xml"
    stored = shop.store.get_message(result.message_id)  # type: ignore[union-attr]
    assert stored is not None
    assert stored.status == DeliveryStatus.DELIVERED
    assert shop.profiles.blocked("sms", "+48600700801") == "suppressed: inbound STOP"


def test_forged_twilio_callbacks_are_401_and_store_nothing(
    shop: anysend.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed for another URL, with another token, or not at all: 401, and nothing stored."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    stop = {"MessageSid": "SM" + "2" * 32, "From": "+48600700801", "To": SENDER, "Body": "STOP"}
    other_url = twilio_post("/webhooks/twilio", stop, signed_for="https://shop.example.com/x")
    unsigned = web().post(
        "/webhooks/twilio",
        data=urlencode(stop),
        content_type="application/x-www-form-urlencoded",
        secure=True,
        HTTP_HOST="shop.example.com",
    )
    for response in (other_url, unsigned):
        assert (response.status_code, response.content) == (401, b"unauthorized")
        assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert shop.profiles.blocked("sms", "+48600700801") is None
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    # The plain URL pattern serves the same view.
    assert twilio_post("/hooks/twilio", stop).status_code == 200
    assert shop.profiles.blocked("sms", "+48600700801") == "suppressed: inbound STOP"


def test_whatsapp_handshake_and_signed_callbacks(shop: anysend.Client) -> None:
    """Meta's handshake is answered; a signed inbound message is stored; a forged one is 401."""
    inbound = (FIXTURES / "whatsapp" / "inbound_text.json").read_bytes()
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8675309"}
    good = web().get("/webhooks/whatsapp", query)
    bad = web().get("/webhooks/whatsapp", {**query, "hub.verify_token": "guess"})
    signature = {"X-Hub-Signature-256": meta_sign(inbound, APP_SECRET)}
    forged = web().post(
        "/webhooks/whatsapp",
        data=inbound.replace(b"Czy", b"Cze"),
        content_type="application/json",
        headers=signature,
    )
    accepted = web().post(
        "/webhooks/whatsapp", data=inbound, content_type="application/json", headers=signature
    )
    assert (good.status_code, good.content) == (200, b"8675309")
    assert good["Content-Type"] == "text/plain; charset=utf-8"
    assert bad.status_code == 401
    assert (forged.status_code, forged.content) == (401, b"unauthorized")
    assert accepted.status_code == 200
    text = json.loads(inbound)["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]
    assert [e.text for e in shop.history("zoe") if e.kind == "inbound"] == [text]


@pytest.mark.usefixtures("shop")
def test_routing_and_methods() -> None:
    """404 for a provider the client lacks, 405 with Allow for other methods."""
    missing = web().post("/webhooks/sendgrid", data=b"{}", content_type="application/json")
    put = web().put("/webhooks/twilio", data=b"x")
    put_whatsapp = web().put("/webhooks/whatsapp", data=b"x")
    unsigned_get = web().get("/webhooks/twilio", {"MessageSid": "SM1"})  # Twilio may GET
    assert (missing.status_code, missing.content) == (404, b"not found")
    assert (put.status_code, put["Allow"]) == (405, "GET, POST")
    assert (put_whatsapp.status_code, put_whatsapp["Allow"]) == (405, "GET, POST")
    assert unsigned_get.status_code == 401
    assert reverse("anysend-webhook", kwargs={"provider": "twilio"}) == "/webhooks/twilio"


@pytest.mark.usefixtures("shop")
def test_a_body_over_djangos_limit_is_413(caplog: pytest.LogCaptureFixture) -> None:
    """DATA_UPLOAD_MAX_MEMORY_SIZE is the limit: a larger callback gets 413."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10):
        response = web().post("/webhooks/twilio", data=b"x" * 11, content_type="text/plain")
    assert (response.status_code, response.content) == (413, b"payload too large")
    assert "over 10 bytes" in caplog.records[0].getMessage()


def test_django_proxy_settings_decide_the_url(shop: anysend.Client) -> None:
    """Behind a proxy, SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST give the signed URL."""
    stop = {"MessageSid": "SM" + "3" * 32, "From": "+48600700801", "To": SENDER, "Body": "STOP"}
    signature = sign("https://public.example.com/webhooks/twilio", stop, TWILIO_TOKEN)
    forwarded = {
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "public.example.com",
    }

    def post() -> Any:
        return web().post(
            "/webhooks/twilio",
            data=urlencode(stop),
            content_type="application/x-www-form-urlencoded",
            headers=forwarded,
        )

    assert post().status_code == 401  # forwarded headers are not trusted by default
    proxy = {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}
    with override_settings(USE_X_FORWARDED_HOST=True, **proxy):
        assert post().status_code == 200


@pytest.mark.parametrize("middleware", [SETTINGS["MIDDLEWARE"], []])
def test_a_host_django_does_not_allow_is_400(shop: anysend.Client, middleware: list[str]) -> None:
    """ALLOWED_HOSTS applies (in CommonMiddleware or in the view): 400, nothing handed on."""
    logging.getLogger("django.security.DisallowedHost").disabled = True
    try:
        with override_settings(MIDDLEWARE=middleware):
            response = web().post(
                "/webhooks/twilio",
                data=b"a=1",
                content_type="text/plain",
                HTTP_HOST="evil.example.com",
            )
    finally:
        logging.getLogger("django.security.DisallowedHost").disabled = False
    assert response.status_code == 400


def test_a_broken_setting_is_500(caplog: pytest.LogCaptureFixture) -> None:
    """A client that cannot be built: 500 with a bare body, logged with the traceback."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    with configured(PROVIDERS=[42]):
        response = web().post("/webhooks/twilio", data=b"a=1", content_type="text/plain")
    assert (response.status_code, response.content) == (500, b"internal server error")
    [record] = [r for r in caplog.records if r.name == "anysend"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConfigurationError)
