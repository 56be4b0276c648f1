"""The WSGI webhook receiver: routing, the URL and body handed on, answers, limits, real servers."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.validate import validator

import httpx
import pytest

import anysend
from anysend import (
    ConfigurationError,
    DeliveryEvent,
    DeliveryStatus,
    InboundMessage,
    Recipient,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import Capabilities, Provider, WebhookResponse
from anysend.providers._meta import sign as meta_sign
from anysend.providers.twilio import TWIML_EMPTY, Twilio, sign
from anysend.providers.whatsapp import WhatsApp
from anysend.testing import MemoryProvider
from anysend.wsgi import WebhookApp

Events = list[DeliveryEvent | InboundMessage]
Answer = tuple[int, dict[str, str], bytes]

BODY = b"MessageSid=SM1&MessageStatus=delivered&secret-marker=7f3c1e"
EVENT = DeliveryEvent(provider="hook", provider_message_id="SM1", status=DeliveryStatus.DELIVERED)
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-wsgi-test-token-6d1f"
APP_SECRET = "wsgi-app-secret-3a9e"
VERIFY_TOKEN = "wsgi-verify-token-77c4"
SENDER = "+15005550006"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


class Webhooks:
    """Stands in for ``Client.webhooks``: records calls, answers what it is told."""

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

    def record(self, kind: str, provider: str, request: WebhookRequest) -> None:
        self.calls.append((kind, provider, request))
        if self.error is not None:
            raise self.error

    def handle(self, provider: str, request: WebhookRequest) -> Events:
        self.record("handle", provider, request)
        return self.events

    def handshake(self, provider: str, request: WebhookRequest) -> WebhookResponse | None:
        self.record("handshake", provider, request)
        return self.answer

    @property
    def request(self) -> WebhookRequest:
        """The one request handed on."""
        assert len(self.calls) == 1
        return self.calls[0][2]


class FakeClient:
    """Stands in for a sync client: its providers and its webhooks."""

    def __init__(self, webhooks: Webhooks, providers: Iterable[Provider] = ()) -> None:
        adapters = list(providers) or [Hook(), GetHook(), ShakeHook(), BrokenAnswer()]
        self.providers: dict[str, Provider] = {p.name: p for p in adapters}
        self.webhooks = webhooks


class Stream(io.BytesIO):
    """A ``wsgi.input`` that records how much was asked of it."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def environ(body: bytes = b"", /, **fields: Any) -> dict[str, Any]:
    """A WSGI environ as a server builds it for ``POST /hook``, with ``fields`` replaced."""
    base: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/hook",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "example.com",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": Stream(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def call(app: WebhookApp, environ_: dict[str, Any], *, validate: bool = True) -> Answer:
    """Run ``app`` on one request, checked by wsgiref's PEP 3333 validator unless told not to."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    checked = validator(app) if validate else app
    result = checked(dict(environ_), start_response)  # the validator wraps wsgi.input in place
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    [(status, headers)] = started
    return int(status.split()[0]), {k.lower(): v for k, v in headers}, body


class QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without its access log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def served(app: Callable[..., Iterable[bytes]]) -> Iterator[str]:
    """Serve ``app`` with wsgiref on a free 127.0.0.1 port in a thread; yield its base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        assert not thread.is_alive()


@contextmanager
def http(app: Callable[..., Iterable[bytes]]) -> Iterator[httpx.Client]:
    """An httpx client talking to ``app`` through a real wsgiref server."""
    with served(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


# -- POST: handed on, answered ------------------------------------------------------------------


def test_post_through_a_real_server_hands_the_exact_request_on() -> None:
    """Over HTTP: the URL with its query, the exact body and the headers reach handle()."""
    webhooks = Webhooks()
    with http(WebhookApp(FakeClient(webhooks))) as client:
        response = client.post(
            "/hook?anysend_message_id=m%2F1&x=a+b",
            content=BODY,
            headers={"X-Twilio-Signature": "c2lnbmF0dXJl", "Content-Type": "text/weird"},
        )
        port = client.base_url.port
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "0"
    kind, provider, request = webhooks.calls[0]
    assert (kind, provider) == ("handle", "hook")
    assert request.method == "POST"
    assert request.url == f"http://127.0.0.1:{port}/hook?anysend_message_id=m%2F1&x=a+b"
    assert request.body == BODY
    assert request.header("x-twilio-signature") == "c2lnbmF0dXJl"
    assert request.header("content-type") == "text/weird"
    assert request.header("content-length") == str(len(BODY))


def test_direct_call_hands_the_request_on() -> None:
    """Called with an environ: the same request, answered by a valid PEP 3333 response."""
    webhooks = Webhooks()
    status, headers, body = call(
        WebhookApp(FakeClient(webhooks)),
        environ(BODY, QUERY_STRING="a=1", HTTP_X_TWILIO_SIGNATURE="sig"),
    )
    assert (status, body) == (200, b"")
    assert headers == {"content-type": "text/plain; charset=utf-8", "content-length": "0"}
    assert webhooks.request.url == "http://example.com/hook?a=1"
    assert webhooks.request.body == BODY
    assert webhooks.request.headers["x-twilio-signature"] == "sig"


def test_the_adapter_chooses_the_answer() -> None:
    """webhook_response of the provider's adapter is what the provider gets back."""

    class Answering(Hook):
        seen: ClassVar[list[tuple[WebhookRequest, Events]]] = []

        def webhook_response(self, request: WebhookRequest, events: Events) -> WebhookResponse:
            self.seen.append((request, events))
            return WebhookResponse(status=202, body=b"<ok/>", content_type="application/xml")

    webhooks = Webhooks()
    with http(WebhookApp(FakeClient(webhooks, [Answering()]))) as client:
        response = client.post("/hook", content=BODY)
    assert response.status_code == 202
    assert response.content == b"<ok/>"
    assert response.headers["content-type"] == "application/xml"
    assert Answering.seen == [(webhooks.request, [EVENT])]


def test_a_status_without_a_reason_phrase() -> None:
    """WSGI needs a status line: a code Python has no phrase for is still answered."""

    class Odd(Hook):
        def webhook_response(self, request: WebhookRequest, events: Events) -> WebhookResponse:
            return WebhookResponse(status=299, body=b"odd")

    started: list[str] = []
    app = WebhookApp(FakeClient(Webhooks(), [Odd()]))
    body = app(environ(BODY), lambda status, headers: started.append(status))
    assert (started, list(body)) == (["299 Unknown"], [b"odd"])


# -- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "", "/nope", "/hook/", "/hook/extra", "/hooks/hook", "//hook", "/HOOK"]
)
def test_unknown_paths_are_not_found(path: str) -> None:
    """Only /{provider} of a configured provider is served; nothing is handed on otherwise."""
    webhooks = Webhooks()
    status, headers, body = call(WebhookApp(FakeClient(webhooks)), environ(BODY, PATH_INFO=path))
    assert (status, body) == (404, b"not found")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert webhooks.calls == []


@pytest.mark.parametrize("prefix", ["/hooks", "hooks", "/hooks/", "hooks/"])
def test_prefix(prefix: str) -> None:
    """The prefix comes before the provider's name, however it is written."""
    webhooks = Webhooks()
    app = WebhookApp(FakeClient(webhooks), prefix=prefix)
    assert app.prefix == "/hooks"
    with http(app) as client:
        assert client.post("/hook", content=BODY).status_code == 404
        assert client.post("/hooks", content=BODY).status_code == 404
        assert client.post("/hooksx/hook", content=BODY).status_code == 404
        assert client.post("/hooks/hook?a=1", content=BODY).status_code == 200
        port = client.base_url.port
    assert webhooks.request.url == f"http://127.0.0.1:{port}/hooks/hook?a=1"


def test_script_name_is_the_mount_path() -> None:
    """Mounted under /webhooks (SCRIPT_NAME), the URL keeps the mount path; routing does not."""
    webhooks = Webhooks()
    app = WebhookApp(FakeClient(webhooks), prefix="/v1")
    fields = {
        "SCRIPT_NAME": "/webhooks",
        "PATH_INFO": "/v1/hook",
        "QUERY_STRING": "q=1",
        "HTTP_HOST": "app.example.com",
        "wsgi.url_scheme": "https",
    }
    status, _, _ = call(app, environ(BODY, **fields))
    assert status == 200
    assert webhooks.request.url == "https://app.example.com/webhooks/v1/hook?q=1"


def test_mounted_behind_a_dispatcher_through_a_real_server() -> None:
    """A dispatcher that moves /webhooks into SCRIPT_NAME, as Werkzeug's does, over HTTP."""
    webhooks = Webhooks()
    hooks = WebhookApp(FakeClient(webhooks))

    def site(environ_: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ_["PATH_INFO"]
        if path.startswith("/webhooks/"):
            environ_["SCRIPT_NAME"] += "/webhooks"
            environ_["PATH_INFO"] = path[len("/webhooks") :]
            return hooks(environ_, start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"site"]

    with http(site) as client:
        assert client.get("/").content == b"site"
        response = client.post("/webhooks/hook?tenant=7", content=BODY)
        port = client.base_url.port
    assert response.status_code == 200
    assert webhooks.request.url == f"http://127.0.0.1:{port}/webhooks/hook?tenant=7"


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        # the decoded path is encoded again, as the bytes PEP 3333 gives as latin-1
        ({"SCRIPT_NAME": "/web hooks"}, "http://example.com/web%20hooks/hook"),
        ({"SCRIPT_NAME": "/caf\xc3\xa9/"}, "http://example.com/caf%C3%A9/hook"),
        ({"SCRIPT_NAME": "/café"}, "http://example.com/caf%E9/hook"),
        ({"SCRIPT_NAME": "/\u20ac"}, "http://example.com/%E2%82%AC/hook"),
        # the server's raw request target keeps the provider's encoding; its query is dropped
        (
            {"RAW_URI": "/%68ook?stray=1", "QUERY_STRING": "a=%41"},
            "http://example.com/%68ook?a=%41",
        ),
        ({"REQUEST_URI": "/%68ook"}, "http://example.com/%68ook"),
        # a raw target without the mount path (a proxy stripped it) gets it back
        ({"SCRIPT_NAME": "/a b", "RAW_URI": "/hook"}, "http://example.com/a%20b/hook"),
        ({"SCRIPT_NAME": "/a b", "RAW_URI": "/a%20b/hook"}, "http://example.com/a%20b/hook"),
        # an absolute-form target is not a path: PATH_INFO is used
        ({"RAW_URI": "http://example.com/%68ook"}, "http://example.com/hook"),
    ],
)
def test_url_path_from_the_environ(fields: dict[str, Any], url: str) -> None:
    """SCRIPT_NAME, PATH_INFO and a raw target give the URL the provider called."""
    webhooks = Webhooks()
    status, _, _ = call(WebhookApp(FakeClient(webhooks)), environ(BODY, **fields))
    assert status == 200
    assert webhooks.request.url == url


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"HTTP_HOST": None, "SERVER_NAME": "10.0.0.7", "SERVER_PORT": "8080"}, "10.0.0.7:8080"),
        ({"HTTP_HOST": None, "SERVER_NAME": "10.0.0.7", "SERVER_PORT": "80"}, "10.0.0.7"),
        ({"HTTP_HOST": None, "SERVER_NAME": "example.org", "SERVER_PORT": ""}, "example.org"),
        ({"HTTP_HOST": None, "SERVER_NAME": "::1", "SERVER_PORT": "443"}, "https [::1]"),
        ({"HTTP_HOST": None, "SERVER_NAME": "", "SERVER_PORT": "80"}, "localhost"),
        ({"HTTP_HOST": "example.com:8443"}, "https example.com:8443"),
    ],
)
def test_host_without_a_host_header(fields: dict[str, Any], url: str) -> None:
    """The Host header names the host; without one, SERVER_NAME and SERVER_PORT do."""
    scheme, _, host = url.rpartition(" ")
    webhooks = Webhooks()
    call(
        WebhookApp(FakeClient(webhooks)),
        environ(BODY, **{"wsgi.url_scheme": scheme or "http"}, **fields),
    )
    assert webhooks.request.url == f"{scheme or 'http'}://{host}/hook"


