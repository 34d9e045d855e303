"""`hmr toolkit-import` and `hmr toolkit-export`: upstream's three JSON files in and out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.cli import main
from shared.snapshot import SnapshotStore

SCHEMAS = {
    "Qwen3": {
        "separator": "_",
        "part_order": ["base", "size", "bogus"],
        "author_included": False,
        "common_author": "Qwen",
        "template": "{author}/{base}-{size}",
        "extra_parts": [],
    }
}
ALIASES = {"Stheno": {"aliases": ["L3-Stheno", "Stheno-Extra"]}}
FAMILIES = {"Qwen": {"family_name": "Qwen", "members": ["Qwen1.5", "Qwen2.5", "Qwen3"]}}


def upstream_files(where: Path, **stores: object) -> Path:
    """Files as upstream writes them (2-space indent, ASCII-escaped, no trailing newline)."""
    where.mkdir(parents=True, exist_ok=True)
    for name, payload in stores.items():
        text = json.dumps(payload, indent=2)
        (where / f"text_generation_group_{name}.json").write_text(text, encoding="utf-8")
    return where


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert main(["seed", "--data-dir", str(data)], environ={}) == 0
    return data


def test_import_then_export_gives_the_same_files(data_dir: Path, tmp_path: Path) -> None:
    """Imported files are published and export back byte for byte."""
    source = upstream_files(tmp_path / "up", schemas=SCHEMAS, aliases=ALIASES, families=FAMILIES)
    assert main(["toolkit-import", "--data-dir", str(data_dir), str(source)], environ={}) == 0
    out = tmp_path / "out"
    assert main(["toolkit-export", "--data-dir", str(data_dir), str(out)], environ={}) == 0
    for name in ("schemas", "aliases", "families"):
        file = f"text_generation_group_{name}.json"
        assert (out / file).read_bytes() == (source / file).read_bytes(), name
    snapshot = SnapshotStore(data_dir / "snapshots").read_current()
    assert snapshot is not None
    assert json.loads(snapshot.files["toolkit/text_generation_group_aliases.json"]) == ALIASES


def test_a_missing_file_leaves_its_store(data_dir: Path, tmp_path: Path) -> None:
    """Each file present replaces its store; a store without a file is kept."""
    first = upstream_files(tmp_path / "a", aliases=ALIASES, families=FAMILIES)
    assert main(["toolkit-import", "--data-dir", str(data_dir), str(first)], environ={}) == 0
    second = upstream_files(tmp_path / "b", families={})
    assert main(["toolkit-import", "--data-dir", str(data_dir), str(second)], environ={}) == 0
    out = tmp_path / "out"
    main(["toolkit-export", "--data-dir", str(data_dir), str(out)], environ={})
    assert json.loads((out / "text_generation_group_aliases.json").read_bytes()) == ALIASES
    assert json.loads((out / "text_generation_group_families.json").read_bytes()) == {}


@pytest.mark.parametrize(
    "stores",
    [
        {"aliases": {"A": {"aliases": ["x"]}, "B": {"aliases": ["x"]}}},
        {"aliases": {"A": {"aliases": ["A"]}}},
        {
            "families": {
                "F": {"family_name": "F", "members": ["g"]},
                "G": {"family_name": "G", "members": ["g"]},
            }
        },
        {"schemas": {"G": {"separator": 1}}},
        {"aliases": ["not", "an", "object"]},
    ],
)
def test_files_breaking_an_invariant_are_refused(
    data_dir: Path, tmp_path: Path, stores: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    """Duplicate owners, self-aliases, shared family members or bad shapes import nothing."""
    before = SnapshotStore(data_dir / "snapshots").current_name()
    source = upstream_files(tmp_path / "bad", **stores)
    assert main(["toolkit-import", "--data-dir", str(data_dir), str(source)], environ={}) == 1
    assert "nothing imported" in capsys.readouterr().err
    assert SnapshotStore(data_dir / "snapshots").current_name() == before


def test_import_needs_data(tmp_path: Path) -> None:
    """An empty data dir has nothing to import into."""
    source = upstream_files(tmp_path / "up", aliases=ALIASES)
    assert (
        main(["toolkit-import", "--data-dir", str(tmp_path / "empty"), str(source)], environ={})
        == 1
    )
