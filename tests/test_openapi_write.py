"""The write service's OpenAPI document: merged with the reads in `hmr all`, standalone otherwise."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from horde_model_records import ALL_CATEGORIES
from services import cli
from services.write_queue.app import create_app as create_write_app
from services.write_queue.models import Change
from services.write_queue.openapi import TITLE
from shared.openapi import record_schema_name, schema_name
from tests.conftest import APPROVER_KEY, REQUESTOR_KEY, serve, write_config

REPO = Path(__file__).resolve().parents[1]
DOCS_ROUTES = {"swagger.spec", "swagger.docs", "swagger.static"}
V2 = "/api/model_references/v2"
PQ = f"{V2}/pending_queue"
ClientFactory = Callable[..., Awaitable[TestClient]]
Doc = dict[str, Any]


def _template(canonical: str) -> str:
    """aiohttp's canonical path with the regex parts dropped: {model_name:.+} -> {model_name}."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", canonical)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route of `app` but HEAD and the docs routes."""
    return {
        (route.method, _template(route.resource.canonical))
        for route in app.router.routes()
        if route.method != "HEAD" and route.name not in DOCS_ROUTES and route.resource is not None
    }


def _operations(doc: Doc) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


async def _document(client: TestClient) -> Doc:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc: Doc = await resp.json()
    return doc


@pytest.fixture
async def hmr_all(aiohttp_client: ClientFactory, tmp_path: Path, auth_file: Path) -> TestClient:
    """The application `hmr all` serves, built from its command line, on a test server (its own
    data dir: `system` may run beside it, and one data dir takes one writer)."""
    argv = [
        "all",
        "--data-dir",
        str(tmp_path / "hmr-all"),
        "--auth-file",
        str(auth_file),
        "--horde-url",
        "off",  # no AI-Horde polling or auth calls from the tests
    ]
    app = cli.build_app(argv, environ={"HMR_SNAPSHOT_POLL_INTERVAL": "0.05"})
    return await aiohttp_client(await serve(app))


@pytest.fixture
async def doc(hmr_all: TestClient) -> Doc:
    return await _document(hmr_all)


def _schema_of(doc: Doc, method: str, template: str, status: int) -> Any:
    op = doc["paths"][template][method.lower()]
    assert str(status) in op["responses"], f"{method} {template} does not document {status}"
    return op["responses"][str(status)]["content"]["application/json"]["schema"]


def _problems(doc: Doc, schema: Any, body: Any) -> list[str]:
    validator = OAS30Validator({**schema, "components": doc["components"]})
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator.iter_errors(body)
    ]


# --- one document for read + write ------------------------------------------------------------------


async def test_merged_document_is_valid_openapi_3(doc: Doc) -> None:
    """`hmr all` answers one OpenAPI 3.0 document that passes openapi-spec-validator."""
    assert doc["openapi"] == "3.0.2"
    validate(doc)


async def test_merged_document_covers_every_route_of_the_system(
    doc: Doc, system: TestClient
) -> None:
    """Every route of the read + write app (HEAD and docs routes aside) is in `hmr all`'s document."""
    assert _routes(system.server.app) - _operations(doc) == set()


async def test_merged_app_serves_one_document_and_swagger_ui(hmr_all: TestClient) -> None:
    """One set of docs routes on the merged app; /api/docs is Swagger UI on that document."""
    routes = hmr_all.server.app.router.routes()
    names = [r.name for r in routes if r.name in DOCS_ROUTES and r.method == "GET"]
    assert sorted(names) == sorted(DOCS_ROUTES)
    resp = await hmr_all.get("/api/docs")
    assert resp.status == 200
    assert "/api/openapi.json" in await resp.text()


async def test_merged_document_describes_both_services(doc: Doc) -> None:
    """The read title stays; the write description joins it; the unused read-only `writes` tag goes."""
    assert doc["info"]["title"] == "AI-Horde model reference"
    assert "apikey" in doc["info"]["description"]
    tags = {t["name"] for t in doc["tags"]}
    assert {"v2", "proposals", "pending_queue", "audit", "roles"} <= tags
    assert "writes" not in tags
    used = {tag for item in doc["paths"].values() for op in item.values() for tag in op["tags"]}
    assert tags <= used


