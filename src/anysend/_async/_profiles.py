"""``client.profiles``: recipients kept in the store by id, their contact points and opt-outs.

This file is the source of truth; ``anysend/_sync/_profiles.py`` is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from anysend._async._store import AsyncStore
from anysend._exceptions import ConfigurationError, InvalidRecipientError
from anysend._models import Channel, Preferences, Recipient
from anysend._validation import normalize_email, normalize_phone

if TYPE_CHECKING:
    from anysend._async._client import AsyncClient

__all__ = ["AsyncProfiles"]


class AsyncProfiles:
    """Profiles: one :class:`~anysend.Recipient` per id, with everything the store knows.

    Reach it as ``client.profiles``; ``client.send(message, to="user-42")`` and
    ``client.start(flow, to="user-42")`` resolve ids through it. Contact points reported dead
    (a hard bounce, an unregistered push token, a number not on WhatsApp) are left out of what
    :meth:`get` returns and are never used again; suppressed addresses (STOP, unsubscribe,
    complaint) are refused at every send, whoever the recipient.
    """

    def __init__(self, client: AsyncClient, store: AsyncStore) -> None:
        self._client = client
        self._store = store

    def _normalise(self, recipient: Recipient) -> Recipient:
        region = self._client._router.default_region
        update: dict[str, Any] = {}
        if recipient.email:
            update["email"] = normalize_email(recipient.email).lower()
        if recipient.phone:
            update["phone"] = normalize_phone(recipient.phone, region)
        whatsapp = recipient.chat_ids.get(Channel.WHATSAPP)
        if whatsapp:
            chat_ids = dict(recipient.chat_ids)
            chat_ids[Channel.WHATSAPP] = normalize_phone(whatsapp, region, field="chat_ids")
            update["chat_ids"] = chat_ids
        return recipient.model_copy(update=update) if update else recipient

    def _address(self, channel: Channel, address: str) -> str:
        """``address`` as a send uses it (E.164 numbers, normalised email), for the store."""
        try:
            if channel is Channel.EMAIL:
                return normalize_email(address.strip()).lower()
            if channel in (Channel.SMS, Channel.WHATSAPP):
                return normalize_phone(address, self._client._router.default_region)
        except InvalidRecipientError:
            pass  # not a valid address: a send never uses it, keep it as given
        return address

    async def upsert(self, recipient: Recipient | Mapping[str, Any]) -> Recipient:
        """Insert or replace a profile (its ``id`` is required); returns it normalised.

        A recipient given without ``preferences`` keeps the preferences already stored, so
        that syncing profiles from your user table never wipes opt-outs and consents; give
        ``preferences`` to replace them.

        Raises:
            InvalidRecipientError: an address is malformed.
            ConfigurationError: the recipient has no id.
        """
        if not isinstance(recipient, Recipient):
            recipient = Recipient.model_validate(recipient)
        recipient_id = recipient.id
        if not recipient_id:
            raise ConfigurationError("a profile needs an id")
        recipient = self._normalise(recipient)
        if "preferences" not in recipient.model_fields_set:
            stored = await self._store.get_profile(recipient_id)
            if stored is not None:
                recipient = recipient.model_copy(update={"preferences": stored.preferences})
        await self._store.put_profile(recipient, now=self._client._clock.now())
        return recipient

    async def get(self, recipient_id: str) -> Recipient | None:
        """The profile, without its invalid contact points; ``None`` if there is none."""
        return await self._store.get_profile(recipient_id)

    async def find(self, channel: Channel | str, address: str) -> Recipient | None:
        """The profile that owns ``address`` on ``channel`` (how inbound messages are linked)."""
        channel = Channel(channel)
        recipient_id = await self._store.find_profile(channel, self._address(channel, address))
        return None if recipient_id is None else await self.get(recipient_id)

    async def set_preference(
        self, recipient_id: str, category: str, channel: Channel | str, allowed: bool | None
    ) -> Recipient:
        """Set the person's preference for one category on one channel.

        ``True`` records consent, ``False`` an opt-out, ``None`` no preference.
        """
        recipient = await self._require(recipient_id)
        channel = Channel(channel)
        categories = {k: dict(v) for k, v in recipient.preferences.categories.items()}
        entry = categories.setdefault(category, {})
        if allowed is None:
            entry.pop(channel, None)
        else:
            entry[channel] = allowed
        preferences = recipient.preferences.model_copy(update={"categories": categories})
        return await self._save(recipient, preferences)

    async def opt_out(self, recipient_id: str, channel: Channel | str) -> Recipient:
        """Opt the person out of a channel entirely (every category)."""
        recipient = await self._require(recipient_id)
        opted = recipient.preferences.opted_out | {Channel(channel)}
        return await self._save(
            recipient, recipient.preferences.model_copy(update={"opted_out": opted})
        )

    async def opt_in(self, recipient_id: str, channel: Channel | str) -> Recipient:
        """Undo :meth:`opt_out` for a channel."""
        recipient = await self._require(recipient_id)
        opted = recipient.preferences.opted_out - {Channel(channel)}
        return await self._save(
            recipient, recipient.preferences.model_copy(update={"opted_out": opted})
        )

    async def suppress(self, channel: Channel | str, address: str, reason: str = "manual") -> None:
        """Never send to ``address`` on ``channel`` again (until :meth:`unsuppress`)."""
        channel = Channel(channel)
        await self._store.suppress(
            channel, self._address(channel, address), reason, now=self._client._clock.now()
        )

    async def unsuppress(self, channel: Channel | str, address: str) -> bool:
        """Lift a suppression; ``False`` if the address was not suppressed."""
        channel = Channel(channel)
        return await self._store.unsuppress(channel, self._address(channel, address))

    async def mark_invalid(
        self, channel: Channel | str, address: str, reason: str = "manual"
    ) -> None:
        """Mark a contact point dead: it is left out of its profile and never used."""
        channel = Channel(channel)
        await self._store.mark_invalid(
            channel, self._address(channel, address), reason, now=self._client._clock.now()
        )

    async def mark_valid(self, channel: Channel | str, address: str) -> bool:
        """Use a contact point marked invalid again (the person fixed their mailbox, say).

        Returns ``False`` if it was not marked invalid.
        """
        channel = Channel(channel)
        return await self._store.mark_valid(channel, self._address(channel, address))

    async def blocked(self, channel: Channel | str, address: str) -> str | None:
        """Why ``address`` is not used (suppressed or invalid), or ``None``."""
        channel = Channel(channel)
        return await self._store.blocked(channel, self._address(channel, address))

    async def _require(self, recipient_id: str) -> Recipient:
        recipient = await self._store.get_profile(recipient_id)
        if recipient is None:
            raise ConfigurationError(f"no profile with id {recipient_id!r}")
        return recipient

    async def _save(self, recipient: Recipient, preferences: Preferences) -> Recipient:
        updated = recipient.model_copy(update={"preferences": preferences})
        await self._store.put_profile(updated, now=self._client._clock.now())
        return updated
