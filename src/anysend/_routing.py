"""Routing, as pure decisions: channels, addresses, providers and content.

Which channels to try, at which addresses, through which providers, with what content.

The client's send loop (``anysend._async._client``) does the I/O; everything it decides comes
from here, so the sync and async clients cannot disagree.

Rules:

* the chain is ``via`` in the order given; without ``via``, every channel that has a provider
  and that the recipient has an address for, in :class:`~anysend.Channel` order;
* a channel without an address (and no address-less provider), opted out for the message's
  category, without content in the template, or without a provider is skipped with the reason;
* every address in the chain is validated before anything is sent, so a malformed one raises
  :class:`~anysend.InvalidRecipientError` with nothing sent;
* provider-scoped failures fail over to the next provider of the channel; recipient- and
  content-scoped ones move on to the next channel.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anysend._exceptions import ConfigurationError, ErrorCategory, ProviderError
from anysend._models import Channel, Message, OutboundMessage, PushContent, PushTarget, Recipient
from anysend._results import Attempt, AttemptOutcome, SkipReason, trusted
from anysend._status import DeliveryStatus
from anysend._validation import normalize_email, normalize_phone, normalize_url

if TYPE_CHECKING:
    from anysend._templates import RenderedContent, Templates
    from anysend.providers import Provider

__all__ = ["Address", "ChannelLimits", "Router", "final_status", "skip"]

#: Chat-app channels whose address comes from ``Recipient.chat_ids``.
_CHAT_APPS = (Channel.TELEGRAM, Channel.MESSENGER, Channel.VIBER, Channel.CHAT)
#: The push payload limit of FCM and APNs, and about that of web push after encryption.
PUSH_PAYLOAD_LIMIT = 4096
#: Channels by value (a ``Channel`` finds itself too: it is the ``str`` it equals).
_CHANNELS: dict[str, Channel] = {channel.value: channel for channel in Channel}
#: The fields ``Router.outbound`` sets (``provider_options`` is left to ``options_for``).
_OUTBOUND_GIVEN = frozenset(OutboundMessage.model_fields) - {"provider_options"}


@dataclass(frozen=True, slots=True)
class Address:
    """One normalised address on one channel (a push address carries its device target)."""

    to: str
    push_target: PushTarget | None = None


@dataclass(frozen=True)
class ChannelLimits:
    """Limits checked before sending.

    Attributes:
        sms_max_segments: the most SMS segments one message may take.
        push_max_bytes: the largest push payload (title, body and data as JSON).
    """

    sms_max_segments: int = 10
    push_max_bytes: int = PUSH_PAYLOAD_LIMIT


_RENDERED: type[RenderedContent] | None = None


def _rendered() -> type[RenderedContent]:
    """``RenderedContent``, imported at the first render (not with this module)."""
    global _RENDERED
    from anysend._templates import RenderedContent

    _RENDERED = RenderedContent
    return RenderedContent


def skip(channel: Channel, reason: SkipReason, detail: str, provider: str | None = None) -> Attempt:
    """An attempt record for a channel or provider skipped without a network call."""
    return Attempt(
        channel=channel,
        provider=provider,
        outcome=AttemptOutcome.SKIPPED,
        skip_reason=reason,
        detail=detail,
    )


def final_status(attempts: Sequence[Attempt]) -> DeliveryStatus:
    """The status of a send that no provider accepted, from its attempts."""
    categories = [a.error.category for a in attempts if a.error is not None]
    if ErrorCategory.AMBIGUOUS_TIMEOUT in categories:
        return DeliveryStatus.UNKNOWN
    if categories and all(c.scope != "provider" for c in categories):
        return DeliveryStatus.REJECTED
    return DeliveryStatus.FAILED


def _serving(providers: list[Provider], target: PushTarget) -> list[Provider]:
    """The providers that push to ``target``'s kind (a function of its own: see ``chain``)."""
    return [p for p in providers if target.kind in p.push_kinds]


