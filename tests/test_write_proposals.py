"""v2 write endpoints (typed create, typed update, generic /add, delete) and beta models: every
status path, the guard order, and the PendingChangeRecord each 202 carries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from horde_model_records.licensing import CREATED_WITHOUT_NOTES, UNKNOWN_LICENSING_JSON
from horde_model_records.served import stored_fields
from tests.conftest import APPROVER_KEY, READER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_json, wait_for_status

V2 = "/api/model_references/v2"
REQ = {"apikey": REQUESTOR_KEY}
READER = {"apikey": READER_KEY}
APPROVER = {"apikey": APPROVER_KEY}

LIVE_IMAGE = "Example Photoreal"
LIVE_TEXT = "ExampleOrg/Tiny-Tales-1B"
NEW_IMAGE = {"name": "New Image Model", "baseline": "flux_1", "nsfw": False}
NEW_TEXT = {"name": "NewOrg/Foo-7B-Q4_K_M", "parameters": 7_000_000_000}

REPLICA_MSG = (
    "This instance is in REPLICA mode and does not support write operations. "
    "Only PRIMARY instances can modify data."
)
LEGACY_MSG = (
    "This deployment does not expose write operations for this API. "
    "Expected canonical_format='v2', got 'legacy'."
)
QUEUE_MSG = "Pending queue is disabled or unsupported on this deployment."
PREFIX_MSG = (
    "Model name '{name}' contains a backend prefix (aphrodite/, koboldcpp/). Submit only the base "
    "model name — backend duplicates are {what} automatically."
)

#: every PendingChangeRecord field
RECORD_FIELDS = {
    "change_id", "category", "model_name", "operation", "payload", "requested_by",
    "requested_username", "requested_at", "status", "notes", "batch_id", "batch_title",
    "approved_by", "approved_username", "approved_at", "rejected_by", "rejected_username",
    "rejected_at", "reject_reason", "applied_at", "applied_by", "applied_username",
    "applied_job_id", "updated_at", "request_metadata", "related_models",
}  # fmt: skip

#: a valid minimal body for each category's typed create
MINIMAL_BODIES: dict[str, dict[str, Any]] = {
    "image_generation": {"name": "Min", "baseline": "stable_diffusion_1", "nsfw": False},
    "text_generation": {"name": "MinOrg/Min-1B", "parameters": 1_000_000_000},
    **{
        c: {"name": "Min"}
        for c in (
            "blip", "clip", "codeformer", "controlnet", "controlnet_annotator", "esrgan", "gfpgan",
            "safety_checker", "video_generation", "audio_generation", "miscellaneous", "lora", "ti",
        )
    },
}  # fmt: skip

SystemFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_variant(make_system: SystemFactory, tmp_path: Path, auth_file: Path) -> SystemFactory:
    """`hmr all` with the dev auth file and extra HMR_* overrides (REPLICA, legacy, no queue...)."""

    async def factory(**overrides: object) -> TestClient:
        return await make_system(tmp_path / "variant", HMR_AUTH_FILE=auth_file, **overrides)

    return factory


async def live(client: TestClient, category: str, name: str) -> dict[str, Any]:
    """The live v2 record as the read API serves it (waits for the first snapshot to be picked up)."""
    record: dict[str, Any] = await (
        await wait_for_status(client, f"{V2}/{category}/model/{name}")
    ).json()
    return record


async def accepted(resp: Any) -> dict[str, Any]:
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def detail(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return (await resp.json())["detail"]


def locs(items: Any) -> list[list[Any]]:
    """The field paths of a 422 list envelope (checking each entry's shape on the way)."""
    assert isinstance(items, list) and items
    for item in items:
        assert {"type", "loc", "msg"} <= set(item)
    return [item["loc"] for item in items]


def has_nulls(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(has_nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(has_nulls(v) for v in value)
    return False


async def approve_and_apply(client: TestClient, change_id: int) -> None:
    resp = await client.post(
        f"{V2}/pending_queue/batches",
        json={"batch_title": "test", "approved_ids": [change_id]},
        headers=APPROVER,
    )
    assert resp.status == 200, await resp.text()
    resp = await client.post(
        f"{V2}/pending_queue/changes/{change_id}/apply", json={}, headers=APPROVER
    )
    assert resp.status == 200, await resp.text()


# --- typed create: 202 ---------------------------------------------------------------------------


async def test_create_returns_pending_change_record(system: TestClient) -> None:
    """A typed create answers 202 with the spec's PendingChangeRecord, nulls omitted."""
    body = {
        "name": "TestModel",
        "baseline": "SDXL",
        "nsfw": False,
        "config": {
            "download": [
                {
                    "file_name": "t.safetensors",
                    "file_url": "https://huggingface.co/x/t.safetensors",
                    "sha256sum": "abc",
                }
            ]
        },
    }
    change = await accepted(await system.post(f"{V2}/image_generation", json=body, headers=REQ))
    assert set(change) == {
        "change_id", "category", "model_name", "operation", "payload", "requested_by",
        "requested_username", "requested_at", "status", "updated_at", "request_metadata",
        "resource_kind",
    }  # fmt: skip
    assert change["resource_kind"] == "model_reference"
    assert change["change_id"] == 1
    assert change["category"] == "image_generation"
    assert change["model_name"] == "TestModel"
    assert change["operation"] == "create"
    assert change["requested_by"] == "100"
    assert change["requested_username"] == "Req#100"
    assert change["status"] == "pending"
    assert isinstance(change["requested_at"], int)
    assert change["updated_at"] == change["requested_at"]
    assert change["request_metadata"] == {"route": "create_v2_image_generation"}
    assert change["payload"] == {
        "record_type": "image_generation",
        "name": "TestModel",
        "metadata": {"schema_version": "2.1.0"},
        "config": {
            "download": [
                {
                    "file_name": "t.safetensors",
                    "file_url": "https://huggingface.co/x/t.safetensors",
                    "sha256sum": "abc",
                }
            ]
        },
        "model_classification": {"domain": "image", "purpose": "generation"},
        "inpainting": False,
        "baseline": "stable_diffusion_xl",
        "tags": [],
        "showcases": [],
        "trigger": [],
        "nsfw": False,
        "licensing": {**UNKNOWN_LICENSING_JSON, "notes": CREATED_WITHOUT_NOTES},
    }


async def test_create_response_is_not_cacheable(system: TestClient) -> None:
    """A 202 answer carries Cache-Control: no-store."""
    resp = await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    assert resp.status == 202
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("category", sorted(MINIMAL_BODIES))
async def test_typed_create_exists_for_every_category(system: TestClient, category: str) -> None:
    """Every category has a typed create whose route is create_v2_<category> and whose payload is complete."""
    change = await accepted(
        await system.post(f"{V2}/{category}", json=MINIMAL_BODIES[category], headers=REQ)
    )
    assert change["category"] == category
    assert change["request_metadata"] == {"route": f"create_v2_{category}"}
    payload = change["payload"]
    assert payload["record_type"] == category
    assert payload["metadata"]["schema_version"] == "2.1.0"
    assert set(payload["model_classification"]) == {"domain", "purpose"}
    assert payload["config"] == {"download": []}
    assert not has_nulls(change)


async def test_change_ids_are_monotonic(system: TestClient) -> None:
    """Successive proposals get change ids 1, 2, 3."""
    ids = []
    for name in ("One", "Two", "Three"):
        resp = await system.post(
            f"{V2}/image_generation", json={**NEW_IMAGE, "name": name}, headers=REQ
        )
        ids.append((await accepted(resp))["change_id"])
    assert ids == [1, 2, 3]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("SDXL", "stable_diffusion_xl"),
        ("stable diffusion xl", "stable_diffusion_xl"),
        ("SD15", "stable_diffusion_1"),
        ("flux dev", "flux_dev"),
    ],
)
async def test_alternative_baseline_is_normalised(
    system: TestClient, given: str, stored: str
) -> None:
    """An alternative baseline name is queued as its canonical value."""
    change = await accepted(
        await system.post(
            f"{V2}/image_generation", json={**NEW_IMAGE, "baseline": given}, headers=REQ
        )
    )
    assert change["payload"]["baseline"] == stored


async def test_unknown_extra_keys_are_422_naming_them(system: TestClient) -> None:
    """Keys that are not part of the record are refused by name, not queued nor dropped."""
    resp = await system.post(
        f"{V2}/image_generation", json={**NEW_IMAGE, "bogus_field": 1, "nswf": True}, headers=REQ
    )
    assert locs(await detail(resp, 422)) == [["body", "bogus_field"], ["body", "nswf"]]


async def test_pending_create_does_not_block_another(system: TestClient) -> None:
    """Existence is checked against live data only, so a second create of a pending name is queued."""
    await accepted(await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ))
    await accepted(await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ))


