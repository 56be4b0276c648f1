"""``Teams``: the ``chat`` channel through a Microsoft Teams webhook (Workflows or connector).

For teams moving from Apprise's ``msteams://``: one webhook URL posts to one channel, so the
recipient needs no address.

Example:
    ```python
    import anysend
    from anysend.providers.teams import Teams

    teams = Teams(webhook_url="https://prod-00.westeurope.logic.azure.com/workflows/...")
    with anysend.Client([teams]) as client:
        client.send(anysend.Message(text="Deploy finished"), to={}, via=["chat"])
    ```

Settings:
    * ``webhook_url`` (secret): the webhook URL. Its ``sig`` parameter (Workflows) or path
      (connectors) is the credential: it never shows in reprs, errors, results or anysend's
      logs.

The request: ``POST <webhook_url>`` with a message holding one Adaptive Card (1.4), the form
both Workflows ("Post to a channel when a webhook request is received") and Incoming Webhook
connectors accept::

    {"type": "message",
     "attachments": [{
       "contentType": "application/vnd.microsoft.card.adaptive",
       "content": {
         "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
         "type": "AdaptiveCard", "version": "1.4",
         "body": [
           {"type": "TextBlock", "text": "<subject>", "weight": "Bolder", "size": "Medium",
            "wrap": true},
           {"type": "TextBlock", "text": "<text>", "wrap": true}]}}]}

The subject block comes only when the message given to the adapter has a subject, the text
block only when it has text. Success is any 2xx: connectors answer ``200`` (body ``1``),
Workflows ``202 Accepted``; neither gives a message id.

Limits and quirks:
    * Microsoft is retiring Office 365 connectors, the Incoming Webhook connector included,
      in favour of Workflows (Power Automate) webhooks; create new webhooks with the
      Workflows app. Both URL kinds work here.
    * A Workflows ``202`` means the flow started; a failure later in the flow (a card the
      channel refuses) shows only in the flow's run history.
    * Connectors wrap some failures in ``200 OK``, with a body such as ``Webhook message
      delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 ...``;
      the adapter reads the wrapped status and fails the attempt accordingly.
    * ``message.to`` is ignored: the webhook decides the channel, not the recipient.
    * TextBlock text takes a subset of Markdown (bold, italic, lists, links).
    * Webhooks take no idempotency key, so an ambiguous timeout is not retried.

Errors: :data:`STATUS_CATEGORIES` (400 ``content_rejected``, 404/410 ``configuration``),
then the shared mapping (401/403 ``auth``, 413 ``payload_too_large``, 429 ``rate_limited``
with ``Retry-After``, 5xx ``unavailable``). A Workflows error body
``{"error": {"code": ...}}`` gives the error code.

What was checked: Microsoft's announcement "Retirement of Office 365 connectors within
Microsoft Teams" (July 2024; the dates moved later) as cited in the Teams documentation's
deprecation note and issue MicrosoftDocs/msteams-docs#11225; the 200-wrapped failures in
MicrosoftDocs/msteams-docs#402, #1810 and #7425 (a Microsoft answer: by design).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from anysend import Channel, ErrorCategory, OutboundMessage, Receipt
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    category_for_status,
    error_from_response,
    response_body,
)
from anysend.providers.webhook import _redact, _require_url

__all__ = ["CARD_VERSION", "STATUS_CATEGORIES", "Teams", "TeamsSettings"]

#: The Adaptive Card schema version sent.
CARD_VERSION = "1.4"

#: HTTP statuses whose meaning for a Teams webhook differs from the shared mapping.
STATUS_CATEGORIES: dict[int, ErrorCategory] = {
    400: ErrorCategory.CONTENT_REJECTED,
    404: ErrorCategory.CONFIGURATION,
    410: ErrorCategory.CONFIGURATION,
}

#: A connector's failure wrapped in a 2xx answer.
_WRAPPED_FAILURE = re.compile(r"delivery failed.*?returned HTTP error (\d{3})", re.I | re.S)


class TeamsSettings(ProviderSettings):
    """Settings of :class:`Teams`.

    Attributes:
        webhook_url: the Workflows or Incoming Webhook URL (secret).
    """

    webhook_url: SecretStr


class Teams(Provider):
    """Posts chat messages to a Microsoft Teams channel as an Adaptive Card."""

    name: ClassVar[str] = "teams"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.CHAT})
    capabilities: ClassVar[Capabilities] = Capabilities(addressless=True)
    Settings: ClassVar[type[ProviderSettings]] = TeamsSettings
    settings: TeamsSettings

    def __init__(self, settings: TeamsSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        _require_url(self.name, self.settings.webhook_url)

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The JSON POST of a message with one Adaptive Card."""
        return httpx.Request(
            "POST", self.settings.webhook_url.get_secret_value(), json=self.payload(message)
        )

    @staticmethod
    def payload(message: OutboundMessage) -> dict[str, Any]:
        """The message-with-an-Adaptive-Card body for ``message``."""
        body: list[dict[str, Any]] = []
        if message.subject:
            body.append(
                {
                    "type": "TextBlock",
                    "text": message.subject,
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                }
            )
        if message.text:
            body.append({"type": "TextBlock", "text": message.text, "wrap": True})
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "body": body,
        }
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
            ],
        }

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt (without an id) for 2xx, unless it wraps a failure; else a ProviderError."""
        url = self.settings.webhook_url.get_secret_value()
        if response.is_success:
            wrapped = _WRAPPED_FAILURE.search(response.text)
            if wrapped is None:
                return Receipt(raw=response.text or None)
            status = int(wrapped.group(1))
            error = error_from_response(
                response,
                self.name,
                message=f"teams refused the message: HTTP {status} (wrapped in a 2xx answer)",
                category=STATUS_CATEGORIES.get(status) or category_for_status(status),
                code=f"http_{status}",
            )
            raise _redact(error, url)
        body = response_body(response)
        detail = body.get("error") if isinstance(body, dict) else None
        code = detail.get("code") if isinstance(detail, dict) else None
        code = code if isinstance(code, str) else None
        error = error_from_response(
            response,
            self.name,
            message=f"teams refused the message: {code}" if code else None,
            category=STATUS_CATEGORIES.get(response.status_code),
            code=code,
        )
        raise _redact(error, url)
