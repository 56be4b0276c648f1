"""A griffe extension for the docs build: render Sphinx markup in Google-style docstrings.

anysend's docstrings use Sphinx roles such as ``:class:`~anysend.SendResult``` in places, and
``::`` before literal blocks; mkdocstrings would show both literally. Before the docstrings are
parsed, this extension rewrites each role into a cross-reference when it names a public
``anysend`` object the API reference renders, and into inline code otherwise, and turns a
paragraph-ending ``::`` into ``:`` (the indented block after it is already code in Markdown).
It changes only the docs build, not the source.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

import anysend

# Public objects rendered in docs/reference/ (the targets a link may point to): the package
# root's exports, read from the package so that the list cannot drift.
_PUBLIC = frozenset(anysend.__all__) - {"__version__"}
_LITERAL_INTRO = re.compile(r"(\S)::\n(?=[ \t]*\n)")
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`(~?)([^`]+)`")


def _replace(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    short = target.rsplit(".", 1)[-1] if tilde else target
    name = target.removeprefix("anysend.")
    if name in _PUBLIC:
        return f"[`{short}`][anysend.{name}]"
    return f"`{short}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Walk the package once it is loaded."""
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            value = _ROLE.sub(_replace, obj.docstring.value)
            obj.docstring.value = _LITERAL_INTRO.sub(r"\1:\n", value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
