r"""SMS encoding detection and segment counting.

Carriers bill, and deliver, an SMS per *segment*. How many segments a text needs depends on
the encoding it can be sent in (see
[3GPP TS 23.038](https://www.3gpp.org/DynaReport/23038.htm), section 6.2.1):

* **GSM-7**, the default alphabet, packs 160 septets into a single message, or 153 per
  segment once the text has to be split (the other septets carry the User Data Header that
  reassembles the parts). Characters of the basic character set extension table
  (`^ { } \ [ ~ ] | €` and form feed) are sent as an escape sequence and cost two septets.
* **UCS-2** is used as soon as one character is outside GSM-7. It holds 70 UTF-16 code units
  in a single message, or 67 per segment; a character outside the Basic Multilingual Plane
  (most emoji) is a surrogate pair and costs two units.

A segment boundary never falls inside an escape sequence or a surrogate pair: such a
character moves whole into the next segment, so a text can need more than
`ceil(length / per_segment)` segments.

Example:
    >>> from anysend.sms import segments
    >>> s = segments("Zażółć gęślą jaźń")
    >>> s.encoding, s.count, s.length, s.remaining
    ('UCS-2', 1, 17, 53)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "Segments", "is_gsm7", "segments"]

# The default alphabet in septet order (0x00-0x7F); 0x1B is the escape to the extension table,
# not a character a user can send, and is removed below.
_GSM7_DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1bÆæßÉ"  # Δ_ΦΓΛΩΠΨΣΘΞ ESC ÆæßÉ
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

GSM7_BASIC: frozenset[str] = frozenset(_GSM7_DEFAULT_ALPHABET) - {"\x1b"}
"""The 127 sendable characters of the GSM-7 default alphabet; each costs one septet."""

GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")
"""Characters of the GSM-7 basic character set extension table.

Each is sent as ESC followed by the character's code and costs two septets.
"""

_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

_GSM7_SINGLE = 160
_GSM7_MULTI = 153
_UCS2_SINGLE = 70
_UCS2_MULTI = 67
_BMP_MAX = 0xFFFF


@dataclass(frozen=True, slots=True)
class Segments:
    """How a text is split into SMS segments.

    Attributes:
        encoding: `"GSM-7"` when every character is in the GSM-7 alphabet (basic or
            extension table), otherwise `"UCS-2"`.
        count: Number of segments (billed messages); always `len(parts)` and at least 1.
        length: Total size of the text: septets for GSM-7 (extension characters count 2),
            UTF-16 code units for UCS-2 (characters outside the BMP count 2).
        per_segment: The per-segment limit that was applied: 160 or 153 for GSM-7, 70 or 67
            for UCS-2 (the smaller value when the text needs more than one segment).
        parts: The text of each segment, in order; `"".join(parts)` is the original text.
    """

    encoding: Literal["GSM-7", "UCS-2"]
    count: int
    length: int
    per_segment: int
    parts: tuple[str, ...]

    @property
    def remaining(self) -> int:
        """Units (septets or UTF-16 code units) still free in the last segment.

        Returns:
            `per_segment` minus the size of the last part.
        """
        last = self.parts[-1]
        if self.encoding == "GSM-7":
            used = len(last) + sum(last.count(char) for char in GSM7_EXTENSION)
        else:
            used = _utf16_units(last)
        return self.per_segment - used


def is_gsm7(text: str) -> bool:
    """Tell whether a text can be sent in the GSM-7 encoding.

    Args:
        text: The message text.

    Returns:
        True if every character is in the GSM-7 default alphabet or its basic extension
        table (the empty text included), False if the text needs UCS-2.
    """
    return _GSM7_ALL.issuperset(text)


def segments(text: str) -> Segments:
    """Compute the encoding, size and segments of an SMS text.

    The empty text is one segment with one empty part (carriers send, and bill, an empty
    SMS as one message): `Segments("GSM-7", count=1, length=0, per_segment=160,
    parts=("",))`.

    Args:
        text: The message text.

    Returns:
        The split. Segments are filled greedily up to `per_segment`; a two-septet extension
        character or a surrogate pair that does not fit whole goes to the next segment.

    Example:
        >>> s = segments("a" * 161)
        >>> s.encoding, s.count, s.per_segment, [len(p) for p in s.parts], s.remaining
        ('GSM-7', 2, 153, [153, 8], 145)
    """
    if is_gsm7(text):
        doubles = sum(text.count(char) for char in GSM7_EXTENSION)
        length = len(text) + doubles
        if length <= _GSM7_SINGLE:
            return Segments("GSM-7", 1, length, _GSM7_SINGLE, (text,))
        if doubles:
            parts = _split(text, _GSM7_MULTI, GSM7_EXTENSION.__contains__)
        else:
            parts = _chunk(text, _GSM7_MULTI)
        return Segments("GSM-7", len(parts), length, _GSM7_MULTI, parts)

    length = _utf16_units(text)
    if length <= _UCS2_SINGLE:
        return Segments("UCS-2", 1, length, _UCS2_SINGLE, (text,))
    if length > len(text):
        parts = _split(text, _UCS2_MULTI, _is_astral)
    else:
        parts = _chunk(text, _UCS2_MULTI)
    return Segments("UCS-2", len(parts), length, _UCS2_MULTI, parts)


def _utf16_units(text: str) -> int:
    # "surrogatepass" keeps a lone surrogate countable (one unit) instead of raising.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _is_astral(char: str) -> bool:
    return ord(char) > _BMP_MAX


def _chunk(text: str, size: int) -> tuple[str, ...]:
    """Split a text whose characters all cost one unit into fixed-size slices."""
    return tuple(text[i : i + size] for i in range(0, len(text), size))


def _split(text: str, limit: int, is_double: Callable[[str], bool]) -> tuple[str, ...]:
    """Greedily split a text where some characters cost two units, never splitting those."""
    parts: list[str] = []
    start = 0
    used = 0
    for index, char in enumerate(text):
        cost = 2 if is_double(char) else 1
        if used + cost > limit:
            parts.append(text[start:index])
            start = index
            used = 0
        used += cost
    parts.append(text[start:])
    return tuple(parts)
