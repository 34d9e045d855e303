"""text_generation specifics: models.csv parsing, db.json generation, variants, model groups."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from .legacy import LegacyTextRecord, TextCsvRow
from .names import group_key, parse_name
from .problems import Problem
from .records import TextGenerationRecord

GENERATION_PARAMS: frozenset[str] = frozenset(
    {
        "n",
        "frmtadsnsp",
        "frmtrmblln",
        "frmtrmspch",
        "frmttriminc",
        "max_context_length",
        "max_length",
        "rep_pen",
        "rep_pen_range",
        "rep_pen_slope",
        "singleline",
        "temperature",
        "tfs",
        "top_a",
        "top_k",
        "top_p",
        "typical",
        "sampler_order",
        "use_default_badwordsids",
        "stop_sequence",
        "min_p",
        "smoothing_factor",
        "dynatemp_range",
        "dynatemp_exponent",
    }
)

CSV_COLUMNS = (
    "name",
    "parameters_bn",
    "display_name",
    "url",
    "baseline",
    "description",
    "style",
    "tags",
    "instruct_format",
    "settings",
)

# --- names ----------------------------------------------------------------------------------------


def model_name_of(name: str) -> str:
    """The name without its author: `org/Model-7B` -> `Model-7B`."""
    return name.split("/", 1)[1] if "/" in name else name


def variant_names(name: str) -> list[str]:
    """[N, aphrodite/N, koboldcpp/M]: a text model's names in the v1 view (M: N without author)."""
    names = [name, "aphrodite/" + name, "koboldcpp/" + model_name_of(name)]
    return list(dict.fromkeys(names))


# --- text_model_group: the base model a text model name belongs to -------------------------------
# The parser lives in names.py (one implementation, upstream-exact); these are its old entry points.


def text_model_group(name: str) -> str:
    """The base-model group of a text model name: `acrastt/Marx-3B-V3` -> `Marx`."""
    return group_key(name)


def is_quantized(name: str) -> bool:
    """True when the full name (author and all) carries a quantisation marker."""
    return parse_name(name).quant is not None


# --- models.csv ----------------------------------------------------------------------------------


def _flat_settings(raw: str) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("settings is not a JSON object")
    for key, item in value.items():
        if isinstance(item, dict) or (
            isinstance(item, list) and any(isinstance(x, (dict, list)) for x in item)
        ):
            raise ValueError(f"settings.{key} is nested")
    return value


def parse_models_csv(
    text: str, source: str = "models.csv"
) -> tuple[list[TextCsvRow], list[Problem]]:
    """Parse models.csv; a bad row is skipped with a problem, a duplicated name keeps its first slot."""
    rows: dict[str, TextCsvRow] = {}
    problems: list[Problem] = []
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("name", "parameters_bn") if c not in (reader.fieldnames or [])]
    if missing:
        problems.append(Problem(source, None, missing[0], "required column is missing", fatal=True))
        return [], problems
    for line_no, raw in enumerate(reader, start=2):
        name = (raw.get("name") or "").strip()
        if not name:
            problems.append(
                Problem(source, f"line {line_no}", "name", "empty model name; row skipped")
            )
            continue
        if "://" in name:
            problems.append(Problem(source, name, "name", "name looks like a URL; row skipped"))
            continue
        bn_raw = (raw.get("parameters_bn") or "").strip()
        try:
            bn = float(bn_raw) if bn_raw else 0.0
        except ValueError:
            problems.append(
                Problem(source, name, "parameters_bn", f"not a number: {bn_raw!r}; row skipped")
            )
            continue
        if not bn_raw:
            problems.append(Problem(source, name, "parameters_bn", "blank; taken as 0"))
        try:
            settings = _flat_settings(raw.get("settings") or "")
        except ValueError as exc:
            problems.append(Problem(source, name, "settings", f"{exc}; row skipped"))
            continue
        tags = [t.strip() for t in (raw.get("tags") or "").split(",") if t.strip()]
        row = TextCsvRow(
            name=name,
            parameters_bn=bn,
            display_name=raw.get("display_name") or "",
            url=raw.get("url") or "",
            baseline=raw.get("baseline") or "",
            description=raw.get("description") or "",
            style=raw.get("style") or "",
            tags=tags,
            instruct_format=raw.get("instruct_format") or "",
            settings=settings,
            version=raw.get("version") or "",
            nsfw=(raw.get("nsfw") or "").strip().lower() == "true",
        )
        # a later duplicate wins, but the first row's position is kept (dict order)
        rows[name] = row
    return list(rows.values()), problems