# -- forwarded headers ----------------------------------------------------------------------------

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com"}


def test_forwarded_headers_are_ignored_by_default() -> None:
    """Anyone can send X-Forwarded-*: without trust_forwarded they change nothing."""
    webhooks = Webhooks()
    with http(WebhookApp(FakeClient(webhooks))) as client:
        client.post("/hook?a=1", content=BODY, headers=FORWARDED)
        port = client.base_url.port
    assert webhooks.request.url == f"http://127.0.0.1:{port}/hook?a=1"


@pytest.mark.parametrize(
    ("headers", "url"),
    [
        (FORWARDED, "https://public.example.com/hook?a=1"),
        (
            {"X-Forwarded-Proto": "HTTPS, http", "X-Forwarded-Host": "a.example, b.example"},
            "https://a.example/hook?a=1",
        ),
        ({"X-Forwarded-Proto": "gopher"}, "http://example.com/hook?a=1"),
        ({"X-Forwarded-Host": ""}, "http://example.com/hook?a=1"),
        ({}, "http://example.com/hook?a=1"),
    ],
)
def test_trusted_forwarded_headers(headers: dict[str, str], url: str) -> None:
    """With trust_forwarded, the first forwarded scheme (http/https only) and host win."""
    webhooks = Webhooks()
    app = WebhookApp(FakeClient(webhooks), trust_forwarded=True)
    fields = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}
    call(app, environ(BODY, QUERY_STRING="a=1", **fields))
    assert webhooks.request.url == url