# --- text_generation specifics -------------------------------------------------------------------


async def test_text_create_fills_group_and_related_models(system: TestClient) -> None:
    """A text create gets text_model_group derived from its name and the two backend variant names."""
    change = await accepted(await system.post(f"{V2}/text_generation", json=NEW_TEXT, headers=REQ))
    assert change["payload"]["text_model_group"] == "Foo"
    assert change["related_models"] == [
        "aphrodite/NewOrg/Foo-7B-Q4_K_M",
        "koboldcpp/Foo-7B-Q4_K_M",
    ]
    assert change["request_metadata"] == {"route": "create_v2_text_generation"}


async def test_text_create_keeps_given_group(system: TestClient) -> None:
    """An explicit text_model_group is not overwritten."""
    body = {**NEW_TEXT, "text_model_group": "MyGroup"}
    change = await accepted(await system.post(f"{V2}/text_generation", json=body, headers=REQ))
    assert change["payload"]["text_model_group"] == "MyGroup"


async def test_text_payload_uses_parameters_key(system: TestClient) -> None:
    """The queued text payload carries `parameters`, never `parameters_count`."""
    change = await accepted(await system.post(f"{V2}/text_generation", json=NEW_TEXT, headers=REQ))
    assert change["payload"]["parameters"] == 7_000_000_000
    assert "parameters_count" not in change["payload"]


