"""``WebhookServer``: your app's callback endpoint on 127.0.0.1, for tests against the sandbox.

The sandbox (:class:`anysend.sandbox.Sandbox`) needs the URL its callbacks go to when it is
made, and the client needs the sandbox's credentials, so the endpoint has to exist before
the client does. ``WebhookServer`` binds a free port at once (its :attr:`~WebhookServer.url`
is known), serves from a background thread, and answers ``503`` until
:meth:`~WebhookServer.attach` plugs a client's webhook app in. It is wsgiref from the
standard library: no web server to install.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from anysend._exceptions import ConfigurationError
from anysend._logging import logger
from anysend._receiver import PLAIN, ReceiverClient, normalise_prefix
from anysend._receiver import status_line as _status_line

__all__ = ["WebhookServer"]

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

#: How often (seconds) the serving thread looks for a shutdown request.
_POLL = 0.05


class WebhookServer:
    """Your app's callback endpoint for tests: anysend's webhook app on a local port.

    The port is bound when the server is made, so :attr:`url` can be handed to
    ``Sandbox(webhook_url=...)`` before the client exists; :meth:`attach` plugs the client
    in afterwards. Until then (and after :meth:`detach`) every request is answered
    ``503 Service Unavailable``, which the sandbox's ``callbacks()`` record shows.

    ```python
    with (
        WebhookServer() as hooks,
        Sandbox(webhook_url=hooks.url) as sandbox,
        anysend.Client(sandbox.providers(), sandbox=sandbox.url, store=":memory:") as client,
    ):
        hooks.attach(client)  # callbacks now reach client.store
    ```

    A sync ``anysend.Client`` is served by :class:`anysend.wsgi.WebhookApp` in the server's
    thread. An ``anysend.AsyncClient`` belongs to the event loop it runs on, so it is served
    by :class:`anysend.asgi.WebhookApp` on *that* loop: call :meth:`attach` from inside it,
    and keep the loop free while callbacks arrive (``await sandbox.arun_due()``, never the
    blocking ``sandbox.run_due()``).

    Args:
        prefix: the path before the provider's name: callbacks for Twilio arrive at
            ``{url}/twilio``.
        host: the address to listen on.
        port: the port; ``0`` picks a free one.
        timeout: with an ``AsyncClient``, how long (seconds) a request waits for the client's
            event loop before it is answered ``503``.

    Attributes:
        prefix: the normalised prefix (``"/webhooks"``, or ``""``).
        timeout: the seconds a request waits for an ``AsyncClient``'s event loop.

    Raises:
        ConfigurationError: ``port`` is out of range or ``timeout`` is not positive.
        OSError: the port cannot be bound.
    """

    def __init__(
        self,
        *,
        prefix: str = "/webhooks",
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 5.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError("port is between 0 and 65535")
        if not timeout > 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        self.prefix = normalise_prefix(prefix)
        self.timeout = timeout
        self._app: WSGIApp | None = None
        self._server: WSGIServer = make_server(host, port, self._dispatch, handler_class=_Handler)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._host = host

    def __repr__(self) -> str:
        state = "closed" if self._closed else "attached" if self._app else "waiting"
        return f"{type(self).__name__}(url={self.url!r}, {state})"

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The callback URL with the prefix (``http://127.0.0.1:PORT/webhooks``)."""
        return f"http://{self._host}:{self.port}{self.prefix}"

    @property
    def attached(self) -> bool:
        """Whether a client is plugged in (otherwise requests are answered ``503``)."""
        return self._app is not None

    # -- the client -------------------------------------------------------------------------------

    def attach(self, client: ReceiverClient) -> None:
        """Serve ``client``'s callbacks from now on (replacing a client attached before).

        Args:
            client: an ``anysend.Client`` or ``anysend.AsyncClient`` with a store (what
                ``client.webhooks`` needs).

        Raises:
            ConfigurationError: ``client`` is an ``AsyncClient`` and no event loop is running
                here, or the server is closed.
        """
        if self._closed:
            raise ConfigurationError("this WebhookServer is closed")
        if inspect.iscoroutinefunction(getattr(client, "aclose", None)):
            self._app = _on_loop(client, self.prefix, self.timeout)
            return
        from anysend.wsgi import WebhookApp  # only when a client is attached

        self._app = WebhookApp(client, prefix=self.prefix)

    def detach(self) -> None:
        """Answer ``503`` again, as before :meth:`attach` (to test a provider's retries)."""
        self._app = None

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> WebhookServer:
        """Start serving in a background thread (``with`` does it for you)."""
        if self._closed:
            raise ConfigurationError("this WebhookServer is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                args=(_POLL,),
                name=f"anysend-webhooks-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, wait for the thread and close the socket (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        self._app = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> WebhookServer:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        import asyncio  # only async tests need it

        await asyncio.to_thread(self.close)  # a request in flight may need this loop

    # -- serving ----------------------------------------------------------------------------------

    def _dispatch(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        app = self._app
        if app is None:
            return _plain(start_response, 503, b"no client attached: call WebhookServer.attach()")
        return app(environ, start_response)


class _Handler(WSGIRequestHandler):
    """wsgiref's handler without the access log, keeping the request target as sent."""

    timeout = 30  # a caller that stops sending cannot hold the (single) serving thread

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["RAW_URI"] = self.path  # the percent-encoding the provider signed
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: tests print what they mean to."""


def _plain(start_response: StartResponse, status: int, text: bytes) -> list[bytes]:
    headers = [("Content-Type", PLAIN), ("Content-Length", str(len(text)))]
    start_response(_status_line(status), headers)
    return [text]


def _on_loop(client: ReceiverClient, prefix: str, timeout: float) -> WSGIApp:
    """A WSGI app that runs ``anysend.asgi.WebhookApp`` on the running loop, which owns ``client``.

    An ``AsyncClient`` (its HTTP pool, its store, its locks) may only be used on its own
    event loop, so each request is handed over to that loop and the serving thread waits
    for the answer.
    """
    import asyncio  # only for an AsyncClient
    import concurrent.futures

    from anysend.asgi import WebhookApp

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            "attach an AsyncClient from inside the event loop it runs on "
            "(in the async test, after the client is made)"
        ) from None
    app = WebhookApp(client, prefix=prefix)

    def serve(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        scope = _scope(environ)
        body = _read_body(environ)
        answer: dict[str, Any] = {"status": 500, "headers": [], "body": []}
        delivered = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in message.get("headers", ())
                ]
            elif message["type"] == "http.response.body":
                answer["body"].append(bytes(message.get("body", b"")))

        if loop.is_closed():
            return _plain(start_response, 503, b"the AsyncClient's event loop is closed")
        future = asyncio.run_coroutine_threadsafe(app(scope, receive, send), loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:  # TimeoutError itself from Python 3.11 on
            future.cancel()
            logger.warning(
                "webhook not served: the AsyncClient's event loop did not run it within %s s "
                "(is it blocked, by sandbox.run_due() for instance?)",
                timeout,
            )
            return _plain(start_response, 503, b"the AsyncClient's event loop is busy")
        except Exception:  # the loop stopped and dropped it
            logger.warning("webhook not served: the AsyncClient's event loop dropped it")
            return _plain(start_response, 503, b"the AsyncClient's event loop is gone")
        start_response(_status_line(int(answer["status"])), answer["headers"])
        return list(answer["body"])

    return serve


def _read_body(environ: Environ) -> bytes:
    """The body as ``Content-Length`` announces it (wsgiref does not take chunked bodies)."""
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    stream = environ.get("wsgi.input")
    if not declared.isdigit() or stream is None:
        return b""
    return bytes(stream.read(int(declared)))


def _scope(environ: Environ) -> dict[str, Any]:
    """The ASGI ``http`` scope of a wsgiref request."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), str(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append((key.replace("_", "-").lower(), str(value)))
    raw = str(environ.get("RAW_URI") or "")
    raw_path = raw.split("?", 1)[0].encode("latin-1", "replace")
    path = str(environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": str(environ.get("REQUEST_METHOD") or "GET"),
        "scheme": str(environ.get("wsgi.url_scheme") or "http"),
        "path": path,
        "raw_path": raw_path or None,
        "query_string": str(environ.get("QUERY_STRING") or "").encode("latin-1"),
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": (str(environ.get("REMOTE_ADDR") or ""), 0),
        "server": (str(environ.get("SERVER_NAME") or ""), int(environ.get("SERVER_PORT") or 0)),
    }