# -- GET: handshakes and GET callbacks ------------------------------------------------------------


def test_get_answers_the_handshake() -> None:
    """GET goes to webhooks.handshake, whose answer is sent as it is."""
    webhooks = Webhooks(answer=WebhookResponse(status=200, body=b"1158201444"))
    with http(WebhookApp(FakeClient(webhooks))) as client:
        response = client.get("/shake?hub.mode=subscribe&hub.challenge=1158201444")
        port = client.base_url.port
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    kind, provider, request = webhooks.calls[0]
    assert (kind, provider, request.method) == ("handshake", "shake", "GET")
    assert request.url == (
        f"http://127.0.0.1:{port}/shake?hub.mode=subscribe&hub.challenge=1158201444"
    )
    assert request.body == b""


def test_get_without_a_handshake_is_not_allowed() -> None:
    """No handshake and no GET callbacks: 405, Allow: POST, and nothing handled."""
    webhooks = Webhooks(answer=None)
    status, headers, body = call(
        WebhookApp(FakeClient(webhooks)), environ(REQUEST_METHOD="GET", CONTENT_LENGTH=None)
    )
    assert (status, body) == (405, b"method not allowed")
    assert headers["allow"] == "POST"
    assert [kind for kind, _, _ in webhooks.calls] == ["handshake"]


