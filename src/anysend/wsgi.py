"""Receive provider callbacks in any WSGI server or framework: :class:`WebhookApp`.

``WebhookApp`` is a plain WSGI (PEP 3333) application, the twin of
:class:`anysend.asgi.WebhookApp` for a sync ``anysend.Client``: the same routes, the same
answers. It answers ``POST {prefix}/{provider}`` for every provider configured on the client:
it hands the exact request to ``client.webhooks.handle(provider, request)``, which verifies
the callback before anything is stored, and answers what the provider expects
(:meth:`~anysend.providers.Provider.webhook_response`). ``GET {prefix}/{provider}`` answers
the provider's verification handshake (Meta's ``hub.challenge``), or is handled as a callback
for providers that can call back with ``GET`` (Twilio, Plivo, Vonage, SMSAPI).

Answers: ``401`` for a callback that fails verification, ``400`` for one that cannot be
parsed or whose body is shorter than its ``Content-Length`` (logged at WARNING on the
``anysend`` logger, without the body), ``404`` for a provider the client does not have,
``405`` for another method, ``413`` for a body over ``max_body`` bytes, ``500`` (logged with
the traceback, with nothing in the body) for any other error, which makes the provider try
again later.

Mount it in Flask with Werkzeug's ``DispatcherMiddleware``:

```python
import anysend
from anysend.wsgi import WebhookApp
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

client = anysend.Client.from_env(store="anysend.db")
app = Flask(__name__)
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/webhooks": WebhookApp(client)})
# Twilio's callback URL: https://app.example.com/webhooks/twilio
```

Or serve it alone with gunicorn (``gunicorn hooks:app``), with ``prefix="/webhooks"``.

Some providers sign the full URL they called (Twilio, Plivo), so the app rebuilds it from the
request: ``wsgi.url_scheme``, the ``Host`` header (or ``SERVER_NAME`` and ``SERVER_PORT``),
the mount path (``SCRIPT_NAME``), ``PATH_INFO`` and ``QUERY_STRING``. When the server gives
the request target as sent (``RAW_URI`` in gunicorn, ``REQUEST_URI`` in uWSGI), its path is
used, keeping the provider's own percent-encoding. Behind a proxy that terminates TLS or
rewrites the host, pass ``trust_forwarded=True`` to take the scheme and host from
``X-Forwarded-Proto`` and ``X-Forwarded-Host``; do so only when a proxy you run sets them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from anysend import _receiver
from anysend._exceptions import ConfigurationError
from anysend._logging import logger
from anysend._receiver import ReceiverClient, Refused

if TYPE_CHECKING:
    from anysend.providers import WebhookResponse

__all__ = ["WebhookApp"]

Environ = Mapping[str, Any]
StartResponse = Callable[..., Any]

#: How much of a body without ``Content-Length`` is read at a time.
_CHUNK = 65_536


class WebhookApp:
    """A WSGI application that receives provider callbacks for a sync anysend client.

    Args:
        client: an ``anysend.Client`` with a store (what ``client.webhooks`` needs). An
            ``AsyncClient`` is refused: serve it with :class:`anysend.asgi.WebhookApp`.
        prefix: the path before the provider's name (``"/hooks"`` serves ``/hooks/twilio``);
            empty when the app is mounted at its own path (``SCRIPT_NAME``).
        max_body: the largest body accepted, in bytes; a larger one is answered ``413``.
        trust_forwarded: take the scheme and host of the URL from ``X-Forwarded-Proto`` and
            ``X-Forwarded-Host`` (only behind a proxy that sets them).

    Attributes:
        client: the client callbacks are handed to.
        prefix: the normalised prefix (``""`` or ``"/hooks"``).
        max_body: the largest body accepted, in bytes.
        trust_forwarded: whether forwarded headers are read.

    Raises:
        ConfigurationError: ``client`` is an ``AsyncClient``.
        ValueError: ``max_body`` is negative.
    """

    def __init__(
        self,
        client: ReceiverClient,
        *,
        prefix: str = "",
        max_body: int = 1_048_576,
        trust_forwarded: bool = False,
    ) -> None:
        if inspect.iscoroutinefunction(getattr(client, "aclose", None)):
            raise ConfigurationError(
                "anysend.wsgi.WebhookApp needs a sync anysend.Client; "
                "serve an AsyncClient with anysend.asgi.WebhookApp"
            )
        self.client = client
        self.prefix = _receiver.normalise_prefix(prefix)
        self.max_body = _receiver.check_max_body(max_body)
        self.trust_forwarded = trust_forwarded

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r}, max_body={self.max_body})"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one WSGI request."""
        extra: list[tuple[str, str]] = []
        try:
            response = self._respond(environ)
            status, body, content_type = response.status, response.body, response.content_type
        except Refused as refused:
            status, body, content_type = refused.status, refused.text.encode(), _receiver.PLAIN
            extra = [(name.title(), value) for name, value in refused.headers]
        except Exception:  # before a provider was known, or a malformed answer
            logger.exception("webhook request failed")
            status, body, content_type = 500, b"internal server error", _receiver.PLAIN
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra]
        start_response(_receiver.status_line(status), headers)
        return [body]

    def _respond(self, environ: Environ) -> WebhookResponse:
        route, url_path = _paths(environ)
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        name, adapter = _receiver.route(self.client, self.prefix, route, method)
        headers = _headers(environ)
        body = self._body(name, environ)
        request = _receiver.make_request(
            method, self._url(environ, headers, url_path), headers, body
        )
        return _receiver.respond(self.client.webhooks, name, adapter, request)

    def _body(self, name: str, environ: Environ) -> bytes:
        """Read the whole body, refusing it (413) as soon as it is over ``max_body``.

        PEP 3333: an application reads no more than ``CONTENT_LENGTH``; without one, the
        body is read to its end only when the server says the stream ends there
        (``wsgi.input_terminated``, as for a chunked request in gunicorn), and is empty
        otherwise.
        """
        stream = environ.get("wsgi.input")
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if declared.isdigit():
            length = int(declared)
            if length > self.max_body:
                raise _receiver.too_large(name, self.max_body)
            body = _read(stream, length)
            if len(body) < length:
                logger.warning(
                    "webhook for %s refused: body ended after %d of %d bytes",
                    name,
                    len(body),
                    length,
                )
                raise Refused(400, "bad request")
            return body
        if stream is None or not environ.get("wsgi.input_terminated"):
            return b""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = stream.read(min(_CHUNK, self.max_body + 1 - size))
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_body:
                raise _receiver.too_large(name, self.max_body)
            chunks.append(chunk)

    def _url(self, environ: Environ, headers: dict[str, str], path: str) -> str:
        return _receiver.url(
            str(environ.get("wsgi.url_scheme") or "http"),
            headers,
            path,
            str(environ.get("QUERY_STRING") or ""),
            trust_forwarded=self.trust_forwarded,
            fallback_host=lambda scheme: _server_host(environ, scheme),
        )


