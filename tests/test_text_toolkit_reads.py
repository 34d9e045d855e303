"""The text toolkit's reads on the real data (spec 07 §3, §7.1, §8, §9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS30Validator

from horde_model_records import group_key
from tests.test_text_names import VECTORS

T = "/api/model_references/v2/text_generation"


async def _get(client: TestClient, path: str, status: int = 200) -> Any:
    resp = await client.get(T + path)
    assert resp.status == status, await resp.text()
    return await resp.json()


@pytest.mark.parametrize(
    ("name", "base", "size", "variant", "quant", "version", "extras", "group"), VECTORS
)
async def test_parse_name_vectors(
    client: TestClient,
    name: str,
    base: str,
    size: str | None,
    variant: str | None,
    quant: str | None,
    version: str | None,
    extras: list[tuple[str, int, str]],
    group: str,
) -> None:
    """parse_name answers the spec's vectors field for field."""
    resp = await client.get(T + "/parse_name", params={"name": name})
    assert resp.status == 200
    assert await resp.json() == {
        "original_name": name,
        "base_name": base,
        "size": size,
        "variant": variant,
        "quant": quant,
        "version": version,
        "suggested_group": group,
        "extras": [{"value": v, "position": p, "inferred_type": t} for v, p, t in extras],
    }


async def test_parse_name_accepts_an_empty_name(client: TestClient) -> None:
    """An empty name parses to empty and null parts."""
    body = await _get(client, "/parse_name?name=")
    assert body["base_name"] == "" and body["size"] is None and body["suggested_group"] == ""


async def test_parse_name_without_name_is_422(client: TestClient) -> None:
    """A missing `name` is a 422 located at the query parameter."""
    body = await _get(client, "/parse_name", 422)
    assert body["detail"][0]["loc"] == ["query", "name"]


async def test_distinct_baselines(client: TestClient) -> None:
    """51 distinct baselines, sorted by code point."""
    body = await _get(client, "/distinct_baselines")
    assert len(body["baselines"]) == 51
    assert body["baselines"][0] == "CohereLabs/c4ai-command-a-03-2025"
    assert body["baselines"] == sorted(body["baselines"])


async def test_groups(client: TestClient) -> None:
    """419 stored groups, sorted by code point."""
    body = await _get(client, "/groups")
    assert len(body["groups"]) == 419
    assert body["groups"][:4] == ["5-BlueStar", "AI21-Jamba-1.5-Mini", "AID-Neo", "Agatha"]


async def test_groups_summary_totals_and_entry(client: TestClient) -> None:
    """The summary's totals and the Mixtral entry are upstream's."""
    body = await _get(client, "/groups/summary")
    totals = {k: v for k, v in body.items() if k != "groups"}
    assert totals == {
        "total_groups": 419,
        "total_models": 719,
        "groups_with_families": 0,
        "groups_with_aliases": 0,
        "groups_with_issues": 418,
    }
    mixtral = next(g for g in body["groups"] if g["group_name"] == "Mixtral")
    assert {k: v for k, v in mixtral.items() if k != "health_issues"} == {
        "group_name": "Mixtral",
        "canonical_count": 1,
        "backend_duplicate_count": 0,
        "has_custom_schema": False,
        "family_name": None,
        "alias_canonical": None,
        "aliases": [],
        "available_sizes": ["8X7B"],
    }
    assert [i["issue_type"] for i in mixtral["health_issues"]] == [
        "singleton_group",
        "missing_baseline",
    ]
    stheno = next(g for g in body["groups"] if g["group_name"] == "L3-Stheno")
    assert stheno["available_sizes"] == ["0K"]  # sizes parsed with the author kept (upstream)


