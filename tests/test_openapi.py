"""The OpenAPI document and Swagger UI of the read service (aiohttp-apispec)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from horde_model_records import ALL_CATEGORIES, RECORD_TYPES, Category
from horde_model_records.records import TextGenerationRecord, wire_field_names
from services.read_api.app import create_app
from services.read_api.config import Config
from services.read_api.openapi import setup_read_docs
from shared.openapi import category_schema_name, docs, record_schema_name

REPO = Path(__file__).resolve().parents[1]
ClientFactory = Callable[[web.Application], Awaitable[TestClient]]
DOCS_ROUTES = {"swagger.spec", "swagger.docs", "swagger.static"}
SEARCH_PARAMS = {
    "nsfw", "baseline", "inpainting", "tags_any", "tags_all", "tags_none", "name_contains",
    "backend", "exclude_backend_variations", "quantized", "sort_by", "sort_desc", "limit",
    "offset", "source", "license_id", "commercial_use", "redistribution",
}  # fmt: skip
ALL_SEARCH_PARAMS = {
    "nsfw", "name_contains", "tags_any", "tags_all", "tags_none", "sort_by", "sort_desc",
    "limit", "offset", "license_id", "commercial_use", "redistribution",
}  # fmt: skip


def _app(data_dir: Path) -> web.Application:
    return create_app(Config.from_environ({"HMR_DATA_DIR": str(data_dir)}))


async def _document(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    return doc


def _template(canonical: str) -> str:
    """aiohttp's canonical path with the regex parts dropped: {model_name:.+} -> {model_name}."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical)


def _matches(doc: dict[str, Any], schema: dict[str, Any], body: Any) -> list[str]:
    """Validation problems of `body` against a schema of the document (refs resolved in it)."""
    validator = OAS30Validator({**schema, "components": doc["components"]})
    return [error.message[:200] for error in validator.iter_errors(body)]


async def test_document_is_valid_openapi_3(client: TestClient) -> None:
    """GET /api/openapi.json answers an OpenAPI 3.0 document that passes openapi-spec-validator."""
    doc = await _document(client)
    assert doc["openapi"] == "3.0.2"
    validate(doc)


async def test_every_route_is_documented(client: TestClient) -> None:
    """Every route of the app but HEAD and the docs routes is in the document with its method."""
    paths = (await _document(client))["paths"]
    documented = {(method.upper(), path) for path, item in paths.items() for method in item}
    served = {
        (route.method, _template(route.resource.canonical))
        for route in client.server.app.router.routes()
        if route.method != "HEAD" and route.name not in DOCS_ROUTES
    }
    assert served - documented == set()


async def test_every_record_type_has_a_schema_with_its_wire_fields(client: TestClient) -> None:
    """components.schemas has one schema per record type, whose properties are its wire keys in order."""
    schemas = (await _document(client))["components"]["schemas"]
    for cls in RECORD_TYPES.values():
        assert list(schemas[cls.__name__]["properties"]) == wire_field_names(cls)


async def test_text_record_schema_says_parameters(client: TestClient) -> None:
    """The text record documents the wire key `parameters` (required), never `parameters_count`."""
    schema = (await _document(client))["components"]["schemas"][TextGenerationRecord.__name__]
    assert "parameters" in schema["required"]
    assert "parameters_count" not in schema["properties"]


async def test_record_schemas_pin_their_record_type(client: TestClient) -> None:
    """Each record schema allows only its own category as `record_type`."""
    schemas = (await _document(client))["components"]["schemas"]
    for category in ALL_CATEGORIES:
        record_type = schemas[record_schema_name(category)]["properties"]["record_type"]
        assert record_type["enum"] == [category.value]