class Router:
    """The routing decisions of one client: providers per channel, addresses, content."""

    def __init__(
        self,
        providers: Iterable[Provider],
        *,
        templates: Templates | None,
        default_region: str | None,
        check_deliverability: bool,
        round_robin: bool | Iterable[Channel],
        limits: ChannelLimits,
    ) -> None:
        self.providers: dict[str, Provider] = {}
        self.by_channel: dict[Channel, list[Provider]] = {}
        for provider in providers:
            if not provider.name:
                raise ConfigurationError(f"{type(provider).__name__} has no name")
            key = provider.name
            for n in itertools.count(2):
                if key not in self.providers:
                    break
                key = f"{provider.name}-{n}"
            self.providers[key] = provider
            for channel in provider.channels:
                self.by_channel.setdefault(channel, []).append(provider)
        #: The channels with a provider that needs no recipient address.
        self.addressless = frozenset(
            channel
            for channel, served in self.by_channel.items()
            if any(p.capabilities.addressless for p in served)
        )
        self.templates = templates
        self.default_region = default_region
        self.check_deliverability = check_deliverability
        self.limits = limits
        if isinstance(round_robin, bool):
            rotating = set(self.by_channel) if round_robin else set()
        else:
            rotating = {Channel(c) for c in round_robin}
        self._counters = {channel: itertools.count() for channel in rotating}

    # -- chain and addresses -------------------------------------------------------------------

    def chain(
        self, recipient: Recipient, via: Sequence[Channel | str] | Channel | str | None
    ) -> list[Channel]:
        """The ordered channels to try."""
        if via is not None:
            if isinstance(via, (str, Channel)):  # via="email" means a chain of one
                return [_CHANNELS.get(via) or Channel(via)]
            chain = [Channel(c) for c in via]
            if not chain:
                raise ConfigurationError("via is empty: name at least one channel")
            return list(dict.fromkeys(chain))
        return self._default_chain(recipient)

    def _default_chain(self, recipient: Recipient) -> list[Channel]:
        # A method of its own: the comprehension's cells are made only when it runs.
        return [c for c in Channel if c in self.by_channel and self._has_address(recipient, c)]

    def _has_address(self, recipient: Recipient, channel: Channel) -> bool:
        return bool(self._raw_addresses(recipient, channel)) or channel in self.addressless

    @staticmethod
    def _raw_addresses(recipient: Recipient, channel: Channel) -> list[str | PushTarget]:
        if channel is Channel.EMAIL:
            return [recipient.email] if recipient.email else []
        if channel is Channel.SMS:
            return [recipient.phone] if recipient.phone else []
        if channel is Channel.PUSH:
            return list(recipient.push)
        if channel is Channel.WHATSAPP:
            value = recipient.chat_ids.get(Channel.WHATSAPP) or recipient.phone
            return [value] if value else []
        if channel is Channel.WEBHOOK:
            return [recipient.webhook_url] if recipient.webhook_url else []
        value = recipient.chat_ids.get(channel)
        return [value] if value else []

    def addresses(self, recipient: Recipient, channel: Channel) -> list[Address]:
        """The recipient's normalised addresses on ``channel`` (validated; may be empty).

        Raises:
            InvalidRecipientError: an address is malformed.
        """
        found: list[Address] = []
        for raw in self._raw_addresses(recipient, channel):
            if isinstance(raw, PushTarget):
                found.append(Address(raw.token, raw))
            elif channel is Channel.EMAIL:
                found.append(
                    Address(normalize_email(raw, check_deliverability=self.check_deliverability))
                )
            elif channel is Channel.SMS:
                found.append(Address(normalize_phone(raw, self.default_region)))
            elif channel is Channel.WHATSAPP:
                field = "chat_ids" if recipient.chat_ids.get(Channel.WHATSAPP) else "phone"
                found.append(Address(normalize_phone(raw, self.default_region, field=field)))
            elif channel is Channel.WEBHOOK:
                found.append(Address(normalize_url(raw)))
            else:
                found.append(Address(raw.strip()))
        return found

    # -- providers -----------------------------------------------------------------------------

    def providers_for(self, channel: Channel, target: PushTarget | None = None) -> list[Provider]:
        """The providers to try for ``channel``, in failover order (rotated if round-robin)."""
        providers = self.by_channel.get(channel, [])
        if target is not None:
            providers = _serving(providers, target)
        counter = self._counters.get(channel)
        if counter is not None and len(providers) > 1:
            start = next(counter) % len(providers)
            providers = providers[start:] + providers[:start]
        return providers

    # -- content -------------------------------------------------------------------------------

    def content(
        self, message: Message, channel: Channel, recipient: Recipient
    ) -> RenderedContent | None:
        """Render ``message`` for ``channel`` (``None`` when there is nothing to send there).

        Raises:
            TemplateError: the template is missing, broken, or needs data not given.
            ConfigurationError: the message names a template but the client has none.
        """
        RenderedContent = _RENDERED or _rendered()

        if message.template is not None:
            if self.templates is None:
                raise ConfigurationError(
                    f"message uses template {message.template!r} but the client has no "
                    "templates (pass templates='path/to/templates')"
                )
            return self.templates.render(message.template, channel, message.data, recipient.locale)
        if channel is Channel.EMAIL:
            if not (message.text or message.html or message.attachments):
                return None
            text = message.text
            if text is None and message.html:
                text = self._html_to_text(message.html)
            return RenderedContent(subject=message.subject, text=text, html=message.html)
        if channel is Channel.PUSH:
            push = message.push
            title = push.title if push and push.title else message.subject
            body = push.body if push and push.body else message.text
            return RenderedContent(push_title=title, push_body=body) if title or body else None
        if message.text is None and message.chat_template is None:
            return None
        # Team chat and webhooks can show a title; SMS and chat apps get the text alone.
        titled = channel in (Channel.CHAT, Channel.WEBHOOK)
        return RenderedContent(subject=message.subject if titled else None, text=message.text)

    def _html_to_text(self, html: str) -> str:
        """The plain-text part of an HTML-only email (the templates' converter, or inscriptis).

        Raises:
            ConfigurationError: no converter is available (install ``anysend[html]``).
        """
        from anysend._templates import _default_html_to_text

        custom = self.templates._html_to_text if self.templates is not None else None
        return (custom or _default_html_to_text())(html).strip()

    def outbound(
        self,
        message_id: str,
        message: Message,
        recipient: Recipient,
        channel: Channel,
        address: Address,
        content: RenderedContent,
        device: int = 0,
    ) -> OutboundMessage:
        """The message an adapter receives for one address on one channel.

        ``device`` numbers the recipient's push devices: each device's message gets its own
        idempotency key (``<key>:<device>``), since each is a separate message to the provider.
        """
        key = message.idempotency_key or message_id
        if channel is Channel.PUSH:
            key = f"{key}:{device}"
        push = None
        if channel is Channel.PUSH:
            push = PushContent(
                title=content.push_title,
                body=content.push_body,
                data=message.push.data if message.push else {},
            )
        # Every value comes from the validated message and recipient, a validated address
        # and rendered text: validating them again would check nothing new (see trusted()).
        return trusted(
            OutboundMessage,
            {
                "id": message_id,
                "channel": channel,
                "to": address.to,
                "push_target": address.push_target,
                "recipient": recipient,
                "subject": content.subject,
                "text": content.text,
                "html": content.html,
                "push": push,
                "chat_template": message.chat_template if channel is not Channel.EMAIL else None,
                "sender": message.sender,
                "reply_to": message.reply_to,
                "cc": message.cc,
                "bcc": message.bcc,
                "headers": dict(message.headers),
                "attachments": message.attachments,
                "metadata": dict(message.metadata),
                "tags": message.tags,
                "category": message.category,
                "unsubscribe_url": message.unsubscribe_url,
                "idempotency_key": key,
                "send_at": message.send_at,
                "provider_options": {},
                "locale": content.locale,
            },
            _OUTBOUND_GIVEN,
        )

    def options_for(
        self, outbound: OutboundMessage, message: Message, provider: Provider
    ) -> OutboundMessage:
        """``outbound`` with the message's ``provider_options`` for ``provider`` filled in."""
        options = message.provider_options.get(provider.name)
        if not options:
            return outbound
        return outbound.model_copy(update={"provider_options": dict(options)})

    def check_limits(self, outbound: OutboundMessage) -> None:
        """Refuse content over a channel's limits, before any network call.

        Raises:
            ProviderError: with category ``payload_too_large``.
        """
        if outbound.channel is Channel.SMS and outbound.text is not None:
            text = outbound.text
            if len(text) <= 70 and text.isascii():
                return  # one segment whatever the encoding: 70 UCS-2 units, 140 septets
            from anysend.sms import segments

            count = segments(text).count
            if count > self.limits.sms_max_segments:
                raise ProviderError(
                    f"the SMS text takes {count} segments; the limit is "
                    f"{self.limits.sms_max_segments} (ChannelLimits.sms_max_segments)",
                    category=ErrorCategory.PAYLOAD_TOO_LARGE,
                )
        elif outbound.channel is Channel.PUSH and outbound.push is not None:
            size = len(json.dumps(outbound.push.model_dump(), ensure_ascii=False).encode())
            if size > self.limits.push_max_bytes:
                raise ProviderError(
                    f"the push payload is {size} bytes; the limit is {self.limits.push_max_bytes}",
                    category=ErrorCategory.PAYLOAD_TOO_LARGE,
                )
