"""OpenAPI 3 through aiohttp-apispec, derived from the attrs classes of the records and of each
service's wire module.

A handler declares its operation with `@docs(...)` beside it; each service calls
`setup_openapi(app, ...)` once. The document is built on the first request of /api/openapi.json
from every route the app has by then: attrs classes become marshmallow schemas (the bridge
below), which aiohttp-apispec and apispec turn into OpenAPI. Importing them costs about 90 ms, so
nothing of the docs stack is imported before that first request. No other module may import
marshmallow or apispec.
"""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web

from horde_model_records import ALL_CATEGORIES, RECORD_TYPES, Category
from horde_model_records.metadata import CategoryMetadata
from horde_model_records.records import WIRE_RENAMES

from .wire import takes_unknown_keys

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
STATIC_PATH = "/api/docs/static"
OPENAPI_VERSION = "3.0.2"  # aiohttp-apispec hard-codes 2.0; oneOf/anyOf and nullable need 3

#: aiohttp-apispec's route names, which its Swagger UI page looks up
_SPEC_ROUTE = "swagger.spec"
_DOCS_ROUTE = "swagger.docs"
_STATIC_ROUTE = "swagger.static"
_METHODS = ("get", "post", "put", "patch", "delete")  # HEAD mirrors GET and is left out

Handler = Callable[[web.Request], typing.Awaitable[web.StreamResponse]]
JsonDict = dict[str, Any]


# --- describing handlers (plain dicts, no imports of the docs stack) -------------------------------


def ref(name: str) -> JsonDict:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def record_schema_name(category: Category) -> str:
    """The component schema of one record of `category`, e.g. `ImageGenerationRecord`."""
    return RECORD_TYPES[category].__name__


def category_schema_name(category: Category) -> str:
    """The component schema of a whole v2 category (name -> record), e.g. `ImageGenerationCategory`."""
    return record_schema_name(category).removesuffix("Record") + "Category"


def any_record_schema() -> JsonDict:
    """One v2 record of any category, told apart by its `record_type`."""
    return {
        "oneOf": [ref(record_schema_name(c)) for c in ALL_CATEGORIES],
        "discriminator": {
            "propertyName": "record_type",
            "mapping": {c.value: ref(record_schema_name(c))["$ref"] for c in ALL_CATEGORIES},
        },
    }


def any_category_schema() -> JsonDict:
    """A whole v2 category: the `<Category>Category` schema of the category in the path."""
    pairs = ", ".join(f"{c.value} → {category_schema_name(c)}" for c in ALL_CATEGORIES)
    return {
        "anyOf": [ref(category_schema_name(c)) for c in ALL_CATEGORIES],
        "description": f"Model name → record, typed by the category in the path: {pairs}.",
    }


