"""The inbox's side of the server: the page, its static files, the JSON API and events.

Routes under ``/_sandbox/api/`` (``people``, ``messages``, ``events``, ``reply``, ``fail``,
``info``, ``callbacks``), ``/`` (the page, ``static/index.html``) and ``/static/{name}``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from anysend._exceptions import ConfigurationError
from anysend.sandbox._api import FAILURES, json_response
from anysend.sandbox._state import SandboxMessage

if TYPE_CHECKING:
    from anysend.sandbox._server import Sandbox

__all__ = ["PLACEHOLDER", "STATIC", "InboxRoutes"]

STATIC = Path(__file__).parent / "static"
PLACEHOLDER = (
    b"<!doctype html><meta charset=utf-8><title>anysend sandbox</title>"
    b"<h1>anysend sandbox</h1><p>The inbox page is not installed. The JSON API is at "
    b"<a href='/_sandbox/api/people'>/_sandbox/api/people</a>.</p>"
)


class InboxRoutes:
    """The page and the JSON API of one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def register(self, app: web.Application) -> None:
        """Add the routes to ``app``."""
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/_sandbox/api/people", self._people)
        app.router.add_get("/_sandbox/api/messages", self._messages)
        app.router.add_get("/_sandbox/api/events", self._events)
        app.router.add_get("/_sandbox/api/info", self._info)
        app.router.add_get("/_sandbox/api/callbacks", self._callbacks_route)
        app.router.add_post("/_sandbox/api/reply", self._reply_route)
        app.router.add_post("/_sandbox/api/fail", self._fail_route)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        page = STATIC / "index.html"
        if page.is_file():
            return web.FileResponse(page, headers={"Cache-Control": "no-cache"})
        return web.Response(body=PLACEHOLDER, content_type="text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    async def _people(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.sandbox.inbox.people())

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        person = request.query.get("person")
        return json_response([m.to_json() for m in self.sandbox.inbox.messages(person=person)])

    async def _info(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            {
                "url": self.sandbox.url,
                "smtp_port": self.sandbox.smtp_port,
                "webhook_url": self.sandbox.webhook_url,
                "providers": sorted(a.name for a in self.sandbox._apis.values()),
                "failures": FAILURES,
            }
        )

    async def _callbacks_route(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.sandbox.callbacks())

    def _refused(self, request: web.Request) -> web.StreamResponse | None:
        """Why a POST from a browser is refused: another site's page must not drive the API.

        A cross-site form or ``fetch`` cannot send ``Content-Type: application/json`` without
        a CORS preflight (which the sandbox never grants), and a browser always names the
        page's ``Origin`` on a POST; scripts and curl send no ``Origin`` and are let in.
        """
        if request.content_type != "application/json":
            return json_response({"error": "send Content-Type: application/json"}, 415)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return json_response({"error": f"requests from {origin} are refused"}, 403)
        return None

    async def _reply_route(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            data = await request.json()
            message = await self.sandbox._reply(
                str(data["to"]), str(data["text"]), data.get("provider"), data.get("subject")
            )
        except (ValueError, KeyError, TypeError, ConfigurationError) as exc:
            return json_response({"error": str(exc) or type(exc).__name__}, 400)
        return json_response(message.to_json(), 201)

    async def _fail_route(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            data = await request.json()
            self.sandbox.fail(str(data["address"]), data.get("error"), times=data.get("times"))
        except (ValueError, KeyError, TypeError, ConfigurationError) as exc:
            return json_response({"error": str(exc) or type(exc).__name__}, 400)
        return json_response({"address": data["address"], "error": data.get("error")})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def listener(kind: str, message: SandboxMessage) -> None:
            event = {"type": kind, "message": message.to_json()}
            loop.call_soon_threadsafe(queue.put_nowait, event)

        self.sandbox._streams.add(queue)
        stop = self.sandbox.inbox.listen(listener)
        try:
            await response.write(b": connected\n\n")
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter}, timeout=15)
                if not done:  # (not wait_for: see _wait)
                    getter.cancel()
                    await response.write(b": keep-alive\n\n")
                    continue
                event = getter.result()
                if event is None:
                    break
                data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                await response.write(f"data: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stop()
            self.sandbox._streams.discard(queue)
        return response
