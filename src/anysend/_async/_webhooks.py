"""``client.webhooks``: verify, parse and store provider callbacks, and act on them.

This file is the source of truth; ``anysend/_sync/_webhooks.py`` is generated from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from anysend._async._store import AsyncStore
from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
from anysend._exceptions import ConfigurationError, WebhookVerificationError
from anysend._logging import logger
from anysend._models import Channel
from anysend._status import DeliveryStatus, EventType, Reason
from anysend.providers import Provider

if TYPE_CHECKING:
    from anysend._async._client import AsyncClient
    from anysend.providers import WebhookResponse

__all__ = ["OPT_IN_WORDS", "OPT_OUT_WORDS", "AsyncWebhooks"]

#: Inbound texts that opt the sender out of the channel (case and spacing ignored).
OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT", "REVOKE"}
)
#: Inbound texts that lift such an opt-out.
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "SUBSCRIBE", "OPTIN", "OPT IN", "YES"})

_DEAD = frozenset(
    {
        Reason.INVALID_RECIPIENT,
        Reason.UNKNOWN_RECIPIENT,
        Reason.TOKEN_UNREGISTERED,
    }
)


class AsyncWebhooks:
    """The callback receiver of a client with a store (reach it as ``client.webhooks``).

    :meth:`handle` is what a web framework's route calls (``anysend.asgi.WebhookApp`` does it
    for any ASGI framework): it verifies the request, parses it, and stores every event once.
    Storing does more than keep a record:

    * statuses move the message forward only (a late ``sent`` after ``delivered`` is kept in
      the history but changes nothing); an event for a message not recorded yet is kept and
      applied when the message is;
    * a dead contact point (hard bounce, unregistered token, unknown number) is marked invalid;
    * an opt-out, complaint or inbound STOP suppresses the address; START lifts it;
    * inbound messages are linked to the profile that owns the sender's address;
    * steps of flows that wait on the message are armed, settled or brought forward.
    """

    def __init__(self, client: AsyncClient, store: AsyncStore) -> None:
        self._client = client
        self._store = store

    def _adapter(self, provider: str | Provider) -> Provider:
        if isinstance(provider, Provider):
            return provider
        adapter = self._client._router.providers.get(provider)
        if adapter is None:
            known = ", ".join(self._client._router.providers) or "none"
            raise ConfigurationError(f"no provider named {provider!r} (configured: {known})")
        return adapter

    async def handle(
        self, provider: str | Provider, request: WebhookRequest
    ) -> list[DeliveryEvent | InboundMessage]:
        """Verify, parse and store one callback; returns its events.

        Raises:
            ConfigurationError: no configured provider has that name.
            WebhookVerificationError: the request is not authentic (nothing is stored).
            WebhookParseError: the body cannot be understood (nothing is stored).
        """
        adapter = self._adapter(provider)
        events = await self._client.parse_webhook(adapter, request)
        subscribe_url = getattr(adapter, "subscribe_url", None)
        if callable(subscribe_url):
            url = subscribe_url(request)
            if url:
                await self._confirm(adapter.name, url)
        for event in events:
            await self.ingest(event)
        return events

    async def handshake(
        self, provider: str | Provider, request: WebhookRequest
    ) -> WebhookResponse | None:
        """Answer a provider's verification handshake; ``None`` when it has none.

        WhatsApp and Messenger verify a callback URL with a ``GET`` first.

        Raises:
            WebhookVerificationError: the handshake's token is wrong.
        """
        return self._adapter(provider).handshake(request)

    async def _confirm(self, provider: str, url: str) -> None:
        """Confirm an Amazon SNS subscription (the URL came from a verified message)."""
        try:
            response = await self._client._http_client().get(url)
        except httpx.HTTPError as exc:
            raise WebhookVerificationError(
                f"could not confirm the {provider} subscription: {type(exc).__name__}"
            ) from exc
        logger.info("%s subscription confirmed (HTTP %d)", provider, response.status_code)

    async def ingest(self, event: DeliveryEvent | InboundMessage) -> bool:
        """Store one already verified event and act on it; ``False`` if it was seen before.

        Use it for events that reach you another way (a queue, a provider's export).
        """
        if isinstance(event, InboundMessage):
            return await self._inbound(event)
        store = self._store
        now = self._client._clock.now()
        outcome = await store.ingest(event, now=now)
        if not outcome.new:
            return False
        channel = event.channel or outcome.channel
        address = event.recipient or outcome.address
        if outcome.message_id is not None and (channel is None or address is None):
            stored = await store.get_message(outcome.message_id)
            if stored is not None:
                channel = channel or stored.channel
                address = address or stored.address
        if channel is not None and address:
            dead = event.event is EventType.CONTACT_INVALID or (
                event.status in (DeliveryStatus.UNDELIVERABLE, DeliveryStatus.REJECTED)
                and event.reason in _DEAD
            )
            if dead:
                reason = event.reason.value if event.reason else "contact_invalid"
                await store.mark_invalid(channel, address, reason, now=now)
            elif event.event in (EventType.OPTED_OUT, EventType.COMPLAINED) or (
                event.reason in (Reason.OPTED_OUT, Reason.SUPPRESSED_COMPLAINT)
            ):
                why = event.event.value if event.event else str(event.reason.value)  # type: ignore[union-attr]
                await store.suppress(channel, address, why, now=now)
            elif event.event is EventType.OPTED_IN:
                await store.unsuppress(channel, address)
        if outcome.message_id is not None:
            await self._client._engine().on_ingested(outcome)
        return True

    async def _inbound(self, message: InboundMessage) -> bool:
        store = self._store
        now = self._client._clock.now()
        sender = message.sender
        if message.channel in (Channel.SMS, Channel.WHATSAPP) and sender.isdigit():
            sender = "+" + sender
        recipient_id = await store.find_profile(message.channel, sender)
        if recipient_id is None and message.channel is Channel.WHATSAPP:
            recipient_id = await store.find_profile(Channel.SMS, sender)
        new = await store.save_inbound(message, now=now, recipient_id=recipient_id)
        if not new:
            return False
        word = " ".join((message.text or "").split()).upper().strip(".!")
        if word in OPT_OUT_WORDS:
            await store.suppress(message.channel, sender, f"inbound {word}", now=now)
            logger.info(
                "%s opted out on %s (%s)", recipient_id or "a sender", message.channel.value, word
            )
        elif word in OPT_IN_WORDS:
            await store.unsuppress(message.channel, sender)
        return True
