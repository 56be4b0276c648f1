"""anysend in Django: settings, a shared client, an email backend and a webhook view.

In ``settings.py``::

    ANYSEND = {
        "PROVIDERS": ["smtp://apikey:secret@smtp.example.com:587?from=shop@example.com"],
        "STORE": BASE_DIR / "anysend.db",
        "TEMPLATES": BASE_DIR / "messages",
    }
    EMAIL_BACKEND = "anysend.contrib.django.EmailBackend"

and in ``urls.py``: ``path("webhooks/", include("anysend.contrib.django.urls"))`` (or
``path("webhooks/<str:provider>", webhook_view)``).

- :func:`get_client`: the ``anysend.Client`` of ``settings.ANYSEND``, built on first use;
- :class:`EmailBackend`: ``django.core.mail`` sends through that client;
- :func:`webhook_view`: provider callbacks verified, stored and answered.
"""

from __future__ import annotations

from anysend.contrib.django._client import build_client, get_client, reset_client
from anysend.contrib.django._mail import EmailBackend, to_messages
from anysend.contrib.django.views import webhook_view

__all__ = [
    "EmailBackend",
    "build_client",
    "get_client",
    "reset_client",
    "to_messages",
    "webhook_view",
]
