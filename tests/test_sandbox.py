"""The sandbox: the real adapters against its provider APIs, scripted failures, callbacks.

Every test runs real adapters through a real ``anysend.Client`` or ``AsyncClient`` pointed
at a running :class:`anysend.sandbox.Sandbox` on 127.0.0.1, and callbacks reach a real
``anysend.asgi.WebhookApp`` served on 127.0.0.1 (through a small ASGI bridge on aiohttp).
Time is a ``VirtualClock``: callbacks are due when the test advances it and calls
``run_due``; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("aiosmtpd")

from aiohttp import web

import anysend
from anysend import DeliveryStatus, ErrorCategory
from anysend.asgi import WebhookApp
from anysend.sandbox import (
    FAILURES,
    Callback,
    ProviderAPI,
    Refusal,
    Sandbox,
    SandboxMessage,
    json_response,
)
from anysend.testing import VirtualClock
from tests.acme_adapter import AcmeSMS
from tests.acme_adapter import sign as acme_sign

#: The provider message id each provider answers with.
ID_FORMATS = {
    "twilio": r"SM[0-9a-f]{32}",
    "whatsapp": r"wamid\.[A-Za-z0-9+/=]+",
    "sendgrid": r"[A-Za-z0-9_-]{22}",
    "mailgun": r"\d{14}\.[0-9a-f]{16}@mg\.sandbox\.test",
    "smtp": r"[^<>\s]+@[^<>\s]+",
    "telegram": r"4242:\d+",
    "fcm": r"projects/anysend-sandbox/messages/0:\d+%[0-9a-f]{16}",
    "webpush": r"http://127\.0\.0\.1:\d+/webpush/m/[0-9a-f]{32}",
}
#: The channel each provider is tried on.
CHANNELS = {
    "twilio": "sms",
    "whatsapp": "whatsapp",
    "sendgrid": "email",
    "mailgun": "email",
    "smtp": "email",
    "telegram": "telegram",
    "fcm": "push",
    "webpush": "push",
}


def ann(sandbox: Sandbox, name: str = "Ann", **extra: Any) -> anysend.Recipient:
    """Ann, with an address on every channel (a web push subscription and an FCM token)."""
    return sandbox.person(
        name,
        email=extra.get("email", "ann@example.com"),
        phone=extra.get("phone", "+48600100200"),
        push=[sandbox.subscription("ann-laptop"), "fcm-token-ann"],
        telegram=extra.get("telegram", 4242),
    )


def target(sandbox: Sandbox, provider: str, recipient: anysend.Recipient) -> anysend.Recipient:
    """The recipient with only the push device the provider serves."""
    if provider == "fcm":
        return recipient.model_copy(update={"push": (recipient.push[1],)})
    if provider == "webpush":
        return recipient.model_copy(update={"push": (recipient.push[0],)})
    return recipient


MESSAGE = anysend.Message(subject="Back in stock", text="Size 42 is back", html="<b>42</b>")


# -- an ASGI server for WebhookApp ----------------------------------------------------------------


class AsgiServer:
    """Serves an ASGI app on 127.0.0.1 through aiohttp (the app may be set after start)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on a free port."""
        server = web.Application()
        server.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        raw_path, _, query = request.raw_path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.raw_headers],
            "server": ("127.0.0.1", 0),
        }
        inbox = [{"type": "http.request", "body": body, "more_body": False}]
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            return inbox.pop(0) if inbox else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = message["headers"]
            else:
                answer["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        content_type = dict(answer["headers"]).get(b"content-type", b"text/plain").decode()
        return web.Response(
            status=answer["status"], body=answer["body"], headers={"Content-Type": content_type}
        )


@asynccontextmanager
async def receiver_and_sandbox(
    clock: VirtualClock, **options: Any
) -> AsyncIterator[tuple[Sandbox, anysend.AsyncClient, AsgiServer]]:
    """A sandbox in this loop calling back a WebhookApp whose client has a store."""
    hooks = AsgiServer()
    await hooks.start()
    sandbox = Sandbox(webhook_url=f"{hooks.url}/hooks", clock=clock, seed=7, **options)
    await sandbox.start()
    try:
        client = anysend.AsyncClient(
            sandbox.providers(), sandbox=sandbox.url, store=":memory:", clock=clock
        )
        hooks.app = WebhookApp(client, prefix="/hooks")
        async with client:
            yield sandbox, client, hooks
    finally:
        await sandbox.stop()
        await hooks.stop()


@contextmanager
def running(**options: Any) -> Iterator[Sandbox]:
    """A sandbox in a background thread (the context manager), on a virtual clock."""
    options.setdefault("clock", VirtualClock())
    with Sandbox(seed=3, **options) as sandbox:
        yield sandbox


# -- sends ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(ID_FORMATS))
def test_every_adapter_sends_through_the_sandbox(provider: str) -> None:
    """Each real adapter (sync Client) is accepted with its provider's id format."""
    with running(smtp_port=0) as sandbox:
        recipient = target(sandbox, provider, ann(sandbox))
        with anysend.Client(sandbox.providers(provider), sandbox=sandbox.url) as client:
            result = client.send(MESSAGE, to=recipient, via=[CHANNELS[provider]])
        assert result.ok, result.attempts
        assert result.provider == provider
        receipt_id = result.provider_message_id
        assert receipt_id is not None
        assert re.fullmatch(ID_FORMATS[provider], receipt_id), receipt_id
        [message] = sandbox.messages()
        assert (message.provider, message.channel, message.direction) == (
            provider,
            CHANNELS[provider],
            "outbound",
        )
        assert message.person == "Ann"
        assert message.status == "accepted"
        assert "Size 42 is back" in (message.text or "")


