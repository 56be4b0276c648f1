"""The SMTP adapter against a real aiosmtpd server on 127.0.0.1 (STARTTLS, TLS and AUTH)."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from typing import Any, cast

import pytest
import trustme

import anysend
from anysend import (
    Attachment,
    Channel,
    ConfigurationError,
    ContentError,
    DeliveryStatus,
    ErrorCategory,
    Message,
    OutboundMessage,
    ProviderError,
    Recipient,
)
from anysend.providers.smtp import SMTP, Stage, category_for_reply
from anysend.testing import VirtualClock
from anysend.testing.contract import ProviderContract
from tests.smtp_server import Received, SMTPServer

E = ErrorCategory
USER, PASSWORD = "shop", "s3cret-pass"
SENDER = "Shop <shop@example.com>"
QUEUED = "250 2.0.0 Ok: queued as ABC123"
PNG = b"\x89PNG\r\n\x1a\n fake image"
ANN = Recipient(email="ann@example.com", name="Ann Kowalska-Żak, PhD")
FULL = Message(
    subject="Your order ✓",
    text="Thanks for your order.",
    html='<p>Thanks! <img src="cid:logo"></p>',
    cc=("Bob <bob@example.com>",),
    bcc=("audit@example.com",),
    reply_to=("help@example.com",),
    headers={"X-Campaign": "spring-sale"},
    attachments=(
        Attachment(filename="invoice.pdf", content=b"%PDF-1.7 fake"),
        Attachment(filename="logo.png", content=PNG, inline=True, content_id="logo"),
    ),
    unsubscribe_url="https://shop.example.com/unsubscribe?u=ann",
    category="marketing",
)

MakeSMTP = Callable[..., SMTP]


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Any) -> str:
    path = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(path)
    return path


@pytest.fixture
def starttls_server(server_context: ssl.SSLContext) -> Iterator[SMTPServer]:
    server = SMTPServer(tls_context=server_context, users={USER: PASSWORD}).start()
    yield server
    server.stop()


@pytest.fixture
def tls_server(server_context: ssl.SSLContext) -> Iterator[SMTPServer]:
    server = SMTPServer(
        ssl_context=server_context, users={USER: PASSWORD}, auth_require_tls=False
    ).start()
    yield server
    server.stop()


@pytest.fixture
def plain_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_smtp(ca_file: str) -> Iterator[MakeSMTP]:
    """Build adapters for a server (trusting the test CA, logged in); close them afterwards."""
    made: list[SMTP] = []

    def make(server: SMTPServer, **settings: Any) -> SMTP:
        defaults: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            "sender": SENDER,
            "local_hostname": "client.test",
            "timeout": 5.0,
            "ca_file": ca_file,
            "username": USER,
            "password": PASSWORD,
        }
        defaults.update(settings)
        adapter = SMTP(**defaults)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


def outbound(**fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "id": "msg-1",
        "channel": Channel.EMAIL,
        "to": "ann@example.com",
        "subject": "Hello",
        "text": "Hi Ann",
    }
    values.update(fields)
    return OutboundMessage(**values)


def addresses(message: EmailMessage, name: str) -> list[tuple[str, str]]:
    header = cast(AddressHeader, message[name])
    return [(a.display_name, a.addr_spec) for a in header.addresses]


def refuse(server: SMTPServer, stage: str, reply: str) -> None:
    if stage == "mail":
        server.handler.mail_replies.append(reply)
    elif stage == "rcpt":
        server.handler.rcpt_replies["ann@example.com"] = reply
    else:
        server.handler.data_replies.append(reply)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_full_message(server: SMTPServer, result: anysend.SendResult) -> None:
    """What FULL to ANN must look like on the server."""
    assert result.ok, result.error
    assert result.receipt is not None
    assert result.receipt.raw == QUEUED
    [received] = server.handler.received
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["ann@example.com", "bob@example.com", "audit@example.com"]
    assert b"audit@example.com" not in received.content
    message = received.parsed()
    assert addresses(message, "From") == [("Shop", "shop@example.com")]
    assert addresses(message, "To") == [("Ann Kowalska-Żak, PhD", "ann@example.com")]
    assert addresses(message, "Cc") == [("Bob", "bob@example.com")]
    assert addresses(message, "Reply-To") == [("", "help@example.com")]
    assert message["Bcc"] is None
    assert message["Subject"] == "Your order ✓"
    assert message["Date"] is not None
    assert message["X-Campaign"] == "spring-sale"
    assert message["X-Anysend-Message-Id"] == result.message_id
    assert message["Message-ID"] == f"<{result.provider_message_id}>"
    assert str(result.provider_message_id).endswith("@example.com")
    assert message["List-Unsubscribe"] == "<https://shop.example.com/unsubscribe?u=ann>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/mixed"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "Thanks for your order."
    assert 'src="cid:logo"' in html.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.7 fake"
    [image] = [part for part in message.walk() if part["Content-ID"] == "<logo>"]
    assert image.get_content_type() == "image/png"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG
    related = [p for p in message.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1


# -- the reply-code table ------------------------------------------------------------------------

TABLE: list[tuple[int, str | None, Stage | None, ErrorCategory]] = [
    # authentication, whatever the enhanced code says
    (530, "5.7.0", None, E.AUTH),
    (534, "5.7.9", None, E.AUTH),
    (535, "5.7.8", None, E.AUTH),
    (535, None, None, E.AUTH),
    (550, "5.7.8", None, E.AUTH),
    (550, "5.7.9", None, E.AUTH),
    # enhanced codes
    (450, "4.7.1", None, E.RATE_LIMITED),
    (421, "4.7.0", None, E.RATE_LIMITED),
    (451, "4.7.26", None, E.RATE_LIMITED),
    (550, "5.1.1", None, E.INVALID_RECIPIENT),
    (550, "5.1.2", None, E.INVALID_RECIPIENT),
    (553, "5.1.3", None, E.INVALID_RECIPIENT),
    (550, "5.1.10", None, E.INVALID_RECIPIENT),
    (550, "5.2.1", None, E.INVALID_RECIPIENT),
    (553, "5.1.7", None, E.CONFIGURATION),
    (553, "5.1.8", None, E.CONFIGURATION),
    (552, "5.2.3", None, E.PAYLOAD_TOO_LARGE),
    (552, "5.3.4", None, E.PAYLOAD_TOO_LARGE),
    (554, "5.3.4", None, E.PAYLOAD_TOO_LARGE),
    (550, "5.7.1", None, E.CONTENT_REJECTED),
    (554, "5.7.1", None, E.CONTENT_REJECTED),
    (550, "5.7.26", None, E.CONTENT_REJECTED),
    (530, "5.7.11", None, E.AUTH),
    (554, "5.7.11", None, E.CONFIGURATION),
    (538, None, None, E.CONFIGURATION),
    # bare reply codes
    (421, None, None, E.UNAVAILABLE),
    (421, "4.3.2", None, E.UNAVAILABLE),
    (450, None, None, E.UNAVAILABLE),
    (451, "4.3.0", None, E.UNAVAILABLE),
    (452, "4.2.2", None, E.UNAVAILABLE),
    (454, None, None, E.UNAVAILABLE),
    (550, None, None, E.INVALID_RECIPIENT),
    (551, None, None, E.INVALID_RECIPIENT),
    (553, None, None, E.INVALID_RECIPIENT),
    (552, None, None, E.PAYLOAD_TOO_LARGE),
    (554, None, None, E.CONTENT_REJECTED),
    (500, None, None, E.UNKNOWN),
    (501, "5.5.4", None, E.UNKNOWN),
    (503, "5.5.1", None, E.UNKNOWN),
    (557, "5.3.0", None, E.UNKNOWN),
    (354, None, None, E.UNKNOWN),
    # an enhanced code of the wrong class is ignored
    (550, "4.7.1", None, E.INVALID_RECIPIENT),
    (451, "5.1.1", None, E.UNAVAILABLE),
    # by stage
    (554, None, "connect", E.CONFIGURATION),
    (502, "5.5.1", "connect", E.CONFIGURATION),
    (535, "5.7.8", "connect", E.AUTH),
    (421, None, "connect", E.UNAVAILABLE),
    (550, "5.1.1", "mail", E.CONFIGURATION),
    (553, None, "mail", E.CONFIGURATION),
    (550, "5.7.1", "mail", E.CONFIGURATION),
    (552, "5.3.4", "mail", E.PAYLOAD_TOO_LARGE),
    (451, "4.3.0", "mail", E.UNAVAILABLE),
    (550, "5.1.1", "rcpt", E.INVALID_RECIPIENT),
    (552, None, "rcpt", E.UNAVAILABLE),
    (552, "5.2.2", "rcpt", E.PAYLOAD_TOO_LARGE),
    (550, None, "data", E.CONTENT_REJECTED),
    (553, None, "data", E.CONTENT_REJECTED),
    (550, "5.1.1", "data", E.INVALID_RECIPIENT),
    (552, "5.3.4", "data", E.PAYLOAD_TOO_LARGE),
    (554, "5.7.1", "data", E.CONTENT_REJECTED),
]


@pytest.mark.parametrize(("code", "enhanced", "stage", "expected"), TABLE)
def test_category_for_reply(
    code: int, enhanced: str | None, stage: Stage | None, expected: ErrorCategory
) -> None:
    """Each reply code, enhanced code and stage maps to the documented category."""
    assert category_for_reply(code, enhanced, stage=stage) is expected


def test_category_retryability_follows_the_reply_class() -> None:
    """4xx replies are retried, 5xx replies are not (but 552 to RCPT means 452: RFC 5321)."""
    for code, enhanced, stage, _ in TABLE:
        category = category_for_reply(code, enhanced, stage=stage)
        if 400 <= code < 500 or (code, enhanced, stage) == (552, None, "rcpt"):
            assert category.retryable, (code, enhanced, stage)
        elif code >= 500:
            assert not category.retryable, (code, enhanced, stage)


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("tls", 465), ("none", 25)])
def test_default_port_follows_security(security: str, port: int) -> None:
    """Without a port, the usual one for the security mode is used."""
    assert SMTP(host="mail.example.com", security=security).settings.port == port


def test_password_in_clear_text_to_a_remote_host_is_refused() -> None:
    """security='none' with a login to a non-loopback host is a configuration error."""
    with pytest.raises(ConfigurationError, match="clear text"):
        SMTP(host="mail.example.com", security="none", username="u", password="p")


def test_password_in_clear_text_to_loopback_is_allowed() -> None:
    """security='none' with a login to the local machine is allowed."""
    for host in ("127.0.0.1", "localhost", "::1"):
        SMTP(host=host, security="none", username="u", password="p")


@pytest.mark.parametrize(
    "settings",
    [
        {"username": "u"},
        {"password": "p"},
        {"sender": "not an address"},
        {"sender": "a@example.com\r\nBcc: x@example.com"},
        {"host": "mail.example.com\r\nRCPT"},
        {"local_hostname": "a b"},
        {"timeout": 0},
        {"port": 70000},
        {"security": "ssl"},
        {"ca_file": "/nonexistent/ca.pem"},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any]) -> None:
    """Incomplete or malformed settings raise ConfigurationError when the adapter is built."""
    values = {"host": "mail.example.com", **settings}
    with pytest.raises(ConfigurationError):
        SMTP(**values)


def test_password_never_prints() -> None:
    """The password is a secret: not in the adapter's repr."""
    adapter = SMTP(host="mail.example.com", username="shop", password=PASSWORD)
    assert PASSWORD not in repr(adapter)
    assert adapter.secrets() == [PASSWORD]


