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
from anysend._version import __version__

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
