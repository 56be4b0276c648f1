r"""``Slack``: the ``chat`` channel through a Slack incoming webhook.

For teams moving from Apprise's ``slack://`` (webhook mode): one webhook URL posts to one
channel, so the recipient needs no address.

Example:
    ```python
    import anysend
    from anysend.providers.slack import Slack

    slack = Slack(webhook_url="https://hooks.slack.com/services/T000/B000/XXXX")
    with anysend.Client([slack]) as client:
        client.send(anysend.Message(text="Deploy *finished*"), to={}, via=["chat"])
    ```

Settings:
    * ``webhook_url`` (secret): the incoming-webhook URL. It is the credential: it never shows
      in reprs, errors, results or anysend's logs.
    * ``username``, ``icon_emoji``, ``channel``: overrides sent with every message. Only
      legacy (custom-integration) webhooks honour them; app webhooks post as the app, to the
      channel chosen when the webhook was created.

The request: ``POST <webhook_url>`` with JSON ``{"text": ...}`` plus the overrides that are
set, and ``blocks`` when given as a provider option
(``Message(provider_options={"slack": {"blocks": [...]}})``; other options are ignored).
``text`` is the message text as Slack ``mrkdwn``; a subject, when the message given to the
adapter has one, comes first in bold: ``"*<subject>*\n<text>"``. Slack answers ``200`` with
the text ``ok`` and no message id (the receipt has none).

Limits and quirks:
    * The text is sent verbatim as mrkdwn: escape literal ``&``, ``<`` and ``>`` as
      ``&amp;``, ``&lt;`` and ``&gt;``; ``<https://example.com|links>`` work.
    * ``message.to`` is ignored: the webhook decides the channel, not the recipient.
    * Slack allows about one message per second per webhook, with short bursts; a ``429``
      carries ``Retry-After``, which the client honours.
    * Webhooks take no idempotency key, so an ambiguous timeout is not retried.

Errors: Slack answers a failure with an HTTP status and a short error string as the body.
:data:`ERROR_CODES` maps the strings; an unknown string falls back to the status
(:data:`STATUS_CATEGORIES`, then the shared mapping: 401/403 ``auth``, 429 ``rate_limited``
with ``Retry-After``, 5xx ``unavailable``).

What was checked: Slack's changelog "Improving error conditions for Incoming Webhooks"
(2016-05-17) documents ``invalid_payload`` and ``user_not_found`` (400),
``action_prohibited`` (403), ``channel_not_found`` (404), ``channel_is_archived`` (410) and
``rollup_error`` (500), and Slack's rate-limit page gives one message per second for posting.
``invalid_token``, ``no_service``, ``no_team``, ``no_active_hooks``, ``invalid_blocks``,
``invalid_blocks_format``, ``missing_text_or_fallback_or_attachments`` and ``rate_limited``
were found only in third-party references to Slack's webhook documentation.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from anysend import Channel, ErrorCategory, OutboundMessage, ProviderError, Receipt
from anysend._ratelimit import RateLimit
from anysend.providers import Capabilities, Provider, ProviderSettings, error_from_response
from anysend.providers.webhook import _redact, _require_url

__all__ = ["ERROR_CODES", "STATUS_CATEGORIES", "Slack", "SlackSettings"]

#: Slack's webhook error strings and their categories.
ERROR_CODES: dict[str, ErrorCategory] = {
    # the payload: fix the message, another provider would refuse it too
    "invalid_payload": ErrorCategory.CONTENT_REJECTED,
    "invalid_blocks": ErrorCategory.CONTENT_REJECTED,
    "invalid_blocks_format": ErrorCategory.CONTENT_REJECTED,
    "missing_text_or_fallback_or_attachments": ErrorCategory.CONTENT_REJECTED,
    # the webhook itself is revoked, disabled or invalid: the URL is the credential
    "invalid_token": ErrorCategory.AUTH,
    "no_service": ErrorCategory.AUTH,
    "no_active_hooks": ErrorCategory.AUTH,
    # where it posts: fix the webhook's setup (or the channel/username overrides)
    "no_team": ErrorCategory.CONFIGURATION,
    "user_not_found": ErrorCategory.CONFIGURATION,
    "channel_not_found": ErrorCategory.CONFIGURATION,
    "channel_is_archived": ErrorCategory.CONFIGURATION,
    "action_prohibited": ErrorCategory.CONFIGURATION,
    # passing trouble
    "rate_limited": ErrorCategory.RATE_LIMITED,
    "rollup_error": ErrorCategory.UNAVAILABLE,
}

#: HTTP statuses whose meaning for a webhook differs from the shared mapping (used when the
#: body holds no known error string).
STATUS_CATEGORIES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    404: ErrorCategory.CONFIGURATION,
    410: ErrorCategory.CONFIGURATION,
}

_ERROR_STRING = re.compile(r"[a-z][a-z0-9_]{1,79}")


class SlackSettings(ProviderSettings):
    """Settings of :class:`Slack`.

    Attributes:
        webhook_url: the incoming-webhook URL (secret).
        username: the sender name shown (legacy webhooks only).
        icon_emoji: the sender icon, such as ``":rocket:"`` (legacy webhooks only).
        channel: the channel to post to instead of the webhook's (legacy webhooks only).
    """

    webhook_url: SecretStr
    username: str | None = None
    icon_emoji: str | None = None
    channel: str | None = None


class Slack(Provider):
    """Posts chat messages to a Slack channel through an incoming webhook.

    Attributes:
        error_codes: Slack's error strings and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "slack"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.CHAT})
    capabilities: ClassVar[Capabilities] = Capabilities(addressless=True)
    Settings: ClassVar[type[ProviderSettings]] = SlackSettings
    error_codes: ClassVar[dict[str, ErrorCategory]] = ERROR_CODES
    #: Slack's rate-limit page: one message a second per incoming webhook (this adapter's
    #: one webhook), short bursts tolerated.
    rate_limit: ClassVar[RateLimit | None] = RateLimit(per_second=1)
    settings: SlackSettings

    def __init__(self, settings: SlackSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        _require_url(self.name, self.settings.webhook_url)

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse ``blocks`` that are not a list."""
        super().check_supported(message)
        blocks = message.provider_options.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            raise ProviderError(
                "the slack provider option 'blocks' must be a list of Block Kit blocks",
                category=ErrorCategory.CONTENT_REJECTED,
                provider=self.name,
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST to the webhook URL."""
        payload: dict[str, Any] = {"text": self.text(message)}
        for key in ("username", "icon_emoji", "channel"):
            value = getattr(self.settings, key)
            if value:
                payload[key] = value
        blocks = message.provider_options.get("blocks")
        if blocks is not None:
            payload["blocks"] = blocks
        return httpx.Request("POST", self.settings.webhook_url.get_secret_value(), json=payload)

    @staticmethod
    def text(message: OutboundMessage) -> str:
        """The mrkdwn text: the subject in bold on its own line, then the text."""
        text = message.text or ""
        if message.subject:
            return f"*{message.subject}*\n{text}" if text else f"*{message.subject}*"
        return text

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt (without an id) for 2xx; otherwise a ProviderError by Slack's string."""
        if response.is_success:
            return Receipt(raw=response.text or None)
        body = response.text.strip()
        code = body if _ERROR_STRING.fullmatch(body) else None
        category = self.error_codes.get(code) if code else None
        error = error_from_response(
            response,
            self.name,
            message=f"slack refused the message: {code}" if code else None,
            category=category or STATUS_CATEGORIES.get(response.status_code),
            code=code,
        )
        raise _redact(error, self.settings.webhook_url.get_secret_value())
