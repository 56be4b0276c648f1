r"""``Messenger``: Facebook Messenger through Meta's Send API (Graph API).

Sends text to a person who messaged your Facebook Page, addressed by their Page-scoped id
(PSID, ``Recipient.chat_ids["messenger"]``), and reads the Page's webhooks: inbound messages
and postbacks, delivery and read receipts, and the echoes of what the Page sent.

Example:
    ```python
    import anysend
    from anysend.providers.messenger import Messenger

    messenger = Messenger(
        page_access_token="EAAG...",
        app_secret="your-app-secret",
        verify_token="a-token-you-choose",
    )
    ann = anysend.Recipient(chat_ids={"messenger": "2000000000000001"})
    with anysend.Client([messenger]) as client:
        client.send(anysend.Message(text="Your order has shipped"), to=ann)
    ```

Settings:
    * ``page_access_token`` (secret): the Page access token (``pages_messaging`` permission).
    * ``app_secret`` (secret): the Meta app's secret; Meta signs webhooks with it.
    * ``verify_token`` (secret): the token you typed in the app dashboard for the
      subscription handshake (:meth:`Messenger.verify_subscription`, answered by
      :meth:`Messenger.handshake`).
    * ``api_version``: the Graph API version in the path, default :data:`GRAPH_API_VERSION`.
    * ``messaging_type``: ``UPDATE`` (default) or ``RESPONSE``, used when no tag is set.
    * ``message_tag``: a message tag sent with every message (``MESSAGE_TAG``), such as
      ``HUMAN_AGENT``.

The request (https://developers.facebook.com/docs/messenger-platform/reference/send-api):
``POST https://graph.facebook.com/{api_version}/me/messages`` with the Page token as an OAuth
2.0 bearer header (Meta's examples put it in the ``access_token`` query parameter; the Graph
API takes either, and the header keeps the token out of URLs and logs), and JSON
``{"recipient": {"id": PSID}, "messaging_type": ..., "tag": ..., "message": {"text": ...,
"metadata": <anysend message id>}}``. Meta answers ``{"recipient_id", "message_id"}``;
``message_id`` is the receipt's id. Provider options are merged into the body verbatim
(``{"messaging_type": "RESPONSE"}``, ``{"tag": "HUMAN_AGENT"}``, ``{"notification_type":
"SILENT_PUSH"}``); a ``message`` dict is merged into the message object; ``None`` removes a
key.

Limits and quirks:
    * The 24-hour window: a Page may message a person only within 24 hours of their last
      message, unless the message carries a tag. ``HUMAN_AGENT`` (a human agent's reply, up
      to 7 days after the person's last message) needs the Human Agent permission. Meta
      retired ``ACCOUNT_UPDATE``, ``CONFIRMED_EVENT_UPDATE`` and ``POST_PURCHASE_UPDATE`` on
      April 27, 2026 (they now fail with code 100): the adapter refuses them up front
      (:data:`RETIRED_TAGS`). Tags may not carry promotional content.
    * Text only, up to 2000 characters (:data:`MAX_TEXT`); a subject becomes the first line.
      No attachments (``capabilities.attachments`` is off); send media by URL with the
      ``message`` provider option.
    * No idempotency key: an ambiguous timeout is never retried.
    * Webhooks are signed with ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the
      app secret); Meta signs no timestamp and redelivers failed webhooks, so there is no
      replay window: deduplicate on ``DeliveryEvent.event_id`` and the message ids.

Errors: Graph error objects, by ``error_subcode`` (:data:`ERROR_SUBCODES`), then ``code``
(:data:`ERROR_CODES` over the codes all Graph products share), then ``is_transient``, then the
HTTP status (https://developers.facebook.com/docs/messenger-platform/error-codes).
:data:`REASONS` gives the reason; :data:`CONTACT_INVALID` the answers that mean the PSID is
dead. Callbacks: :data:`STATUS_MAP`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

import httpx
from pydantic import SecretStr, field_validator

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    InboundMessage,
    Media,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
    WebhookParseError,
    WebhookRequest,
)
from anysend._ratelimit import RateLimit
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    WebhookResponse,
    _meta,
    response_body,
)

__all__ = [
    "CONTACT_INVALID",
    "ERROR_CODES",
    "ERROR_SUBCODES",
    "GRAPH_API_VERSION",
    "MAX_TEXT",
    "REASONS",
    "RETIRED_TAGS",
    "STATUS_MAP",
    "Messenger",
    "MessengerSettings",
    "sign",
]

#: The Graph API version used by default (the same as the WhatsApp adapter's; supported until 2028).
GRAPH_API_VERSION = "v25.0"

#: The longest text the Send API takes, in characters.
MAX_TEXT = 2000

#: Message tags Meta retired on April 27, 2026 (requests with them fail with code 100).
RETIRED_TAGS = frozenset({"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"})

#: Graph error codes of the Send API and their categories (merged over the codes every Graph
#: product shares, ``anysend.providers._meta.GRAPH_ERROR_CODES``).
ERROR_CODES: dict[int, ErrorCategory] = {
    551: ErrorCategory.INVALID_RECIPIENT,  # this person isn't available right now
    100: ErrorCategory.CONTENT_REJECTED,  # invalid parameter (a retired tag, bad JSON)
    10: ErrorCategory.CONFIGURATION,  # permission denied (outside-window subcodes aside)
    200: ErrorCategory.CONFIGURATION,  # permissions error (app not live, no pages_messaging)
    230: ErrorCategory.CONFIGURATION,  # permissions disallow message to user
    2022: ErrorCategory.CONFIGURATION,  # commerce messages disabled for the app
    1200: ErrorCategory.UNAVAILABLE,  # temporary send message failure
    80006: ErrorCategory.RATE_LIMITED,  # Messenger business-use-case rate limit
}

#: Graph ``error_subcode`` values and their categories (they win over the code).
ERROR_SUBCODES: dict[int, ErrorCategory] = {
    2018001: ErrorCategory.INVALID_RECIPIENT,  # 100: no matching user found
    1545041: ErrorCategory.INVALID_RECIPIENT,  # 551/200: this person isn't available
    2018065: ErrorCategory.CONTENT_REJECTED,  # 10: sent outside of allowed window
    2018108: ErrorCategory.CONTENT_REJECTED,  # 10: outside of allowed window (permission)
    2018278: ErrorCategory.CONTENT_REJECTED,  # 10: sent outside of allowed window
    2018028: ErrorCategory.CONFIGURATION,  # 200: app not live / pages_messaging not approved
    1893063: ErrorCategory.CONFIGURATION,  # 10: the Page is temporarily restricted
}

#: Codes and subcodes (they do not collide) and the reasons they give.
REASONS: dict[int, Reason] = {
    551: Reason.BLOCKED_BY_RECIPIENT,
    1545041: Reason.BLOCKED_BY_RECIPIENT,
    2018001: Reason.UNKNOWN_RECIPIENT,
    2018065: Reason.OUTSIDE_MESSAGING_WINDOW,
    2018108: Reason.OUTSIDE_MESSAGING_WINDOW,
    2018278: Reason.OUTSIDE_MESSAGING_WINDOW,
    368: Reason.POLICY_BLOCKED,
    1893063: Reason.POLICY_BLOCKED,
    4: Reason.RATE_LIMITED,
    17: Reason.RATE_LIMITED,
    32: Reason.RATE_LIMITED,
    613: Reason.RATE_LIMITED,
    80006: Reason.RATE_LIMITED,
}

#: Codes and subcodes that mean the PSID is dead for good (blocked the Page, deactivated,
#: or unknown): the client reports them to ``on_invalid_address`` hooks.
CONTACT_INVALID = frozenset({551, 1545041, 2018001})

#: Webhook ``messaging`` items and the statuses they report.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "message_echoes": DeliveryStatus.SENT,  # the Page sent it (echo, with our metadata)
    "delivery": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
}

#: The keys of a ``messaging`` item that are not its event.
_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})
_VERSION = re.compile(r"v\d+\.\d+")
_TAG = re.compile(r"[A-Z][A-Z_]{0,63}")


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``body``: ``sha256=<hex>``."""
    return _meta.sign(body, app_secret)


