"""The pending queue endpoints, under both the v2 and the v1 prefix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.write_queue.keys import write_queue_key
from tests.conftest import APPROVER2_KEY, APPROVER_KEY, READER_KEY, REQUESTOR_KEY
from tests.helpers import wait_for_status

V2 = "/api/model_references/v2"
PREFIXES = (f"{V2}/pending_queue", "/api/model_references/v1/pending_queue")

REQ = {"apikey": REQUESTOR_KEY}
APPR = {"apikey": APPROVER_KEY}
APPR2 = {"apikey": APPROVER2_KEY}
READ = {"apikey": READER_KEY}

REPLICA_MSG = (
    "This instance is in REPLICA mode and does not support write operations. "
    "Only PRIMARY instances can queue model changes."
)
QUEUE_MSG = "Pending queue is disabled or unsupported on this deployment."
DOWNLOAD = [
    {
        "file_name": "q.safetensors",
        "file_url": "https://huggingface.co/x/q.safetensors",
        "sha256sum": "abc",
    }
]

#: (method, path under the prefix, JSON body) of every endpoint that checks PRIMARY (G)
G_ENDPOINTS = [
    ("GET", "/changes", None),
    ("GET", "/my_changes", None),
    ("POST", "/batches", {"batch_title": "t", "approved_ids": [1]}),
    ("POST", "/purge", {"purge_all": True}),
    ("POST", "/changes/1/apply", {}),
    ("POST", "/apply", {"change_ids": [1]}),
    ("POST", "/apply_batch/1", None),
]
#: the reader endpoints that do not check PRIMARY
NON_G_ENDPOINTS = [
    ("GET", "/changes/1", None),
    ("GET", "/changes/1/diff", None),
    ("GET", "/diffs?change_ids=1", None),
]


@pytest.fixture(params=PREFIXES, ids=["v2", "v1"])
def q(request: pytest.FixtureRequest) -> str:
    """The pending queue prefix under test."""
    return str(request.param)


async def propose_image(
    client: TestClient, name: str, headers: dict[str, str] = REQ, **fields: Any
) -> int:
    body = {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, **fields}
    resp = await client.post(f"{V2}/image_generation", json=body, headers=headers)
    assert resp.status == 202, await resp.text()
    return int((await resp.json())["change_id"])


async def propose_update(client: TestClient, name: str, **changes: Any) -> int:
    resp = await client.get(f"{V2}/image_generation/model/{name}")
    assert resp.status == 200
    body = {**(await resp.json()), **changes}
    resp = await client.put(f"{V2}/image_generation/model/{name}", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    return int((await resp.json())["change_id"])


async def propose_delete(client: TestClient, category: str, name: str) -> int:
    resp = await client.delete(f"{V2}/{category}/model/{name}", headers=REQ)
    assert resp.status == 202, await resp.text()
    return int((await resp.json())["change_id"])


async def batch(
    client: TestClient, q: str, approved: list[int], rejected: Sequence[int] = (), **extra: Any
) -> Any:
    body = {"batch_title": "review", "approved_ids": approved, "rejected_ids": list(rejected)}
    if rejected:
        body["reject_reason"] = "not wanted"
    resp = await client.post(f"{q}/batches", json={**body, **extra}, headers=APPR)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def apply(client: TestClient, q: str, change_id: int) -> Any:
    resp = await client.post(f"{q}/changes/{change_id}/apply", json={}, headers=APPR)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def get_json(client: TestClient, path: str, headers: dict[str, str] = READ) -> Any:
    resp = await client.get(path, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def ids_of(client: TestClient, path: str, headers: dict[str, str] = READ) -> list[int]:
    return [item["change_id"] for item in (await get_json(client, path, headers))["items"]]


async def detail(resp: Any) -> Any:
    return (await resp.json())["detail"]


def messages(body: Any) -> str:
    return " | ".join(str(item.get("msg")) for item in body["detail"])


@pytest.fixture
async def hmr(system: TestClient) -> TestClient:
    """The `hmr all` app on a fresh sample data dir, once its reads are served."""
    await wait_for_status(system, f"{V2}/image_generation")  # the writer's first snapshot
    return system


@pytest.fixture
async def populated(hmr: TestClient) -> TestClient:
    """Four changes: 1 pending image, 2 approved image, 3 rejected text (by 200), 4 pending update."""
    await propose_image(hmr, "Alpha Model")
    await propose_image(hmr, "Beta Model")
    resp = await hmr.post(
        f"{V2}/text_generation",
        json={"name": "TestOrg/Story-7B", "parameters": 7_000_000_000},
        headers=APPR,
    )
    assert resp.status == 202, await resp.text()
    await propose_update(hmr, "Example Photoreal", description="A new description.")
    await batch(hmr, PREFIXES[0], approved=[2], rejected=[3])
    return hmr


# --- GET /changes ------------------------------------------------------------------------------


async def test_changes_lists_everything_in_change_id_order(populated: TestClient, q: str) -> None:
    """Without filters every change is listed, ascending, with the paging fields."""
    page = await get_json(populated, f"{q}/changes")
    assert [i["change_id"] for i in page["items"]] == [1, 2, 3, 4]
    assert (page["total"], page["offset"], page["limit"]) == (4, 0, 50)


async def test_changes_list_items_include_null_fields(populated: TestClient, q: str) -> None:
    """List answers keep null fields: a pending change shows batch_id null."""
    page = await get_json(populated, f"{q}/changes?statuses=pending")
    first = page["items"][0]
    assert "batch_id" in first and first["batch_id"] is None
    assert first["applied_job_id"] is None


async def test_changes_filter_by_statuses_is_any_of(populated: TestClient, q: str) -> None:
    """Repeated statuses match any of them."""
    assert await ids_of(populated, f"{q}/changes?statuses=pending") == [1, 4]
    assert await ids_of(populated, f"{q}/changes?statuses=pending&statuses=rejected") == [1, 3, 4]
    assert await ids_of(populated, f"{q}/changes?statuses=applied") == []


async def test_changes_filter_by_categories(populated: TestClient, q: str) -> None:
    """Repeated categories match any of them."""
    assert await ids_of(populated, f"{q}/changes?categories=text_generation") == [3]
    path = f"{q}/changes?categories=text_generation&categories=image_generation"
    assert await ids_of(populated, path) == [1, 2, 3, 4]


async def test_changes_filter_by_batch_id(populated: TestClient, q: str) -> None:
    """batch_id matches the approved and the rejected change of that batch."""
    assert await ids_of(populated, f"{q}/changes?batch_id=1") == [2, 3]
    assert await ids_of(populated, f"{q}/changes?batch_id=2") == []


async def test_changes_filter_by_model_name_is_case_insensitive_substring(
    populated: TestClient, q: str
) -> None:
    """model_name matches any part of the name, ignoring case."""
    assert await ids_of(populated, f"{q}/changes?model_name=alpha") == [1]
    assert await ids_of(populated, f"{q}/changes?model_name=MODEL") == [1, 2]
    assert await ids_of(populated, f"{q}/changes?model_name=story-7b") == [3]


async def test_changes_filter_by_requested_by(populated: TestClient, q: str) -> None:
    """requested_by is a repeatable list of user ids."""
    assert await ids_of(populated, f"{q}/changes?requested_by=200") == [3]
    assert await ids_of(populated, f"{q}/changes?requested_by=100&requested_by=200") == [1, 2, 3, 4]
    assert await ids_of(populated, f"{q}/changes?requested_by=999") == []


async def test_changes_filters_are_anded(populated: TestClient, q: str) -> None:
    """Different filters must all hold."""
    path = f"{q}/changes?statuses=pending&categories=image_generation&model_name=photoreal"
    assert await ids_of(populated, path) == [4]
    assert await ids_of(populated, f"{q}/changes?statuses=approved&requested_by=200") == []


async def test_changes_offset_and_limit_page_after_filtering(populated: TestClient, q: str) -> None:
    """total counts every match; offset and limit cut the page."""
    page = await get_json(populated, f"{q}/changes?offset=1&limit=2")
    assert [i["change_id"] for i in page["items"]] == [2, 3]
    assert (page["total"], page["offset"], page["limit"]) == (4, 1, 2)
    page = await get_json(populated, f"{q}/changes?statuses=pending&offset=5")
    assert page["items"] == [] and page["total"] == 2


BAD_LIST_QUERIES = [
    "limit=0",
    "limit=501",
    "offset=-1",
    "limit=abc",
    "batch_id=0",
    "model_name=",
    "model_name=" + "x" * 201,
    "statuses=done",
    "categories=nope",
]


async def test_changes_rejects_out_of_bounds_query(populated: TestClient, q: str) -> None:
    """Paging bounds, batch_id >= 1, model_name 1-200 and enum values are checked (422)."""
    for query in BAD_LIST_QUERIES:
        resp = await populated.get(f"{q}/changes?{query}", headers=READ)
        assert resp.status == 422, query
        assert isinstance(await detail(resp), list), query


async def test_changes_accepts_limit_bounds(populated: TestClient, q: str) -> None:
    """limit 1 and 500 are both allowed."""
    assert len((await get_json(populated, f"{q}/changes?limit=1"))["items"]) == 1
    assert len((await get_json(populated, f"{q}/changes?limit=500"))["items"]) == 4


async def test_changes_needs_an_api_key(populated: TestClient, q: str) -> None:
    """No key is 401 Not authenticated, an unknown key 401 Invalid API key."""
    resp = await populated.get(f"{q}/changes")
    assert resp.status == 401
    assert await detail(resp) == "Not authenticated"
    assert resp.headers["WWW-Authenticate"] == "APIKey"
    resp = await populated.get(f"{q}/changes", headers={"apikey": "wrong"})
    assert resp.status == 401
    assert await detail(resp) == "Invalid API key"


async def test_reader_can_list_changes(populated: TestClient, q: str) -> None:
    """A valid key without any role may list the queue."""
    assert await ids_of(populated, f"{q}/changes", READ) == [1, 2, 3, 4]


# --- GET /my_changes ---------------------------------------------------------------------------


async def test_my_changes_is_scoped_to_the_caller(populated: TestClient, q: str) -> None:
    """Each requestor sees only the changes they proposed."""
    assert await ids_of(populated, f"{q}/my_changes", REQ) == [1, 2, 4]
    assert await ids_of(populated, f"{q}/my_changes", APPR) == [3]
    assert await ids_of(populated, f"{q}/my_changes", APPR2) == []


async def test_my_changes_filters_and_pages(populated: TestClient, q: str) -> None:
    """statuses, categories, offset and limit apply within the caller's changes."""
    assert await ids_of(populated, f"{q}/my_changes?statuses=pending", REQ) == [1, 4]
    assert await ids_of(populated, f"{q}/my_changes?categories=text_generation", REQ) == []
    page = await get_json(populated, f"{q}/my_changes?offset=1&limit=1", REQ)
    assert [i["change_id"] for i in page["items"]] == [2]
    assert page["total"] == 3
    resp = await populated.get(f"{q}/my_changes?limit=501", headers=REQ)
    assert resp.status == 422


