"""Bodies to typed records: v2 documents, PRIMARY v1 views and GitHub legacy files (refuse bad ones).

A body is accepted only when it is a complete document: a JSON object (or a models.csv that ends
with a line break) from which at least one record survives when it has any. One bad record is
skipped with a warning, like the services do; an error page or a truncated body is refused whole.
The conversion itself is horde_model_records'.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import cattrs
from attrs import field, frozen

from horde_model_records import (
    Category,
    ModelRecord,
    Problem,
    convert_db_json,
    convert_legacy_json,
    convert_models_csv,
    legacy_keys,
    structure_record,
    unstructure_record,
)
from horde_model_records.served import stored_fields

from ._errors import InvalidBody

logger = logging.getLogger("horde_model_replica")

Json = dict[str, Any]


@frozen
class CategoryPayload:
    """A validated category: typed records, the v2 JSON they came from and its bytes."""

    records: Mapping[str, ModelRecord]
    raw: Mapping[str, Any]  # the v2 document (what get_raw_model_reference_json returns)
    document: bytes  # the v2 document's bytes, as written to disk
    legacy: bytes | None = None  # the legacy file as downloaded (GitHub only)
    # another spelling -> record name: a legacy key that differs from its record's name (the
    # controlnet file keys control_qr_xl as control_qr_sdxl); only conversions know them
    aliases: Mapping[str, str] = field(factory=dict)


def _json_object(body: bytes, what: str) -> Json:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        preview = body[:60].decode("utf-8", "replace")
        raise InvalidBody(f"{what} is not JSON ({exc}); starts with {preview!r}") from None
    if not isinstance(data, dict):
        raise InvalidBody(f"{what} is a JSON {type(data).__name__}, not an object of models")
    return data


def _report(problems: Iterable[Problem], what: str) -> None:
    for problem in problems:
        if problem.fatal:
            raise InvalidBody(f"{what}: {problem}")
        logger.warning("%s: %s", what, problem)


def _refuse_if_emptied(given: int, kept: int, what: str) -> None:
    if given and not kept:
        raise InvalidBody(f"{what}: none of its {given} entries is a valid record")


def _converted(
    records: Mapping[str, ModelRecord],
    legacy: bytes | None = None,
    view: Json | None = None,
) -> CategoryPayload:
    raw = {name: unstructure_record(record) for name, record in records.items()}
    document = json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()
    aliases = {} if view is None else {key: name for name, key in legacy_keys(view).items()}
    aliases = {key: name for key, name in aliases.items() if name in records}
    return CategoryPayload(
        records=records, raw=raw, document=document, legacy=legacy, aliases=aliases
    )


def _structure_all(category: Category, raw: Json, what: str) -> dict[str, ModelRecord]:
    records: dict[str, ModelRecord] = {}
    for name, value in raw.items():
        try:
            # the licensing default and text guidance a read adds are not record data
            stored = stored_fields(value) if isinstance(value, dict) else value
            records[name] = structure_record(category, stored)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            # one bad record costs that record (with a warning), not the whole category
            logger.warning("%s: model %r skipped: %s", what, name, exc)
    _refuse_if_emptied(len(raw), len(records), what)
    return records


def decode_v2(category: Category, body: bytes, what: str = "v2 document") -> CategoryPayload:
    """A v2 category document (`{name: record}`); defaults are filled for sparse records."""
    raw = _json_object(body, what)
    return CategoryPayload(records=_structure_all(category, raw, what), raw=raw, document=body)


def decode_pending(
    category: Category, body: bytes, what: str = "pending models"
) -> dict[str, ModelRecord]:
    """The beta models of a category (`{name: v2 record}`), each record named by its key."""
    raw = {
        name: {**value, "name": name} if isinstance(value, dict) else value
        for name, value in _json_object(body, what).items()
    }
    return _structure_all(category, raw, what)


def decode_v1(category: Category, body: bytes, what: str = "v1 document") -> CategoryPayload:
    """A PRIMARY v1 view converted to v2 (text: db.json shape, backend-prefixed keys dropped)."""
    data = _json_object(body, what)
    if category is Category.text_generation:
        records, problems = convert_db_json(data, what)
        view = None
    else:
        records, _kept, problems = convert_legacy_json(category, data, what)
        view = data
    _report(problems, what)
    _refuse_if_emptied(len(data), len(records), what)
    return _converted(records, view=view)


def decode_legacy_file(category: Category, body: bytes, what: str) -> CategoryPayload:
    """A GitHub legacy file converted to v2 (text: models.csv)."""
    if category is Category.text_generation:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidBody(f"{what} is not UTF-8 ({exc})") from None
        # a CSV cut short still parses; the real file ends every row with a line break
        if not text.endswith(("\n", "\r")):
            raise InvalidBody(f"{what} does not end with a line break (truncated?)")
        records, problems = convert_models_csv(text, what)
        _report(problems, what)
        _refuse_if_emptied(text.count("\n") - 1, len(records), what)
        return _converted(records, legacy=body)
    data = _json_object(body, what)
    records, _kept, problems = convert_legacy_json(category, data, what)
    _report(problems, what)
    _refuse_if_emptied(len(data), len(records), what)
    return _converted(records, legacy=body, view=data)
