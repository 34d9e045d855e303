"""The text toolkit's direct writes (spec 07 §4, §6): schemas, aliases, families; their
invariants, the check order, the audit log, and the snapshot every replica serves them from."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.write_queue.keys import write_queue_key
from shared.snapshot import SnapshotStore
from tests.conftest import APPROVER_KEY, READER_KEY, REQUESTOR_KEY
from tests.fakes.horde import refused_url
from tests.helpers import wait_for_json

T = "/api/model_references/v2/text_generation"
REQ = {"apikey": REQUESTOR_KEY}
REPLICA_MSG = (
    "This instance is in REPLICA mode and does not support write operations. "
    "Only PRIMARY instances can modify data."
)

SystemFactory = Callable[..., Awaitable[TestClient]]


async def call(
    client: TestClient,
    method: str,
    path: str,
    body: Any = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Any:
    resp = await client.request(
        method, T + path, json=body, headers=REQ if headers is None else headers
    )
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


# --- schemas -------------------------------------------------------------------------------------


async def test_put_schema_starts_from_the_defaults(system: TestClient) -> None:
    """A PUT on a group without a stored schema starts from the stored defaults (spec example)."""
    body = await call(system, "PUT", "/group/name_schema?name=Qwen3", {"separator": "_"})
    assert body == {
        "group_name": "Qwen3",
        "name_schema": {
            "separator": "_",
            "part_order": ["base", "size", "variant", "version", "quant"],
            "author_included": True,
            "common_author": None,
            "template": None,
            "extra_parts": [],
        },
        "is_custom": True,
    }


async def test_put_schema_merges_and_ignores_nulls_and_unknown_keys(system: TestClient) -> None:
    """A second PUT keeps earlier fields; null fields and unknown keys change nothing."""
    await call(system, "PUT", "/group/name_schema?name=G", {"template": "{base}", "separator": "_"})
    body = await call(
        system,
        "PUT",
        "/group/name_schema?name=G",
        {"separator": None, "bogus": 1, "part_order": ["base"]},
    )
    assert body["name_schema"]["separator"] == "_" and body["name_schema"]["template"] == "{base}"
    assert body["name_schema"]["part_order"] == ["base"]


async def test_schema_is_served_by_the_reads(system: TestClient) -> None:
    """A stored schema reaches the read side: even a group without members has it."""
    await call(system, "PUT", "/group/name_schema?name=Empty/Group", {"common_author": "Me"})
    body = await wait_for_json(
        system, T + "/group/name_schema?name=Empty/Group", lambda b: b.get("is_custom") is True
    )
    assert body["name_schema"]["common_author"] == "Me"


async def test_delete_schema(system: TestClient) -> None:
    """DELETE removes a stored schema (204); a second DELETE is a 404."""
    await call(system, "PUT", "/group/name_schema?name=G", {})
    await call(system, "DELETE", "/group/name_schema?name=G", status=204)
    body = await call(system, "DELETE", "/group/name_schema?name=G", status=404)
    assert body == {"detail": "No custom naming schema found for group 'G'"}


async def test_schema_lookup_follows_an_alias(system: TestClient) -> None:
    """A PUT on an alias starts from its canonical group's schema, and stores under the alias."""
    await call(system, "PUT", "/group/name_schema?name=Stheno", {"template": "T"})
    await call(system, "PUT", "/aliases/Stheno", {"aliases": ["L3-Stheno"]})
    body = await call(system, "PUT", "/group/name_schema?name=L3-Stheno", {"separator": "."})
    assert body["name_schema"]["template"] == "T" and body["name_schema"]["separator"] == "."


# --- aliases -------------------------------------------------------------------------------------


async def test_alias_lifecycle(system: TestClient) -> None:
    """PUT (duplicates dropped), add (no-op when present), remove, and the last remove deletes."""
    body = await call(system, "PUT", "/aliases/Stheno", {"aliases": ["A", "B", "A"]})
    assert body == {"canonical": "Stheno", "aliases": ["A", "B"]}
    assert await call(system, "POST", "/aliases/Stheno/add", {"alias": "A"}) == body
    body = await call(system, "POST", "/aliases/Stheno/add", {"alias": "C"})
    assert body["aliases"] == ["A", "B", "C"]
    for alias in ("A", "B"):
        await call(system, "POST", "/aliases/Stheno/remove", {"alias": alias})
    body = await call(system, "POST", "/aliases/Stheno/remove", {"alias": "C"})
    assert body == {"canonical": "Stheno", "aliases": []}
    await call(system, "DELETE", "/aliases/Stheno", status=404)