async def test_my_changes_needs_the_requestor_role(populated: TestClient, q: str) -> None:
    """A reader without the requestor role gets 403."""
    resp = await populated.get(f"{q}/my_changes", headers=READ)
    assert resp.status == 403
    assert await detail(resp) == "You are not on the pending queue requestor list."


# --- GET /changes/{id} -------------------------------------------------------------------------


async def test_change_by_id_returns_the_record(populated: TestClient, q: str) -> None:
    """A change is returned with its fields, nulls included."""
    record = await get_json(populated, f"{q}/changes/3")
    assert record["change_id"] == 3
    assert record["status"] == "rejected"
    assert record["reject_reason"] == "not wanted"
    assert record["batch_id"] == 1
    assert record["related_models"] == ["aphrodite/TestOrg/Story-7B", "koboldcpp/Story-7B"]
    assert record["approved_by"] is None


async def test_change_by_id_unknown_is_404(populated: TestClient, q: str) -> None:
    """An id never issued is 404 Change not found."""
    resp = await populated.get(f"{q}/changes/99", headers=READ)
    assert resp.status == 404
    assert await detail(resp) == "Change not found"


async def test_change_by_id_must_be_a_positive_integer(populated: TestClient, q: str) -> None:
    """A non-integer (or non-positive) id is a 422."""
    for raw in ("abc", "1.5", "0"):
        resp = await populated.get(f"{q}/changes/{raw}", headers=READ)
        assert resp.status == 422, raw