# --- what the write operations say ---------------------------------------------------------------------


async def test_apikey_security_scheme_guards_exactly_the_write_routes(doc: Doc) -> None:
    """components.securitySchemes.apikey is the `apikey` header; every write operation uses it, reads don't."""
    assert doc["components"]["securitySchemes"]["apikey"] == {
        **doc["components"]["securitySchemes"]["apikey"],
        "type": "apiKey",
        "in": "header",
        "name": "apikey",
    }
    for path, item in doc["paths"].items():
        for method, op in item.items():
            read_only_post = path.endswith("/text_generation/compose_name")
            write = (method != "get" and not read_only_post) or "pending" in path or "/me/" in path
            assert (op.get("security") == [{"apikey": []}]) == write, (method, path)


async def test_create_and_update_take_the_category_record_types(doc: Doc) -> None:
    """Typed create, generic add and typed update take one of the 15 record schemas; 202 is a PendingChangeRecord."""
    records = {f"#/components/schemas/{record_schema_name(c)}" for c in ALL_CATEGORIES}
    for method, path in (
        ("post", f"{V2}/{{category}}"),
        ("post", f"{V2}/{{category}}/add"),
        ("put", f"{V2}/{{category}}/model/{{model_name}}"),
    ):
        op = doc["paths"][path][method]
        body = op["requestBody"]
        assert body["required"] is True
        assert {
            s["$ref"] for s in body["content"]["application/json"]["schema"]["anyOf"]
        } == records
        assert _schema_of(doc, method, path, 202) == {
            "$ref": "#/components/schemas/PendingChangeRecord"
        }
        assert {"400", "401", "403", "422", "503"} <= set(op["responses"])
    assert "409" in doc["paths"][f"{V2}/{{category}}"]["post"]["responses"]
    assert "404" in doc["paths"][f"{V2}/{{category}}/model/{{model_name}}"]["put"]["responses"]
    assert "requestBody" not in doc["paths"][f"{V2}/{{category}}/model/{{model_name}}"]["delete"]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/batches", "PendingBatchRequest"),
        ("/purge", "PurgePendingChangesRequest"),
        ("/changes/{change_id}/apply", "ApplyPendingChangeRequest"),
        ("/apply", "ApplyPendingChangesRequest"),
    ],
)
async def test_queue_bodies_are_named_schemas(doc: Doc, path: str, schema: str) -> None:
    """The review, purge and apply bodies are components, under both queue prefixes."""
    for prefix in (PQ, "/api/model_references/v1/pending_queue"):
        body = doc["paths"][prefix + path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{schema}"
        }
        assert schema in doc["components"]["schemas"]


async def test_write_errors_use_the_error_schemas(doc: Doc) -> None:
    """Every 4xx/5xx of a write operation is HTTPError/ValidationError (multi-apply: or its outcome)."""
    allowed = {"#/components/schemas/HTTPError", "#/components/schemas/ValidationError"}
    outcome = {"#/components/schemas/ApplyPendingChangesResponse", "#/components/schemas/HTTPError"}
    for path, item in doc["paths"].items():
        for op in item.values():
            if "security" not in op:
                continue
            for code, response in op["responses"].items():
                if int(code) < 400:
                    continue
                schema = response["content"]["application/json"]["schema"]
                if "oneOf" in schema:
                    assert {s["$ref"] for s in schema["oneOf"]} == outcome, (path, code)
                    assert path.endswith(("/apply", "/apply_batch/{batch_id}"))
                else:
                    assert schema["$ref"] in allowed, (path, code)


async def test_pending_change_record_follows_the_change_class(doc: Doc) -> None:
    """PendingChangeRecord has every Change field the wire carries, in order."""
    names = [a.name for a in attrs.fields(Change) if a.metadata.get("wire") is not False]
    schema = doc["components"]["schemas"]["PendingChangeRecord"]
    assert list(schema["properties"]) == names