async def test_text_accepts_parameters_count_on_input(system: TestClient) -> None:
    """`parameters_count` is accepted as an input spelling and queued as `parameters`."""
    body = {"name": "NewOrg/Bar-3B", "parameters_count": 3_000_000_000}
    change = await accepted(await system.post(f"{V2}/text_generation", json=body, headers=REQ))
    assert change["payload"]["parameters"] == 3_000_000_000


@pytest.mark.parametrize("value", [0, -5])
async def test_text_parameters_must_be_positive(system: TestClient, value: int) -> None:
    """A text model with zero or negative parameters is 422 at body.parameters."""
    resp = await system.post(
        f"{V2}/text_generation", json={**NEW_TEXT, "parameters": value}, headers=REQ
    )
    assert locs(await detail(resp, 422)) == [["body", "parameters"]]


async def test_text_parameters_missing_is_422_at_wire_name(system: TestClient) -> None:
    """A text model without parameters is 422 at body.parameters (the wire name, not the attribute)."""
    resp = await system.post(f"{V2}/text_generation", json={"name": "NewOrg/Baz-1B"}, headers=REQ)
    assert locs(await detail(resp, 422)) == [["body", "parameters"]]


@pytest.mark.parametrize("value", ["many", True, 1.5])
async def test_text_parameters_wrong_type_is_422_at_wire_name(
    system: TestClient, value: Any
) -> None:
    """A non-integer parameters value is 422 at body.parameters (the wire name, not the attribute)."""
    resp = await system.post(
        f"{V2}/text_generation", json={**NEW_TEXT, "parameters": value}, headers=REQ
    )
    assert locs(await detail(resp, 422)) == [["body", "parameters"]]


async def test_text_parameters_numeric_string_is_coerced(system: TestClient) -> None:
    """A numeric string for parameters is coerced to an integer."""
    change = await accepted(
        await system.post(
            f"{V2}/text_generation", json={**NEW_TEXT, "parameters": "7000"}, headers=REQ
        )
    )
    assert change["payload"]["parameters"] == 7000


async def test_text_settings_accept_generation_params(system: TestClient) -> None:
    """Text settings made of whitelisted generation params are queued as given."""
    settings = {"temperature": 0.8, "top_p": 0.9, "stop_sequence": ["<|im_end|>"]}
    change = await accepted(
        await system.post(
            f"{V2}/text_generation", json={**NEW_TEXT, "settings": settings}, headers=REQ
        )
    )
    assert change["payload"]["settings"] == settings


async def test_text_settings_unknown_key_is_422(system: TestClient) -> None:
    """A text settings key outside the generation-params whitelist is 422 under body.settings."""
    resp = await system.post(
        f"{V2}/text_generation",
        json={**NEW_TEXT, "settings": {"temperature": 0.8, "not_a_param": 1}},
        headers=REQ,
    )
    assert all(loc[:2] == ["body", "settings"] for loc in locs(await detail(resp, 422)))


