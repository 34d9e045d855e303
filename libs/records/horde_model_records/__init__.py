"""AI-Horde model reference records and the legacy/v2 conversion, with no service dependencies."""

from typing import TYPE_CHECKING

from .categories import (
    ALL_CATEGORIES,
    CATEGORY_INFO,
    LEGACY_CATEGORIES,
    V2_LISTED_CATEGORIES,
    Category,
    CategoryInfo,
    has_backend_prefix,
)
from .problems import Problem
from .records import RECORD_TYPES, ModelRecord

# The converter (cattrs hooks for every class) and the conversion code cost ~60 ms to import;
# a read replica needs neither to start, so they load on first use (PEP 562). Type checkers
# never run __getattr__: they read the same names from the imports below, so every consumer
# sees the real signatures. _LAZY and these imports name the same things (a test checks).
if TYPE_CHECKING:
    from .convert import (
        convert_db_json,
        convert_legacy_json,
        convert_models_csv,
        legacy_keys,
        legacy_to_v2,
        legacy_view,
        structure_record,
        unstructure_record,
    )
    from .names import (
        NameFormat,
        ParsedName,
        compose_name,
        group_key,
        infer_name_format,
        parse_name,
        size_key,
    )
    from .serde import converter, make_converter
    from .text import is_quantized, text_model_group, variant_names

_LAZY = {
    "convert_db_json": ".convert",
    "convert_legacy_json": ".convert",
    "convert_models_csv": ".convert",
    "legacy_keys": ".convert",
    "legacy_to_v2": ".convert",
    "legacy_view": ".convert",
    "structure_record": ".convert",
    "unstructure_record": ".convert",
    "NameFormat": ".names",
    "ParsedName": ".names",
    "compose_name": ".names",
    "group_key": ".names",
    "infer_name_format": ".names",
    "parse_name": ".names",
    "size_key": ".names",
    "converter": ".serde",
    "make_converter": ".serde",
    "is_quantized": ".text",
    "text_model_group": ".text",
    "variant_names": ".text",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ALL_CATEGORIES",
    "CATEGORY_INFO",
    "LEGACY_CATEGORIES",
    "RECORD_TYPES",
    "V2_LISTED_CATEGORIES",
    "Category",
    "CategoryInfo",
    "ModelRecord",
    "NameFormat",
    "ParsedName",
    "Problem",
    "compose_name",
    "convert_db_json",
    "convert_legacy_json",
    "convert_models_csv",
    "converter",
    "group_key",
    "has_backend_prefix",
    "infer_name_format",
    "is_quantized",
    "legacy_keys",
    "legacy_to_v2",
    "legacy_view",
    "make_converter",
    "parse_name",
    "size_key",
    "structure_record",
    "text_model_group",
    "unstructure_record",
    "variant_names",
]
