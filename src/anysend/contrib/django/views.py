"""The webhook view: provider callbacks received by Django, answered as by ``WebhookApp``.

``webhook_view`` serves one URL per provider (``path("webhooks/<str:provider>",
webhook_view)``, or ``include("anysend.contrib.django.urls")``), with the answers of
:class:`anysend.wsgi.WebhookApp`: the provider's own answer, ``401`` for a callback that
fails verification, ``400`` for one that cannot be parsed, ``404`` for a provider the client
does not have, ``405`` for another method, ``413`` for a body over Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE``, ``500`` for anything else.

The URL handed to the signature check is ``request.build_absolute_uri()``: Django's
``ALLOWED_HOSTS``, ``USE_X_FORWARDED_HOST`` and ``SECURE_PROXY_SSL_HEADER`` decide the host
and scheme behind a proxy.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from anysend import _receiver
from anysend._logging import logger
from anysend._receiver import Refused
from anysend.contrib.django._client import get_client

__all__ = ["webhook_view"]


@csrf_exempt
def webhook_view(request: HttpRequest, provider: str) -> HttpResponse:
    """Receive one provider callback (or handshake) for the shared client.

    Args:
        request: the request, as the provider sent it.
        provider: the name of a provider of ``settings.ANYSEND`` (from the URL pattern).

    Returns:
        The answer the provider expects, or the error status (see the module).
    """
    try:
        client = get_client()
        method = str(request.method or "GET").upper()
        name, adapter = _receiver.route(client, "", "/" + provider, method)
        try:
            body = request.body
        except RequestDataTooBig:
            raise _receiver.too_large(name, _max_body()) from None
        headers = {key.lower(): value for key, value in request.headers.items()}
        url = request.build_absolute_uri()
        webhook_request = _receiver.make_request(method, url, headers, body)
        answer = _receiver.respond(client.webhooks, name, adapter, webhook_request)
    except Refused as refused:
        response = HttpResponse(refused.text, status=refused.status, content_type=_receiver.PLAIN)
        for header, value in refused.headers:
            response[header.title()] = value
        return response
    except Exception as exc:
        if _is_suspicious(exc):  # a host not in ALLOWED_HOSTS: Django answers 400 itself
            raise
        logger.exception("webhook request failed")
        return HttpResponse("internal server error", status=500, content_type=_receiver.PLAIN)
    return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)


def _max_body() -> int:
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return int(limit) if limit is not None else 0


def _is_suspicious(exc: Exception) -> bool:
    from django.core.exceptions import SuspiciousOperation

    return isinstance(exc, SuspiciousOperation)