async def test_text_settings_nested_object_is_422(system: TestClient) -> None:
    """A text settings value that is an object (not a scalar or flat list) is 422 under body.settings."""
    resp = await system.post(
        f"{V2}/text_generation",
        json={**NEW_TEXT, "settings": {"temperature": {"min": 0.1}}},
        headers=REQ,
    )
    assert all(loc[:2] == ["body", "settings"] for loc in locs(await detail(resp, 422)))


@pytest.mark.parametrize("name", ["aphrodite/NewOrg/Foo-7B", "koboldcpp/Foo-7B"])
async def test_text_create_with_backend_prefix_is_400(system: TestClient, name: str) -> None:
    """A text create naming a backend variant is 400."""
    resp = await system.post(f"{V2}/text_generation", json={**NEW_TEXT, "name": name}, headers=REQ)
    assert await detail(resp, 400) == PREFIX_MSG.format(name=name, what="generated")


async def test_text_update_with_backend_prefix_is_400(system: TestClient) -> None:
    """A text update naming a backend variant is 400."""
    name = "aphrodite/" + LIVE_TEXT
    resp = await system.put(
        f"{V2}/text_generation/model/{name}", json={**NEW_TEXT, "name": name}, headers=REQ
    )
    assert await detail(resp, 400) == PREFIX_MSG.format(name=name, what="generated")


@pytest.mark.parametrize("name", ["aphrodite/" + LIVE_TEXT, "koboldcpp/Tiny-Tales-1B"])
async def test_text_delete_with_backend_prefix_is_400(system: TestClient, name: str) -> None:
    """A text delete naming a backend variant is 400 with the "deleted automatically" wording."""
    resp = await system.delete(f"{V2}/text_generation/model/{name}", headers=REQ)
    assert await detail(resp, 400) == PREFIX_MSG.format(name=name, what="deleted")


# --- generic /add --------------------------------------------------------------------------------


async def test_add_forces_path_category(system: TestClient) -> None:
    """/add queues the record under the path category with record_type forced to it; fields
    the path category's records do not have are refused by name, as on the typed create."""
    body = {"name": "Added Blip", "record_type": "image_generation"}
    change = await accepted(await system.post(f"{V2}/blip/add", json=body, headers=REQ))
    assert change["category"] == "blip"
    assert change["operation"] == "create"
    assert change["request_metadata"] == {"route": "create_v2_model"}
    assert change["payload"]["record_type"] == "blip"
    image_only = {**body, "name": "Added Blip 2", "baseline": "SDXL", "nsfw": True}
    resp = await system.post(f"{V2}/blip/add", json=image_only, headers=REQ)
    assert locs(await detail(resp, 422)) == [["body", "baseline"], ["body", "nsfw"]]


async def test_add_validates_with_path_category_schema(system: TestClient) -> None:
    """/add for image_generation needs the image fields like the typed create."""
    resp = await system.post(
        f"{V2}/image_generation/add", json={"name": "No Baseline", "nsfw": False}, headers=REQ
    )
    assert ["body", "baseline"] in locs(await detail(resp, 422))


async def test_add_existing_is_409(system: TestClient) -> None:
    """/add of a live model is 409 like the typed create."""
    resp = await system.post(
        f"{V2}/image_generation/add", json={**NEW_IMAGE, "name": LIVE_IMAGE}, headers=REQ
    )
    assert resp.status == 409


# --- typed update --------------------------------------------------------------------------------


async def test_update_returns_202(system: TestClient) -> None:
    """A typed update of a live model is queued with route update_v2_<category>."""
    body = {"name": LIVE_IMAGE, "baseline": "flux_1", "nsfw": True}
    change = await accepted(
        await system.put(f"{V2}/image_generation/model/{LIVE_IMAGE}", json=body, headers=REQ)
    )
    assert change["operation"] == "update"
    assert change["model_name"] == LIVE_IMAGE
    assert change["request_metadata"] == {"route": "update_v2_image_generation"}
    assert change["payload"]["baseline"] == "flux_1"
    assert change["payload"]["nsfw"] is True
    assert not has_nulls(change)


async def test_update_text_name_with_slash(system: TestClient) -> None:
    """A text model whose name contains `/` is updated through the rest of the path."""
    body = {"name": LIVE_TEXT, "parameters": 1_200_000_000}
    change = await accepted(
        await system.put(f"{V2}/text_generation/model/{LIVE_TEXT}", json=body, headers=REQ)
    )
    assert change["model_name"] == LIVE_TEXT
    assert change["request_metadata"] == {"route": "update_v2_text_generation"}
    assert change["related_models"] == ["aphrodite/" + LIVE_TEXT, "koboldcpp/Tiny-Tales-1B"]


