"""What the webhook receivers share: routing, the URL, the answers and their error mapping.

:mod:`anysend.asgi`, :mod:`anysend.wsgi` and :mod:`anysend.contrib.django` serve the same
routes with the same answers; only reading the request and writing the answer differ. This
module holds the rest, free of any server interface: which provider a path names, which
methods it takes (``404``/``405``), the limit on the body (``413``), the URL as the provider
called it, and how the outcome of ``client.webhooks`` maps to ``401``/``400``/``500``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote

from anysend._exceptions import WebhookParseError, WebhookVerificationError
from anysend._logging import logger

if TYPE_CHECKING:
    from anysend._events import WebhookRequest
    from anysend.providers import Provider, WebhookResponse

PLAIN = "text/plain; charset=utf-8"
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Characters left as they are when a decoded path is quoted back into a URL.
PATH_SAFE = "/!$&'()*+,;=:@-._~"


class Webhooks(Protocol):
    """What the receivers use of ``client.webhooks``."""

    def handle(self, provider: str, request: WebhookRequest, /) -> Any: ...

    def handshake(self, provider: str, request: WebhookRequest, /) -> Any: ...


class ReceiverClient(Protocol):
    """What the receivers use of ``anysend.Client`` and ``anysend.AsyncClient``."""

    @property
    def providers(self) -> Mapping[str, Provider]: ...

    @property
    def webhooks(self) -> Webhooks: ...


class Refused(Exception):
    """Stop handling and answer with this status (an expected outcome, not an error)."""

    def __init__(self, status: int, text: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or []


def normalise_prefix(prefix: str) -> str:
    """``"hooks/"`` as ``"/hooks"``; an empty prefix stays empty."""
    stripped = prefix.strip("/")
    return f"/{stripped}" if stripped else ""


def check_max_body(max_body: int) -> int:
    """``max_body`` itself, refused when negative."""
    if max_body < 0:
        raise ValueError("max_body must not be negative")
    return max_body


def provider_name(prefix: str, route: str) -> str | None:
    """The provider named by the path below the mount point, if it has the receiver's shape."""
    if prefix:
        if not route.startswith(prefix + "/"):
            return None
        route = route[len(prefix) :]
    name = route[1:] if route.startswith("/") else ""
    return name if name and "/" not in name else None


def route(client: ReceiverClient, prefix: str, path: str, method: str) -> tuple[str, Provider]:
    """The provider's name and adapter for a request, or :class:`Refused` (``404``, ``405``)."""
    name = provider_name(prefix, path)
    adapter = client.providers.get(name) if name else None
    if name is None or adapter is None:
        raise Refused(404, "not found")
    if method not in ("GET", "POST"):
        methods = adapter.webhook_methods
        raise Refused(405, "method not allowed", [allow(methods, get=_get_allowed(adapter))])
    return name, adapter


def too_large(name: str, max_body: int) -> Refused:
    """The ``413`` answer for a body over ``max_body``, logged."""
    logger.warning("webhook for %s refused: body over %d bytes", name, max_body)
    return Refused(413, "payload too large")


@contextmanager
def outcomes(name: str) -> Iterator[None]:
    """Map what handling a callback raised to its answer: ``401``, ``400`` or ``500``."""
    try:
        yield
    except WebhookVerificationError as exc:
        logger.warning("webhook for %s refused: %s", name, exc)
        raise Refused(401, "unauthorized") from None
    except WebhookParseError as exc:
        logger.warning("webhook for %s not understood: %s", name, exc)
        raise Refused(400, "bad request") from None
    except Refused:
        raise
    except Exception:
        logger.exception("webhook for %s failed", name)
        raise Refused(500, "internal server error") from None


def respond(
    webhooks: Webhooks, name: str, adapter: Provider, request: WebhookRequest
) -> WebhookResponse:
    """Hand a request to a sync client's ``webhooks``; what the provider is answered.

    ``GET`` is the provider's handshake first, then a callback for providers that call back
    with ``GET``. Errors are mapped by :func:`outcomes`.
    """
    with outcomes(name):
        if request.method == "GET":
            answer = webhooks.handshake(name, request)
            if answer is not None:
                return cast("WebhookResponse", answer)
            no_get_callbacks(adapter)
        events = webhooks.handle(name, request)
        return adapter.webhook_response(request, events)


def no_get_callbacks(adapter: Provider) -> None:
    """Refuse (``405``) a ``GET`` that was no handshake, unless the provider calls back so."""
    if "GET" not in adapter.webhook_methods:
        raise Refused(405, "method not allowed", [allow(adapter.webhook_methods)])


def make_request(method: str, url: str, headers: dict[str, str], body: bytes) -> WebhookRequest:
    """The :class:`~anysend.WebhookRequest` handed to ``client.webhooks``."""
    from anysend._events import WebhookRequest  # pydantic is imported on the first request

    return WebhookRequest(method=method, url=url, headers=headers, body=body)


def _get_allowed(adapter: Provider) -> bool:
    from anysend.providers import Provider

    return "GET" in adapter.webhook_methods or type(adapter).handshake is not Provider.handshake


def allow(methods: frozenset[str], *, get: bool = False) -> tuple[str, str]:
    """The ``Allow`` header listing ``methods`` (and ``GET`` when ``get``)."""
    allowed = set(methods) | ({"GET"} if get else set())
    return ("allow", ", ".join(sorted(allowed)))


def first(value: str | None) -> str:
    """The first of a comma-separated header's values (the one the outermost proxy set)."""
    return (value or "").split(",")[0].strip()


def under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    return path == root or path.startswith(root + "/")


def quote_path(path: str) -> str:
    """A decoded path percent-encoded again for a URL."""
    return quote(path, safe=PATH_SAFE)


def join_mount(root: str, route: str, raw: str | None, encode: Callable[[str], str]) -> str:
    """The encoded path of the URL: the mount path ``root`` and the path below it.

    ``raw``, when the server gives it, is the path as sent, with the provider's own
    percent-encoding: it is kept, with the mount path put in front when the server (or a
    proxy) left it out.
    """
    if raw:
        raw_path = raw.partition("?")[0]
        quoted_root = encode(root)
        if root and not under(raw_path, quoted_root):
            raw_path = quoted_root + raw_path
        return raw_path
    return encode(root + route)


def url(
    scheme: str,
    headers: Mapping[str, str],
    path: str,
    query: str,
    *,
    trust_forwarded: bool,
    fallback_host: Callable[[str], str],
) -> str:
    """The URL the provider called: scheme, host, encoded path and query.

    The host is the ``Host`` header, or ``fallback_host(scheme)`` (the server's address)
    without one; with ``trust_forwarded``, ``X-Forwarded-Proto`` (``http``/``https`` only)
    and ``X-Forwarded-Host`` win.
    """
    scheme = scheme.lower() or "http"
    host = headers.get("host")
    if trust_forwarded:
        proto = first(headers.get("x-forwarded-proto")).lower()
        if proto in DEFAULT_PORTS:
            scheme = proto
        host = first(headers.get("x-forwarded-host")) or host
    if not host:
        host = fallback_host(scheme)
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def host_of(host: object, port: object, scheme: str) -> str:
    """``host[:port]`` of a server address, the port left out when it is the scheme's."""
    text = str(host)
    if ":" in text:  # an IPv6 address
        text = f"[{text}]"
    if port is None or port == "" or str(port) == str(DEFAULT_PORTS.get(scheme)):
        return text
    return f"{text}:{port}"


def status_line(status: int) -> str:
    """``"200 OK"``: a status code with its reason phrase, for WSGI."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"
