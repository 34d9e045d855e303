"""Request bodies, query strings and answers as attrs classes: one converter in, one out.

A service declares what a route takes and gives as `@frozen` classes; `read_body` and `read_query`
structure the request into them (a mismatch is a 422 listing every problem with its location),
and `respond` unstructures an answer. Limits live on the fields (`text`, `integer`, `items`): the
same declaration validates the request and is copied into the OpenAPI document by shared.openapi,
so a limit is written once.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from aiohttp import web
from cattrs import BaseValidationError, Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

#: a JSON object whose shape this service does not own (a record payload, an audit payload)
from .errors import BadRequest, InputError, InvalidInput, JsonObject, NotFound, validation_items

T = TypeVar("T", bound=attrs.AttrsInstance)

__all__ = [
    "MAX_ID",
    "InputError",
    "JsonObject",
    "converter",
    "documented",
    "integer",
    "items",
    "path_id",
    "read_body",
    "read_json",
    "read_query",
    "respond",
    "structure",
    "text",
]

BOOL_TRUE = frozenset({"true", "1", "yes", "on"})
BOOL_FALSE = frozenset({"false", "0", "no", "off"})

#: SQLite's integer range: a larger id cannot name anything
MAX_ID = 2**63 - 1

#: the attrs field metadata key under which a field carries its OpenAPI keywords
OPENAPI = "openapi"


# --- fields with limits ------------------------------------------------------------------------------


def _doc(description: str | None, extra: JsonObject) -> JsonObject:
    keywords = dict(extra)
    if description:
        keywords["description"] = description
    return {OPENAPI: keywords}


def _located(
    check: Callable[[Any], None], *, none_passes: bool
) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator running `check` on the value; its InputError names the field."""

    def validate(_obj: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and none_passes:
            return
        try:
            check(value)
        except InputError as exc:
            raise exc.at(attribute.name, value) from None

    return validate


#: (error type prefix, noun, unit) of a length limit on a string and on a list
_STRING = ("string_", "String", "character")
_LIST = ("", "List", "item")


def _length_check(
    max_length: int, min_length: int, kind: tuple[str, str, str]
) -> Callable[[Any], None]:
    prefix, noun, unit = kind

    def check(value: Any) -> None:
        if len(value) > max_length:
            raise InputError(
                f"{prefix}too_long",
                f"{noun} should have at most {max_length} {unit}s",
                {"max_length": max_length},
            )
        if len(value) < min_length:
            raise InputError(
                f"{prefix}too_short",
                f"{noun} should have at least {min_length} {unit}"
                + ("s" if min_length > 1 else ""),
                {"min_length": min_length},
            )

    return check


def text(
    *,
    max_length: int,
    min_length: int = 0,
    description: str | None = None,
    default: Any = attrs.NOTHING,
) -> Any:
    """A string field of bounded length (None passes when the annotation allows it)."""
    check = _located(_length_check(max_length, min_length, _STRING), none_passes=True)
    keywords: JsonObject = {"maxLength": max_length}
    if min_length:
        keywords["minLength"] = min_length
    return attrs.field(default=default, validator=check, metadata=_doc(description, keywords))


def _bounds_check(ge: int | None, le: int | None) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if ge is not None and value < ge:
            raise InputError(
                "greater_than_equal", f"Input should be greater than or equal to {ge}", {"ge": ge}
            )
        if le is not None and value > le:
            raise InputError(
                "less_than_equal", f"Input should be less than or equal to {le}", {"le": le}
            )

    return check


def integer(
    *,
    ge: int | None = None,
    le: int | None = None,
    description: str | None = None,
    default: Any = attrs.NOTHING,
) -> Any:
    """An integer field within [ge, le] (None passes when the annotation allows it)."""
    check = _located(_bounds_check(ge, le), none_passes=True)
    keywords: JsonObject = {}
    if ge is not None:
        keywords["minimum"] = ge
    if le is not None:
        keywords["maximum"] = le
    return attrs.field(default=default, validator=check, metadata=_doc(description, keywords))


def items(
    *,
    max_items: int,
    min_items: int = 0,
    ge: int | None = None,
    le: int | None = None,
    max_length: int | None = None,
    description: str | None = None,
    default: Any = attrs.NOTHING,
) -> Any:
    """A list (tuple) field of bounded size; integer items may carry bounds, string items a
    maximum length."""
    size = _length_check(max_items, min_items, _LIST)
    item_length = None if max_length is None else _length_check(max_length, 0, _STRING)
    in_range = _bounds_check(ge, le)

    def check_items(value: Any) -> None:
        size(value)
        for item in value:
            if item_length is not None:
                item_length(item)
            in_range(item)

    check = _located(check_items, none_passes=False)
    keywords: JsonObject = {"maxItems": max_items}
    if min_items:
        keywords["minItems"] = min_items
    item_keywords = {
        k: v
        for k, v in (("minimum", ge), ("maximum", le), ("maxLength", max_length))
        if v is not None
    }
    if item_keywords:
        keywords["x-items"] = item_keywords  # the bridge moves these onto the item schema
    if default is attrs.NOTHING:
        return attrs.field(validator=check, metadata=_doc(description, keywords))
    return attrs.field(default=default, validator=check, metadata=_doc(description, keywords))


def documented(description: str, **keywords: Any) -> Any:
    """A field with no limits of its own but a description (and extra OpenAPI keywords)."""
    default = keywords.pop("default", attrs.NOTHING)
    return attrs.field(default=default, metadata=_doc(description, keywords))


# --- the converter -----------------------------------------------------------------------------------


def _is_wire_class(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls) and not cls.__module__.startswith("horde_")


def ignores_unknown_keys(cls: type[T]) -> type[T]:
    """Class decorator: structuring drops keys `cls` does not have instead of refusing them (the
    text toolkit's bodies, which upstream reads leniently); the OpenAPI document leaves such a
    class open (no `additionalProperties: false`)."""
    cls.__ignores_unknown_keys__ = True  # type: ignore[attr-defined]  # -- read by the converter and the document
    return cls


def takes_unknown_keys(cls: type) -> bool:
    """Whether `cls` was marked with @ignores_unknown_keys."""
    return bool(getattr(cls, "__ignores_unknown_keys__", False))


def make_wire_converter() -> Converter:
    """The records converter, plus strict structuring of the services' own attrs classes:
    a body with a key the class does not have is refused (the key is named in the 422)."""
    from horde_model_records.serde import make_converter  # ~60 ms: not at import (see below)

    conv = make_converter()

    def structure(cls: type) -> Callable[[Any, Any], Any]:
        return make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=not takes_unknown_keys(cls)
        )

    def unstructure(cls: type) -> Callable[[Any], Any]:
        internal: dict[str, Any] = {
            a.name: override(omit=True)
            for a in attrs.fields(cls)
            if a.metadata.get("wire") is False
        }
        return make_dict_unstructure_fn(cls, conv, **internal)

    conv.register_structure_hook_factory(_is_wire_class, structure)
    conv.register_unstructure_hook_factory(_is_wire_class, unstructure)

    # a JSON string is iterable too: a tuple field takes a JSON array and nothing else
    def homogeneous_tuple(value: Any, tp: Any) -> tuple[Any, ...]:
        item_list: Any = types.GenericAlias(list, (typing.get_args(tp)[0],))
        return tuple(conv.structure(_as_list(value), item_list))

    conv.register_structure_hook_func(_is_homogeneous_tuple, homogeneous_tuple)
    return conv


