"""Image baseline change sets: proposed, checked, queued, reviewed, applied and served; models
using a new baseline go live and reach the worker library."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from horde_model_records import Category
from horde_model_replica import ReplicaConfig, ReplicaManager
from tests.conftest import APPROVER_KEY, READER_KEY, REQUESTOR_KEY

V2 = "/api/model_references/v2"
B = f"{V2}/image_generation/baselines"
Q = f"{V2}/pending_queue"
REQ = {"apikey": REQUESTOR_KEY}
APPR = {"apikey": APPROVER_KEY}
READ = {"apikey": READER_KEY}

NEW_BASELINE = {
    "name": "hypernova_1",
    "display_name": "Hypernova 1",
    "native_resolution": 1024,
    "alternative_names": ["hypernova"],
    "capabilities": {"flow_matching": True},
    "horde_policy": {"kudos": 6, "batching": 4, "ttl": 2, "resolution_floor": 1024},
}


async def served(client: TestClient, path: str, status: int = 200) -> Any:
    for _ in range(200):
        resp = await client.get(path)
        if resp.status == status:
            return await resp.json()
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never answered {status}")


async def submit(client: TestClient, body: Any, status: int = 202) -> Any:
    resp = await client.post(f"{B}/change-sets", json=body, headers=REQ)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def approve_and_apply(client: TestClient, change_id: int) -> Any:
    resp = await client.post(
        f"{Q}/batches", json={"batch_title": "review", "approved_ids": [change_id]}, headers=APPR
    )
    assert resp.status == 200, await resp.text()
    return await client.post(f"{Q}/changes/{change_id}/apply", json={}, headers=APPR)


def change_set(*changes: Any) -> Any:
    return {"title": "Add Hypernova", "changes": list(changes)}


async def test_a_new_baseline_is_queued_applied_and_served(system: TestClient) -> None:
    """A change set adding a baseline is a 202 change of kind image_baseline; once applied the
    baseline is served, stamped by its approver, and the catalog revision moves."""
    await served(system, f"{B}/")
    queued = await submit(system, change_set({"operation": "upsert", "name": "hypernova_1",
                                               "record": NEW_BASELINE}))  # fmt: skip
    assert queued["resource_kind"] == "image_baseline"
    assert queued["model_name"] == f"baseline:{queued['resource_id']}"
    assert queued["category"] == "image_generation" and queued["operation"] == "update"
    assert queued["notes"] == "Add Hypernova"
    assert queued["request_metadata"] == {
        "route": "submit_image_baseline_change_set",
        "title": "Add Hypernova",
        "affected_baselines": ["hypernova_1"],
    }
    assert queued["related_models"] == ["hypernova_1"]
    diff = await (await system.get(f"{Q}/changes/{queued['change_id']}/diff", headers=READ)).json()
    assert diff["is_critical"] is True and diff["net_operation"] == "modified"
    assert "baselines.hypernova_1.horde_policy.kudos" in diff["fields_added"]
    resp = await approve_and_apply(system, queued["change_id"])
    assert resp.status == 200, await resp.text()
    record = await served(system, f"{B}/hypernova_1")
    assert record["horde_policy"]["kudos"] == 6.0
    assert record["metadata"]["revision"] == 1
    assert record["metadata"]["created_by"] == record["metadata"]["updated_by"] == "200"
    export = await served(system, f"{B}/export")
    assert export["metadata"]["revision"] == 2 and export["metadata"]["updated_at"]


async def test_a_stale_expected_before_is_409(system: TestClient) -> None:
    """Editing a baseline needs the record as served: anything else is a 409 naming it."""
    await served(system, f"{B}/")
    edited = {**NEW_BASELINE, "name": "flux_1"}
    body = await submit(
        system,
        change_set({"operation": "upsert", "name": "flux_1", "record": edited}),
        status=409,
    )
    assert body == {"detail": "Baseline 'flux_1' changed after review."}
    current = await served(system, f"{B}/flux_1")
    await submit(
        system,
        change_set(
            {"operation": "upsert", "name": "flux_1", "record": edited, "expected_before": current}
        ),
    )


async def test_an_applied_change_set_diffs_as_409_and_reapplies_as_no_op(
    system: TestClient,
) -> None:
    """Once applied, the change set's diff is a 409 with the reason (not a 500)."""
    await served(system, f"{B}/")
    queued = await submit(
        system, change_set({"operation": "upsert", "name": "hypernova_1", "record": NEW_BASELINE})
    )
    cid = queued["change_id"]
    assert (await approve_and_apply(system, cid)).status == 200
    resp = await system.get(f"{Q}/changes/{cid}/diff", headers=READ)
    assert resp.status == 409
    assert (await resp.json()) == {"detail": "Baseline 'hypernova_1' changed after review."}
    diffs = await (await system.get(f"{Q}/diffs?change_ids={cid}", headers=READ)).json()
    assert diffs["errors"][0]["error_type"] == "Conflict"