async def test_groups_health(client: TestClient) -> None:
    """Health counts are upstream's; only Behemoth-ReduX is clean."""
    body = await _get(client, "/groups/health")
    assert body["total_groups_checked"] == 419 and body["groups_with_issues"] == 418
    assert body["issue_counts_by_type"] == {
        "singleton_group": 312,
        "missing_baseline": 360,
        "missing_description": 341,
        "inconsistent_baseline": 7,
    }
    assert list(body["issue_counts_by_type"]) == [
        "singleton_group",
        "missing_baseline",
        "missing_description",
        "inconsistent_baseline",
    ]
    assert "Behemoth-ReduX" not in {i["group_name"] for i in body["issues"]}
    gemma = [i for i in body["issues"] if i["group_name"] == "gemma-4-it-qat-unquantized"]
    assert {
        "group_name": "gemma-4-it-qat-unquantized",
        "issue_type": "inconsistent_baseline",
        "message": "Members have different baselines: google/gemma-4-12B, google/gemma-4-31B",
        "severity": "warning",
    } in gemma


async def test_group_detail_example(client: TestClient) -> None:
    """The L3-Stheno detail is the spec's example."""
    body = await _get(client, "/group?name=L3-Stheno")
    first = body["members"][0]
    assert first == {
        "name": "Sao10K/L3-8B-Stheno-v3.1",
        "parsed": {
            "base_name": "L3-Stheno",
            "size": "8B",
            "variant": None,
            "quant": None,
            "version": "v3.1",
            "extras": [],
        },
        "parameters": 8000000000,
        "baseline": "",
        "nsfw": False,
        "description": "",
        "url": "",
        "style": "",
        "tags": [],
        "display_name": "",
        "instruct_format": "Llama 3",
        "is_backend_duplicate": False,
        "backend_prefix": None,
        "guidance": {
            "status": "legacy_label",
            "primary_profile_id": None,
            "supplemental_profile_ids": [],
        },
    }
    rest = {k: v for k, v in body.items() if k != "members"}
    assert rest == {
        "group_name": "L3-Stheno",
        "common_fields": {"baseline": "", "nsfw": False},
        "available_sizes": ["8B"],
        "available_variants": [None],
        "available_quants": [None],
        "available_versions": ["v3.1", "v3.2"],
        "size_usage": {"8B": 2},
        "variant_usage": {},
        "quant_usage": {},
        "name_format": {
            "separator": "-",
            "part_order": ["size", "version"],
            "author_included": True,
            "common_author": "Sao10K",
            "template": "{author}/{size}-{version}",
            "extra_parts": [],
        },
        "canonical_count": 2,
        "backend_duplicate_count": 0,
        "name_schema_is_custom": False,
        "exception_members": [],
        "related_family": None,
        "guidance_coverage": {"published": 0, "legacy_label": 1, "undocumented": 1},
    }


async def test_group_detail_of_an_unknown_group_is_404(client: TestClient) -> None:
    """A group with no members is a 404 naming it."""
    body = await _get(client, "/group?name=No/Such", 404)
    assert body == {"detail": "No models found in group 'No/Such'"}


async def test_group_detail_without_name_is_422(client: TestClient) -> None:
    """`name` is required."""
    body = await _get(client, "/group", 422)
    assert body["detail"][0]["loc"] == ["query", "name"]


async def test_group_detail_is_cacheable(client: TestClient) -> None:
    """A group's detail carries an ETag and answers 304 to it."""
    resp = await client.get(T + "/group", params={"name": "Mixtral"})
    etag = resp.headers["ETag"]
    again = await client.get(
        T + "/group", params={"name": "Mixtral"}, headers={"If-None-Match": etag}
    )
    assert again.status == 304


async def test_inferred_name_schema(client: TestClient) -> None:
    """Qwen3's inferred schema has the spec's part order, and no extra_parts here."""
    body = await _get(client, "/group/name_schema?name=Qwen3")
    assert body == {
        "group_name": "Qwen3",
        "name_schema": {
            "separator": "-",
            "part_order": ["base", "size", "variant", "extra:DATE"],
            "author_included": True,
            "common_author": "Qwen",
            "template": "{author}/{base}-{size}-{variant}-{extra:DATE}",
            "extra_parts": [],
        },
        "is_custom": False,
    }


async def test_name_schema_of_an_unknown_group_is_404(client: TestClient) -> None:
    """No stored schema and no members: 404."""
    body = await _get(client, "/group/name_schema?name=Nope", 404)
    assert body == {"detail": "No models found in group 'Nope'"}


