"""The ASGI webhook receiver: routing, the URL and body handed on, answers, limits, lifespan."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable, MutableMapping
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import pytest

from anysend import (
    DeliveryEvent,
    DeliveryStatus,
    InboundMessage,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.asgi import WebhookApp
from anysend.providers import Capabilities, Provider, WebhookResponse
from anysend.providers.twilio import TWIML_EMPTY, Twilio
from anysend.providers.whatsapp import WhatsApp

pytestmark = pytest.mark.anyio

Events = list[DeliveryEvent | InboundMessage]
Message = dict[str, Any]

BODY = b"MessageSid=SM1&MessageStatus=delivered&secret-marker=7f3c1e"
EVENT = DeliveryEvent(provider="hook", provider_message_id="SM1", status=DeliveryStatus.DELIVERED)
TWILIO_TOKEN = "twilio-asgi-test-token-4e8a"
VERIFY_TOKEN = "asgi-verify-token-91b2"


class Hook(Provider):
    """A provider with the default answers: 200 and nothing else, no handshake."""

    name: ClassVar[str] = "hook"
    capabilities: ClassVar[Capabilities] = Capabilities(webhooks=True)


class GetHook(Hook):
    """A provider that may call back with GET."""

    name: ClassVar[str] = "gethook"
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})


class ShakeHook(Hook):
    """A provider with a GET handshake."""

    name: ClassVar[str] = "shake"

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        return WebhookResponse(body=b"challenge")


class BrokenAnswer(Hook):
    """A provider whose answer fails."""

    name: ClassVar[str] = "broken"

    def webhook_response(self, request: WebhookRequest, events: Events) -> WebhookResponse:
        raise RuntimeError("answer failed")


class Recorder:
    """What both fake ``webhooks`` objects share: calls, scripted outcomes, threads."""

    def __init__(
        self,
        events: Events | None = None,
        error: Exception | None = None,
        answer: WebhookResponse | None = None,
    ) -> None:
        self.events: Events = [EVENT] if events is None else events
        self.error = error
        self.answer = answer
        self.calls: list[tuple[str, str, WebhookRequest]] = []
        self.threads: list[int] = []

    def record(self, kind: str, provider: str, request: WebhookRequest) -> None:
        self.calls.append((kind, provider, request))
        self.threads.append(threading.get_ident())
        if self.error is not None:
            raise self.error

    @property
    def request(self) -> WebhookRequest:
        """The one request handed on."""
        assert len(self.calls) == 1
        return self.calls[0][2]


class AsyncWebhooks(Recorder):
    """Stands in for ``AsyncClient.webhooks``."""

    async def handle(self, provider: str, request: WebhookRequest) -> Events:
        self.record("handle", provider, request)
        return self.events

    async def handshake(self, provider: str, request: WebhookRequest) -> WebhookResponse | None:
        self.record("handshake", provider, request)
        return self.answer


class SyncWebhooks(Recorder):
    """Stands in for ``Client.webhooks`` (blocking)."""

    def handle(self, provider: str, request: WebhookRequest) -> Events:
        self.record("handle", provider, request)
        return self.events

    def handshake(self, provider: str, request: WebhookRequest) -> WebhookResponse | None:
        self.record("handshake", provider, request)
        return self.answer


Webhooks = AsyncWebhooks | SyncWebhooks
WebhooksType = type[AsyncWebhooks] | type[SyncWebhooks]


class FakeClient:
    """Stands in for a client: its providers and its webhooks."""

    def __init__(self, webhooks: Webhooks, providers: Iterable[Provider] = ()) -> None:
        adapters = list(providers) or [Hook(), GetHook(), ShakeHook(), BrokenAnswer()]
        self.providers: dict[str, Provider] = {p.name: p for p in adapters}
        self.webhooks = webhooks


class AsyncClosing(FakeClient):
    """A fake async client that records being closed."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True


class SyncClosing(FakeClient):
    """A fake sync client that records being closed, and where."""

    closed_in: int | None = None

    def close(self) -> None:
        self.closed_in = threading.get_ident()


