"""The sandbox's inbox: every message it took or simulated, grouped by person.

:class:`SandboxMessage` is one message as the inbox page shows it; :class:`Inbox` keeps them
in memory (thread-safe: the server's loop writes, tests and the page read), knows the people
(:meth:`Inbox.person`), and tells listeners about every change (the page's event stream and
:meth:`Inbox.wait_for`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["FINAL_STATUSES", "Inbox", "Person", "SandboxMessage", "normalise"]

#: Statuses after which nothing more happens to a message.
FINAL_STATUSES = frozenset({"read", "opened", "failed", "undeliverable"})
_ORDER = {"accepted": 0, "delivered": 1, "read": 2, "opened": 2}


def normalise(address: str) -> str:
    """An address as the inbox keys it: no ``whatsapp:`` prefix, lower-case email."""
    address = address.strip()
    if address.startswith("whatsapp:"):
        address = address[len("whatsapp:") :]
    if "@" in address and "://" not in address:
        return address.lower()
    return address


@dataclass
class SandboxMessage:
    """One message in the sandbox's inbox (sent to it, or a simulated reply).

    Attributes:
        id: the provider's id for it (``SM...``, ``wamid....``, the Message-ID).
        provider: the provider API it came through (``twilio``, ``smtp``, ...).
        channel: ``sms``, ``email``, ``push``, ``whatsapp`` or ``telegram``.
        direction: ``outbound`` (sent by your code) or ``inbound`` (a simulated reply).
        to: the address it went to.
        sender: the address it came from (``from`` in JSON).
        person: the key of the person it belongs to.
        subject: the email subject.
        text: the plain text (SMS, chat, email text part, push body).
        html: the email's HTML part.
        title: the push title.
        segments: SMS only: how many segments the text takes.
        encoding: SMS only: ``GSM-7`` or ``UCS-2``.
        status: ``accepted``, ``delivered``, ``read``, ``opened``, ``failed`` or
            ``undeliverable``.
        error: why it failed, when it did.
        history: every status with its time.
        created_at: when the sandbox took it.
        data: extra fields the provider API got (push data, anysend's message id).
    """

    id: str
    provider: str
    channel: str
    direction: str
    to: str
    sender: str | None
    person: str
    created_at: datetime
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    title: str | None = None
    segments: int | None = None
    encoding: str | None = None
    status: str = "accepted"
    error: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The message as the JSON API gives it."""
        return {
            "id": self.id,
            "provider": self.provider,
            "channel": self.channel,
            "direction": self.direction,
            "to": self.to,
            "from": self.sender,
            "person": self.person,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "title": self.title,
            "segments": self.segments,
            "encoding": self.encoding,
            "status": self.status,
            "error": self.error,
            "history": [dict(entry) for entry in self.history],
            "created_at": self.created_at.isoformat(),
        }


@dataclass
class Person:
    """Someone whose messages the inbox groups: a name and their addresses."""

    key: str
    name: str
    addresses: list[str] = field(default_factory=list)


Listener = Callable[[str, SandboxMessage], None]


class Inbox:
    """The messages and people of one sandbox (thread-safe).

    Args:
        now: the clock's wall time (the sandbox's ``clock.now``).
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lock = threading.Condition()
        self._messages: list[SandboxMessage] = []
        self._by_id: dict[str, SandboxMessage] = {}
        self._people: dict[str, Person] = {}
        self._owner: dict[str, str] = {}
        self._listeners: list[Listener] = []

    # -- people ----------------------------------------------------------------------------------

    def person(self, name: str, addresses: Iterable[str]) -> Person:
        """Add (or extend) a person; their addresses' messages are grouped under ``name``."""
        with self._lock:
            found = self._people.get(name) or Person(key=name, name=name)
            self._people[name] = found
            for address in addresses:
                key = normalise(address)
                if key not in found.addresses:
                    found.addresses.append(key)
                self._owner[key] = name
            for message in self._messages:
                owner = self._owner.get(self._address_of(message))
                if owner is not None:
                    message.person = owner
            return found

    def person_of(self, address: str) -> str:
        """The key of the person an address belongs to (the address itself if nobody's)."""
        key = normalise(address)
        with self._lock:
            return self._owner.get(key, key)

    def people(self) -> list[dict[str, Any]]:
        """Everyone with messages or addresses, most recent first (the JSON API's shape)."""
        with self._lock:
            found: dict[str, dict[str, Any]] = {}
            for person in self._people.values():
                found[person.key] = {
                    "key": person.key,
                    "name": person.name,
                    "addresses": list(person.addresses),
                    "unread": 0,
                    "last_at": None,
                }
            for message in self._messages:
                entry = found.setdefault(
                    message.person,
                    {
                        "key": message.person,
                        "name": message.person,
                        "addresses": [message.person],
                        "unread": 0,
                        "last_at": None,
                    },
                )
                entry["last_at"] = message.created_at.isoformat()
                if message.direction == "outbound" and message.status in ("accepted", "delivered"):
                    entry["unread"] += 1
            return sorted(found.values(), key=lambda p: p["last_at"] or "", reverse=True)

    # -- messages --------------------------------------------------------------------------------

    def add(self, message: SandboxMessage) -> SandboxMessage:
        """Keep a new message and tell the listeners."""
        with self._lock:
            message.person = self._owner.get(self._address_of(message), message.person)
            if not message.history:
                message.history.append({"status": message.status, "at": self._stamp()})
            self._messages.append(message)
            self._by_id[message.id] = message
            self._notify("message", message)
        return message

    def get(self, message_id: str) -> SandboxMessage | None:
        """The message with this provider id."""
        with self._lock:
            return self._by_id.get(message_id)

    def set_status(self, message_id: str, status: str, error: str | None = None) -> bool:
        """Move a message to ``status`` (never backwards); ``False`` when nothing changed."""
        with self._lock:
            message = self._by_id.get(message_id)
            if message is None or message.status in FINAL_STATUSES:
                return False
            if _ORDER.get(status, 9) < _ORDER.get(message.status, 0):
                return False
            message.status = status
            if error is not None:
                message.error = error
            message.history.append({"status": status, "at": self._stamp()})
            self._notify("status", message)
            return True

    def messages(self, to: str | None = None, person: str | None = None) -> list[SandboxMessage]:
        """Messages oldest first: all, those to or from one address, or one person's."""
        with self._lock:
            found = list(self._messages)
        if person is not None:
            found = [m for m in found if m.person == person]
        if to is not None:
            key = normalise(to)
            with self._lock:
                owned = key in self._people
            found = [
                m
                for m in found
                if (owned and m.person == key)
                or normalise(m.to) == key
                or (m.sender is not None and normalise(m.sender) == key)
            ]
        return found

    def last_outbound(self, address: str) -> SandboxMessage | None:
        """The latest message sent to ``address``."""
        key = normalise(address)
        with self._lock:
            for message in reversed(self._messages):
                if message.direction == "outbound" and normalise(message.to) == key:
                    return message
        return None

    # -- listening -------------------------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(kind, message)`` on every change; returns the function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds (checked after every change) or ``timeout`` passes."""
        with self._lock:
            return self._lock.wait_for(predicate, timeout=timeout)

    def _notify(self, kind: str, message: SandboxMessage) -> None:
        self._lock.notify_all()
        for listener in list(self._listeners):
            listener(kind, message)

    def _address_of(self, message: SandboxMessage) -> str:
        address = message.to if message.direction == "outbound" else (message.sender or "")
        return normalise(address)

    def _stamp(self) -> str:
        return self._now().isoformat()
