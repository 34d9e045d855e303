"""The one cattrs converter: every structure/unstructure hook is registered in make_converter()."""

from __future__ import annotations

import enum
from typing import Any

import attrs
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter as make_json_converter

from . import legacy, records
from .records import WIRE_RENAMES

_ATTRS_MODULES = (records, legacy)


def _strict(expected: type, name: str) -> Any:
    """JSON primitives are taken as they are: no str(3), no bool("false")."""

    def structure(value: Any, _type: Any) -> Any:
        # bool is an int subclass; a JSON true is never an integer field
        if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
            return value
        raise TypeError(f"expected {name}, got {type(value).__name__} {value!r}")

    return structure


def _structure_float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected number, got {type(value).__name__} {value!r}")
    return float(value)


def _drop_nulls(data: Any) -> Any:
    # A null means "absent": the field's default applies, a required one is reported missing.
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


def _text_parameters(data: Any) -> Any:
    """Accept `parameters_count` for `parameters`; coerce numeric strings and floats (spec 01 §7.1)."""
    if not isinstance(data, dict):
        return data
    if "parameters" not in data and "parameters_count" in data:
        data = {**data, "parameters": data["parameters_count"]}
    value = data.get("parameters")
    if isinstance(value, bool):
        return data
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return data
    if isinstance(value, float) and value.is_integer():
        data = {**data, "parameters": int(value)}
    return data


def _attrs_classes() -> list[type]:
    found: list[type] = []
    for module in _ATTRS_MODULES:
        for obj in vars(module).values():
            if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def make_converter() -> Converter:
    """Build the converter: strict primitives, nulls omitted on output, `parameters` on the wire."""
    conv = make_json_converter(forbid_extra_keys=False)  # spec 01 §4: unknown keys are dropped
    conv.register_structure_hook(str, _strict(str, "string"))
    conv.register_structure_hook(int, _strict(int, "integer"))
    conv.register_structure_hook(bool, _strict(bool, "boolean"))
    conv.register_structure_hook(float, _structure_float)
    # StrEnum comes before str in its MRO, so enums keep their own handling
    conv.register_structure_hook(enum.StrEnum, lambda value, cls: cls(value))

    for cls in _attrs_classes():
        renames = {
            a.name: override(rename=WIRE_RENAMES[a.name])
            for a in attrs.fields(cls)
            if a.name in WIRE_RENAMES
        }
        structure = make_dict_structure_fn(cls, conv, **renames)
        unstructure = make_dict_unstructure_fn(cls, conv, **renames)
        pre = _drop_nulls
        if cls is records.TextGenerationRecord:
            pre = lambda d: _text_parameters(_drop_nulls(d))  # noqa: E731 -- tiny composition

        conv.register_structure_hook(cls, lambda d, _t, s=structure, p=pre: s(p(d), _t))
        conv.register_unstructure_hook(
            cls, lambda o, u=unstructure: {k: v for k, v in u(o).items() if v is not None}
        )
    return conv


converter = make_converter()
