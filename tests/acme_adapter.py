"""Acme SMS: a small, realistic HTTP adapter used by the tests and the adapter-writing guide.

Acme is a made-up SMS provider with a typical API:

* ``POST {base}/v1/messages`` with ``{"from", "to", "text", "reference"}``, a bearer token and
  an ``Idempotency-Key`` header; it answers ``{"id": "..."}`` with 200 or 201.
* errors as ``{"error": {"code": "...", "message": "..."}}`` with a fitting HTTP status.
* callbacks signed with ``X-Acme-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>``,
  either a status report ``{"id", "status", "timestamp", "error_code"}`` or an inbound SMS
  ``{"type": "inbound", "from", "to", "text"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    InboundMessage,
    OutboundMessage,
    Reason,
    Receipt,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    compare_signatures,
    error_from_response,
    response_body,
)

__all__ = ["ERROR_CODES", "REPLAY_WINDOW", "STATUS_MAP", "AcmeSMS", "AcmeSettings", "sign"]

#: Acme's delivery statuses and what they mean in anysend's vocabulary.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "queued": DeliveryStatus.ACCEPTED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "failed": DeliveryStatus.UNDELIVERABLE,
}

#: Acme's error codes (in API answers) and their categories.
ERROR_CODES: dict[str, ErrorCategory] = {
    "invalid_number": ErrorCategory.INVALID_RECIPIENT,
    "opted_out": ErrorCategory.OPTED_OUT,
    "throttled": ErrorCategory.RATE_LIMITED,
    "insufficient_funds": ErrorCategory.QUOTA,
}

#: Acme's error codes (in failed-delivery callbacks) and their reasons.
REASONS: dict[str, Reason] = {
    "invalid_number": Reason.INVALID_RECIPIENT,
    "opted_out": Reason.OPTED_OUT,
    "unreachable": Reason.RECIPIENT_UNREACHABLE,
}

#: Seconds a signed callback stays valid (older or newer ones are replays).
REPLAY_WINDOW = 300


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-Acme-Signature`` value Acme sends for ``body`` at ``timestamp``."""
    return f"t={timestamp},v1={_digest(body, secret, timestamp)}"


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


class AcmeSettings(ProviderSettings):
    """Settings of :class:`AcmeSMS`.

    Attributes:
        api_key: the API key (sent as a bearer token).
        sender: the default sender id or number.
        webhook_secret: the secret Acme signs callbacks with.
    """

    api_key: SecretStr
    sender: str
    webhook_secret: SecretStr


class AcmeSMS(Provider):
    """Sends SMS through Acme and reads its delivery and inbound callbacks.

    Attributes:
        now: the clock the replay window is checked against (override it per instance in
            tests: ``acme.now = lambda: 1_700_000_000.0``).
        error_codes: Acme's error codes and their categories.
    """

    name: ClassVar[str] = "acme"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(
        idempotency=True, webhooks=True, inbound=True
    )
    Settings: ClassVar[type[ProviderSettings]] = AcmeSettings
    default_base_url: ClassVar[str | None] = "https://api.acme-sms.test"
    error_codes: ClassVar[dict[str, ErrorCategory]] = ERROR_CODES
    settings: AcmeSettings
    now: Callable[[], float] = time.time

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """A POST to ``/v1/messages`` with a bearer token and the idempotency key."""
        headers = {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"}
        if message.idempotency_key:
            headers["Idempotency-Key"] = message.idempotency_key
        payload = {
            "from": message.sender or self.settings.sender,
            "to": message.to,
            "text": message.text or "",
            "reference": message.id,
        }
        return httpx.Request(
            "POST", f"{self.default_base_url}/v1/messages", json=payload, headers=headers
        )

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for 200/201; otherwise a ProviderError refined by Acme's error code."""
        body = response_body(response)
        if response.status_code in (200, 201):
            message_id = body.get("id") if isinstance(body, dict) else None
            raw = body if isinstance(body, (dict, list, str)) else None
            return Receipt(
                provider_message_id=message_id if isinstance(message_id, str) else None, raw=raw
            )
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        text = error.get("message") if isinstance(error, dict) else None
        code = code if isinstance(code, str) else None
        raise error_from_response(
            response,
            self.name,
            message=f"acme refused the message: {text}" if isinstance(text, str) else None,
            category=self.error_codes.get(code) if code else None,
            code=code,
        )

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check ``X-Acme-Signature`` and that its timestamp is inside the replay window."""
        header = request.header("X-Acme-Signature")
        if not header:
            raise WebhookVerificationError("acme callback has no X-Acme-Signature header")
        parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
        try:
            timestamp = int(parts["t"])
        except (KeyError, ValueError):
            raise WebhookVerificationError("acme signature has no valid timestamp") from None
        secret = self.settings.webhook_secret.get_secret_value()
        if not compare_signatures(_digest(request.body, secret, timestamp), parts.get("v1")):
            raise WebhookVerificationError("acme callback signature does not match")
        if abs(self.now() - timestamp) > REPLAY_WINDOW:
            raise WebhookVerificationError("acme callback is outside the replay window")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One DeliveryEvent per status report, or one InboundMessage per inbound SMS."""
        data = request.json_body()
        if not isinstance(data, dict):
            raise WebhookParseError("acme callback body is not a JSON object")
        if data.get("type") == "inbound":
            return [self._inbound(data)]
        message_id, raw_status = data.get("id"), data.get("status")
        if not isinstance(message_id, str) or not isinstance(raw_status, str):
            raise WebhookParseError("acme status callback needs string 'id' and 'status'")
        timestamp = data.get("timestamp")
        code = data.get("error_code")
        return [
            DeliveryEvent(
                provider=self.name,
                provider_message_id=message_id,
                channel=Channel.SMS,
                status=STATUS_MAP.get(raw_status, DeliveryStatus.UNKNOWN),
                raw_status=raw_status,
                reason=(REASONS.get(code, Reason.OTHER) if isinstance(code, str) else None),
                occurred_at=_when(timestamp),
                event_id=f"{message_id}:{raw_status}:{timestamp}",
                raw=data,
            )
        ]

    def _inbound(self, data: dict[str, Any]) -> InboundMessage:
        sender = data.get("from")
        if not isinstance(sender, str):
            raise WebhookParseError("acme inbound callback needs a string 'from'")
        return InboundMessage(
            provider=self.name,
            channel=Channel.SMS,
            sender=sender,
            recipient=data.get("to"),
            text=data.get("text"),
            provider_message_id=data.get("id"),
            received_at=_when(data.get("timestamp")),
            raw=data,
        )


def _when(timestamp: object) -> datetime | None:
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return None
