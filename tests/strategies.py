"""Hypothesis strategies shared by the provider tests: real callback bodies, damaged."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st


def _mutate(value: Any, data: st.DataObject) -> Any:
    """``value`` with one randomly chosen node replaced by an arbitrary JSON value."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
        return [*value[:index], _mutate(value[index], data), *value[index + 1 :]]
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    return data.draw(
        st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner))
    )


def damaged_json(body: bytes, data: st.DataObject) -> bytes:
    """``body`` (a JSON callback) with a few bytes overwritten, or one JSON node replaced."""
    if data.draw(st.booleans()):
        damaged = bytearray(body)
        for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
            position = data.draw(st.integers(min_value=0, max_value=len(damaged) - 1))
            damaged[position] = data.draw(st.integers(min_value=0, max_value=255))
        return bytes(damaged)
    return json.dumps(_mutate(json.loads(body), data)).encode()


def edited_bytes(body: bytes, data: st.DataObject) -> bytes:
    """``body`` with one to eight random byte flips, insertions or deletions."""
    edited = bytearray(body)
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        position = data.draw(st.integers(min_value=0, max_value=len(edited)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.integers(min_value=0, max_value=255))
        if action == "insert" or position == len(edited):
            edited.insert(position, byte)
        elif action == "flip":
            edited[position] = byte
        else:
            del edited[position]
    return bytes(edited)
