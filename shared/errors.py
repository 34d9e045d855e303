"""Domain errors: raised anywhere, mapped to HTTP status codes once, in shared.http."""

from __future__ import annotations

from typing import Any

from cattrs import (
    BaseValidationError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from horde_model_records.validation import WIRE_NAMES, FieldError

JsonObject = dict[str, Any]


class ServiceError(Exception):
    """Base of the domain errors; `detail` is what the client reads."""

    def __init__(self, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(ServiceError):
    """The request is understood but asks for something impossible (400)."""


class Unauthorized(ServiceError):
    """No usable credentials (401)."""


class Forbidden(ServiceError):
    """Valid credentials without the needed role (403)."""


class NotFound(ServiceError):
    """The thing asked for does not exist (404)."""


class Conflict(ServiceError):
    """The change clashes with the current state (409)."""


class InvalidInput(ServiceError):
    """A path, query or body value fails validation (422); detail is a string or a list of errors."""


class BadGateway(ServiceError):
    """An upstream this answer depends on has never answered (502)."""


class Unavailable(ServiceError):
    """The deployment cannot do this now or at all (503)."""


def validation_item(
    kind: str, loc: list[str | int], msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One entry of the FastAPI-compatible 422 list envelope."""
    item: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        item["ctx"] = ctx
    return item


class InputError(ValueError):
    """A field validator's complaint, with a FastAPI-style error type and context."""

    def __init__(
        self,
        kind: str,
        message: str,
        ctx: JsonObject | None = None,
        field: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.ctx = ctx
        self.field = field  # set when a validator raised it (attrs does not say which field)
        self.value = value

    def at(self, field: str, value: Any = None) -> InputError:
        return InputError(self.kind, str(self), self.ctx, field, _shown(value))


def _shown(value: Any) -> Any:
    """The offending input as echoed back: long strings cut, containers summarised."""
    if isinstance(value, str):
        return value if len(value) <= 64 else value[:64] + "…"
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    return value


# --- validation errors as FastAPI-style items --------------------------------------------------------


def _item(loc: list[str | int], exc: BaseException, value: Any = None) -> JsonObject:
    if isinstance(exc, InputError):
        where = loc if exc.field is None else [*loc, exc.field]
        item: JsonObject = {"type": exc.kind, "loc": where, "msg": str(exc), "input": exc.value}
        if exc.ctx is not None:
            item["ctx"] = exc.ctx
        return item
    if isinstance(exc, KeyError):
        return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}
    kind = "value_error" if isinstance(exc, ValueError) else "type_error"
    return {"type": kind, "loc": loc, "msg": str(exc) or exc.__class__.__name__, "input": value}


def validation_items(exc: BaseException, loc: list[str | int]) -> list[JsonObject]:
    """Every problem in a cattrs validation error, each located under `loc`."""
    if isinstance(exc, ForbiddenExtraKeysError):
        return [
            {"type": "extra_forbidden", "loc": [*loc, key], "msg": "Unknown field", "input": None}
            for key in sorted(exc.extra_fields)
        ]
    if isinstance(exc, FieldError):
        return [_item([*loc, exc.field], exc)]
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        out: list[JsonObject] = []
        for inner, note in with_notes:
            out += validation_items(inner, [*loc, WIRE_NAMES.get(note.name, note.name)])
        for inner in without:
            out += validation_items(inner, loc)
        return out
    if isinstance(exc, IterableValidationError):
        with_indexes, rest = exc.group_exceptions()
        found: list[JsonObject] = []
        for inner, index_note in with_indexes:
            found += validation_items(inner, [*loc, index_note.index])
        for inner in rest:
            found += validation_items(inner, loc)
        return found
    if isinstance(exc, BaseValidationError):
        return [item for inner in exc.exceptions for item in validation_items(inner, loc)]
    return [_item(loc, exc)]
