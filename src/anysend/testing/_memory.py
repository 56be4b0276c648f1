"""``MemoryProvider``: an adapter that keeps messages in a list and fails on demand."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import ClassVar

from anysend._exceptions import ErrorCategory, ProviderError
from anysend._models import Channel, OutboundMessage
from anysend._results import Receipt
from anysend.providers._base import Capabilities, Provider, ProviderSettings

__all__ = ["MemoryProvider", "MemorySettings"]


class MemorySettings(ProviderSettings):
    """Settings of :class:`MemoryProvider`.

    Attributes:
        name: the provider name (give two memory providers different names to test failover).
        channels: the channels it serves (all by default).
        idempotency: behave like a provider that takes idempotency keys: a repeated key
            returns the first receipt without recording the message again.
    """

    name: str = "memory"
    channels: frozenset[Channel] = frozenset(Channel)
    idempotency: bool = True


class MemoryProvider(Provider):
    """Records every message it is given; can be told to fail in any error category.

    Example:
        ```python
        from anysend import ErrorCategory
        from anysend.testing import MemoryProvider

        sms = MemoryProvider(name="sms-primary", channels={"sms"})
        sms.fail(ErrorCategory.UNAVAILABLE, times=2)   # the next two sends fail
        ```

    Attributes:
        messages: every message accepted, in order.
    """

    name: ClassVar[str] = "memory"
    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)
    capabilities: ClassVar[Capabilities] = Capabilities(
        html=True,
        attachments=True,
        inline_images=True,
        cc_bcc=True,
        reply_to=True,
        headers=True,
        metadata=True,
        tags=True,
        send_at=True,
        chat_templates=True,
        idempotency=True,
    )
    Settings: ClassVar[type[ProviderSettings]] = MemorySettings
    settings: MemorySettings

    def __init__(self, settings: MemorySettings | None = None, /, **kwargs: object) -> None:
        super().__init__(settings, **kwargs)
        # Per-instance name, channels and capabilities (ClassVars describe the default).
        self.name = self.settings.name  # type: ignore[misc]
        self.channels = self.settings.channels  # type: ignore[misc]
        if not self.settings.idempotency:
            self.capabilities = self.capabilities.model_copy(  # type: ignore[misc]
                update={"idempotency": False}
            )
        self.messages: list[OutboundMessage] = []
        self.calls = 0
        self._failures: deque[ProviderError] = deque()
        self._always: ProviderError | None = None
        self._receipts: dict[str, Receipt] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def fail(
        self,
        category: ErrorCategory | str,
        *,
        times: int = 1,
        retry_after: float | None = None,
        status_code: int | None = None,
        code: str | None = None,
        message: str | None = None,
        contact_invalid: bool = False,
    ) -> None:
        """Make the next ``times`` sends fail with ``category``.

        ``contact_invalid=True`` reports the address as dead for good (an unregistered push
        token), as real adapters do.

        An ``ambiguous_timeout`` failure still records the message first: the provider got
        it, only the answer was lost (so a retry with the same idempotency key is deduplicated,
        as a real provider would).
        """
        error = self._error(category, retry_after, status_code, code, message)
        error.contact_invalid = contact_invalid
        with self._lock:
            self._failures.extend(error for _ in range(times))

    def fail_always(self, category: ErrorCategory | str, **kwargs: object) -> None:
        """Make every send fail with ``category`` until :meth:`reset`."""
        self._always = self._error(category, **kwargs)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget recorded messages and pending failures."""
        with self._lock:
            self.messages.clear()
            self._failures.clear()
            self._receipts.clear()
            self._always = None
            self.calls = 0

    def _error(
        self,
        category: ErrorCategory | str,
        retry_after: float | None = None,
        status_code: int | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> ProviderError:
        category = ErrorCategory(category)
        return ProviderError(
            message or f"simulated {category.value}",
            category=category,
            retry_after=retry_after,
            provider=self.name,
            status_code=status_code,
            code=code,
        )

    def send(self, message: OutboundMessage) -> Receipt:
        """Record ``message`` (or raise the next scheduled failure)."""
        with self._lock:
            self.calls += 1
            error = self._always or (self._failures.popleft() if self._failures else None)
            key = message.idempotency_key if self.capabilities.idempotency else None
            if error is not None and error.category is not ErrorCategory.AMBIGUOUS_TIMEOUT:
                raise _copy(error)
            if key is not None and key in self._receipts:
                receipt = self._receipts[key]
            else:
                self.messages.append(message)
                receipt = Receipt(provider_message_id=f"{self.name}-{next(self._ids)}")
                if key is not None:
                    self._receipts[key] = receipt
            if error is not None:
                raise _copy(error)
            return receipt

    async def asend(self, message: OutboundMessage) -> Receipt:
        """Same as :meth:`send`."""
        return self.send(message)

    def to(self, address: str) -> list[OutboundMessage]:
        """The recorded messages sent to ``address``."""
        return [m for m in self.messages if m.to == address]

    def on(self, channel: Channel | str) -> list[OutboundMessage]:
        """The recorded messages sent on ``channel``."""
        return [m for m in self.messages if m.channel == Channel(channel)]


def _copy(error: ProviderError) -> ProviderError:
    # A fresh exception each time, so tracebacks do not accumulate on a shared object.
    return ProviderError(
        error.message,
        category=error.category,
        retryable=error.retryable,
        retry_after=error.retry_after,
        provider=error.provider,
        status_code=error.status_code,
        code=error.code,
        raw=error.raw,
        reason=error.reason,
        contact_invalid=error.contact_invalid,
    )
