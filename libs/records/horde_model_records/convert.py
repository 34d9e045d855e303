"""legacy -> v2 conversion and the v1 view generated from v2."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import attrs
import cattrs

from .categories import (
    CATEGORY_INFO,
    LEGACY_TO_V2_BASELINE,
    V2_TO_LEGACY_BASELINE,
    Category,
    has_backend_prefix,
)
from .legacy import (
    LegacyConfig,
    LegacyDownload,
    LegacyFile,
    LegacyImageRecord,
    LegacyRecord,
    LegacyTextRecord,
    TextCsvRow,
)
from .problems import Problem
from .records import (
    RECORD_TYPES,
    DownloadConfig,
    DownloadRecord,
    ModelClassification,
    ModelRecord,
    RecordMetadata,
    TextGenerationRecord,
)
from .serde import get_converter
from .text import (
    auto_display_name,
    db_base_json,
    model_name_of,
    parse_models_csv,
    size_tag,
    text_model_group,
    variant_names,
)
from .validation import validation_errors

Json = dict[str, Any]


class ConversionError(ValueError):
    """A record that cannot be converted; the message names the field."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def describe_validation_error(exc: Exception) -> tuple[str | None, str]:
    """(field path, message) of the first error inside a validation error."""
    errors = validation_errors(exc)
    if not errors:
        return None, str(exc)
    path, message = errors[0]
    return (path.removeprefix("$").removeprefix(".") or None), message


def structure_record(category: Category, data: Any) -> ModelRecord:
    """Validate a v2 payload into the category's record type (raises cattrs validation errors)."""
    if isinstance(data, dict) and "record_type" not in data:
        data = {**data, "record_type": category.value}
    return get_converter().structure(data, RECORD_TYPES[category])


def unstructure_record(record: ModelRecord) -> Json:
    data: Json = get_converter().unstructure(record)  # every record class unstructures to a dict
    return data


# --- legacy -> v2 ---------------------------------------------------------------------------------


def _download_config(config: LegacyConfig) -> DownloadConfig:
    downloads: dict[str, dict[str, Any]] = {}
    for f in config.files:
        if not f.path or "yaml" in f.path.lower():
            continue
        downloads[f.path] = {
            "file_name": f.path,
            "file_url": "",
            "sha256sum": f.sha256sum or "FIXME",
            "content_hash": f.content_hash,
            "file_purpose": f.file_type,
            # the path, not the URL, as upstream's converter tests it: both give the same records
            "known_slow_download": "civitai" in f.path.lower(),
        }
    for d in config.download:
        if d.file_name not in downloads:
            raise ConversionError(
                "config.download",
                f"download entry '{d.file_name}' has no matching config.files entry",
            )
        downloads[d.file_name]["file_url"] = d.file_url or ""
    return DownloadConfig(
        download=[get_converter().structure(v, DownloadRecord) for v in downloads.values()],
        embedded_component_hashes=config.embedded_component_hashes,
    )


def _legacy_to_v2_fields(category: Category, raw: Json) -> Json:
    """The v2 fields of a legacy record, `config` as the DownloadConfig it converts to."""
    if category is Category.image_generation:
        legacy = get_converter().structure(raw, LegacyImageRecord)
        return {
            "name": legacy.name,
            "description": legacy.description,
            "version": legacy.version,
            "config": _download_config(legacy.config),
            "size_on_disk_bytes": legacy.size_on_disk_bytes,
            "inpainting": bool(legacy.inpainting),
            "baseline": LEGACY_TO_V2_BASELINE.get(legacy.baseline, legacy.baseline),
            "optimization": legacy.optimization,
            "tags": list(legacy.tags or []),
            "showcases": list(legacy.showcases or []),
            "min_bridge_version": legacy.min_bridge_version,
            "trigger": list(legacy.trigger or []),
            "homepage": legacy.homepage,
            "nsfw": bool(legacy.nsfw),
            "style": legacy.style,
            "requirements": None if legacy.requirements is None else dict(legacy.requirements),
        }
    rec = get_converter().structure(raw, LegacyRecord)
    fields: Json = {
        "name": rec.name,
        "description": rec.description,
        "version": rec.version,
        "config": _download_config(rec.config),
    }
    if category is Category.clip:
        fields["pretrained_name"] = rec.pretrained_name
    elif category is Category.controlnet:
        fields["controlnet_style"] = rec.type or rec.style
    return fields


