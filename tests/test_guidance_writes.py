"""Text guidance on the real data: migration preview, change sets, status derivation after an
apply, idempotent applies, and the checks of spec 06 §3."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY, READER_KEY, REQUESTOR_KEY

V2 = "/api/model_references/v2"
G = f"{V2}/text_generation/guidance"
Q = f"{V2}/pending_queue"
REQ = {"apikey": REQUESTOR_KEY}
APPR = {"apikey": APPROVER_KEY}
READ = {"apikey": READER_KEY}

CHATML = {
    "kind": "prompt_contract",
    "profile_id": "chatml",
    "display_name": "ChatML",
    "summary": "OpenAI-style chat markup.",
    "interaction_modes": ["chat"],
    "recommended_settings": {"temperature": 0.7},
}
TOOLS = {
    "kind": "usage_recipe",
    "profile_id": "tool-calling",
    "display_name": "Tool calling",
    "summary": "Calling tools.",
    "capability": "tool_calling",
}


@pytest.fixture
async def hmr(make_system: Any, tmp_path: Path, auth_file: Path, legacy_dir: Path) -> TestClient:
    """`hmr all` seeded with the real data."""
    client: TestClient = await make_system(
        tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_SEED_DIR=legacy_dir
    )
    await served(client, f"{G}/export", lambda body: True)
    return client


async def served(client: TestClient, path: str, check: Any) -> Any:
    body = None
    for _ in range(300):
        resp = await client.get(path)
        if resp.status == 200:
            body = await resp.json()
            if check(body):
                return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path}: {body!r}"[:400])


async def submit(client: TestClient, body: Any, status: int = 202) -> Any:
    resp = await client.post(f"{G}/change-sets", json=body, headers=REQ)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def approve(client: TestClient, *ids: int) -> None:
    resp = await client.post(
        f"{Q}/batches", json={"batch_title": "review", "approved_ids": list(ids)}, headers=APPR
    )
    assert resp.status == 200, await resp.text()


async def apply(client: TestClient, change_id: int) -> Any:
    return await client.post(f"{Q}/changes/{change_id}/apply", json={}, headers=APPR)


async def text_model(client: TestClient, with_format: bool) -> str:
    records = await served(client, f"{V2}/text_generation", lambda b: True)
    return next(n for n, r in records.items() if bool(r.get("instruct_format")) is with_format)


async def test_migration_preview_covers_the_127_labelled_models(hmr: TestClient) -> None:
    """The preview assigns every labelled model; applying it publishes all 127."""
    resp = await hmr.post(f"{G}/migration/preview", headers=REQ)
    assert resp.status == 200, await resp.text()
    preview = await resp.json()
    assert preview["source_model_count"] == 127
    change_set = preview["change_set"]
    assert change_set["title"] == "Migrate legacy instruct-format guidance"
    assert preview["format_count"] == len(change_set["profile_changes"]) > 0
    first = change_set["profile_changes"][0]["profile"]
    assert first["summary"].startswith("Review and document the legacy ")
    assert first["interaction_modes"] == ["instruction"]
    queued = await submit(hmr, change_set)
    assert queued["resource_kind"] == "text_guidance"
    assert queued["model_name"] == f"guidance:{queued['resource_id']}"
    assert len(queued["request_metadata"]["affected_models"]) == 127
    await approve(hmr, queued["change_id"])
    assert (await apply(hmr, queued["change_id"])).status == 200
    records = await served(
        hmr,
        f"{V2}/text_generation",
        lambda b: Counter(r["guidance"]["status"] for r in b.values())["published"] == 127,
    )
    assert Counter(r["guidance"]["status"] for r in records.values()) == {
        "published": 127,
        "undocumented": 592,
    }
    again = await (await hmr.post(f"{G}/migration/preview", headers=REQ)).json()
    assert again == {"change_set": None, "source_model_count": 0, "format_count": 0}


async def test_a_profile_and_assignment_are_published(hmr: TestClient) -> None:
    """A contract, a recipe and an assignment go live together; reads resolve them."""
    model = await text_model(hmr, with_format=False)
    body = {
        "title": "ChatML",
        "profile_changes": [
            {"operation": "create", "profile_id": "chatml", "profile": CHATML},
            {"operation": "create", "profile_id": "tool-calling", "profile": TOOLS},
        ],
        "assignment_changes": [
            {
                "model_name": model,
                "assignment": {
                    "model_name": model,
                    "primary_profile_id": "chatml",
                    "supplemental_profile_ids": ["tool-calling"],
                },
            }
        ],
    }
    queued = await submit(hmr, body)
    diff = await (await hmr.get(f"{Q}/changes/{queued['change_id']}/diff", headers=READ)).json()
    assert "profiles.chatml.summary" in diff["fields_added"] and diff["is_critical"]
    await approve(hmr, queued["change_id"])
    assert (await apply(hmr, queued["change_id"])).status == 200
    resolved = await served(
        hmr, f"{G}/model?name={model}", lambda b: b["summary"]["status"] == "published"
    )
    assert resolved["primary_profile"]["profile_id"] == "chatml"
    assert [p["profile_id"] for p in resolved["supplemental_profiles"]] == ["tool-calling"]
    profiles = await (await hmr.get(f"{G}/profiles")).json()
    counts = {p["profile_id"]: p["assigned_model_count"] for p in profiles["items"]}
    assert counts == {"chatml": 1, "tool-calling": 1}
    one = await (await hmr.get(f"{V2}/text_generation/model/{model}")).json()
    assert one["guidance"] == {
        "status": "published",
        "primary_profile_id": "chatml",
        "supplemental_profile_ids": ["tool-calling"],
    }
    assignments = await (await hmr.get(f"{G}/assignments?profile_id=tool-calling")).json()
    assert [a["model_name"] for a in assignments["items"]] == [model]
    group = await (
        await hmr.get(f"{V2}/text_generation/group?name={one['text_model_group']}")
    ).json()
    member = next(m for m in group["members"] if m["name"] == model)
    assert member["guidance"] == one["guidance"]  # spec 06 §3.2: the group view too
    assert group["guidance_coverage"]["published"] == 1
    edit = {**one, "description": "Reviewed."}
    resp = await hmr.put(f"{V2}/text_generation/model/{model}", json=edit, headers=REQ)
    assert resp.status == 202, await resp.text()
    pending = await (await hmr.get(f"{V2}/text_generation/pending", headers=READ)).json()
    assert pending[model]["guidance"] == one["guidance"]  # beta models show it as reads do


async def test_applying_an_already_applied_change_set_is_a_no_op(hmr: TestClient) -> None:
    """Two identical change sets queued before either applies: the second apply succeeds
    without changing anything (upstream conflicts)."""
    body = {
        "title": "ChatML",
        "profile_changes": [{"operation": "create", "profile_id": "chatml", "profile": CHATML}],
    }
    first, second = await submit(hmr, body), await submit(hmr, body)
    await approve(hmr, first["change_id"], second["change_id"])
    assert (await apply(hmr, first["change_id"])).status == 200
    revision = (await served(hmr, f"{G}/export", lambda b: b["profiles"]))["metadata"]["revision"]
    assert (await apply(hmr, second["change_id"])).status == 200
    export = await (await hmr.get(f"{G}/export")).json()
    assert export["metadata"]["revision"] == revision == 2


async def test_stale_expected_before_is_409(hmr: TestClient) -> None:
    """Updating a profile that does not match expected_before is a 409 naming it."""
    body = {
        "title": "Edit",
        "profile_changes": [
            {"operation": "update", "profile_id": "chatml", "profile": CHATML,
             "expected_before": CHATML}
        ],
    }  # fmt: skip
    got = await submit(hmr, body, status=409)
    assert got == {"detail": "Guidance profile 'chatml' changed after review."}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"title": "Empty"}, "A guidance change set must contain at least one change."),
        (
            {
                "title": "Bad settings",
                "profile_changes": [
                    {
                        "operation": "create",
                        "profile_id": "chatml",
                        "profile": {**CHATML, "recommended_settings": {"warmth": 1, "zest": 2}},
                    }
                ],
            },
            "Unknown text generation settings: warmth, zest",
        ),
        (
            {
                "title": "HTML",
                "profile_changes": [
                    {
                        "operation": "create",
                        "profile_id": "chatml",
                        "profile": {**CHATML, "summary": "<script>x</script>"},
                    }
                ],
            },
            "Guidance CommonMark must not contain raw HTML.",
        ),
        (
            {
                "title": "Prefixed",
                "profile_changes": [
                    {"operation": "create", "profile_id": "chatml", "profile": CHATML}
                ],
                "assignment_changes": [
                    {
                        "model_name": "aphrodite/x",
                        "assignment": {"model_name": "aphrodite/x", "primary_profile_id": "chatml"},
                    }
                ],
            },
            "Unknown canonical text model: aphrodite/x",
        ),
    ],
)
async def test_invalid_change_sets_are_422(hmr: TestClient, body: Any, detail: str) -> None:
    """Each of spec 06 §3's checks answers 422 with its message."""
    assert await submit(hmr, body, status=422) == {"detail": detail}


