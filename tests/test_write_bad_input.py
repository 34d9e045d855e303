"""Bad input to the queue endpoints: clear 422s, never a 500."""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import APPROVER_KEY

V = "/api/model_references/v2/pending_queue"
H = {"apikey": APPROVER_KEY}


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", f"{V}/changes/99999999999999999999999", None),
        ("GET", f"{V}/changes/99999999999999999999999/diff", None),
        ("GET", f"{V}/diffs?change_ids=99999999999999999999", None),
        ("POST", f"{V}/batches", {"batch_title": "x", "approved_ids": [2**70]}),
        ("POST", f"{V}/apply", {"change_ids": [2**70]}),
        ("POST", f"{V}/changes/99999999999999999999999/apply", {}),
        ("POST", f"{V}/purge", {"requested_by": 5}),
        ("POST", f"{V}/purge", {"statuses": "pending"}),
    ],
)
async def test_out_of_range_ids_and_bad_filters_are_422(
    system: TestClient, method: str, path: str, body: Any
) -> None:
    """Ids beyond SQLite's range and non-list filters are 422, never a 500."""
    r = await system.request(method, path, json=body, headers=H)
    assert r.status == 422, (r.status, await r.text())
