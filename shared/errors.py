"""Domain errors: raised anywhere, mapped to HTTP status codes once, in shared.http."""

from __future__ import annotations

from typing import Any


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