# --- GET /changes/{id}/diff --------------------------------------------------------------------


async def test_diff_of_create_lists_every_leaf_as_added(hmr: TestClient, q: str) -> None:
    """A create diffs against nothing: every leaf added, sorted dotted paths, lists whole."""
    cid = await propose_image(hmr, "Diff Model", config={"download": DOWNLOAD})
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert diff["change_id"] == cid
    assert (diff["category"], diff["model_name"], diff["operation"]) == (
        "image_generation",
        "Diff Model",
        "create",
    )
    assert diff["current_state"] is None
    assert diff["proposed_state"]["name"] == "Diff Model"
    assert diff["net_operation"] == "added"
    paths = [d["field_path"] for d in diff["field_diffs"]]
    assert paths == sorted(paths)
    assert {"baseline", "config.download", "metadata.schema_version", "name"} <= set(paths)
    assert "model_classification.domain" in paths
    entry = next(d for d in diff["field_diffs"] if d["field_path"] == "config.download")
    assert entry["old_value"] is None
    assert entry["new_value"][0]["file_name"] == "q.safetensors"
    assert all(d["change_type"] == "added" for d in diff["field_diffs"])
    assert diff["fields_added"] == paths
    assert diff["fields_removed"] == [] and diff["fields_modified"] == []
    assert diff["is_critical"] is True


