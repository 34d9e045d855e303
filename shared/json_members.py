"""A JSON object decoded member by member, so other threads run while a large one is decoded.

`json.loads` decodes a whole document in one C call that holds the GIL throughout: on a 117 MB
category file (the text v1 view at 100x the real data) that is 3-7 s in which no other thread
runs, the event loop included. Decoding each member with `JSONDecoder.raw_decode` is the same C
decoder in calls of microseconds, and the interpreter may switch threads between any two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["json_members", "loads_object"]

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _expect(text: str, at: int, char: str) -> int:
    if text[at : at + 1] != char:
        raise json.JSONDecodeError(f"Expecting '{char}'", text, at)
    return _skip(text, at + 1)


def json_members(document: str | bytes) -> Iterator[tuple[str, Any]]:
    """The (name, value) members of the JSON object `document`, in order, each decoded alone;
    `json.JSONDecodeError` (a ValueError) when it is not one JSON object."""
    text = document.decode("utf-8") if isinstance(document, bytes) else document
    at = _expect(text, _skip(text, 0), "{")
    if text[at : at + 1] == "}":
        at = _skip(text, at + 1)
    else:
        while True:
            if text[at : at + 1] != '"':
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", text, at
                )
            name, at = _DECODER.raw_decode(text, at)
            at = _expect(text, _skip(text, at), ":")
            value, at = _DECODER.raw_decode(text, at)
            yield name, value
            at = _skip(text, at)
            if text[at : at + 1] == ",":
                at = _skip(text, at + 1)
                continue
            at = _expect(text, at, "}")
            break
    if at != len(text):
        raise json.JSONDecodeError("Extra data", text, at)


def loads_object(document: str | bytes) -> dict[str, Any]:
    """`json.loads(document)` for a document that must be a JSON object, decoded member by
    member (a later duplicate name wins, as in json.loads)."""
    return dict(json_members(document))
