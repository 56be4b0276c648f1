"""Tests for anysend.sms: GSM-7/UCS-2 detection and SMS segment splitting."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anysend.sms import GSM7_BASIC, GSM7_EXTENSION, Segments, is_gsm7, segments

EURO = "€"
EMOJI = "\U0001f600"  # 😀, outside the BMP: a surrogate pair in UTF-16
POLISH = "Zażółć gęślą jaźń"
OHM_SIGN = "\u2126"  # looks like the GSM-7 Greek capital omega (U+03A9) but is not it


def cost(part: str, encoding: str) -> int:
    """Size of a text in the given encoding, computed independently of the module."""
    if encoding == "GSM-7":
        return sum(2 if char in GSM7_EXTENSION else 1 for char in part)
    return sum(2 if ord(char) > 0xFFFF else 1 for char in part)


# --- alphabet ---------------------------------------------------------------------------------


def test_basic_table_has_127_sendable_characters() -> None:
    """The basic table is the 128 septets of TS 23.038 minus the ESC code."""
    assert len(GSM7_BASIC) == 127
    assert "\x1b" not in GSM7_BASIC
    assert not is_gsm7("\x1b")


def test_extension_table_is_the_ten_escaped_characters() -> None:
    """The extension table is exactly form feed and ^ { } \\ [ ~ ] | €, disjoint from basic."""
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize("char", list("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r "))
def test_special_basic_characters_are_gsm7(char: str) -> None:
    """Every non-ASCII-letter character of the basic table is recognised as GSM-7."""
    assert char in GSM7_BASIC
    assert is_gsm7(char)


@pytest.mark.parametrize(
    "char", ["ç", "`", "á", "í", "ó", "ú", "Ó", "ł", "ś", "\t", OHM_SIGN, EMOJI]
)
def test_lookalikes_and_other_characters_are_not_gsm7(char: str) -> None:
    """Lowercase ç, backtick, tab, the Ohm sign and other non-table characters need UCS-2."""
    assert not is_gsm7(char)


def test_is_gsm7_accepts_empty_and_extension_text() -> None:
    """The empty text and extension-table characters are GSM-7."""
    assert is_gsm7("")
    assert is_gsm7("Price: 5€ [promo] {x} ~ ^ | \\ \f")


# --- GSM-7 boundaries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "count", "per_segment"),
    [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153), (307, 3, 153), (459, 3, 153)],
)
def test_gsm7_segment_boundaries(size: int, count: int, per_segment: int) -> None:
    """GSM-7 fits 160 septets in one message and 153 per segment when split."""
    result = segments("a" * size)
    assert result.encoding == "GSM-7"
    assert result.length == size
    assert result.count == count
    assert result.per_segment == per_segment
    assert [len(part) for part in result.parts[:-1]] == [per_segment] * (count - 1)


def test_extension_characters_cost_two_septets_single() -> None:
    """80 euro signs are 160 septets and still fit in one message."""
    result = segments(EURO * 80)
    assert (result.encoding, result.length, result.count, result.per_segment) == (
        "GSM-7",
        160,
        1,
        160,
    )
    assert result.remaining == 0


def test_extension_characters_cost_two_septets_multipart() -> None:
    """81 euro signs are 162 septets: two segments of 76 and 5 characters."""
    result = segments(EURO * 81)
    assert (result.length, result.count, result.per_segment) == (162, 2, 153)
    assert [len(part) for part in result.parts] == [76, 5]
    assert result.remaining == 153 - 10


def test_escape_pair_is_not_split_at_segment_boundary() -> None:
    """An extension char with only one septet left moves whole into the next segment."""
    text = "a" * 152 + EURO + "b" * 10
    result = segments(text)
    assert result.length == 164
    assert result.parts == ("a" * 152, EURO + "b" * 10)
    assert [cost(part, "GSM-7") for part in result.parts] == [152, 12]
    assert "".join(result.parts) == text


def test_escape_pair_can_add_a_segment() -> None:
    """306 septets need 3 segments when an escape pair straddles the first boundary."""
    text = "a" * 152 + EURO + "a" * 152
    result = segments(text)
    assert result.length == 306
    assert result.count == 3
    assert [cost(part, "GSM-7") for part in result.parts] == [152, 153, 1]
    assert "".join(result.parts) == text


# --- UCS-2 boundaries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "count", "per_segment"),
    [(1, 1, 70), (70, 1, 70), (71, 2, 67), (134, 2, 67), (135, 3, 67), (201, 3, 67)],
)
def test_ucs2_segment_boundaries(size: int, count: int, per_segment: int) -> None:
    """UCS-2 fits 70 code units in one message and 67 per segment when split."""
    result = segments("ł" * size)
    assert result.encoding == "UCS-2"
    assert result.length == size
    assert result.count == count
    assert result.per_segment == per_segment
    assert [len(part) for part in result.parts[:-1]] == [per_segment] * (count - 1)


def test_astral_character_costs_two_units() -> None:
    """35 emoji are 70 UTF-16 units (one message); 36 are 72 units (two segments)."""
    assert (segments(EMOJI * 35).length, segments(EMOJI * 35).count) == (70, 1)
    result = segments(EMOJI * 36)
    assert (result.length, result.count, result.per_segment) == (72, 2, 67)
    assert [len(part) for part in result.parts] == [33, 3]


def test_surrogate_pair_is_not_split_at_segment_boundary() -> None:
    """An emoji with only one unit left moves whole into the next segment."""
    text = "ł" * 66 + EMOJI + "ł" * 10
    result = segments(text)
    assert result.length == 78
    assert result.parts == ("ł" * 66, EMOJI + "ł" * 10)
    assert [cost(part, "UCS-2") for part in result.parts] == [66, 12]
    assert "".join(result.parts) == text


def test_surrogate_pair_can_add_a_segment() -> None:
    """134 units need 3 segments when a surrogate pair straddles the first boundary."""
    text = "ł" * 66 + EMOJI + "ł" * 66
    result = segments(text)
    assert result.length == 134
    assert result.count == 3
    assert [cost(part, "UCS-2") for part in result.parts] == [66, 67, 1]


# --- encoding switch --------------------------------------------------------------------------


@pytest.mark.parametrize("intruder", ["ł", "ś", "ç", EMOJI])
def test_single_non_gsm_character_switches_to_ucs2(intruder: str) -> None:
    """One non-GSM character turns a 100-char GSM text (1 SMS) into UCS-2 (2 segments)."""
    text = "a" * 99 + intruder
    assert segments("a" * 100).count == 1
    result = segments(text)
    assert result.encoding == "UCS-2"
    assert result.per_segment == 67
    assert result.count == 2
    assert "".join(result.parts) == text


def test_extension_characters_stay_in_gsm7() -> None:
    """Extension characters do not force UCS-2; they only cost two septets."""
    result = segments("{json: [1, 2]} ~ 5€")
    assert result.encoding == "GSM-7"
    assert result.length == len("{json: [1, 2]} ~ 5€") + 6


def test_polish_text() -> None:
    """Polish diacritics need UCS-2 and are counted one unit per character."""
    result = segments(POLISH)
    assert (result.encoding, result.count, result.length, result.per_segment) == (
        "UCS-2",
        1,
        17,
        70,
    )
    assert result.remaining == 53
    assert result.parts == (POLISH,)


def test_long_polish_text_is_split_at_67_units() -> None:
    """A 96-character Polish message needs two UCS-2 segments of 67 and 29 units."""
    text = (POLISH + " ") * 5 + "koniec"
    assert len(text) == 96
    result = segments(text)
    assert result.encoding == "UCS-2"
    assert [len(part) for part in result.parts] == [67, 29]
    assert result.remaining == 67 - 29


# --- empty text and result object -------------------------------------------------------------


def test_empty_text_is_one_empty_gsm7_segment() -> None:
    """The empty text is one GSM-7 message with one empty part and 160 septets free."""
    result = segments("")
    assert result == Segments("GSM-7", 1, 0, 160, ("",))
    assert result.remaining == 160


def test_segments_is_frozen() -> None:
    """A Segments result cannot be mutated."""
    result = segments("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.count = 2  # type: ignore[misc]


def test_remaining_counts_extension_characters_twice() -> None:
    """remaining subtracts two septets for each extension char in the last segment."""
    assert segments("ab€").remaining == 160 - 4


# --- properties -------------------------------------------------------------------------------

_GSM_CHARS = "".join(sorted(GSM7_BASIC | GSM7_EXTENSION))
_MIXED_CHARS = "aé€{ł" + EMOJI + "\ud83d"  # includes a lone surrogate

texts = st.one_of(
    st.text(alphabet=_GSM_CHARS, max_size=500),
    st.text(alphabet=st.sampled_from("a€"), min_size=140, max_size=480),
    st.text(alphabet=st.sampled_from(_MIXED_CHARS), max_size=300),
    st.text(max_size=300),
)


@settings(max_examples=200)
@given(texts)
def test_parts_join_back_to_text(text: str) -> None:
    """Concatenating the parts always gives back the input exactly."""
    assert "".join(segments(text).parts) == text


@settings(max_examples=200)
@given(texts)
def test_every_part_fits_and_segments_are_filled_greedily(text: str) -> None:
    """Each part costs at most per_segment and only ends early if the next char won't fit."""
    result = segments(text)
    costs = [cost(part, result.encoding) for part in result.parts]
    assert all(c <= result.per_segment for c in costs)
    assert sum(costs) == result.length
    assert result.remaining == result.per_segment - costs[-1] >= 0
    for part, next_part in itertools.pairwise(result.parts):
        assert part
        assert cost(part + next_part[0], result.encoding) > result.per_segment


@settings(max_examples=200)
@given(texts)
def test_count_matches_parts_and_limits(text: str) -> None:
    """count == len(parts) >= 1, and the single-message limit is used iff count == 1."""
    result = segments(text)
    assert result.count == len(result.parts) >= 1
    single, multi = (160, 153) if result.encoding == "GSM-7" else (70, 67)
    assert result.per_segment == (single if result.count == 1 else multi)
    assert (result.count == 1) == (result.length <= single)


@settings(max_examples=200)
@given(texts)
def test_encoding_is_gsm7_iff_is_gsm7(text: str) -> None:
    """The encoding is GSM-7 exactly when is_gsm7 is true, i.e. every char is in the tables."""
    assert (segments(text).encoding == "GSM-7") is is_gsm7(text)
    assert is_gsm7(text) is all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)