async def test_add_creates_an_entry(system: TestClient) -> None:
    """Adding to a group without an entry creates it."""
    assert await call(system, "POST", "/aliases/New/add", {"alias": "x"}) == {
        "canonical": "New",
        "aliases": ["x"],
    }


async def test_empty_alias_list_is_kept(system: TestClient) -> None:
    """PUT with [] stores an empty entry that reads back."""
    await call(system, "PUT", "/aliases/E", {"aliases": []})
    body = await wait_for_json(system, T + "/aliases/E", lambda b: True)
    assert body == {"canonical": "E", "aliases": []}


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("PUT", "/aliases/C", {"aliases": ["C"]}, "Canonical name 'C' cannot be its own alias"),
        ("POST", "/aliases/C/add", {"alias": "C"}, "Cannot alias 'C' to itself"),
        (
            "PUT",
            "/aliases/C",
            {"aliases": ["owned"]},
            "Alias 'owned' is already registered under canonical group 'Owner'",
        ),
        (
            "POST",
            "/aliases/C/add",
            {"alias": "owned"},
            "Alias 'owned' is already registered under canonical group 'Owner'",
        ),
    ],
)
async def test_alias_conflicts_are_409(
    system: TestClient, method: str, path: str, body: Any, detail: str
) -> None:
    """An alias belongs to one group, and a group is never its own alias."""
    await call(system, "PUT", "/aliases/Owner", {"aliases": ["owned"]})
    assert await call(system, method, path, body, 409) == {"detail": detail}


async def test_alias_not_found_cases(system: TestClient) -> None:
    """Removing a missing alias and deleting a missing entry are 404s."""
    body = await call(system, "POST", "/aliases/C/remove", {"alias": "a"}, 404)
    assert body == {"detail": "Alias 'a' not found under canonical group 'C'"}
    body = await call(system, "DELETE", "/aliases/C", status=404)
    assert body == {"detail": "No alias entry for canonical group 'C'"}


async def test_aliases_reach_parse_name_and_the_summary(system: TestClient) -> None:
    """After an alias write the reads resolve it: parse_name suggests the canonical group."""
    await call(system, "PUT", "/aliases/Tales", {"aliases": ["Tiny-Tales"]})
    body = await wait_for_json(
        system,
        T + "/parse_name?name=ExampleOrg/Tiny-Tales-1B",
        lambda b: b["suggested_group"] == "Tales",
    )
    assert body["base_name"] == "ExampleOrg/Tiny-Tales"
    summary = await wait_for_json(
        system, T + "/groups/summary", lambda b: b["groups_with_aliases"] == 1
    )
    tales = next(g for g in summary["groups"] if g["group_name"] == "Tiny-Tales")
    assert tales["alias_canonical"] == "Tales"


# --- families ------------------------------------------------------------------------------------


async def test_family_lifecycle(system: TestClient) -> None:
    """PUT sorts and de-duplicates, add and remove members, the last remove deletes it."""
    body = await call(system, "PUT", "/families/Qwen", {"members": ["Qwen3", "Qwen2.5", "Qwen3"]})
    assert body == {"family_name": "Qwen", "members": ["Qwen2.5", "Qwen3"]}
    body = await call(system, "POST", "/families/Qwen/add", {"group_name": "Qwen1.5"})
    assert body["members"] == ["Qwen1.5", "Qwen2.5", "Qwen3"]
    for group in ("Qwen1.5", "Qwen2.5"):
        await call(system, "POST", "/families/Qwen/remove", {"group_name": group})
    body = await call(system, "POST", "/families/Qwen/remove", {"group_name": "Qwen3"})
    assert body == {"family_name": "Qwen", "members": []}
    await call(system, "DELETE", "/families/Qwen", status=404)


async def test_put_family_releases_dropped_members(system: TestClient) -> None:
    """Members a PUT leaves out can join another family."""
    await call(system, "PUT", "/families/A", {"members": ["g1", "g2"]})
    await call(system, "PUT", "/families/A", {"members": ["g1"]})
    assert await call(system, "PUT", "/families/B", {"members": ["g2"]}) == {
        "family_name": "B",
        "members": ["g2"],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("PUT", "/families/B", {"members": []}, "A family must have at least one member group."),
        (
            "PUT",
            "/families/B",
            {"members": ["g"]},
            "Group 'g' already belongs to family 'A'. Remove it from that family first.",
        ),
        (
            "POST",
            "/families/B/add",
            {"group_name": "g"},
            "Group 'g' already belongs to family 'A'.",
        ),
    ],
)
async def test_family_conflicts_are_409(
    system: TestClient, method: str, path: str, body: Any, detail: str
) -> None:
    """A group is in at most one family, and a family is never empty."""
    await call(system, "PUT", "/families/A", {"members": ["g"]})
    await call(system, "PUT", "/families/B", {"members": ["h"]})
    assert await call(system, method, path, body, 409) == {"detail": detail}