async def test_update_copies_created_at_from_stored_record(system: TestClient) -> None:
    """An update's payload takes metadata.created_at from the live record, not from the body."""
    created = await accepted(
        await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    )
    await approve_and_apply(system, created["change_id"])
    name = NEW_IMAGE["name"]
    stored = await wait_for_json(
        system,
        f"{V2}/image_generation/model/{name}",
        lambda record: record["metadata"].get("created_at") is not None,
    )
    created_at = stored["metadata"]["created_at"]
    assert isinstance(created_at, int)
    body = {**NEW_IMAGE, "description": "edited", "metadata": {"created_at": 1}}
    change = await accepted(
        await system.put(f"{V2}/image_generation/model/{name}", json=body, headers=REQ)
    )
    assert change["payload"]["metadata"]["created_at"] == created_at
    assert change["payload"]["description"] == "edited"


async def test_update_name_mismatch_is_400(system: TestClient) -> None:
    """A typed update whose body name differs from the path is 400."""
    body = {"name": "Some Other Name", "baseline": "flux_1", "nsfw": False}
    resp = await system.put(f"{V2}/image_generation/model/{LIVE_IMAGE}", json=body, headers=REQ)
    assert await detail(resp, 400) == (
        "Model name in the path must match the payload when queuing updates."
    )


async def test_update_missing_model_is_404(system: TestClient) -> None:
    """Updating a model that is not live is 404 with the spec message."""
    body = {"name": "Ghost", "baseline": "flux_1", "nsfw": False}
    resp = await system.put(f"{V2}/image_generation/model/Ghost", json=body, headers=REQ)
    assert await detail(resp, 404) == (
        "Model 'Ghost' not found in category 'image_generation'. Use POST to create new models."
    )


# --- delete --------------------------------------------------------------------------------------


async def test_delete_payload_is_live_record(system: TestClient) -> None:
    """A delete is queued with route delete_v2_model and the live record as payload."""
    stored = await live(system, "image_generation", LIVE_IMAGE)
    change = await accepted(
        await system.delete(f"{V2}/image_generation/model/{LIVE_IMAGE}", headers=REQ)
    )
    assert change["operation"] == "delete"
    assert change["model_name"] == LIVE_IMAGE
    assert change["request_metadata"] == {"route": "delete_v2_model"}
    assert change["payload"] == stored_fields(stored)  # without what reads add


async def test_delete_text_model_with_slash(system: TestClient) -> None:
    """A text delete addresses the model through the rest of the path and lists its variants."""
    stored = await live(system, "text_generation", LIVE_TEXT)
    change = await accepted(
        await system.delete(f"{V2}/text_generation/model/{LIVE_TEXT}", headers=REQ)
    )
    assert change["payload"] == stored_fields(stored)  # without what reads add
    assert change["related_models"] == ["aphrodite/" + LIVE_TEXT, "koboldcpp/Tiny-Tales-1B"]


async def test_delete_missing_model_is_404(system: TestClient) -> None:
    """Deleting a model that is not live is 404 with the spec message."""
    resp = await system.delete(f"{V2}/image_generation/model/Ghost", headers=REQ)
    assert await detail(resp, 404) == "Model 'Ghost' not found in category 'image_generation'"


# --- 409 -----------------------------------------------------------------------------------------


async def test_create_existing_is_409(system: TestClient) -> None:
    """Creating a live model is 409 with the spec message."""
    resp = await system.post(
        f"{V2}/image_generation", json={**NEW_IMAGE, "name": LIVE_IMAGE}, headers=REQ
    )
    assert await detail(resp, 409) == (
        f"Model '{LIVE_IMAGE}' already exists in category 'image_generation'. "
        "Use PUT to update existing models."
    )


# --- 422 -----------------------------------------------------------------------------------------


async def test_nsfw_not_bool_is_422(system: TestClient) -> None:
    """A non-boolean nsfw is 422 at body.nsfw."""
    resp = await system.post(
        f"{V2}/image_generation", json={**NEW_IMAGE, "nsfw": "yes"}, headers=REQ
    )
    assert locs(await detail(resp, 422)) == [["body", "nsfw"]]