def legacy_record_to_v2(category: Category, raw: Any) -> ModelRecord:
    """Convert one legacy JSON record (not text) to its v2 record."""
    if not isinstance(raw, dict):
        raise ConversionError(None, f"expected an object, got {type(raw).__name__}")
    fields = _legacy_to_v2_fields(category, raw)
    record = _made_directly(category, fields)
    if record is not None:
        return record
    return structure_record(
        category, {**fields, "config": get_converter().unstructure(fields["config"])}
    )


def _made_directly(category: Category, fields: Json) -> ModelRecord | None:
    """The record structure_record makes of `fields`, made without the converter: they come
    from a legacy record the converter has just checked, with the types the record's fields
    have (structuring them again costs most of a large import). None when the record's own
    validators refuse them: the converter's way then gives the error that names the field."""
    try:
        return RECORD_TYPES[category](**{k: v for k, v in fields.items() if v is not None})
    except (TypeError, ValueError):
        return None


def convert_legacy_json(
    category: Category, data: Any, source: str
) -> tuple[dict[str, ModelRecord], dict[str, Json], list[Problem]]:
    """Convert a legacy JSON file: (v2 records, the legacy records kept, problems).

    A bad record is skipped with a problem; the rest of the category survives.
    """
    problems: list[Problem] = []
    if not isinstance(data, dict):
        problems.append(Problem(source, None, None, "expected a JSON object of models", fatal=True))
        return {}, {}, problems
    records: dict[str, ModelRecord] = {}
    kept: dict[str, Json] = {}
    for key, raw in data.items():
        try:
            record = legacy_record_to_v2(category, raw)
        except ConversionError as exc:
            problems.append(Problem(source, key, exc.field, f"{exc}; record skipped"))
            continue
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            field, message = describe_validation_error(exc)
            problems.append(Problem(source, key, field, f"{message}; record skipped"))
            continue
        if record.name != key:
            if record.name in data or record.name in records:
                # the name is another model's key: the key names this one
                problems.append(
                    Problem(source, key, "name", f"name '{record.name}' is taken; key used")
                )
                record = attrs.evolve(record, name=key)
            else:
                # v2 knows the model by its name (as upstream does), v1 by its key: both resolve
                problems.append(
                    Problem(source, key, "name", f"name '{record.name}' differs from its key")
                )
        records[record.name] = record
        kept[key] = raw
    return records, kept, problems


def csv_row_to_v2(row: TextCsvRow) -> TextGenerationRecord:
    """A models.csv row as its v2 record: raw CSV values, no derived fields."""
    group = text_model_group(row.name)
    record = _csv_record(row, group)
    if record is not None:
        return record
    structured = structure_record(Category.text_generation, csv_row_fields(row, group))
    assert isinstance(structured, TextGenerationRecord)
    return structured


def csv_row_fields(row: TextCsvRow, group: str | None = None) -> dict[str, Any]:
    """A models.csv row as the v2 fields the converter structures (the reference way of
    `csv_row_to_v2`, which takes a faster one when the row's types already match);
    `group`: its text_model_group, when already known."""
    return {
        "name": row.name,
        "description": row.description,
        "version": row.version,
        "config": {"download": []},
        "baseline": row.baseline,
        "parameters": int(row.parameters_bn * 1_000_000_000),
        "nsfw": row.nsfw,
        "style": row.style,
        "display_name": row.display_name,
        "url": row.url,
        "tags": list(row.tags),
        "instruct_format": row.instruct_format or None,
        "settings": row.settings,
        "text_model_group": text_model_group(row.name) if group is None else group,
    }


