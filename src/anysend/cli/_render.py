"""``anysend render``: preview a template for each channel and locale, with its sizes.

Every channel the template has parts for is rendered in every locale folder it has (or the
locales asked for), with the data given. A channel whose parts for a locale come from
another folder (the fallback) is shown once, under the folder it came from; chat-like
channels with the same text are shown together.

Sizes are checked against the limits the client enforces (``ChannelLimits``: SMS segments,
push payload bytes) and against the providers' documented text limits for chat apps; the
exit code is 1 when content is over a limit, so a CI job can run the command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anysend._exceptions import ConfigurationError
from anysend.cli._config import load_json
from anysend.cli._output import FAILED, out, print_json

if TYPE_CHECKING:
    from anysend import Channel
    from anysend._templates import RenderedContent, Templates

__all__ = ["CHAT_LIMITS", "Preview", "previews", "render"]

#: Documented text limits of chat apps, in characters: Telegram sendMessage (1-4096
#: characters, https://core.telegram.org/bots/api#sendmessage), WhatsApp text body (4096,
#: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages), Messenger
#: (2000, https://developers.facebook.com/docs/messenger-platform/reference/send-api/) and
#: Viber (7000, https://developers.viber.com/docs/api/rest-bot-api/#message-types).
CHAT_LIMITS: dict[str, int] = {"telegram": 4096, "whatsapp": 4096, "messenger": 2000, "viber": 7000}
#: Gmail clips an HTML body over about 102 KB ("[Message clipped]").
EMAIL_HTML_CLIP = 102 * 1024


@dataclass
class Preview:
    """One rendered channel in one locale folder, with its sizes and warnings."""

    channels: list[str]
    locale: str | None
    parts: dict[str, str]
    stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    over_limit: bool = False

    def as_json(self) -> dict[str, Any]:
        """The preview as a JSON-ready dict."""
        return {
            "channels": self.channels,
            "locale": self.locale,
            "parts": self.parts,
            "stats": self.stats,
            "warnings": self.warnings,
            "over_limit": self.over_limit,
        }


def _parts(content: RenderedContent) -> dict[str, str]:
    names = ("subject", "text", "html", "push_title", "push_body")
    return {name: value for name in names if (value := getattr(content, name)) is not None}


def _measure(channel: Channel, content: RenderedContent, preview: Preview) -> None:
    """Fill in the sizes of ``preview`` and the limits it is over."""
    from anysend import Channel, ChannelLimits, PushContent
    from anysend.sms import segments

    limits = ChannelLimits()
    if channel is Channel.SMS and content.text is not None:
        split = segments(content.text)
        preview.stats.update(
            encoding=split.encoding,
            segments=split.count,
            length=split.length,
            per_segment=split.per_segment,
            remaining=split.remaining,
        )
        if split.count > limits.sms_max_segments:
            preview.over_limit = True
            preview.warnings.append(
                f"{split.count} segments: over the limit of {limits.sms_max_segments} "
                "(ChannelLimits.sms_max_segments)"
            )
        elif split.encoding == "UCS-2" and split.count > 1:
            preview.warnings.append(
                f"UCS-2 (a character outside GSM-7) makes this text take {split.count} segments"
            )
    elif channel is Channel.PUSH:
        payload = PushContent(title=content.push_title, body=content.push_body).model_dump()
        size = len(json.dumps(payload, ensure_ascii=False).encode())
        preview.stats.update(payload_bytes=size, limit_bytes=limits.push_max_bytes)
        if size > limits.push_max_bytes:
            preview.over_limit = True
            preview.warnings.append(
                f"the push payload is {size} bytes: over the limit of {limits.push_max_bytes}"
            )
    elif channel is Channel.EMAIL:
        if content.subject is not None:
            preview.stats["subject_chars"] = len(content.subject)
        if content.html is not None:
            size = len(content.html.encode())
            preview.stats["html_bytes"] = size
            if size > EMAIL_HTML_CLIP:
                preview.warnings.append(
                    f"the HTML is {size} bytes: Gmail clips messages over about 102 KB"
                )
        if content.text is not None:
            preview.stats["text_chars"] = len(content.text)
    elif content.text is not None:
        length = len(content.text)
        preview.stats["chars"] = length
        for name in preview.channels:
            limit = CHAT_LIMITS.get(name)
            if limit is not None and length > limit:
                preview.over_limit = True
                preview.warnings.append(f"{name} takes at most {limit} characters: {length}")


def _locale_folders(templates: Templates, name: str) -> list[str | None]:
    """The template's locale folders, the root (``None``) first."""
    folders = templates._folders(name)
    return [None, *sorted(k for k in folders if k is not None)]


