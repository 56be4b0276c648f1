"""Receive provider callbacks in any ASGI server or framework: :class:`WebhookApp`.

``WebhookApp`` is a plain ASGI 3 application (it needs no web framework). It answers
``POST {prefix}/{provider}`` for every provider configured on the client: it hands the exact
request to ``client.webhooks.handle(provider, request)``, which verifies the callback before
anything is stored, and answers what the provider expects
(:meth:`~anysend.providers.Provider.webhook_response`: an empty TwiML document for Twilio,
``OK`` for SMSAPI, an empty ``200`` for most). ``GET {prefix}/{provider}`` answers the
provider's verification handshake (Meta's ``hub.challenge`` for WhatsApp and Messenger), or
is handled as a callback for providers that can call back with ``GET`` (Twilio, Plivo,
Vonage, SMSAPI; see :attr:`~anysend.providers.Provider.webhook_methods`).

Answers: ``401`` for a callback that fails verification, ``400`` for one that cannot be
parsed (both logged at WARNING on the ``anysend`` logger, without the body), ``404`` for a
provider the client does not have, ``405`` for another method, ``413`` for a body over
``max_body`` bytes, ``500`` (logged with the traceback, with nothing in the body) for any
other error, which makes the provider try again later.

Mount it in Starlette or FastAPI:

```python
import anysend
from anysend.asgi import WebhookApp
from anysend.providers.twilio import Twilio
from fastapi import FastAPI

client = anysend.AsyncClient([Twilio(...)], store="anysend.db")
app = FastAPI()
app.mount("/webhooks", WebhookApp(client))
# Twilio's callback URL: https://app.example.com/webhooks/twilio
```

Or serve it alone with uvicorn (``uvicorn hooks:app``):

```python
# hooks.py
import anysend
from anysend.asgi import WebhookApp

client = anysend.AsyncClient.from_env(store="anysend.db")
app = WebhookApp(client, prefix="/webhooks", close_client_on_shutdown=True)
```

A sync ``anysend.Client`` works too: its blocking ``webhooks.handle`` runs in a worker thread.

Some providers sign the full URL they called (Twilio, Plivo), so the app rebuilds it from the
request: the scheme, the ``Host`` header, the mount path (``root_path``), the path and the
query. Behind a proxy that terminates TLS or rewrites the host, pass ``trust_forwarded=True``
to take the scheme and host from ``X-Forwarded-Proto`` and ``X-Forwarded-Host``; do so only
when a proxy you run sets them, as anyone can send these headers otherwise.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from anysend import _receiver
from anysend._logging import logger
from anysend._receiver import ReceiverClient, Refused

if TYPE_CHECKING:
    from anysend._events import WebhookRequest
    from anysend.providers import WebhookResponse

__all__ = ["WebhookApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PLAIN = _receiver.PLAIN.encode("latin-1")


class _Disconnected(Exception):
    """The caller went away before its body arrived: nothing to answer."""


class WebhookApp:
    """An ASGI 3 application that receives provider callbacks for an anysend client.

    Args:
        client: an ``anysend.AsyncClient`` or ``anysend.Client`` with a store (what
            ``client.webhooks`` needs).
        prefix: the path before the provider's name (``"/hooks"`` serves ``/hooks/twilio``);
            empty when the app is mounted at its own path.
        max_body: the largest body accepted, in bytes; a larger one is answered ``413``.
        trust_forwarded: take the scheme and host of the URL from ``X-Forwarded-Proto`` and
            ``X-Forwarded-Host`` (only behind a proxy that sets them).
        close_client_on_shutdown: close the client when the server shuts down (the ASGI
            lifespan ``shutdown`` event); off by default, as the client usually belongs to
            the application that mounts this one.

    Attributes:
        client: the client callbacks are handed to.
        prefix: the normalised prefix (``""`` or ``"/hooks"``).
        max_body: the largest body accepted, in bytes.
        trust_forwarded: whether forwarded headers are read.
    """

    def __init__(
        self,
        client: ReceiverClient,
        *,
        prefix: str = "",
        max_body: int = 1_048_576,
        trust_forwarded: bool = False,
        close_client_on_shutdown: bool = False,
    ) -> None:
        self.client = client
        self.prefix = _receiver.normalise_prefix(prefix)
        self.max_body = _receiver.check_max_body(max_body)
        self.trust_forwarded = trust_forwarded
        self.close_client_on_shutdown = close_client_on_shutdown

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r}, max_body={self.max_body})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (``http``, ``lifespan``; ``websocket`` is refused)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
        else:
            raise ValueError(f"WebhookApp does not serve ASGI scope type {kind!r}")

    # -- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = []
        try:
            response = await self._respond(scope, receive)
            status, body = response.status, response.body
            content_type = response.content_type.encode("latin-1")
        except Refused as refused:
            status, body, content_type = refused.status, refused.text.encode(), _PLAIN
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in refused.headers]
        except _Disconnected:
            return
        except Exception:  # before a provider was known, or a malformed answer
            logger.exception("webhook request failed")
            status, body, content_type = 500, b"internal server error", _PLAIN
        await _send(send, status, body, content_type, headers)

    async def _respond(self, scope: Scope, receive: Receive) -> WebhookResponse:
        route, url_path = self._paths(scope)
        method = str(scope["method"]).upper()
        name, adapter = _receiver.route(self.client, self.prefix, route, method)
        headers = _headers(scope)
        body = await self._body(name, headers, receive)
        request = _receiver.make_request(method, self._url(scope, headers, url_path), headers, body)
        with _receiver.outcomes(name):
            if method == "GET":
                answer = await self._call(self.client.webhooks.handshake, name, request)
                if answer is not None:
                    return cast("WebhookResponse", answer)
                _receiver.no_get_callbacks(adapter)
            events = await self._call(self.client.webhooks.handle, name, request)
            return adapter.webhook_response(request, events)

    @staticmethod
    async def _call(method: Callable[..., Any], name: str, request: WebhookRequest) -> Any:
        """Await an async client's method; run a sync client's in a worker thread."""
        if inspect.iscoroutinefunction(method):
            return await method(name, request)
        return await asyncio.to_thread(method, name, request)

    async def _body(self, name: str, headers: dict[str, str], receive: Receive) -> bytes:
        """Read the whole body, refusing it (413) as soon as it is over ``max_body``."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise _receiver.too_large(name, self.max_body)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _receiver.too_large(name, self.max_body)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- the URL as the provider saw it ---------------------------------------------------------

    @staticmethod
    def _paths(scope: Scope) -> tuple[str, str]:
        """The path below the mount point (decoded), and the full path for the URL (encoded).

        Servers and frameworks disagree on whether ``path`` already holds ``root_path``
        (Starlette's ``Mount`` keeps it, a proxy that strips the prefix does not): both are
        read. ``raw_path``, when given, keeps the percent-encoding the provider used.
        """
        root = str(scope.get("root_path") or "").rstrip("/")
        path = str(scope.get("path") or "/")
        route = path[len(root) :] if root and _receiver.under(path, root) else path
        raw = scope.get("raw_path")
        raw_path = bytes(raw).decode("latin-1") if raw else None
        return route, _receiver.join_mount(root, route, raw_path, _receiver.quote_path)

    def _url(self, scope: Scope, headers: dict[str, str], path: str) -> str:
        return _receiver.url(
            str(scope.get("scheme") or "http"),
            headers,
            path,
            bytes(scope.get("query_string") or b"").decode("latin-1"),
            trust_forwarded=self.trust_forwarded,
            fallback_host=lambda scheme: _server_host(scope, scheme),
        )

    # -- lifespan -------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.close_client_on_shutdown:
                    try:
                        await self._close_client()
                    except Exception as exc:
                        logger.exception("closing the anysend client at shutdown failed")
                        text = f"closing the anysend client failed: {type(exc).__name__}"
                        await send({"type": "lifespan.shutdown.failed", "message": text})
                        return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _close_client(self) -> None:
        aclose = getattr(self.client, "aclose", None)
        if aclose is not None and inspect.iscoroutinefunction(aclose):
            await aclose()
            return
        close = getattr(self.client, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


# -- helpers ----------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lowercase name; a repeated header's values joined by ``, ``."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _server_host(scope: Scope, scheme: str) -> str:
    server = scope.get("server")
    if not server:
        return "localhost"
    return _receiver.host_of(server[0], server[1], scheme)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