class FailingClose(FakeClient):
    """A fake client whose close fails."""

    async def aclose(self) -> None:
        raise OSError("socket already gone")


def http(app: WebhookApp, base_url: str = "http://testserver", **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client calling ``app`` in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **kwargs), base_url=base_url)


def scope(**fields: Any) -> dict[str, Any]:
    """An HTTP scope as a server builds it, with ``fields`` replaced."""
    base: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/hook",
        "raw_path": b"/hook",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "server": ("example.com", 80),
        "client": ("203.0.113.9", 50000),
    }
    base.update(fields)
    return base


async def call(app: WebhookApp, scope_: dict[str, Any], messages: list[Message]) -> list[Message]:
    """Run ``app`` on one connection; return what it sent."""
    incoming = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope_, receive, send)
    return sent


def body(data: bytes = b"") -> list[Message]:
    """The receive messages of a body sent in one piece."""
    return [{"type": "http.request", "body": data, "more_body": False}]


def answer(sent: list[Message]) -> tuple[int, dict[bytes, bytes], bytes]:
    """Status, headers and body of a response the app sent."""
    start, content = sent
    assert start["type"] == "http.response.start"
    assert content["type"] == "http.response.body"
    return start["status"], dict(start["headers"]), content["body"]


# -- POST: handed on, answered ------------------------------------------------------------------


@pytest.mark.parametrize("webhooks_type", [AsyncWebhooks, SyncWebhooks])
async def test_post_hands_the_exact_request_on(webhooks_type: WebhooksType) -> None:
    """URL with query and exact body bytes reach webhooks.handle; the answer is a plain 200."""
    webhooks = webhooks_type()
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.post(
            "/hook?anysend_message_id=m%2F1&x=a+b",
            content=BODY,
            headers={"X-Twilio-Signature": "c2lnbmF0dXJl", "Content-Type": "text/weird"},
        )
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "0"
    kind, provider, request = webhooks.calls[0]
    assert (kind, provider) == ("handle", "hook")
    assert request.method == "POST"
    assert request.url == "http://testserver/hook?anysend_message_id=m%2F1&x=a+b"
    assert request.body == BODY
    assert request.header("x-twilio-signature") == "c2lnbmF0dXJl"
    assert request.header("content-type") == "text/weird"


async def test_a_sync_client_runs_in_a_worker_thread() -> None:
    """A blocking webhooks.handle never runs on the event loop's thread; async does."""
    sync, async_ = SyncWebhooks(), AsyncWebhooks()
    for webhooks in (sync, async_):
        async with http(WebhookApp(FakeClient(webhooks))) as client:
            assert (await client.post("/hook", content=BODY)).status_code == 200
    loop_thread = threading.get_ident()
    assert sync.threads[0] != loop_thread
    assert async_.threads[0] == loop_thread


async def test_the_adapter_chooses_the_answer() -> None:
    """webhook_response of the provider's adapter is what the provider gets back."""

    class Answering(Hook):
        seen: ClassVar[list[tuple[WebhookRequest, Events]]] = []

        def webhook_response(self, request: WebhookRequest, events: Events) -> WebhookResponse:
            self.seen.append((request, events))
            return WebhookResponse(status=202, body=b"<ok/>", content_type="application/xml")

    webhooks = AsyncWebhooks()
    async with http(WebhookApp(FakeClient(webhooks, [Answering()]))) as client:
        response = await client.post("/hook", content=BODY)
    assert response.status_code == 202
    assert response.content == b"<ok/>"
    assert response.headers["content-type"] == "application/xml"
    assert Answering.seen == [(webhooks.request, [EVENT])]


# -- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/nope", "/hook/", "/hook/extra", "/hooks/hook", "//hook", "/HOOK"]
)
async def test_unknown_paths_are_not_found(path: str) -> None:
    """Only /{provider} of a configured provider is served; nothing is handed on otherwise."""
    webhooks = AsyncWebhooks()
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.post(path, content=BODY)
    assert response.status_code == 404
    assert response.content == b"not found"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert webhooks.calls == []