def _mapping(value: Mapping[Any, Any] | None) -> dict[Any, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class OperationDoc:
    """What a handler declares about itself: summary and tags; its query, body and answer (attrs
    classes, `list[cls]`, or raw schemas); its errors as `{status: description}` (422 is a
    ValidationError, any other an HTTPError; a `(description, cls)` pair answers either `cls` or
    an HTTPError); the schemas of its path parameters (a parameter not given is a string)."""

    summary: str
    tags: tuple[str, ...] = attrs.field(converter=tuple)
    description: str | None = None
    query: type | None = None
    body: Any = None
    body_required: bool = True
    answer: Any = None
    status: int = 200
    answer_description: str = "OK"
    answer_headers: Mapping[str, JsonDict] = attrs.field(default=None, converter=_mapping)
    errors: Mapping[int, str | tuple[str, type]] = attrs.field(default=None, converter=_mapping)
    path: Mapping[str, JsonDict] = attrs.field(default=None, converter=_mapping)
    security: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    responses: Mapping[int, JsonDict] = attrs.field(default=None, converter=_mapping)
    parameters: tuple[JsonDict, ...] = ()  # e.g. header parameters


def docs(summary: str | None = None, **fields: Any) -> Callable[[Handler], Handler]:
    """Describe a handler beside its definition (see OperationDoc); without a summary, the first
    line of the handler's docstring is the summary and the rest its description. The document
    derives the operation from it when it is first asked for. No docs stack is imported here."""

    def decorate(handler: Handler) -> Handler:
        first, _, rest = (handler.__doc__ or "").strip().partition("\n")
        if summary is None and rest.strip() and "description" not in fields:
            fields["description"] = " ".join(rest.split())
        operation = OperationDoc(summary=summary or first.strip(), **fields)
        handler.__apidoc__ = operation  # type: ignore[attr-defined]  # -- read by build_document
        return handler

    return decorate


def schema_name(cls: type) -> str:
    """The component name of an attrs class (`__openapi_name__` when it has one)."""
    return str(getattr(cls, "__openapi_name__", cls.__name__))


def _content(schema: JsonDict) -> JsonDict:
    return {"application/json": {"schema": schema}}


def _schema_of(value: Any, components: Any) -> JsonDict:
    """A `$ref` to the component of an attrs class (registered on first use), an array of them
    for `list[cls]`, or a raw schema."""
    if isinstance(value, dict):
        return value
    if typing.get_origin(value) is list:
        return {"type": "array", "items": _schema_of(typing.get_args(value)[0], components)}
    name = schema_name(value)
    if name not in components._schemas:  # apispec keeps no public view of them
        components.schema(name, schema=marshmallow_schema(value))
    return ref(name)


def _response(description: str, schema: JsonDict, headers: Mapping[str, JsonDict]) -> JsonDict:
    out: JsonDict = {"description": description, "content": _content(schema)}
    if headers:
        out["headers"] = dict(headers)
    return out


def _operation(doc: OperationDoc, path_keys: list[str], method: str, components: Any) -> JsonDict:
    """The aiohttp-apispec operation (`__apispec__` format) of one route of a documented handler."""
    parameters: list[JsonDict] = [
        {
            "in": "path",
            "name": key,
            "required": True,
            **doc.path.get(key, {"schema": {"type": "string"}}),
        }
        for key in path_keys
    ] + list(doc.parameters)
    schemas: list[JsonDict] = []
    if doc.query is not None:
        schemas.append(
            {
                "schema": marshmallow_schema(doc.query)(),
                "options": {"default_in": "query"},
                "example": None,
            }
        )
    responses: JsonDict = {}
    if doc.answer is not None:
        responses[str(doc.status)] = _response(
            doc.answer_description, _schema_of(doc.answer, components), doc.answer_headers
        )
    elif doc.status == 204:  # no body: the success is documented on its own
        responses["204"] = {"description": doc.answer_description}
        if doc.answer_headers:
            responses["204"]["headers"] = dict(doc.answer_headers)
    for code, spec in sorted(doc.errors.items()):
        if isinstance(spec, tuple):
            text, cls = spec
            schema = {"oneOf": [_schema_of(cls, components), ref("HTTPError")]}
        else:
            text, schema = spec, ref("ValidationError" if code == 422 else "HTTPError")
        responses[str(code)] = _response(text, schema, {})
    responses.update({str(code): dict(r) for code, r in doc.responses.items()})
    # every route: the error middleware refuses URLs longer than it reads
    responses.setdefault("414", _response("URI too long.", ref("HTTPError"), {}))
    operation: JsonDict = {
        "schemas": schemas,
        "summary": doc.summary,
        "tags": list(doc.tags),
        "parameters": parameters,
        "responses": dict(sorted(responses.items())),
    }
    if doc.description is not None:
        operation["description"] = doc.description
    if doc.body is not None and method not in ("get", "delete"):
        operation["requestBody"] = {
            "required": doc.body_required,
            "content": _content(_schema_of(doc.body, components)),
        }
    if doc.security:
        operation["security"] = [{name: []} for name in doc.security]
    return operation


# --- the built-in components -------------------------------------------------------------------------

_VALIDATION_ITEM: JsonDict = {
    "type": "object",
    "description": "One request-validation problem (FastAPI-compatible).",
    "required": ["type", "loc", "msg", "input"],
    "properties": {
        "type": {"type": "string", "example": "int_parsing"},
        "loc": {
            "type": "array",
            "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "example": ["query", "limit"],
        },
        "msg": {"type": "string"},
        "input": {"description": "the offending value"},
        "ctx": {"type": "object", "additionalProperties": True},
    },
}

_BUILTIN_COMPONENTS: dict[str, JsonDict] = {
    "HTTPError": {
        "type": "object",
        "description": "The error envelope.",
        "required": ["detail"],
        "properties": {"detail": {"type": "string", "example": "Not Found"}},
    },
    "ValidationErrorItem": _VALIDATION_ITEM,
    "ValidationError": {
        "type": "object",
        "description": "A 422: `detail` is a message, or a list of validation problems.",
        "required": ["detail"],
        "properties": {
            "detail": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "items": ref("ValidationErrorItem")},
                ]
            }
        },
    },
}


