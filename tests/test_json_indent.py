"""shared.json_indent writes exactly what json.dumps(..., ensure_ascii=False, indent=4) writes."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

from horde_model_records.convert import text_v1_view
from horde_model_records.records import TextGenerationRecord
from horde_model_records.serde import converter
from horde_model_records.text import db_entries
from shared.dataset import Dataset
from shared.json_indent import Indent4, dumps_compact, dumps_indent4

VALUES: list[Any] = [
    {},
    [],
    "plain",
    'quote " backslash \\ newline \n tab \t nul \x00 unicode é 漢字 \u2028',
    0,
    -12,
    10**30,
    1.5,
    1e-07,
    1e16,
    float("inf"),
    float("nan"),
    True,
    False,
    None,
    {"a": [], "b": {}, "c": [1, [2, [3, {}]], {"d": None}], "é": "ü"},
    [{"x": 1}, [], [[]], "s", 2.25, None, True],
    {1: "int key", "s": "str key"},  # non-str keys: json.dumps converts them
    {"t": (1, 2), "o": OrderedDict(a=1)},  # tuple and a dict subclass
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("newline", ["\n", "\n    "])
def test_matches_json_dumps(value: Any, newline: str) -> None:
    expected = json.dumps(value, ensure_ascii=False, indent=4).replace("\n", newline)
    assert dumps_indent4(value, newline) == expected


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_compact_matches_json_dumps(value: Any) -> None:
    assert dumps_compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_compact_refuses_what_json_dumps_refuses() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        dumps_compact({"a": [object()]})


def test_matches_json_dumps_on_every_legacy_file(legacy_dir: Path, dataset: Dataset) -> None:
    raw = [json.loads(p.read_bytes()) for p in sorted((legacy_dir / "image").glob("*.json"))]
    raw += [d.legacy for d in dataset.categories.values() if d.legacy is not None]
    for value in raw:
        assert dumps_indent4(value) == json.dumps(value, ensure_ascii=False, indent=4)


def test_text_v1_view_is_every_db_entry_unstructured(dataset: Dataset) -> None:
    """The v1 text view copies the base entry per variant: the same as unstructuring each."""
    records = [
        r
        for d in dataset.categories.values()
        for r in d.records.values()
        if isinstance(r, TextGenerationRecord)
    ]
    assert records
    expected = {e.name: converter.unstructure(e) for r in records for e in db_entries(r)}
    view = text_v1_view(records)
    assert list(view) == list(expected)
    assert json.dumps(view) == json.dumps(expected)


def test_indent4_matches_dumps_indent4_on_every_v1_file(legacy_dir: Path, dataset: Dataset) -> None:
    """Indent4 reuses the text of the previous entry (the text view's backend variants share
    every value but their name) and writes what dumps_indent4 writes for each entry."""
    raw = [json.loads(p.read_bytes()) for p in sorted((legacy_dir / "image").glob("*.json"))]
    raw += [d.legacy for d in dataset.categories.values() if d.legacy is not None]
    for view in raw:
        encoder = Indent4("\n    ")
        for entry in view.values() if isinstance(view, dict) else view:
            assert encoder.encode(entry) == dumps_indent4(entry, "\n    ")


def test_indent4_reuses_only_what_is_the_same() -> None:
    shared_list = ["a", "b"]
    base = {"name": "x", "tags": shared_list, "n": 1}
    cases: list[Any] = [
        base,
        {**base, "name": "y"},  # a variant: reused
        {**base, "name": 'z "quoted"\n'},
        {"name": "y", "n": 1, "tags": shared_list},  # same values, another key order
        {**base, "tags": ["a", "b"]},  # an equal list, another object
        {**base, "name": 5},
        {**base, "name": ["not", "a", "scalar"]},
        {"other": "y", "tags": shared_list, "n": 1},  # another first key
        {1: "y", "tags": shared_list, "n": 1},  # a non-str first key
        {"name": "y", "tags": shared_list},  # fewer keys
        {**base, "name": "w"},
        [base],
        {},
        "text",
    ]
    encoder = Indent4("\n")
    for value in cases:
        assert encoder.encode(value) == json.dumps(value, ensure_ascii=False, indent=4)