@pytest.mark.parametrize("prefix", ["/hooks", "hooks", "/hooks/", "hooks/"])
async def test_prefix(prefix: str) -> None:
    """The prefix comes before the provider's name, however it is written."""
    webhooks = AsyncWebhooks()
    app = WebhookApp(FakeClient(webhooks), prefix=prefix)
    assert app.prefix == "/hooks"
    async with http(app) as client:
        assert (await client.post("/hook", content=BODY)).status_code == 404
        assert (await client.post("/hooks", content=BODY)).status_code == 404
        assert (await client.post("/hooksx/hook", content=BODY)).status_code == 404
        assert (await client.post("/hooks/hook?a=1", content=BODY)).status_code == 200
    assert webhooks.request.url == "http://testserver/hooks/hook?a=1"


async def test_root_path_of_a_mount_is_in_the_url() -> None:
    """Mounted under /webhooks (path holding root_path, as Starlette does), the URL keeps it."""
    webhooks = AsyncWebhooks()
    app = WebhookApp(FakeClient(webhooks), prefix="/v1")
    async with http(app, "https://app.example.com", root_path="/webhooks") as client:
        response = await client.post("/webhooks/v1/hook?q=1", content=BODY)
    assert response.status_code == 200
    assert webhooks.request.url == "https://app.example.com/webhooks/v1/hook?q=1"


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        # a proxy stripped /webhooks and says so in root_path: path lacks it
        (
            {"root_path": "/webhooks", "path": "/hook", "raw_path": b"/hook"},
            "http://example.com/webhooks/hook",
        ),
        # both hold it (Starlette's Mount)
        (
            {"root_path": "/webhooks/", "path": "/webhooks/hook", "raw_path": b"/webhooks/hook"},
            "http://example.com/webhooks/hook",
        ),
        # no raw_path: the decoded path is encoded again
        ({"root_path": "/web hooks", "path": "/hook", "raw_path": None}, None),
        ({"root_path": "/web hooks", "path": "/hook"}, "http://example.com/web%20hooks/hook"),
        # raw_path keeps the provider's own encoding; a query in it is dropped
        (
            {"path": "/hook", "raw_path": b"/%68ook?stray=1", "query_string": b"a=%41"},
            "http://example.com/%68ook?a=%41",
        ),
        (
            {"root_path": "/a b", "path": "/a b/hook", "raw_path": b"/a%20b/hook"},
            "http://example.com/a%20b/hook",
        ),
    ],
)
async def test_url_path_from_the_scope(fields: dict[str, Any], url: str | None) -> None:
    """root_path, path and raw_path give the URL the provider called, in either convention."""
    webhooks = AsyncWebhooks()
    status, _, _ = answer(await call(WebhookApp(FakeClient(webhooks)), scope(**fields), body()))
    assert status == 200
    expected = url or "http://example.com/web%20hooks/hook"
    assert webhooks.request.url == expected


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"headers": [], "server": ("10.0.0.7", 8080)}, "http://10.0.0.7:8080/hook"),
        ({"headers": [], "server": ("10.0.0.7", 80)}, "http://10.0.0.7/hook"),
        ({"headers": [], "scheme": "https", "server": ("::1", 443)}, "https://[::1]/hook"),
        ({"headers": [], "server": ("example.org", None)}, "http://example.org/hook"),
        ({"headers": [], "server": None}, "http://localhost/hook"),
        ({"headers": [(b"host", b"example.com:8443")], "scheme": "https"}, None),
    ],
)
async def test_host_without_a_host_header(fields: dict[str, Any], url: str | None) -> None:
    """The Host header names the host; without one, the server's address does."""
    webhooks = AsyncWebhooks()
    await call(WebhookApp(FakeClient(webhooks)), scope(**fields), body())
    assert webhooks.request.url == (url or "https://example.com:8443/hook")


async def test_repeated_headers_are_joined() -> None:
    """A header sent twice reaches the adapter as one comma-separated value."""
    webhooks = AsyncWebhooks()
    headers = [(b"host", b"example.com"), (b"X-Tag", b"a"), (b"x-tag", b"b")]
    await call(WebhookApp(FakeClient(webhooks)), scope(headers=headers), body())
    assert webhooks.request.headers["x-tag"] == "a, b"