async def test_unknown_baseline_is_422(system: TestClient) -> None:
    """An image baseline the catalog does not have is a 422 pointing at the baseline change sets
    (spec 06 §2.2), checked after the key: an unauthorised caller gets a 401."""
    body = {**NEW_IMAGE, "baseline": "sd_99"}
    resp = await system.post(f"{V2}/image_generation", json=body, headers=REQ)
    assert await detail(resp, 422) == (
        "Unknown baseline 'sd_99'. Publish it through /model_references/v2/image_generation/"
        "baselines/change-sets before submitting models that use it."
    )
    resp = await system.post(f"{V2}/image_generation", json=body, headers={"apikey": "nobody"})
    assert resp.status == 401


async def test_missing_baseline_is_422(system: TestClient) -> None:
    """An image record without a baseline is 422 at body.baseline."""
    resp = await system.post(
        f"{V2}/image_generation", json={"name": "X", "nsfw": False}, headers=REQ
    )
    assert locs(await detail(resp, 422)) == [["body", "baseline"]]


async def test_non_json_body_is_422(system: TestClient) -> None:
    """A body that is not JSON is 422 at body."""
    resp = await system.post(
        f"{V2}/image_generation",
        data=b"{not json",
        headers={**REQ, "Content-Type": "application/json"},
    )
    assert locs(await detail(resp, 422)) == [["body"]]


async def test_empty_body_is_422(system: TestClient) -> None:
    """A create without a body is 422 at body."""
    resp = await system.post(f"{V2}/image_generation", headers=REQ)
    assert locs(await detail(resp, 422)) == [["body"]]


async def test_list_body_is_422(system: TestClient) -> None:
    """A JSON body that is a list, not an object, is 422 at body."""
    resp = await system.post(f"{V2}/image_generation", json=[NEW_IMAGE], headers=REQ)
    assert locs(await detail(resp, 422)) == [["body"]]


async def test_empty_name_is_422(system: TestClient) -> None:
    """A whitespace-only model name is 422."""
    resp = await system.post(
        f"{V2}/image_generation", json={**NEW_IMAGE, "name": "  "}, headers=REQ
    )
    assert resp.status == 422


async def test_backslash_in_name_is_422(system: TestClient) -> None:
    """A model name containing a backslash is 422."""
    resp = await system.post(
        f"{V2}/image_generation", json={**NEW_IMAGE, "name": "bad\\name"}, headers=REQ
    )
    assert resp.status == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/not_a_category"),
        ("POST", "/not_a_category/add"),
        ("PUT", "/not_a_category/model/X"),
        ("DELETE", "/not_a_category/model/X"),
    ],
)
async def test_unknown_category_is_422(system: TestClient, method: str, path: str) -> None:
    """An unknown category in a write path is a 422 path enum error."""
    resp = await system.request(method, V2 + path, json={"name": "X"}, headers=REQ)
    items = await detail(resp, 422)
    assert [loc[0] for loc in locs(items)] == ["path"]
    assert items[0]["type"] == "enum"
    assert items[0]["input"] == "not_a_category"


# --- guard order ---------------------------------------------------------------------------------


async def test_missing_key_wins_over_bad_body(system: TestClient) -> None:
    """Without an apikey a bad body is 401 Not authenticated, not 422."""
    resp = await system.post(f"{V2}/image_generation", json={"nsfw": "maybe"})
    assert await detail(resp, 401) == "Not authenticated"
    assert resp.headers["WWW-Authenticate"] == "APIKey"


async def test_missing_key_wins_over_unknown_category(system: TestClient) -> None:
    """Without an apikey an unknown category is 401, not 422."""
    resp = await system.post(f"{V2}/not_a_category", json=NEW_IMAGE)
    assert resp.status == 401


async def test_body_is_validated_before_the_key(system: TestClient) -> None:
    """With an unknown key a bad body is 422: validation comes before the key look-up."""
    resp = await system.post(
        f"{V2}/image_generation", json={"nsfw": "maybe"}, headers={"apikey": "unknown-key"}
    )
    assert resp.status == 422


async def test_name_mismatch_is_checked_before_roles(system: TestClient) -> None:
    """A typed update with a mismatched name is 400 even for a caller without the requestor role."""
    body = {"name": "Other", "baseline": "flux_1", "nsfw": False}
    resp = await system.put(f"{V2}/image_generation/model/{LIVE_IMAGE}", json=body, headers=READER)
    assert resp.status == 400


