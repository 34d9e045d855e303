"""A legacy JSON file written back in the repository's own formatting: unchanged models keep their
bytes, changed ones are rendered in the file's dominant indent, line ending and escaping."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from attrs import frozen

Json = dict[str, Any]

_WS = " \t\r\n"


class LayoutError(ValueError):
    """The file is not one JSON object of models."""


def strip_nulls(value: Any) -> Any:
    """`value` without null-valued keys and null list items, recursively (as the sync reads bodies)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value


def canonical(value: Any) -> str:
    """The comparison form of a record: null-free, sorted keys, no whitespace, types kept."""
    return json.dumps(strip_nulls(value), sort_keys=True, separators=(",", ":"))


@frozen
class Entry:
    """One model of the file: its key, its parsed value and its exact text."""

    key: str
    value: Any
    leading: str  # the whitespace before the key (after the previous comma)
    text: str  # from the key's quote to the comma (or to the closing brace's whitespace)


@frozen
class JsonLayout:
    """A legacy JSON file cut into its models, plus what it needs to render new ones alike."""

    head: str  # everything up to and including "{"
    entries: tuple[Entry, ...]
    closing: str  # the whitespace before the final "}"
    tail: str  # "}" and what follows it
    newline: str
    indent: str
    ensure_ascii: bool

    @property
    def records(self) -> dict[str, Any]:
        return {e.key: e.value for e in self.entries}


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _dominant_indent(text: str, entries: list[Entry]) -> str:
    """Tab when most indented lines start with one, else the most frequent width of the models'
    own lines (depth 1), else the step every indentation is a multiple of."""
    leads = [line[: len(line) - len(line.lstrip(" \t"))] for line in text.splitlines()]
    tabs = sum(1 for lead in leads if lead.startswith("\t"))
    spaces = sum(1 for lead in leads if lead.startswith(" "))
    if tabs == 0 and spaces == 0:
        return "    "
    if tabs >= spaces:
        return "\t"
    widths: Counter[int] = Counter()
    for entry in entries:
        unit = entry.leading.rsplit("\n", 1)[-1]
        if unit and set(unit) == {" "}:
            widths[len(unit)] += 1
    if widths:
        return " " * widths.most_common(1)[0][0]
    step = 0
    for lead in leads:
        if lead and set(lead) == {" "}:
            step = math.gcd(step, len(lead))
    return " " * (step or 4)


def parse_layout(text: str) -> JsonLayout:
    """Cut a legacy JSON file (`{"model": {...}, ...}`) into its models' exact text."""
    decoder = json.JSONDecoder()
    start = _skip_ws(text, 0)
    if start >= len(text) or text[start] != "{":
        raise LayoutError("expected a JSON object of models")
    pos = start + 1
    head = text[:pos]
    entries: list[Entry] = []
    after = pos
    while True:
        after = _skip_ws(text, pos)
        if after >= len(text):
            raise LayoutError("the object is not closed")
        if text[after] == "}":
            break
        leading = text[pos:after]
        try:
            key, key_end = decoder.raw_decode(text, after)
            colon = _skip_ws(text, key_end)
            if not isinstance(key, str) or text[colon] != ":":
                raise LayoutError(f"expected a key at offset {after}")
            value, end = decoder.raw_decode(text, _skip_ws(text, colon + 1))
        except (json.JSONDecodeError, IndexError) as exc:
            raise LayoutError(f"not JSON at offset {after}: {exc}") from None
        stop = _skip_ws(text, end)
        if stop < len(text) and text[stop] == ",":
            entries.append(Entry(key, value, leading, text[after:stop]))
            pos = stop + 1
        else:
            entries.append(Entry(key, value, leading, text[after:end]))
            pos = end
    closing, tail = text[pos:after], text[after:]
    try:
        json.loads(text)  # the cut found the models; the whole must still be one valid document
    except json.JSONDecodeError as exc:
        raise LayoutError(str(exc)) from None
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    non_ascii = any(ord(c) > 127 for c in text)
    return JsonLayout(
        head=head,
        entries=tuple(entries),
        closing=closing,
        tail=tail,
        newline=newline,
        indent=_dominant_indent(text, entries),
        ensure_ascii=not non_ascii or "\\u" in text,
    )


def _render_entry(layout: JsonLayout, key: str, value: Any) -> str:
    body = json.dumps(value, indent=layout.indent, ensure_ascii=layout.ensure_ascii)
    text = json.dumps(key, ensure_ascii=layout.ensure_ascii) + ": " + body
    return text.replace("\n", "\n" + layout.indent).replace("\n", layout.newline)


def render_json(layout: JsonLayout, desired: Mapping[str, Any]) -> str:
    """The file with `desired`'s models: kept models keep their place (and their bytes when equal),
    new ones are appended in `desired`'s order, missing ones are cut."""
    parts: list[str] = []
    seen: set[str] = set()
    for entry in layout.entries:
        if entry.key not in desired or entry.key in seen:
            continue
        seen.add(entry.key)
        value = desired[entry.key]
        if canonical(entry.value) == canonical(value):
            parts.append(entry.leading + entry.text)
        else:
            parts.append(entry.leading + _render_entry(layout, entry.key, strip_nulls(value)))
    new_leading = layout.newline + layout.indent
    for key, value in desired.items():
        if key not in seen:
            parts.append(new_leading + _render_entry(layout, key, strip_nulls(value)))
    closing = layout.closing
    if parts and not layout.entries and layout.newline not in closing:
        closing = layout.newline + closing
    return layout.head + ",".join(parts) + closing + layout.tail


def render_new_file(desired: Mapping[str, Any]) -> str:
    """A file the repository does not have yet: 4 spaces, LF, escaped, a final newline."""
    return json.dumps(strip_nulls(dict(desired)), indent=4) + "\n"
