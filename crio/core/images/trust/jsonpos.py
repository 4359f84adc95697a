"""Strict JSON parsing that remembers where every value came from, for configuration error messages.

:func:`loads` returns ordinary Python values, except that objects are :class:`JObject` (a ``dict``) and
arrays are :class:`JArray` (a ``list``) carrying the text offsets of their keys, values and items, so a
caller validating the structure can name the line and column of whatever it refuses. Duplicate keys are
refused, as are the non-standard ``NaN``/``Infinity`` constants (containers/image parses its policy this
strictly). Strings and numbers are decoded by the standard :mod:`json` module; this module only walks the
structure.
"""

from __future__ import annotations

import json
import re
from typing import Any

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
_CONSTANTS = ("NaN", "Infinity", "-Infinity")  # accepted by the json module, not by JSON


class JObject(dict[str, Any]):
    """A JSON object with the offsets of its opening brace, of each key and of each value."""

    def __init__(self, pos: int) -> None:
        super().__init__()
        self.pos = pos
        self.key_pos: dict[str, int] = {}
        self.value_pos: dict[str, int] = {}


class JArray(list[Any]):
    """A JSON array with the offsets of its opening bracket and of each item."""

    def __init__(self, pos: int) -> None:
        super().__init__()
        self.pos = pos
        self.item_pos: list[int] = []


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based (line, column) of offset ``pos`` in ``text``."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - text.rfind("\n", 0, pos)


def loads(text: str) -> Any:
    """Parse ``text`` as one JSON document (see the module docstring).

    Raises :class:`json.JSONDecodeError` (with ``lineno``/``colno``) on a syntax error or a duplicate key.
    """
    try:
        json.loads(text)  # the standard messages and positions for syntax errors
        parser = _Parser(text)
        value = parser.value(parser.skip(0))
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", text, 0) from None
    return value[0]


class _Parser:
    """A recursive-descent walk over text the standard decoder has already accepted."""

    def __init__(self, text: str) -> None:
        self.text = text

    def skip(self, pos: int) -> int:
        match = _WHITESPACE.match(self.text, pos)
        return match.end() if match else pos

    def fail(self, message: str, pos: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, self.text, pos)

    def value(self, pos: int) -> tuple[Any, int]:
        """Parse the value starting at ``pos``; return it and the offset just after it."""
        text = self.text
        char = text[pos : pos + 1]
        if char == "{":
            return self.obj(pos)
        if char == "[":
            return self.array(pos)
        if char == '"':
            return self.string(pos)
        for word, literal in _LITERALS.items():
            if text.startswith(word, pos):
                return literal, pos + len(word)
        for word in _CONSTANTS:
            if text.startswith(word, pos):
                raise self.fail(f"{word} is not valid JSON", pos)
        match = _NUMBER.match(text, pos)
        if match is None:
            raise self.fail("Expecting value", pos)
        return json.loads(match.group()), match.end()

    def string(self, pos: int) -> tuple[str, int]:
        end = pos + 1
        text = self.text
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise self.fail("Unterminated string", pos)
        decoded: str = json.loads(text[pos : end + 1])
        return decoded, end + 1

    def obj(self, start: int) -> tuple[JObject, int]:
        result = JObject(start)
        pos = self.skip(start + 1)
        if self.text.startswith("}", pos):
            return result, pos + 1
        while True:
            key_pos = pos
            key, pos = self.string(pos)
            if key in result:
                raise self.fail(f"duplicate key {json.dumps(key)}", key_pos)
            pos = self.skip(self.skip(pos) + 1)  # the colon
            result.key_pos[key] = key_pos
            result.value_pos[key] = pos
            result[key], pos = self.value(pos)
            pos = self.skip(pos)
            if self.text.startswith("}", pos):
                return result, pos + 1
            pos = self.skip(pos + 1)  # the comma

    def array(self, start: int) -> tuple[JArray, int]:
        result = JArray(start)
        pos = self.skip(start + 1)
        if self.text.startswith("]", pos):
            return result, pos + 1
        while True:
            result.item_pos.append(pos)
            item, pos = self.value(pos)
            result.append(item)
            pos = self.skip(pos)
            if self.text.startswith("]", pos):
                return result, pos + 1
            pos = self.skip(pos + 1)