def _csv_record(row: TextCsvRow, group: str) -> TextGenerationRecord | None:
    """The record `csv_row_to_v2` structures, made directly when every value already has the
    type the converter would check (what parse_models_csv gives): structuring costs most of a
    large import. None for anything else, and for what the record's own validators refuse:
    the converter's way then gives the same record, or the error that names the field."""
    texts: tuple[object, ...] = (
        row.name,
        row.description,
        row.version,
        row.baseline,
        row.style,
        row.display_name,
        row.url,
        row.instruct_format,
    )
    tags, nsfw, bn = cast(tuple[object, object, object], (row.tags, row.nsfw, row.parameters_bn))
    if (
        not all(type(v) is str for v in texts)
        or type(nsfw) is not bool
        or type(bn) is not float
        or type(tags) is not list
        or not all(type(t) is str for t in tags)
        or not (row.settings is None or _str_keyed(row.settings))
    ):
        return None
    try:
        return TextGenerationRecord(
            name=row.name,
            description=row.description,
            version=row.version,
            config=DownloadConfig(),
            baseline=row.baseline,
            parameters_count=int(row.parameters_bn * 1_000_000_000),
            nsfw=row.nsfw,
            style=row.style,
            display_name=row.display_name,
            url=row.url,
            tags=list(row.tags),
            instruct_format=row.instruct_format or None,
            settings=None if row.settings is None else dict(row.settings),
            text_model_group=group,
            # the defaults' values, shared: both are frozen and hold nothing mutable
            metadata=_NEW_METADATA,
            model_classification=_TEXT_CLASSIFICATION,
        )
    except ValueError:
        return None


_NEW_METADATA = RecordMetadata()
_TEXT_CLASSIFICATION = ModelClassification(
    domain=CATEGORY_INFO[Category.text_generation].domain,
    purpose=CATEGORY_INFO[Category.text_generation].purpose,
)


def _str_keyed(value: object) -> bool:
    return type(value) is dict and all(type(k) is str for k in value)


def convert_models_csv(
    text: str, source: str = "models.csv"
) -> tuple[dict[str, ModelRecord], list[Problem]]:
    rows, problems = parse_models_csv(text, source)
    records: dict[str, ModelRecord] = {}
    for row in rows:
        if has_backend_prefix(row.name):
            problems.append(Problem(source, row.name, "name", "backend-prefixed name; row skipped"))
            continue
        try:
            records[row.name] = csv_row_to_v2(row)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            field, message = describe_validation_error(exc)
            problems.append(Problem(source, row.name, field, f"{message}; row skipped"))
    return records, problems


def _db_entry_fields(entry: LegacyTextRecord) -> Json:
    """v2 fields of a db.json entry with the generator's derived values taken back out.

    v2 text records hold what models.csv says; the size tag, the style tag, the default style,
    version "1" and the automatic display name are re-derived when the v1 view is generated.
    """
    style = entry.style
    tags = set(entry.tags)
    if style == "generalist" and "generalist" not in tags:
        style = ""  # the generator's default, not a value anybody wrote
    tags.discard(size_tag((entry.parameters or 0) / 1_000_000_000))
    if style:
        tags.discard(style)
    display_name = entry.display_name or ""
    if display_name == auto_display_name(model_name_of(entry.name)):
        display_name = ""
    return {
        "name": entry.name,
        "description": entry.description,
        "version": "" if entry.version == "1" else entry.version,
        "config": {"download": []},
        "baseline": entry.baseline,
        "parameters": entry.parameters or 0,
        "nsfw": entry.nsfw,
        "style": style,
        "display_name": display_name,
        "url": entry.url,
        "tags": sorted(tags),
        "instruct_format": entry.instruct_format,
        "settings": entry.settings,
        "text_model_group": text_model_group(entry.name),
    }


