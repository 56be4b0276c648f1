"""A mkdocs hook: error-mapping tables built from anysend's own dicts when the site is built.

A page asks for a table with a marker in its Markdown::

    <!-- anysend-table: anysend.providers.slack:ERROR_CODES "Slack's error string" -->

``module:NAME`` names a dict from what a provider says (an HTTP status, an error string, an
SMTP reply code) to an :class:`anysend.ErrorCategory`; the optional quoted text heads the
first column. The hook replaces the marker with a Markdown table, one row per entry in the
dict's own order: the key, the category, and what the client does next (retried on the same
provider, failed over to the next provider of the channel, moved on to the next channel),
which follows from the category alone. So the tables cannot drift from the code: change the
dict and the next build shows it. A marker that names something else fails the build.

It changes only the docs build, not the source.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

try:
    from mkdocs.exceptions import PluginError
except ImportError:  # the test suite renders tables without mkdocs installed
    PluginError = ValueError  # type: ignore[misc,assignment]

from anysend import ErrorCategory

__all__ = ["load_mapping", "next_steps", "on_page_markdown", "render_markdown", "render_table"]

#: A table marker: ``<!-- anysend-table: module:NAME "first column title" -->``.
MARKER = re.compile(
    r"<!--\s*anysend-table:\s*(?P<target>[A-Za-z_][\w.]*:[A-Za-z_]\w*)"
    r'(?:\s+"(?P<title>[^"\n]*)")?\s*-->'
)
#: Anything that looks like a marker, to catch the malformed ones.
_LOOSE = re.compile(r"<!--\s*anysend-table\b[^\n]*?-->")


class TableError(PluginError):
    """A marker names no module, no attribute, or something that is not a category mapping."""


def load_mapping(target: str) -> Mapping[object, ErrorCategory]:
    """The dict that ``target`` (``"module:NAME"``) names, checked to map keys to categories.

    Raises:
        TableError: the module or name does not exist, or the value is not such a dict.
    """
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TableError(f"anysend-table: cannot import {module_name!r} ({exc})") from exc
    value = getattr(module, name, None)
    if not isinstance(value, Mapping) or not value:
        raise TableError(f"anysend-table: {target} is not a non-empty dict")
    for key, category in value.items():
        if not isinstance(category, ErrorCategory):
            raise TableError(f"anysend-table: {target}[{key!r}] is not an ErrorCategory")
    return value


def next_steps(category: ErrorCategory) -> tuple[str, str, str]:
    """What the client does after a failure of ``category``.

    Returns:
        Three cells: retried on the same provider?, next provider of the channel?, next
        channel? (the routing table of the "Routing and fallback" page).
    """
    if category is ErrorCategory.AMBIGUOUS_TIMEOUT:
        return (
            "only if the provider takes idempotency keys",
            "no",
            "no: the send ends `unknown`",
        )
    if category.scope != "provider":  # the recipient or the content is at fault
        return ("no", "no", "yes")
    if category.retryable:
        retried = "yes, with backoff"
        if category is ErrorCategory.RATE_LIMITED:
            retried = "yes, after `Retry-After` when given"
        return (retried, "yes, once retries are used up", "yes, once every provider failed")
    return ("no", "yes", "yes, once every provider failed")


def _key(key: object) -> str:
    return f"`{key}`"


def render_table(target: str, title: str | None = None) -> str:
    """The Markdown table for the dict that ``target`` names.

    Raises:
        TableError: see :func:`load_mapping`.
    """
    mapping = load_mapping(target)
    first = title or "The provider says"
    lines = [
        f"| {first} | Category | Retried | Next provider of the channel | Next channel |",
        "|---|---|---|---|---|",
    ]
    for key, category in mapping.items():
        retried, failover, fallback = next_steps(category)
        lines.append(f"| {_key(key)} | `{category.value}` | {retried} | {failover} | {fallback} |")
    return "\n".join(lines)


def render_markdown(markdown: str) -> str:
    """``markdown`` with every table marker replaced by its table.

    Raises:
        TableError: a marker is malformed or names something that is not a category dict.
    """

    def replace(match: re.Match[str]) -> str:
        return render_table(match["target"], match["title"])

    rendered = MARKER.sub(replace, markdown)
    leftover = _LOOSE.search(rendered)
    if leftover is not None:
        raise TableError(f"malformed table marker: {leftover.group(0)}")
    return rendered


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """The mkdocs event: replace the markers of one page before it is converted to HTML."""
    page = kwargs.get("page")
    try:
        return render_markdown(markdown)
    except TableError as exc:
        where = getattr(getattr(page, "file", None), "src_uri", "a page")
        raise TableError(f"{where}: {exc}") from exc