COMPOSE = [
    (
        {
            "author": "Sao10K",
            "base_name": "L3-Stheno",
            "size": "8B",
            "version": "v3.2",
            "part_order": ["base", "size", "version"],
        },
        "Sao10K/L3-Stheno-8B-v3.2",
        False,
        "L3-Stheno",
    ),
    (
        {
            "base_name": "Mistral",
            "size": "7B",
            "variant": "Instruct",
            "version": "v0.2",
            "quant": "Q4_K_M",
        },
        "Mistral-7B-Instruct-v0.2-Q4_K_M",
        False,
        "Mistral",
    ),
    (
        {"author": "acrastt", "base_name": "Marx", "size": "3B", "version": "V3"},
        "acrastt/Marx-3B-V3",
        True,
        "Marx",
    ),
    (
        {
            "author": "TheBloke",
            "base_name": "Mistral",
            "size": "7B",
            "variant": "Instruct",
            "separator": "_",
            "part_order": ["quant", "base", "size", "nonsense"],
        },
        "TheBloke/Mistral_7B",
        False,
        "Mistral",
    ),
    ({"base_name": "", "size": "", "unknown_key": 1}, "-", False, "-"),
]


@pytest.mark.parametrize(("body", "composed", "exists", "group"), COMPOSE)
async def test_compose_name_vectors(
    client: TestClient, body: dict[str, Any], composed: str, exists: bool, group: str
) -> None:
    """compose_name answers the spec's vectors; unknown keys are ignored."""
    resp = await client.post(T + "/compose_name", json=body)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {
        "composed_name": composed,
        "already_exists": exists,
        "suggested_group": group,
    }


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"base_name": "x"}, ["body", "size"]),
        ({"base_name": "x", "size": "7B", "part_order": "base"}, ["body", "part_order"]),
    ],
)
async def test_compose_name_bad_body_is_422(
    client: TestClient, body: dict[str, Any], loc: list[str]
) -> None:
    """A missing required part or a wrongly typed one is a 422 naming the field."""
    resp = await client.post(T + "/compose_name", json=body)
    assert resp.status == 422
    assert [item["loc"] for item in (await resp.json())["detail"]] == [loc]


async def test_aliases_and_families_are_empty(client: TestClient) -> None:
    """The reference data has no aliases or families."""
    assert await _get(client, "/aliases") == {"entries": []}
    assert await _get(client, "/families") == {"families": []}


async def test_missing_alias_and_family_are_404(client: TestClient) -> None:
    """Unknown alias entries and families are 404s naming them."""
    assert await _get(client, "/aliases/Foo", 404) == {
        "detail": "No alias entry for canonical group 'Foo'"
    }
    assert await _get(client, "/families/Foo", 404) == {"detail": "Family 'Foo' not found"}


async def test_a_segment_with_a_slash_is_unreachable(client: TestClient) -> None:
    """`{canonical}` and `{family_name}` are one path segment: `%2F` matches no route."""
    for path in ("/aliases/a%2Fb", "/families/a%2Fb"):
        assert await _get(client, path, 404) == {"detail": "Not Found"}


async def test_families_detect_defaults(client: TestClient) -> None:
    """Default bounds: 63 suggestions over 419 groups, Anubis first."""
    body = await _get(client, "/families/detect")
    assert len(body["suggestions"]) == 63
    assert (
        body["total_groups_analyzed"],
        body["groups_in_families"],
        body["standalone_groups"],
    ) == (
        419,
        188,
        231,
    )
    assert body["suggestions"][0] == {
        "family_name": "Anubis",
        "members": ["Anubis-Mini", "Anubis-Pro"],
    }


async def test_families_detect_bounds(client: TestClient) -> None:
    """Tighter bounds give the spec's 11 suggestions."""
    body = await _get(client, "/families/detect?min_prefix_length=6&min_family_size=4")
    assert len(body["suggestions"]) == 11
    assert (body["groups_in_families"], body["standalone_groups"]) == (68, 351)


