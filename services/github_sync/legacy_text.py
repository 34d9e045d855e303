"""The text repository's files: models.csv merged with the PRIMARY's records (unchanged rows kept
verbatim) and db.json regenerated from it exactly as the repository's own converter does."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from attrs import frozen

from horde_model_records.categories import has_backend_prefix
from horde_model_records.text import (
    CSV_COLUMNS,
    auto_display_name,
    model_name_of,
    size_tag,
    variant_names,
)

from .legacy_json import canonical

Json = dict[str, Any]

COLUMNS = CSV_COLUMNS  # models.csv's columns, as the records package writes them
#: the durable text metadata columns EXPORT_TEXT_METADATA_COLUMNS adds after COLUMNS, each a JSON
#: object; the repository's converter does not know them, so they are off by default (spec 08 §6.2)
METADATA_COLUMNS = ("context_window", "interaction_modes", "capabilities")
#: the only column whose old cell survives an empty PRIMARY value (as upstream's merge does)
KEEP_WHEN_EMPTY = frozenset({"instruct_format"})
DEFAULT_STYLE = "generalist"


class TextFormatError(ValueError):
    """models.csv cannot be converted (the repository's converter would refuse it too)."""


# --- the repository's converter: rows -> db.json ---------------------------------------------------


def _tags(cell: str) -> list[str]:
    return [t.strip() for t in cell.split(",") if t.strip()]


def _metadata_cell(name: str, column: str, cell: str) -> Json | None:
    if not cell.strip():
        return None
    try:
        value = json.loads(cell)
    except json.JSONDecodeError:
        raise TextFormatError(f"{name}: {column} is not JSON") from None
    if not isinstance(value, dict):
        raise TextFormatError(f"{name}: {column} is not a JSON object")
    return value or None


def convert_row(cells: Mapping[str, str], *, metadata: bool = False) -> list[Json]:
    """The db.json entries of one models.csv row (base, aphrodite/, koboldcpp/), or [] for a row
    the converter skips; TextFormatError for one it refuses. `metadata`: also carry the
    METADATA_COLUMNS (after settings), else they are ignored as the converter does."""
    name = (cells.get("name") or "").strip()
    if not name or "://" in name:
        return []
    raw_bn = (cells.get("parameters_bn") or "").strip()
    try:
        bn = float(raw_bn)
    except ValueError:
        raise TextFormatError(f"{name}: parameters_bn {raw_bn!r} is not a number") from None
    settings_cell = (cells.get("settings") or "").strip()
    try:
        settings = json.loads(settings_cell) if settings_cell else None
    except json.JSONDecodeError:
        raise TextFormatError(f"{name}: settings is not JSON") from None
    model_name = model_name_of(name)
    style = cells.get("style") or ""
    tags = set(_tags(cells.get("tags") or "")) | {size_tag(bn)}
    if style:
        tags.add(style)
    entry: Json = {
        "name": name,
        "model_name": model_name,
        "baseline": cells.get("baseline") or "",
        "parameters": int(bn * 1_000_000_000) or None,
        "description": cells.get("description") or "",
        "version": "1",
        "style": style or DEFAULT_STYLE,
        "nsfw": False,
        "display_name": cells.get("display_name") or auto_display_name(model_name),
    }
    if cells.get("url"):
        entry["url"] = cells["url"]
    entry["tags"] = sorted(tags)
    if cells.get("instruct_format"):
        entry["instruct_format"] = cells["instruct_format"]
    if settings:
        entry["settings"] = settings
    for column in METADATA_COLUMNS if metadata else ():
        value = _metadata_cell(name, column, cells.get(column) or "")
        if value is not None:
            entry[column] = value
    return [{**entry, "name": variant} for variant in variant_names(name)]


def convert_rows(rows: Sequence[Mapping[str, str]], *, metadata: bool = False) -> dict[str, Json]:
    """db.json's content: a repeated name keeps its first place and takes its last row's values."""
    db: dict[str, Json] = {}
    for cells in rows:
        for entry in convert_row(cells, metadata=metadata):
            db[entry["name"]] = entry
    return db


def render_db_json(db: Mapping[str, Json]) -> str:
    return json.dumps(db, indent=4) + "\n"


# --- models.csv, cut into its rows' exact text ---------------------------------------------------


@frozen
class CsvRow:
    cells: dict[str, str]
    raw: str  # the row's exact text, line terminator included

    @property
    def name(self) -> str:
        return (self.cells.get("name") or "").strip()


@frozen
class CsvLayout:
    header: tuple[str, ...]
    header_raw: str
    rows: tuple[CsvRow, ...]
    terminator: str
    final_newline: bool


class _Lines:
    """Feeds csv.reader line by line and remembers the lines each record took."""

    def __init__(self, text: str) -> None:
        self._lines: Iterator[str] = iter(re.findall(r"[^\n]*\n|[^\n]+$", text))
        self.taken: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken.append(line)
        return line

    def take(self) -> str:
        raw = "".join(self.taken)
        self.taken.clear()
        return raw


def parse_csv(text: str) -> CsvLayout:
    lines = _Lines(text)
    reader = csv.reader(lines)
    try:
        header = tuple(next(reader))
    except StopIteration:
        header = COLUMNS
    header_raw = lines.take() or ",".join(COLUMNS) + "\r\n"  # a repository without the file
    if "name" not in header:
        raise TextFormatError("models.csv has no name column")
    rows = []
    for cells in reader:
        rows.append(CsvRow(dict(zip(header, cells, strict=False)), lines.take()))
    terminator = "\r\n" if header_raw.endswith("\r\n") else "\n"
    return CsvLayout(header, header_raw, tuple(rows), terminator, text.endswith("\n"))


# --- v2 records -> rows, merged into the repository's CSV ----------------------------------------


def _number(bn: float) -> str:
    return str(int(bn)) if bn.is_integer() else repr(bn)


def record_cells(record: Mapping[str, Any], *, metadata: bool = False) -> dict[str, str] | None:
    """A v2 text record as a models.csv row (None for a name the CSV cannot hold); `metadata`
    adds the METADATA_COLUMNS, each a JSON object or empty."""
    name = str(record.get("name") or "")
    if not name or has_backend_prefix(name) or "://" in name:
        return None
    parameters = record.get("parameters", record.get("parameters_count"))
    bn = parameters / 1_000_000_000 if isinstance(parameters, int | float) else None
    tags = [str(t) for t in record.get("tags") or []]
    style = str(record.get("style") or "")
    size = size_tag(bn) if bn is not None else None
    # A record carrying the derived tags (upstream's PRIMARY stores them) shows a written
    # "generalist" among its tags, so one that is not there is the converter's default. Ours
    # keep models.csv's own cells: there "generalist" is what the row says.
    if style == DEFAULT_STYLE and DEFAULT_STYLE not in tags and size in tags:
        style = ""
    auto_tags = {tag for tag in (style, size) if tag}
    display_name = str(record.get("display_name") or "")
    if display_name == auto_display_name(model_name_of(name)):
        display_name = ""
    settings = record.get("settings")
    cells = {
        "name": name,
        "parameters_bn": "" if bn is None else _number(bn),
        "display_name": display_name,
        "url": str(record.get("url") or ""),
        "baseline": str(record.get("baseline") or ""),
        "description": str(record.get("description") or ""),
        "style": style,
        "tags": ",".join(t for t in tags if t not in auto_tags),
        "instruct_format": str(record.get("instruct_format") or ""),
        "settings": json.dumps(settings) if settings else "",
    }
    for column in METADATA_COLUMNS if metadata else ():
        value = record.get(column)
        cells[column] = json.dumps(value) if isinstance(value, dict) and value else ""
    return cells


def project(records: Mapping[str, Mapping[str, Any]], *, metadata: bool = False) -> dict[str, Json]:
    """The db.json the PRIMARY's v2 records make (the guard compares it with the v1 view)."""
    rows = [
        cells for r in records.values() if (cells := record_cells(r, metadata=metadata)) is not None
    ]
    return convert_rows(rows, metadata=metadata)


def _render_row(header: tuple[str, ...], cells: Mapping[str, str], terminator: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    writer.writerow([cells.get(column, "") for column in header])
    return out.getvalue()


def _same(a: Mapping[str, str], b: Mapping[str, str], metadata: bool) -> bool:
    try:
        return canonical(convert_row(a, metadata=metadata)) == canonical(
            convert_row(b, metadata=metadata)
        )
    except TextFormatError:
        return False


def _with_metadata_header(layout: CsvLayout) -> tuple[tuple[str, ...], str]:
    """The header and its text once the METADATA_COLUMNS it lacks are appended."""
    missing = tuple(c for c in METADATA_COLUMNS if c not in layout.header)
    if not missing:
        return layout.header, layout.header_raw
    body = layout.header_raw.rstrip("\r\n")
    ending = layout.header_raw[len(body) :] or layout.terminator
    return layout.header + missing, body + "," + ",".join(missing) + ending


def merge_csv(
    layout: CsvLayout, records: Mapping[str, Mapping[str, Any]], *, metadata: bool = False
) -> str:
    """models.csv holding the PRIMARY's records: rows whose converted entries do not change keep
    their bytes, changed rows are rendered again, absent models are dropped, new ones appended.
    `metadata`: the METADATA_COLUMNS are written too (appended to a header that lacks them)."""
    wanted = {
        c["name"]: c
        for r in records.values()
        if (c := record_cells(r, metadata=metadata)) is not None
    }
    last_row = {row.name: i for i, row in enumerate(layout.rows) if row.name}
    header, header_raw = (
        _with_metadata_header(layout) if metadata else (layout.header, layout.header_raw)
    )
    parts = [header_raw]
    for i, row in enumerate(layout.rows):
        name = row.name
        if not name or "://" in name:
            parts.append(row.raw)  # blank lines and rows the converter skips: not ours to touch
            continue
        if name not in wanted:
            continue
        if last_row[name] != i:
            parts.append(row.raw)  # an earlier duplicate: its values never reach db.json
            continue
        merged = dict(row.cells)
        for column, value in wanted[name].items():
            if value or column not in KEEP_WHEN_EMPTY:
                merged[column] = value
        if _same(merged, row.cells, metadata):
            parts.append(row.raw)
        else:
            ending = layout.terminator if row.raw.endswith("\n") else ""
            parts.append(_render_row(header, merged, ending))
    for name, cells in wanted.items():
        if name not in last_row:
            if not parts[-1].endswith("\n"):
                parts[-1] += layout.terminator
            parts.append(_render_row(header, cells, layout.terminator))
    text = "".join(parts)
    if not layout.final_newline and text.endswith(layout.terminator):
        text = text[: -len(layout.terminator)]
    return text


def rows_of(text: str) -> list[dict[str, str]]:
    return [row.cells for row in parse_csv(text).rows]


def render_text_files(
    models_csv: str, records: Mapping[str, Mapping[str, Any]], *, metadata: bool = False
) -> tuple[str, str, dict[str, Json]]:
    """(models.csv, db.json, db.json's entries) for the PRIMARY's v2 text records; `metadata`:
    with the METADATA_COLUMNS (EXPORT_TEXT_METADATA_COLUMNS)."""
    merged = merge_csv(parse_csv(models_csv), records, metadata=metadata)
    db = convert_rows(rows_of(merged), metadata=metadata)
    return merged, render_db_json(db), db