async def test_model_route_answers_any_record_type(client: TestClient) -> None:
    """The single-model 200 is a oneOf of all 15 record schemas, discriminated by record_type."""
    op = (await _document(client))["paths"][
        "/api/model_references/v2/{category}/model/{model_name}"
    ]
    schema = op["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    refs = {one["$ref"].rsplit("/", 1)[1] for one in schema["oneOf"]}
    assert refs == {cls.__name__ for cls in RECORD_TYPES.values()}
    assert schema["discriminator"]["propertyName"] == "record_type"


async def test_category_search_documents_every_parameter(client: TestClient) -> None:
    """Per-category search documents every query parameter, limit with its bounds."""
    op = (await _document(client))["paths"]["/api/model_references/v2/{category}/search"]["get"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert set(params) == SEARCH_PARAMS
    assert params["limit"]["schema"] == {
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": 500,
        "default": 50,
    }
    assert params["tags_any"]["schema"]["type"] == "array"


async def test_all_category_search_documents_its_parameters(client: TestClient) -> None:
    """The all-category search documents exactly its own query parameters."""
    op = (await _document(client))["paths"]["/api/model_references/v2/search"]["get"]
    assert {p["name"] for p in op["parameters"] if p["in"] == "query"} == ALL_SEARCH_PARAMS


async def test_errors_use_the_detail_envelope(client: TestClient) -> None:
    """Every documented 4xx/5xx response of the read routes is a `{"detail": ...}` schema."""
    doc = await _document(client)
    for item in doc["paths"].values():
        for op in item.values():
            if "operations" in op.get("tags", []):
                continue  # /readyz answers its probe body with 503, not an error envelope
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"] in (
                        "#/components/schemas/HTTPError",
                        "#/components/schemas/ValidationError",
                    )


async def test_live_answers_match_their_documented_schemas(client: TestClient) -> None:
    """Real answers of the read routes (each category, a model, search, metadata) validate against the document."""
    doc = await _document(client)
    v2 = "/api/model_references/v2"
    urls = [(f"{v2}/{{category}}", f"{v2}/{c.value}") for c in ALL_CATEGORIES] + [
        (
            f"{v2}/{{category}}/model/{{model_name}}",
            f"{v2}/text_generation/model/acrastt/Marx-3B-V3",
        ),
        (f"{v2}/{{category}}/search", f"{v2}/image_generation/search?limit=500"),
        (f"{v2}/search", f"{v2}/search?limit=500"),
        (f"{v2}/metadata/metadata", f"{v2}/metadata/metadata"),
        (f"{v2}/metadata/{{category}}", f"{v2}/metadata/image_generation"),
        (f"{v2}/metadata/{{category}}/last_updated", f"{v2}/metadata/blip/last_updated"),
        (f"{v2}/metadata/last_updated", f"{v2}/metadata/last_updated"),
        ("/api/replicate_mode", "/api/replicate_mode"),
        (f"{v2}/model_categories", f"{v2}/model_categories"),
    ]
    problems = {}
    for template, url in urls:
        resp = await client.get(url)
        assert resp.status == 200, url
        schema = doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]
        problems[url] = _matches(doc, schema, await resp.json())
    assert problems == {url: [] for _, url in urls}


async def test_category_schema_rejects_another_categorys_records(client: TestClient) -> None:
    """The typed category schemas tell categories apart: blip records are not image_generation ones."""
    doc = await _document(client)
    blip = await (await client.get("/api/model_references/v2/blip")).json()
    schema = {"$ref": f"#/components/schemas/{category_schema_name(Category.image_generation)}"}
    assert blip and _matches(doc, schema, blip)


async def test_docs_page_is_swagger_ui(client: TestClient) -> None:
    """GET /api/docs answers 200 HTML that loads Swagger UI on /api/openapi.json."""
    resp = await client.get("/api/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "/api/openapi.json" in page
    assert "/api/docs/static/swagger-ui-bundle.js" in page
    assert "validatorUrl: null" in page  # no badge fetched from validator.swagger.io


async def test_swagger_ui_assets_are_served(client: TestClient) -> None:
    """The Swagger UI script the page loads is served from /api/docs/static."""
    resp = await client.get("/api/docs/static/swagger-ui-bundle.js")
    assert resp.status == 200
    assert "SwaggerUIBundle" in await resp.text()


async def test_unknown_docs_asset_is_not_found(client: TestClient) -> None:
    """A name that is not a Swagger UI asset answers 404 in the error envelope."""
    resp = await client.get("/api/docs/static/..")
    assert resp.status == 404
    assert await resp.json() == {"detail": "Not Found"}


async def test_routes_added_after_setup_are_documented(
    aiohttp_client: ClientFactory, real_data_dir: Path
) -> None:
    """The document is built on first request, so a route added after docs setup is in it."""

    @docs("Extra", tags=("extra",), answer={"type": "object"})
    async def get_extra(request: web.Request) -> web.Response:
        return web.json_response({})

    app = _app(real_data_dir)
    app.router.add_get("/api/extra/{thing}", get_extra)
    doc = await _document(await aiohttp_client(app))
    assert doc["paths"]["/api/extra/{thing}"]["get"]["parameters"][0]["name"] == "thing"
    validate(doc)


async def test_docs_setup_can_run_twice(aiohttp_client: ClientFactory, real_data_dir: Path) -> None:
    """Calling setup_read_docs again (as merged deployments may) keeps one set of docs routes."""
    app = _app(real_data_dir)
    setup_read_docs(app)
    doc = await _document(await aiohttp_client(app))
    validate(doc)


@pytest.mark.subprocess
def test_app_creation_does_not_import_the_docs_stack(tmp_path: Path) -> None:
    """create_app() leaves aiohttp-apispec, apispec and marshmallow unimported (they load on first docs request)."""
    code = (
        "import sys; from services.read_api.app import create_app; "
        "from services.read_api.config import Config; "
        f"create_app(Config.from_environ({{'HMR_DATA_DIR': {str(tmp_path)!r}}})); "
        "print(sorted(m for m in ('aiohttp_apispec', 'apispec', 'marshmallow', 'webargs') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