class MessengerSettings(ProviderSettings):
    """Settings of :class:`Messenger`.

    Attributes:
        page_access_token: the Page access token (secret).
        app_secret: the Meta app secret that signs webhooks (secret).
        verify_token: the subscription handshake token (secret).
        api_version: the Graph API version (``"v25.0"``).
        messaging_type: ``"UPDATE"`` or ``"RESPONSE"`` for messages without a tag.
        message_tag: a tag sent with every message (then ``MESSAGE_TAG``).
    """

    page_access_token: SecretStr
    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None
    api_version: str = GRAPH_API_VERSION
    messaging_type: Literal["UPDATE", "RESPONSE"] = "UPDATE"
    message_tag: str | None = None

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.fullmatch(value):
            raise ValueError("api_version must look like 'v25.0'")
        return value

    @field_validator("message_tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None:
            if not _TAG.fullmatch(value):
                raise ValueError("message_tag must be an upper-case tag such as 'HUMAN_AGENT'")
            if value in RETIRED_TAGS:
                raise ValueError(f"Meta retired the message tag {value} on April 27, 2026")
        return value


class Messenger(Provider):
    """Sends Messenger messages through the Send API and reads the Page's webhooks.

    Attributes:
        error_codes: Send API error codes and their categories (:data:`ERROR_CODES`).
        error_subcodes: error subcodes and their categories (:data:`ERROR_SUBCODES`).
    """

    name: ClassVar[str] = "messenger"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.MESSENGER})
    capabilities: ClassVar[Capabilities] = Capabilities(webhooks=True, inbound=True)
    Settings: ClassVar[type[ProviderSettings]] = MessengerSettings
    default_base_url: ClassVar[str | None] = _meta.GRAPH_BASE_URL
    error_codes: ClassVar[dict[int, ErrorCategory]] = ERROR_CODES
    error_subcodes: ClassVar[dict[int, ErrorCategory]] = ERROR_SUBCODES
    #: Meta's Messenger Platform rate limits: the Send API takes 300 calls a second per Page
    #: for text (10 a second for audio or video, which this adapter does not send).
    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=300, burst=1)
    settings: MessengerSettings

    # -- sending ------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse empty or over-long text and tags Meta does not take."""
        super().check_supported(message)
        options = message.provider_options
        custom = options.get("message")
        if not self.text(message) and not (isinstance(custom, dict) and custom):
            raise self._refuse("messenger needs text to send", ErrorCategory.CONTENT_REJECTED)
        if len(self.text(message)) > MAX_TEXT:
            raise self._refuse(
                f"messenger text is limited to {MAX_TEXT} characters",
                ErrorCategory.PAYLOAD_TOO_LARGE,
            )
        messaging_type, tag = self._type_and_tag(message)
        if not isinstance(messaging_type, str):
            raise self._refuse(
                "messenger messaging_type must be a string", ErrorCategory.CONTENT_REJECTED
            )
        if tag is not None and (not isinstance(tag, str) or tag in RETIRED_TAGS):
            raise self._refuse(
                f"messenger message tag {tag!r} is not accepted by Meta (retired tags: "
                f"{', '.join(sorted(RETIRED_TAGS))})",
                ErrorCategory.CONTENT_REJECTED,
            )
        if (messaging_type == "MESSAGE_TAG") != (tag is not None):
            raise self._refuse(
                "messenger: a message tag goes with messaging_type MESSAGE_TAG, and only there",
                ErrorCategory.CONTENT_REJECTED,
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to ``/{api_version}/me/messages`` with the Page token as a bearer."""
        token = self.settings.page_access_token.get_secret_value()
        return httpx.Request(
            "POST",
            f"{self.default_base_url}/{self.settings.api_version}/me/messages",
            json=self.payload(message),
            headers={"Authorization": f"Bearer {token}"},
        )

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Send API body for ``message``, provider options merged in."""
        messaging_type, tag = self._type_and_tag(message)
        body: dict[str, Any] = {"recipient": {"id": message.to}, "messaging_type": messaging_type}
        if tag is not None:
            body["tag"] = tag
        content: dict[str, Any] = {"metadata": message.id}
        text = self.text(message)
        if text:
            content = {"text": text, **content}
        body["message"] = content
        for key, value in message.provider_options.items():
            if key in ("messaging_type", "tag"):
                continue  # already applied above
            if value is None:
                body.pop(key, None)
            elif key == "message" and isinstance(value, dict):
                merged = {**content, **value}
                body["message"] = {k: v for k, v in merged.items() if v is not None}
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
        """A receipt with Meta's ``message_id`` for 2xx; otherwise a ProviderError."""
        body = response_body(response)
        if response.is_success and _meta.parse_graph_error(body) is None:
            message_id = body.get("message_id") if isinstance(body, dict) else None
            raw = body if isinstance(body, (dict, list)) else (body or None)
            return Receipt(
                provider_message_id=message_id if isinstance(message_id, str) else None, raw=raw
            )
        raise self._error(response, body)

    # -- callbacks ----------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check ``X-Hub-Signature-256`` against the raw body with the app secret.

        Raises:
            WebhookVerificationError: no app secret is set, or the signature is missing or
                does not match.
        """
        secret = self.settings.app_secret
        _meta.verify_signature(
            request, secret.get_secret_value() if secret else None, provider=self.name
        )

    def verify_subscription(self, request: WebhookRequest) -> str:
        """Answer Meta's ``GET`` handshake: the ``hub.challenge`` to echo with status 200.

        Raises:
            WebhookVerificationError: no verify token is set, or the mode, token or challenge
                is wrong or missing (answer 403).
        """
        token = self.settings.verify_token
        return _meta.verify_subscription(
            request, token.get_secret_value() if token else None, provider=self.name
        )

    def handshake(self, request: WebhookRequest) -> WebhookResponse:
        """Answer Meta's ``GET`` handshake: 200 with ``hub.challenge`` as plain text.

        Raises:
            WebhookVerificationError: as :meth:`verify_subscription` (answer 4xx).
        """
        challenge = self.verify_subscription(request)
        return WebhookResponse(body=challenge.encode())

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """Events from every entry's ``messaging`` items (``standby`` and ``changes`` skipped)."""
        data = request.json_body()
        if not isinstance(data, dict) or data.get("object") != "page":
            raise WebhookParseError("messenger callback is not a Page webhook (object 'page')")
        entries = data.get("entry")
        if not isinstance(entries, list):
            raise WebhookParseError("messenger callback has no entry list")
        events: list[DeliveryEvent | InboundMessage] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise WebhookParseError("messenger callback entry is not an object")
            items = entry.get("messaging", [])
            if not isinstance(items, list):
                raise WebhookParseError("messenger entry messaging is not a list")
            for item in items:
                if not isinstance(item, dict):
                    raise WebhookParseError("messenger messaging item is not an object")
                events.extend(self._item(item, entry.get("time")))
        return events

    def _item(
        self, item: dict[str, Any], entry_time: object
    ) -> list[DeliveryEvent | InboundMessage]:
        sender, recipient = _id(item.get("sender")), _id(item.get("recipient"))
        if sender is None:
            raise WebhookParseError("messenger messaging item has no sender id")
        kind = next((k for k in item if k not in _ENVELOPE), None)
        if kind is None:
            raise WebhookParseError("messenger messaging item carries no event")
        body = item[kind]
        when = _from_ms(item.get("timestamp")) or _from_ms(entry_time)
        if kind == "message" and isinstance(body, dict) and body.get("is_echo") is True:
            return [self._echo(item, body, recipient, when)]
        if kind == "message" and isinstance(body, dict):
            return [self._inbound(item, body, sender, recipient, when)]
        if kind == "postback" and isinstance(body, dict):
            payload = body.get("payload")
            return [
                InboundMessage(
                    provider=self.name,
                    channel=Channel.MESSENGER,
                    sender=sender,
                    recipient=recipient,
                    text=payload if isinstance(payload, str) else None,
                    provider_message_id=_str(body.get("mid")),
                    received_at=when,
                    raw=item,
                )
            ]
        if kind == "delivery" and isinstance(body, dict):
            return list(self._deliveries(item, body, sender, when))
        if kind == "read" and isinstance(body, dict):
            return [self._status(item, "read", sender, None, when, body.get("watermark"))]
        mid = _str(body.get("mid")) if isinstance(body, dict) else None
        event = self._status(item, kind, sender, mid, when, item.get("timestamp"))
        return [event.model_copy(update={"status": DeliveryStatus.UNKNOWN})]

    def _inbound(
        self,
        item: dict[str, Any],
        body: dict[str, Any],
        sender: str,
        recipient: str | None,
        when: datetime | None,
    ) -> InboundMessage:
        media: list[Media] = []
        attachments = body.get("attachments")
        for attachment in attachments if isinstance(attachments, list) else []:
            payload = attachment.get("payload") if isinstance(attachment, dict) else None
            url = payload.get("url") if isinstance(payload, dict) else None
            if isinstance(url, str) and url:
                title = payload.get("title") if isinstance(payload, dict) else None
                media.append(Media(url=url, filename=_str(title)))
        reply_to = body.get("reply_to")
        return InboundMessage(
            provider=self.name,
            channel=Channel.MESSENGER,
            sender=sender,
            recipient=recipient,
            text=_str(body.get("text")),
            media=tuple(media),
            provider_message_id=_str(body.get("mid")),
            in_reply_to=_str(reply_to.get("mid")) if isinstance(reply_to, dict) else None,
            received_at=when,
            raw=item,
        )

    def _echo(
        self,
        item: dict[str, Any],
        body: dict[str, Any],
        recipient: str | None,
        when: datetime | None,
    ) -> DeliveryEvent:
        mid = _str(body.get("mid"))
        return DeliveryEvent(
            provider=self.name,
            provider_message_id=mid,
            message_id=_str(body.get("metadata")),
            recipient=recipient,
            channel=Channel.MESSENGER,
            status=STATUS_MAP["message_echoes"],
            raw_status="message_echoes",
            occurred_at=when,
            event_id=f"{mid}:message_echoes" if mid else None,
            raw=item,
        )

    def _deliveries(
        self, item: dict[str, Any], body: dict[str, Any], sender: str, when: datetime | None
    ) -> Iterable[DeliveryEvent]:
        mids = body.get("mids")
        mids = [m for m in mids if isinstance(m, str) and m] if isinstance(mids, list) else []
        if not mids:  # only a watermark: everything sent before it was delivered
            yield self._status(item, "delivery", sender, None, when, body.get("watermark"))
        for mid in mids:
            yield self._status(item, "delivery", sender, mid, when, None)

    def _status(
        self,
        item: dict[str, Any],
        kind: str,
        sender: str,
        mid: str | None,
        when: datetime | None,
        mark: object,
    ) -> DeliveryEvent:
        event_id = f"{mid}:{kind}" if mid else f"{sender}:{kind}:{_scalar(mark)}"
        return DeliveryEvent(
            provider=self.name,
            provider_message_id=mid,
            recipient=sender,
            channel=Channel.MESSENGER,
            status=STATUS_MAP.get(kind, DeliveryStatus.UNKNOWN),
            raw_status=kind,
            occurred_at=when,
            event_id=event_id,
            raw=item,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _type_and_tag(self, message: OutboundMessage) -> tuple[object, Any]:
        options = message.provider_options
        tag = options.get("tag", self.settings.message_tag)
        default = "MESSAGE_TAG" if tag is not None else self.settings.messaging_type
        return options.get("messaging_type") or default, tag

    def _refuse(self, text: str, category: ErrorCategory) -> ProviderError:
        return ProviderError(text, category=category, provider=self.name)

    def _error(self, response: httpx.Response, body: Any) -> ProviderError:
        graph = _meta.parse_graph_error(body)
        code = graph.code if graph else None
        subcode = graph.subcode if graph else None
        keys = [k for k in (subcode, code) if k is not None]
        error = _meta.graph_error(
            response,
            self.name,
            codes=self.error_codes,
            category=self.error_subcodes.get(subcode) if subcode is not None else None,
            reason=next((REASONS[k] for k in keys if k in REASONS), None),
            contact_invalid=any(k in CONTACT_INVALID for k in keys),
        )
        return _redact(error, self.settings.page_access_token.get_secret_value())


# -- module helpers --------------------------------------------------------------------------------


def _id(value: object) -> str | None:
    """The ``id`` of a ``{"id": ...}`` object (Meta sends ids as strings)."""
    found = value.get("id") if isinstance(value, Mapping) else None
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    return found if isinstance(found, str) and found else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _scalar(value: object) -> str:
    """A watermark or timestamp as text for event ids (``-`` when missing)."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value)
    return "-"


def _from_ms(value: object) -> datetime | None:
    """A UTC datetime from Meta's milliseconds since the epoch, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _redact(error: ProviderError, token: str) -> ProviderError:
    """``error`` with the Page token replaced by ``***`` wherever Meta might have echoed it."""
    if not token:
        return error
    error.message = error.message.replace(token, "***")
    error.args = (error.message,)
    if isinstance(error.raw, str):
        error.raw = error.raw.replace(token, "***")
    elif error.raw is not None:
        dumped = json.dumps(error.raw, ensure_ascii=False, default=str)
        if token in dumped:
            error.raw = dumped.replace(token, "***")
    return error
