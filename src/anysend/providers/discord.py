r"""``Discord``: the ``chat`` channel through a Discord webhook.

For teams moving from Apprise's ``discord://``: one webhook URL posts to one channel, so the
recipient needs no address.

Example:
    ```python
    import anysend
    from anysend.providers.discord import Discord

    discord = Discord(
        webhook_url="https://discord.com/api/webhooks/123/abc...", username="Deploy bot"
    )
    with anysend.Client([discord]) as client:
        client.send(anysend.Message(text="Deploy finished"), to={}, via=["chat"])
    ```

Settings:
    * ``webhook_url`` (secret): the webhook URL. Its token is the credential: it never shows
      in reprs, errors, results or anysend's logs.
    * ``username``, ``avatar_url``: override the webhook's name and avatar on every message.

The request: ``POST <webhook_url>?wait=true`` (existing query parameters such as
``thread_id`` are kept) with JSON ``{"content": ...}`` plus the overrides that are set.
``content`` is the message text (Discord Markdown); a subject, when the message given to the
adapter has one, comes first in bold: ``"**<subject>**\n<text>"``. With ``wait=true``
Discord answers ``200`` with the created message, whose ``id`` becomes the receipt's
``provider_message_id`` (an answer ``204`` without a body, as without ``wait``, gives none).

Limits and quirks:
    * ``content`` holds at most :data:`MAX_CONTENT` (2000) characters. Longer content fails the
      attempt before any request, with ``payload_too_large`` (the next channel is tried).
    * Mentions in the text (``@everyone``, ``<@id>``) notify as in any Discord message.
    * ``message.to`` is ignored: the webhook decides the channel, not the recipient.
    * A ``429`` carries ``Retry-After`` and a JSON body ``{"retry_after": 1.5, "global":
      false}`` in seconds; the header wins, the body is used when the header is missing.
    * Webhooks take no idempotency key, so an ambiguous timeout is not retried.

Errors: Discord's JSON error codes (:data:`ERROR_CODES`), else :data:`STATUS_CATEGORIES`
(400 ``content_rejected``, 404 ``configuration``: the webhook was deleted), then the shared
mapping (401/403 ``auth``, 413 ``payload_too_large``, 429 ``rate_limited``, 5xx
``unavailable``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from anysend import Channel, ErrorCategory, OutboundMessage, ProviderError, Receipt
from anysend._ratelimit import RateLimit
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    error_from_response,
    response_body,
)
from anysend.providers.webhook import _redact, _require_url

__all__ = ["ERROR_CODES", "MAX_CONTENT", "STATUS_CATEGORIES", "Discord", "DiscordSettings"]

#: The most characters Discord takes in a message's ``content``.
MAX_CONTENT = 2000

#: Discord's JSON error codes (``{"code": 50006, "message": "..."}``) and their categories.
ERROR_CODES: dict[int, ErrorCategory] = {
    10015: ErrorCategory.CONFIGURATION,  # Unknown Webhook: deleted, or a wrong id
    50027: ErrorCategory.AUTH,  # Invalid Webhook Token
    50006: ErrorCategory.CONTENT_REJECTED,  # Cannot send an empty message
    50035: ErrorCategory.CONTENT_REJECTED,  # Invalid Form Body
    40005: ErrorCategory.PAYLOAD_TOO_LARGE,  # Request entity too large
}

#: HTTP statuses whose meaning for a Discord webhook differs from the shared mapping.
STATUS_CATEGORIES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    404: ErrorCategory.CONFIGURATION,
}


class DiscordSettings(ProviderSettings):
    """Settings of :class:`Discord`.

    Attributes:
        webhook_url: the webhook URL, ``https://discord.com/api/webhooks/<id>/<token>``
            (secret).
        username: the sender name shown instead of the webhook's.
        avatar_url: the sender avatar shown instead of the webhook's.
    """

    webhook_url: SecretStr
    username: str | None = None
    avatar_url: str | None = None


class Discord(Provider):
    """Posts chat messages to a Discord channel through a webhook.

    Attributes:
        error_codes: Discord's JSON error codes and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "discord"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.CHAT})
    capabilities: ClassVar[Capabilities] = Capabilities(addressless=True)
    Settings: ClassVar[type[ProviderSettings]] = DiscordSettings
    error_codes: ClassVar[dict[int, ErrorCategory]] = ERROR_CODES
    #: Five requests per two seconds per webhook (Discord staff, discord-api-docs#367; the
    #: docs give no number and ask clients to read the rate-limit headers): one every 0.4 s.
    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=2.5, burst=1)
    settings: DiscordSettings

    def __init__(self, settings: DiscordSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        _require_url(self.name, self.settings.webhook_url)

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse content over :data:`MAX_CONTENT` characters (``payload_too_large``)."""
        super().check_supported(message)
        length = len(self.content(message))
        if length > MAX_CONTENT:
            raise ProviderError(
                f"the discord message is {length} characters; the limit is {MAX_CONTENT}",
                category=ErrorCategory.PAYLOAD_TOO_LARGE,
                provider=self.name,
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to the webhook URL with ``wait=true``."""
        payload: dict[str, Any] = {"content": self.content(message)}
        if self.settings.username:
            payload["username"] = self.settings.username
        if self.settings.avatar_url:
            payload["avatar_url"] = self.settings.avatar_url
        url = httpx.URL(self.settings.webhook_url.get_secret_value())
        return httpx.Request("POST", url.copy_merge_params({"wait": "true"}), json=payload)

    @staticmethod
    def content(message: OutboundMessage) -> str:
        """The Markdown content: the subject in bold on its own line, then the text."""
        text = message.text or ""
        if message.subject:
            return f"**{message.subject}**\n{text}" if text else f"**{message.subject}**"
        return text

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt with the message id for 2xx; otherwise a ProviderError by Discord's code."""
        body = response_body(response)
        if response.is_success:
            given = body.get("id") if isinstance(body, dict) else None
            return Receipt(
                provider_message_id=given if isinstance(given, str) else None,
                raw=body if isinstance(body, dict) else None,
            )
        number = body.get("code") if isinstance(body, dict) else None
        number = number if isinstance(number, int) and not isinstance(number, bool) else None
        text = body.get("message") if isinstance(body, dict) else None
        category = self.error_codes.get(number) if number is not None else None
        error = error_from_response(
            response,
            self.name,
            message=f"discord refused the message: {text}" if isinstance(text, str) else None,
            category=category or STATUS_CATEGORIES.get(response.status_code),
            code=str(number) if number is not None else None,
        )
        if error.retry_after is None and isinstance(body, dict):
            error.retry_after = _seconds(body.get("retry_after"))
        raise _redact(error, self.settings.webhook_url.get_secret_value())


def _seconds(value: object) -> float | None:
    """``value`` as a non-negative number of seconds, or ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
