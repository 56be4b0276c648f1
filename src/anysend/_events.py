"""What providers tell us after a send: delivery events, inbound messages, and the raw request.

A provider's ``parse_webhook`` turns a :class:`WebhookRequest` (exactly what arrived over HTTP)
into :class:`DeliveryEvent` and :class:`InboundMessage` objects. Every event keeps the raw
provider value and payload beside the normalised one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from anysend._exceptions import WebhookParseError
from anysend._models import Channel
from anysend._status import DeliveryStatus, EventType, Reason

__all__ = ["DeliveryEvent", "InboundMessage", "Media", "WebhookRequest"]

_FROZEN = ConfigDict(frozen=True)


class DeliveryEvent(BaseModel):
    """A provider's report about one message: a status change or another event.

    Exactly one of ``status`` and ``event`` is set: ``status`` for lifecycle changes
    (delivered, read, undeliverable, ...), ``event`` for signals that do not move the status
    (opened, clicked, complained, opted_out, ...).

    Attributes:
        provider: the provider's name.
        provider_message_id: the provider's id for the message.
        message_id: anysend's id, when the provider echoed it back (metadata).
        recipient: the address the event is about (``None`` when the provider does not say).
        channel: the channel of the message.
        status: the normalised lifecycle status.
        event: the normalised non-lifecycle event.
        raw_status: the provider's own status or event name, verbatim.
        reason: why, from the fixed list (failures, opt-outs, invalid contacts).
        description: the provider's human-readable explanation, if any.
        occurred_at: when it happened, per the provider (timezone-aware).
        event_id: the provider's id for the event, or a hash of the payload, for deduplication.
        raw: the provider's payload for this event.
    """

    model_config = _FROZEN

    provider: str
    provider_message_id: str | None = None
    message_id: str | None = None
    recipient: str | None = None
    channel: Channel | None = None
    status: DeliveryStatus | None = None
    event: EventType | None = None
    raw_status: str | None = None
    reason: Reason | None = None
    description: str | None = None
    occurred_at: datetime | None = None
    event_id: str | None = None
    raw: Any = None

    @model_validator(mode="after")
    def _status_or_event(self) -> DeliveryEvent:
        if (self.status is None) == (self.event is None):
            raise ValueError("a DeliveryEvent has exactly one of status and event")
        return self


class Media(BaseModel):
    """A file received in an inbound message (usually a URL to fetch it from the provider)."""

    model_config = _FROZEN

    url: str | None = None
    content_type: str | None = None
    filename: str | None = None
    provider_media_id: str | None = None


class InboundMessage(BaseModel):
    """A message a person sent to you, on any channel.

    Attributes:
        provider: the provider's name.
        channel: the channel it came in on.
        sender: the person's address (E.164 number, email, chat id).
        recipient: your address it was sent to (number, mailbox, bot or page id).
        text: the text, if any.
        subject: the subject (email).
        media: attached files.
        provider_message_id: the provider's id for the inbound message.
        in_reply_to: the provider id of the message it answers, when the provider says.
        received_at: when the provider received it.
        raw: the provider's payload.
    """

    model_config = _FROZEN

    provider: str
    channel: Channel
    sender: str
    recipient: str | None = None
    text: str | None = None
    subject: str | None = None
    media: tuple[Media, ...] = ()
    provider_message_id: str | None = None
    in_reply_to: str | None = None
    received_at: datetime | None = None
    raw: Any = None


def _parse_form(text: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(text, keep_blank_values=True)``, in a third of the time.

    The same pairs for every input (``tests/test_ingest_path.py`` checks it): empty parts
    are dropped, a part without ``=`` has an empty value, ``+`` is a space, and
    percent-escapes are decoded as UTF-8 with replacement.
    """
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value)
        pairs.append((name, value))
    return pairs


class WebhookRequest(BaseModel):
    """An HTTP request as it arrived, for verifying and parsing a provider callback.

    Build it from any web framework: the body must be the exact bytes received (signatures
    cover them), and ``url`` the full URL the provider called (some sign it).

    Attributes:
        method: the HTTP method.
        url: the full URL, with scheme, host, port as the provider saw it, and query.
        headers: the request headers; looked up case-insensitively.
        body: the raw body bytes.
    """

    model_config = _FROZEN

    method: str = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: bytes = b""

    @model_validator(mode="after")
    def _lower_headers(self) -> WebhookRequest:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})
        return self

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header's value, looked up case-insensitively."""
        return self.headers.get(name.lower(), default)

    def json_body(self) -> Any:
        """The body parsed as JSON; a body that is not JSON raises WebhookParseError."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookParseError(f"webhook body is not valid JSON: {exc}") from exc

    def form_pairs(self) -> list[tuple[str, str]]:
        """The body parsed as an HTML form: every ``(name, value)`` pair, in order.

        Repeated names keep every value (signatures cover them all). The body is parsed once
        per request: verifying and parsing a callback share the result (do not change the
        list). A body that is not UTF-8 raises WebhookParseError.
        """
        cached = self.__dict__.get("_form_pairs")
        if cached is not None and cached[0] is self.body:
            return cached[1]  # type: ignore[no-any-return]
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookParseError("webhook form body is not UTF-8") from exc
        pairs = _parse_form(text)
        # Kept beside the fields (not a field: equality, copies and dumps ignore it); tied
        # to this body, so a copy with another body parses its own.
        object.__setattr__(self, "_form_pairs", (self.body, pairs))
        return pairs

    def form_body(self) -> dict[str, str]:
        """The body parsed as an HTML form (``application/x-www-form-urlencoded``).

        Repeated keys keep their first value. A body that is not UTF-8 raises
        WebhookParseError.
        """
        fields: dict[str, str] = {}
        for key, value in self.form_pairs():
            if key not in fields:
                fields[key] = value
        return fields

    def query_params(self) -> dict[str, list[str]]:
        """The URL's query parameters, each with every value (blank values kept).

        Parsed once per request, like :meth:`form_pairs` (do not change the dict).
        """
        cached = self.__dict__.get("_query")
        if cached is not None and cached[0] is self.url:
            return cached[1]  # type: ignore[no-any-return]
        query = parse_qs(urlsplit(self.url).query, keep_blank_values=True)
        object.__setattr__(self, "_query", (self.url, query))
        return query

    @classmethod
    def from_parts(
        cls, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookRequest:
        """Build a request from the four parts every web framework exposes."""
        return cls(method=method, url=url, headers=dict(headers), body=body)