async def test_diff_of_description_only_update_is_not_critical(hmr: TestClient, q: str) -> None:
    """An update that only touches the description is one modified field, not critical."""
    cid = await propose_update(hmr, "Example Photoreal", description="Only words.")
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert diff["net_operation"] == "modified"
    assert diff["current_state"]["name"] == "Example Photoreal"
    assert diff["field_diffs"] == [
        {
            "field_path": "description",
            "old_value": diff["current_state"]["description"],
            "new_value": "Only words.",
            "change_type": "modified",
        }
    ]
    assert diff["fields_modified"] == ["description"]
    assert diff["is_critical"] is False


async def test_diff_of_image_baseline_change_is_critical(hmr: TestClient, q: str) -> None:
    """Changing an image model's baseline is a critical change."""
    cid = await propose_update(hmr, "Example Photoreal", baseline="stable_diffusion_xl")
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert [d["field_path"] for d in diff["field_diffs"]] == ["baseline"]
    assert diff["field_diffs"][0]["old_value"] == "stable_diffusion_1"
    assert diff["field_diffs"][0]["new_value"] == "stable_diffusion_xl"
    assert diff["is_critical"] is True


async def test_diff_of_config_download_change_is_critical(hmr: TestClient, q: str) -> None:
    """Any change under config.download is critical."""
    cid = await propose_update(hmr, "Example Photoreal", config={"download": DOWNLOAD})
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert [d["field_path"] for d in diff["field_diffs"]] == ["config.download"]
    assert diff["field_diffs"][0]["change_type"] == "modified"
    assert diff["is_critical"] is True


async def test_diff_of_identical_update_is_unchanged(hmr: TestClient, q: str) -> None:
    """An update that equals the live record is unchanged with no field diffs."""
    cid = await propose_update(hmr, "Example Photoreal")
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert diff["net_operation"] == "unchanged"
    assert diff["field_diffs"] == []
    assert diff["is_critical"] is False


async def test_diff_of_delete_lists_the_removed_record(hmr: TestClient, q: str) -> None:
    """A delete keeps its request-time snapshot as proposed_state and removes every leaf."""
    cid = await propose_delete(hmr, "image_generation", "Example Photoreal")
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert diff["net_operation"] == "deleted"
    assert diff["proposed_state"] == diff["current_state"]
    assert diff["proposed_state"]["name"] == "Example Photoreal"
    assert diff["field_diffs"]
    assert all(d["change_type"] == "removed" for d in diff["field_diffs"])
    assert all(d["new_value"] is None for d in diff["field_diffs"])
    assert diff["fields_removed"] == [d["field_path"] for d in diff["field_diffs"]]
    assert diff["is_critical"] is True


async def test_diff_of_delete_of_a_gone_model_is_unchanged(hmr: TestClient, q: str) -> None:
    """A delete whose model was deleted meanwhile is unchanged."""
    first = await propose_delete(hmr, "image_generation", "Example Photoreal")
    second = await propose_delete(hmr, "image_generation", "Example Photoreal")
    await batch(hmr, q, approved=[first])
    await apply(hmr, q, first)
    diff = await get_json(hmr, f"{q}/changes/{second}/diff")
    assert diff["net_operation"] == "unchanged"
    assert diff["current_state"] is None
    assert diff["field_diffs"] == []


async def test_diff_of_create_of_an_existing_model_is_modified(hmr: TestClient, q: str) -> None:
    """A create whose model was created meanwhile is modified."""
    first = await propose_image(hmr, "Twin Model")
    second = await propose_image(hmr, "Twin Model", description="second")
    await batch(hmr, q, approved=[first])
    await apply(hmr, q, first)
    diff = await get_json(hmr, f"{q}/changes/{second}/diff")
    assert diff["net_operation"] == "modified"
    assert "description" in diff["fields_added"]


async def test_diff_of_update_of_a_missing_model_is_added(hmr: TestClient, q: str) -> None:
    """An update whose model was deleted meanwhile is added."""
    update = await propose_update(hmr, "Example Photoreal", description="late")
    delete = await propose_delete(hmr, "image_generation", "Example Photoreal")
    await batch(hmr, q, approved=[delete])
    await apply(hmr, q, delete)
    diff = await get_json(hmr, f"{q}/changes/{update}/diff")
    assert diff["net_operation"] == "added"
    assert diff["current_state"] is None


