"""Search on the real data: filters, sorting, paging, bounds and error shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

V2 = "/api/model_references/v2"
IMG = f"{V2}/image_generation/search"
TXT = f"{V2}/text_generation/search"


@pytest.fixture(scope="module")
def image_records(real_data_dir: Path) -> list[dict[str, Any]]:
    """The v2 image records as served, in dataset order."""
    snapshots = real_data_dir / "snapshots"
    name = (snapshots / "CURRENT").read_text().strip()
    return list(
        json.loads((snapshots / name / "v2" / "image_generation.json").read_bytes()).values()
    )


async def search(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    resp = await client.get(path, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def all_hits(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    return (await search(client, path, limit=500, **params))["results"]


async def test_baseline_filter_is_exact(client: TestClient, image_records: list[dict]) -> None:
    """baseline=stable_diffusion_xl returns exactly the SDXL records, in dataset order."""
    hits = await all_hits(client, IMG, baseline="stable_diffusion_xl")
    expected = [r["name"] for r in image_records if r["baseline"] == "stable_diffusion_xl"]
    assert [h["name"] for h in hits] == expected and len(expected) == 49


async def test_nsfw_and_inpainting_combine_with_and(
    client: TestClient, image_records: list[dict]
) -> None:
    """nsfw and inpainting filters combine with AND."""
    hits = await all_hits(client, IMG, nsfw="yes", inpainting="off")
    expected = [r["name"] for r in image_records if r["nsfw"] and not r["inpainting"]]
    assert [h["name"] for h in hits] == expected and expected


async def test_tags_filters(client: TestClient, image_records: list[dict]) -> None:
    """tags_any, tags_all and tags_none follow the spec, including records with no tags."""
    tagged = [r for r in image_records if r["tags"]]
    tag = tagged[0]["tags"][0]
    any_hits = await all_hits(client, IMG, tags_any=tag)
    assert [h["name"] for h in any_hits] == [r["name"] for r in image_records if tag in r["tags"]]
    none_hits = await all_hits(client, IMG, tags_none=tag)
    assert len(none_hits) == len(image_records) - len(any_hits)
    resp = await client.get(IMG, params=[("tags_all", tag), ("tags_all", "no-such-tag")])
    assert (await resp.json())["total"] == 0


async def test_name_contains_is_case_insensitive(client: TestClient) -> None:
    """name_contains matches a case-insensitive substring of the name."""
    lower = await all_hits(client, IMG, name_contains="deliberate")
    upper = await all_hits(client, IMG, name_contains="DELIBERATE")
    assert lower == upper and lower
    assert all("deliberate" in h["name"].lower() for h in lower)


async def test_paging_envelope(client: TestClient, image_records: list[dict]) -> None:
    """total counts all matches; offset and limit page them; has_more says if more follow."""
    first = await search(client, IMG, limit=50)
    assert first["total"] == len(image_records) and first["has_more"] is True
    assert (first["offset"], first["limit"], len(first["results"])) == (0, 50, 50)
    last = await search(client, IMG, limit=50, offset=150)
    assert len(last["results"]) == len(image_records) - 150 and last["has_more"] is False
    assert last["results"][0]["name"] == image_records[150]["name"]


async def test_sort_by_name_both_directions(client: TestClient, image_records: list[dict]) -> None:
    """sort_by=name sorts by code point; sort_desc reverses it."""
    asc = [h["name"] for h in await all_hits(client, IMG, sort_by="name")]
    desc = [h["name"] for h in await all_hits(client, IMG, sort_by="name", sort_desc="true")]
    assert asc == sorted(r["name"] for r in image_records)
    assert desc == list(reversed(asc))


async def test_sort_puts_nulls_last_ascending_first_descending(client: TestClient) -> None:
    """Records without the sort field come last ascending and first descending."""
    asc = await all_hits(client, IMG, sort_by="size_on_disk_bytes")
    desc = await all_hits(client, IMG, sort_by="size_on_disk_bytes", sort_desc="1")
    assert "size_on_disk_bytes" not in asc[-1] and "size_on_disk_bytes" not in desc[0]
    sizes = [h["size_on_disk_bytes"] for h in asc[:-1]]
    assert sizes == sorted(sizes)


async def test_sort_is_stable_for_equal_keys(client: TestClient, image_records: list[dict]) -> None:
    """Equal sort keys keep dataset order, ascending and descending."""
    hits = await all_hits(client, IMG, sort_by="nsfw", sort_desc="true")
    nsfw_first = [r["name"] for r in image_records if r["nsfw"]]
    assert [h["name"] for h in hits[: len(nsfw_first)]] == nsfw_first


async def test_sort_by_nested_path(client: TestClient) -> None:
    """A nested sort path with __ is accepted (metadata__schema_version)."""
    body = await search(client, IMG, sort_by="metadata__schema_version", limit=3)
    assert len(body["results"]) == 3


@pytest.mark.parametrize(
    ("params", "start"),
    [
        ({"sort_by": "colour"}, "Invalid sort_by field: 'colour'"),
        ({"sort_by": "config"}, "Invalid sort_by field: 'config'"),
        ({"backend": "vllm"}, "Unknown backend 'vllm'"),
        ({"source": "civitai"}, "Unknown source: No provider registered under source id 'civitai'"),
    ],
)
async def test_bad_search_requests_are_400(client: TestClient, params: dict, start: str) -> None:
    """Unknown or incomparable sort fields, unknown backends and sources answer 400."""
    resp = await client.get(TXT if "backend" in params else IMG, params=params)
    assert resp.status == 400
    assert (await resp.json())["detail"].startswith(start)


@pytest.mark.parametrize(
    ("category", "params", "field"),
    [
        ("blip", {"nsfw": "true"}, "nsfw"),
        ("blip", {"tags_any": "x"}, "tags"),
        ("text_generation", {"inpainting": "false"}, "inpainting"),
        ("controlnet", {"baseline": "x"}, "baseline"),
    ],
)
async def test_filter_on_missing_field_is_400(
    client: TestClient, category: str, params: dict, field: str
) -> None:
    """A filter on a field the category's record type lacks is a 400 naming the field."""
    resp = await client.get(f"{V2}/{category}/search", params=params)
    assert resp.status == 400
    detail = (await resp.json())["detail"]
    assert detail.startswith("Filter not supported for this category: ")
    assert f"Field '{field}' does not exist" in detail


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"limit": "0"}, "greater_than_equal"),
        ({"limit": "501"}, "less_than_equal"),
        ({"offset": "-1"}, "greater_than_equal"),
        ({"limit": "ten"}, "int_parsing"),
        ({"limit": "9" * 400}, "int_parsing"),
        ({"nsfw": "perhaps"}, "bool_parsing"),
        ({"name_contains": "x" * 5000}, "string_too_long"),
    ],
)
async def test_bounds_violations_are_422_list(client: TestClient, params: dict, kind: str) -> None:
    """Bad or out-of-bounds query values are 422 in the FastAPI list envelope."""
    resp = await client.get(IMG, params=params)
    assert resp.status == 422
    detail = (await resp.json())["detail"]
    name = next(iter(params))
    assert detail[0]["type"] == kind and detail[0]["loc"] == ["query", name]


