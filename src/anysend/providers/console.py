"""``Console``: prints what would be sent, on any channel. For development and demos.

Nothing leaves the machine; each message is written to a stream (standard output by default)
as a short block: channel, address, subject and text.
"""

from __future__ import annotations

import sys
import threading
import uuid
from typing import IO, Any, ClassVar, cast

from pydantic import ConfigDict, field_validator

from anysend._models import Channel, OutboundMessage
from anysend._results import Receipt
from anysend.providers._base import Capabilities, Provider, ProviderSettings

__all__ = ["Console"]


class ConsoleSettings(ProviderSettings):
    """Settings of :class:`Console`.

    Attributes:
        stream: where to write (standard output when ``None``).
        channels: the channels it claims (all by default).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: Any = None
    channels: frozenset[Channel] = frozenset(Channel)

    @field_validator("stream")
    @classmethod
    def _writable(cls, value: Any) -> IO[str] | None:
        if value is not None and not callable(getattr(value, "write", None)):
            raise ValueError("stream must have a write() method")
        return cast("IO[str] | None", value)


class Console(Provider):
    """Prints each message instead of sending it. Serves every channel unless told otherwise.

    Example:
        ```python
        import anysend
        from anysend.providers.console import Console

        with anysend.Client([Console()]) as client:
            client.send(anysend.Message(text="Hi"), to=anysend.Recipient(phone="+48600700800"))
        ```
    """

    name: ClassVar[str] = "console"
    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)
    capabilities: ClassVar[Capabilities] = Capabilities(
        html=True,
        attachments=True,
        inline_images=True,
        cc_bcc=True,
        reply_to=True,
        headers=True,
        metadata=True,
        tags=True,
        chat_templates=True,
        idempotency=True,
    )
    Settings: ClassVar[type[ProviderSettings]] = ConsoleSettings
    settings: ConsoleSettings

    def __init__(self, settings: ConsoleSettings | None = None, /, **kwargs: object) -> None:
        super().__init__(settings, **kwargs)
        # Instance-level channel set, so Console(channels={"sms"}) serves only SMS.
        self.channels = self.settings.channels  # type: ignore[misc]
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> Receipt:
        """Write ``message`` to the stream and return a receipt with a fresh id."""
        lines = [f"--- anysend console: {message.channel.value} to {message.to or '(configured)'}"]
        if message.subject:
            lines.append(f"Subject: {message.subject}")
        if message.push and (message.push.title or message.push.body):
            lines.append(f"Title: {message.push.title or ''}")
            lines.append(message.push.body or "")
        if message.chat_template:
            lines.append(f"Template: {message.chat_template.name}")
        if message.text:
            lines.append(message.text)
        elif message.html:
            lines.append(message.html)
        for attachment in message.attachments:
            lines.append(f"[attachment {attachment.filename}, {len(attachment.content)} bytes]")
        with self._lock:
            stream = self.settings.stream or sys.stdout
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        return Receipt(provider_message_id=f"console-{uuid.uuid4().hex[:12]}")

    async def asend(self, message: OutboundMessage) -> Receipt:
        """Same as :meth:`send` (writing to a stream does not block for long)."""
        return self.send(message)
