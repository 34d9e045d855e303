"""A JSON object decoded member by member gives what json.loads gives, and refuses what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.dataset import Dataset, publish_dataset
from shared.json_members import json_members, loads_object
from shared.snapshot import SnapshotStore


def test_every_category_file_of_a_snapshot_decodes_as_json_loads_does(
    tmp_path: Path, dataset: Dataset
) -> None:
    """Each v1 and v2 category file of a snapshot of the real data decodes to the same object,
    members in the same order."""
    snapshot = publish_dataset(SnapshotStore(tmp_path / "snapshots"), dataset)
    paths = [p for p in snapshot.files if p.startswith(("v1/", "v2/")) and p.endswith(".json")]
    assert len(paths) > 10
    for path in paths:
        data = snapshot.files[path]
        expected = json.loads(data)
        if not isinstance(expected, dict):
            continue
        decoded = loads_object(data)
        assert decoded == expected, path
        assert list(decoded) == list(expected), path


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        " { } \n",
        '{"a": 1}',
        '{\n    "a": {"b": [1, 2, {"c": null}]},\n    "d": "é"\n}\n',
        '{"a":1,"a":2}',
        '{"x": "}\\"{", "y": []}',
    ],
)
def test_small_objects_decode_as_json_loads_does(text: str) -> None:
    """Whitespace anywhere JSON allows it, nesting, escapes and a repeated name (the last wins)."""
    assert loads_object(text) == json.loads(text)
    assert loads_object(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "text", ["", "[]", "{", '{"a": 1', '{"a": 1,}', '{"a" 1}', "{a: 1}", '{"a": 1} x', '{"a": }']
)
def test_what_is_not_one_json_object_is_refused(text: str) -> None:
    """Truncated, trailing, malformed or non-object documents raise JSONDecodeError."""
    with pytest.raises(json.JSONDecodeError):
        list(json_members(text))