def legacy_to_v2(category: Category, raw: Any) -> ModelRecord:
    """One legacy record (a JSON category's record, or a db.json text entry) as its v2 record.

    Raises ConversionError or cattrs validation errors naming the field.
    """
    if category is Category.text_generation:
        if not isinstance(raw, dict):
            raise ConversionError(None, f"expected an object, got {type(raw).__name__}")
        name = raw.get("name")
        filled = {"model_name": model_name_of(name) if isinstance(name, str) else "", **raw}
        entry = get_converter().structure(filled, LegacyTextRecord)
        return structure_record(category, _db_entry_fields(entry))
    return legacy_record_to_v2(category, raw)


def convert_db_json(
    data: Any, source: str = "db.json"
) -> tuple[dict[str, ModelRecord], list[Problem]]:
    """A db.json-shaped v1 text view as v2 records: variants dropped, fields mapped one to one."""
    problems: list[Problem] = []
    records: dict[str, ModelRecord] = {}
    if not isinstance(data, dict):
        return {}, [Problem(source, None, None, "expected a JSON object of models", fatal=True)]
    for key, raw in data.items():
        if has_backend_prefix(key):
            continue
        try:
            entry = get_converter().structure(raw, LegacyTextRecord)
            records[key] = structure_record(Category.text_generation, _db_entry_fields(entry))
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            field, message = describe_validation_error(exc)
            problems.append(Problem(source, key, field, f"{message}; record skipped"))
    return records, problems


# --- v2 -> legacy (the v1 view) -------------------------------------------------------------------

#: keys the generator owns in a legacy record: v2 can say they are gone
_OWNED_IMAGE = frozenset(
    {
        "name",
        "baseline",
        "type",
        "description",
        "version",
        "inpainting",
        "optimization",
        "tags",
        "showcases",
        "min_bridge_version",
        "trigger",
        "homepage",
        "nsfw",
        "style",
        "requirements",
        "size_on_disk_bytes",
        "config",
    }
)
_OWNED_OTHER = frozenset({"name", "description", "version", "config", "pretrained_name"})
_OWNED_FILE = frozenset({"path", "sha256sum", "file_type", "content_hash"})
_OWNED_DOWNLOAD = frozenset({"file_name", "file_path", "file_url"})


def _legacy_config(config: DownloadConfig) -> LegacyConfig:
    return LegacyConfig(
        files=[
            LegacyFile(
                path=d.file_name,
                sha256sum=d.sha256sum,
                file_type=d.file_purpose,
                content_hash=d.content_hash,
            )
            for d in config.download
        ],
        download=[
            LegacyDownload(file_name=d.file_name, file_path="", file_url=d.file_url)
            for d in config.download
        ],
        embedded_component_hashes=config.embedded_component_hashes or None,
    )


def generate_legacy(category: Category, record: ModelRecord) -> Json:
    """The legacy record a v2 record turns into when nothing older is known."""
    fields = get_converter().unstructure(record)
    config = _legacy_config(record.config)
    if category is Category.image_generation:
        legacy_baseline = V2_TO_LEGACY_BASELINE.get(fields["baseline"], fields["baseline"])
        image = {k: fields.get(k) for k in _OWNED_IMAGE if k not in ("config", "type", "baseline")}
        legacy: LegacyImageRecord | LegacyRecord = LegacyImageRecord(
            **image, baseline=legacy_baseline, type="ckpt", config=config
        )
    else:
        info = CATEGORY_INFO[category]
        legacy_type = fields.get("controlnet_style") if category is Category.controlnet else None
        legacy = LegacyRecord(
            name=record.name,
            type=legacy_type or info.legacy_type,
            description=record.description,
            version=record.version,
            config=config,
            pretrained_name=fields.get("pretrained_name"),
        )
    out: Json = get_converter().unstructure(legacy)  # legacy record classes unstructure to a dict
    return out