@pytest.mark.anyio
async def test_async_client_and_a_sandbox_in_the_same_loop() -> None:
    """AsyncClient sends on every channel to a sandbox started with ``await start()``."""
    sandbox = Sandbox(smtp_port=0, clock=VirtualClock(), seed=1)
    await sandbox.start()
    try:
        recipient = ann(sandbox)
        async with anysend.AsyncClient(sandbox.providers(), sandbox=sandbox.url) as client:
            for channel in ("sms", "whatsapp", "email", "push", "telegram"):
                result = await client.send(MESSAGE, to=recipient, via=[channel])
                assert result.ok, (channel, result.attempts)
        assert {m.provider for m in sandbox.messages()} == {
            "twilio",
            "whatsapp",
            "sendgrid",
            "webpush",
            "fcm",  # every device gets its own push
            "telegram",
        }
        push = next(m for m in sandbox.messages() if m.provider == "webpush")
        assert (push.title, push.text) == ("Back in stock", "Size 42 is back")  # decrypted
    finally:
        await sandbox.stop()


def test_sms_segments_and_encoding_are_kept() -> None:
    """An SMS shows how many segments it takes and its encoding."""
    with (
        running() as sandbox,
        anysend.Client(sandbox.providers("twilio"), sandbox=sandbox.url) as client,
    ):
        client.send(anysend.Message(text="Zażółć " * 20), to={"phone": "+48600100200"})
        [message] = sandbox.messages("+48600100200")
        assert (message.segments, message.encoding) == (3, "UCS-2")


def test_smtp_mail_lands_in_the_inbox() -> None:
    """Mail from the SMTP adapter is parsed: subject, text and HTML."""
    with running(smtp_port=0) as sandbox:
        assert isinstance(sandbox.smtp_port, int)
        with anysend.Client(sandbox.providers("smtp")) as client:
            client.send(MESSAGE, to={"email": "bob@example.com"}).raise_for_status()
        [message] = sandbox.messages("bob@example.com")
        assert (message.provider, message.subject) == ("smtp", "Back in stock")
        assert message.text is not None
        assert message.text.strip() == "Size 42 is back"
        assert message.html is not None
        assert "<b>42</b>" in message.html


# -- scripted failures ----------------------------------------------------------------------------

