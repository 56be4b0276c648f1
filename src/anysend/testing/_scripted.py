"""``ScriptedProvider``: a fake provider scripted per send, with delivery callbacks on a clock.

Each send follows the next :class:`Script` queued with :meth:`ScriptedProvider.then`: accept
(and later call back: sent, delivered, read, opened, clicked, undeliverable), reject, ask to
slow down, or time out. The callbacks fall due at virtual times read from the injected clock
(:class:`~anysend.testing.VirtualClock`), so a flow that waits days for a ``delivered`` or an
``opened`` before it escalates runs in milliseconds.

The callbacks are real, signed :class:`~anysend.WebhookRequest` objects that the provider
itself verifies and parses, so they can go through ``client.parse_webhook`` or any web
endpoint of the application.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
from anysend._exceptions import (
    ConfigurationError,
    ErrorCategory,
    ProviderError,
    WebhookParseError,
    WebhookVerificationError,
)
from anysend._models import Channel, OutboundMessage
from anysend._results import Receipt
from anysend._status import DeliveryStatus, EventType, Reason
from anysend.providers._base import Capabilities, Provider, ProviderSettings, compare_signatures

__all__ = ["Script", "ScriptedProvider", "ScriptedSettings"]

#: The callback types, in lifecycle order (the order of callbacks due at the same time).
CallbackType = Literal["sent", "delivered", "read", "undeliverable", "opened", "clicked"]
_ORDER: tuple[CallbackType, ...] = get_args(CallbackType)
_STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "undeliverable": DeliveryStatus.UNDELIVERABLE,
}
_EVENTS = {"opened": EventType.OPENED, "clicked": EventType.CLICKED}

#: The header that carries the callback's signature.
SIGNATURE_HEADER = "X-Scripted-Signature"
_HOOK_URL = "https://hooks.example.test/{name}"


class SupportsNow(Protocol):
    """Anything with ``now()``: :class:`~anysend.testing.VirtualClock`, ``SystemClock``."""

    def now(self) -> datetime:
        """The current wall-clock time (timezone-aware; a naive time is taken as UTC)."""


def _seconds(name: str, delay: float | timedelta) -> float:
    """A delay in seconds; refuses negative and non-finite delays."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite delay of 0 or more seconds, not {delay!r}")
    return seconds