# --- real answers match the document ---------------------------------------------------------------


async def test_live_write_answers_match_their_documented_schemas(
    hmr_all: TestClient, doc: Doc
) -> None:
    """A propose → review → apply → audit session: every answer's status is documented and its body validates."""
    problems: dict[str, list[str]] = {}
    client = hmr_all
    req = {"apikey": REQUESTOR_KEY}
    appr = {"apikey": APPROVER_KEY}

    async def call(method: str, template: str, url: str, status: int, **kwargs: Any) -> Any:
        resp = await client.request(method, url, **kwargs)
        body = await resp.json()
        assert resp.status == status, (method, url, resp.status, body)
        problems[f"{method} {url} {status}"] = _problems(
            doc, _schema_of(doc, method, template, status), body
        )
        return body

    live = await (await client.get(f"{V2}/image_generation")).json()
    existing = next(iter(live))
    text_live = await (await client.get(f"{V2}/text_generation")).json()
    text_name = next(iter(text_live))

    await call("GET", f"{V2}/me/roles", f"{V2}/me/roles", 200, headers=req)
    await call("GET", f"{V2}/me/roles", f"{V2}/me/roles", 401)
    create = f"{V2}/{{category}}"
    image = {"name": "Doc Model", "baseline": "stable_diffusion_xl", "nsfw": False}
    c1 = (await call("POST", create, f"{V2}/image_generation", 202, json=image, headers=req))[
        "change_id"
    ]
    await call(
        "POST", create, f"{V2}/image_generation", 409, json={**image, "name": existing}, headers=req
    )
    await call("POST", create, f"{V2}/image_generation", 422, json={"nsfw": "x"}, headers=req)
    await call("POST", create, f"{V2}/nope", 422, json=image, headers=req)
    await call("POST", create, f"{V2}/image_generation", 401, json=image)
    add = f"{V2}/{{category}}/add"
    c2 = (
        await call(
            "POST",
            add,
            f"{V2}/image_generation/add",
            202,
            json={**image, "name": "Doc Two"},
            headers=req,
        )
    )["change_id"]
    model = f"{V2}/{{category}}/model/{{model_name}}"
    record = {**text_live[text_name], "description": "documented"}
    c3 = (
        await call(
            "PUT", model, f"{V2}/text_generation/model/{text_name}", 202, json=record, headers=req
        )
    )["change_id"]
    await call("PUT", model, f"{V2}/text_generation/model/other", 400, json=record, headers=req)
    await call(
        "PUT",
        model,
        f"{V2}/image_generation/model/Nobody",
        404,
        json={**image, "name": "Nobody"},
        headers=req,
    )
    c4 = (await call("DELETE", model, f"{V2}/image_generation/model/{existing}", 202, headers=req))[
        "change_id"
    ]
    await call(
        "GET", f"{V2}/{{category}}/pending", f"{V2}/image_generation/pending", 200, headers=req
    )
    await call(
        "POST",
        "/api/model_references/v1/{category}",
        "/api/model_references/v1/image_generation",
        503,
        json={},
        headers=req,
    )

    await call("GET", f"{PQ}/changes", f"{PQ}/changes?statuses=pending&limit=2", 200, headers=req)
    await call("GET", f"{PQ}/changes", f"{PQ}/changes?limit=0", 422, headers=req)
    await call("GET", f"{PQ}/my_changes", f"{PQ}/my_changes", 200, headers=req)
    await call(
        "GET", f"{PQ}/my_changes", f"{PQ}/my_changes", 403, headers={"apikey": "test-reader-key"}
    )
    await call("GET", f"{PQ}/changes/{{change_id}}", f"{PQ}/changes/{c3}", 200, headers=req)
    await call("GET", f"{PQ}/changes/{{change_id}}", f"{PQ}/changes/999", 404, headers=req)
    await call("GET", f"{PQ}/changes/{{change_id}}", f"{PQ}/changes/x", 422, headers=req)
    for cid in (c1, c3, c4):
        await call(
            "GET", f"{PQ}/changes/{{change_id}}/diff", f"{PQ}/changes/{cid}/diff", 200, headers=req
        )
    await call("GET", f"{PQ}/diffs", f"{PQ}/diffs?change_ids={c1}&change_ids=999", 200, headers=req)

    batches = f"{PQ}/batches"
    review = {"batch_title": "docs", "approved_ids": [c1, c2, c3, c4]}
    await call("POST", batches, batches, 403, json=review, headers=req)
    await call("POST", batches, batches, 422, json={"batch_title": " "}, headers=appr)
    await call(
        "POST",
        batches,
        batches,
        400,
        json={"batch_title": "t", "approved_ids": [999]},
        headers=appr,
    )
    batch_id = (await call("POST", batches, batches, 200, json=review, headers=appr))["batch_id"]
    apply_one = f"{PQ}/changes/{{change_id}}/apply"
    await call("POST", apply_one, f"{PQ}/changes/{c1}/apply", 200, json={}, headers=appr)
    await call("POST", apply_one, f"{PQ}/changes/{c1}/apply", 400, json={}, headers=appr)
    await call("POST", apply_one, f"{PQ}/changes/999/apply", 404, json={}, headers=appr)
    apply_many = f"{PQ}/apply"
    await call("POST", apply_many, apply_many, 422, json={"change_ids": []}, headers=appr)
    await call("POST", apply_many, apply_many, 404, json={"change_ids": [999]}, headers=appr)
    await call(
        "POST",
        apply_many,
        apply_many,
        404,
        json={"change_ids": [999], "allow_mixed_batch": True},
        headers=appr,
    )
    split = (await (await client.get(f"{PQ}/changes/{c2}", headers=req)).json())["batch_id"]
    await call("POST", apply_many, apply_many, 200, json={"change_ids": [c2]}, headers=appr)
    apply_batch = f"{PQ}/apply_batch/{{batch_id}}"
    await call("POST", apply_batch, f"{PQ}/apply_batch/999", 404, headers=appr)
    await call("POST", apply_batch, f"{PQ}/apply_batch/{split}", 200, headers=appr)
    await call(
        "POST",
        f"{PQ}/purge",
        f"{PQ}/purge",
        200,
        json={"statuses": ["applied"], "dry_run": True},
        headers=appr,
    )
    await call("POST", f"{PQ}/purge", f"{PQ}/purge", 422, json={}, headers=appr)

    audit = f"{PQ}/audit"
    await call("GET", f"{audit}/current", f"{audit}/current", 200, headers=req)
    await call("GET", f"{audit}/batches", f"{audit}/batches?limit=1", 200, headers=req)
    await call(
        "GET", f"{audit}/batches/{{batch_id}}", f"{audit}/batches/{batch_id}", 200, headers=req
    )
    await call("GET", f"{audit}/batches/{{batch_id}}", f"{audit}/batches/999", 404, headers=req)
    net = f"{audit}/batches/{{batch_id}}/net_changes"
    await call("GET", net, f"{audit}/batches/{batch_id}/net_changes", 200, headers=req)
    await call("GET", net, f"{audit}/batches/{split}/net_changes", 200, headers=req)

    snap = "/api/internal/snapshots"
    name = (await call("GET", f"{snap}/current", f"{snap}/current", 200))["name"]
    resp = await client.get(f"{snap}/{name}/manifest.json")
    assert resp.status == 200
    assert "200" in doc["paths"][f"{snap}/{{name}}/{{path}}"]["get"]["responses"]
    await call("GET", f"{snap}/{{name}}/{{path}}", f"{snap}/{name}/nothing.json", 404)
    assert problems == {key: [] for key in problems}