async def test_deleting_a_baseline_a_model_uses_is_refused(system: TestClient) -> None:
    """A baseline named by a stored image model cannot be deleted (422); an unused one can."""
    models = await served(system, f"{V2}/image_generation")
    used = next(iter(models.values()))["baseline"]
    current = await served(system, f"{B}/{used}")
    body = await submit(
        system,
        change_set({"operation": "delete", "name": used, "expected_before": current}),
        status=422,
    )
    assert body == {"detail": f"Baseline '{used}' is still named by a canonical image model."}
    anima = await served(system, f"{B}/anima")
    queued = await submit(
        system, change_set({"operation": "delete", "name": "anima", "expected_before": anima})
    )
    assert (await approve_and_apply(system, queued["change_id"])).status == 200
    await served(system, f"{B}/anima", 404)
    body = {"name": "Late Anima", "baseline": "anima", "nsfw": False}
    resp = await system.post(f"{V2}/image_generation", json=body, headers=REQ)
    assert resp.status == 422
    assert await resp.json() == {
        "detail": "Unknown baseline 'anima'. Publish it through /model_references/v2/"
        "image_generation/baselines/change-sets before submitting models that use it."
    }


async def test_a_baseline_delete_is_refused_at_apply_when_a_model_change_names_it_since(
    system: TestClient,
) -> None:
    """A model change naming the baseline, queued after the delete was proposed, makes the apply
    a 503 with the dry run's message; the delete goes back to approved (spec 06 §2.3, §4)."""
    anima = await served(system, f"{B}/anima")
    queued = await submit(
        system, change_set({"operation": "delete", "name": "anima", "expected_before": anima})
    )
    body = {"name": "Late Anima", "baseline": "anima", "nsfw": False}
    resp = await system.post(f"{V2}/image_generation", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    resp = await approve_and_apply(system, queued["change_id"])
    assert resp.status == 503
    assert (await resp.json())["detail"] == (
        "Baseline 'anima' is still named by a canonical image model."
    )
    change = await (await system.get(f"{Q}/changes/{queued['change_id']}", headers=READ)).json()
    assert change["status"] == "approved"
    assert (await served(system, f"{B}/anima"))["name"] == "anima"


async def test_beta_models_ignore_change_sets(system: TestClient) -> None:
    """A queued baseline change set is no beta model (spec 06 §4): /pending stays empty."""
    await served(system, f"{B}/")
    await submit(
        system, change_set({"operation": "upsert", "name": "hypernova_1", "record": NEW_BASELINE})
    )
    resp = await system.get(f"{V2}/image_generation/pending", headers=READ)
    assert resp.status == 200 and await resp.json() == {}


async def test_malformed_change_sets_are_422(system: TestClient) -> None:
    """No changes, a record whose name differs, an unknown key, a reserved name: 422 each."""
    await served(system, f"{B}/")
    body = await submit(system, {"title": "Nothing", "changes": []}, status=422)
    assert body == {"detail": "A baseline change set must contain at least one change."}
    body = await submit(
        system,
        change_set({"operation": "upsert", "name": "other", "record": NEW_BASELINE}),
        status=422,
    )
    assert body == {"detail": "Cannot upsert baseline 'other' without a matching record."}
    await submit(
        system,
        change_set({"operation": "upsert", "name": "x", "record": {"name": "x", "colour": "blue"}}),
        status=422,
    )
    await submit(system, change_set({"operation": "delete", "name": "export"}), status=422)
    clash = {**NEW_BASELINE, "alternative_names": ["flux_dev"]}
    body = await submit(
        system,
        change_set({"operation": "upsert", "name": "hypernova_1", "record": clash}),
        status=422,
    )
    assert body == {"detail": "Baseline alternative name 'flux_dev' names another baseline."}


async def test_change_sets_need_a_requestor(system: TestClient) -> None:
    """No key is a 401; a key without the requestor role a 403."""
    await served(system, f"{B}/")
    body = change_set({"operation": "upsert", "name": "hypernova_1", "record": NEW_BASELINE})
    assert (await system.post(f"{B}/change-sets", json=body)).status == 401
    assert (await system.post(f"{B}/change-sets", json=body, headers=READ)).status == 403


async def test_a_krea2_turbo_model_goes_live_and_reaches_the_worker_library(
    system: TestClient, tmp_path: Path
) -> None:
    """A model proposed with the krea2_turbo baseline is accepted, applied, served, and the
    worker library returns it with that baseline."""
    await served(system, f"{B}/")
    body = {"name": "Krea Sample", "baseline": "krea2_turbo", "nsfw": False}
    resp = await system.post(f"{V2}/image_generation", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    cid = (await resp.json())["change_id"]
    assert (await approve_and_apply(system, cid)).status == 200
    record = await served(system, f"{V2}/image_generation/model/Krea Sample")
    assert record["baseline"] == "krea2_turbo"
    config = ReplicaConfig.from_environ(
        {
            "AIWORKER_CACHE_HOME": str(tmp_path / "worker"),
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": str(system.make_url("/api")),
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
        }
    )
    mgr = ReplicaManager(config)
    try:
        models = await mgr.get_model_reference_async(Category.image_generation)
    finally:
        await mgr.aclose()
    assert models["Krea Sample"].baseline == "krea2_turbo"


async def test_applied_change_sets_show_in_the_audit_views(system: TestClient) -> None:
    """The change set's batch lists it as applied; the audit views answer with it."""
    await served(system, f"{B}/")
    queued = await submit(
        system, change_set({"operation": "upsert", "name": "hypernova_1", "record": NEW_BASELINE})
    )
    assert (await approve_and_apply(system, queued["change_id"])).status == 200
    change = await (await system.get(f"{Q}/changes/{queued['change_id']}", headers=READ)).json()
    bid = change["batch_id"]
    resp = await system.get(f"{Q}/audit/batches/{bid}", headers=READ)
    assert resp.status == 200, await resp.text()
    assert queued["model_name"] in await resp.text()
    resp = await system.get(f"{Q}/audit/batches/{bid}/net_changes", headers=READ)
    assert resp.status == 200, await resp.text()
    assert (await system.get(f"{Q}/audit/batches", headers=READ)).status == 200


async def test_schema_2_1_fields_go_through_the_model_queue(system: TestClient) -> None:
    """A text model proposed with licensing, context window, modes and capabilities is served
    with them once applied (guidance derived, never stored); its v1 entries show none."""
    await served(system, f"{V2}/text_generation")
    claim = {"status": "supported", "sources": [{"url": "https://example.org/card"}]}
    mit = {
        "license_expression": "MIT",
        "license_ids": ["MIT"],
        "commercial_use": "allowed",
        "redistribution": "allowed_with_conditions",
        "obligations": ["include_license"],
    }
    body = {
        "name": "NewOrg/Claims-7B",
        "parameters": 7_000_000_000,
        "instruct_format": "ChatML",
        "licensing": mit,
        "context_window": {"maximum_tokens": 32768, "sources": []},
        "interaction_modes": {"chat": claim},
        "capabilities": {"tool_calling": claim},
        "guidance": {"status": "published", "primary_profile_id": "made-up"},
    }
    resp = await system.post(f"{V2}/text_generation", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    change = await resp.json()
    assert "guidance" not in change["payload"]
    assert (await approve_and_apply(system, change["change_id"])).status == 200
    record = await served(system, f"{V2}/text_generation/model/NewOrg/Claims-7B")
    assert record["licensing"]["license_ids"] == ["MIT"]
    assert record["context_window"]["maximum_tokens"] == 32768
    assert record["interaction_modes"]["chat"]["status"] == "supported"
    assert record["capabilities"]["tool_calling"]["sources"][0]["url"] == "https://example.org/card"
    assert record["guidance"]["status"] == "legacy_label"
    assert record["metadata"]["schema_version"] == "2.1.0"
    legacy = await (await system.get("/api/model_references/v1/text_generation")).text()
    assert "NewOrg/Claims-7B" in legacy
    assert "context_window" not in legacy and "licensing" not in legacy