# -- forwarded headers ----------------------------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com"}


async def test_forwarded_headers_are_ignored_by_default() -> None:
    """Anyone can send X-Forwarded-*: without trust_forwarded they change nothing."""
    webhooks = AsyncWebhooks()
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        await client.post("/hook?a=1", content=BODY, headers=FORWARDED)
    assert webhooks.request.url == "http://testserver/hook?a=1"


@pytest.mark.parametrize(
    ("headers", "url"),
    [
        (FORWARDED, "https://public.example.com/hook?a=1"),
        (
            {"X-Forwarded-Proto": "HTTPS, http", "X-Forwarded-Host": "a.example, b.example"},
            "https://a.example/hook?a=1",
        ),
        ({"X-Forwarded-Proto": "gopher"}, "http://testserver/hook?a=1"),
        ({"X-Forwarded-Host": ""}, "http://testserver/hook?a=1"),
        ({}, "http://testserver/hook?a=1"),
    ],
)
async def test_trusted_forwarded_headers(headers: dict[str, str], url: str) -> None:
    """With trust_forwarded, the first forwarded scheme (http/https only) and host win."""
    webhooks = AsyncWebhooks()
    app = WebhookApp(FakeClient(webhooks), trust_forwarded=True)
    async with http(app) as client:
        await client.post("/hook?a=1", content=BODY, headers=headers)
    assert webhooks.request.url == url


# -- GET: handshakes and GET callbacks ------------------------------------------------------------


@pytest.mark.parametrize("webhooks_type", [AsyncWebhooks, SyncWebhooks])
async def test_get_answers_the_handshake(webhooks_type: WebhooksType) -> None:
    """GET goes to webhooks.handshake, whose answer is sent as it is."""
    webhooks = webhooks_type(answer=WebhookResponse(status=200, body=b"1158201444"))
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.get("/shake?hub.mode=subscribe&hub.challenge=1158201444")
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    kind, provider, request = webhooks.calls[0]
    assert (kind, provider, request.method) == ("handshake", "shake", "GET")
    assert request.url == "http://testserver/shake?hub.mode=subscribe&hub.challenge=1158201444"
    assert request.body == b""


async def test_get_without_a_handshake_is_not_allowed() -> None:
    """No handshake and no GET callbacks: 405, Allow: POST, and nothing handled."""
    webhooks = AsyncWebhooks(answer=None)
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.get("/hook")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.content == b"method not allowed"
    assert [kind for kind, _, _ in webhooks.calls] == ["handshake"]


@pytest.mark.parametrize("webhooks_type", [AsyncWebhooks, SyncWebhooks])
async def test_get_callbacks_are_handled(webhooks_type: WebhooksType) -> None:
    """A provider that calls back with GET gets its GET handled (after no handshake)."""
    webhooks = webhooks_type(answer=None)
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.get("/gethook?MsgId=1&status=403")
    assert response.status_code == 200
    assert [kind for kind, _, _ in webhooks.calls] == ["handshake", "handle"]
    request = webhooks.calls[1][2]
    assert (request.method, request.url) == ("GET", "http://testserver/gethook?MsgId=1&status=403")


