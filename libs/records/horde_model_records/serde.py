"""The one cattrs converter: every structure/unstructure hook is registered in make_converter()."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter as make_json_converter

from . import legacy, licensing, records, text_claims
from .records import WIRE_RENAMES
from .unknown import report_unknown

# nested classes first: a generated function binds the hooks of its fields when it is made
_ATTRS_MODULES = (licensing, text_claims, records, legacy)


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
    """Take `parameters_count` for `parameters`; a whole number as string or float becomes int."""
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


def _text_pre(data: Any) -> Any:
    data = _text_parameters(_drop_nulls(data))
    if isinstance(data, dict) and "guidance" in data:
        # derived on reads from the guidance catalog: accepted on input, never stored
        data = {k: v for k, v in data.items() if k != "guidance"}
    return data


#: the attribute of a record that keeps the fields this version does not know
UNKNOWN = "unknown_fields"


def _wire_keys(cls: type[Any]) -> frozenset[str]:
    keys = {WIRE_RENAMES.get(a.name, a.name) for a in attrs.fields(cls) if a.name != UNKNOWN}
    if cls is records.TextGenerationRecord:
        keys.add("parameters_count")  # the other spelling _text_parameters accepts
    return frozenset(keys)


def _structure_hook(
    cls: type[Any], structure: Callable[[Mapping[str, Any], Any], Any], pre: Callable[[Any], Any]
) -> Callable[[Any, Any], Any]:
    """The generated structure function, given the payload once `pre` has cleaned it; a record
    keeps the keys its class does not have in `unknown_fields` (reported once each)."""
    keeps = any(a.name == UNKNOWN for a in attrs.fields(cls))
    known = _wire_keys(cls)

    def hook(data: Any, type_: Any) -> Any:
        data = pre(data)
        if not keeps or not isinstance(data, dict):
            return structure(data, type_)
        unknown = {k: v for k, v in data.items() if k not in known}
        if not unknown:
            return structure(data, type_)
        for key in unknown:
            report_unknown(f"field of {cls.__name__}", key)
        record = structure({k: v for k, v in data.items() if k in known}, type_)
        return attrs.evolve(record, **{UNKNOWN: unknown})

    return hook


def _unstructure_hook(
    unstructure: Callable[[Any], dict[str, Any]],
) -> Callable[[Any], dict[str, Any]]:
    """The generated unstructure function, with null values left out and unknown fields back."""

    def hook(obj: Any) -> dict[str, Any]:
        out = {k: v for k, v in unstructure(obj).items() if v is not None}
        for key, value in getattr(obj, UNKNOWN, {}).items():
            out.setdefault(key, value)
        return out

    return hook


def _is_optional(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) in (Union, UnionType) and len(args) == 2 and NoneType in args


def _unstructure_optional(conv: Converter, type_: Any) -> Callable[[Any], Any]:
    """`X | None` of an X written as it is (str, int, bool, float) is written as it is too: the
    generated functions then read such fields inline instead of calling a wrapper for each."""
    other = next(a for a in get_args(type_) if a is not NoneType)
    if conv.get_unstructure_hook(other) == identity:
        return identity
    return conv.gen_unstructure_optional(type_)


def _attrs_classes() -> list[type[Any]]:
    found: list[type[Any]] = []
    for module in _ATTRS_MODULES:
        for obj in vars(module).values():
            if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def make_converter() -> Converter:
    """Build the converter: strict primitives, nulls omitted on output, `parameters` on the wire."""
    # unknown keys are not refused: a record keeps them (see _structure_hook), a nested part
    # drops them, so a document with fields this version lacks still loads
    conv = make_json_converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "string"))
    conv.register_structure_hook(int, _strict(int, "integer"))
    conv.register_structure_hook(bool, _strict(bool, "boolean"))
    conv.register_structure_hook(float, _structure_float)
    # StrEnum comes before str in its MRO, so enums keep their own handling
    conv.register_structure_hook(enum.StrEnum, lambda value, cls: cls(value))

    # before the classes' functions are generated: they bind their fields' hooks when made
    conv.register_unstructure_hook_factory(_is_optional, lambda t: _unstructure_optional(conv, t))

    for cls in _attrs_classes():
        # Any, not AttributeOverride: mypy matches a ** dict against every keyword parameter,
        # cattrs' _cattrs_* flags included
        renames: dict[str, Any] = {
            a.name: override(rename=WIRE_RENAMES[a.name])
            for a in attrs.fields(cls)
            if a.name in WIRE_RENAMES
        }
        if any(a.name == UNKNOWN for a in attrs.fields(cls)):
            renames[UNKNOWN] = override(omit=True)
        pre = _text_pre if cls is records.TextGenerationRecord else _drop_nulls
        structure = make_dict_structure_fn(cls, conv, **renames)
        unstructure = make_dict_unstructure_fn(cls, conv, **renames)
        conv.register_structure_hook(cls, _structure_hook(cls, structure, pre))
        conv.register_unstructure_hook(cls, _unstructure_hook(unstructure))
    return conv


@functools.cache
def get_converter() -> Converter:
    """The converter, built on first use (about 100 ms: a process that only reads snapshots,
    such as a read replica, need not pay it before it answers)."""
    return make_converter()


if TYPE_CHECKING:
    converter: Converter


def __getattr__(name: str) -> Any:
    if name == "converter":  # `from horde_model_records.serde import converter` builds it
        return get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_catalog_converter() -> Converter:
    """The converter of the catalogs (licence definitions, assets, image baselines, guidance):
    strict primitives, unknown keys refused and nulls kept, as the catalogs' wire shape has them
    (a record's nested licensing goes through `converter`, nulls left out)."""
    conv = make_json_converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "string"))
    conv.register_structure_hook(int, _strict(int, "integer"))
    conv.register_structure_hook(bool, _strict(bool, "boolean"))
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(enum.StrEnum, lambda value, cls: cls(value))
    return conv


catalog_converter = make_catalog_converter()
