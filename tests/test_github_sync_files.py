"""The GitHub sync's file writers on the real legacy files: a no-op writes the same bytes, a
one-model change is a one-model diff."""

from __future__ import annotations

import csv
import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import convert_models_csv, unstructure_record
from services.github_sync.legacy_json import parse_layout, render_json
from services.github_sync.legacy_text import (
    COLUMNS,
    METADATA_COLUMNS,
    TextFormatError,
    convert_rows,
    render_text_files,
    rows_of,
)

JSON_FILES = [
    "blip",
    "clip",
    "codeformer",
    "controlnet",
    "esrgan",
    "gfpgan",
    "safety_checker",
    "miscellaneous",
    "stable_diffusion",
]


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def _text_records(legacy_dir: Path) -> dict[str, dict[str, Any]]:
    records, _ = convert_models_csv((legacy_dir / "text" / "models.csv").read_text())
    return {name: unstructure_record(r) for name, r in records.items()}


@pytest.mark.parametrize("name", JSON_FILES)
def test_noop_json_sync_writes_the_same_bytes(legacy_dir: Path, name: str) -> None:
    """Rendering a real legacy file with its own models gives back its exact bytes."""
    raw = (legacy_dir / "image" / f"{name}.json").read_bytes()
    assert render_json(parse_layout(raw.decode()), json.loads(raw)).encode() == raw


def test_noop_text_sync_writes_the_same_bytes(legacy_dir: Path) -> None:
    """The real models.csv merged with its own records, and db.json made from it, are unchanged."""
    csv_text = (legacy_dir / "text" / "models.csv").read_bytes().decode()
    merged, db_json, _ = render_text_files(csv_text, _text_records(legacy_dir))
    assert merged.encode() == csv_text.encode()
    assert db_json.encode() == (legacy_dir / "text" / "db.json").read_bytes()


def test_one_model_change_in_a_tab_indented_file_is_a_one_model_diff(legacy_dir: Path) -> None:
    """Changing one esrgan model rewrites only that model's lines, in tabs."""
    raw = (legacy_dir / "image" / "esrgan.json").read_text()
    models = json.loads(raw)
    first = next(iter(models))
    models[first] = {**models[first], "description": "changed"}
    out = render_json(parse_layout(raw), models)
    changed = _changed_lines(raw, out)
    assert changed == [
        f'-\t\t"description": {json.dumps(json.loads(raw)[first]["description"])},\n',
        '+\t\t"description": "changed",\n',
    ]


def test_added_and_removed_models_keep_crlf_and_order(legacy_dir: Path) -> None:
    """controlnet.json (CRLF): a removed model is cut, a new one appended, other bytes stay."""
    raw = (legacy_dir / "image" / "controlnet.json").read_bytes().decode()
    layout = parse_layout(raw)
    models = json.loads(raw)
    gone = layout.entries[3]
    del models[gone.key]
    models["control_new"] = {"name": "control_new", "type": "control_canny"}
    out = render_json(layout, models)
    assert list(json.loads(out)) == list(models)
    assert "\n" not in out.replace("\r\n", "")
    expected = (
        layout.head
        + ",".join(e.leading + e.text for e in layout.entries if e is not gone)
        + ',\r\n\t"control_new": {\r\n\t\t"name": "control_new",\r\n'
        + '\t\t"type": "control_canny"\r\n\t}'
        + layout.closing
        + layout.tail
    )
    assert out == expected


def test_text_new_model_is_one_appended_crlf_row(legacy_dir: Path) -> None:
    """One new text model: models.csv gains one CRLF row at the end, db.json its three entries."""
    csv_text = (legacy_dir / "text" / "models.csv").read_bytes().decode()
    records = _text_records(legacy_dir)
    records["Org/NewModel-7B"] = {
        "name": "Org/NewModel-7B",
        "parameters": 7_000_000_000,
        "baseline": "mistral",
        "description": "New",
        "tags": ["chat"],
        "settings": {"temperature": 0.5},
    }
    merged, db_json, db = render_text_files(csv_text, records)
    assert merged.startswith(csv_text)
    assert merged[len(csv_text) :] == (
        'Org/NewModel-7B,7,,,mistral,New,,chat,,"{""temperature"": 0.5}"\r\n'
    )
    reference = json.loads((legacy_dir / "text" / "db.json").read_bytes())
    assert list(db)[: len(reference)] == list(reference)
    assert list(db)[len(reference) :] == [
        "Org/NewModel-7B",
        "aphrodite/Org/NewModel-7B",
        "koboldcpp/NewModel-7B",
    ]
    assert db == convert_rows(rows_of(merged))
    assert json.loads(db_json)["koboldcpp/NewModel-7B"]["tags"] == ["7B", "chat"]


