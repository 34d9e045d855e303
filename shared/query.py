"""The category path segment, in the error shapes of the route families that take it."""

from __future__ import annotations

from horde_model_records import Category

from .errors import InvalidInput, validation_item

_CATEGORY_NAMES = [c.value for c in Category]
_CATEGORY_EXPECTED = (
    ", ".join(f"'{n}'" for n in _CATEGORY_NAMES[:-1]) + f" or '{_CATEGORY_NAMES[-1]}'"
)


def category_param(raw: str, loc: str) -> Category:
    """A category path parameter; unknown ones are a 422 enum error in the list envelope."""
    try:
        return Category(raw)
    except ValueError:
        raise InvalidInput(
            [
                validation_item(
                    "enum",
                    ["path", loc],
                    f"Input should be {_CATEGORY_EXPECTED}",
                    raw,
                    {"expected": _CATEGORY_EXPECTED},
                )
            ]
        ) from None


def category_or_unknown(raw: str) -> Category:
    """A category where upstream answers a plain-string 422 (search, popular)."""
    try:
        return Category(raw)
    except ValueError:
        raise InvalidInput(f"Unknown category '{raw}'. Valid: {_CATEGORY_NAMES}") from None