def _merge_entries(
    previous: list[Json],
    generated: list[Json],
    key: str,
    owned: frozenset[str],
    keep: Callable[[Json], bool],
) -> list[Json]:
    """Merge generated file/download entries onto the previous ones, matched by `key`."""
    by_key: dict[object, Json] = {entry[key]: entry for entry in generated}
    out: list[Json] = []
    seen: set[object] = set()
    for prev in previous:
        ident = prev.get(key)
        if ident in by_key and ident not in seen:
            out.append(_merge_dict(prev, by_key[ident], owned))
            seen.add(ident)
        elif keep(prev):
            out.append(prev)
    out.extend(entry for entry in generated if entry[key] not in seen)
    return out


def _is_placeholder(key: str, value: object) -> bool:
    """A value the generator fills in for something the legacy record may simply not carry."""
    return (
        (key == "sha256sum" and value == "FIXME")
        or (key == "file_url" and value == "")
        or value == []
    )


def _merge_dict(previous: Json, generated: Json, owned: frozenset[str]) -> Json:
    out = {k: v for k, v in previous.items() if k not in owned or k in generated}
    for k, v in generated.items():
        if k not in previous and _is_placeholder(k, v):
            continue
        out[k] = v
    return out


def _is_legacy_only_file(entry: Json) -> bool:
    path = entry.get("path") or ""
    return not path or "yaml" in path.lower()


def _merge_config(previous: Json, generated: Json) -> Json:
    files = _merge_entries(
        previous.get("files") or [], generated["files"], "path", _OWNED_FILE, _is_legacy_only_file
    )
    download = _merge_entries(
        previous.get("download") or [],
        generated["download"],
        "file_name",
        _OWNED_DOWNLOAD,
        lambda _entry: False,
    )
    merged = {**generated, "files": files, "download": download}
    return _merge_dict(
        previous, merged, frozenset({"files", "download", "embedded_component_hashes"})
    )


def merge_legacy(category: Category, previous: Json | None, generated: Json) -> Json:
    """Overwrite what v2 knows on top of the previous legacy record; keep the legacy-only rest."""
    if previous is None:
        return generated
    owned = _OWNED_IMAGE if category is Category.image_generation else _OWNED_OTHER
    if category is Category.controlnet:
        owned = owned | {"type"}
    # the legacy `type` of utility categories is not v2 data: keep what the record had
    generated = {k: v for k, v in generated.items() if k in owned}
    generated["config"] = _merge_config(previous.get("config") or {}, generated["config"])
    return _merge_dict(previous, generated, owned)


def text_v1_view(records: Iterable[ModelRecord]) -> dict[str, Json]:
    """The db.json view: three entries per text model, in record order."""
    view: dict[str, Json] = {}
    for record in records:
        assert isinstance(record, TextGenerationRecord)
        # the variants differ from the base entry in `name` only (see db_entries): make it
        # once and copy, which keeps the key order (the bulk of a large import's v1 view)
        base = db_base_json(record)
        for variant in variant_names(record.name):
            view[variant] = {**base, "name": variant}
    return view


def legacy_view(
    category: Category,
    records: Mapping[str, ModelRecord],
    previous: Mapping[str, Json] | None = None,
    changed: set[str] | None = None,
) -> dict[str, Json]:
    """The v1 view of a JSON category from its v2 records.

    Unchanged records keep their previous legacy record verbatim; changed ones are regenerated on
    top of it; new ones are generated. `changed=None` means every record is regenerated.
    """
    if category is Category.text_generation:
        return text_v1_view(records.values())
    previous = previous or {}
    keys = legacy_keys(previous)
    view: dict[str, Json] = {}
    for name, record in records.items():
        key = keys.get(name, name)
        prev = previous.get(key)
        if prev is not None and changed is not None and name not in changed:
            view[key] = prev
        else:
            view[key] = merge_legacy(category, prev, generate_legacy(category, record))
    return view


def legacy_keys(view: Mapping[str, Any]) -> dict[str, str]:
    """Record name -> its v1 key, for the entries whose key is another spelling of the name (the
    legacy controlnet file keys `control_qr_xl` as `control_qr_sdxl`)."""
    return {
        str(entry["name"]): key
        for key, entry in view.items()
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"] != key
    }