def write_models_csv(rows: Iterable[TextCsvRow]) -> str:
    """Serialise rows as models.csv (the real file's column order)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        bn = row.parameters_bn
        writer.writerow(
            [
                row.name,
                f"{bn:g}" if bn else "",
                row.display_name,
                row.url,
                row.baseline,
                row.description,
                row.style,
                ", ".join(row.tags),
                row.instruct_format,
                json.dumps(row.settings) if row.settings else "",
            ]
        )
    return out.getvalue()


# --- db.json: a v2 text record's three entries, made as upstream's generator makes them ----------


def size_tag(parameters_bn: float) -> str:
    # Python's round() is round-half-to-even, as the generator's: 7.5 -> 8B, 4.5 -> 4B
    return f"{round(parameters_bn, 0):.0f}B"


def auto_display_name(model_name: str) -> str:
    return " ".join(model_name.replace("-", " ").replace("_", " ").split())


def db_entries(record: TextGenerationRecord) -> Iterator[LegacyTextRecord]:
    """The three db.json entries of one v2 text record: base, aphrodite/, koboldcpp/."""
    base = db_base_entry(record)
    for variant in variant_names(record.name):
        yield attrs.evolve(base, name=variant)


def db_base_entry(record: TextGenerationRecord) -> LegacyTextRecord:
    """The db.json entry of one v2 text record under its own name; its backend variants differ
    from it in `name` only (see `db_entries`)."""
    model_name = model_name_of(record.name)
    tags = set(record.tags or ()) | {size_tag(record.parameters_count / 1_000_000_000)}
    if record.style:
        tags.add(record.style)
    base = LegacyTextRecord(
        name=record.name,
        model_name=model_name,
        baseline=record.baseline or "",
        parameters=record.parameters_count or None,
        description=record.description or "",
        version=record.version or "1",
        style=record.style or "generalist",
        nsfw=record.nsfw,
        display_name=record.display_name or auto_display_name(model_name),
        url=record.url or None,
        tags=sorted(tags),
        instruct_format=record.instruct_format or None,
        settings=record.settings or None,
    )
    return base


def db_base_json(record: TextGenerationRecord) -> dict[str, Any]:
    """`converter.unstructure(db_base_entry(record))`, made directly: the same keys in the same
    order, None values left out, and lists and dicts copied as unstructuring copies them (the
    bulk of a large import's v1 view)."""
    model_name = model_name_of(record.name)
    tags = set(record.tags or ()) | {size_tag(record.parameters_count / 1_000_000_000)}
    if record.style:
        tags.add(record.style)
    entry = {
        "name": record.name,
        "model_name": model_name,
        "baseline": record.baseline or "",
        "parameters": record.parameters_count or None,
        "description": record.description or "",
        "version": record.version or "1",
        "style": record.style or "generalist",
        "nsfw": record.nsfw,
        "display_name": record.display_name or auto_display_name(model_name),
        "url": record.url or None,
        "tags": sorted(tags),
        "instruct_format": record.instruct_format or None,
        "settings": _json_copy(record.settings) if record.settings else None,
    }
    return {k: v for k, v in entry.items() if v is not None}


def _json_copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_json_copy(v) for v in value]
    return value