class TestSMTPContract(ProviderContract):
    """The contract kit's declaration and secrets checks, run against the SMTP adapter."""

    def make_provider(self) -> SMTP:
        """An adapter with a login (no connection is made)."""
        return SMTP(host="mail.example.com", username=USER, password=PASSWORD, sender=SENDER)


def test_declarations() -> None:
    """Name, channel and capabilities are as documented."""
    assert SMTP.name == "smtp"
    assert SMTP.channels == frozenset({Channel.EMAIL})
    caps = SMTP.capabilities
    assert (caps.html, caps.attachments, caps.inline_images, caps.cc_bcc) == (True,) * 4
    assert (caps.reply_to, caps.headers) == (True, True)
    assert (caps.metadata, caps.idempotency, caps.webhooks) == (False, False, False)
    assert SMTP.supports_sync()
    assert SMTP.supports_async()


# -- composing (no network) -----------------------------------------------------------------------


def parse(data: bytes) -> EmailMessage:
    return Received("", [], data, []).parsed()


def test_display_name_with_specials_round_trips() -> None:
    """A non-ASCII name with a comma and quotes stays one address with that name."""
    name = 'Zoë "Z" O\'Neil, PhD'
    adapter = SMTP(host="mail.example.com", sender=SENDER)
    composed = adapter.compose(outbound(recipient=Recipient(name=name)))
    assert addresses(parse(composed.as_bytes()), "To") == [(name, "ann@example.com")]