async def test_write_without_requestor_role_is_403(system: TestClient) -> None:
    """A reader cannot propose a change."""
    resp = await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=READER)
    assert await detail(resp, 403) == "You are not on the pending queue requestor list."


async def test_write_with_unknown_key_is_401(system: TestClient) -> None:
    """A valid body with an unknown key is 401 Invalid API key."""
    resp = await system.post(
        f"{V2}/image_generation", json=NEW_IMAGE, headers={"apikey": "unknown-key"}
    )
    assert await detail(resp, 401) == "Invalid API key"


# --- deployment guards ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/image_generation", NEW_IMAGE),
        ("POST", "/image_generation/add", NEW_IMAGE),
        ("PUT", f"/image_generation/model/{LIVE_IMAGE}", {**NEW_IMAGE, "name": LIVE_IMAGE}),
        ("DELETE", f"/image_generation/model/{LIVE_IMAGE}", None),
    ],
)
async def test_replica_rejects_writes(
    make_variant: SystemFactory, method: str, path: str, body: Any
) -> None:
    """A REPLICA answers every v2 write with 503 and the spec message."""
    client = await make_variant(HMR_MODE="REPLICA")
    resp = await client.request(method, V2 + path, json=body, headers=REQ)
    assert await detail(resp, 503) == REPLICA_MSG


async def test_replica_checks_roles_first(make_variant: SystemFactory) -> None:
    """On a REPLICA a caller without the requestor role still gets 403 (auth precedes the mode)."""
    client = await make_variant(HMR_MODE="REPLICA")
    resp = await client.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=READER)
    assert resp.status == 403


async def test_legacy_canonical_rejects_legacy_category(make_variant: SystemFactory) -> None:
    """With canonical_format=legacy a v2 write to a category with a legacy format is 503."""
    client = await make_variant(HMR_CANONICAL_FORMAT="legacy")
    resp = await client.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    assert await detail(resp, 503) == LEGACY_MSG


@pytest.mark.parametrize(
    "category", ["controlnet_annotator", "video_generation", "audio_generation", "lora", "ti"]
)
async def test_legacy_canonical_accepts_v2_only_category(
    make_variant: SystemFactory, category: str
) -> None:
    """With canonical_format=legacy a category without a legacy format is still v2-writable."""
    client = await make_variant(HMR_CANONICAL_FORMAT="legacy")
    change = await accepted(
        await client.post(f"{V2}/{category}", json=MINIMAL_BODIES[category], headers=REQ)
    )
    assert change["payload"]["record_type"] == category


async def test_queue_disabled_is_503(make_variant: SystemFactory) -> None:
    """With HMR_QUEUE_ENABLED=false a valid create is 503 with the spec message."""
    client = await make_variant(HMR_QUEUE_ENABLED="false")
    resp = await client.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    assert await detail(resp, 503) == QUEUE_MSG


async def test_queue_disabled_checked_after_existence(make_variant: SystemFactory) -> None:
    """With the queue disabled a create of a live model is still 409 (existence is checked first)."""
    client = await make_variant(HMR_QUEUE_ENABLED="false")
    resp = await client.post(
        f"{V2}/image_generation", json={**NEW_IMAGE, "name": LIVE_IMAGE}, headers=REQ
    )
    assert resp.status == 409


# --- beta models: GET /v2/{category}/pending -----------------------------------------------------


async def pending(client: TestClient, category: str) -> dict[str, Any]:
    resp = await client.get(f"{V2}/{category}/pending", headers=READER)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_beta_models_list_pending_create(system: TestClient) -> None:
    """A pending create is served, keyed by name, with its queued payload (a create without a
    conclusion queues the NOASSERTION one noting none was supplied)."""
    change = await accepted(
        await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    )
    served = await pending(system, "image_generation")
    assert change["payload"]["licensing"]["notes"] == CREATED_WITHOUT_NOTES
    assert served == {NEW_IMAGE["name"]: change["payload"]}
    assert stored_fields(served[NEW_IMAGE["name"]]) == change["payload"]


async def test_beta_models_empty(system: TestClient) -> None:
    """With nothing queued the answer is an empty object."""
    assert await pending(system, "image_generation") == {}


async def test_beta_models_latest_change_wins(system: TestClient) -> None:
    """When several changes target one name the latest one's payload is served."""
    for text in ("first", "second"):
        body = {**NEW_IMAGE, "description": text}
        await accepted(await system.post(f"{V2}/image_generation", json=body, headers=REQ))
    served = await pending(system, "image_generation")
    assert served[NEW_IMAGE["name"]]["description"] == "second"