async def test_family_not_found_cases(system: TestClient) -> None:
    """Missing families and members are 404s with the spec's texts."""
    assert await call(system, "POST", "/families/F/add", {"group_name": "g"}, 404) == {
        "detail": "Family 'F' does not exist."
    }
    assert await call(system, "POST", "/families/F/remove", {"group_name": "g"}, 404) == {
        "detail": "Group 'g' not found in family 'F'"
    }
    assert await call(system, "DELETE", "/families/F", status=404) == {
        "detail": "Family 'F' not found"
    }


async def test_family_reaches_the_reads(system: TestClient) -> None:
    """A family shows in the families read, the group detail and the summary."""
    await call(system, "PUT", "/families/Tales", {"members": ["Tiny-Tales"]})
    await wait_for_json(system, T + "/families", lambda b: len(b["families"]) == 1)
    detail = await wait_for_json(system, T + "/group?name=Tiny-Tales", lambda b: True)
    assert detail["related_family"] == {"family_name": "Tales", "members": ["Tiny-Tales"]}
    assert await (await system.get(T + "/families/Tales")).json() == {
        "family_name": "Tales",
        "members": ["Tiny-Tales"],
    }


async def test_a_family_named_detect_cannot_be_read(system: TestClient) -> None:
    """`detect` can be written, but GET /families/detect is the detection route."""
    await call(system, "PUT", "/families/detect", {"members": ["x"]})
    body = await wait_for_json(system, T + "/families", lambda b: len(b["families"]) == 1)
    assert body["families"][0]["family_name"] == "detect"
    assert "suggestions" in await (await system.get(T + "/families/detect")).json()


# --- check order and modes -----------------------------------------------------------------------

WRITES = [
    ("PUT", "/group/name_schema?name=G", {}),
    ("DELETE", "/group/name_schema?name=G", None),
    ("PUT", "/aliases/C", {"aliases": []}),
    ("POST", "/aliases/C/add", {"alias": "a"}),
    ("POST", "/aliases/C/remove", {"alias": "a"}),
    ("DELETE", "/aliases/C", None),
    ("PUT", "/families/F", {"members": ["g"]}),
    ("POST", "/families/F/add", {"group_name": "g"}),
    ("POST", "/families/F/remove", {"group_name": "g"}),
    ("DELETE", "/families/F", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_need_a_key(system: TestClient, method: str, path: str, body: Any) -> None:
    """No apikey: 401 `Not authenticated`, before the body is looked at."""
    resp = await system.request(method, T + path, data=b"not json")
    assert resp.status == 401
    assert await resp.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_need_the_requestor_role(
    system: TestClient, method: str, path: str, body: Any
) -> None:
    """A reader's key is a 403; an unknown key a 401."""
    assert (
        await system.request(method, T + path, json=body, headers={"apikey": READER_KEY})
    ).status == 403
    assert (
        await system.request(method, T + path, json=body, headers={"apikey": "nobody"})
    ).status == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/group/name_schema", {}),
        ("PUT", "/group/name_schema?name=G", {"separator": 5}),
        ("PUT", "/group/name_schema?name=G", None),
        ("PUT", "/aliases/C", {}),
        ("PUT", "/aliases/C", {"aliases": "A"}),
        ("POST", "/aliases/C/add", {"alias": ["a"]}),
        ("PUT", "/families/F", {"members": "g"}),
        ("POST", "/families/F/add", {}),
    ],
)
async def test_invalid_requests_are_422_before_the_role(
    system: TestClient, method: str, path: str, body: Any
) -> None:
    """Validation comes before the role check: even a reader's bad request is a 422."""
    resp = await system.request(method, T + path, json=body, headers={"apikey": READER_KEY})
    assert resp.status == 422, await resp.text()


async def test_an_approver_may_write_directly(system: TestClient) -> None:
    """Approvers hold the requestor role too (03 §2), so they may write."""
    resp = await system.put(
        T + "/aliases/C", json={"aliases": []}, headers={"apikey": APPROVER_KEY}
    )
    assert resp.status == 200