def test_text_removed_model_drops_its_rows_only(legacy_dir: Path) -> None:
    """A model missing from the PRIMARY loses its CSV row and its three db.json entries."""
    csv_text = (legacy_dir / "text" / "models.csv").read_bytes().decode()
    records = _text_records(legacy_dir)
    del records["Aeala/Enterredaas-33b"]
    merged, _, db = render_text_files(csv_text, records)
    changed = _changed_lines(csv_text, merged)
    assert len(changed) == 1 and changed[0].startswith("-Aeala/Enterredaas-33b,")
    assert len(db) == 2157 - 3


CONTEXT = {"max": 32768}
MODES = {"instruction": {"claim": "supported"}}


def _with_metadata(legacy_dir: Path) -> tuple[str, dict[str, dict[str, Any]], str]:
    csv_text = (legacy_dir / "text" / "models.csv").read_bytes().decode()
    records = _text_records(legacy_dir)
    name = "Aeala/Enterredaas-33b"
    records[name] = {**records[name], "context_window": CONTEXT, "interaction_modes": MODES}
    return csv_text, records, name


def test_text_metadata_columns_are_withheld_by_default(legacy_dir: Path) -> None:
    """EXPORT_TEXT_METADATA_COLUMNS off: a record's context_window etc. change neither file."""
    csv_text, records, _ = _with_metadata(legacy_dir)
    merged, db_json, _ = render_text_files(csv_text, records)
    assert merged == csv_text
    assert db_json.encode() == (legacy_dir / "text" / "db.json").read_bytes()


def test_text_metadata_columns_are_exported_when_enabled(legacy_dir: Path) -> None:
    """EXPORT_TEXT_METADATA_COLUMNS on: the header gains the three columns, the one model with
    metadata is rendered again with its JSON cells, every other row keeps its bytes, and its
    three db.json entries carry the objects after settings."""
    csv_text, records, name = _with_metadata(legacy_dir)
    merged, _, db = render_text_files(csv_text, records, metadata=True)
    before, after = csv_text.splitlines(True), merged.splitlines(True)
    assert (
        after[0] == before[0].rstrip("\r\n") + ",context_window,interaction_modes,capabilities\r\n"
    )
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    row = next(i for i, line in enumerate(before) if line.startswith(name + ","))
    assert changed == [0, row]
    cells = next(csv.reader([after[row]]))
    assert cells[-3:] == [json.dumps(CONTEXT), json.dumps(MODES), ""]
    assert after[row].endswith("\r\n")
    reference = json.loads((legacy_dir / "text" / "db.json").read_bytes())
    assert list(db) == list(reference)
    for key, entry in db.items():
        if entry["model_name"] == name.split("/")[1]:
            assert entry == {
                **reference[key],
                "context_window": CONTEXT,
                "interaction_modes": MODES,
            }
            assert list(entry)[-2:] == ["context_window", "interaction_modes"]
        else:
            assert entry == reference[key]
    # the written CSV converts to the same entries, and a second run changes nothing
    assert convert_rows(rows_of(merged), metadata=True) == db
    again, _, _ = render_text_files(merged, records, metadata=True)
    assert again == merged


def test_text_metadata_cell_that_is_not_an_object_is_refused() -> None:
    header = ",".join(COLUMNS + METADATA_COLUMNS)
    csv_text = header + '\r\nOrg/M,7,,,,,,,,,"[1]",,\r\n'
    with pytest.raises(TextFormatError, match="context_window"):
        convert_rows(rows_of(csv_text), metadata=True)
