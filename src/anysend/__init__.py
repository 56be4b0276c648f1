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
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from anysend._version import __version__

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

    from anysend._async._client import AsyncClient
    from anysend._async._pgstore import AsyncPostgresStore
    from anysend._async._profiles import AsyncProfiles
    from anysend._async._store import AsyncSQLiteStore, AsyncStore
    from anysend._async._webhooks import AsyncWebhooks
    from anysend._bulk import BulkResult
    from anysend._clock import Clock, SystemClock
    from anysend._events import DeliveryEvent, InboundMessage, Media, WebhookRequest
    from anysend._exceptions import (
        AnysendError,
        AnysendWarning,
        ConfigurationError,
        ContentError,
        DeliveryError,
        ErrorCategory,
        InsecureTransportWarning,
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
        IngestOutcome,
        PendingMessage,
        Report,
        ReportRow,
        ResultToSave,
        StepState,
        StepUpdate,
        StoredMessage,
        StoredStep,
    )
    from anysend._results import Attempt, AttemptOutcome, ErrorInfo, Receipt, SendResult, SkipReason
    from anysend._retry import RetryPolicy
    from anysend._routing import ChannelLimits
    from anysend._status import DeliveryStatus, EventType, Reason
    from anysend._sync._client import Client
    from anysend._sync._pgstore import PostgresStore
    from anysend._sync._profiles import Profiles
    from anysend._sync._store import SQLiteStore, Store
    from anysend._sync._webhooks import Webhooks
    from anysend._templates import RenderedContent, Templates

__all__ = [
    "AfterDelivery",
    "Always",
    "AnysendError",
    "AnysendWarning",
    "AsyncClient",
    "AsyncPostgresStore",
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
    "IngestOutcome",
    "InsecureTransportWarning",
    "InvalidRecipientError",
    "Media",
    "Message",
    "NotClicked",
    "NotDelivered",
    "NotOpened",
    "NotRead",
    "OutboundMessage",
    "PendingMessage",
    "Policy",
    "PostgresStore",
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
    "ResultToSave",
    "RetryPolicy",
    "SQLiteStore",
    "SendResult",
    "SkipReason",
    "Step",
    "StepState",
    "StepUpdate",
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
    "AnysendWarning": "anysend._exceptions",
    "AsyncClient": "anysend._async._client",
    "AsyncProfiles": "anysend._async._profiles",
    "AsyncPostgresStore": "anysend._async._pgstore",
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
    "IngestOutcome": "anysend._records",
    "InsecureTransportWarning": "anysend._exceptions",
    "InvalidRecipientError": "anysend._exceptions",
    "Media": "anysend._events",
    "Message": "anysend._models",
    "NotClicked": "anysend._flows",
    "NotDelivered": "anysend._flows",
    "NotOpened": "anysend._flows",
    "NotRead": "anysend._flows",
    "OutboundMessage": "anysend._models",
    "PendingMessage": "anysend._records",
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
    "ResultToSave": "anysend._records",
    "RetryPolicy": "anysend._retry",
    "PostgresStore": "anysend._sync._pgstore",
    "SQLiteStore": "anysend._sync._store",
    "SendResult": "anysend._results",
    "SkipReason": "anysend._results",
    "Step": "anysend._flows",
    "StepState": "anysend._records",
    "StepUpdate": "anysend._records",
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


class _HttpxCLIDeferrer:
    """Keeps httpx's ``__init__`` from importing its command line (``httpx._main``).

    httpx imports ``httpx._main`` on ``import httpx``, and with it click, pygments and rich
    whenever they happen to be installed: about 40 % of ``import httpx``, for a command line
    a library never runs. This one-shot import hook answers that one import, made while httpx
    initialises, with a stand-in whose ``main`` imports the real command line when called. It
    then leaves ``sys.modules`` and ``httpx`` as if ``httpx._main`` had never been imported,
    so an explicit ``import httpx._main`` later still loads the real module. The hook removes
    itself after that first look-up; if httpx was imported before anysend, it is not
    installed at all.
    """

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> ModuleSpec | None:
        if fullname != "httpx._main":
            return None
        # A new list rather than remove(): an import running in another thread may be
        # iterating the current one.
        sys.meta_path = [finder for finder in sys.meta_path if finder is not self]
        parent = sys.modules.get("httpx")
        if not getattr(getattr(parent, "__spec__", None), "_initializing", False):
            return None  # imported on purpose, not by httpx's __init__: the real module
        from importlib.machinery import ModuleSpec

        return ModuleSpec(fullname, cast("Loader", self))

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return _HttpxCLIStandIn(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        pass


def _httpx_main(*args: Any, **kwargs: Any) -> Any:
    """The command line of httpx (``httpx.main``), imported on first call."""
    try:
        from httpx._main import main
    except ImportError:  # what httpx's own fallback says
        print(
            "The httpx command line client could not run because the required "
            "dependencies were not installed.\nMake sure you've installed "
            "everything with: pip install 'httpx[cli]'"
        )
        sys.exit(1)
    return main(*args, **kwargs)


class _HttpxCLIStandIn(ModuleType):
    """What httpx's ``from ._main import main`` gets: hands over ``main`` and withdraws."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        parent = sys.modules.get("httpx")
        if getattr(parent, "_main", None) is self:
            delattr(parent, "_main")
        if name == "main":
            return _httpx_main
        # Anything else a later httpx may take from there: the real module, after all.
        return getattr(importlib.import_module(self.__name__), name)


if "httpx" not in sys.modules:
    sys.meta_path.insert(0, _HttpxCLIDeferrer())


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anysend' has no attribute {name!r}")
    # __import__ rather than importlib.import_module: ``python -X importtime`` then sees
    # these imports and everything under them where they happen.
    __import__(module)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
