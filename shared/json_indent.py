"""`json.dumps(value, ensure_ascii=False, indent=4)`, byte for byte, at C-encoder speed for leaves.

Python 3.11's json module encodes with indentation in pure Python (a generator per container
and a fresh encoder per call); the v1 files of a large dataset spend most of a publish there.
This walks dicts and lists itself and leaves strings, numbers and the rest to the C encoder,
joining with exactly the separators `indent=4` writes: "{" NL+pad item ("," NL+pad item)* NL "}".
Anything unusual (non-str keys, types other than the JSON ones) falls back to json.dumps.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring  # the C function when _json is there
from typing import Any

__all__ = ["dumps_indent4"]

_PAD = "    "
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


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
            parts.append(f"{encode_basestring(key)}: {_leaf(item) or dumps_indent4(item, inner)}")
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
    if value is None or kind is bool or kind is float:
        return _compact(value)
    return ""


def _fallback(value: Any, newline: str) -> str:
    return json.dumps(value, ensure_ascii=False, indent=4).replace("\n", newline)
