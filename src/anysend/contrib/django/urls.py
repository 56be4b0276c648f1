"""A URLconf to include: ``path("webhooks/", include("anysend.contrib.django.urls"))``.

It serves ``webhooks/<provider>`` (named ``anysend-webhook``) with
:func:`~anysend.contrib.django.webhook_view`.
"""

from __future__ import annotations

from django.urls import path

from anysend.contrib.django.views import webhook_view

__all__ = ["urlpatterns"]

urlpatterns = [path("<str:provider>", webhook_view, name="anysend-webhook")]