async def test_a_recipe_cannot_be_primary(hmr: TestClient) -> None:
    """An assignment's primary must be an active prompt contract."""
    model = await text_model(hmr, with_format=True)
    body = {
        "title": "Recipe as primary",
        "profile_changes": [
            {"operation": "create", "profile_id": "tool-calling", "profile": TOOLS}
        ],
        "assignment_changes": [
            {
                "model_name": model,
                "assignment": {"model_name": model, "primary_profile_id": "tool-calling"},
            }
        ],
    }
    got = await submit(hmr, body, status=422)
    assert got == {"detail": f"Assignment for '{model}' requires an active prompt contract."}


async def test_guidance_writes_need_a_requestor(hmr: TestClient) -> None:
    """No key is a 401, a reader's key a 403, for change sets and the preview alike."""
    assert (await hmr.post(f"{G}/migration/preview")).status == 401
    assert (await hmr.post(f"{G}/migration/preview", headers=READ)).status == 403
    body = {"title": "x", "profile_changes": [{"operation": "deprecate", "profile_id": "x"}]}
    assert (await hmr.post(f"{G}/change-sets", json=body, headers=READ)).status == 403


async def test_guidance_change_set_guards_run_in_spec_order(
    make_system: Any, tmp_path: Path, auth_file: Path
) -> None:
    """Spec 06 §0: the body's shape (422) before the key (401/403), the key before REPLICA
    (503), REPLICA before the settings keys (422)."""
    hmr = await make_system(tmp_path / "p", HMR_AUTH_FILE=auth_file)
    empty = {"title": "x", "profile_changes": []}
    resp = await hmr.post(f"{G}/change-sets", json=empty, headers=READ)
    assert resp.status == 422
    assert (await resp.json())[
        "detail"
    ] == "A guidance change set must contain at least one change."
    html = {**CHATML, "summary": "<b>x</b>"}
    bad_shape = {
        "title": "x",
        "profile_changes": [{"operation": "create", "profile_id": "chatml", "profile": html}],
    }
    assert (await hmr.post(f"{G}/change-sets", json=bad_shape, headers=READ)).status == 422
    zest = {**CHATML, "recommended_settings": {"zest": 1}}
    bad_settings = {
        "title": "x",
        "profile_changes": [{"operation": "create", "profile_id": "chatml", "profile": zest}],
    }
    assert (await hmr.post(f"{G}/change-sets", json=bad_settings, headers=READ)).status == 403
    replica = await make_system(tmp_path / "r", HMR_AUTH_FILE=auth_file, HMR_MODE="REPLICA")
    resp = await replica.post(f"{G}/change-sets", json=bad_settings, headers=REQ)
    assert resp.status == 503
