"""TLS certificate verification: on by default for every transport, off only when asked.

A local HTTPS server and a local SMTP server present a self-signed certificate made here with
``cryptography``. By default every transport refuses it with anysend's typed errors and sends
nothing; ``verify=False`` works and emits an ``InsecureTransportWarning`` plus a log line,
every time it is configured; an ``ssl.SSLContext`` that trusts the certificate works quietly.
"""

from __future__ import annotations

import datetime
import inspect
import ipaddress
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import anysend
from anysend import (
    ConfigurationError,
    DeliveryError,
    ErrorCategory,
    InsecureTransportWarning,
    Message,
    OutboundMessage,
    ProviderError,
    PushContent,
    PushTarget,
    Recipient,
)
from anysend._transport import AiohttpTransport
from anysend.providers.apns import APNs
from anysend.providers.smtp import SMTP, SMTPSettings
from anysend.providers.webhook import Webhook
from anysend.testing import VirtualClock
from tests.smtp_server import SMTPServer

# -- a self-signed certificate and servers that present it -----------------------------------


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed certificate for 127.0.0.1 and localhost, with its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def trusting_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate (a private CA, say)."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)  # self-signed: its own issuer
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSigned(cert_path, key_path)


@dataclass
class HTTPSServer:
    """An HTTPS server on 127.0.0.1 that records each request and answers 200."""

    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def https_server(self_signed: SelfSigned) -> Iterator[HTTPSServer]:
    recorded: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            recorded.append(("POST", self.path))
            body = json.dumps({"id": "received-1"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("apns-id", "7F1C2E4A-0000-4000-8000-00000000A001")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = self_signed.server_context()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPSServer(url=f"https://127.0.0.1:{server.server_address[1]}", requests=recorded)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def webhook(server: HTTPSServer) -> Webhook:
    return Webhook(url=f"{server.url}/hooks/anysend")


MESSAGE = Message(text="Order 42 has shipped")
WHOEVER = Recipient(id="u-1")


def refused_for_the_certificate(result: anysend.SendResult) -> None:
    """The send failed with our typed error, naming the certificate, and raise_for_status raises."""
    assert not result.ok
    assert result.error is not None
    assert result.error.category is ErrorCategory.UNAVAILABLE
    assert "certificate" in result.error.message.lower()
    with pytest.raises(DeliveryError):
        result.raise_for_status()


def warned_once(records: list[logging.LogRecord], warnings: list[Any]) -> None:
    """One InsecureTransportWarning and one WARNING on the anysend logger."""
    insecure = [w for w in warnings if issubclass(w.category, InsecureTransportWarning)]
    assert len(insecure) == 1
    assert "verification is off" in str(insecure[0].message)
    assert [r for r in records if r.name == "anysend" and r.levelno == logging.WARNING]


# -- the defaults ------------------------------------------------------------------------------


def test_verification_is_on_by_default_everywhere() -> None:
    """Every switch defaults to verifying: clients, the aiohttp transport, SMTP."""
    for client_class in (anysend.Client, anysend.AsyncClient):
        assert inspect.signature(client_class).parameters["verify"].default is True
    assert SMTPSettings.model_fields["verify"].default is True
    context = AiohttpTransport()._ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


# -- HTTP: httpx (sync and async), aiohttp, HTTP/2 -------------------------------------------


def test_sync_client_refuses_a_self_signed_certificate(https_server: HTTPSServer) -> None:
    """Client (httpx) fails the send with ProviderError/DeliveryError; nothing reaches it."""
    with anysend.Client([webhook(https_server)], clock=VirtualClock()) as client:
        result = client.send(MESSAGE, to=WHOEVER)
    refused_for_the_certificate(result)
    assert https_server.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_async_client_refuses_a_self_signed_certificate(
    https_server: HTTPSServer, transport: str
) -> None:
    """AsyncClient refuses it on httpx and on aiohttp alike."""
    async with anysend.AsyncClient(
        [webhook(https_server)], clock=VirtualClock(), transport=transport
    ) as client:
        result = await client.send(MESSAGE, to=WHOEVER)
    refused_for_the_certificate(result)
    assert https_server.requests == []


def test_sync_client_verify_false_works_and_warns(
    https_server: HTTPSServer, caplog: pytest.LogCaptureFixture
) -> None:
    """verify=False: an InsecureTransportWarning and a log line when made; the send works."""
    with (
        caplog.at_level(logging.WARNING, logger="anysend"),
        pytest.warns(InsecureTransportWarning) as warnings,
    ):
        client = anysend.Client([webhook(https_server)], clock=VirtualClock(), verify=False)
    warned_once(caplog.records, list(warnings))
    with client:
        client.send(MESSAGE, to=WHOEVER).raise_for_status()
    assert https_server.requests == [("POST", "/hooks/anysend")]


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_async_client_verify_false_works_and_warns(
    https_server: HTTPSServer, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """verify=False on either async transport: warned once, then it sends."""
    with (
        caplog.at_level(logging.WARNING, logger="anysend"),
        pytest.warns(InsecureTransportWarning) as warnings,
    ):
        client = anysend.AsyncClient(
            [webhook(https_server)], clock=VirtualClock(), transport=transport, verify=False
        )
    warned_once(caplog.records, list(warnings))
    async with client:
        (await client.send(MESSAGE, to=WHOEVER)).raise_for_status()
    assert https_server.requests == [("POST", "/hooks/anysend")]


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_context_that_trusts_the_certificate_works_without_warning(
    https_server: HTTPSServer, self_signed: SelfSigned, transport: str
) -> None:
    """verify=<SSLContext> (a private CA) verifies against it: it works, and warns nothing."""
    async with anysend.AsyncClient(
        [webhook(https_server)],
        clock=VirtualClock(),
        transport=transport,
        verify=self_signed.trusting_context(),
    ) as client:
        (await client.send(MESSAGE, to=WHOEVER)).raise_for_status()
    with anysend.Client(
        [webhook(https_server)], clock=VirtualClock(), verify=self_signed.trusting_context()
    ) as client:
        client.send(MESSAGE, to=WHOEVER).raise_for_status()
    assert len(https_server.requests) == 2


def test_the_warning_comes_every_time_verification_is_turned_off() -> None:
    """Each client (and each context without checks) configured so warns again."""
    unchecked = ssl.create_default_context()
    unchecked.check_hostname = False
    unchecked.verify_mode = ssl.CERT_NONE
    with pytest.warns(InsecureTransportWarning) as warnings:
        [anysend.AsyncClient(verify=verify) for verify in (False, False, unchecked)]
    assert len(warnings) == 3
    assert all(w.filename == __file__ for w in warnings)  # points at the caller's line


def test_verify_with_a_given_http_client_is_refused() -> None:
    """verify= is for the connections anysend makes; with http_client it is a config error."""
    with httpx.Client() as given, pytest.raises(ConfigurationError, match="http_client"):
        anysend.Client(http_client=given, verify=False)


@pytest.mark.anyio
async def test_apns_http2_pool_verifies_and_can_be_told_not_to(
    https_server: HTTPSServer,
) -> None:
    """APNs' own HTTP/2 pool refuses the certificate by default; verify=False reaches it."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    apns = APNs(team_id="TEAM123456", key_id="KEY1234567", private_key=pem, topic="com.example")
    phone = Recipient(push=(PushTarget(kind="apns", token="a" * 64),))
    message = Message(push=PushContent(title="Order 42", body="It has shipped"))
    base_urls = {"apns": https_server.url}
    async with anysend.AsyncClient([apns], clock=VirtualClock(), base_urls=base_urls) as client:
        result = await client.send(message, to=phone)
    refused_for_the_certificate(result)
    assert https_server.requests == []
    with pytest.warns(InsecureTransportWarning):
        client = anysend.AsyncClient(
            [apns], clock=VirtualClock(), base_urls=base_urls, verify=False
        )
    async with client:
        (await client.send(message, to=phone)).raise_for_status()
    assert [method for method, _ in https_server.requests] == ["POST"]


# -- SMTP: STARTTLS and implicit TLS -----------------------------------------------------------


def outbound() -> OutboundMessage:
    return OutboundMessage(
        id="msg-1",
        channel=anysend.Channel.EMAIL,
        to="ann@example.com",
        subject="Order 42",
        text="It has shipped",
    )


@pytest.fixture(params=["starttls", "tls"])
def smtp_tls_server(request: pytest.FixtureRequest, self_signed: SelfSigned) -> Iterator[Any]:
    context = self_signed.server_context()
    if request.param == "starttls":
        server = SMTPServer(tls_context=context)
    else:
        server = SMTPServer(ssl_context=context)
    server.start()
    yield request.param, server
    server.stop()


def smtp(server: SMTPServer, security: str, **settings: Any) -> SMTP:
    return SMTP(
        host=server.host,
        port=server.port,
        security=security,
        sender="shop@example.com",
        timeout=5.0,
        **settings,
    )


def test_smtp_refuses_a_self_signed_certificate(smtp_tls_server: Any) -> None:
    """STARTTLS and implicit TLS: ProviderError (configuration, not retried); nothing sent."""
    security, server = smtp_tls_server
    adapter = smtp(server, security)
    try:
        with pytest.raises(ProviderError) as info:
            adapter.send(outbound())
    finally:
        adapter.close()
    assert info.value.category is ErrorCategory.CONFIGURATION
    assert not info.value.retryable
    assert "certificate" in info.value.message
    assert server.handler.received == []


@pytest.mark.anyio
async def test_smtp_refuses_a_self_signed_certificate_async(smtp_tls_server: Any) -> None:
    """The aiosmtplib path refuses it the same way."""
    security, server = smtp_tls_server
    adapter = smtp(server, security)
    try:
        with pytest.raises(ProviderError) as info:
            await adapter.asend(outbound())
    finally:
        await adapter.aclose()
    assert info.value.category is ErrorCategory.CONFIGURATION
    assert server.handler.received == []


def test_smtp_verify_false_works_and_warns(
    smtp_tls_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """verify=False: warned (warning class and log line) when built; then it sends."""
    security, server = smtp_tls_server
    with (
        caplog.at_level(logging.WARNING, logger="anysend"),
        pytest.warns(InsecureTransportWarning) as warnings,
    ):
        adapter = smtp(server, security, verify=False)
    warned_once(caplog.records, list(warnings))
    assert warnings[0].filename == __file__
    try:
        adapter.send(outbound())
    finally:
        adapter.close()
    assert len(server.handler.received) == 1


def test_smtp_trusts_a_given_ca_file(smtp_tls_server: Any, self_signed: SelfSigned) -> None:
    """ca_file pointing at the certificate verifies it: it works, and warns nothing."""
    security, server = smtp_tls_server
    adapter = smtp(server, security, ca_file=str(self_signed.cert))
    try:
        adapter.send(outbound())
    finally:
        adapter.close()
    assert len(server.handler.received) == 1
