r"""What Meta's Graph API adapters share: webhook signatures, the handshake, Graph errors.

Used by the WhatsApp Cloud API adapter (:mod:`anysend.providers.whatsapp`) and the Messenger
adapter. Everything here is pure (no I/O) and stable; adapters keep their own code tables.

* :func:`sign` and :func:`verify_signature`: Meta signs every webhook POST with
  ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>``
  (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads).
  The body is signed exactly as sent, with non-ASCII escaped as lowercase ``\uXXXX``, so
  verify the raw bytes, never a re-serialised copy. Meta signs no timestamp: no replay window
  is possible; deduplicate on the event ids instead.
* :func:`verify_subscription`: the ``GET`` handshake Meta makes when a callback URL is set up
  (``hub.mode=subscribe``, ``hub.verify_token``, ``hub.challenge``); answer 200 with the
  returned challenge as the body, or 403 when it raises.
* :func:`parse_graph_error` and :func:`graph_error`: the Graph API error object
  ``{"error": {"message", "type", "code", "error_subcode", "error_data", "is_transient",
  "fbtrace_id"}}`` (https://developers.facebook.com/docs/graph-api/guides/error-handling)
  read into a :class:`GraphError`, and turned into a :class:`~anysend.ProviderError`.
  :data:`GRAPH_ERROR_CODES` holds the codes every Graph product shares.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from anysend import (
    ErrorCategory,
    ProviderError,
    Reason,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import compare_signatures, error_from_response, response_body

__all__ = [
    "GRAPH_BASE_URL",
    "GRAPH_ERROR_CODES",
    "SIGNATURE_HEADER",
    "GraphError",
    "graph_error",
    "parse_graph_error",
    "sign",
    "verify_signature",
    "verify_subscription",
]

#: Where the Graph API lives (the version goes into the path: ``/v25.0/...``).
GRAPH_BASE_URL = "https://graph.facebook.com"

#: The header carrying Meta's webhook signature.
SIGNATURE_HEADER = "X-Hub-Signature-256"

#: Graph API error codes shared by every Meta product, and their categories
#: (https://developers.facebook.com/docs/graph-api/guides/error-handling). Adapters merge
#: their product's own codes over these.
GRAPH_ERROR_CODES: dict[int, ErrorCategory] = {
    0: ErrorCategory.AUTH,  # AuthException: the app user could not be authenticated
    1: ErrorCategory.UNAVAILABLE,  # API Unknown: possibly a server error
    2: ErrorCategory.UNAVAILABLE,  # API Service: temporary downtime or overload
    3: ErrorCategory.CONFIGURATION,  # API Method: the app lacks the capability
    4: ErrorCategory.RATE_LIMITED,  # API Too Many Calls: app-level rate limit
    10: ErrorCategory.AUTH,  # API Permission Denied
    17: ErrorCategory.RATE_LIMITED,  # API User Too Many Calls
    32: ErrorCategory.RATE_LIMITED,  # page-level rate limit
    102: ErrorCategory.AUTH,  # API Session: the session key is invalid
    190: ErrorCategory.AUTH,  # access token invalid or expired
    200: ErrorCategory.AUTH,  # API Permission (200-299)
    341: ErrorCategory.RATE_LIMITED,  # application limit reached
    368: ErrorCategory.CONFIGURATION,  # temporarily blocked for policy violations
    613: ErrorCategory.RATE_LIMITED,  # calls exceed the rate limit
}


@dataclass(frozen=True)
class GraphError:
    """A Graph API error object, with the fields adapters decide on.

    Attributes:
        code: ``error.code`` (an int), when present.
        subcode: ``error.error_subcode``, when present.
        message: ``error.message`` (Meta puts the code's title in it).
        type: ``error.type`` (``OAuthException``, ``GraphMethodException``, ...).
        details: ``error.error_data.details`` (WhatsApp's explanation), when present.
        transient: ``error.is_transient``: Meta says a retry may succeed.
        fbtrace_id: Meta's trace id for support requests.
    """

    code: int | None = None
    subcode: int | None = None
    message: str | None = None
    type: str | None = None
    details: str | None = None
    transient: bool = False
    fbtrace_id: str | None = None

    def describe(self) -> str:
        """The message and details as one line (``"Re-engagement message: More than..."``)."""
        parts = [p for p in (self.message, self.details) if p]
        return ": ".join(parts) if parts else "unknown Graph API error"


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<lowercase hex>``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(request: WebhookRequest, app_secret: str | None, *, provider: str) -> None:
    """Check the request's ``X-Hub-Signature-256`` against its raw body, in constant time.

    Args:
        request: the callback as received (raw body bytes).
        app_secret: the Meta app's secret; ``None`` or empty refuses every callback.
        provider: the adapter's name, for the error messages.

    Raises:
        WebhookVerificationError: no app secret set, no header, or a signature that does not
            match.
    """
    if not app_secret:
        raise WebhookVerificationError(f"{provider}: set app_secret to verify callbacks")
    given = request.header(SIGNATURE_HEADER)
    if not given:
        raise WebhookVerificationError(f"{provider} callback has no {SIGNATURE_HEADER} header")
    scheme, _, value = given.strip().partition("=")
    if scheme.lower() != "sha256" or not compare_signatures(
        sign(request.body, app_secret), f"sha256={value.lower()}"
    ):
        raise WebhookVerificationError(f"{provider} callback signature does not match")


def verify_subscription(request: WebhookRequest, verify_token: str | None, *, provider: str) -> str:
    """Check Meta's subscription handshake and return the ``hub.challenge`` to echo.

    Meta calls the callback URL with ``GET ?hub.mode=subscribe&hub.verify_token=<yours>&
    hub.challenge=<value>``; the endpoint answers 200 with the challenge as the plain-text
    body. The token is compared in constant time.

    Args:
        request: the GET request (its ``url`` carries the query).
        verify_token: the token typed into the app dashboard; ``None`` or empty refuses.
        provider: the adapter's name, for the error messages.

    Raises:
        WebhookVerificationError: no token set, a mode other than ``subscribe``, a wrong
            token, or no challenge (answer 403).
    """
    if not verify_token:
        raise WebhookVerificationError(f"{provider}: set verify_token to answer the handshake")
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    mode = query.get("hub.mode", [None])[0]
    token = query.get("hub.verify_token", [None])[0]
    challenge = query.get("hub.challenge", [None])[0]
    if mode != "subscribe":
        raise WebhookVerificationError(f"{provider} handshake has hub.mode {mode!r}")
    if not compare_signatures(verify_token, token):
        raise WebhookVerificationError(f"{provider} handshake verify token does not match")
    if not challenge:
        raise WebhookVerificationError(f"{provider} handshake has no hub.challenge")
    return challenge


def parse_graph_error(body: Any) -> GraphError | None:
    """Read a Graph API error body (a parsed JSON value); ``None`` when it is not one."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    return GraphError(
        code=_int(error.get("code")),
        subcode=_int(error.get("error_subcode")),
        message=_str(error.get("message")),
        type=_str(error.get("type")),
        details=_str(details),
        transient=error.get("is_transient") is True,
        fbtrace_id=_str(error.get("fbtrace_id")),
    )


def graph_error(
    response: httpx.Response,
    provider: str,
    *,
    codes: dict[int, ErrorCategory] | None = None,
    category: ErrorCategory | None = None,
    reason: Reason | None = None,
    contact_invalid: bool = False,
    retryable: bool | None = None,
) -> ProviderError:
    """The ProviderError for a failed Graph API response.

    The category is, in order: ``category`` when given; ``codes`` (the adapter's table, then
    :data:`GRAPH_ERROR_CODES`) looked up by the error's code; ``unavailable`` when Meta marks
    the error transient; the shared HTTP status mapping (401 auth, 429 rate limited with
    ``Retry-After``, 5xx unavailable). The error's ``code`` is the Graph code, with the subcode
    after a slash (``"100/33"``); ``raw`` is the parsed body.

    Args:
        response: the answer.
        provider: the adapter's name.
        codes: the adapter's own code table (merged over :data:`GRAPH_ERROR_CODES`).
        category: forces the category.
        reason: why, from the fixed list.
        contact_invalid: the address is dead for good.
        retryable: overrides the category's default.
    """
    error = parse_graph_error(response_body(response))
    if error is None:
        return error_from_response(response, provider, category=category, retryable=retryable)
    table = {**GRAPH_ERROR_CODES, **(codes or {})}
    if category is None and error.code is not None:
        category = table.get(error.code)
        if category is None and 200 <= error.code <= 299:
            category = ErrorCategory.AUTH
    if category is None and error.transient:
        category = ErrorCategory.UNAVAILABLE
    code = None
    if error.code is not None:
        code = str(error.code) if error.subcode is None else f"{error.code}/{error.subcode}"
    base = error_from_response(
        response,
        provider,
        message=f"{provider} refused the message: {error.describe()}",
        category=category,
        code=code,
        retryable=retryable,
    )
    base.reason = reason
    base.contact_invalid = contact_invalid
    return base


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