async def test_too_many_tag_values_are_422(client: TestClient) -> None:
    """More than 64 values of one tags parameter is a 422."""
    resp = await client.get(IMG, params=[("tags_any", f"t{i}") for i in range(100)])
    assert resp.status == 422


async def test_unknown_search_category_is_422_string(client: TestClient) -> None:
    """An unknown category in the search path is a 422 with a string detail."""
    resp = await client.get(f"{V2}/banana/search")
    assert resp.status == 422
    assert (await resp.json())["detail"].startswith("Unknown category 'banana'. Valid: ")


@pytest.mark.parametrize("category", ["lora", "ti", "video_generation"])
async def test_empty_categories_give_empty_page(client: TestClient, category: str) -> None:
    """lora, ti and empty categories answer an empty page."""
    body = await search(client, f"{V2}/{category}/search")
    assert body == {"results": [], "total": 0, "offset": 0, "limit": 50, "has_more": False}


async def test_text_backend_filters(client: TestClient) -> None:
    """v2 text holds no backend names: backend= finds none, exclude_backend_variations drops none."""
    assert (await search(client, TXT, backend="aphrodite"))["total"] == 0
    everything = (await search(client, TXT))["total"]
    assert (
        (await search(client, TXT, exclude_backend_variations="true"))["total"] == everything == 719
    )