async def test_replica_refuses_writes(
    make_system: SystemFactory, tmp_path: Path, auth_file: Path
) -> None:
    """On a REPLICA every toolkit write is a 503 with the spec's message."""
    client = await make_system(tmp_path / "r", HMR_AUTH_FILE=auth_file, HMR_MODE="REPLICA")
    for method, path, body in WRITES:
        assert await call(client, method, path, body, 503) == {"detail": REPLICA_MSG}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/aliases/a%2Fb", {"aliases": ["x"]}),
        ("POST", "/aliases/a%2Fb/add", {"alias": "x"}),
        ("POST", "/aliases/a%2Fb/remove", {"alias": "x"}),
        ("DELETE", "/aliases/a%2Fb", None),
        ("PUT", "/families/a%2Fb", {"members": ["x"]}),
        ("POST", "/families/a%2Fb/add", {"group_name": "x"}),
        ("POST", "/families/a%2Fb/remove", {"group_name": "x"}),
        ("DELETE", "/families/a%2Fb", None),
    ],
)
async def test_a_segment_with_an_escaped_slash_matches_no_write(
    system: TestClient, method: str, path: str, body: Any
) -> None:
    """`{canonical}` and `{family_name}` are one segment: `%2F` reaches no route (a plain 404,
    before the key is looked at), so nothing unreachable is ever stored (spec 07 §1)."""
    for headers in (REQ, {}):
        resp = await system.request(method, T + path, json=body, headers=headers)
        assert resp.status == 404, await resp.text()
        assert await resp.json() == {"detail": "Not Found"}
    assert system.server.app[write_queue_key].live().text_toolkit.empty


# --- storage, audit, publication -----------------------------------------------------------------


async def test_writes_are_audited(system: TestClient) -> None:
    """Each changed entry is one audit event with its before and after."""
    await call(system, "PUT", "/aliases/C", {"aliases": ["a"]})
    await call(system, "POST", "/aliases/C/add", {"alias": "a"})  # a no-op: no event
    await call(system, "DELETE", "/aliases/C", status=204)
    queue = system.server.app[write_queue_key]
    events = [
        (e.category, e.model_name, e.operation, e.payload["before"], e.payload["after"])
        for e in await queue.store.audit_events()
        if e.category.startswith("text_generation_group_")
    ]
    assert events == [
        ("text_generation_group_aliases", "C", "create", None, ["a"]),
        ("text_generation_group_aliases", "C", "delete", ["a"], None),
    ]
    assert {e.logical_user_id for e in await queue.store.audit_events()} >= {"100"}


async def test_an_audit_event_names_the_request_that_made_it(system: TestClient) -> None:
    """The request id the caller saw (X-Request-Id) is on the audit event: logs and audit meet."""
    resp = await system.put(T + "/aliases/C", json={"aliases": ["a"]}, headers=REQ)
    assert resp.status == 200
    queue = system.server.app[write_queue_key]
    (event,) = [e for e in await queue.store.audit_events() if e.model_name == "C"]
    assert event.request_id is not None and event.request_id == resp.headers["X-Request-Id"]


async def test_stores_survive_a_restart(
    make_system: SystemFactory, tmp_path: Path, auth_file: Path
) -> None:
    """The stores live in SQLite: a restarted writer still has them and publishes them."""
    data = tmp_path / "d"
    first = await make_system(data, HMR_AUTH_FILE=auth_file)
    await call(first, "PUT", "/families/F", {"members": ["g"]})
    await call(first, "PUT", "/group/name_schema?name=G", {"separator": "_"})
    await first.close()
    again = await make_system(data, HMR_AUTH_FILE=auth_file)
    assert await call(again, "POST", "/families/F/add", {"group_name": "h"}) == {
        "family_name": "F",
        "members": ["g", "h"],
    }
    stores = again.server.app[write_queue_key].live().text_toolkit
    assert stores.schemas["G"]["separator"] == "_"


