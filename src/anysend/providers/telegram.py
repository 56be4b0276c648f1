r"""``Telegram``: the ``telegram`` channel through the Telegram Bot API, with bot updates.

Example:
    ```python
    import anysend
    from anysend.providers.telegram import Telegram

    telegram = Telegram(bot_token="123456:ABC-DEF", parse_mode="HTML", secret_token="hook-secret")
    with anysend.Client([telegram]) as client:
        client.send(anysend.Message(text="<b>Shipped</b>"), to={"chat_ids": {"telegram": "42"}})
    ```

Settings:
    * ``bot_token`` (secret): the token @BotFather gave, ``<bot id>:<secret>``. It sits in the
      request path (``/bot<token>/sendMessage``): it never shows in reprs, errors, results or
      anysend's logs.
    * ``parse_mode``: ``"HTML"``, ``"MarkdownV2"``, legacy ``"Markdown"`` or ``None`` (plain
      text); the provider option ``parse_mode`` wins for one message.
    * ``disable_web_page_preview`` / ``link_preview_options``: no link previews, or Telegram's
      whole ``LinkPreviewOptions`` object (which wins).
    * ``images_as_photos``: send a JPEG or PNG attachment of at most 10 MB with ``sendPhoto``
      (shown inline, recompressed by Telegram) instead of ``sendDocument``.
    * ``secret_token`` (secret): the ``secret_token`` given to ``setWebhook``; callbacks must
      carry it in ``X-Telegram-Bot-Api-Secret-Token``. Without it every callback is refused.
    * ``bot_username``: the bot's username, reported as the recipient of inbound messages.
    * ``api_base``: the Bot API server (default ``https://api.telegram.org``; a local
      ``telegram-bot-api`` server works too).

The request (https://core.telegram.org/bots/api#sendmessage): ``POST
{api_base}/bot<token>/sendMessage`` with JSON ``{"chat_id", "text", "parse_mode",
"link_preview_options"}`` and the provider options merged in verbatim (``reply_markup``,
``disable_notification``, ``protect_content``, ``message_thread_id``, ...). A subject comes
first as a bold line, escaped for the parse mode (plain ``subject\n\ntext`` without one). One
attachment goes as a multipart ``sendDocument`` (or ``sendPhoto``) with the text as its
caption. Telegram answers ``{"ok": true, "result": Message}``; the receipt's id is
``"<chat id>:<message id>"`` (message ids are unique only within a chat) and its status
``sent``: the message is in the chat at once, and the Bot API has no delivery receipts.

Limits and quirks:
    * Text is 1-4096 characters and a caption 0-1024 after entity parsing; longer fails with
      ``payload_too_large`` before any request (markup is not counted).
    * One attachment per message, at most 50 MB (10 MB as a photo); inline images are refused.
    * A bot may write only to users who started it (``/start``), and to groups and channels it
      belongs to. No idempotency key: an ambiguous timeout is not retried.
    * About 30 messages per second overall and one per second per chat
      (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this); a
      429 carries ``parameters.retry_after``, which the client honours.

Errors (https://core.telegram.org/bots/api#making-requests): ``{"ok": false, "error_code",
"description", "parameters": {"retry_after", "migrate_to_chat_id"}}`` with the HTTP status
equal to ``error_code``. ``retry_after`` means ``rate_limited``; ``migrate_to_chat_id`` (a group
that became a supergroup) ``invalid_recipient`` naming the new id; otherwise the description
decides (:data:`ERROR_CODES`, :data:`REASONS`, :data:`CONTACT_INVALID`), then the status
(:data:`STATUS_CATEGORIES`, then the shared mapping).

Callbacks (https://core.telegram.org/bots/api#update): one Update per POST, authenticated only
by the shared ``secret_token`` header (Telegram signs nothing and sends no timestamp: dedupe on
``update_id``). ``message``, ``edited_message``, ``channel_post`` and ``edited_channel_post``
become :class:`~anysend.InboundMessage` objects, and so does a ``callback_query`` (a button
press; the text is its ``data``). ``my_chat_member`` becomes a DeliveryEvent by the bot's new
status (:data:`EVENT_MAP`, :data:`EVENT_REASONS`): ``kicked`` in a private chat means the user
blocked the bot. Other updates give no events.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal, TypeGuard

import httpx
from pydantic import SecretStr, field_validator

from anysend import (
    Attachment,
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
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._ratelimit import RateLimit
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    category_for_status,
    compare_signatures,
    error_from_response,
    response_body,
)

__all__ = [
    "CONTACT_INVALID",
    "ERROR_CODES",
    "EVENT_MAP",
    "EVENT_REASONS",
    "MAX_CAPTION_LENGTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_PHOTO_BYTES",
    "MAX_TEXT_LENGTH",
    "MEDIA_FIELDS",
    "MESSAGE_UPDATES",
    "REASONS",
    "SECRET_HEADER",
    "STATUS_CATEGORIES",
    "Telegram",
    "TelegramSettings",
    "bold",
    "escape_markdown_v2",
    "visible_length",
]

ParseMode = Literal["HTML", "MarkdownV2", "Markdown"]

#: The header that carries the webhook's ``secret_token``.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
#: Characters of a message text after entity parsing.
MAX_TEXT_LENGTH = 4096
#: Characters of a caption after entity parsing.
MAX_CAPTION_LENGTH = 1024
#: Bytes of a file sent with ``sendDocument`` (Telegram's "50 MB").
MAX_DOCUMENT_BYTES = 50_000_000
#: Bytes of a photo sent with ``sendPhoto`` (Telegram's "10 MB").
MAX_PHOTO_BYTES = 10_000_000

#: Fragments of Telegram's error ``description`` (matched case-insensitively, first match wins)
#: and their categories. Telegram has no error codes beyond the HTTP status.
ERROR_CODES: dict[str, ErrorCategory] = {
    "bot was blocked by the user": ErrorCategory.OPTED_OUT,
    "user is deactivated": ErrorCategory.INVALID_RECIPIENT,
    "bot can't initiate conversation with a user": ErrorCategory.INVALID_RECIPIENT,
    "bot can't send messages to bots": ErrorCategory.INVALID_RECIPIENT,
    "bot was kicked from": ErrorCategory.INVALID_RECIPIENT,
    "bot is not a member of": ErrorCategory.INVALID_RECIPIENT,
    "chat not found": ErrorCategory.INVALID_RECIPIENT,
    "peer_id_invalid": ErrorCategory.INVALID_RECIPIENT,
    "group chat was upgraded to a supergroup chat": ErrorCategory.INVALID_RECIPIENT,
    "group chat was deactivated": ErrorCategory.INVALID_RECIPIENT,
    "have no rights to send a message": ErrorCategory.INVALID_RECIPIENT,
    "not enough rights to send": ErrorCategory.INVALID_RECIPIENT,
    "chat_write_forbidden": ErrorCategory.INVALID_RECIPIENT,
    "message is too long": ErrorCategory.PAYLOAD_TOO_LARGE,
    "message caption is too long": ErrorCategory.PAYLOAD_TOO_LARGE,
    "can't parse entities": ErrorCategory.CONTENT_REJECTED,
    "message text is empty": ErrorCategory.CONTENT_REJECTED,
    "photo_invalid_dimensions": ErrorCategory.CONTENT_REJECTED,
}

#: The reasons the description fragments of :data:`ERROR_CODES` carry.
REASONS: dict[str, Reason] = {
    "bot was blocked by the user": Reason.BLOCKED_BY_RECIPIENT,
    "user is deactivated": Reason.UNKNOWN_RECIPIENT,
    "bot can't initiate conversation with a user": Reason.UNKNOWN_RECIPIENT,
    "bot can't send messages to bots": Reason.INVALID_RECIPIENT,
    "bot was kicked from": Reason.BLOCKED_BY_RECIPIENT,
    "bot is not a member of": Reason.UNKNOWN_RECIPIENT,
    "chat not found": Reason.UNKNOWN_RECIPIENT,
    "peer_id_invalid": Reason.INVALID_RECIPIENT,
    "group chat was upgraded to a supergroup chat": Reason.INVALID_RECIPIENT,
    "group chat was deactivated": Reason.UNKNOWN_RECIPIENT,
    "have no rights to send a message": Reason.POLICY_BLOCKED,
    "not enough rights to send": Reason.POLICY_BLOCKED,
    "chat_write_forbidden": Reason.POLICY_BLOCKED,
    "can't parse entities": Reason.CONTENT_REJECTED,
    "message text is empty": Reason.CONTENT_REJECTED,
    "photo_invalid_dimensions": Reason.CONTENT_REJECTED,
}

#: Description fragments that mean the chat id is dead for good (``contact_invalid``): the
#: user blocked the bot or deleted the account, the chat is gone or has a new id.
CONTACT_INVALID: frozenset[str] = frozenset(
    {
        "bot was blocked by the user",
        "user is deactivated",
        "bot can't send messages to bots",
        "bot was kicked from",
        "chat not found",
        "peer_id_invalid",
        "group chat was upgraded to a supergroup chat",
        "group chat was deactivated",
    }
)

#: HTTP statuses whose meaning differs from the shared mapping (used when no description
#: fragment matches). Telegram's 403 is always about the chat, never the token; 404 is a
#: malformed token (or a wrong ``api_base``).
STATUS_CATEGORIES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    403: ErrorCategory.INVALID_RECIPIENT,
    404: ErrorCategory.AUTH,
    409: ErrorCategory.CONFIGURATION,
}

#: The bot's new status in a ``my_chat_member`` update and the event it means.
EVENT_MAP: dict[str, EventType] = {
    "kicked": EventType.OPTED_OUT,  # private chat: the user blocked the bot; group: banned
    "left": EventType.OPTED_OUT,  # removed from a group or channel
    "member": EventType.OPTED_IN,  # private chat: unblocked; group: added
    "administrator": EventType.OPTED_IN,  # added to a channel or promoted in a group
}

#: The reasons the statuses of :data:`EVENT_MAP` carry.
EVENT_REASONS: dict[str, Reason] = {
    "kicked": Reason.BLOCKED_BY_RECIPIENT,
    "left": Reason.OPTED_OUT,
}

#: Update fields that carry a message.
MESSAGE_UPDATES = ("message", "edited_message", "channel_post", "edited_channel_post")
#: Message fields that carry one file (besides ``photo``, a list of sizes).
MEDIA_FIELDS = ("document", "animation", "video", "audio", "voice", "video_note", "sticker")

_PHOTO_TYPES = frozenset({"image/jpeg", "image/png"})
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_CHAT_ID = re.compile(r"-?[0-9]+")
_CHANNEL = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}")
_RETRY_AFTER = re.compile(r"retry after (\d+)")
_MARKDOWN_V2_SPECIAL = "\\_*[]()~`>#+-=|{}.!"
_LINK_TARGET = re.compile(r"\]\((?:\\.|[^\\)])*\)")
_CODE_LANGUAGE = re.compile(r"```[^\n`]*")
_HTML_TAG = re.compile(r"<[^>]*>")


class TelegramSettings(ProviderSettings):
    """Settings of :class:`Telegram`.

    Attributes:
        bot_token: the bot's token from @BotFather (secret).
        parse_mode: how Telegram reads the text: ``"HTML"``, ``"MarkdownV2"``, ``"Markdown"``
            or ``None`` for plain text.
        disable_web_page_preview: send ``link_preview_options: {"is_disabled": true}``.
        link_preview_options: Telegram's ``LinkPreviewOptions`` object (wins over the flag).
        images_as_photos: send JPEG and PNG attachments up to 10 MB with ``sendPhoto``.
        secret_token: the webhook's ``secret_token`` (secret; 1-256 of ``A-Z a-z 0-9 _ -``).
        bot_username: the bot's username, the recipient of inbound messages.
        api_base: the Bot API server.
    """

    bot_token: SecretStr
    parse_mode: ParseMode | None = None
    disable_web_page_preview: bool = False
    link_preview_options: dict[str, Any] | None = None
    images_as_photos: bool = False
    secret_token: SecretStr | None = None
    bot_username: str | None = None
    api_base: str = "https://api.telegram.org"

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        # The token goes into the URL path: refuse anything that could change the URL.
        if not _TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must look like '<bot id>:<secret>' as @BotFather gives it")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("api_base")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")


class Telegram(Provider):
    """Sends chat messages through a Telegram bot and reads its webhook updates.

    Attributes:
        error_codes: Telegram's description fragments and their categories
            (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "telegram"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.TELEGRAM})
    capabilities: ClassVar[Capabilities] = Capabilities(
        attachments=True, webhooks=True, inbound=True, max_attachment_bytes=MAX_DOCUMENT_BYTES
    )
    Settings: ClassVar[type[ProviderSettings]] = TelegramSettings
    default_base_url: ClassVar[str | None] = "https://api.telegram.org"
    error_codes: ClassVar[dict[str, ErrorCategory]] = ERROR_CODES
    #: Telegram's Bot FAQ ("My bot is hitting limits"): about 30 messages a second in all, and
    #: no more than one a second in one chat (20 a minute in a group is not modelled).
    rate_limit: ClassVar[RateLimit | None] = RateLimit(
        per_second=30, burst=1, also=RateLimit(per_second=1, per="recipient")
    )
    settings: TelegramSettings

    # -- sending ----------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse several attachments, a text too long, and a malformed chat id."""
        super().check_supported(message)
        if len(message.attachments) > 1:
            raise UnsupportedFeatureError(
                "telegram sends one attachment per message",
                provider=self.name,
                feature="attachments",
            )
        if not (_CHAT_ID.fullmatch(message.to) or _CHANNEL.fullmatch(message.to)):
            raise ProviderError(
                "a telegram chat id is an integer or '@channelusername'",
                category=ErrorCategory.INVALID_RECIPIENT,
                reason=Reason.INVALID_RECIPIENT,
                provider=self.name,
            )
        mode = self._parse_mode(message)
        try:
            json.dumps(message.provider_options)
        except (TypeError, ValueError) as exc:
            raise self._refuse(f"telegram provider options are not JSON: {exc}") from None
        text = self.text(message, mode)
        if not text and not message.attachments:
            raise self._refuse("a telegram message needs text")
        limit = MAX_CAPTION_LENGTH if message.attachments else MAX_TEXT_LENGTH
        length = visible_length(text, mode)
        if length > limit:
            what = "caption" if message.attachments else "text"
            raise ProviderError(
                f"the telegram {what} is {length} characters; Telegram allows {limit}",
                category=ErrorCategory.PAYLOAD_TOO_LARGE,
                provider=self.name,
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """``sendMessage`` as JSON, or ``sendDocument``/``sendPhoto`` as multipart."""
        mode = self._parse_mode(message)
        text = self.text(message, mode)
        chat_id: int | str = int(message.to) if _CHAT_ID.fullmatch(message.to) else message.to
        if message.attachments:
            return self._upload(message, message.attachments[0], chat_id, text, mode)
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if mode is not None:
            payload["parse_mode"] = mode
        preview = self.settings.link_preview_options
        if preview is None and self.settings.disable_web_page_preview:
            preview = {"is_disabled": True}
        if preview is not None:
            payload["link_preview_options"] = preview
        payload.update(message.provider_options)
        return httpx.Request("POST", self.url("sendMessage"), json=payload)

    def _upload(
        self,
        message: OutboundMessage,
        attachment: Attachment,
        chat_id: int | str,
        caption: str,
        mode: str | None,
    ) -> httpx.Request:
        as_photo = (
            self.settings.images_as_photos
            and attachment.content_type in _PHOTO_TYPES
            and len(attachment.content) <= MAX_PHOTO_BYTES
        )
        method, field = ("sendPhoto", "photo") if as_photo else ("sendDocument", "document")
        fields: dict[str, Any] = {"chat_id": chat_id}
        if caption:
            fields["caption"] = caption
            if mode is not None:
                fields["parse_mode"] = mode
        fields.update(message.provider_options)
        data = {key: _form_value(value) for key, value in fields.items() if value is not None}
        files = {field: (attachment.filename, attachment.content, attachment.content_type)}
        request = httpx.Request("POST", self.url(method), data=data, files=files)
        request.read()  # bytes in memory already: a plain body, re-sent as it is on a retry
        return request

    def url(self, method: str) -> str:
        """The URL of a Bot API method (it holds the token: never show it)."""
        token = self.settings.bot_token.get_secret_value()
        return f"{self.settings.api_base}/bot{token}/{method}"

    def _parse_mode(self, message: OutboundMessage) -> str | None:
        mode = message.provider_options.get("parse_mode", self.settings.parse_mode)
        if mode not in (None, "HTML", "MarkdownV2", "Markdown"):
            raise self._refuse("the telegram parse_mode must be HTML, MarkdownV2 or Markdown")
        return None if mode is None else str(mode)

    @staticmethod
    def text(message: OutboundMessage, parse_mode: str | None = None) -> str:
        """The text sent: the subject as a bold line escaped for ``parse_mode``, then the text."""
        text = message.text or ""
        if not message.subject:
            return text
        title = bold(message.subject, parse_mode)
        return f"{title}\n\n{text}" if text else title

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A ``sent`` receipt for ``{"ok": true}``; otherwise a ProviderError."""
        body = response_body(response)
        data = body if isinstance(body, dict) else None
        if response.is_success and data is not None and data.get("ok") is True:
            result = data.get("result")
            chat = result.get("chat") if isinstance(result, dict) else None
            chat_id = chat.get("id") if isinstance(chat, dict) else None
            message_id = result.get("message_id") if isinstance(result, dict) else None
            known = _is_int(chat_id) and _is_int(message_id)
            return Receipt(
                provider_message_id=f"{chat_id}:{message_id}" if known else None,
                status=DeliveryStatus.SENT,
                raw=data,
            )
        if response.is_success and (data is None or data.get("ok") is not False):
            # A 2xx we cannot read: the message may well be in the chat; never send it again.
            raise self._scrub(
                ProviderError(
                    "telegram answered with a body that is not a Bot API response",
                    category=ErrorCategory.AMBIGUOUS_TIMEOUT,
                    retryable=False,
                    provider=self.name,
                    status_code=response.status_code,
                    raw=body,
                )
            )
        raise self._scrub(self._error(response, data or {}))

    def _error(self, response: httpx.Response, data: Mapping[str, Any]) -> ProviderError:
        description = data.get("description")
        description = description if isinstance(description, str) else ""
        error_code = data.get("error_code")
        status = response.status_code
        if response.is_success and _is_int(error_code):
            status = error_code  # an error inside a 200: trust error_code
        parameters = data.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        retry_after = parameters.get("retry_after")
        if not _is_number(retry_after):
            found = _RETRY_AFTER.search(description.lower()) if status == 429 else None
            retry_after = int(found.group(1)) if found else None
        migrate_to = parameters.get("migrate_to_chat_id")
        lowered = description.lower()
        key = next((k for k in self.error_codes if k in lowered), None) if status < 500 else None
        reason: Reason | None = REASONS.get(key) if key else None
        contact_invalid = key in CONTACT_INVALID
        text = f"telegram refused the message: {description}" if description else None
        if retry_after is not None:
            category = ErrorCategory.RATE_LIMITED
        elif _is_int(migrate_to):
            category = ErrorCategory.INVALID_RECIPIENT
            reason, contact_invalid = Reason.INVALID_RECIPIENT, True
            text = (
                "telegram: the group was upgraded to a supergroup; send to chat id "
                f"{migrate_to} instead"
            )
        elif key is not None:
            category = self.error_codes[key]
        else:
            category = STATUS_CATEGORIES.get(status) or category_for_status(status)
        if category is ErrorCategory.RATE_LIMITED:
            reason = Reason.RATE_LIMITED
        error = error_from_response(
            response, self.name, message=text, category=category, code=description or None
        )
        if retry_after is not None:
            error.retry_after = float(retry_after)
        error.reason = reason
        error.contact_invalid = contact_invalid
        return error

    def _scrub(self, error: ProviderError) -> ProviderError:
        """``error`` without the bot token, even if a proxy echoed the URL back."""
        token = self.settings.bot_token.get_secret_value()
        error.message = error.message.replace(token, "***")
        error.args = (error.message,)
        if error.code is not None:
            error.code = error.code.replace(token, "***")
        error.raw = _scrub_value(error.raw, token)
        return error

    def _refuse(self, text: str) -> ProviderError:
        return ProviderError(text, category=ErrorCategory.CONTENT_REJECTED, provider=self.name)

    # -- callbacks --------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check ``X-Telegram-Bot-Api-Secret-Token`` against ``secret_token`` (constant time)."""
        secret = self.settings.secret_token
        if secret is None:
            raise WebhookVerificationError(
                "telegram callbacks are refused without a secret_token: set one, and give the "
                "same value to setWebhook(secret_token=...)"
            )
        given = request.header(SECRET_HEADER)
        if given is None:
            raise WebhookVerificationError(f"telegram callback has no {SECRET_HEADER} header")
        if not compare_signatures(secret.get_secret_value(), given):
            raise WebhookVerificationError("telegram callback secret token does not match")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One event per Update: an inbound message, a button press or a block/unblock."""
        update = _object(request.json_body(), "telegram update")
        update_id = update.get("update_id")
        if not _is_int(update_id):
            raise WebhookParseError("telegram update has no integer update_id")
        for kind in MESSAGE_UPDATES:
            if kind in update:
                return [self._inbound(update, _object(update[kind], kind))]
        if "callback_query" in update:
            return [self._button(update, _object(update["callback_query"], "callback_query"))]
        if "my_chat_member" in update:
            return [self._member(update, _object(update["my_chat_member"], "my_chat_member"))]
        return []  # polls, inline queries, ...: nothing anysend reports

    def _inbound(self, update: dict[str, Any], message: dict[str, Any]) -> InboundMessage:
        chat_id = _chat_id(message)
        text = message.get("text", message.get("caption"))
        reply = message.get("reply_to_message")
        reply_id = reply.get("message_id") if isinstance(reply, dict) else None
        when = message.get("edit_date", message.get("date"))
        return InboundMessage(
            provider=self.name,
            channel=Channel.TELEGRAM,
            sender=chat_id,
            recipient=self.settings.bot_username,
            text=text if isinstance(text, str) else None,
            media=_media(message),
            provider_message_id=_message_id(chat_id, message.get("message_id")),
            in_reply_to=_message_id(chat_id, reply_id),
            received_at=_when(when),
            raw=update,
        )

    def _button(self, update: dict[str, Any], query: dict[str, Any]) -> InboundMessage:
        message = query.get("message")
        if isinstance(message, dict):
            chat_id: str = _chat_id(message)
            pressed_on = _message_id(chat_id, message.get("message_id"))
        else:  # an inline-mode message: only the user is known
            chat_id = _user_id(query)
            pressed_on = None
        data, query_id = query.get("data"), query.get("id")
        return InboundMessage(
            provider=self.name,
            channel=Channel.TELEGRAM,
            sender=chat_id,
            recipient=self.settings.bot_username,
            text=data if isinstance(data, str) else None,
            provider_message_id=query_id if isinstance(query_id, str) else None,
            in_reply_to=pressed_on,
            raw=update,
        )

    def _member(self, update: dict[str, Any], change: dict[str, Any]) -> DeliveryEvent:
        chat_id = _chat_id(change)
        new = _object(change.get("new_chat_member"), "new_chat_member")
        raw_status = new.get("status")
        if not isinstance(raw_status, str) or not raw_status:
            raise WebhookParseError("telegram my_chat_member has no new status")
        event = EVENT_MAP.get(raw_status)
        chat = change.get("chat")
        private = isinstance(chat, dict) and chat.get("type") == "private"
        description = "the user blocked the bot" if private and raw_status == "kicked" else None
        return DeliveryEvent(
            provider=self.name,
            recipient=chat_id,
            channel=Channel.TELEGRAM,
            event=event,
            status=None if event is not None else DeliveryStatus.UNKNOWN,
            raw_status=raw_status,
            reason=EVENT_REASONS.get(raw_status),
            description=description,
            occurred_at=_when(change.get("date")),
            event_id=str(update["update_id"]),
            raw=update,
        )


# -- text ---------------------------------------------------------------------------------------


def escape_markdown_v2(text: str) -> str:
    r"""``text`` with every MarkdownV2 special character backslash-escaped.

    Telegram's MarkdownV2 needs ``_ * [ ] ( ) ~ ` > # + - = | { } . !`` and ``\`` escaped
    outside entities (https://core.telegram.org/bots/api#markdownv2-style).
    """
    return "".join(f"\\{char}" if char in _MARKDOWN_V2_SPECIAL else char for char in text)


def bold(text: str, parse_mode: str | None) -> str:
    r"""``text`` as one bold entity in ``parse_mode`` (as it is without a parse mode).

    HTML escapes ``& < >``; MarkdownV2 escapes every special character; legacy Markdown cannot
    escape inside an entity, so a ``*`` closes the entity and is written as ``\*`` between
    two (https://core.telegram.org/bots/api#markdown-style).
    """
    if parse_mode == "HTML":
        return f"<b>{html.escape(text, quote=False)}</b>"
    if parse_mode == "MarkdownV2":
        return f"*{escape_markdown_v2(text)}*"
    if parse_mode == "Markdown":
        return "\\*".join(f"*{piece}*" if piece else "" for piece in text.split("*"))
    return text


def visible_length(text: str, parse_mode: str | None) -> int:
    """The characters Telegram counts: ``text`` without markup, trimmed (a lower bound).

    Telegram counts the text after entity parsing. Tags and entities are removed for HTML;
    link targets, code-block languages, escapes and markup characters for Markdown. Markup
    characters used literally are not counted, so a text this finds too long is too long.
    """
    if parse_mode == "HTML":
        return len(html.unescape(_HTML_TAG.sub("", text)).strip())
    if parse_mode not in ("Markdown", "MarkdownV2"):
        return len(text.strip())
    special = _MARKDOWN_V2_SPECIAL if parse_mode == "MarkdownV2" else "\\_*`["
    text = _CODE_LANGUAGE.sub("", _LINK_TARGET.sub("]", text))
    kept: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            kept.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char not in special and not (parse_mode == "Markdown" and char == "]"):
            kept.append(char)
    return len("".join(kept).strip())


# -- helpers ------------------------------------------------------------------------------------


def _form_value(value: Any) -> str:
    """A multipart field: JSON for objects and lists, ``true``/``false``, else the text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _scrub_value(value: Any, token: str) -> Any:
    if isinstance(value, str):
        return value.replace(token, "***")
    if isinstance(value, dict):
        return {k: _scrub_value(v, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, token) for v in value]
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookParseError(f"{what} is not a JSON object")
    return value


def _chat_id(holder: Mapping[str, Any]) -> str:
    chat = _object(holder.get("chat"), "telegram chat")
    chat_id = chat.get("id")
    if not _is_int(chat_id):
        raise WebhookParseError("telegram chat has no integer id")
    return str(chat_id)


def _user_id(query: Mapping[str, Any]) -> str:
    user = _object(query.get("from"), "telegram callback_query.from")
    user_id = user.get("id")
    if not _is_int(user_id):
        raise WebhookParseError("telegram callback_query.from has no integer id")
    return str(user_id)


def _message_id(chat_id: str, message_id: object) -> str | None:
    return f"{chat_id}:{message_id}" if _is_int(message_id) else None


def _when(timestamp: object) -> datetime | None:
    if not _is_int(timestamp):
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise WebhookParseError("telegram date is out of range") from None


def _media(message: Mapping[str, Any]) -> tuple[Media, ...]:
    """The files of a message, by ``file_id`` (fetch them with ``getFile``)."""
    found: list[Media] = []
    photo = message.get("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):
        file_id = photo[-1].get("file_id")  # the sizes grow: the last is the largest
        if isinstance(file_id, str):
            found.append(Media(provider_media_id=file_id))
    for field in MEDIA_FIELDS:
        item = message.get(field)
        if not isinstance(item, dict) or not isinstance(item.get("file_id"), str):
            continue
        if any(m.provider_media_id == item["file_id"] for m in found):
            continue  # an animation also comes as a document
        mime, name = item.get("mime_type"), item.get("file_name")
        found.append(
            Media(
                provider_media_id=item["file_id"],
                content_type=mime if isinstance(mime, str) else None,
                filename=name if isinstance(name, str) else None,
            )
        )
    return tuple(found)
