"""Record schema 2.1.0 on the real data: the licensing default and text guidance in v2 reads,
the new text fields, the baseline catalog as the vocabulary; v1 views never see any of it."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category, structure_record, unstructure_record
from horde_model_records.categories import (
    BASELINE_ALIASES,
    KNOWN_BASELINES,
    merge_baseline_vocabulary,
)
from horde_model_records.licensing import UNKNOWN_LICENSING_JSON
from horde_model_records.records import TextGenerationRecord
from horde_model_records.served import read_fields, stored_fields

V1 = "/api/model_references/v1"
V2 = "/api/model_references/v2"

NOASSERTION = {
    "license_expression": "NOASSERTION",
    "license_ids": [],
    "commercial_use": "unknown",
    "redistribution": "unknown",
    "obligations": [],
    "evidence": [],
    "notes": "No reviewed licensing conclusion is currently available.",
    "files": {},
}

MIT = {
    "license_expression": "MIT",
    "license_ids": ["MIT"],
    "commercial_use": "allowed",
    "redistribution": "allowed_with_conditions",
    "obligations": ["include_license"],
    "evidence": [{"source": "https://example.org/LICENSE", "checked_at": "2026-06-29"}],
    "files": {},
}


@pytest.mark.parametrize("category", ["image_generation", "text_generation", "clip", "esrgan"])
async def test_every_v2_record_shows_the_noassertion_default(
    client: TestClient, category: str
) -> None:
    """A record with no reviewed conclusion reads with the NOASSERTION default, nulls left out."""
    records = await (await client.get(f"{V2}/{category}")).json()
    assert records
    assert all(rec["licensing"] == NOASSERTION for rec in records.values())


async def test_single_model_and_search_show_the_default(client: TestClient) -> None:
    """The single-model read and both searches carry the same default."""
    one = await (await client.get(f"{V2}/image_generation/model/Deliberate")).json()
    assert one["licensing"] == NOASSERTION
    page = await (await client.get(f"{V2}/image_generation/search?limit=3")).json()
    assert all(r["licensing"] == NOASSERTION for r in page["results"])
    page = await (await client.get(f"{V2}/search?limit=3")).json()
    assert all(r["licensing"] == NOASSERTION for r in page["results"])


async def test_text_guidance_status_is_derived_from_instruct_format(client: TestClient) -> None:
    """With an empty guidance catalog, 127 text models are legacy_label and 592 undocumented."""
    records = await (await client.get(f"{V2}/text_generation")).json()
    statuses = Counter(rec["guidance"]["status"] for rec in records.values())
    assert statuses == {"undocumented": 592, "legacy_label": 127}
    labelled = next(r for r in records.values() if r["guidance"]["status"] == "legacy_label")
    assert labelled["instruct_format"].strip()
    assert labelled["guidance"] == {
        "status": "legacy_label",
        "primary_profile_id": None,
        "supplemental_profile_ids": [],
    }


async def test_image_records_have_no_guidance(client: TestClient) -> None:
    """Guidance is a text field only."""
    records = await (await client.get(f"{V2}/image_generation")).json()
    assert not any("guidance" in rec for rec in records.values())


@pytest.mark.parametrize("path", ["stable_diffusion", "clip", "text_generation"])
async def test_v1_views_never_show_the_new_fields(client: TestClient, path: str) -> None:
    """Legacy readers see neither licensing nor guidance."""
    body = await (await client.get(f"{V1}/{path}")).read()
    assert b'"licensing"' not in body and b'"guidance"' not in body


def test_text_fields_of_schema_2_1_round_trip() -> None:
    """context_window, interaction_modes, capabilities and licensing are kept; guidance is not."""
    data = {
        "name": "org/Model-7B",
        "parameters": 7_000_000_000,
        "licensing": MIT,
        "context_window": {"maximum_tokens": 8192, "sources": [{"url": "https://x.org/card"}]},
        "interaction_modes": {"chat": {"status": "supported", "sources": []}},
        "capabilities": {"tool_calling": {"status": "unknown", "sources": []}},
        "guidance": {"status": "published", "primary_profile_id": "chatml"},
    }
    record = structure_record(Category.text_generation, data)
    assert isinstance(record, TextGenerationRecord)
    assert record.context_window is not None and record.context_window.maximum_tokens == 8192
    out = unstructure_record(record)
    assert "guidance" not in out
    assert out["licensing"] == MIT
    assert out["interaction_modes"] == data["interaction_modes"]
    assert out["metadata"]["schema_version"] == "2.1.0"


def test_read_fields_and_stored_fields_are_inverse() -> None:
    """What a read adds, taking it back out gives the stored record again."""
    stored = {"name": "x", "parameters": 1, "instruct_format": "ChatML"}
    served = read_fields(Category.text_generation, stored)
    assert served["licensing"] == UNKNOWN_LICENSING_JSON
    assert served["guidance"]["status"] == "legacy_label"
    assert stored_fields(served) == stored
    reviewed = {**stored, "licensing": MIT}
    assert read_fields(Category.text_generation, reviewed)["licensing"] == MIT
    assert stored_fields(read_fields(Category.text_generation, reviewed)) == reviewed
    published = read_fields(
        Category.text_generation,
        stored,
        {"primary_profile_id": "chatml", "supplemental_profile_ids": ["tools"]},
    )
    assert published["guidance"] == {
        "status": "published",
        "primary_profile_id": "chatml",
        "supplemental_profile_ids": ["tools"],
    }


def test_the_catalog_is_the_baseline_vocabulary() -> None:
    """The 13 shipped baselines and their alternative names are known; krea2 is krea2_turbo."""
    keys = set(KNOWN_BASELINES.values())
    assert {"krea2_turbo", "anima", "z_image_turbo", "qwen_image"} <= keys
    assert len(BASELINE_ALIASES) == 13
    assert KNOWN_BASELINES["krea2"] == "krea2_turbo"
    assert KNOWN_BASELINES["anima_turbo"] == "anima"
    assert KNOWN_BASELINES["SDXL"] == "stable_diffusion_xl"


def test_unknown_baseline_is_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A record naming a baseline no catalog knows loads as it is, with one warning."""
    data = {"name": "Future", "baseline": "hypothetical_arch_9", "nsfw": False}
    with caplog.at_level(logging.WARNING, logger="horde_model_records"):
        record = structure_record(Category.image_generation, data)
        structure_record(Category.image_generation, data)
    assert unstructure_record(record)["baseline"] == "hypothetical_arch_9"
    warned = [r for r in caplog.records if "hypothetical_arch_9" in r.getMessage()]
    assert len(warned) == 1


