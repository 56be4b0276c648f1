r"""``Viber``: Viber chatbots through the REST Bot API.

Sends text to a Viber user who subscribed to your bot (or opened a conversation with it),
addressed by their Viber user id (``Recipient.chat_ids["viber"]``), and reads the bot's
callbacks: delivery, seen and failure reports, subscriptions, and incoming messages.

Example:
    ```python
    import anysend
    from anysend.providers.viber import Viber

    viber = Viber(auth_token="your-bot-auth-token", sender_name="Shop")
    ann = anysend.Recipient(chat_ids={"viber": "01234567890A="})
    with anysend.Client([viber]) as client:
        client.send(anysend.Message(text="Your order has shipped"), to=ann)
    ```

Settings:
    * ``auth_token`` (secret): the bot's authentication token; it authenticates requests and
      is the key Viber signs callbacks with.
    * ``sender_name``: the sender name shown (at most 28 characters); ``Message.sender`` wins.
    * ``sender_avatar``: the sender avatar URL (Viber asks for at most 100 KB, 720x720).

The request (https://developers.viber.com/docs/api/rest-bot-api/#send-message):
``POST https://chatapi.viber.com/pa/send_message`` with ``X-Viber-Auth-Token`` and JSON
``{"receiver", "sender": {"name", "avatar"}, "tracking_data": <anysend message id>, "type":
"text", "text"}``. Provider options are merged into the body verbatim (``min_api_version``,
``keyboard``, or another ``type`` with its fields); a ``sender`` dict is merged into the
sender; ``None`` removes a key. Viber answers HTTP 200 with ``{"status": 0, "message_token":
...}``; ``message_token`` is the receipt's id. Errors come with HTTP 200 too, as a non-zero
``status`` (:data:`ERROR_CODES`).

Limits and quirks:
    * Only users who subscribed to the bot, or opened a conversation with it, can be messaged,
      and only by their Viber user id (not their phone number).
    * Text up to 7000 characters (:data:`MAX_TEXT`); a subject becomes the first line.
    * No idempotency key: an ambiguous timeout is never retried.
    * ``message_token`` is a 64-bit integer; the ids are kept exact as text.
    * Callbacks: ``X-Viber-Content-Signature`` is the hex HMAC-SHA256 of the raw body keyed
      with the auth token (the ``sig`` query parameter is accepted instead, as Viber's Node
      SDK does). Viber signs no separate time, but the signed body carries ``timestamp``
      (milliseconds): callbacks more than :data:`REPLAY_WINDOW` seconds from the adapter's
      clock are refused (``replay_window``; ``None`` turns it off).

Errors: :data:`ERROR_CODES` maps the in-body ``status`` (5 and 6 also set ``contact_invalid``,
:data:`CONTACT_INVALID`; :data:`REASONS` gives the reason); a non-200 answer follows the shared
HTTP mapping. Callbacks: :data:`STATUS_MAP` and :data:`EVENT_MAP`; the ``webhook`` check gives
no events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InboundMessage,
    Media,
    OutboundMessage,
    ProviderError,
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

__all__ = [
    "CONTACT_INVALID",
    "ERROR_CODES",
    "EVENT_MAP",
    "MAX_TEXT",
    "REASONS",
    "REPLAY_WINDOW",
    "SIGNATURE_HEADER",
    "STATUS_MAP",
    "STATUS_NAMES",
    "Viber",
    "ViberSettings",
    "signature",
]

#: The header carrying Viber's callback signature.
SIGNATURE_HEADER = "X-Viber-Content-Signature"

#: The longest text Viber takes, in characters.
MAX_TEXT = 7000

#: Seconds a callback's ``timestamp`` may be from the adapter's clock.
REPLAY_WINDOW = 300.0

#: Viber's in-body ``status`` values and their categories (0 is success).
ERROR_CODES: dict[int, ErrorCategory] = {
    1: ErrorCategory.CONFIGURATION,  # invalidUrl
    2: ErrorCategory.AUTH,  # invalidAuthToken
    3: ErrorCategory.CONTENT_REJECTED,  # badData: the request itself is malformed
    4: ErrorCategory.CONTENT_REJECTED,  # missingData: a mandatory field is missing
    5: ErrorCategory.INVALID_RECIPIENT,  # receiverNotRegistered: not a Viber user
    6: ErrorCategory.OPTED_OUT,  # receiverNotSubscribed: not (or no longer) subscribed
    7: ErrorCategory.CONFIGURATION,  # publicAccountBlocked
    8: ErrorCategory.CONFIGURATION,  # publicAccountNotFound: the token names no bot
    9: ErrorCategory.CONFIGURATION,  # publicAccountSuspended
    10: ErrorCategory.CONFIGURATION,  # webhookNotSet: a bot needs a webhook to send
    11: ErrorCategory.INVALID_RECIPIENT,  # receiverNoSuitableDevice
    12: ErrorCategory.RATE_LIMITED,  # tooManyRequests
    13: ErrorCategory.CONTENT_REJECTED,  # apiVersionNotSupported by the user's devices
    14: ErrorCategory.CONTENT_REJECTED,  # incompatibleWithVersion: min_api_version vs fields
    15: ErrorCategory.AUTH,  # publicAccountNotAuthorized
    16: ErrorCategory.CONTENT_REJECTED,  # inchatReplyMessageNotAllowed
    17: ErrorCategory.CONFIGURATION,  # publicAccountIsNotInline
    18: ErrorCategory.CONFIGURATION,  # noPublicChat
    19: ErrorCategory.CONFIGURATION,  # cannotSendBroadcast
    20: ErrorCategory.CONFIGURATION,  # broadcastNotAllowed
}

#: The names Viber's documentation gives the ``status`` values (for error messages).
STATUS_NAMES: dict[int, str] = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    8: "publicAccountNotFound",
    9: "publicAccountSuspended",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
    13: "apiVersionNotSupported",
    14: "incompatibleWithVersion",
    15: "publicAccountNotAuthorized",
    16: "inchatReplyMessageNotAllowed",
    17: "publicAccountIsNotInline",
    18: "noPublicChat",
    19: "cannotSendBroadcast",
    20: "broadcastNotAllowed",
}

#: ``status`` values and the reasons they give.
REASONS: dict[int, Reason] = {
    5: Reason.UNKNOWN_RECIPIENT,
    6: Reason.OPTED_OUT,
    7: Reason.POLICY_BLOCKED,
    9: Reason.POLICY_BLOCKED,
    11: Reason.RECIPIENT_UNREACHABLE,
    12: Reason.RATE_LIMITED,
    13: Reason.RECIPIENT_UNREACHABLE,
}

#: ``status`` values that mean the user id is dead: not a Viber user, or not subscribed.
CONTACT_INVALID = frozenset({5, 6})

#: Callback events that report a message's status.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "seen": DeliveryStatus.READ,
    "failed": DeliveryStatus.UNDELIVERABLE,
}

#: Callback events about the user, not a message.
EVENT_MAP: dict[str, EventType] = {
    "subscribed": EventType.OPTED_IN,
    "unsubscribed": EventType.OPTED_OUT,
    "conversation_started": EventType.INBOUND,  # the user opened the chat; no text
}

#: Inbound message types whose ``media`` is a file to fetch.
_MEDIA_TYPES = frozenset({"picture", "video", "file", "sticker"})


def signature(body: bytes, auth_token: str) -> str:
    """The ``X-Viber-Content-Signature`` Viber sends for ``body``: hex HMAC-SHA256."""
    return hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()


class ViberSettings(ProviderSettings):
    """Settings of :class:`Viber`.

    Attributes:
        auth_token: the bot's authentication token (secret); signs callbacks.
        sender_name: the sender name shown (1 to 28 characters).
        sender_avatar: the sender avatar URL.
    """

    auth_token: SecretStr
    sender_name: str = Field(min_length=1, max_length=28)
    sender_avatar: str | None = None

    @field_validator("sender_avatar")
    @classmethod
    def _avatar(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("sender_avatar must be an absolute http(s) URL")
        return value


class Viber(Provider):
    """Sends Viber bot messages and reads the bot's callbacks.

    Attributes:
        now: the clock the replay window is checked against (pin it in tests).
        replay_window: seconds a callback's timestamp may be from ``now()``; ``None`` turns
            the check off.
        error_codes: Viber's ``status`` values and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "viber"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.VIBER})
    capabilities: ClassVar[Capabilities] = Capabilities(webhooks=True, inbound=True)
    Settings: ClassVar[type[ProviderSettings]] = ViberSettings
    default_base_url: ClassVar[str | None] = "https://chatapi.viber.com"
    error_codes: ClassVar[dict[int, ErrorCategory]] = ERROR_CODES
    settings: ViberSettings
    now: Callable[[], float] = time.time
    replay_window: float | None = REPLAY_WINDOW

    # -- sending ------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse empty or over-long text and sender names longer than 28 characters."""
        super().check_supported(message)
        text = self.text(message)
        if not text and "type" not in message.provider_options:
            raise self._refuse("viber needs text to send", ErrorCategory.CONTENT_REJECTED)
        if len(text) > MAX_TEXT:
            raise self._refuse(
                f"viber text is limited to {MAX_TEXT} characters", ErrorCategory.PAYLOAD_TOO_LARGE
            )
        if message.sender is not None and not 0 < len(message.sender) <= 28:
            raise self._refuse(
                "viber sender names have 1 to 28 characters", ErrorCategory.CONTENT_REJECTED
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to ``/pa/send_message`` with ``X-Viber-Auth-Token``."""
        return httpx.Request(
            "POST",
            f"{self.default_base_url}/pa/send_message",
            json=self.payload(message),
            headers={"X-Viber-Auth-Token": self.settings.auth_token.get_secret_value()},
        )

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The ``send_message`` body for ``message``, provider options merged in."""
        sender: dict[str, Any] = {"name": message.sender or self.settings.sender_name}
        if self.settings.sender_avatar:
            sender["avatar"] = self.settings.sender_avatar
        body: dict[str, Any] = {
            "receiver": message.to,
            "sender": sender,
            "tracking_data": message.id,
            "type": "text",
            "text": self.text(message),
        }
        for key, value in message.provider_options.items():
            if value is None:
                body.pop(key, None)
            elif key == "sender" and isinstance(value, dict):
                merged = {**sender, **value}
                body["sender"] = {k: v for k, v in merged.items() if v is not None}
            else:
                body[key] = value
        return body

    @staticmethod
    def text(message: OutboundMessage) -> str:
        """The text sent: the subject (when there is one) on its own first line, then the text."""
        text = message.text or ""
        if message.subject:
            return f"{message.subject}\n{text}" if text else message.subject
        return text

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for ``status`` 0; otherwise a ProviderError by Viber's ``status``."""
        body = response_body(response)
        if not response.is_success:
            raise error_from_response(response, self.name)
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(body, dict) or isinstance(status, bool) or not isinstance(status, int):
            # The request was taken; without a readable answer the message may have gone.
            raise ProviderError(
                "viber answered without a readable status; the message may have been sent",
                category=ErrorCategory.AMBIGUOUS_TIMEOUT,
                retryable=False,
                provider=self.name,
                status_code=response.status_code,
                raw=body,
            )
        if status == 0:
            return Receipt(provider_message_id=_token(body.get("message_token")), raw=body)
        words = body.get("status_message")
        name = words if isinstance(words, str) and words else STATUS_NAMES.get(status)
        error = error_from_response(
            response,
            self.name,
            message=f"viber refused the message: {name or 'status ' + str(status)}",
            category=self.error_codes.get(status, ErrorCategory.UNKNOWN),
            code=str(status),
        )
        error.reason = REASONS.get(status)
        error.contact_invalid = status in CONTACT_INVALID
        raise error

    # -- callbacks ----------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the signature (header, or ``sig`` query parameter) and the replay window.

        Raises:
            WebhookVerificationError: the signature is missing or does not match, or the
                body's ``timestamp`` is missing or too far from ``now()``.
        """
        given = request.header(SIGNATURE_HEADER)
        if not given:
            given = parse_qs(urlsplit(request.url).query).get("sig", [""])[0]
        if not given:
            raise WebhookVerificationError(f"viber callback has no {SIGNATURE_HEADER} header")
        expected = signature(request.body, self.settings.auth_token.get_secret_value())
        if not compare_signatures(expected, given.strip().lower()):
            raise WebhookVerificationError("viber callback signature does not match")
        if self.replay_window is None:
            return
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookVerificationError("viber callback has no readable timestamp") from None
        stamp = data.get("timestamp") if isinstance(data, dict) else None
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            raise WebhookVerificationError("viber callback has no timestamp")
        if abs(self.now() - stamp / 1000) > self.replay_window:
            raise WebhookVerificationError("viber callback is outside the replay window")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One event per callback: a status, a user event, an inbound message, or none."""
        data = request.json_body()
        if not isinstance(data, dict):
            raise WebhookParseError("viber callback body is not a JSON object")
        event = data.get("event")
        if not isinstance(event, str) or not event:
            raise WebhookParseError("viber callback has no event")
        if event == "webhook":  # Viber checking the URL given to set_webhook
            return []
        when = _from_ms(data.get("timestamp"))
        token = _token(data.get("message_token"))
        if event == "message":
            return [self._inbound(data, token, when)]
        user = _user(data)
        if user is None:
            raise WebhookParseError(f"viber {event} callback names no user")
        if token and event not in EVENT_MAP:
            event_id = f"{token}:{event}"
        else:
            event_id = f"{user}:{event}:{_scalar(data.get('timestamp'))}"
        status = STATUS_MAP.get(event, DeliveryStatus.UNKNOWN)
        description = data.get("desc")
        return [
            DeliveryEvent(
                provider=self.name,
                provider_message_id=None if event in EVENT_MAP else token,
                recipient=user,
                channel=Channel.VIBER,
                status=None if event in EVENT_MAP else status,
                event=EVENT_MAP.get(event),
                raw_status=event,
                reason=_event_reason(event),
                description=description if isinstance(description, str) else None,
                occurred_at=when,
                event_id=event_id,
                raw=data,
            )
        ]

    def _inbound(
        self, data: dict[str, Any], token: str | None, when: datetime | None
    ) -> InboundMessage:
        sender = _user(data)
        if sender is None:
            raise WebhookParseError("viber message callback has no sender id")
        message = data.get("message")
        if not isinstance(message, dict):
            raise WebhookParseError("viber message callback has no message object")
        kind, media_url = message.get("type"), message.get("media")
        text = message.get("text")
        if kind == "url" and not isinstance(text, str) and isinstance(media_url, str):
            text = media_url  # a URL message carries the URL as its media
        media: tuple[Media, ...] = ()
        if kind in _MEDIA_TYPES and isinstance(media_url, str) and media_url:
            name = message.get("file_name")
            media = (Media(url=media_url, filename=name if isinstance(name, str) else None),)
        return InboundMessage(
            provider=self.name,
            channel=Channel.VIBER,
            sender=sender,
            text=text if isinstance(text, str) else None,
            media=media,
            provider_message_id=token,
            received_at=when,
            raw=data,
        )

    def _refuse(self, text: str, category: ErrorCategory) -> ProviderError:
        return ProviderError(text, category=category, provider=self.name)


# -- module helpers --------------------------------------------------------------------------------


def _event_reason(event: str) -> Reason | None:
    if event == "unsubscribed":
        return Reason.OPTED_OUT
    if event == "failed":
        return Reason.OTHER
    return None


def _user(data: Mapping[str, Any]) -> str | None:
    """The Viber user id of a callback: ``user_id``, ``user.id`` or ``sender.id``."""
    found = data.get("user_id")
    for key in ("user", "sender"):
        inner = data.get(key)
        if found is None and isinstance(inner, Mapping):
            found = inner.get("id")
    return found if isinstance(found, str) and found else None


def _token(value: object) -> str | None:
    """A ``message_token`` (a 64-bit integer, exact in Python) as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def _scalar(value: object) -> str:
    """A timestamp as text for event ids (``-`` when missing)."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value)
    return "-"


def _from_ms(value: object) -> datetime | None:
    """A UTC datetime from Viber's milliseconds since the epoch, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