async def test_diff_of_downloads_is_critical_in_every_category(hmr: TestClient, q: str) -> None:
    """miscellaneous has no critical fields of its own, yet a config.download change is critical
    (spec 06 §1.2 amends 03 §10: licensing and downloads are critical in every category)."""
    resp = await hmr.get(f"{V2}/miscellaneous/model/example_layers_sd1")
    body = {**(await resp.json()), "config": {"download": DOWNLOAD}}
    resp = await hmr.put(f"{V2}/miscellaneous/model/example_layers_sd1", json=body, headers=REQ)
    assert resp.status == 202, await resp.text()
    cid = (await resp.json())["change_id"]
    diff = await get_json(hmr, f"{q}/changes/{cid}/diff")
    assert diff["field_diffs"]
    assert diff["is_critical"] is True


async def test_diff_unknown_change_is_404(hmr: TestClient, q: str) -> None:
    """The diff of an unknown change is 404 Change not found."""
    resp = await hmr.get(f"{q}/changes/42/diff", headers=READ)
    assert resp.status == 404
    assert await detail(resp) == "Change not found"
    resp = await hmr.get(f"{q}/changes/x/diff", headers=READ)
    assert resp.status == 422


# --- GET /diffs --------------------------------------------------------------------------------


async def test_diffs_reports_missing_ids_as_errors(populated: TestClient, q: str) -> None:
    """Known ids get diffs in request order; unknown ids an errors entry; total counts all ids."""
    page = await get_json(populated, f"{q}/diffs?change_ids=4&change_ids=77&change_ids=1")
    assert [d["change_id"] for d in page["diffs"]] == [4, 1]
    assert page["total"] == 3
    assert page["errors"] == [
        {"change_id": 77, "error": "Change not found", "error_type": "NotFound"}
    ]


async def test_diffs_accepts_one_hundred_ids(populated: TestClient, q: str) -> None:
    """100 ids is the upper bound and is accepted."""
    query = "&".join(f"change_ids={i}" for i in range(1, 101))
    page = await get_json(populated, f"{q}/diffs?{query}")
    assert page["total"] == 100
    assert len(page["diffs"]) == 4 and len(page["errors"]) == 96


async def test_diffs_validates_the_id_list(populated: TestClient, q: str) -> None:
    """No ids, a non-integer id, or more than 100 ids is a 422."""
    too_many = "&".join(f"change_ids={i}" for i in range(1, 102))
    for query in ("", "change_ids=abc", too_many):
        resp = await populated.get(f"{q}/diffs?{query}", headers=READ)
        assert resp.status == 422, query[:40]


# --- POST /batches -----------------------------------------------------------------------------


async def test_batch_approves_into_a_new_batch(populated: TestClient, q: str) -> None:
    """Approved changes get the open batch id, title and approver fields."""
    result = await batch(populated, q, approved=[1], batch_title="  Second look  ")
    assert result["batch_id"] == 1  # change 2 is still approved in the open batch 1
    assert result["batch_title"] == "Second look"
    assert result["rejected"] == []
    (record,) = result["approved"]
    assert record["change_id"] == 1
    assert record["status"] == "approved"
    assert record["batch_id"] == 1
    assert record["batch_title"] == "Second look"
    assert (record["approved_by"], record["approved_username"]) == ("200", "Appr#200")
    assert isinstance(record["approved_at"], int)


async def test_batch_reject_fields_and_shared_batch_id(hmr: TestClient, q: str) -> None:
    """Rejected changes share the approved changes' batch id and carry the reason."""
    a = await propose_image(hmr, "Keep Model")
    b = await propose_image(hmr, "Drop Model")
    result = await batch(hmr, q, approved=[a], rejected=[b], reject_reason="dup")
    assert result["batch_id"] == 1
    (rejected,) = result["rejected"]
    assert rejected["status"] == "rejected"
    assert rejected["batch_id"] == 1
    assert rejected["reject_reason"] == "dup"
    assert (rejected["rejected_by"], rejected["rejected_username"]) == ("200", "Appr#200")
    assert rejected["approved_by"] is None


async def test_batch_reject_only_has_no_batch_id(hmr: TestClient, q: str) -> None:
    """A request that approves nothing gives its rejected changes a null batch id."""
    a = await propose_image(hmr, "Nope Model")
    result = await batch(hmr, q, approved=[], rejected=[a])
    assert result["batch_id"] is None
    assert result["rejected"][0]["batch_id"] is None
    assert result["rejected"][0]["batch_title"] == "review"
    # no batch id was consumed: the next approval opens batch 1
    b = await propose_image(hmr, "Yes Model")
    assert (await batch(hmr, q, approved=[b]))["batch_id"] == 1