async def test_beta_models_include_updates(system: TestClient) -> None:
    """A pending update is served with its payload."""
    body = {"name": LIVE_IMAGE, "baseline": "flux_1", "nsfw": False, "description": "new"}
    await accepted(
        await system.put(f"{V2}/image_generation/model/{LIVE_IMAGE}", json=body, headers=REQ)
    )
    served = await pending(system, "image_generation")
    assert served[LIVE_IMAGE]["description"] == "new"


async def test_beta_models_exclude_deletes(system: TestClient) -> None:
    """A pending delete never appears among the beta models."""
    await accepted(await system.delete(f"{V2}/image_generation/model/{LIVE_IMAGE}", headers=REQ))
    assert await pending(system, "image_generation") == {}


async def test_beta_models_only_their_category(system: TestClient) -> None:
    """A change queued for another category is not served."""
    await accepted(await system.post(f"{V2}/blip", json={"name": "Pending Blip"}, headers=REQ))
    assert await pending(system, "image_generation") == {}
    assert list(await pending(system, "blip")) == ["Pending Blip"]


async def test_beta_models_include_approved(system: TestClient) -> None:
    """An approved, not yet applied create is still served."""
    change = await accepted(
        await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    )
    resp = await system.post(
        f"{V2}/pending_queue/batches",
        json={"batch_title": "t", "approved_ids": [change["change_id"]]},
        headers=APPROVER,
    )
    assert resp.status == 200
    assert list(await pending(system, "image_generation")) == [NEW_IMAGE["name"]]


async def test_beta_models_exclude_rejected(system: TestClient) -> None:
    """A rejected create is no longer served."""
    change = await accepted(
        await system.post(f"{V2}/image_generation", json=NEW_IMAGE, headers=REQ)
    )
    resp = await system.post(
        f"{V2}/pending_queue/batches",
        json={"batch_title": "t", "rejected_ids": [change["change_id"]], "reject_reason": "no"},
        headers=APPROVER,
    )
    assert resp.status == 200
    assert await pending(system, "image_generation") == {}


async def test_beta_models_not_cacheable(system: TestClient) -> None:
    """The beta models answer carries Cache-Control: no-store."""
    resp = await system.get(f"{V2}/image_generation/pending", headers=READER)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"


async def test_beta_models_need_a_key(system: TestClient) -> None:
    """Without an apikey the beta models are 401."""
    resp = await system.get(f"{V2}/image_generation/pending")
    assert await detail(resp, 401) == "Not authenticated"


async def test_beta_models_unknown_key_is_401(system: TestClient) -> None:
    """With an unknown key the beta models are 401 Invalid API key."""
    resp = await system.get(f"{V2}/image_generation/pending", headers={"apikey": "unknown-key"})
    assert await detail(resp, 401) == "Invalid API key"


async def test_beta_models_unknown_category_is_422(system: TestClient) -> None:
    """An unknown category for the beta models is a 422 path enum error."""
    resp = await system.get(f"{V2}/not_a_category/pending", headers=READER)
    items = await detail(resp, 422)
    assert [loc[0] for loc in locs(items)] == ["path"]


async def test_beta_models_need_the_queue(make_variant: SystemFactory) -> None:
    """With the queue disabled the beta models are 503."""
    client = await make_variant(HMR_QUEUE_ENABLED="false")
    resp = await client.get(f"{V2}/image_generation/pending", headers=READER)
    assert await detail(resp, 503) == QUEUE_MSG


async def test_beta_models_follow_every_change_of_the_queue(system: TestClient) -> None:
    """The beta-model answer is cached per state of the queue: a new proposal and a rejection
    each show on the next read."""
    pending = f"{V2}/image_generation/pending"
    assert "Beta One" not in await (await system.get(pending, headers=REQ)).json()
    body = {**NEW_IMAGE, "name": "Beta One"}
    change = await accepted(await system.post(f"{V2}/image_generation", json=body, headers=REQ))
    assert "Beta One" in await (await system.get(pending, headers=REQ)).json()
    review = {"batch_title": "no", "rejected_ids": [change["change_id"]], "reject_reason": "no"}
    resp = await system.post(f"{V2}/pending_queue/batches", json=review, headers=APPROVER)
    assert resp.status == 200
    assert "Beta One" not in await (await system.get(pending, headers=REQ)).json()
