"""``anysend.testing.WebhookServer``: the app's callback endpoint for tests against the sandbox.

Callbacks come from a real :class:`anysend.sandbox.Sandbox`, signed as the provider signs
them, through the server into a real store. Time is a ``VirtualClock``: callbacks fall due
when the test advances it; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading

import httpx
import pytest

import anysend
from anysend import DeliveryStatus, Message, Recipient
from anysend.testing import VirtualClock, WebhookServer

pytest.importorskip("aiohttp")
pytest.importorskip("aiosmtpd")

from anysend.sandbox import Sandbox

PHONE = "+48600100200"
SMS = Message(text="Your order has shipped")


def serving_threads() -> list[threading.Thread]:
    """The live threads a WebhookServer started."""
    return [t for t in threading.enumerate() if t.name.startswith("anysend-webhooks-")]


def test_importing_it_stays_light() -> None:
    """``from anysend.testing import WebhookServer`` loads no receiver, asyncio or httpx yet."""
    code = (
        "import sys\n"
        "from anysend.testing import WebhookServer\n"
        "import json\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(done.stdout))
    assert "anysend.testing._webhook_server" in loaded
    heavy = {"anysend.wsgi", "anysend.asgi", "asyncio", "httpx", "pydantic", "aiohttp"}
    assert heavy & loaded == set()


def test_url_is_known_before_serving() -> None:
    """The port is bound when the server is made: the URL, with its prefix, is there at once."""
    server = WebhookServer(prefix="hooks/")
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/hooks"
        assert server.prefix == "/hooks"
        assert server.port > 0
        assert not server.attached
        assert serving_threads() == []  # nothing serves before start()
    finally:
        server.close()
    bare = WebhookServer(prefix="")
    bare.close()
    assert bare.url == f"http://127.0.0.1:{bare.port}"
    assert WebhookServer.__module__ == "anysend.testing._webhook_server"


@pytest.mark.parametrize(("option", "value"), [("port", 70000), ("timeout", 0)])
def test_bad_options_are_refused(option: str, value: float) -> None:
    """An impossible port or timeout is a ConfigurationError, before anything is bound."""
    with pytest.raises(anysend.ConfigurationError, match=option):
        WebhookServer(**{option: value})  # type: ignore[arg-type]


def test_requests_before_attach_are_answered_503() -> None:
    """Until a client is attached (and after detach) the server answers 503."""
    with WebhookServer() as server:
        answer = httpx.post(f"{server.url}/twilio", content=b"x")
        assert answer.status_code == 503
        assert "attach" in answer.text
        with anysend.Client(store=":memory:") as client:
            server.attach(client)
            assert server.attached
            assert httpx.post(f"{server.url}/nope", content=b"x").status_code == 404
            server.detach()
            assert httpx.post(f"{server.url}/nope", content=b"x").status_code == 503


def test_a_signed_callback_reaches_the_store() -> None:
    """A sync Client: the sandbox's signed callback is verified into the store (503 before)."""
    clock = VirtualClock()
    with (
        WebhookServer() as hooks,
        Sandbox(webhook_url=hooks.url, clock=clock, delivery_delay=5, seed=1) as sandbox,
        anysend.Client(
            sandbox.providers("twilio"), sandbox=sandbox.url, store=":memory:", clock=clock
        ) as client,
    ):
        early = client.send(SMS, to=Recipient(phone=PHONE))
        clock.advance(5)
        sandbox.run_due()  # nothing attached yet: answered 503
        hooks.attach(client)
        late = client.send(SMS, to=Recipient(phone=PHONE))
        clock.advance(5)
        sandbox.run_due()
        assert client.store is not None
        first = client.store.get_message(str(early.message_id))
        second = client.store.get_message(str(late.message_id))
        assert first is not None
        assert second is not None
        assert first.status is not DeliveryStatus.DELIVERED
        assert second.status is DeliveryStatus.DELIVERED
        callbacks = sandbox.callbacks()
        assert [(c["provider"], c["status"]) for c in callbacks] == [
            ("twilio", 503),
            ("twilio", 200),
        ]
        # Twilio signs the whole URL it calls, query included: it reached the store intact.
        assert all(c["url"].startswith(f"{hooks.url}/twilio?") for c in callbacks)


def test_close_leaves_no_thread_and_no_socket() -> None:
    """Leaving ``with`` stops the thread and closes the port; close() again is harmless."""
    with WebhookServer() as server:
        assert [t.name for t in serving_threads()] == [f"anysend-webhooks-{server.port}"]
    assert serving_threads() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    server.close()
    with pytest.raises(anysend.ConfigurationError, match="closed"):
        server.attach(anysend.Client())
    with pytest.raises(anysend.ConfigurationError, match="closed"):
        server.start()


def test_an_async_client_needs_its_running_loop() -> None:
    """An AsyncClient attached outside an event loop is refused with a clear error."""
    client = anysend.AsyncClient()
    with WebhookServer() as server, pytest.raises(anysend.ConfigurationError, match="event loop"):
        server.attach(client)
    assert not server.attached


@pytest.mark.anyio
async def test_an_async_client_is_served_on_its_own_loop() -> None:
    """An AsyncClient: each callback runs on the client's loop; the store sees it."""
    clock = VirtualClock()
    async with WebhookServer() as hooks:
        sandbox = Sandbox(webhook_url=hooks.url, clock=clock, delivery_delay=5, seed=1)
        await sandbox.start()
        try:
            async with anysend.AsyncClient(
                sandbox.providers("twilio"), sandbox=sandbox.url, store=":memory:", clock=clock
            ) as client:
                hooks.attach(client)
                result = await client.send(SMS, to=Recipient(phone=PHONE))
                clock.advance(5)
                assert await sandbox.arun_due() == 1
                assert client.store is not None
                stored = await client.store.get_message(str(result.message_id))
                assert stored is not None
                assert stored.status is DeliveryStatus.DELIVERED
        finally:
            await sandbox.stop()
    assert [c["status"] for c in sandbox.callbacks()] == [200]
    assert serving_threads() == []


@pytest.mark.anyio
async def test_a_blocked_loop_is_answered_503() -> None:
    """A callback the AsyncClient's loop cannot run within ``timeout`` is answered 503."""
    async with (
        WebhookServer(timeout=0.05) as hooks,
        anysend.AsyncClient(store=":memory:") as client,
    ):
        hooks.attach(client)
        # The loop is blocked by this synchronous call, as by a sync ``sandbox.run_due()``.
        answer = httpx.post(f"{hooks.url}/nope", content=b"x")
        assert answer.status_code == 503
        assert "busy" in answer.text
        answer = await asyncio.to_thread(httpx.post, f"{hooks.url}/nope", content=b"x")
        assert answer.status_code == 404  # the loop is free: the ASGI app answers