async def test_batch_drops_non_positive_ids_and_sorts(hmr: TestClient, q: str) -> None:
    """Ids <= 0 are dropped, duplicates removed and the list sorted."""
    a = await propose_image(hmr, "One Model")
    b = await propose_image(hmr, "Two Model")
    result = await batch(hmr, q, approved=[b, a, b, 0, -3])
    assert [r["change_id"] for r in result["approved"]] == [a, b]


BAD_BATCHES = {
    "blank-title": {"batch_title": "   ", "approved_ids": [1]},
    "no-title": {"approved_ids": [1]},
    "long-title": {"batch_title": "x" * 121, "approved_ids": [1]},
    "no-ids": {"batch_title": "t"},
    "only-non-positive-ids": {"batch_title": "t", "approved_ids": [0, -1], "rejected_ids": []},
    "id-in-both": {
        "batch_title": "t",
        "approved_ids": [1],
        "rejected_ids": [1],
        "reject_reason": "r",
    },
    "reject-without-reason": {"batch_title": "t", "rejected_ids": [1]},
    "reject-blank-reason": {"batch_title": "t", "rejected_ids": [1], "reject_reason": "   "},
    "long-reason": {"batch_title": "t", "rejected_ids": [1], "reject_reason": "x" * 501},
    "string-id": {"batch_title": "t", "approved_ids": ["1"]},
}


async def test_batch_invalid_request_is_422(populated: TestClient, q: str) -> None:
    """Request-level problems are 422 and nothing changes."""
    before = await get_json(populated, f"{q}/changes")
    for case, body in BAD_BATCHES.items():
        resp = await populated.post(f"{q}/batches", json=body, headers=APPR)
        assert resp.status == 422, case
    assert await get_json(populated, f"{q}/changes") == before


async def test_batch_422_messages(populated: TestClient, q: str) -> None:
    """The 422 envelope names the rule that was broken."""
    resp = await populated.post(f"{q}/batches", json={"batch_title": "t"}, headers=APPR)
    assert "Provide at least one approved or rejected change id." in messages(await resp.json())
    resp = await populated.post(
        f"{q}/batches", json={"batch_title": "t", "rejected_ids": [1]}, headers=APPR
    )
    assert "reject_reason" in messages(await resp.json())


async def test_batch_with_unknown_id_is_400_and_changes_nothing(
    populated: TestClient, q: str
) -> None:
    """A nonexistent id is 400 and the other ids of the request stay pending."""
    resp = await populated.post(
        f"{q}/batches", json={"batch_title": "t", "approved_ids": [1, 99]}, headers=APPR
    )
    assert resp.status == 400
    assert await detail(resp) == "Change 99 does not exist."
    assert (await get_json(populated, f"{q}/changes/1"))["status"] == "pending"


async def test_batch_with_non_pending_id_is_400_and_changes_nothing(
    hmr: TestClient, q: str
) -> None:
    """A non-pending id is 400, nothing is modified and no batch id is consumed."""
    a = await propose_image(hmr, "First Model")
    b = await propose_image(hmr, "Second Model")
    c = await propose_image(hmr, "Third Model")
    await batch(hmr, q, approved=[a])
    await apply(hmr, q, a)  # batch 1 is done; no approved change is left open
    before = await get_json(hmr, f"{q}/changes")
    resp = await hmr.post(
        f"{q}/batches",
        json={"batch_title": "t", "approved_ids": [b], "rejected_ids": [a], "reject_reason": "r"},
        headers=APPR,
    )
    assert resp.status == 400
    assert await detail(resp) == f"Change {a} is not pending (status=applied)."
    assert await get_json(hmr, f"{q}/changes") == before
    # the failed request did not consume batch id 2
    assert (await batch(hmr, q, approved=[b, c]))["batch_id"] == 2


async def test_batch_of_an_approved_change_reports_its_status(
    populated: TestClient, q: str
) -> None:
    """Re-approving an approved change names its status."""
    resp = await populated.post(
        f"{q}/batches", json={"batch_title": "t", "approved_ids": [2]}, headers=APPR
    )
    assert resp.status == 400
    assert await detail(resp) == "Change 2 is not pending (status=approved)."


async def test_batch_needs_the_approver_role(populated: TestClient, q: str) -> None:
    """A requestor cannot approve: 403 and the change stays pending."""
    resp = await populated.post(
        f"{q}/batches", json={"batch_title": "t", "approved_ids": [1]}, headers=REQ
    )
    assert resp.status == 403
    assert await detail(resp) == "You are not on the pending queue approver list."
    assert (await get_json(populated, f"{q}/changes/1"))["status"] == "pending"


