"""Validation errors as (path, message) pairs that name the field, for logs and 422 bodies."""

from __future__ import annotations

from typing import Any

from cattrs import BaseValidationError, ClassValidationError, IterableValidationError
from cattrs.v import format_exception

#: python attribute -> wire key where they differ (kept here to avoid an import cycle)
WIRE_NAMES = {"parameters_count": "parameters"}


class FieldError(ValueError):
    """An attrs validator's complaint about one field; the message is meant for people."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _message(exc: BaseException, type_: Any = None) -> str:
    if isinstance(exc, ValueError) and str(exc) and not isinstance(exc, BaseValidationError):
        return str(exc)
    return format_exception(exc, type_)


def validation_errors(exc: BaseException, path: str = "$") -> list[tuple[str, str]]:
    """Flatten a cattrs validation error into (JSON path, message), e.g. ("$.baseline", "...")."""
    if isinstance(exc, FieldError):
        return [(f"{path}.{exc.field}", str(exc))]
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        out: list[tuple[str, str]] = []
        for inner, note in with_notes:
            sub = f"{path}.{WIRE_NAMES.get(note.name, note.name)}"
            if isinstance(inner, BaseValidationError):
                out += validation_errors(inner, sub)
            else:
                out.append((sub, _message(inner, note.type)))
        for inner in without:
            out += validation_errors(inner, path)
        return out
    if isinstance(exc, IterableValidationError):
        indexed, unindexed = exc.group_exceptions()
        out = []
        for inner, item in indexed:
            out += validation_errors(inner, f"{path}[{item.index}]")
        for inner in unindexed:
            out += validation_errors(inner, path)
        return out
    if isinstance(exc, BaseValidationError):
        return [e for inner in exc.exceptions for e in validation_errors(inner, path)]
    return [(path, _message(exc))]