def test_get_callbacks_are_handled() -> None:
    """A provider that calls back with GET gets its GET handled (after no handshake)."""
    webhooks = Webhooks(answer=None)
    fields = {"REQUEST_METHOD": "GET", "PATH_INFO": "/gethook", "QUERY_STRING": "MsgId=1"}
    status, _, _ = call(WebhookApp(FakeClient(webhooks)), environ(**fields))
    assert status == 200
    assert [kind for kind, _, _ in webhooks.calls] == ["handshake", "handle"]
    request = webhooks.calls[1][2]
    assert (request.method, request.url) == ("GET", "http://example.com/gethook?MsgId=1")


@pytest.mark.parametrize(
    ("path", "allow"),
    [("/hook", "POST"), ("/gethook", "GET, POST"), ("/shake", "GET, POST")],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_are_not_allowed(method: str, path: str, allow: str) -> None:
    """Other methods get 405 with the methods the provider's URL takes."""
    webhooks = Webhooks()
    app = WebhookApp(FakeClient(webhooks))
    status, headers, _ = call(app, environ(BODY, REQUEST_METHOD=method, PATH_INFO=path))
    assert status == 405
    assert headers["allow"] == allow
    assert webhooks.calls == []


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_unverified_is_401_and_logged_without_the_body(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback or handshake that fails verification: 401, a WARNING with the reason."""
    webhooks = Webhooks(error=WebhookVerificationError("signature does not match"))
    caplog.set_level(logging.DEBUG, logger="anysend")
    with http(WebhookApp(FakeClient(webhooks))) as client:
        response = client.request(method, "/shake?token=abc", content=BODY)
    assert response.status_code == 401
    assert response.content == b"unauthorized"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    [record] = caplog.records
    assert (record.name, record.levelno) == ("anysend", logging.WARNING)
    assert "shake" in record.getMessage()
    assert "signature does not match" in record.getMessage()
    assert "7f3c1e" not in caplog.text
    assert record.exc_info is None


def test_unparseable_is_400(caplog: pytest.LogCaptureFixture) -> None:
    """A verified callback that cannot be parsed: 400 and a WARNING."""
    webhooks = Webhooks(error=WebhookParseError("hook callback has no MessageSid"))
    caplog.set_level(logging.DEBUG, logger="anysend")
    status, _, body = call(WebhookApp(FakeClient(webhooks)), environ(BODY))
    assert (status, body) == (400, b"bad request")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "no MessageSid" in record.getMessage()
    assert "7f3c1e" not in caplog.text


def test_unexpected_errors_are_500_without_details(caplog: pytest.LogCaptureFixture) -> None:
    """Anything else (a store down): 500 with a bare body, logged with the traceback."""
    webhooks = Webhooks(error=RuntimeError("database is locked at /srv/db"))
    caplog.set_level(logging.DEBUG, logger="anysend")
    with http(WebhookApp(FakeClient(webhooks))) as client:
        response = client.post("/hook", content=BODY)
    assert response.status_code == 500
    assert response.content == b"internal server error"
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "hook" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_a_failing_answer_is_500(caplog: pytest.LogCaptureFixture) -> None:
    """An adapter whose webhook_response fails gives 500 as well."""
    caplog.set_level(logging.DEBUG, logger="anysend")
    status, _, body = call(WebhookApp(FakeClient(Webhooks())), environ(BODY, PATH_INFO="/broken"))
    assert (status, body) == (500, b"internal server error")
    assert caplog.records[0].levelno == logging.ERROR


def test_errors_outside_a_provider_are_500(caplog: pytest.LogCaptureFixture) -> None:
    """A client that fails before any provider is known, or a malformed answer: 500 too."""

    class NoProviders:
        webhooks = Webhooks()

        @property
        def providers(self) -> dict[str, Provider]:
            raise RuntimeError("client closed")

    caplog.set_level(logging.DEBUG, logger="anysend")
    bad_answer = Webhooks(answer="not a WebhookResponse")  # type: ignore[arg-type]
    closed = call(WebhookApp(NoProviders()), environ(BODY))
    malformed = call(
        WebhookApp(FakeClient(bad_answer)),
        environ(REQUEST_METHOD="GET", PATH_INFO="/shake", CONTENT_LENGTH=None),
    )
    for status, _, body in (closed, malformed):
        assert (status, body) == (500, b"internal server error")
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]
    assert all(r.exc_info is not None for r in caplog.records)


# -- body size ------------------------------------------------------------------------------------


def test_body_up_to_max_body_is_accepted() -> None:
    """A body of exactly max_body bytes is handed on whole."""
    webhooks = Webhooks()
    with http(WebhookApp(FakeClient(webhooks), max_body=len(BODY))) as client:
        response = client.post("/hook", content=BODY)
    assert response.status_code == 200
    assert webhooks.request.body == BODY


def test_declared_length_over_max_body_is_413(caplog: pytest.LogCaptureFixture) -> None:
    """A Content-Length over the limit is refused before anything is read or handed on."""
    webhooks = Webhooks()
    caplog.set_level(logging.DEBUG, logger="anysend")
    request = environ(BODY)
    app = WebhookApp(FakeClient(webhooks), max_body=len(BODY) - 1)
    status, _, body = call(app, request)
    assert (status, body) == (413, b"payload too large")
    assert request["wsgi.input"].asked == []
    assert webhooks.calls == []
    assert caplog.records[0].levelno == logging.WARNING
    assert "hook" in caplog.records[0].getMessage()


def test_declared_length_over_max_body_is_413_over_http() -> None:
    """Through a real server too."""
    with http(WebhookApp(FakeClient(Webhooks()), max_body=10)) as client:
        response = client.post("/hook", content=BODY)
    assert (response.status_code, response.content) == (413, b"payload too large")


def test_only_content_length_bytes_are_read() -> None:
    """PEP 3333: no more than CONTENT_LENGTH is read, even when the stream has more."""
    webhooks = Webhooks()
    request = environ(BODY + b"&next-request", CONTENT_LENGTH=str(len(BODY)))
    assert call(WebhookApp(FakeClient(webhooks)), request)[0] == 200
    assert webhooks.request.body == BODY
    assert sum(request["wsgi.input"].asked) == len(BODY)


def test_a_body_shorter_than_declared_is_400(caplog: pytest.LogCaptureFixture) -> None:
    """The caller went away mid-body: 400, and nothing is handed on."""
    webhooks = Webhooks()
    caplog.set_level(logging.DEBUG, logger="anysend")
    status, _, _ = call(WebhookApp(FakeClient(webhooks)), environ(b"a=1", CONTENT_LENGTH="50"))
    assert status == 400
    assert webhooks.calls == []
    assert "after 3 of 50 bytes" in caplog.records[0].getMessage()


@pytest.mark.parametrize("length", [None, "", "junk"])
def test_without_a_length_the_body_is_empty(length: str | None) -> None:
    """No usable CONTENT_LENGTH and no wsgi.input_terminated: nothing is read."""
    webhooks = Webhooks()
    request = environ(BODY, CONTENT_LENGTH=length)
    # wsgiref's validator refuses a CONTENT_LENGTH that is not a number: a server may not.
    assert call(WebhookApp(FakeClient(webhooks)), request, validate=length != "junk")[0] == 200
    assert webhooks.request.body == b""
    assert request["wsgi.input"].asked == []


def test_a_terminated_stream_is_read_to_its_end() -> None:
    """wsgi.input_terminated (a chunked request): the body is read to EOF, byte for byte."""
    webhooks = Webhooks()
    data = b"a=1&b=\xff" * 20_000
    request = environ(data, CONTENT_LENGTH=None, **{"wsgi.input_terminated": True})
    assert call(WebhookApp(FakeClient(webhooks), max_body=len(data)), request)[0] == 200
    assert webhooks.request.body == data


def test_a_terminated_stream_over_max_body_is_413() -> None:
    """Without Content-Length, reading stops just past the limit."""
    webhooks = Webhooks()
    request = environ(b"x" * 1000, CONTENT_LENGTH=None, **{"wsgi.input_terminated": True})
    status, _, _ = call(WebhookApp(FakeClient(webhooks), max_body=25), request)
    assert status == 413
    assert webhooks.calls == []
    assert sum(request["wsgi.input"].asked) == 26


def test_max_body_must_not_be_negative() -> None:
    """A negative limit is a mistake."""
    with pytest.raises(ValueError, match="max_body"):
        WebhookApp(FakeClient(Webhooks()), max_body=-1)


def test_an_async_client_is_refused() -> None:
    """An AsyncClient belongs in the ASGI app: said at once, not at the first callback."""
    client = anysend.AsyncClient([MemoryProvider()])
    with pytest.raises(ConfigurationError, match=r"anysend\.asgi\.WebhookApp"):
        WebhookApp(client)


def test_repr() -> None:
    """The repr shows the routing settings, not the client."""
    app = WebhookApp(FakeClient(Webhooks()), prefix="hooks", max_body=10)
    assert repr(app) == "WebhookApp(prefix='/hooks', max_body=10)"


def test_import_is_light() -> None:
    """Importing anysend.wsgi loads no web framework, HTTP or model library."""
    code = (
        "import sys, anysend.wsgi;"
        "heavy = [m for m in ('flask', 'werkzeug', 'django', 'httpx', 'pydantic') "
        "if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


# -- real adapters, a real store, a real server ---------------------------------------------------


def twilio_accepts(request: httpx.Request) -> httpx.Response:
    """Twilio's API, taking every message (201 with a Message resource)."""
    return httpx.Response(201, json={"sid": "SM" + "a" * 32, "status": "queued"})


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[anysend.Client]:
    """A sync client with real Twilio and WhatsApp adapters and a SQLite store on disk."""
    client = anysend.Client(
        [
            Twilio(account_sid=ACCOUNT_SID, auth_token=TWILIO_TOKEN, sender=SENDER),
            WhatsApp(
                access_token="EAAG-wsgi-token",
                phone_number_id="100000000000002",
                app_secret=APP_SECRET,
                verify_token=VERIFY_TOKEN,
            ),
        ],
        store=tmp_path / "anysend.db",
        default_region="PL",
        http_client=httpx.Client(transport=httpx.MockTransport(twilio_accepts)),
    )
    client.profiles.upsert(Recipient(id="bob", phone="600 700 801"))
    client.profiles.upsert(Recipient(id="zoe", phone="+48 600 700 821"))
    yield client
    client.close()


def test_signed_twilio_callbacks_reach_the_store(shop: anysend.Client) -> None:
    """A status callback updates the stored message; a STOP suppresses; TwiML is the answer."""
    result = shop.send(anysend.Message(text="Your order shipped"), to="bob")
    assert result.ok
    app = WebhookApp(shop, prefix="/hooks")
    with served(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as web:
        url = f"{base_url}/hooks/twilio"
        status = {"MessageSid": result.provider_message_id or "", "MessageStatus": "delivered"}
        stop = {"MessageSid": "SM" + "1" * 32, "From": "+48600700801", "To": SENDER}
        stop["Body"] = "STOP"
        answers = [
            web.post(
                "/hooks/twilio",
                content=urlencode(form),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": sign(url, form, TWILIO_TOKEN),
                },
            )
            for form in (status, stop)
        ]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.content == TWIML_EMPTY
        assert answer.headers["content-type"] == "text/xml"
    stored = shop.store.get_message(result.message_id)  # type: ignore[union-attr]
    assert stored is not None
    assert stored.status == DeliveryStatus.DELIVERED
    assert shop.profiles.blocked("sms", "+48600700801") == "suppressed: inbound STOP"


def test_forged_twilio_callbacks_are_401_and_store_nothing(shop: anysend.Client) -> None:
    """A wrong signature, a signature for another URL or none at all: 401, nothing stored."""
    stop = {"MessageSid": "SM" + "2" * 32, "From": "+48600700801", "To": SENDER, "Body": "STOP"}
    good = sign("https://shop.example.com/twilio", stop, TWILIO_TOKEN)
    cases = [
        {"X-Twilio-Signature": good},  # signed for another URL
        {"X-Twilio-Signature": sign("http://example.com/twilio", stop, "another-token")},
        {},
    ]
    app = WebhookApp(shop)
    for headers in cases:
        fields = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        status, _, body = call(
            app, environ(urlencode(stop).encode(), PATH_INFO="/twilio", **fields)
        )
        assert (status, body) == (401, b"unauthorized")
    assert shop.profiles.blocked("sms", "+48600700801") is None
    # The same request, signed for the URL the app rebuilds, is taken.
    signed = {"HTTP_X_TWILIO_SIGNATURE": sign("http://example.com/twilio", stop, TWILIO_TOKEN)}
    status, _, _ = call(app, environ(urlencode(stop).encode(), PATH_INFO="/twilio", **signed))
    assert status == 200
    assert shop.profiles.blocked("sms", "+48600700801") == "suppressed: inbound STOP"


def test_whatsapp_handshake_and_signed_callbacks(shop: anysend.Client) -> None:
    """Meta's handshake is answered; a signed inbound message is stored; a forged one is 401."""
    inbound = (FIXTURES / "whatsapp" / "inbound_text.json").read_bytes()
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8675309"}
    with http(WebhookApp(shop)) as web:
        good = web.get("/whatsapp", params=query)
        bad = web.get("/whatsapp", params={**query, "hub.verify_token": "guess"})
        signature = {"X-Hub-Signature-256": meta_sign(inbound, APP_SECRET)}
        json_type = {"Content-Type": "application/json"}
        forged = web.post(
            "/whatsapp", content=inbound.replace(b"Czy", b"Cze"), headers=signature | json_type
        )
        accepted = web.post("/whatsapp", content=inbound, headers=signature | json_type)
    assert (good.status_code, good.content) == (200, b"8675309")
    assert good.headers["content-type"] == "text/plain; charset=utf-8"
    assert bad.status_code == 401
    assert (forged.status_code, forged.content) == (401, b"unauthorized")
    assert accepted.status_code == 200
    inbound_texts = [entry.text for entry in shop.history("zoe") if entry.kind == "inbound"]
    assert inbound_texts == [
        json.loads(inbound)["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"]
    ]