# --- the marshmallow bridge (imports marshmallow on first use) ---------------------------------------


@functools.cache
def _mm() -> types.ModuleType:
    with warnings.catch_warnings():
        _ignore_import_warnings()
        import marshmallow
        import marshmallow.warnings  # makes mm.warnings an attribute
    return marshmallow


def _ignore_import_warnings() -> None:
    # apispec 3 and webargs 5 (pinned by aiohttp-apispec 2.2.3) read marshmallow.__version__ and
    # build distutils LooseVersions at import; both are deprecated, neither is ours to fix.
    warnings.filterwarnings(
        "ignore", "The '__version__' attribute is deprecated", DeprecationWarning
    )
    warnings.filterwarnings("ignore", ".*distutils", DeprecationWarning)


def _description(cls: type) -> str:
    category = getattr(cls, "CATEGORY", None)
    if isinstance(category, Category):
        return f"A v2 `{category.value}` record; null fields are omitted on output."
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


#: marshmallow field metadata key carrying OpenAPI keywords verbatim (see _keywords_attribute)
_KEYWORDS = "hmr_openapi"


def _field(
    tp: Any,
    *,
    required: bool = False,
    default: Any = None,
    data_key: str | None = None,
    keywords: JsonDict | None = None,
) -> Any:
    """The marshmallow field for one annotation: str/int/bool/float/Any, list, tuple, dict,
    X | None, enums and Literals (as enumerated strings) and nested attrs classes. `keywords`
    (from shared.wire's field helpers) are copied into the property as they are."""
    fields = _mm().fields
    validate = _mm().validate
    keywords = dict(keywords or {})
    item_keywords = keywords.pop("x-items", None)
    metadata: JsonDict = {_KEYWORDS: keywords}
    if default is not None:
        metadata["doc_default"] = default.value if isinstance(default, enum.Enum) else default
    kwargs: JsonDict = {"required": required, "data_key": data_key, "metadata": metadata}
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"no OpenAPI mapping for the union {tp!r}")
        kwargs["allow_none"] = len(rest) < len(args)
        tp, args = rest[0], typing.get_args(rest[0])
    origin = typing.get_origin(tp)
    if tp is Any:
        return fields.Raw(**kwargs)
    if origin in (list, tuple, frozenset):
        return fields.List(_field(args[0], keywords=item_keywords), **kwargs)
    if origin is dict:
        return fields.Dict(keys=_field(args[0]), values=_field(args[1]), **kwargs)
    if origin is typing.Literal:
        return fields.String(validate=validate.OneOf(list(args)), **kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return fields.String(validate=validate.OneOf([m.value for m in tp]), **kwargs)
    if isinstance(tp, type) and attrs.has(tp):
        return fields.Nested(marshmallow_schema(tp), **kwargs)
    if tp is int:  # apispec would say int32; sizes and parameter counts exceed it
        return fields.Integer(**{**kwargs, "metadata": {**metadata, "format": "int64"}})
    simple = {bool: fields.Boolean, float: fields.Float, str: fields.String}
    if tp in simple:
        return simple[tp](**kwargs)
    raise TypeError(f"no OpenAPI mapping for {tp!r}")


def _null_or_ref(prop: JsonDict) -> None:
    """apispec writes an optional nested class as allOf [$ref] + nullable, but OpenAPI 3.0
    applies `nullable` to the $ref'd schema too, so a null fails strict validators: say "that
    class, or null" instead."""
    if prop.get("nullable") and len(prop.get("allOf", ())) == 1:
        del prop["nullable"]
        null = {"type": "object", "nullable": True, "enum": [None]}
        prop["anyOf"] = [prop.pop("allOf")[0], null]


def _keywords_attribute(self: Any, field: Any, **kwargs: Any) -> JsonDict:
    """apispec attribute function: the keywords a field was declared with, as they are."""
    return dict(field.metadata.get(_KEYWORDS) or {})


def marshmallow_schema(cls: type) -> type:
    """The marshmallow schema of an attrs class (built once per class, see _schema_of_class)."""
    return _schema_of_class(cls)


#: component name -> the attrs class its schema was derived from
_CLASSES: dict[str, type] = {}


def _closed(cls: type) -> bool:
    """Whether the service refuses unknown fields of `cls` (its own wire classes do; records
    keep what they do not know, and some bodies drop unknown keys)."""
    return not cls.__module__.startswith("horde_") and not takes_unknown_keys(cls)


@functools.cache
def _schema_of_class(cls: type) -> type:
    """The marshmallow schema of an attrs class: wire names (WIRE_RENAMES) as data keys, fields
    without a default required, plain defaults documented, fields the service keeps to itself
    (metadata `wire: False`) left out; `record_type` of a record is its category. Built once per
    class; its component name is `schema_name(cls)`."""
    mm = _mm()
    hints = typing.get_type_hints(cls)
    declared: JsonDict = {}
    for a in attrs.fields(cls):
        if a.metadata.get("wire") is False:
            continue
        if hasattr(mm.Schema, a.name):
            raise TypeError(f"{cls.__name__}.{a.name} would shadow a marshmallow Schema attribute")
        plain = a.default is not attrs.NOTHING and not isinstance(a.default, attrs.Factory)  # type: ignore[arg-type]  # -- the stubs make Factory a function
        declared[a.name] = _field(
            hints[a.name],
            required=a.default is attrs.NOTHING,
            default=a.default if plain and a.default != () else None,
            data_key=WIRE_RENAMES.get(a.name),
            keywords=a.metadata.get("openapi"),
        )
    category = getattr(cls, "CATEGORY", None)
    if isinstance(category, Category) and "record_type" in declared:
        declared["record_type"] = mm.fields.String(validate=mm.validate.OneOf([category.value]))
    meta = type("Meta", (), {"ordered": True, "description": _description(cls)})
    _CLASSES[schema_name(cls)] = cls
    return type(f"{schema_name(cls)}Schema", (mm.Schema,), {**declared, "Meta": meta})


# --- setup and the lazily built document -------------------------------------------------------------


@attrs.define
class OpenApiDocs:
    """The app's documentation: what services contributed at setup, and the built document."""

    title: str
    version: str
    description: str | None
    security_schemes: dict[str, JsonDict] = attrs.Factory(dict)
    tags: dict[str, str] = attrs.Factory(dict)
    document: bytes | None = None
    index_page: str | None = None
    static_files: dict[str, Path] | None = None


openapi_key = web.AppKey("openapi_key", OpenApiDocs)


def setup_openapi(
    app: web.Application,
    title: str,
    version: str,
    *,
    description: str | None = None,
    security_schemes: Mapping[str, JsonDict] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Serve the OpenAPI document at /api/openapi.json and Swagger UI at /api/docs.

    Every service calls this, so services mounted on one app share one document: the first call
    adds the routes (and sets title and version), later ones add their description as another
    paragraph, their security schemes (components.securitySchemes, named by
    `docs(security=...)`) and tag descriptions. Tags no documented route uses are left
    out of the document. No I/O, no imports of the docs stack: both happen on the first request.
    """
    docs = app.get(openapi_key)
    if docs is None:
        docs = app[openapi_key] = OpenApiDocs(title=title, version=version, description=description)
        app.router.add_get(OPENAPI_PATH, get_openapi_document, name=_SPEC_ROUTE)
        app.router.add_get(DOCS_PATH, get_docs_page, name=_DOCS_ROUTE)
        app.router.add_get(STATIC_PATH + "/{filename}", get_docs_static, name=_STATIC_ROUTE)
    elif description and description not in (docs.description or ""):
        docs.description = (
            f"{docs.description}\n\n{description}" if docs.description else description
        )
    for name, scheme in (security_schemes or {}).items():
        if docs.security_schemes.setdefault(name, scheme) != scheme:
            raise ValueError(f"OpenAPI security scheme {name!r} is already defined differently")
    docs.tags.update(tags or {})


async def get_openapi_document(request: web.Request) -> web.Response:
    docs = request.app[openapi_key]
    if docs.document is None:
        docs.document = json.dumps(build_document(request.app)).encode()
    return web.Response(body=docs.document, content_type="application/json")


async def get_docs_page(request: web.Request) -> web.Response:
    docs = request.app[openapi_key]
    if docs.index_page is None:
        api = _api_spec(docs)
        static = Path(_apispec_modules().package.__file__).parent / "static"
        # with app=None it renders the template with our url and static path, touching no app keys
        page = api._get_index_page(None, static, STATIC_PATH)
        # Swagger UI would otherwise load a validator badge from validator.swagger.io on any
        # host but localhost: broken offline, and it hands the document's URL to a third party
        docs.index_page = page.replace(
            "deepLinking: true,", "deepLinking: true, validatorUrl: null,"
        )
    return web.Response(text=docs.index_page, content_type="text/html")


async def get_docs_static(request: web.Request) -> web.FileResponse:
    """aiohttp-apispec's Swagger UI assets (served by name: no path ever reaches the disk)."""
    docs = request.app[openapi_key]
    if docs.static_files is None:
        static = Path(_apispec_modules().package.__file__).parent / "static"
        docs.static_files = {
            p.name: p for p in static.iterdir() if p.is_file() and p.suffix != ".html"
        }
    path = docs.static_files.get(request.match_info["filename"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@functools.cache
def _apispec_modules() -> types.SimpleNamespace:
    with warnings.catch_warnings():
        _ignore_import_warnings()
        import aiohttp_apispec
        from aiohttp_apispec import aiohttp_apispec as core
        from aiohttp_apispec import utils
        from apispec import APISpec
        from apispec.ext.marshmallow import MarshmallowPlugin
    modules = {"package": aiohttp_apispec, "core": core, "utils": utils}
    return types.SimpleNamespace(APISpec=APISpec, MarshmallowPlugin=MarshmallowPlugin, **modules)


def _api_spec(docs: OpenApiDocs) -> Any:
    """An AiohttpApiSpec writing OpenAPI 3, not bound to any app.

    Its register() is never called: it would store the parser and the document under string app
    keys (NotAppKeyWarning) and build the document in on_startup, after the app is frozen.
    """
    m = _apispec_modules()
    with warnings.catch_warnings():
        _ignore_import_warnings()  # apispec parses every openapi_version with LooseVersion
        api = m.core.AiohttpApiSpec(
            url=OPENAPI_PATH,
            app=None,
            swagger_path=DOCS_PATH,
            static_path=STATIC_PATH,
            title=docs.title,
            version=docs.version,
        )
        # AiohttpApiSpec passes openapi_version="2.0" itself, so swap in a 3.x spec and plugin
        api.plugin = m.MarshmallowPlugin(schema_name_resolver=m.core.resolver)
        options: JsonDict = {"info": {"description": docs.description}} if docs.description else {}
        api.spec = m.APISpec(
            docs.title, docs.version, OPENAPI_VERSION, plugins=(api.plugin,), **options
        )
    return api


def build_document(app: web.Application) -> JsonDict:
    """The OpenAPI document of every documented route of `app` (HEAD routes are implied by GET)."""
    docs = app[openapi_key]
    m = _apispec_modules()
    with warnings.catch_warnings():
        # apispec 3 reads Field.missing, deprecated since marshmallow 3.13 (gone in 4)
        warnings.filterwarnings("ignore", category=_mm().warnings.RemovedInMarshmallow4Warning)
        api = _api_spec(docs)
        components = api.spec.components
        api.plugin.converter.add_attribute_function(_keywords_attribute)
        for category in ALL_CATEGORIES:
            components.schema(
                record_schema_name(category), schema=marshmallow_schema(RECORD_TYPES[category])
            )
        for category in ALL_CATEGORIES:
            components.schema(
                category_schema_name(category),
                {
                    "type": "object",
                    "description": f"The v2 `{category.value}` category: model name → "
                    f"{record_schema_name(category)}, in dataset order.",
                    "additionalProperties": ref(record_schema_name(category)),
                },
            )
        components.schema("CategoryMetadata", schema=marshmallow_schema(CategoryMetadata))
        for name, schema in _BUILTIN_COMPONENTS.items():
            components.schema(name, schema)
        for name, scheme in docs.security_schemes.items():
            components.security_scheme(name, scheme)
        operations: list[tuple[JsonDict, str, str]] = []
        for route in app.router.routes():
            method = route.method.lower()
            path = m.utils.get_path(route)
            if method not in _METHODS or not path:
                continue
            declared: OperationDoc | None = getattr(route.handler, "__apidoc__", None)
            if declared is not None:
                keys = m.utils.get_path_keys(path)
                operations.append((_operation(declared, keys, method, components), method, path))
        used = {tag for operation, _, _ in operations for tag in operation["tags"]}
        for name, text in docs.tags.items():
            if name in used:
                api.spec.tag({"name": name, "description": text})
        for operation, method, path in operations:
            api._update_paths(operation, method, path)
        for name, schema in components._schemas.items():
            if name in _CLASSES and _closed(_CLASSES[name]):
                schema["additionalProperties"] = False
            for prop in schema.get("properties", {}).values():
                _null_or_ref(prop)
        return typing.cast(JsonDict, api.swagger_dict())
