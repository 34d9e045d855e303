"""Resolving the category path segment, with each route family's own error shape."""

from __future__ import annotations

from horde_model_records import Category
from shared.errors import InvalidInput
from shared.query import category_or_unknown, category_param


def v2_category(raw: str, loc: str = "model_category_name") -> Category:
    """A v2 path category; unknown ones are a 422 in the list envelope (no v1 aliases)."""
    return category_param(raw, loc)


def v1_category(raw: str) -> Category:
    """A v1 path category: db.json, a trailing .json and stable_diffusion are accepted."""
    name = raw
    if name == "db.json":
        return Category.text_generation
    name = name.removesuffix(".json")
    if name == "stable_diffusion":
        return Category.image_generation
    try:
        return Category(name)
    except ValueError:
        raise InvalidInput(
            f"Invalid model category: '{raw}'. '{raw}' is not a valid MODEL_REFERENCE_CATEGORY"
        ) from None


def search_category(raw: str) -> Category:
    """A search path category; unknown ones are a 422 with a string detail."""
    return category_or_unknown(raw)