def previews(
    templates: Templates,
    name: str,
    data: dict[str, Any],
    *,
    locales: list[str] | None = None,
    channels: list[str] | None = None,
) -> list[Preview]:
    """Render template ``name`` for each of its channels and locale folders.

    Raises:
        TemplateError: no such template, or it fails to render with ``data``.
        ConfigurationError: a channel name is unknown.
    """
    from anysend import Channel

    available = templates.channels(name)
    if channels:
        try:
            wanted = [Channel(c) for c in channels]
        except ValueError:
            known = ", ".join(c.value for c in Channel)
            raise ConfigurationError(
                f"unknown channel in {', '.join(channels)} (channels: {known})"
            ) from None
    else:
        wanted = [c for c in Channel if c in available]
    asked: list[str | None] = list(locales) if locales else _locale_folders(templates, name)
    result: list[Preview] = []
    seen: dict[tuple[str | None, str, str], Preview] = {}
    for locale in asked:
        for channel in wanted:
            content = templates.render(name, channel, data, locale=locale)
            if content is None:
                continue
            parts = _parts(content)
            chat_like = channel not in (Channel.EMAIL, Channel.SMS, Channel.PUSH)
            if chat_like:  # one preview for the chat-like channels that read the same text
                key = (content.locale, "chat", parts.get("text", ""))
            else:
                key = (content.locale, channel.value, "")
            earlier = seen.get(key)
            if earlier is not None:
                if channel.value not in earlier.channels:
                    earlier.channels.append(channel.value)
                    _recheck(earlier)
                continue
            preview = Preview(channels=[channel.value], locale=content.locale, parts=parts)
            _measure(channel, content, preview)
            seen[key] = preview
            result.append(preview)
    return result


def _recheck(preview: Preview) -> None:
    """Check a chat text shared by several channels against each one's limit."""
    length = preview.stats.get("chars")
    if length is None:
        return
    preview.warnings = []
    preview.over_limit = False
    for name in preview.channels:
        limit = CHAT_LIMITS.get(name)
        if limit is not None and length > limit:
            preview.over_limit = True
            preview.warnings.append(f"{name} takes at most {limit} characters: {length}")


def render(
    name: str,
    *,
    templates: Path,
    data: str | None,
    locales: list[str],
    channels: list[str],
    json: bool,
) -> int:
    """Run ``anysend render``; returns the exit code."""
    from anysend import Templates

    source = Templates(templates)
    shown = previews(source, name, load_json(data), locales=locales, channels=channels)
    if json:
        print_json({"template": name, "previews": [p.as_json() for p in shown]})
    else:
        _print(name, shown)
    return FAILED if any(p.over_limit for p in shown) else 0


_LABELS = {
    "subject": "subject",
    "text": "text",
    "html": "html",
    "push_title": "title",
    "push_body": "body",
}


def _print(name: str, shown: list[Preview]) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    console = out()
    if not shown:
        console.print(f"template {escape(name)!r}: nothing to render for these channels")
        return
    for preview in shown:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column()
        for part, value in preview.parts.items():
            grid.add_row(_LABELS[part], escape(value))
        if preview.stats:
            stats = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in preview.stats.items())
            grid.add_row("size", f"[dim]{escape(stats)}[/]")
        for warning in preview.warnings:
            colour = "red" if preview.over_limit else "yellow"
            grid.add_row("warning", f"[{colour}]{escape(warning)}[/]")
        title = f"{escape(name)} · {', '.join(preview.channels)} · {preview.locale or 'default'}"
        console.print(Panel(grid, title=title, title_align="left", expand=False))
