"""`json.dumps(value, ensure_ascii=False, indent=4)`, byte for byte, at C-encoder speed for leaves.

Python 3.11's json module encodes with indentation in pure Python (a generator per container
and a fresh encoder per call); the v1 files of a large dataset spend most of a publish there.
This walks dicts and lists itself and leaves strings, numbers and the rest to the C encoder,
joining with exactly the separators `indent=4` writes: "{" NL+pad item ("," NL+pad item)* NL "}".
Anything unusual (non-str keys, types other than the JSON ones) falls back to json.dumps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import islice
from json.encoder import encode_basestring  # the C function when _json is there
from operator import is_
from typing import Any

__all__ = ["Indent4", "dumps_compact", "dumps_indent4"]

_PAD = "    "


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _c_compact_encoder() -> Callable[[Any, int], Any] | None:
    """The C encoder `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` runs, made
    once: JSONEncoder.encode makes a new one (and a dict of the containers seen) on every call.
    No check for cycles, which JSON data (trees) never have."""
    try:
        from _json import make_encoder
    except ImportError:  # no C accelerator: json's own way
        return None
    return make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, True)


_c_compact = _c_compact_encoder()
_py_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps_compact(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`."""
    if _c_compact is None:
        return _py_compact(value)
    return "".join(_c_compact(value, 0))


_compact = dumps_compact


def dumps_indent4(value: Any, newline: str = "\n") -> str:
    """`json.dumps(value, ensure_ascii=False, indent=4)` with every "\\n" replaced by `newline`
    (pass "\\n" plus padding to place the text one level deeper)."""
    kind = type(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + _PAD
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                return _fallback(value, newline)
            kind = type(item)
            if kind is str:  # most values: no call to _leaf
                text = encode_basestring(item)
            elif kind is dict or kind is list:
                text = dumps_indent4(item, inner)
            else:
                text = _leaf(item) or dumps_indent4(item, inner)
            parts.append(f"{encode_basestring(key)}: {text}")
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    if kind is list:
        if not value:
            return "[]"
        inner = newline + _PAD
        items = [_leaf(v) or dumps_indent4(v, inner) for v in value]
        return "[" + inner + ("," + inner).join(items) + newline + "]"
    return _leaf(value) or _fallback(value, newline)


def _leaf(value: Any) -> str:
    """A string, number, boolean or null as JSON; "" for anything else (never valid JSON)."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)  # what json writes for an int
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return _compact(value)
    return ""


def _fallback(value: Any, newline: str) -> str:
    return json.dumps(value, ensure_ascii=False, indent=4).replace("\n", newline)


class Indent4:
    """`dumps_indent4(value, newline)` for a run of values, where a dict that differs from the
    previous one only in its first item (same keys in the same order, every other value the
    same object) reuses the previous one's text after that item: the v1 text view's backend
    variants of a model are such dicts, two thirds of a large v1 text file."""

    def __init__(self, newline: str) -> None:
        self.newline = newline
        self.item_newline = newline + _PAD
        self.last: dict[str, Any] | None = None
        self.last_rest = ""  # the text of `last` after its first item

    def encode(self, value: Any) -> str:
        head = self._head(value)
        if head and self.last is not None and _same_but_first(value, self.last):
            self.last = value
            return head + self.last_rest
        text = dumps_indent4(value, self.newline)
        if head and text.startswith(head):
            self.last, self.last_rest = value, text[len(head) :]
        else:
            self.last = None
        return text

    def _head(self, value: Any) -> str:
        """The text of a dict up to the end of its first item, if that item is a str key with
        a scalar value; "" otherwise."""
        if type(value) is not dict or not value:
            return ""
        key = next(iter(value))
        if type(key) is not str:
            return ""
        first = _leaf(value[key])
        return first and f"{{{self.item_newline}{encode_basestring(key)}: {first}"


def _same_but_first(value: dict[str, Any], last: dict[str, Any]) -> bool:
    """The same key objects in the same order, and the same value objects after the first."""
    return (
        len(value) == len(last)  # values first: another model's entry differs in its second
        and all(map(is_, islice(value.values(), 1, None), islice(last.values(), 1, None)))
        and all(map(is_, value, last))
    )