class Script(BaseModel):
    """What the provider does with one send. Build it with the class methods.

    * :meth:`accept`: takes the message and later calls back, as scheduled;
    * :meth:`reject`: refuses it with a :class:`~anysend.ProviderError` of any category;
    * :meth:`rate_limit`: refuses it with ``rate_limited`` and a ``Retry-After``;
    * :meth:`time_out`: no answer (``timeout``), or an ambiguous one (``ambiguous_timeout``).

    Attributes:
        kind: ``accept``, ``reject``, ``rate_limit`` or ``time_out``.
        callbacks: for an acceptance, each callback's type and its delay in seconds after the
            acceptance, in the order they happen.
        duplicate: every callback is posted twice (with the same event id).
        reverse: the callbacks arrive in reverse order, all at the time of the latest one
            (each still says when it happened).
        reason: the reason of an ``undeliverable`` callback, or of the rejection.
        category: the error category of a refusal.
        message: the error message of a refusal.
        code: the provider error code of a rejection.
        contact_invalid: a rejection says the address is dead for good.
        retry_after: the seconds a ``rate_limit`` asks to wait.
        accepted: for an ambiguous time-out, the acceptance that happened behind it (the
            provider took the message, only the answer was lost); ``None`` when the message
            never reached the provider.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["accept", "reject", "rate_limit", "time_out"] = "accept"
    callbacks: tuple[tuple[CallbackType, float], ...] = ()
    duplicate: bool = False
    reverse: bool = False
    reason: Reason | None = None
    category: ErrorCategory | None = None
    message: str | None = None
    code: str | None = None
    contact_invalid: bool = False
    retry_after: float | None = None
    accepted: Script | None = None

    @classmethod
    def accept(
        cls,
        *,
        sent: float | timedelta | None = None,
        delivered: float | timedelta | None = None,
        read: float | timedelta | None = None,
        opened: float | timedelta | None = None,
        clicked: float | timedelta | None = None,
        failed: float | timedelta | None = None,
        reason: Reason | str = Reason.OTHER,
        duplicate: bool = False,
        reverse: bool = False,
    ) -> Script:
        """The provider takes the message, then calls back after the delays given.

        Each delay counts from the acceptance, in seconds or as a ``timedelta``; a callback
        left at ``None`` never comes.

        Args:
            sent: when the ``sent`` status arrives.
            delivered: when ``delivered`` arrives.
            read: when ``read`` arrives.
            opened: when the ``opened`` event arrives.
            clicked: when the ``clicked`` event arrives.
            failed: when an ``undeliverable`` status arrives (a bounce), with ``reason``.
            reason: why the message was undeliverable.
            duplicate: post every callback twice, with the same event id.
            reverse: post the callbacks in reverse order, all at the time of the latest one
                (``delivered`` before ``sent``), to test out-of-order ingestion.

        Raises:
            ValueError: a delay is negative or not finite.
        """
        given: dict[CallbackType, float | timedelta | None] = {
            "sent": sent,
            "delivered": delivered,
            "read": read,
            "undeliverable": failed,
            "opened": opened,
            "clicked": clicked,
        }
        delays = [
            (kind, _seconds("failed" if kind == "undeliverable" else kind, delay))
            for kind, delay in given.items()
            if delay is not None
        ]
        delays.sort(key=lambda item: (item[1], _ORDER.index(item[0])))
        return cls(
            kind="accept",
            callbacks=tuple(delays),
            reason=Reason(reason),
            duplicate=duplicate,
            reverse=reverse,
        )

    @classmethod
    def reject(
        cls,
        category: ErrorCategory | str = ErrorCategory.INVALID_RECIPIENT,
        *,
        code: str | None = None,
        message: str = "rejected by the script",
        contact_invalid: bool = False,
        reason: Reason | str | None = None,
    ) -> Script:
        """The send raises :class:`~anysend.ProviderError` with ``category``.

        Whether the client retries follows the category (``unavailable`` is retried,
        ``invalid_recipient`` moves on to the next channel).

        Args:
            category: the error category.
            code: the provider's error code.
            message: the error message.
            contact_invalid: the address is dead for good (the client's
                ``on_invalid_address`` hooks hear of it).
            reason: why, from the fixed list.
        """
        return cls(
            kind="reject",
            category=ErrorCategory(category),
            code=code,
            message=message,
            contact_invalid=contact_invalid,
            reason=Reason(reason) if reason is not None else None,
        )

    @classmethod
    def rate_limit(cls, retry_after: float | timedelta | None = 1.0) -> Script:
        """The send raises ``rate_limited`` (HTTP 429) asking to wait ``retry_after`` seconds.

        Raises:
            ValueError: ``retry_after`` is negative or not finite.
        """
        return cls(
            kind="rate_limit",
            category=ErrorCategory.RATE_LIMITED,
            message="rate limited by the script",
            retry_after=_seconds("retry_after", retry_after) if retry_after is not None else None,
        )

    @classmethod
    def time_out(cls, *, ambiguous: bool = False, accepted: Script | None = None) -> Script:
        """The send gets no answer.

        Args:
            ambiguous: the request was sent and the answer lost (``ambiguous_timeout``,
                retried only by providers that take idempotency keys); otherwise a plain
                ``timeout``, retried.
            accepted: for an ambiguous time-out, an :meth:`accept` script saying that the
                provider did take the message: it is recorded, its receipt is returned to a
                retry with the same idempotency key, and its callbacks come as scheduled.

        Raises:
            ValueError: ``accepted`` is given without ``ambiguous``, or is not an acceptance.
        """
        if accepted is not None and (not ambiguous or accepted.kind != "accept"):
            raise ValueError("accepted= takes a Script.accept(...) and needs ambiguous=True")
        category = ErrorCategory.AMBIGUOUS_TIMEOUT if ambiguous else ErrorCategory.TIMEOUT
        return cls(
            kind="time_out",
            category=category,
            message="no answer from the script",
            accepted=accepted,
        )


class ScriptedSettings(ProviderSettings):
    """Settings of :class:`ScriptedProvider` (see its arguments)."""

    name: str = "scripted"
    channels: frozenset[Channel] = frozenset({Channel.EMAIL})
    secret: SecretStr = SecretStr("scripted-secret")
    idempotency: bool = True


@dataclass(frozen=True)
class _Callback:
    due: datetime
    order: int
    request: WebhookRequest


class ScriptedProvider(Provider):
    """A direct adapter whose every send follows a script, with callbacks at virtual times.

    Each send takes the next script queued with :meth:`then` (or ``default`` when none is
    left). An accepted message gets a receipt with the id ``<name>-<n>`` and schedules its
    callbacks; :meth:`due_callbacks` hands out, as signed :class:`~anysend.WebhookRequest`
    objects, those whose time has come on ``clock``. The provider verifies and parses them
    like any real adapter (``client.parse_webhook(provider, request)``).

    Example:
        ```python
        from anysend import Client, ErrorCategory, Message
        from anysend.testing import Script, ScriptedProvider, VirtualClock

        clock = VirtualClock()
        email = ScriptedProvider(channel="email", clock=clock)
        email.then(
            Script.accept(delivered=60, opened=3600),     # the first send
            Script.reject(ErrorCategory.INVALID_RECIPIENT),  # the second one
        )
        with Client([email], clock=clock) as client:
            client.send(Message(subject="Hi", text="hi"), to={"email": "ann@example.com"})
            clock.advance(60)
            [delivered] = email.due_callbacks()        # opened comes an hour later
            [event] = client.parse_webhook(email, delivered)
            assert event.status == "delivered"
        ```

    Callback bodies are compact JSON with sorted keys: ``id`` (the event id, the same in a
    duplicate), ``message_id`` (the provider's), ``type`` (``sent``, ``delivered``, ``read``,
    ``undeliverable``, ``opened`` or ``clicked``), ``to``, ``channel``, ``at`` (when it
    happened, ISO 8601 UTC) and, for ``undeliverable``, ``reason``. They are posted to
    ``https://hooks.example.test/<name>`` and signed in ``X-Scripted-Signature``: the hex
    HMAC-SHA256 of the body with ``secret``.

    Args:
        channel: the channel served (a ``Channel`` or its value), or several channels.
        clock: where the time comes from (``anysend.testing.VirtualClock``, or anything with
            ``now()``); give the client the same clock.
        name: the provider's name (give two scripted providers different names).
        secret: the key callbacks are signed with.
        idempotency: behave like a provider that takes idempotency keys: a repeated key
            returns the first receipt, recording nothing and scheduling no callback again.
        default: the script of sends when the queue is empty (``Script.accept()``: accept,
            never call back).

    Attributes:
        messages: every message accepted, in order.
        calls: how many sends were made, whatever came of them.
    """

    name: ClassVar[str] = "scripted"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.EMAIL})
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
        webhooks=True,
    )
    Settings: ClassVar[type[ProviderSettings]] = ScriptedSettings
    settings: ScriptedSettings

    def __init__(
        self,
        *,
        channel: Channel | str | Iterable[Channel | str] = Channel.EMAIL,
        clock: SupportsNow,
        name: str = "scripted",
        secret: str | SecretStr = "scripted-secret",  # noqa: S107 - a test double's key
        idempotency: bool = True,
        default: Script | None = None,
    ) -> None:
        channels = [channel] if isinstance(channel, str) else list(channel)
        super().__init__(
            name=name,
            channels=frozenset(channels),
            secret=secret,
            idempotency=idempotency,
        )
        if not self.settings.channels:
            raise ConfigurationError("a ScriptedProvider needs at least one channel")
        # Per-instance name, channels and capabilities (ClassVars describe the default).
        self.name = self.settings.name  # type: ignore[misc]
        self.channels = self.settings.channels  # type: ignore[misc]
        if not self.settings.idempotency:
            self.capabilities = self.capabilities.model_copy(  # type: ignore[misc]
                update={"idempotency": False}
            )
        self.clock = clock
        self.default = default if default is not None else Script.accept()
        self.messages: list[OutboundMessage] = []
        self.calls = 0
        self._scripts: deque[Script] = deque()
        self._receipts: dict[str, Receipt] = {}
        self._callbacks: list[_Callback] = []
        self._ids = itertools.count(1)
        self._order = itertools.count()
        self._lock = threading.Lock()

    # -- scripting ------------------------------------------------------------------------------

    def then(self, *scripts: Script) -> ScriptedProvider:
        """Queue ``scripts`` for the next sends, in order; returns the provider."""
        with self._lock:
            self._scripts.extend(scripts)
        return self

    @property
    def pending_callbacks(self) -> int:
        """How many callbacks are scheduled and not yet handed out."""
        with self._lock:
            return len(self._callbacks)

    def due_callbacks(self) -> list[WebhookRequest]:
        """Hand out (and forget) the callbacks due by ``clock.now()``, the earliest first.

        Callbacks due at the same time come in the order they were scheduled.
        """
        now = self._now()
        with self._lock:
            due = sorted(
                (c for c in self._callbacks if c.due <= now), key=lambda c: (c.due, c.order)
            )
            self._callbacks = [c for c in self._callbacks if c.due > now]
        return [c.request for c in due]

    # -- sending --------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> Receipt:
        """Follow the next script for ``message``: return a receipt, or raise ProviderError.

        With idempotency on, a key already accepted returns its first receipt at once, and
        uses no script.
        """
        with self._lock:
            self.calls += 1
            key = message.idempotency_key if self.capabilities.idempotency else None
            if key is not None and key in self._receipts:
                return self._receipts[key]
            script = self._scripts.popleft() if self._scripts else self.default
            if script.kind == "accept":
                return self._accept(message, script, key)
            if script.accepted is not None:  # an ambiguous time-out behind which it went out
                self._accept(message, script.accepted, key)
            raise ProviderError(
                script.message or f"simulated {script.kind}",
                category=script.category or ErrorCategory.UNKNOWN,
                retry_after=script.retry_after,
                provider=self.name,
                status_code=429 if script.kind == "rate_limit" else None,
                code=script.code,
                reason=script.reason,
                contact_invalid=script.contact_invalid,
            )

    async def asend(self, message: OutboundMessage) -> Receipt:
        """Same as :meth:`send`."""
        return self.send(message)

    def _now(self) -> datetime:
        now = self.clock.now()
        return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now

    def _accept(self, message: OutboundMessage, script: Script, key: str | None) -> Receipt:
        """Record ``message``, schedule its callbacks and remember its receipt (lock held)."""
        self.messages.append(message)
        receipt = Receipt(provider_message_id=f"{self.name}-{next(self._ids)}")
        if key is not None:
            self._receipts[key] = receipt
        accepted_at = self._now()
        callbacks = list(script.callbacks)
        latest = max((delay for _, delay in callbacks), default=0.0)
        if script.reverse:
            callbacks.reverse()
        for kind, delay in callbacks:
            at = accepted_at + timedelta(seconds=delay)
            due = accepted_at + timedelta(seconds=latest) if script.reverse else at
            request = self._request(
                receipt.provider_message_id or "",
                kind,
                message,
                at,
                script.reason if kind == "undeliverable" else None,
            )
            for _ in range(2 if script.duplicate else 1):
                self._callbacks.append(_Callback(due, next(self._order), request))
        return receipt

    def _request(
        self,
        message_id: str,
        kind: CallbackType,
        message: OutboundMessage,
        at: datetime,
        reason: Reason | None,
    ) -> WebhookRequest:
        data: dict[str, str] = {
            "id": f"{message_id}:{kind}",
            "message_id": message_id,
            "type": kind,
            "to": message.to,
            "channel": message.channel.value,
            "at": at.astimezone(timezone.utc).isoformat(),
        }
        if reason is not None:
            data["reason"] = reason.value
        body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return WebhookRequest(
            method="POST",
            url=_HOOK_URL.format(name=self.name),
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: self._sign(body)},
            body=body,
        )

    def _sign(self, body: bytes) -> str:
        key = self.settings.secret.get_secret_value().encode()
        return hmac.new(key, body, hashlib.sha256).hexdigest()

    # -- callbacks ------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the ``X-Scripted-Signature`` of a callback (constant time).

        Raises:
            WebhookVerificationError: the signature is missing or wrong.
        """
        if not compare_signatures(self._sign(request.body), request.header(SIGNATURE_HEADER)):
            raise WebhookVerificationError(
                f"{self.name} callback has a missing or wrong {SIGNATURE_HEADER}"
            )

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """Parse one callback into its :class:`~anysend.DeliveryEvent`.

        A ``type`` it does not know becomes status ``unknown``, the raw value kept (as every
        adapter does).

        Raises:
            WebhookParseError: the body is not a callback of this provider.
        """
        data = request.json_body()
        if not isinstance(data, dict):
            raise WebhookParseError(f"{self.name} callback body is not a JSON object")
        kind = _text(data, "type")
        channel = _text(data, "channel")
        if channel not in {c.value for c in self.channels}:
            raise WebhookParseError(f"{self.name} does not serve the channel {channel!r}")
        # A type this version does not know is kept as raw_status, with status unknown.
        status = None if kind in _EVENTS else _STATUSES.get(kind, DeliveryStatus.UNKNOWN)
        reason = data.get("reason")
        if reason is not None and (
            not isinstance(reason, str) or reason not in {r.value for r in Reason}
        ):
            raise WebhookParseError(f"{self.name} callback has an unknown reason {reason!r}")
        try:
            return [
                DeliveryEvent(
                    provider=self.name,
                    provider_message_id=_text(data, "message_id"),
                    recipient=_text(data, "to"),
                    channel=Channel(channel),
                    status=status,
                    event=_EVENTS.get(kind),
                    raw_status=kind,
                    reason=reason,
                    occurred_at=_time(data),
                    event_id=_text(data, "id"),
                    raw=data,
                )
            ]
        except ValidationError as exc:  # pragma: no cover - every field is checked above
            raise WebhookParseError(f"{self.name} callback is malformed: {exc}") from None


def _text(data: dict[str, Any], key: str) -> str:
    """``data[key]``, a non-empty string, or WebhookParseError."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WebhookParseError(f"scripted callback has no text {key!r}")
    return value


def _time(data: dict[str, Any]) -> datetime:
    """``data["at"]`` as an aware UTC datetime, or WebhookParseError."""
    text = _text(data, "at")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookParseError(f"scripted callback time {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise WebhookParseError(f"scripted callback time {text!r} has no time zone")
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:
        raise WebhookParseError(f"scripted callback time {text!r} is out of range") from None
