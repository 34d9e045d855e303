"""Hostile input to the write routes: a clear 4xx in the error envelope, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY, REQUESTOR_KEY

V2 = "/api/model_references/v2"
Q = f"{V2}/pending_queue"
REQ = {"apikey": REQUESTOR_KEY, "Content-Type": "application/json"}
APPR = {"apikey": APPROVER_KEY, "Content-Type": "application/json"}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [40, 981, 1000, 5000])
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"{V2}/image_generation", REQ),
        (f"{Q}/batches", APPR),
        (f"{Q}/apply", APPR),
        (f"{Q}/purge", APPR),
        (f"{Q}/changes/1/apply", APPR),
    ],
)
async def test_deeply_nested_bodies_are_422(
    system: TestClient, path: str, headers: dict[str, str], depth: int
) -> None:
    """A body nested deeper than the limit is a 422 at `body`, whatever the route."""
    body = '{"name": "Deep", "x": ' + nested(depth) + "}"
    resp = await system.post(path, data=body, headers=headers)
    assert resp.status == 422, (resp.status, await resp.text())
    detail = (await resp.json())["detail"]
    assert detail[0]["loc"] == ["body"] and "nested deeper" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        (
            f"{V2}/image_generation",
            REQ,
            '{"name": "Bad \\ud800", "baseline": "stable_diffusion_xl"}',
        ),
        (
            f"{V2}/image_generation",
            REQ,
            '{"name": "Good", "baseline": "stable_diffusion_xl", "description": "\\udfff"}',
        ),
        (f"{Q}/batches", APPR, '{"batch_title": "\\ud800", "approved_ids": [1]}'),
        (
            f"{Q}/batches",
            APPR,
            '{"batch_title": "t", "rejected_ids": [1], "reject_reason": "\\ud800"}',
        ),
        (f"{Q}/changes/1/apply", APPR, '{"job_id": "\\ud800"}'),
    ],
)
async def test_lone_surrogates_are_422(
    system: TestClient, path: str, headers: dict[str, str], body: str
) -> None:
    """Valid JSON holding a lone surrogate is refused with a 422, not stored (SQLite cannot)."""
    resp = await system.post(path, data=body, headers=headers)
    assert resp.status == 422, (resp.status, await resp.text())


async def test_undecodable_bytes_in_a_path_name_are_a_4xx(system: TestClient) -> None:
    """Percent-encoded bytes that are not UTF-8 in a model name never reach the store."""
    resp = await system.delete(f"{V2}/image_generation/model/bad%ED%A0%80name", headers=REQ)
    assert resp.status in (404, 422), (resp.status, await resp.text())


@pytest.mark.parametrize(
    ("category", "name"),
    [
        ("image_generation", "x" * 100_000),
        ("image_generation", "x" * 201),
        ("image_generation", "nul\x00name"),
        ("image_generation", "bell\x07"),
        ("image_generation", "../../etc/passwd"),
        ("image_generation", "a//b"),
        ("image_generation", "trailing/"),
        ("text_generation", "org/model/extra"),
    ],
)
async def test_names_outside_the_grammar_are_422(
    system: TestClient, category: str, name: str
) -> None:
    """Overlong names, control characters, path tricks and extra `/` in text names are 422."""
    body: dict[str, Any] = {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False}
    if category == "text_generation":
        body = {"name": name, "parameters": 7_000_000_000}
    resp = await system.post(f"{V2}/{category}", json=body, headers=REQ)
    assert resp.status == 422, (resp.status, (await resp.text())[:300])


@pytest.mark.parametrize(
    ("category", "name"),
    [("clip", "ViT-L/14"), ("text_generation", "org/Model-7B"), ("image_generation", "Ünïcode ✓")],
)
async def test_names_inside_the_grammar_are_accepted(
    system: TestClient, category: str, name: str
) -> None:
    """Real names keep working: a `/` in a clip name, a text `org/` prefix, non-ASCII letters."""
    body: dict[str, Any] = {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False}
    if category == "text_generation":
        body = {"name": name, "parameters": 7_000_000_000}
    if category == "clip":
        body = {"name": name}
    resp = await system.post(f"{V2}/{category}", json=body, headers=REQ)
    assert resp.status in (202, 409), (resp.status, (await resp.text())[:300])