async def test_batch_without_body_is_422(populated: TestClient, q: str) -> None:
    """The body is required and must be a JSON object."""
    resp = await populated.post(f"{q}/batches", headers=APPR)
    assert resp.status == 422
    resp = await populated.post(f"{q}/batches", json=[1], headers=APPR)
    assert resp.status == 422


# --- POST /purge -------------------------------------------------------------------------------


async def test_purge_without_filter_is_422(populated: TestClient, q: str) -> None:
    """No filter and no purge_all is refused."""
    resp = await populated.post(f"{q}/purge", json={}, headers=APPR)
    assert resp.status == 422
    assert "Provide at least one filter or set purge_all=true" in messages(await resp.json())
    resp = await populated.post(
        f"{q}/purge", json={"purge_all": False, "dry_run": True}, headers=APPR
    )
    assert resp.status == 422


async def test_purge_dry_run_removes_nothing(populated: TestClient, q: str) -> None:
    """A dry run reports what would go and leaves the queue alone."""
    resp = await populated.post(
        f"{q}/purge", json={"purge_all": True, "dry_run": True}, headers=APPR
    )
    assert resp.status == 200
    assert await resp.json() == {
        "removed_count": 4,
        "removed_change_ids": [1, 2, 3, 4],
        "dry_run": True,
    }
    assert await ids_of(populated, f"{q}/changes") == [1, 2, 3, 4]


async def test_purge_removes_changes_of_any_status(hmr: TestClient, q: str) -> None:
    """pending, approved, rejected and applied changes are all purged and reported."""
    a = await propose_image(hmr, "Applied Model")
    b = await propose_image(hmr, "Approved Model")
    c = await propose_image(hmr, "Rejected Model")
    d = await propose_image(hmr, "Pending Model")
    await batch(hmr, q, approved=[a, b], rejected=[c])
    await apply(hmr, q, a)
    statuses = [i["status"] for i in (await get_json(hmr, f"{q}/changes"))["items"]]
    assert statuses == ["applied", "approved", "rejected", "pending"]
    resp = await hmr.post(f"{q}/purge", json={"purge_all": True}, headers=APPR)
    assert resp.status == 200
    assert await resp.json() == {
        "removed_count": 4,
        "removed_change_ids": [a, b, c, d],
        "dry_run": False,
    }
    assert await ids_of(hmr, f"{q}/changes") == []
    resp = await hmr.get(f"{q}/changes/{a}", headers=READ)
    assert resp.status == 404
    # the applied model stays live: purge only removes queue history
    await wait_for_status(hmr, f"{V2}/image_generation/model/Applied Model", 200)


async def test_purge_filters_are_anded(populated: TestClient, q: str) -> None:
    """Only changes matching every given filter are removed."""
    resp = await populated.post(
        f"{q}/purge",
        json={"statuses": ["pending"], "model_name": "ALPHA", "requested_by": ["100"]},
        headers=APPR,
    )
    assert resp.status == 200
    assert (await resp.json())["removed_change_ids"] == [1]
    assert await ids_of(populated, f"{q}/changes") == [2, 3, 4]
    resp = await populated.post(
        f"{q}/purge", json={"categories": ["text_generation"]}, headers=APPR
    )
    assert (await resp.json())["removed_change_ids"] == [3]


async def test_purged_change_ids_are_never_reused(populated: TestClient, q: str) -> None:
    """After a purge, the next proposal still gets a fresh id."""
    resp = await populated.post(f"{q}/purge", json={"purge_all": True}, headers=APPR)
    assert resp.status == 200
    assert await propose_image(populated, "After Purge") == 5


async def test_purge_rejects_unknown_status_or_category(populated: TestClient, q: str) -> None:
    """Unknown enum values in the purge body are a 422 and nothing is removed."""
    resp = await populated.post(f"{q}/purge", json={"statuses": ["gone"]}, headers=APPR)
    assert resp.status == 422
    resp = await populated.post(f"{q}/purge", json={"categories": ["nope"]}, headers=APPR)
    assert resp.status == 422
    assert await ids_of(populated, f"{q}/changes") == [1, 2, 3, 4]


async def test_purge_list_filters_must_be_lists(populated: TestClient, q: str) -> None:
    """statuses, categories and requested_by are JSON arrays; a string or a number is a 422."""
    bodies = [{"statuses": "pending"}, {"categories": "image_generation"}, {"statuses": 5}]
    for body in [*bodies, {"requested_by": 100}, {"requested_by": "100"}]:
        resp = await populated.post(f"{q}/purge", json=body, headers=APPR)
        assert resp.status == 422, f"{body}: {resp.status} {await resp.text()}"
    assert await ids_of(populated, f"{q}/changes") == [1, 2, 3, 4]