def test_a_served_catalog_extends_the_vocabulary() -> None:
    """Merging a catalog makes its key and alternative names known, and keeps the old ones."""
    merge_baseline_vocabulary(
        {"baselines": {"brand_new_arch": {"alternative_names": ["bna", "brand new arch"]}}}
    )
    assert KNOWN_BASELINES["bna"] == "brand_new_arch"
    assert KNOWN_BASELINES["brand_new_arch"] == "brand_new_arch"
    assert KNOWN_BASELINES["krea2"] == "krea2_turbo"


async def test_search_shows_text_records_without_guidance(client: TestClient) -> None:
    """Guidance is on category and single-model reads, not in search results."""
    page = await (await client.get(f"{V2}/text_generation/search?limit=5")).json()
    assert page["results"] and not any("guidance" in r for r in page["results"])
    assert all("licensing" in r for r in page["results"])
    for found in page["results"]:  # the single-model read, less its guidance status
        one = await (await client.get(f"{V2}/text_generation/model/{found['name']}")).json()
        assert "guidance" in one and {k: v for k, v in one.items() if k != "guidance"} == found


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ({"karras": True, "clip_skip": 2}, {"clip_skip": 2, "schedulers": ["karras"]}),
        ({"karras": False}, {"schedulers": ["normal"]}),
        ({"karras": True, "schedulers": ["simple"]}, {"schedulers": ["simple"]}),
        ({"karras": "yes"}, {}),
        ({"schedulers": ["karras"]}, {"schedulers": ["karras"]}),
    ],
)
def test_the_karras_flag_reads_as_schedulers(
    requirements: dict[str, object], expected: dict[str, object]
) -> None:
    """`requirements.karras` (a bool) becomes `requirements.schedulers`; an explicit list wins."""
    data = {"name": "Old", "baseline": "stable_diffusion_1", "nsfw": False}
    record = structure_record(Category.image_generation, {**data, "requirements": requirements})
    assert unstructure_record(record)["requirements"] == expected


def test_unknown_scheduler_is_kept_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown schedule is kept as written, with a warning naming it."""
    data = {"name": "X", "baseline": "stable_diffusion_1", "nsfw": False}
    requirements = {"schedulers": ["karras", "warp_drive_15b"]}
    with caplog.at_level(logging.WARNING, logger="horde_model_records"):
        record = structure_record(Category.image_generation, {**data, "requirements": requirements})
    assert unstructure_record(record)["requirements"] == requirements
    assert "warp_drive_15b" in caplog.text and "'karras'" not in caplog.text