# --- the standalone write service ----------------------------------------------------------------------


async def test_standalone_write_service_documents_itself(
    aiohttp_client: ClientFactory, tmp_path: Path, auth_file: Path
) -> None:
    """create_app() serves its own valid document covering every route it has, under its own title."""
    app = create_write_app(write_config(tmp_path / "data", HMR_AUTH_FILE=auth_file))
    client = await aiohttp_client(await serve(app))
    doc = await _document(client)
    validate(doc)
    assert doc["info"]["title"] == TITLE
    assert _routes(app) - _operations(doc) == set()
    assert "apikey" in doc["components"]["securitySchemes"]
    assert (await client.get("/api/docs")).status == 200


@pytest.mark.subprocess
def test_write_app_creation_does_not_import_the_docs_stack(tmp_path: Path) -> None:
    """The write service's create_app() leaves aiohttp-apispec, apispec and marshmallow unimported."""
    code = (
        "import sys; from services.write_queue.app import create_app; "
        "from services.write_queue.config import Config; "
        f"create_app(Config.from_environ({{'HMR_DATA_DIR': {str(tmp_path)!r}}})); "
        "print(sorted(m for m in ('aiohttp_apispec', 'apispec', 'marshmallow', 'webargs') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_request_bodies_refuse_unknown_fields_in_the_document(doc: Doc) -> None:
    """The service's own bodies say additionalProperties: false (the server answers 422 for an
    unknown field); records stay open (readers keep what they do not know)."""
    schemas = doc["components"]["schemas"]
    for name in ("PendingBatchRequest", "PurgePendingChangesRequest", "ApplyPendingChangesRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["ImageGenerationRecord"]
    assert schemas["ImageGenerationRecord"]["properties"]["name"]["minLength"] == 1


async def test_optional_nested_answers_accept_null_in_the_document(doc: Doc) -> None:
    """A nested class a field may leave null (stats' usage_stats) validates null under strict
    OpenAPI 3.0 validation, and still validates its object."""
    prop = doc["components"]["schemas"]["ModelStats"]["properties"]["usage_stats"]
    validator = OAS30Validator({**prop, "components": doc["components"]})
    assert list(validator.iter_errors(None)) == []
    assert list(validator.iter_errors({"day": 1, "month": 2, "total": 3})) == []
    assert list(validator.iter_errors({"day": "one"})) != []


async def test_every_operation_documents_its_success(doc: Doc) -> None:
    """Each operation lists the 2xx it answers on success (a DELETE's 204 included), or the 3xx
    of a route that only redirects."""
    missing = [
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if not any(code.startswith(("2", "3")) for code in operation["responses"])
    ]
    assert missing == []


@pytest.mark.parametrize(
    "name",
    [
        "ComposeNameRequest",
        "NameSchemaUpdate",
        "AliasesBody",
        "AliasBody",
        "FamilyBody",
        "FamilyMemberBody",
        "CommonFieldsUpdate",
        "NameExceptionBody",
    ],
)
async def test_toolkit_bodies_are_documented_open(doc: Doc, name: str) -> None:
    """The toolkit ignores unknown body keys (spec 07, as upstream), so its body schemas must
    not say additionalProperties: false (a client validating against them would refuse
    bodies the server takes)."""
    assert "additionalProperties" not in doc["components"]["schemas"][name]


def test_no_two_wire_classes_share_a_component_name() -> None:
    """The merged document keys schemas by class name, so two classes of one name would
    silently lose one's documentation: each name belongs to one class (shapes both services
    answer, like the toolkit's alias entry, live in shared/)."""
    modules = [
        "services.read_api.wire",
        "services.read_api.toolkit_wire",
        "services.write_queue.wire",
        "services.write_queue.toolkit_wire",
        "services.write_queue.models",
        "services.stats.wire",
    ]
    owner: dict[str, type] = {}
    clashes = []
    for module in modules:
        for value in vars(importlib.import_module(module)).values():
            if isinstance(value, type) and attrs.has(value):
                name = schema_name(value)
                if owner.setdefault(name, value) is not value:
                    clashes.append(f"{name}: {owner[name].__module__} and {value.__module__}")
    assert clashes == []