async def test_purge_needs_the_approver_role(populated: TestClient, q: str) -> None:
    """A requestor cannot purge."""
    resp = await populated.post(f"{q}/purge", json={"purge_all": True}, headers=REQ)
    assert resp.status == 403
    assert await ids_of(populated, f"{q}/changes") == [1, 2, 3, 4]


async def test_purge_writes_one_audit_event_per_change(populated: TestClient, q: str) -> None:
    """Each purged change gets a purge queue event naming the approver."""
    resp = await populated.post(f"{q}/purge", json={"statuses": ["pending"]}, headers=APPR)
    assert resp.status == 200
    events = await populated.server.app[write_queue_key].store.audit_events()
    purges = [e.action for e in events if e.action.get("action") == "purge"]
    assert [p["change_id"] for p in purges] == [1, 4]
    assert purges[0]["purged_by_username"] == "Appr#200"
    assert purges[0]["requested_by"] == "100"


# --- roles, REPLICA, queue disabled ------------------------------------------------------------


async def test_approver_endpoints_refuse_a_requestor(populated: TestClient, q: str) -> None:
    """batches, purge and every apply need the approver role."""
    for method, path, body in G_ENDPOINTS[2:]:
        resp = await populated.request(method, q + path, json=body, headers=REQ)
        assert resp.status == 403, path
        assert await detail(resp) == "You are not on the pending queue approver list."
    assert (await get_json(populated, f"{q}/changes/1"))["status"] == "pending"


async def test_replica_refuses_g_endpoints(
    make_system: Any, tmp_path: Path, auth_file: Path, q: str
) -> None:
    """In REPLICA mode every G endpoint answers 503 with the queue message."""
    client = await make_system(tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_MODE="REPLICA")
    for method, path, body in G_ENDPOINTS:
        resp = await client.request(method, q + path, json=body, headers=APPR)
        assert resp.status == 503, path
        assert await detail(resp) == REPLICA_MSG


async def test_replica_serves_non_g_endpoints(
    make_system: Any, tmp_path: Path, auth_file: Path, q: str
) -> None:
    """Single changes and diffs are readable on a REPLICA (no PRIMARY check)."""
    client = await make_system(tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_MODE="REPLICA")
    for path in ("/changes/1", "/changes/1/diff"):
        resp = await client.get(q + path, headers=READ)
        assert resp.status == 404, path
        assert await detail(resp) == "Change not found"
    page = await get_json(client, f"{q}/diffs?change_ids=1")
    assert page["diffs"] == [] and page["total"] == 1


async def test_replica_checks_auth_first(
    make_system: Any, tmp_path: Path, auth_file: Path, q: str
) -> None:
    """auth comes before the PRIMARY check: no key is 401, a requestor on batches is 403."""
    client = await make_system(tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_MODE="REPLICA")
    resp = await client.get(f"{q}/changes")
    assert resp.status == 401
    resp = await client.post(
        f"{q}/batches", json={"batch_title": "t", "approved_ids": [1]}, headers=REQ
    )
    assert resp.status == 403


async def test_disabled_queue_is_503(
    make_system: Any, tmp_path: Path, auth_file: Path, q: str
) -> None:
    """With the queue disabled every queue endpoint answers 503."""
    client = await make_system(
        tmp_path / "data", HMR_AUTH_FILE=auth_file, HMR_QUEUE_ENABLED="false"
    )
    for method, path, body in G_ENDPOINTS + NON_G_ENDPOINTS:
        resp = await client.request(method, q + path, json=body, headers=APPR)
        assert resp.status == 503, path
        assert await detail(resp) == QUEUE_MSG


async def test_replica_message_wins_over_disabled_queue(
    make_system: Any, tmp_path: Path, auth_file: Path, q: str
) -> None:
    """The PRIMARY check runs before the queue check on G endpoints."""
    client = await make_system(
        tmp_path / "data",
        HMR_AUTH_FILE=auth_file,
        HMR_MODE="REPLICA",
        HMR_QUEUE_ENABLED="false",
    )
    resp = await client.get(f"{q}/changes", headers=READ)
    assert await detail(resp) == REPLICA_MSG
    resp = await client.get(f"{q}/changes/1", headers=READ)
    assert await detail(resp) == QUEUE_MSG


async def test_both_prefixes_share_one_queue(populated: TestClient) -> None:
    """A change approved through v1 is seen approved through v2."""
    await batch(populated, PREFIXES[1], approved=[1])
    record = await get_json(populated, f"{PREFIXES[0]}/changes/1")
    assert record["status"] == "approved"