# -- helpers ----------------------------------------------------------------------------------


def _read(stream: Any, length: int) -> bytes:
    """Up to ``length`` bytes of ``stream``: fewer only when it ends first."""
    if stream is None or length == 0:
        return b""
    chunks: list[bytes] = []
    remaining = length
    while remaining:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _paths(environ: Environ) -> tuple[str, str]:
    """The path below the mount point (decoded), and the full path for the URL (encoded).

    ``SCRIPT_NAME`` is the mount path and ``PATH_INFO`` the path below it. A server's
    ``RAW_URI`` or ``REQUEST_URI`` (the request target as sent), when it is a path, keeps the
    percent-encoding the provider used.
    """
    root = str(environ.get("SCRIPT_NAME") or "").rstrip("/")
    route = str(environ.get("PATH_INFO") or "") or "/"
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    raw_path = raw if raw.startswith("/") else None
    return route, _receiver.join_mount(root, route, raw_path, _quote)


def _quote(path: str) -> str:
    """Encode a WSGI path again: PEP 3333 gives the bytes as latin-1 characters."""
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:  # not a server's string: take it as text
        raw = path.encode("utf-8")
    return quote(raw, safe=_receiver.PATH_SAFE)


def _headers(environ: Environ) -> dict[str, str]:
    """The request headers by lowercase name (``HTTP_X_SIGNATURE`` as ``x-signature``)."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = str(value)
    return headers


def _server_host(environ: Environ, scheme: str) -> str:
    name = environ.get("SERVER_NAME")
    if not name:
        return "localhost"
    return _receiver.host_of(name, environ.get("SERVER_PORT") or None, scheme)