@pytest.mark.parametrize(
    ("path", "allow"),
    [("/hook", "POST"), ("/gethook", "GET, POST"), ("/shake", "GET, POST")],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
async def test_other_methods_are_not_allowed(method: str, path: str, allow: str) -> None:
    """Other methods get 405 with the methods the provider's URL takes."""
    webhooks = AsyncWebhooks()
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.request(method, path, content=BODY)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert webhooks.calls == []


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("webhooks_type", [AsyncWebhooks, SyncWebhooks])
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_unverified_is_401_and_logged_without_the_body(
    webhooks_type: WebhooksType, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback or handshake that fails verification: 401, a WARNING with the reason."""
    error = WebhookVerificationError("signature does not match")
    webhooks = webhooks_type(error=error)
    caplog.set_level(logging.DEBUG, logger="anysend")
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.request(method, "/shake?token=abc", content=BODY)
    assert response.status_code == 401
    assert response.content == b"unauthorized"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    [record] = caplog.records
    assert (record.name, record.levelno) == ("anysend", logging.WARNING)
    assert "shake" in record.getMessage()
    assert "signature does not match" in record.getMessage()
    assert "7f3c1e" not in caplog.text
    assert record.exc_info is None


@pytest.mark.parametrize("webhooks_type", [AsyncWebhooks, SyncWebhooks])
async def test_unparseable_is_400(
    webhooks_type: WebhooksType, caplog: pytest.LogCaptureFixture
) -> None:
    """A verified callback that cannot be parsed: 400 and a WARNING."""
    webhooks = webhooks_type(error=WebhookParseError("hook callback has no MessageSid"))
    caplog.set_level(logging.DEBUG, logger="anysend")
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.post("/hook", content=BODY)
    assert response.status_code == 400
    assert response.content == b"bad request"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "hook" in record.getMessage()
    assert "no MessageSid" in record.getMessage()
    assert "7f3c1e" not in caplog.text


@pytest.mark.parametrize("webhooks_type", [AsyncWebhooks, SyncWebhooks])
async def test_unexpected_errors_are_500_without_details(
    webhooks_type: WebhooksType, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything else (a store down): 500 with a bare body, logged with the traceback."""
    webhooks = webhooks_type(error=RuntimeError("database is locked at /srv/db"))
    caplog.set_level(logging.DEBUG, logger="anysend")
    async with http(WebhookApp(FakeClient(webhooks))) as client:
        response = await client.post("/hook", content=BODY)
    assert response.status_code == 500
    assert response.content == b"internal server error"
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "hook" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_a_failing_answer_is_500(caplog: pytest.LogCaptureFixture) -> None:
    """An adapter whose webhook_response fails gives 500 as well."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    async with http(WebhookApp(FakeClient(AsyncWebhooks()))) as client:
        response = await client.post("/broken", content=BODY)
    assert response.status_code == 500
    assert response.content == b"internal server error"
    assert "answer failed" not in response.text
    assert caplog.records[0].levelno == logging.ERROR


async def test_errors_outside_a_provider_are_500(caplog: pytest.LogCaptureFixture) -> None:
    """A client that fails before any provider is known, or a malformed answer: 500 too."""

    class NoProviders:
        webhooks = AsyncWebhooks()

        @property
        def providers(self) -> dict[str, Provider]:
            raise RuntimeError("client closed")

    caplog.set_level(logging.DEBUG, logger="anysend")
    bad_answer = AsyncWebhooks(answer="not a WebhookResponse")  # type: ignore[arg-type]
    async with http(WebhookApp(NoProviders())) as client:
        closed = await client.post("/hook", content=BODY)
    async with http(WebhookApp(FakeClient(bad_answer))) as client:
        malformed = await client.get("/shake")
    for response in (closed, malformed):
        assert response.status_code == 500
        assert response.content == b"internal server error"
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]
    assert all(r.exc_info is not None for r in caplog.records)


# -- body size ------------------------------------------------------------------------------------


async def test_body_up_to_max_body_is_accepted() -> None:
    """A body of exactly max_body bytes is handed on whole."""
    webhooks = AsyncWebhooks()
    async with http(WebhookApp(FakeClient(webhooks), max_body=len(BODY))) as client:
        response = await client.post("/hook", content=BODY)
    assert response.status_code == 200
    assert webhooks.request.body == BODY


async def test_declared_length_over_max_body_is_413(caplog: pytest.LogCaptureFixture) -> None:
    """A Content-Length over the limit is refused before anything is read or handed on."""
    webhooks = AsyncWebhooks()
    caplog.set_level(logging.DEBUG, logger="anysend")
    async with http(WebhookApp(FakeClient(webhooks), max_body=len(BODY) - 1)) as client:
        response = await client.post("/hook", content=BODY)
    assert response.status_code == 413
    assert response.content == b"payload too large"
    assert webhooks.calls == []
    assert caplog.records[0].levelno == logging.WARNING
    assert "hook" in caplog.records[0].getMessage()


async def test_streamed_body_over_max_body_is_413() -> None:
    """Without Content-Length, reading stops at the first chunk past the limit."""
    webhooks = AsyncWebhooks()
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(100):
            pulled.append(index)
            yield b"x" * 10

    app = WebhookApp(FakeClient(webhooks), max_body=25)
    async with http(app) as client:
        response = await client.post("/hook", content=chunks())
    assert response.status_code == 413
    assert webhooks.calls == []
    assert len(pulled) < 100


async def test_chunks_are_joined_exactly() -> None:
    """A body sent in several messages reaches the adapter byte for byte."""
    webhooks = AsyncWebhooks()
    messages: list[Message] = [
        {"type": "http.request", "body": b"a=1", "more_body": True},
        {"type": "http.request", "more_body": True},
        {"type": "http.request", "body": b"&b=\xff", "more_body": False},
    ]
    status, _, _ = answer(await call(WebhookApp(FakeClient(webhooks)), scope(), messages))
    assert status == 200
    assert webhooks.request.body == b"a=1&b=\xff"


async def test_a_disconnect_gets_no_answer() -> None:
    """The caller going away mid-body: nothing is handed on and nothing sent."""
    webhooks = AsyncWebhooks()
    messages: list[Message] = [
        {"type": "http.request", "body": b"a=1", "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert await call(WebhookApp(FakeClient(webhooks)), scope(), messages) == []
    assert webhooks.calls == []


def test_max_body_must_not_be_negative() -> None:
    """A negative limit is a mistake."""
    with pytest.raises(ValueError, match="max_body"):
        WebhookApp(FakeClient(AsyncWebhooks()), max_body=-1)


# -- lifespan and other scopes --------------------------------------------------------------------

LIFESPAN: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
STARTUP_SHUTDOWN: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]


async def test_lifespan_leaves_the_client_open_by_default() -> None:
    """Startup and shutdown complete; the client belongs to whoever made it."""
    client = AsyncClosing(AsyncWebhooks())
    sent = await call(WebhookApp(client), LIFESPAN, STARTUP_SHUTDOWN)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert client.closed is False


async def test_lifespan_closes_an_async_client_when_asked() -> None:
    """close_client_on_shutdown awaits aclose()."""
    client = AsyncClosing(AsyncWebhooks())
    app = WebhookApp(client, close_client_on_shutdown=True)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.unknown"}, *STARTUP_SHUTDOWN[1:]]
    sent = await call(app, LIFESPAN, messages)
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
    assert client.closed is True


async def test_lifespan_closes_a_sync_client_in_a_thread() -> None:
    """A sync client's close() runs in a worker thread."""
    client = SyncClosing(SyncWebhooks())
    sent = await call(WebhookApp(client, close_client_on_shutdown=True), LIFESPAN, STARTUP_SHUTDOWN)
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
    assert client.closed_in is not None
    assert client.closed_in != threading.get_ident()


async def test_lifespan_with_nothing_to_close() -> None:
    """A client without close methods is left as it is."""
    app = WebhookApp(FakeClient(AsyncWebhooks()), close_client_on_shutdown=True)
    sent = await call(app, LIFESPAN, STARTUP_SHUTDOWN)
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}


async def test_lifespan_reports_a_failed_close(caplog: pytest.LogCaptureFixture) -> None:
    """A close that fails is reported to the server as shutdown.failed and logged."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    app = WebhookApp(FailingClose(AsyncWebhooks()), close_client_on_shutdown=True)
    sent = await call(app, LIFESPAN, STARTUP_SHUTDOWN)
    assert sent[-1] == {
        "type": "lifespan.shutdown.failed",
        "message": "closing the anysend client failed: OSError",
    }
    assert caplog.records[0].levelno == logging.ERROR


async def test_websocket_is_refused() -> None:
    """A WebSocket connection is closed without being accepted."""
    sent = await call(
        WebhookApp(FakeClient(AsyncWebhooks())),
        {"type": "websocket", "path": "/hook"},
        [{"type": "websocket.connect"}],
    )
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_unknown_scope_types_raise() -> None:
    """The ASGI spec: an application raises on a scope type it does not know."""
    with pytest.raises(ValueError, match="telepathy"):
        await call(WebhookApp(FakeClient(AsyncWebhooks())), {"type": "telepathy"}, [])


def test_repr() -> None:
    """The repr shows the routing settings, not the client."""
    app = WebhookApp(FakeClient(AsyncWebhooks()), prefix="hooks", max_body=10)
    assert repr(app) == "WebhookApp(prefix='/hooks', max_body=10)"


def test_import_is_light() -> None:
    """Importing anysend.asgi loads no web framework, HTTP or model library."""
    code = (
        "import sys, anysend.asgi;"
        "heavy = [m for m in ('starlette', 'fastapi', 'httpx', 'pydantic', 'anyio') "
        "if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


# -- real adapters --------------------------------------------------------------------------------


class Delegating(AsyncWebhooks):
    """webhooks that verify and parse with the adapter itself (no store)."""

    def __init__(self, adapters: dict[str, Provider]) -> None:
        super().__init__()
        self.adapters = adapters

    async def handle(self, provider: str, request: WebhookRequest) -> Events:
        self.record("handle", provider, request)
        return self.adapters[provider].parse_webhook(request)

    async def handshake(self, provider: str, request: WebhookRequest) -> WebhookResponse | None:
        self.record("handshake", provider, request)
        return self.adapters[provider].handshake(request)


def real_client() -> FakeClient:
    """A fake client holding real Twilio and WhatsApp adapters."""
    adapters: list[Provider] = [
        Twilio(account_sid="AC" + "0" * 32, auth_token=TWILIO_TOKEN, sender="+15005550006"),
        WhatsApp(
            access_token="EAAG-asgi-token",
            phone_number_id="100000000000002",
            app_secret="asgi-app-secret",
            verify_token=VERIFY_TOKEN,
        ),
    ]
    client = FakeClient(AsyncWebhooks(), adapters)
    client.webhooks = Delegating(client.providers)
    return client


def twilio_signature(url: str, form: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature, computed here from its documented algorithm."""
    data = url + "".join(key + form[key] for key in sorted(form))
    digest = hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def test_twilio_inbound_sms_gets_empty_twiml() -> None:
    """A signed inbound SMS through the app: parsed, answered with empty TwiML as text/xml."""
    form = {
        "MessageSid": "SM" + "1" * 32,
        "From": "+48600700800",
        "To": "+15005550006",
        "Body": "STOP please",
        "NumMedia": "0",
    }
    url = "https://app.example.com/webhooks/twilio?tenant=7"
    headers = {
        "X-Twilio-Signature": twilio_signature(url, form),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    app = WebhookApp(real_client(), prefix="/webhooks")
    async with http(app, "https://app.example.com") as client:
        response = await client.post(
            "/webhooks/twilio?tenant=7", content=urlencode(form), headers=headers
        )
        forged = await client.post(
            "/webhooks/twilio?tenant=8", content=urlencode(form), headers=headers
        )
    assert response.status_code == 200
    assert response.content == TWIML_EMPTY
    assert response.content == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert response.headers["content-type"] == "text/xml"
    assert forged.status_code == 401
    assert forged.content == b"unauthorized"


async def test_whatsapp_handshake_echoes_the_challenge() -> None:
    """Meta's GET handshake: the challenge back as text/plain, or 401 for a wrong token."""
    app = WebhookApp(real_client())
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8675309"}
    async with http(app, "https://app.example.com") as client:
        good = await client.get("/whatsapp", params=query)
        bad = await client.get("/whatsapp", params={**query, "hub.verify_token": "guess"})
        twilio_get = await client.get("/twilio?MessageSid=SM1&MessageStatus=sent")
    assert good.status_code == 200
    assert good.content == b"8675309"
    assert good.headers["content-type"] == "text/plain; charset=utf-8"
    assert bad.status_code == 401
    # Twilio makes no handshake but may call back with GET: handled (and refused unsigned).
    assert twilio_get.status_code == 401
