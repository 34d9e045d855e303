"""Query-string parsing that collects every problem into one FastAPI-shaped 422."""

from __future__ import annotations

from typing import Any

from multidict import MultiMapping

from horde_model_records import Category

from .errors import InvalidInput, validation_item

BOOL_TRUE = frozenset({"true", "1", "yes", "on"})
BOOL_FALSE = frozenset({"false", "0", "no", "off"})


class QueryParser:
    """Reads query parameters, collecting every problem before raising one 422."""

    def __init__(self, query: MultiMapping[str], max_text: int = 256, max_items: int = 64) -> None:
        self.query = query
        self.max_text = max_text
        self.max_items = max_items
        self.errors: list[dict[str, Any]] = []

    def _last(self, name: str) -> str | None:
        values = self.query.getall(name, [])
        return values[-1] if values else None

    def text(self, name: str) -> str | None:
        raw = self._last(name)
        if raw is not None and len(raw) > self.max_text:
            self.errors.append(
                validation_item(
                    "string_too_long",
                    ["query", name],
                    f"String should have at most {self.max_text} characters",
                    raw[:64] + "…",
                    {"max_length": self.max_text},
                )
            )
            return None
        return raw

    def texts(self, name: str) -> tuple[str, ...]:
        values = self.query.getall(name, [])
        if len(values) > self.max_items:
            self.errors.append(
                validation_item(
                    "too_long",
                    ["query", name],
                    f"List should have at most {self.max_items} items",
                    len(values),
                    {"max_length": self.max_items},
                )
            )
            return ()
        for value in values:
            if len(value) > self.max_text:
                self.errors.append(
                    validation_item(
                        "string_too_long",
                        ["query", name],
                        f"String should have at most {self.max_text} characters",
                        value[:64] + "…",
                        {"max_length": self.max_text},
                    )
                )
                return ()
        return tuple(values)

    def boolean(self, name: str) -> bool | None:
        raw = self._last(name)
        if raw is None:
            return None
        if raw.lower() in BOOL_TRUE:
            return True
        if raw.lower() in BOOL_FALSE:
            return False
        self.errors.append(
            validation_item(
                "bool_parsing",
                ["query", name],
                "Input should be a valid boolean, unable to interpret input",
                raw[: self.max_text],
            )
        )
        return None

    def integer(self, name: str, default: int, ge: int, le: int | None = None) -> int:
        raw = self._last(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip()) if len(raw) <= 20 else int("x")
        except ValueError:
            self.errors.append(
                validation_item(
                    "int_parsing",
                    ["query", name],
                    "Input should be a valid integer, unable to parse string as an integer",
                    raw[: self.max_text],
                )
            )
            return default
        if value < ge:
            self.errors.append(
                validation_item(
                    "greater_than_equal",
                    ["query", name],
                    f"Input should be greater than or equal to {ge}",
                    raw,
                    {"ge": ge},
                )
            )
        elif le is not None and value > le:
            self.errors.append(
                validation_item(
                    "less_than_equal",
                    ["query", name],
                    f"Input should be less than or equal to {le}",
                    raw,
                    {"le": le},
                )
            )
        return value

    def choices(self, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        """A repeatable parameter whose values must come from `allowed`."""
        values = self.texts(name)
        for value in values:
            if value not in allowed:
                expected = ", ".join(f"'{a}'" for a in allowed)
                self.errors.append(
                    validation_item(
                        "enum",
                        ["query", name],
                        f"Input should be {expected}",
                        value,
                        {"expected": expected},
                    )
                )
                return ()
        return values

    def check(self) -> None:
        """Raise the collected problems as one 422."""
        if self.errors:
            raise InvalidInput(self.errors)


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