def test_long_unsubscribe_url_is_not_encoded() -> None:
    """A long List-Unsubscribe URL is written as it is, not as RFC 2047 encoded words."""
    url = "https://shop.example.com/unsubscribe?token=" + "a1" * 80
    adapter = SMTP(host="mail.example.com", sender=SENDER)
    data = adapter.compose(outbound(unsubscribe_url=url)).as_bytes()
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in data
    assert parse(data)["List-Unsubscribe"] == f"<{url}>"


def test_html_only_with_inline_image_is_related() -> None:
    """HTML without text and with an inline image becomes multipart/related."""
    adapter = SMTP(host="mail.example.com", sender=SENDER)
    logo = Attachment(filename="logo.png", content=PNG, inline=True)
    composed = adapter.compose(
        outbound(text=None, html='<img src="cid:logo.png">', attachments=(logo,))
    )
    message = parse(composed.as_bytes())
    assert message.get_content_type() == "multipart/related"
    [image] = [part for part in message.walk() if part["Content-ID"] == "<logo.png>"]
    assert image.get_content() == PNG


def test_envelope_deduplicates_and_encodes_idn_domains() -> None:
    """RCPT TO lists each address once; internationalised domains go out as punycode."""
    adapter = SMTP(host="mail.example.com", sender="shop@bücher.example")
    composed = adapter.compose(
        outbound(to="ann@bücher.example", cc=("ANN@bücher.example",), bcc=("bob@example.com",))
    )
    assert composed.mail_from == "shop@xn--bcher-kva.example"
    assert composed.rcpt_to == ("ann@xn--bcher-kva.example", "bob@example.com")
    assert not composed.smtputf8