async def test_quantized_partitions_text_models(client: TestClient) -> None:
    """quantized=true and quantized=false split the text models between them."""
    yes = await all_hits(client, TXT, quantized="true")
    no = (await search(client, TXT, quantized="false"))["total"]
    assert yes and len(yes) + no == 719
    names = {h["name"] for h in yes}
    assert "google/gemma-4-12B-it-qat-q4_0-unquantized" in names
    assert "acrastt/Marx-3B-V3" not in names


async def test_text_results_use_parameters_key(client: TestClient) -> None:
    """Text search results carry `parameters`, never `parameters_count`."""
    hit = (await search(client, TXT, name_contains="Marx-3B"))["results"][0]
    assert hit["parameters"] == 3_000_000_000 and "parameters_count" not in hit


async def test_search_all_spans_categories(client: TestClient) -> None:
    """The all-category search finds records of several types, each with its record_type."""
    body = await search(client, f"{V2}/search", limit=500, name_contains="a")
    kinds = {r["record_type"] for r in body["results"]}
    assert {"image_generation", "text_generation", "controlnet"} <= kinds


async def test_search_all_nsfw_filter_skips_records_without_nsfw(client: TestClient) -> None:
    """nsfw=false across categories returns only records that have an nsfw field."""
    body = await search(client, f"{V2}/search", nsfw="false", limit=500)
    assert body["total"] > 0
    assert all("nsfw" in r and r["nsfw"] is False for r in body["results"])
    assert {r["record_type"] for r in body["results"]} <= {"image_generation", "text_generation"}


async def test_search_all_sort_is_limited_to_common_fields(client: TestClient) -> None:
    """The all-category search sorts by common fields only; baseline is a 400."""
    assert (await client.get(f"{V2}/search", params={"sort_by": "baseline"})).status == 400
    body = await search(client, f"{V2}/search", sort_by="name", limit=5)
    names = [r["name"] for r in body["results"]]
    assert names == sorted(names)


async def test_search_all_dedupes_names_across_categories(client: TestClient) -> None:
    """A name in two categories is returned once, for the first category in enumeration order."""
    body = await search(client, f"{V2}/search", limit=500, name_contains="")
    names = [r["name"] for r in body["results"]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "params",
    [{"backend": "aphrodite"}, {"quantized": "true"}, {"exclude_backend_variations": "false"}],
)
async def test_text_only_filters_on_other_categories_are_400(
    client: TestClient, params: dict
) -> None:
    """backend, quantized and exclude_backend_variations on an image search are a 400, not ignored."""
    resp = await client.get(IMG, params=params)
    assert resp.status == 400
    assert "only apply to text_generation" in (await resp.json())["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/model_references/v2/search", {"baseline": "flux_1"}),
        ("/api/model_references/v2/search", {"inpainting": "true"}),
        ("/api/model_references/v2/search", {"n": "1"}),
        (IMG, {"colour": "red"}),
    ],
)
async def test_unknown_search_parameters_are_400(
    client: TestClient, path: str, params: dict
) -> None:
    """A parameter the search does not take is a 400 naming it (the all-category search takes no
    category-only filters)."""
    resp = await client.get(path, params=params)
    assert resp.status == 400
    assert next(iter(params)) in (await resp.json())["detail"]