@pytest.mark.parametrize(
    "query",
    [
        "min_prefix_length=1",
        "min_prefix_length=21",
        "min_family_size=1",
        "min_family_size=51",
        "min_family_size=x",
    ],
)
async def test_families_detect_out_of_bounds_is_422(client: TestClient, query: str) -> None:
    """Bounds outside 2–20 and 2–50 are 422s."""
    await _get(client, "/families/detect?" + query, 422)


async def test_v1_include_group_places_every_entry(client: TestClient, legacy_dir: Path) -> None:
    """Every v1 entry, backend variants included, gets its model's group and the group summary."""
    resp = await client.get("/api/model_references/v1/text_generation?include_group=true")
    assert resp.status == 200
    body = await resp.json()
    db = json.loads((legacy_dir / "text" / "db.json").read_bytes())
    assert list(body) == list(db) and len(body) == 2157
    models = await (await client.get(T)).json()
    canonical_group = {}
    for name, record in models.items():
        for key in (name, f"aphrodite/{name}", f"koboldcpp/{name.split('/', 1)[-1]}"):
            canonical_group[key] = record["text_model_group"]
    for key, entry in body.items():
        assert {k: v for k, v in entry.items() if not k.startswith("text_model_group")} == db[key]
        assert entry["text_model_group"] == group_key(key) == canonical_group[key], key
    assert len({e["text_model_group"] for e in body.values()}) == 419
    stheno = body["Sao10K/L3-8B-Stheno-v3.2"]["text_model_group_summary"]
    assert stheno == {
        "member_count": 6,
        "available_sizes": ["0K", "8B"],
        "available_quants": [],
        "common_baseline": None,
        "any_nsfw": False,
        "any_has_description": True,
        "merged_tags": ["8B", "popular", "roleplay"],
        "name_format": {
            "separator": "-",
            "part_order": ["size", "version"],
            "author_included": True,
            "common_author": None,
            "template": "{author}/{size}-{version}",
        },
    }


async def test_v1_without_include_group_is_the_plain_view(client: TestClient) -> None:
    """Without the flag (or with false) the v1 view has no group keys."""
    for url in ("", "?include_group=false"):
        body = await (await client.get("/api/model_references/v1/text_generation" + url)).json()
        assert "text_model_group" not in body["Sao10K/L3-8B-Stheno-v3.2"]


async def test_v1_include_group_invalid_is_422(client: TestClient) -> None:
    """A non-boolean include_group is a 422."""
    resp = await client.get("/api/model_references/v1/text_generation?include_group=maybe")
    assert resp.status == 422


async def test_answers_match_their_documented_schemas(client: TestClient) -> None:
    """Real toolkit answers validate against the derived OpenAPI document."""
    doc = await (await client.get("/api/openapi.json")).json()
    urls = [
        ("/parse_name", "/parse_name?name=TheBloke/Mistral-7B-Instruct-v0.2-GGUF"),
        ("/distinct_baselines", "/distinct_baselines"),
        ("/groups", "/groups"),
        ("/groups/summary", "/groups/summary"),
        ("/groups/health", "/groups/health"),
        ("/group", "/group?name=L3-Stheno"),
        ("/group/name_schema", "/group/name_schema?name=Qwen3"),
        ("/aliases", "/aliases"),
        ("/families", "/families"),
        ("/families/detect", "/families/detect"),
    ]
    problems = {}
    for template, url in urls:
        resp = await client.get(T + url)
        assert resp.status == 200, url
        schema = doc["paths"][T + template]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]
        validator = OAS30Validator({**schema, "components": doc["components"]})
        problems[url] = [e.message[:200] for e in validator.iter_errors(await resp.json())]
    assert problems == {url: [] for _, url in urls}


async def test_store_reads_document_their_replica_503(client: TestClient) -> None:
    """The alias and family reads answer 503 on a REPLICA deployment: each says so in the
    document, not only the snapshot's absence."""
    doc = await (await client.get("/api/openapi.json")).json()
    for path in ("/aliases", "/aliases/{canonical}", "/families", "/families/{family_name}"):
        text = doc["paths"][T + path]["get"]["responses"]["503"]["description"]
        assert "REPLICA" in text, path