def _is_homogeneous_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


@functools.cache
def get_converter() -> Converter:
    """The one converter of the services' wire classes, built on first use: building it costs
    about 100 ms, which a read replica need not pay before it serves its first category."""
    return make_wire_converter()


if TYPE_CHECKING:
    converter: Converter


def __getattr__(name: str) -> Any:
    if name == "converter":  # `from shared.wire import converter` (the write service) builds it
        return get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def structure(data: Any, cls: type[T], where: str) -> T:
    """`data` as `cls`; every problem is a 422 item located under `where` (body, query)."""
    if not isinstance(data, dict):
        raise InvalidInput(
            [
                {
                    "type": "model_attributes_type",
                    "loc": [where],
                    "msg": "Input should be an object",
                    "input": None,
                }
            ]
        )
    try:
        return get_converter().structure(data, cls)
    except (BaseValidationError, InputError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(validation_items(exc, [where])) from None


# --- reading requests --------------------------------------------------------------------------------


#: deeper JSON bodies are refused: no record comes close, and deep nesting exhausts recursion
MAX_JSON_DEPTH = 32


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The JSON body; an absent (when required), malformed or too deeply nested one, or one
    holding a lone surrogate (valid JSON, but not storable text), is a 422 at `body`."""
    raw = await request.read()
    if not raw.strip():
        if not required:
            return {}
        raise _body_error("missing", "Field required")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _body_error(
            "json_invalid", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _body_error("json_invalid", f"JSON decode error: {exc}") from None
    _check_json(value)
    return value


def _body_error(kind: str, message: str) -> InvalidInput:
    return InvalidInput([{"type": kind, "loc": ["body"], "msg": message, "input": None}])


def _check_json(value: Any) -> None:
    """Walk a parsed body (without recursion): bounded depth, no lone surrogates."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _body_error("json_invalid", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _check_text(key)
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _body_error("string_unicode", "Strings must not hold lone surrogates") from None


async def read_body(request: web.Request, cls: type[T]) -> T:
    """The request body as `cls`."""
    return structure(await read_json(request), cls, "body")


def _scalar(raw: str, tp: Any, name: str) -> Any:
    """A query value typed by the field's annotation: integers and booleans parsed, the rest text."""
    options = set(typing.get_args(tp)) if _is_union(tp) else {tp}
    if int in options:
        try:
            if len(raw) <= 20:
                return int(raw.strip())
        except ValueError:
            pass
        raise InputError(
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            field=name,
            value=raw[:64],
        )
    if bool in options:
        lowered = raw.lower()
        if lowered in BOOL_TRUE or lowered in BOOL_FALSE:
            return lowered in BOOL_TRUE
        raise InputError(
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
            field=name,
            value=raw[:64],
        )
    return raw


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


@functools.cache
def _query_fields(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(name, annotation, item annotation of a sequence field or None) of each query field;
    worked out once per class, since queries are read on hot paths (search)."""
    hints = typing.get_type_hints(cls)
    out = []
    for a in attrs.fields(cls):
        tp = hints[a.name]
        sequence = next((t for t in (tp, *typing.get_args(tp)) if _is_sequence_origin(t)), None)
        out.append((a.name, tp, None if sequence is None else typing.get_args(sequence)[0]))
    return tuple(out)


def read_query(request: web.Request, cls: type[T], *, strict: bool = False) -> T:
    """The query string as `cls`: repeated keys fill tuple fields, other fields take the last.
    Every value that does not parse is reported, then the class's own checks run. With
    `strict`, a parameter the class does not have is a 400 naming it."""
    if strict:
        known = {name for name, _, _ in _query_fields(cls)}
        unknown = sorted(set(request.query) - known)
        if unknown:
            raise BadRequest(
                f"Unknown parameter(s): {', '.join(unknown)}. Valid parameters: {sorted(known)}"
            )
    data: JsonObject = {}
    problems: list[InputError] = []
    for name, tp, item_tp in _query_fields(cls):
        values = request.query.getall(name, [])
        if not values:
            continue
        try:
            if item_tp is not None:
                data[name] = [_scalar(v, item_tp, name) for v in values]
            else:
                data[name] = _scalar(values[-1], tp, name)
        except InputError as exc:
            problems.append(exc)
    if problems:
        raise InvalidInput([item for p in problems for item in validation_items(p, ["query"])])
    return structure(data, cls, "query")


def _is_sequence_origin(tp: Any) -> bool:
    return typing.get_origin(tp) in (tuple, list)


def path_id(request: web.Request, name: str) -> int:
    """A positive integer id from the path; anything else is a 422 at ["path", name]."""
    raw = request.match_info[name]
    try:
        value = int(raw) if len(raw) <= 20 else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_ID:
        raise InvalidInput(
            [
                {
                    "type": "int_parsing" if value is None else "value_error",
                    "loc": ["path", name],
                    "msg": f"Input should be an integer from 1 to {MAX_ID}",
                    "input": raw[:64],
                }
            ]
        )
    return value


def path_segment(request: web.Request, name: str) -> str:
    """The value of a one-segment `{name}`. aiohttp matches `%2F` as part of a segment and
    decodes it to `/`; such a value reaches no route here (as upstream), so it is the plain
    404 of an unmatched URL, answered before anything else is checked."""
    value = request.match_info[name]
    if "/" in value:
        raise NotFound("Not Found")
    return value


# --- answers -----------------------------------------------------------------------------------------


def unstructure(value: Any) -> Any:
    return get_converter().unstructure(value)


def respond(value: Any, status: int = 200, *, cache: str = "no-store") -> web.Response:
    """An answer object as JSON; authenticated answers are never cached."""
    return web.json_response(
        get_converter().unstructure(value), status=status, headers={"Cache-Control": cache}
    )


def respond_bytes(data: bytes, status: int = 200, *, cache: str = "no-store") -> web.Response:
    """An answer already encoded as JSON (cached by the service)."""
    return web.Response(
        body=data, status=status, content_type="application/json", headers={"Cache-Control": cache}
    )
