"""anysend: one ``send()`` for every channel.

Email, SMS, push, WhatsApp, Telegram, Messenger, Viber, team chat and webhooks through
pluggable provider adapters, with templates, routing and fallback, retries, and one
delivery-status vocabulary::

    import anysend
    from anysend.providers.console import Console

    with anysend.Client([Console()]) as client:
        result = client.send(
            anysend.Message(text="Your size is back in stock"),
            to=anysend.Recipient(email="ann@example.com", phone="+48 600 700 800"),
            via=["email", "sms"],
        )
        result.raise_for_status()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from anysend._version import __version__

if TYPE_CHECKING:
    from anysend._async._client import AsyncClient
    from anysend._clock import Clock, SystemClock
    from anysend._events import DeliveryEvent, InboundMessage, Media, WebhookRequest
    from anysend._exceptions import (
        AnysendError,
        ConfigurationError,
        ContentError,
        DeliveryError,
        ErrorCategory,
        InvalidRecipientError,
        ProviderError,
        TemplateError,
        UnsupportedFeatureError,
        WebhookParseError,
        WebhookVerificationError,
    )
    from anysend._models import (
        Attachment,
        Channel,
        ChatTemplate,
        Message,
        OutboundMessage,
        Preferences,
        PushContent,
        PushTarget,
        Recipient,
    )
    from anysend._results import Attempt, AttemptOutcome, ErrorInfo, Receipt, SendResult, SkipReason
    from anysend._retry import RetryPolicy
    from anysend._routing import ChannelLimits
    from anysend._status import DeliveryStatus, EventType, Reason
    from anysend._sync._client import Client
    from anysend._templates import RenderedContent, Templates

__all__ = [
    "AnysendError",
    "AsyncClient",
    "Attachment",
    "Attempt",
    "AttemptOutcome",
    "Channel",
    "ChannelLimits",
    "ChatTemplate",
    "Client",
    "Clock",
    "ConfigurationError",
    "ContentError",
    "DeliveryError",
    "DeliveryEvent",
    "DeliveryStatus",
    "ErrorCategory",
    "ErrorInfo",
    "EventType",
    "InboundMessage",
    "InvalidRecipientError",
    "Media",
    "Message",
    "OutboundMessage",
    "Preferences",
    "ProviderError",
    "PushContent",
    "PushTarget",
    "Reason",
    "Receipt",
    "Recipient",
    "RenderedContent",
    "RetryPolicy",
    "SendResult",
    "SkipReason",
    "SystemClock",
    "TemplateError",
    "Templates",
    "UnsupportedFeatureError",
    "WebhookParseError",
    "WebhookRequest",
    "WebhookVerificationError",
    "__version__",
]

# The public names load on first use (PEP 562), so that ``import anysend`` costs almost
# nothing until a name is used.
_EXPORTS: dict[str, str] = {
    "AnysendError": "anysend._exceptions",
    "AsyncClient": "anysend._async._client",
    "Attachment": "anysend._models",
    "Attempt": "anysend._results",
    "AttemptOutcome": "anysend._results",
    "Channel": "anysend._models",
    "ChannelLimits": "anysend._routing",
    "ChatTemplate": "anysend._models",
    "Client": "anysend._sync._client",
    "Clock": "anysend._clock",
    "ConfigurationError": "anysend._exceptions",
    "ContentError": "anysend._exceptions",
    "DeliveryError": "anysend._exceptions",
    "DeliveryEvent": "anysend._events",
    "DeliveryStatus": "anysend._status",
    "ErrorCategory": "anysend._exceptions",
    "ErrorInfo": "anysend._results",
    "EventType": "anysend._status",
    "InboundMessage": "anysend._events",
    "InvalidRecipientError": "anysend._exceptions",
    "Media": "anysend._events",
    "Message": "anysend._models",
    "OutboundMessage": "anysend._models",
    "Preferences": "anysend._models",
    "ProviderError": "anysend._exceptions",
    "PushContent": "anysend._models",
    "PushTarget": "anysend._models",
    "Reason": "anysend._status",
    "Receipt": "anysend._results",
    "Recipient": "anysend._models",
    "RenderedContent": "anysend._templates",
    "RetryPolicy": "anysend._retry",
    "SendResult": "anysend._results",
    "SkipReason": "anysend._results",
    "SystemClock": "anysend._clock",
    "TemplateError": "anysend._exceptions",
    "Templates": "anysend._templates",
    "UnsupportedFeatureError": "anysend._exceptions",
    "WebhookParseError": "anysend._exceptions",
    "WebhookRequest": "anysend._events",
    "WebhookVerificationError": "anysend._exceptions",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anysend' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
