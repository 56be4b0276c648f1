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
    from anysend._async._profiles import AsyncProfiles
    from anysend._async._store import AsyncSQLiteStore, AsyncStore
    from anysend._async._webhooks import AsyncWebhooks
    from anysend._bulk import BulkResult
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
    from anysend._flows import (
        AfterDelivery,
        Always,
        Digest,
        Failed,
        Flow,
        FrequencyCap,
        NotClicked,
        NotDelivered,
        NotOpened,
        NotRead,
        Policy,
        Step,
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
        QuietHours,
        Recipient,
    )
    from anysend._ratelimit import RateLimit
    from anysend._records import (
        HistoryEntry,
        Report,
        ReportRow,
        StepState,
        StoredMessage,
        StoredStep,
    )
    from anysend._results import Attempt, AttemptOutcome, ErrorInfo, Receipt, SendResult, SkipReason
    from anysend._retry import RetryPolicy
    from anysend._routing import ChannelLimits
    from anysend._status import DeliveryStatus, EventType, Reason
    from anysend._sync._client import Client
    from anysend._sync._profiles import Profiles
    from anysend._sync._store import SQLiteStore, Store
    from anysend._sync._webhooks import Webhooks
    from anysend._templates import RenderedContent, Templates

__all__ = [
    "AfterDelivery",
    "Always",
    "AnysendError",
    "AsyncClient",
    "AsyncProfiles",
    "AsyncSQLiteStore",
    "AsyncStore",
    "AsyncWebhooks",
    "Attachment",
    "Attempt",
    "AttemptOutcome",
    "BulkResult",
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
    "Digest",
    "ErrorCategory",
    "ErrorInfo",
    "EventType",
    "Failed",
    "Flow",
    "FrequencyCap",
    "HistoryEntry",
    "InboundMessage",
    "InvalidRecipientError",
    "Media",
    "Message",
    "NotClicked",
    "NotDelivered",
    "NotOpened",
    "NotRead",
    "OutboundMessage",
    "Policy",
    "Preferences",
    "Profiles",
    "ProviderError",
    "PushContent",
    "PushTarget",
    "QuietHours",
    "RateLimit",
    "Reason",
    "Receipt",
    "Recipient",
    "RenderedContent",
    "Report",
    "ReportRow",
    "RetryPolicy",
    "SQLiteStore",
    "SendResult",
    "SkipReason",
    "Step",
    "StepState",
    "Store",
    "StoredMessage",
    "StoredStep",
    "SystemClock",
    "TemplateError",
    "Templates",
    "UnsupportedFeatureError",
    "WebhookParseError",
    "WebhookRequest",
    "WebhookVerificationError",
    "Webhooks",
    "__version__",
]

# The public names load on first use (PEP 562), so that ``import anysend`` costs almost
# nothing until a name is used.
_EXPORTS: dict[str, str] = {
    "AfterDelivery": "anysend._flows",
    "Always": "anysend._flows",
    "AnysendError": "anysend._exceptions",
    "AsyncClient": "anysend._async._client",
    "AsyncProfiles": "anysend._async._profiles",
    "AsyncSQLiteStore": "anysend._async._store",
    "AsyncStore": "anysend._async._store",
    "AsyncWebhooks": "anysend._async._webhooks",
    "Attachment": "anysend._models",
    "Attempt": "anysend._results",
    "AttemptOutcome": "anysend._results",
    "BulkResult": "anysend._bulk",
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
    "Digest": "anysend._flows",
    "ErrorCategory": "anysend._exceptions",
    "ErrorInfo": "anysend._results",
    "EventType": "anysend._status",
    "Failed": "anysend._flows",
    "Flow": "anysend._flows",
    "FrequencyCap": "anysend._flows",
    "HistoryEntry": "anysend._records",
    "InboundMessage": "anysend._events",
    "InvalidRecipientError": "anysend._exceptions",
    "Media": "anysend._events",
    "Message": "anysend._models",
    "NotClicked": "anysend._flows",
    "NotDelivered": "anysend._flows",
    "NotOpened": "anysend._flows",
    "NotRead": "anysend._flows",
    "OutboundMessage": "anysend._models",
    "Policy": "anysend._flows",
    "Preferences": "anysend._models",
    "Profiles": "anysend._sync._profiles",
    "ProviderError": "anysend._exceptions",
    "PushContent": "anysend._models",
    "PushTarget": "anysend._models",
    "QuietHours": "anysend._models",
    "RateLimit": "anysend._ratelimit",
    "Reason": "anysend._status",
    "Receipt": "anysend._results",
    "Recipient": "anysend._models",
    "RenderedContent": "anysend._templates",
    "Report": "anysend._records",
    "ReportRow": "anysend._records",
    "RetryPolicy": "anysend._retry",
    "SQLiteStore": "anysend._sync._store",
    "SendResult": "anysend._results",
    "SkipReason": "anysend._results",
    "Step": "anysend._flows",
    "StepState": "anysend._records",
    "Store": "anysend._sync._store",
    "StoredMessage": "anysend._records",
    "StoredStep": "anysend._records",
    "SystemClock": "anysend._clock",
    "TemplateError": "anysend._exceptions",
    "Templates": "anysend._templates",
    "UnsupportedFeatureError": "anysend._exceptions",
    "WebhookParseError": "anysend._exceptions",
    "WebhookRequest": "anysend._events",
    "WebhookVerificationError": "anysend._exceptions",
    "Webhooks": "anysend._sync._webhooks",
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
