"""AI-Horde model reference records and the legacy/v2 conversion, with no service dependencies."""

from .categories import (
    ALL_CATEGORIES,
    CATEGORY_INFO,
    LEGACY_CATEGORIES,
    V2_LISTED_CATEGORIES,
    Category,
    CategoryInfo,
    has_backend_prefix,
)
from .convert import (
    convert_db_json,
    convert_legacy_json,
    convert_models_csv,
    legacy_to_v2,
    legacy_view,
    structure_record,
    unstructure_record,
)
from .problems import Problem
from .records import RECORD_TYPES, ModelRecord
from .serde import converter, make_converter
from .text import is_quantized, text_model_group, variant_names

__all__ = [
    "ALL_CATEGORIES",
    "CATEGORY_INFO",
    "LEGACY_CATEGORIES",
    "RECORD_TYPES",
    "V2_LISTED_CATEGORIES",
    "Category",
    "CategoryInfo",
    "ModelRecord",
    "Problem",
    "convert_db_json",
    "convert_legacy_json",
    "convert_models_csv",
    "converter",
    "has_backend_prefix",
    "is_quantized",
    "legacy_to_v2",
    "legacy_view",
    "make_converter",
    "structure_record",
    "text_model_group",
    "unstructure_record",
    "variant_names",
]