SYNC_FAILURES = [
    ("twilio", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("twilio", "unsubscribed", ErrorCategory.OPTED_OUT),
    ("twilio", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("twilio", "unavailable", ErrorCategory.UNAVAILABLE),
    ("twilio", "auth", ErrorCategory.AUTH),
    ("whatsapp", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("whatsapp", "unsubscribed", ErrorCategory.OPTED_OUT),
    ("whatsapp", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("whatsapp", "unavailable", ErrorCategory.UNAVAILABLE),
    ("whatsapp", "auth", ErrorCategory.AUTH),
    ("whatsapp", "outside_window", ErrorCategory.CONTENT_REJECTED),
    ("sendgrid", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("sendgrid", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("sendgrid", "unavailable", ErrorCategory.UNAVAILABLE),
    ("sendgrid", "auth", ErrorCategory.AUTH),
    ("mailgun", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("mailgun", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("mailgun", "unavailable", ErrorCategory.UNAVAILABLE),
    ("mailgun", "auth", ErrorCategory.AUTH),
    ("smtp", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("smtp", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("smtp", "unavailable", ErrorCategory.UNAVAILABLE),
    ("telegram", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("telegram", "unsubscribed", ErrorCategory.OPTED_OUT),
    ("telegram", "bounce", ErrorCategory.INVALID_RECIPIENT),
    ("telegram", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("telegram", "unavailable", ErrorCategory.UNAVAILABLE),
    ("fcm", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("fcm", "bounce", ErrorCategory.INVALID_RECIPIENT),
    ("fcm", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("fcm", "unavailable", ErrorCategory.UNAVAILABLE),
    ("webpush", "invalid_number", ErrorCategory.INVALID_RECIPIENT),
    ("webpush", "unregistered", ErrorCategory.INVALID_RECIPIENT),
    ("webpush", "rate_limited", ErrorCategory.RATE_LIMITED),
    ("webpush", "unavailable", ErrorCategory.UNAVAILABLE),
    ("webpush", "auth", ErrorCategory.AUTH),
]


def _address(provider: str, recipient: anysend.Recipient) -> str:
    channel = CHANNELS[provider]
    if channel == "email":
        return str(recipient.email)
    if channel == "telegram":
        return recipient.chat_ids[anysend.Channel.TELEGRAM]
    if provider == "fcm":
        return recipient.push[1].token
    if provider == "webpush":
        return "ann-laptop"  # a subscription by its name
    return str(recipient.phone)


@pytest.mark.parametrize(("provider", "error", "category"), SYNC_FAILURES)
def test_scripted_failures_map_to_the_right_category(
    provider: str, error: str, category: ErrorCategory
) -> None:
    """A scripted failure comes in the provider's error shape; the adapter categorises it."""
    clock = VirtualClock()
    with running(smtp_port=0, clock=clock) as sandbox:
        everyone = ann(sandbox)
        sandbox.fail(_address(provider, everyone), error)
        recipient = target(sandbox, provider, everyone)
        with anysend.Client(
            sandbox.providers(provider), sandbox=sandbox.url, clock=clock
        ) as client:
            result = client.send(MESSAGE, to=recipient, via=[CHANNELS[provider]])
        assert not result.ok
        failed = [a for a in result.attempts if a.error is not None]
        assert failed, result.attempts
        assert failed[-1].error is not None
        assert failed[-1].error.category is category, failed[-1].error
        assert failed[-1].provider == provider


def test_a_failure_for_some_sends_only() -> None:
    """``times=1`` fails the next send only; the retry (or the next send) goes through."""
    clock = VirtualClock()
    with running(clock=clock) as sandbox:
        sandbox.fail("+48600100200", "unavailable", times=1)
        with anysend.Client(
            sandbox.providers("twilio"), sandbox=sandbox.url, clock=clock
        ) as client:
            result = client.send(MESSAGE, to={"phone": "+48600100200"})
        assert result.ok
        assert [a.outcome.value for a in result.attempts] == ["failed", "sent"]


def test_twilio_magic_numbers_fail() -> None:
    """Twilio's test number +15005550001 is refused as invalid (error 21211)."""
    with (
        running() as sandbox,
        anysend.Client(sandbox.providers("twilio"), sandbox=sandbox.url) as client,
    ):
        result = client.send(MESSAGE, to={"phone": "+15005550001"})
        error = result.attempts[-1].error
        assert error is not None
        assert (error.category, error.code) == (
            ErrorCategory.INVALID_RECIPIENT,
            "21211",
        )


def test_failure_rate_answers_provider_errors() -> None:
    """With ``failure_rate=1`` every call gets a 5xx or 429 in the provider's shape."""
    clock = VirtualClock()
    retry = anysend.RetryPolicy(max_attempts=1)
    with (
        running(clock=clock, failure_rate=1.0) as sandbox,
        anysend.Client(
            sandbox.providers("sendgrid"), sandbox=sandbox.url, clock=clock, retry=retry
        ) as client,
    ):
        result = client.send(MESSAGE, to={"email": "ann@example.com"})
        error = result.attempts[-1].error
        assert error is not None
        assert error.category in (ErrorCategory.UNAVAILABLE, ErrorCategory.RATE_LIMITED)
        assert sandbox.messages() == []


def test_latency_waits_on_the_sandbox_clock() -> None:
    """``latency`` is a wait on the injected clock before each answer."""
    clock = VirtualClock()
    with (
        running(clock=clock, latency=2.5) as sandbox,
        anysend.Client(sandbox.providers("telegram"), sandbox=sandbox.url) as client,
    ):
        client.send(MESSAGE, to={"chat_ids": {"telegram": "42"}}).raise_for_status()
    assert 2.5 in clock.sleeps


def test_unknown_failures_and_bad_settings_are_refused() -> None:
    """An unknown failure name, a bad option or an unstarted sandbox is a ConfigurationError."""
    sandbox = Sandbox()
    with pytest.raises(anysend.ConfigurationError, match="start the sandbox"):
        sandbox.providers()
    with pytest.raises(anysend.ConfigurationError, match="no scripted failure"):
        sandbox.fail("+48600100200", "exploded")
    for options in ({"failure_rate": 2.0}, {"latency": -1.0}, {"webhook_url": "ftp://x"}):
        with pytest.raises(anysend.ConfigurationError):
            Sandbox(**options)
    assert {"invalid_number", "unsubscribed", "bounce", "rate_limited"} <= set(FAILURES)


# -- the client setting ---------------------------------------------------------------------------


def test_sandbox_true_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sandbox=True`` uses ANYSEND_SANDBOX_URL; an explicit base_urls entry wins."""
    with running() as sandbox:
        monkeypatch.setenv("ANYSEND_SANDBOX_URL", sandbox.url)
        twilio, telegram = sandbox.providers("twilio", "telegram")
        with anysend.Client([twilio, telegram], sandbox=True) as client:
            assert client.send(MESSAGE, to={"phone": "+48600100200"}).ok
        elsewhere = {"telegram": "http://127.0.0.1:9/nowhere"}
        with anysend.Client([telegram], sandbox=True, base_urls=elsewhere) as client:
            result = client.send(MESSAGE, to={"chat_ids": {"telegram": "42"}})
            assert not result.ok  # went to the explicit URL, not the sandbox
        assert len(sandbox.messages()) == 1
    with pytest.raises(anysend.ConfigurationError, match="sandbox="):
        anysend.Client([twilio], sandbox="127.0.0.1:8780")


def test_sandbox_refuses_an_adapter_that_would_leave_the_machine() -> None:
    """With ``sandbox=``, SMTP to a real host is refused before anything is sent."""
    from anysend.providers.smtp import SMTP

    real = SMTP(host="smtp.example.com", port=587, sender="shop@example.com")
    with pytest.raises(anysend.ConfigurationError, match=r"smtp \(smtp\.example\.com\)"):
        anysend.Client([real], sandbox="http://127.0.0.1:8780")
    with pytest.raises(anysend.ConfigurationError, match="smtp"):
        anysend.AsyncClient([real], sandbox=True)
    local = SMTP(host="127.0.0.1", port=2525, sender="shop@example.com")
    anysend.Client([local], sandbox="http://127.0.0.1:8780").close()  # the sandbox's own
    anysend.Client([real]).close()  # without sandbox= it is the application's choice


def test_env_configures_the_same_providers() -> None:
    """``sandbox.env()`` gives ANYSEND_* variables that from_env turns into working adapters."""
    with running(smtp_port=0) as sandbox:
        env = sandbox.env()
        assert env["ANYSEND_SANDBOX_URL"] == sandbox.url
        with anysend.Client.from_env(env, sandbox=env["ANYSEND_SANDBOX_URL"]) as client:
            assert set(client.providers) == {
                "whatsapp",
                "twilio",
                "sendgrid",
                "mailgun",
                "smtp",
                "telegram",
                "fcm",
                "webpush",
            }
            result = client.send(anysend.Message(text="hi"), to={"phone": "+48600100200"})
            assert result.ok, result.attempts


# -- authentication the sandbox checks -----------------------------------------------------------


def test_fcm_refuses_a_service_account_it_did_not_issue() -> None:
    """The OAuth exchange checks the JWT's RS256 signature: another key is ``auth``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from anysend.providers.fcm import FCM

    with running() as sandbox:
        info = sandbox.credentials.service_account()
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        info["private_key"] = other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        fcm = FCM(service_account=json.dumps(info))
        fcm.now = sandbox.epoch
        with anysend.Client([fcm], sandbox=sandbox.url) as client:
            result = client.send(
                MESSAGE, to=anysend.Recipient(push=[anysend.PushTarget(kind="fcm", token="t")])
            )
        error = result.attempts[-1].error
        assert error is not None
        assert (error.category, error.code) == (ErrorCategory.AUTH, "invalid_grant")


def test_webpush_checks_vapid_against_the_bound_key() -> None:
    """A subscription bound to one VAPID key refuses pushes signed by another (403, auth)."""
    from anysend.providers.webpush import WebPush, vapid_keys

    with running() as sandbox:
        [ours] = sandbox.providers("webpush")
        target_ = sandbox.subscription(
            "bound",
            application_server_key=ours.application_server_key,  # type: ignore[attr-defined]
        )
        private, _ = vapid_keys()
        stranger = WebPush(vapid_private_key=private, vapid_subject="mailto:x@example.com")
        stranger.now = sandbox.epoch
        to = anysend.Recipient(push=[target_])
        with anysend.Client([stranger], sandbox=sandbox.url) as client:
            error = client.send(MESSAGE, to=to).attempts[-1].error
            assert error is not None
            assert error.category is ErrorCategory.AUTH
        with anysend.Client([ours], sandbox=sandbox.url) as client:
            assert client.send(MESSAGE, to=to).ok


# -- callbacks into a real WebhookApp --------------------------------------------------------------


async def _status(client: anysend.AsyncClient, message_id: str | None) -> DeliveryStatus | None:
    assert client.store is not None
    assert message_id is not None
    stored = await client.store.get_message(message_id)
    return stored.status if stored is not None else None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("channel", "provider", "read"),
    [
        ("sms", "twilio", None),
        ("whatsapp", "twilio", "read"),
        ("whatsapp", "whatsapp", "read"),
        ("email", "sendgrid", "opened"),
        ("email", "mailgun", "opened"),
    ],
)
async def test_callbacks_move_the_stored_status(
    channel: str, provider: str, read: str | None
) -> None:
    """Delivered (and read/opened) callbacks, signed as the provider signs, reach the store."""
    clock = VirtualClock()
    async with receiver_and_sandbox(clock, read_probability=1.0, delivery_delay=5) as (
        sandbox,
        client,
        _,
    ):
        only = [p for p in client.providers.values() if p.name == provider]
        async with anysend.AsyncClient(
            only, sandbox=sandbox.url, store=client.store, clock=clock
        ) as sender:
            result = await sender.send(MESSAGE, to=ann(sandbox), via=[channel])
        assert result.ok
        assert result.provider == provider
        assert await sandbox.arun_due() == 0  # nothing is due before the clock moves
        clock.advance(5)
        assert await sandbox.arun_due() == 1
        assert await _status(client, result.message_id) is DeliveryStatus.DELIVERED
        clock.advance(5)
        assert await sandbox.arun_due() == (0 if read is None else 1)
        assert client.store is not None
        stored = await client.store.get_message(str(result.message_id))
        assert stored is not None
        if read == "read":
            assert stored.status is DeliveryStatus.READ
        elif read == "opened":
            assert stored.opened_at is not None
        answered = [(c["provider"], c["event"], c["status"]) for c in sandbox.callbacks()]
        assert len(answered) == (1 if read is None else 2)
        assert all(status == 200 for _, _, status in answered), answered
        [message] = sandbox.messages()
        assert message.status == read or (read is None and message.status == "delivered")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("provider", "error", "status"),
    [
        ("twilio", "bounce", DeliveryStatus.UNDELIVERABLE),
        ("whatsapp", "bounce", DeliveryStatus.UNDELIVERABLE),
        ("sendgrid", "bounce", DeliveryStatus.UNDELIVERABLE),
        ("sendgrid", "unsubscribed", DeliveryStatus.REJECTED),
        ("mailgun", "bounce", DeliveryStatus.UNDELIVERABLE),
        ("mailgun", "unsubscribed", DeliveryStatus.REJECTED),
    ],
)
async def test_asynchronous_failures_arrive_as_callbacks(
    provider: str, error: str, status: DeliveryStatus
) -> None:
    """A bounce is accepted first, then reported in the provider's failure callback."""
    clock = VirtualClock()
    async with receiver_and_sandbox(clock, delivery_delay=1) as (sandbox, client, _):
        recipient = ann(sandbox)
        channel = CHANNELS[provider]
        sandbox.fail(_address(provider, recipient), error)
        only = [p for p in client.providers.values() if p.name == provider]
        async with anysend.AsyncClient(
            only, sandbox=sandbox.url, store=client.store, clock=clock
        ) as sender:
            result = await sender.send(MESSAGE, to=recipient, via=[channel])
        assert result.ok  # accepted: the provider reports the failure later
        clock.advance(1)
        await sandbox.arun_due()
        assert await _status(client, result.message_id) is status
        [message] = sandbox.messages()
        assert message.status in ("undeliverable", "failed")
        assert message.error


@pytest.mark.anyio
async def test_a_forged_callback_is_refused() -> None:
    """The same callback with one byte changed fails verification (401) and stores nothing."""
    clock = VirtualClock()
    async with receiver_and_sandbox(clock, delivery_delay=1, read_probability=0) as (
        sandbox,
        client,
        _,
    ):
        result = await client.send(MESSAGE, to=ann(sandbox), via=["whatsapp"])
        api = sandbox._apis["whatsapp"]
        [message] = sandbox.messages()
        genuine = api.delivered(message)
        assert genuine is not None
        forged = genuine.body.replace(b'"delivered"', b'"read"')
        async with httpx.AsyncClient() as http:
            refused = await http.post(genuine.url, content=forged, headers=genuine.headers)
            assert refused.status_code == 401
            assert await _status(client, result.message_id) is DeliveryStatus.ACCEPTED
            accepted = await http.post(genuine.url, content=genuine.body, headers=genuine.headers)
            assert accepted.status_code == 200
        assert await _status(client, result.message_id) is DeliveryStatus.DELIVERED


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("channel", "address", "provider"),
    [
        ("sms", "+48600100200", None),
        ("whatsapp", "+48600100200", "whatsapp"),
        ("telegram", "4242", None),
        ("email", "ann@example.com", "mailgun"),
    ],
)
async def test_replies_land_in_the_store(channel: str, address: str, provider: str | None) -> None:
    """``areply`` posts the provider's inbound callback; the client links it to the profile."""
    clock = VirtualClock()
    async with receiver_and_sandbox(clock) as (sandbox, client, _):
        recipient = ann(sandbox).model_copy(update={"id": "ann"})
        await client.profiles.upsert(recipient)
        via = [channel] if provider is None or provider != "mailgun" else ["email"]
        only = [p for p in client.providers.values() if p.name != "sendgrid"]
        async with anysend.AsyncClient(
            only, sandbox=sandbox.url, store=client.store, clock=clock
        ) as sender:
            await sender.send(MESSAGE, to=recipient, via=via)
        reply = await sandbox.areply(address, "Yes please", provider)
        assert (reply.direction, reply.status, reply.person) == ("inbound", "received", "Ann")
        assert sandbox.callbacks()[-1]["status"] == 200
        history = await client.history("ann")
        inbound = [entry for entry in history if entry.kind == "inbound"]
        assert [entry.text for entry in inbound] == ["Yes please"]


# -- the JSON API, the event stream, the page -----------------------------------------------------


def test_json_api() -> None:
    """people, messages, fail and reply under /_sandbox/api/, as the contract says."""
    with running() as sandbox, httpx.Client(base_url=sandbox.url) as http:
        ann(sandbox)
        with anysend.Client(sandbox.providers("twilio"), sandbox=sandbox.url) as client:
            client.send(MESSAGE, to={"phone": "+48600100200"}).raise_for_status()
            client.send(MESSAGE, to={"phone": "+48600999888"}).raise_for_status()
        people = http.get("/_sandbox/api/people").json()
        by_key = {p["key"]: p for p in people}
        assert by_key["Ann"]["unread"] == 1
        assert "+48600100200" in by_key["Ann"]["addresses"]
        assert by_key["+48600999888"]["name"] == "+48600999888"  # nobody's: its own person
        [message] = http.get("/_sandbox/api/messages", params={"person": "Ann"}).json()
        assert set(message) >= {
            "id", "provider", "channel", "direction", "to", "from", "person", "subject", "text",
            "html", "title", "segments", "encoding", "status", "error", "history", "created_at",
        }  # fmt: skip
        assert message["history"][0]["status"] == "accepted"
        answer = http.post("/_sandbox/api/fail", json={"address": "+48600100200", "error": "auth"})
        assert answer.status_code == 200
        assert (
            http.post("/_sandbox/api/fail", json={"address": "x", "error": "?"}).status_code == 400
        )
        reply = http.post(
            "/_sandbox/api/reply", json={"to": "+48600100200", "text": "STOP", "provider": "twilio"}
        )
        assert reply.status_code == 201
        assert reply.json()["direction"] == "inbound"
        with anysend.Client(sandbox.providers("twilio"), sandbox=sandbox.url) as client:
            error = client.send(MESSAGE, to={"phone": "+48600100200"}).attempts[-1].error
            assert error is not None
            assert error.category is ErrorCategory.AUTH
        info = http.get("/_sandbox/api/info").json()
        assert "bounce" in info["failures"]


def test_api_refuses_other_sites() -> None:
    """Another site's page cannot drive reply/fail: JSON only, from the sandbox's origin."""
    with running() as sandbox, httpx.Client(base_url=sandbox.url) as http:
        body = '{"to": "+48600100200", "text": "STOP", "provider": "twilio"}'
        form = http.post(
            "/_sandbox/api/reply", content=body, headers={"Content-Type": "text/plain"}
        )
        assert form.status_code == 415  # what a cross-site form or no-preflight fetch can send
        elsewhere = http.post(
            "/_sandbox/api/fail",
            json={"address": "+48600100200", "error": "auth"},
            headers={"Origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        own = http.post(
            "/_sandbox/api/reply",
            content=body,
            headers={"Content-Type": "application/json", "Origin": sandbox.url},
        )
        assert own.status_code == 201
        assert [m.text for m in sandbox.messages() if m.direction == "inbound"] == ["STOP"]


def test_event_stream() -> None:
    """GET /_sandbox/api/events streams a "message" event for a send, then its "status"."""
    clock = VirtualClock()
    with (
        running(clock=clock, delivery_delay=1) as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=10) as http,
        http.stream("GET", "/_sandbox/api/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        with anysend.Client(sandbox.providers("telegram"), sandbox=sandbox.url) as client:
            client.send(MESSAGE, to={"chat_ids": {"telegram": "42"}}).raise_for_status()
        clock.advance(1)
        sandbox.run_due()
        events = []
        for line in lines:
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
        assert [(e["type"], e["message"]["status"]) for e in events] == [
            ("message", "accepted"),
            ("status", "delivered"),
        ]


def test_wait_for_and_messages_filters() -> None:
    """``wait_for`` returns the first match; ``messages`` filters by address or person."""
    clock = VirtualClock()
    with running(clock=clock, delivery_delay=0) as sandbox:
        ann(sandbox)
        with anysend.Client(sandbox.providers("twilio"), sandbox=sandbox.url) as client:
            client.send(MESSAGE, to={"phone": "+48600100200"}).raise_for_status()
        delivered = sandbox.wait_for(lambda m: m.status == "delivered", timeout=5)
        assert delivered.to == "+48600100200"
        assert sandbox.messages("Ann") == sandbox.messages("+48600100200") == [delivered]
        with pytest.raises(TimeoutError):
            sandbox.wait_for(lambda m: m.status == "read", timeout=0.05)


def test_the_inbox_page_and_static_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """``/`` serves the page (a placeholder without one); ``/static/`` only its own files."""
    from anysend.sandbox import _routes

    with running() as sandbox, httpx.Client(base_url=sandbox.url) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert http.get("/static/..%2F_server.py").status_code == 404
        monkeypatch.setattr(_routes, "STATIC", tmp_path)
        assert b"anysend sandbox" in http.get("/").content
        (tmp_path / "app.js").write_text("ok")
        assert http.get("/static/app.js").text == "ok"
        assert http.get("/nowhere/at/all").status_code == 404


def test_the_background_thread_stops_cleanly() -> None:
    """Leaving the ``with`` block stops the server: the port no longer answers."""
    with running() as sandbox:
        url = sandbox.url
        assert httpx.get(f"{url}/_sandbox/api/people").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sandbox/api/people", timeout=2)


def test_blocking_methods_refuse_the_sandbox_loop() -> None:
    """Inside the sandbox's own loop the blocking twins say to use the a-prefixed ones."""

    async def main() -> None:
        sandbox = Sandbox(clock=VirtualClock())
        await sandbox.start()
        try:
            with pytest.raises(anysend.ConfigurationError, match="a-prefixed"):
                sandbox.run_due()
            assert await sandbox.arun_due() == 0
        finally:
            await sandbox.stop()

    asyncio.run(main())


def test_email_replies_come_through_mailgun() -> None:
    """A reply to mail sent by SendGrid arrives as a Mailgun route POST; push has no replies."""
    with running() as sandbox, httpx.Client(base_url=sandbox.url) as http:
        with anysend.Client(sandbox.providers("sendgrid"), sandbox=sandbox.url) as client:
            client.send(MESSAGE, to={"email": "ann@example.com"}).raise_for_status()
        answer = http.post(
            "/_sandbox/api/reply",
            json={"to": "ann@example.com", "text": "Thanks", "provider": "sendgrid"},
        )
        assert answer.status_code == 201
        reply = answer.json()
        assert (reply["provider"], reply["channel"], reply["subject"]) == (
            "mailgun",
            "email",
            "Re: Back in stock",
        )
        assert reply["to"] == "sandbox@example.com"
        refused = http.post("/_sandbox/api/reply", json={"to": "t", "text": "x", "provider": "fcm"})
        assert refused.status_code == 400
        assert "cannot simulate replies" in refused.json()["error"]


def test_malformed_requests_are_refused_not_crashed() -> None:
    """A body the sandbox cannot read is a 400 in the provider's shape (or a plain one)."""
    with running() as sandbox, httpx.Client(base_url=sandbox.url) as http:
        token = sandbox.credentials.telegram_token
        bad_json = http.post(
            f"/telegram/bot{token}/sendMessage",
            content=b"{",
            headers={"Content-Type": "application/json"},
        )
        assert bad_json.status_code == 400
        assert bad_json.json()["ok"] is False
        key = sandbox.credentials.sendgrid_key
        odd = http.post(
            "/sendgrid/v3/mail/send",
            json={"personalizations": [42], "from": {"email": "a@example.com"}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert odd.status_code == 400
        assert http.post("/sendgrid/v3/mail/send", json={}).status_code == 401


# -- a third-party provider taught to the sandbox ------------------------------------------------

ACME_KEY, ACME_SECRET = "sk_sandbox_acme", "whsec_sandbox_acme"
#: Acme's answer per scripted failure: HTTP status and error code.
ACME_REFUSALS = {
    "invalid_number": (400, "invalid_number"),
    "unsubscribed": (400, "opted_out"),
    "rate_limited": (429, "throttled"),
}


class AcmeAPI(ProviderAPI):
    """The made-up Acme SMS API (tests/acme_adapter.py) as a third party would fake it."""

    name = "acme"

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """``POST /v1/messages`` with the bearer key; ``{"id"}`` or Acme's error."""
        if request.method != "POST" or path != "v1/messages":
            return json_response({"error": {"code": "not_found", "message": path}}, 404)
        if request.headers.get("Authorization") != f"Bearer {ACME_KEY}":
            raise Refusal(json_response({"error": {"code": "unauthorized"}}, 401))
        data = await request.json()
        failure = self.check_failure(data["to"])
        message = SandboxMessage(
            id="acme-" + self.engine.hex(12),
            provider=self.name,
            channel="sms",
            direction="outbound",
            to=data["to"],
            sender=data["from"],
            person=data["to"],
            created_at=self.engine.now(),
            text=data["text"],
        )
        self.engine.accept(self, message, failure)
        return json_response({"id": message.id}, 201)

    def refusal(self, kind: str, address: str) -> web.Response:
        """Acme's error body."""
        status, code = ACME_REFUSALS.get(kind, (503, "unavailable"))
        return json_response({"error": {"code": code, "message": address}}, status)

    def delivered(self, message: SandboxMessage) -> Callback | None:
        """A signed ``delivered`` report."""
        return self._report(message, "delivered", None)

    def failed(self, message: SandboxMessage, kind: str) -> tuple[str, str, Callback | None]:
        """A signed ``failed`` report (unreachable)."""
        return "undeliverable", "acme: unreachable", self._report(message, "failed", "unreachable")

    def _report(self, message: SandboxMessage, status: str, code: str | None) -> Callback | None:
        url = self.callback_url()
        if url is None:
            return None
        at = int(self.engine.epoch())
        payload = {"id": message.id, "status": status, "timestamp": at, "error_code": code}
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Acme-Signature": acme_sign(body, ACME_SECRET, at),
        }
        return Callback(self.name, url, headers, body, message_id=message.id, event=status)


def _acme(sandbox: Sandbox) -> AcmeSMS:
    """The Acme adapter with the fake's credentials, its replay window on the sandbox clock."""
    acme = AcmeSMS(api_key=ACME_KEY, sender="Shop", webhook_secret=ACME_SECRET)
    acme.now = sandbox.epoch
    return acme


@pytest.mark.anyio
async def test_a_custom_api_runs_a_third_party_adapter() -> None:
    """A registered ProviderAPI: the adapter sends to it, the inbox and JSON API show the
    message, and its signed callback is verified into a real client's store."""
    clock = VirtualClock()
    async with (
        receiver_and_sandbox(clock, apis=[AcmeAPI], delivery_delay=5) as (
            sandbox,
            _,
            hooks,
        ),
        anysend.AsyncClient(
            [_acme(sandbox)], sandbox=sandbox.url, store=":memory:", clock=clock
        ) as client,
    ):
        hooks.app = WebhookApp(client, prefix="/hooks")
        sandbox.person("Ann", phone="+48600100200")
        result = await client.send(MESSAGE, to={"phone": "+48600100200"})
        assert result.ok, result.error
        assert result.provider == "acme"
        [message] = sandbox.messages("Ann")
        assert (message.id, message.provider, message.channel, message.text) == (
            result.provider_message_id,
            "acme",
            "sms",
            "Size 42 is back",
        )
        async with httpx.AsyncClient(base_url=sandbox.url) as http:
            listed = (await http.get("/_sandbox/api/messages?person=Ann")).json()
            info = (await http.get("/_sandbox/api/info")).json()
        assert [(m["id"], m["provider"]) for m in listed] == [(message.id, "acme")]
        assert "acme" in info["providers"]
        assert await _status(client, result.message_id) is DeliveryStatus.ACCEPTED
        clock.advance(5)
        assert await sandbox.arun_due() == 1
        assert sandbox.callbacks()[-1]["provider"] == "acme"
        assert sandbox.callbacks()[-1]["status"] == 200
        assert await _status(client, result.message_id) is DeliveryStatus.DELIVERED
        assert sandbox.messages()[0].status == "delivered"


@pytest.mark.anyio
async def test_a_custom_api_acts_out_scripted_failures() -> None:
    """A refusal in the provider's shape maps to its category; a bounce arrives as a signed
    failure callback; a forged callback is refused."""
    clock = VirtualClock()
    async with (
        receiver_and_sandbox(clock, apis=[AcmeAPI], delivery_delay=1) as (
            sandbox,
            _,
            hooks,
        ),
        anysend.AsyncClient(
            [_acme(sandbox)], sandbox=sandbox.url, store=":memory:", clock=clock
        ) as client,
    ):
        hooks.app = WebhookApp(client, prefix="/hooks")
        sandbox.fail("+48600000001", "invalid_number")
        sandbox.fail("+48600000002", "opted_out")
        sandbox.fail("+48600000003", "bounce")
        invalid = await client.send(MESSAGE, to={"phone": "+48600000001"})
        opted_out = await client.send(MESSAGE, to={"phone": "+48600000002"})
        bounced = await client.send(MESSAGE, to={"phone": "+48600000003"})
        assert invalid.error is not None
        assert invalid.error.category is ErrorCategory.INVALID_RECIPIENT
        assert opted_out.error is not None
        assert opted_out.error.category is ErrorCategory.OPTED_OUT
        assert bounced.ok  # accepted: Acme reports the failure later
        assert [m.to for m in sandbox.messages()] == ["+48600000003"]
        [message] = sandbox.messages()
        genuine = sandbox._apis["acme"].delivered(message)
        assert genuine is not None
        async with httpx.AsyncClient() as http:
            forged = genuine.body.replace(b'"delivered"', b'"failed"')
            answer = await http.post(genuine.url, content=forged, headers=genuine.headers)
        assert answer.status_code == 401
        clock.advance(1)
        await sandbox.arun_due()
        assert await _status(client, bounced.message_id) is DeliveryStatus.UNDELIVERABLE
        assert sandbox.messages()[0].status == "undeliverable"


def test_custom_api_names_are_checked() -> None:
    """A built-in's name, a taken name, a bad name, a non-API or a started sandbox: refused."""

    class Twilio(AcmeAPI):
        name = "twilio"

    class Nameless(AcmeAPI):
        name = ""

    class Sandboxed(AcmeAPI):
        name = "_sandbox"

    for api in (Twilio, Nameless, Sandboxed, AcmeSMS):
        with pytest.raises(anysend.ConfigurationError):
            Sandbox(apis=[api])  # type: ignore[list-item]
    with pytest.raises(anysend.ConfigurationError, match="already speaks 'acme'"):
        Sandbox(apis=[AcmeAPI, AcmeAPI])
    sandbox = Sandbox()
    sandbox.add_api(AcmeAPI)
    assert isinstance(sandbox._apis["acme"], AcmeAPI)
    with running() as started:
        with pytest.raises(anysend.ConfigurationError, match="before the sandbox starts"):
            started.add_api(AcmeAPI)
        with httpx.Client(base_url=started.url) as http:
            assert http.post("/acme/v1/messages").status_code == 404  # not taught: unknown