# -- sending: both paths -------------------------------------------------------------------------


def test_sync_client_sends_everything_over_starttls(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """Client + STARTTLS + AUTH: the server gets every header, part and envelope address."""
    with anysend.Client([make_smtp(starttls_server)], clock=VirtualClock()) as client:
        result = client.send(FULL, to=ANN)
    check_full_message(starttls_server, result)
    assert starttls_server.handler.quits == 1  # the client closed the adapter


@pytest.mark.anyio
async def test_async_client_sends_everything_over_starttls(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """AsyncClient + STARTTLS + AUTH: the same message arrives the same way."""
    async with anysend.AsyncClient([make_smtp(starttls_server)], clock=VirtualClock()) as client:
        result = await client.send(FULL, to=ANN)
    check_full_message(starttls_server, result)
    assert starttls_server.handler.quits == 1


def test_sync_implicit_tls(tls_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """security='tls' speaks TLS from the first byte and logs in."""
    adapter = make_smtp(tls_server, security="tls")
    receipt = adapter.send(outbound())
    assert receipt.raw == QUEUED
    assert [r.rcpt_tos for r in tls_server.handler.received] == [["ann@example.com"]]


@pytest.mark.anyio
async def test_async_implicit_tls(tls_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """security='tls' on the async path."""
    adapter = make_smtp(tls_server, security="tls")
    try:
        receipt = await adapter.asend(outbound())
    finally:
        await adapter.aclose()
    assert receipt.raw == QUEUED
    assert len(tls_server.handler.received) == 1
    assert tls_server.handler.quits == 1


def test_security_none_sends_in_clear_text(plain_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """security='none' sends without TLS (and without a login here)."""
    adapter = make_smtp(plain_server, security="none", username=None, password=None)
    adapter.send(outbound())
    assert len(plain_server.handler.received) == 1


def test_mail_size_is_announced(starttls_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """When the server offers SIZE, MAIL FROM carries the message size."""
    make_smtp(starttls_server).send(outbound())
    [received] = starttls_server.handler.received
    assert [o.split("=")[0] for o in received.mail_options] == ["SIZE"]


# -- refused before connecting ---------------------------------------------------------------------


def test_marketing_without_unsubscribe_url_is_refused(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """A marketing email without unsubscribe_url raises ContentError before connecting."""
    adapter = make_smtp(starttls_server)
    with pytest.raises(ContentError, match="unsubscribe_url"):
        adapter.send(outbound(category="marketing"))
    with anysend.Client([adapter], clock=VirtualClock()) as client:
        result = client.send(Message(text="Sale!", category="marketing"), to=ANN)
    assert not result.ok
    assert result.error is not None
    assert "unsubscribe_url" in result.error.message
    assert starttls_server.connections == 0


@pytest.mark.anyio
async def test_marketing_without_unsubscribe_url_is_refused_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path refuses it the same way."""
    with pytest.raises(ContentError):
        await make_smtp(starttls_server).asend(outbound(category="marketing"))
    assert starttls_server.connections == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hi\r\nBcc: victim@example.net"},
        {"subject": "Hi\nBcc: victim@example.net"},
        {"recipient": Recipient(name="Ann\r\nBcc: victim@example.net")},
        {"cc": ("bob@example.com\r\nBcc: victim@example.net",)},
        {"reply_to": ("help@example.com\nX-Evil: 1",)},
        {"sender": "shop@example.com\rBcc: victim@example.net"},
        {"headers": {"X-Note": "ok\r\nBcc: victim@example.net"}},
        {"headers": {"X-Note\r\nBcc": "victim@example.net"}},
        {"headers": {"X Bad": "value"}},
        {"headers": {"Bcc": "victim@example.net"}},
        {"headers": {"Content-Type": "text/html"}},
        {"unsubscribe_url": "https://example.com/u\r\nBcc: victim@example.net"},
        {
            "attachments": (
                Attachment.model_construct(
                    filename="a.txt\r\nBcc: victim@example.net",
                    content=b"x",
                    content_type="text/plain",
                    inline=False,
                    content_id=None,
                ),
            )
        },
    ],
)
def test_header_injection_is_refused(
    fields: dict[str, Any], starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """CR or LF in anything that becomes a header, or a reserved header, raises ContentError."""
    with pytest.raises(ContentError):
        make_smtp(starttls_server).send(outbound(**fields))
    assert starttls_server.connections == 0


def test_no_sender_is_a_configuration_error(plain_server: SMTPServer) -> None:
    """Without Message.sender or the sender setting, the adapter cannot build From."""
    adapter = SMTP(host=plain_server.host, port=plain_server.port, security="none")
    with pytest.raises(ConfigurationError, match="sender"):
        adapter.send(outbound())
    assert plain_server.connections == 0


def test_bad_cc_address_is_an_invalid_recipient(plain_server: SMTPServer) -> None:
    """A cc that is not one address raises InvalidRecipientError naming the field."""
    adapter = SMTP(host=plain_server.host, port=plain_server.port, security="none", sender=SENDER)
    with pytest.raises(anysend.InvalidRecipientError) as info:
        adapter.send(outbound(cc=("a@example.com, b@example.com",)))
    assert info.value.field == "cc"


@pytest.mark.anyio
async def test_async_path_without_aiosmtplib_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without aiosmtplib, asend raises ConfigurationError with the pip command."""
    monkeypatch.setitem(sys.modules, "aiosmtplib", None)
    adapter = SMTP(host="127.0.0.1", sender=SENDER)
    with pytest.raises(ConfigurationError, match=r'pip install "anysend\[smtp\]"'):
        await adapter.asend(outbound())


# -- TLS -----------------------------------------------------------------------------------------


def test_untrusted_certificate_is_a_configuration_error(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """A certificate from a CA that is not trusted fails with category configuration."""
    adapter = make_smtp(starttls_server, ca_file=None)
    with pytest.raises(ProviderError) as info:
        adapter.send(outbound())
    assert info.value.category is E.CONFIGURATION
    assert not info.value.retryable
    assert "ca_file" in info.value.message
    assert starttls_server.handler.received == []


@pytest.mark.anyio
async def test_untrusted_certificate_is_a_configuration_error_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path maps the failed verification the same way."""
    adapter = make_smtp(starttls_server, ca_file=None)
    with pytest.raises(ProviderError) as info:
        await adapter.asend(outbound())
    assert info.value.category is E.CONFIGURATION


def test_untrusted_implicit_tls_is_a_configuration_error(
    tls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """Implicit TLS with an untrusted certificate fails the same way."""
    with pytest.raises(ProviderError) as info:
        make_smtp(tls_server, security="tls", ca_file=None).send(outbound())
    assert info.value.category is E.CONFIGURATION


def test_verify_off_works_and_warns(
    starttls_server: SMTPServer, make_smtp: MakeSMTP, caplog: pytest.LogCaptureFixture
) -> None:
    """verify=False sends despite an unknown CA and logs a warning on the anysend logger."""
    with (
        caplog.at_level(logging.WARNING, logger="anysend"),
        pytest.warns(anysend.InsecureTransportWarning),
    ):
        adapter = make_smtp(starttls_server, ca_file=None, verify=False)
    assert any(
        r.name == "anysend" and r.levelno == logging.WARNING and "verification is off" in r.message
        for r in caplog.records
    )
    adapter.send(outbound())
    assert len(starttls_server.handler.received) == 1


@pytest.mark.anyio
async def test_verify_off_works_async(starttls_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """verify=False on the async path."""
    with pytest.warns(anysend.InsecureTransportWarning):
        adapter = make_smtp(starttls_server, ca_file=None, verify=False)
    try:
        await adapter.asend(outbound())
    finally:
        await adapter.aclose()
    assert len(starttls_server.handler.received) == 1


def test_missing_starttls_is_refused(plain_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """A server without STARTTLS is never used in clear text when starttls was asked for."""
    with pytest.raises(ProviderError) as info:
        make_smtp(plain_server, username=None, password=None).send(outbound())
    assert info.value.category is E.CONFIGURATION
    assert not info.value.retryable
    assert "STARTTLS" in info.value.message
    assert plain_server.handler.received == []


@pytest.mark.anyio
async def test_missing_starttls_is_refused_async(
    plain_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path refuses it too."""
    with pytest.raises(ProviderError) as info:
        await make_smtp(plain_server, username=None, password=None).asend(outbound())
    assert info.value.category is E.CONFIGURATION


# -- authentication --------------------------------------------------------------------------------


def test_wrong_password_is_an_auth_error(starttls_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """A refused login maps to category auth with the reply's codes."""
    with pytest.raises(ProviderError) as info:
        make_smtp(starttls_server, password="wrong").send(outbound())
    error = info.value
    assert (error.category, error.status_code, error.code) == (E.AUTH, 535, "5.7.8")
    assert error.provider == "smtp"
    assert "wrong" not in str(error.raw)


@pytest.mark.anyio
async def test_wrong_password_is_an_auth_error_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path maps a refused login to auth."""
    adapter = make_smtp(starttls_server, password="wrong")
    async with anysend.AsyncClient([adapter], clock=VirtualClock()) as client:
        result = await client.send(Message(text="Hi"), to=ANN)
    assert result.error is not None
    assert (result.error.category, result.error.status_code) == (E.AUTH, 535)


def test_server_without_auth_is_a_configuration_error(
    plain_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """A login asked of a server that offers no AUTH fails as configuration."""
    with pytest.raises(ProviderError) as info:
        make_smtp(plain_server, security="none").send(outbound())
    assert info.value.category is E.CONFIGURATION
    assert plain_server.handler.received == []


@pytest.mark.anyio
async def test_server_without_auth_is_a_configuration_error_async(
    plain_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path reports a missing AUTH the same way."""
    with pytest.raises(ProviderError) as info:
        await make_smtp(plain_server, security="none").asend(outbound())
    assert info.value.category is E.CONFIGURATION


# -- connections ---------------------------------------------------------------------------------


def test_connection_is_reused_and_closed_with_quit(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """Two sends share one connection; close() ends it with QUIT."""
    adapter = make_smtp(starttls_server)
    adapter.send(outbound())
    adapter.send(outbound(id="msg-2"))
    assert starttls_server.connections == 1
    assert starttls_server.handler.quits == 0
    adapter.close()
    assert starttls_server.handler.quits == 1
    assert len(starttls_server.handler.received) == 2


@pytest.mark.anyio
async def test_connection_is_reused_and_closed_with_quit_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path keeps one connection too; aclose() ends it with QUIT."""
    adapter = make_smtp(starttls_server)
    await adapter.asend(outbound())
    await adapter.asend(outbound(id="msg-2"))
    assert starttls_server.connections == 1
    await adapter.aclose()
    assert starttls_server.handler.quits == 1
    assert len(starttls_server.handler.received) == 2


def test_reuse_off_connects_per_message(starttls_server: SMTPServer, make_smtp: MakeSMTP) -> None:
    """reuse_connection=False connects and QUITs for every message."""
    adapter = make_smtp(starttls_server, reuse_connection=False)
    adapter.send(outbound())
    adapter.send(outbound(id="msg-2"))
    assert (starttls_server.connections, starttls_server.handler.quits) == (2, 2)


def test_reconnects_after_the_server_dropped_the_connection(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """A kept connection closed by the server is replaced once, and the send succeeds."""
    adapter = make_smtp(starttls_server)
    adapter.send(outbound())
    starttls_server.drop_connections()
    adapter.send(outbound(id="msg-2"))
    assert starttls_server.connections == 2
    assert len(starttls_server.handler.received) == 2


@pytest.mark.anyio
async def test_reconnects_after_the_server_dropped_the_connection_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path replaces a dropped connection once too."""
    adapter = make_smtp(starttls_server)
    try:
        await adapter.asend(outbound())
        starttls_server.drop_connections()
        await adapter.asend(outbound(id="msg-2"))
    finally:
        await adapter.aclose()
    assert starttls_server.connections == 2
    assert len(starttls_server.handler.received) == 2


def test_forked_process_opens_its_own_connection(
    starttls_server: SMTPServer, make_smtp: MakeSMTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After os.fork the inherited connection is left to the parent and a new one is made."""
    adapter = make_smtp(starttls_server)
    adapter.send(outbound())
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)
    adapter.send(outbound(id="msg-2"))
    assert starttls_server.connections == 2
    assert starttls_server.handler.quits == 0  # the parent's session was not ended


def test_unreachable_port_is_unavailable() -> None:
    """A refused connection is unavailable and retryable."""
    adapter = SMTP(host="127.0.0.1", port=free_port(), security="none", sender=SENDER)
    with pytest.raises(ProviderError) as info:
        adapter.send(outbound())
    assert info.value.category is E.UNAVAILABLE
    assert info.value.retryable


@pytest.mark.anyio
async def test_unreachable_port_is_unavailable_async() -> None:
    """The async path maps a refused connection to unavailable too."""
    adapter = SMTP(host="127.0.0.1", port=free_port(), security="none", sender=SENDER)
    with pytest.raises(ProviderError) as info:
        await adapter.asend(outbound())
    assert info.value.category is E.UNAVAILABLE
    assert info.value.retryable


def test_silent_server_is_a_timeout() -> None:
    """A server that accepts but never greets times out (retryable, nothing was sent)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        adapter = SMTP(host="127.0.0.1", port=port, security="none", sender=SENDER, timeout=0.2)
        with pytest.raises(ProviderError) as info:
            adapter.send(outbound())
    assert info.value.category is E.TIMEOUT
    assert info.value.retryable


@pytest.mark.anyio
async def test_silent_server_is_a_timeout_async() -> None:
    """The async path maps a missing greeting to timeout."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        adapter = SMTP(host="127.0.0.1", port=port, security="none", sender=SENDER, timeout=0.2)
        with pytest.raises(ProviderError) as info:
            await adapter.asend(outbound())
    assert info.value.category is E.TIMEOUT


def test_no_answer_after_data_is_ambiguous(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """A timeout after the message was handed over is ambiguous_timeout: never re-sent."""
    starttls_server.handler.hang_on_data = True
    adapter = make_smtp(starttls_server, timeout=0.3)
    with anysend.Client([adapter], clock=VirtualClock()) as client:
        result = client.send(Message(text="Hi"), to=ANN)
    assert result.status is DeliveryStatus.UNKNOWN
    assert result.error is not None
    assert result.error.category is E.AMBIGUOUS_TIMEOUT
    assert len(result.attempts) == 1


@pytest.mark.anyio
async def test_no_answer_after_data_is_ambiguous_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path treats a timeout after DATA as ambiguous too."""
    starttls_server.handler.hang_on_data = True
    adapter = make_smtp(starttls_server, timeout=0.3)
    with pytest.raises(ProviderError) as info:
        await adapter.asend(outbound())
    assert info.value.category is E.AMBIGUOUS_TIMEOUT
    assert not info.value.retryable


# -- replies mapped end to end ------------------------------------------------------------------

REPLIES = [
    ("rcpt", "550 5.1.1 User unknown", E.INVALID_RECIPIENT, 550, "5.1.1"),
    ("rcpt", "450 4.7.1 Greylisted, try again", E.RATE_LIMITED, 450, "4.7.1"),
    ("data", "451 4.3.0 Try later", E.UNAVAILABLE, 451, "4.3.0"),
    ("data", "552 5.3.4 Too big", E.PAYLOAD_TOO_LARGE, 552, "5.3.4"),
    ("data", "554 5.7.1 Looks like spam", E.CONTENT_REJECTED, 554, "5.7.1"),
    ("data", "550 Rejected", E.CONTENT_REJECTED, 550, None),
    ("data", "421 4.3.2 Shutting down", E.UNAVAILABLE, 421, "4.3.2"),
    ("mail", "553 5.1.8 Sender domain does not exist", E.CONFIGURATION, 553, "5.1.8"),
    ("mail", "451 4.3.0 Local error", E.UNAVAILABLE, 451, "4.3.0"),
]


@pytest.mark.parametrize(("stage", "reply", "category", "status", "code"), REPLIES)
def test_replies_map_end_to_end(
    stage: str,
    reply: str,
    category: ErrorCategory,
    status: int,
    code: str | None,
    starttls_server: SMTPServer,
    make_smtp: MakeSMTP,
) -> None:
    """A refusal from the server becomes a ProviderError; the connection stays usable."""
    adapter = make_smtp(starttls_server)
    refuse(starttls_server, stage, reply)
    with pytest.raises(ProviderError) as info:
        adapter.send(outbound())
    error = info.value
    assert (error.category, error.status_code, error.code) == (category, status, code)
    assert error.retryable is category.retryable
    assert error.raw == reply
    assert error.provider == "smtp"
    starttls_server.handler.rcpt_replies.clear()
    adapter.send(outbound(id="msg-2"))
    assert len(starttls_server.handler.received) == 1
    assert starttls_server.connections == (2 if status == 421 else 1)


@pytest.mark.anyio
@pytest.mark.parametrize(("stage", "reply", "category", "status", "code"), REPLIES)
async def test_replies_map_end_to_end_async(
    stage: str,
    reply: str,
    category: ErrorCategory,
    status: int,
    code: str | None,
    starttls_server: SMTPServer,
    make_smtp: MakeSMTP,
) -> None:
    """The async path maps the same replies the same way."""
    adapter = make_smtp(starttls_server)
    refuse(starttls_server, stage, reply)
    try:
        with pytest.raises(ProviderError) as info:
            await adapter.asend(outbound())
        starttls_server.handler.rcpt_replies.clear()
        await adapter.asend(outbound(id="msg-2"))
    finally:
        await adapter.aclose()
    error = info.value
    assert (error.category, error.status_code, error.code, error.raw) == (
        category,
        status,
        code,
        reply,
    )
    assert len(starttls_server.handler.received) == 1


def test_some_recipients_refused_still_sends(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """When only some recipients are refused, the message goes out and raw lists them."""
    starttls_server.handler.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
    receipt = make_smtp(starttls_server).send(outbound(cc=("bob@example.com",)))
    assert receipt.raw == {
        "reply": QUEUED,
        "refused": {"bob@example.com": "550 5.1.1 User unknown"},
    }
    assert starttls_server.handler.received[0].rcpt_tos == ["ann@example.com"]


@pytest.mark.anyio
async def test_some_recipients_refused_still_sends_async(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """The async path reports partly refused recipients the same way."""
    starttls_server.handler.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
    adapter = make_smtp(starttls_server)
    try:
        receipt = await adapter.asend(outbound(cc=("bob@example.com",)))
    finally:
        await adapter.aclose()
    assert receipt.raw == {
        "reply": QUEUED,
        "refused": {"bob@example.com": "550 5.1.1 User unknown"},
    }


def test_all_recipients_refused_uses_the_first_refusal(
    starttls_server: SMTPServer, make_smtp: MakeSMTP
) -> None:
    """When every recipient is refused, the first refusal decides; raw lists them all."""
    replies = starttls_server.handler.rcpt_replies
    replies["ann@example.com"] = "550 5.1.1 User unknown"
    replies["bob@example.com"] = "452 4.2.2 Mailbox full"
    with pytest.raises(ProviderError) as info:
        make_smtp(starttls_server).send(outbound(cc=("bob@example.com",)))
    assert (info.value.category, info.value.code) == (E.INVALID_RECIPIENT, "5.1.1")
    assert info.value.raw == {
        "reply": "550 5.1.1 User unknown",
        "refused": {
            "ann@example.com": "550 5.1.1 User unknown",
            "bob@example.com": "452 4.2.2 Mailbox full",
        },
    }


# -- internationalised addresses ----------------------------------------------------------------


@pytest.mark.parametrize("supported", [True, False])
def test_non_ascii_mailbox_needs_smtputf8(supported: bool, make_smtp: MakeSMTP) -> None:
    """A non-ASCII local part goes out with SMTPUTF8, or fails as configuration without it."""
    server = SMTPServer(smtputf8=supported).start()
    try:
        adapter = make_smtp(server, security="none", username=None, password=None)
        if supported:
            adapter.send(outbound(to="zoë@example.com"))
            [received] = server.handler.received
            assert received.rcpt_tos == ["zoë@example.com"]
            assert "SMTPUTF8" in received.mail_options
            assert addresses(received.parsed(), "To") == [("", "zoë@example.com")]
        else:
            with pytest.raises(ProviderError) as info:
                adapter.send(outbound(to="zoë@example.com"))
            assert info.value.category is E.CONFIGURATION
        adapter.close()
    finally:
        server.stop()


@pytest.mark.anyio
async def test_non_ascii_mailbox_async(make_smtp: MakeSMTP) -> None:
    """The async path sends SMTPUTF8 addresses too."""
    server = SMTPServer(smtputf8=True).start()
    try:
        adapter = make_smtp(server, security="none", username=None, password=None)
        await adapter.asend(outbound(to="zoë@example.com"))
        await adapter.aclose()
        assert server.handler.received[0].rcpt_tos == ["zoë@example.com"]
    finally:
        server.stop()