async def test_snapshot_carries_upstreams_files(system: TestClient, tmp_path: Path) -> None:
    """The live snapshot holds the three stores in upstream's file shapes."""
    await call(system, "PUT", "/aliases/Stheno", {"aliases": ["L3-Stheno"]})
    await call(system, "PUT", "/families/Qwen", {"members": ["Qwen3"]})
    snapshot = SnapshotStore(tmp_path / "data" / "snapshots").read_current()
    assert snapshot is not None
    files = snapshot.files
    assert json.loads(files["toolkit/text_generation_group_aliases.json"]) == {
        "Stheno": {"aliases": ["L3-Stheno"]}
    }
    assert json.loads(files["toolkit/text_generation_group_families.json"]) == {
        "Qwen": {"family_name": "Qwen", "members": ["Qwen3"]}
    }
    assert json.loads(files["toolkit/text_generation_group_schemas.json"]) == {}


async def test_a_separate_read_replica_serves_the_stores(
    system: TestClient, make_client: Any, tmp_path: Path
) -> None:
    """A read replica on the same data directory (another app) serves what the writer stored."""
    await call(system, "PUT", "/families/Qwen", {"members": ["Qwen3"]})
    replica = await make_client(tmp_path / "data", HMR_MODE="PRIMARY")
    body = await wait_for_json(replica, T + "/families", lambda b: len(b["families"]) == 1)
    assert body == {"families": [{"family_name": "Qwen", "members": ["Qwen3"]}]}


async def test_a_replica_deployment_keeps_no_side_stores(
    system: TestClient, make_client: Any, tmp_path: Path
) -> None:
    """A REPLICA deployment (as upstream) answers alias and family reads with 503 and resolves
    no aliases, even when its snapshot carries them (spec 07 §4)."""
    await call(system, "PUT", "/aliases/Tales", {"aliases": ["Tiny-Tales"]})
    await call(system, "PUT", "/families/Tales", {"members": ["Tiny-Tales"]})
    await call(system, "PUT", "/group/name_schema?name=Tiny-Tales", {"separator": "_"})
    await wait_for_json(system, T + "/families", lambda b: len(b["families"]) == 1)
    mirror = await make_client(tmp_path / "data", HMR_MODE="REPLICA")
    for path, what in (
        ("/aliases", "alias"),
        ("/aliases/Tales", "alias"),
        ("/families", "family"),
        ("/families/Tales", "family"),
    ):
        resp = await mirror.get(T + path)
        assert resp.status == 503
        assert await resp.json() == {
            "detail": f"Group {what} storage is not available (backend may be in REPLICA mode)."
        }
    parsed = await (await mirror.get(T + "/parse_name?name=ExampleOrg/Tiny-Tales-1B")).json()
    assert parsed["suggested_group"] == "Tiny-Tales"
    schema = await (await mirror.get(T + "/group/name_schema?name=Tiny-Tales")).json()
    assert schema["is_custom"] is False
    detail = await (await mirror.get(T + "/group?name=Tiny-Tales")).json()
    assert detail["related_family"] is None


async def test_a_replica_deployment_ignores_the_stores_whatever_it_is_asked_first(
    system: TestClient, make_client: Any, tmp_path: Path
) -> None:
    """The toolkit view is built once per snapshot by its first request: when that request
    is the v1 view with groups, a REPLICA deployment still resolves no aliases and finds no
    stored schema afterwards (spec 07 §4)."""
    await call(system, "PUT", "/aliases/Tales", {"aliases": ["Tiny-Tales"]})
    await call(system, "PUT", "/group/name_schema?name=Tiny-Tales", {"separator": "_"})
    await wait_for_json(system, T + "/aliases", lambda b: len(b["entries"]) == 1)
    mirror = await make_client(tmp_path / "data", HMR_MODE="REPLICA")
    resp = await mirror.get("/api/model_references/v1/text_generation?include_group=true")
    assert resp.status == 200
    parsed = await (await mirror.get(T + "/parse_name?name=ExampleOrg/Tiny-Tales-1B")).json()
    assert parsed["suggested_group"] == "Tiny-Tales"
    schema = await (await mirror.get(T + "/group/name_schema?name=Tiny-Tales")).json()
    assert schema["is_custom"] is False


async def test_ai_horde_down_is_503(make_system: SystemFactory, tmp_path: Path) -> None:
    """With AI-Horde unreachable the requestor role cannot be checked: 503, nothing written."""
    client = await make_system(
        tmp_path / "h", HMR_HORDE_URL=refused_url(), HMR_REQUESTOR_IDS="100", HMR_AUTH_TIMEOUT="2"
    )
    for method, path, body in WRITES[:3]:
        resp = await client.request(method, T + path, json=body, headers=REQ)
        assert resp.status == 503
        assert (await resp.json())["detail"].startswith("Auth service unavailable")
    assert client.server.app[write_queue_key].live().text_toolkit.empty
