"""The toolkit's group reads and grouped v1 view against upstream 8.6.2's own functions, run on
the same real data (skipped where upstream is not installed beside the repository)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import Category
from services.read_api.text_toolkit import TextToolkitView, v1_with_groups
from shared.dataset import Dataset, encode_v2
from shared.text_toolkit import ToolkitStores

UPSTREAM_PYTHON = Path("/work/upstream-venv/bin/python")

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not UPSTREAM_PYTHON.exists(), reason="upstream 8.6.2 is not installed here"),
]

#: upstream's route functions with a stand-in manager: its stores absent, no guidance catalogue
GROUP_READS = """
import json, sys
from horde_model_reference.service.v2.routers import text_utils as tu
from horde_model_reference.text_guidance import TextGuidanceStatus as S, TextGuidanceSummary as G

class Guidance:
    def summary_for_model(self, name, *, legacy_instruct_format):
        label = legacy_instruct_format
        return G(status=S.LEGACY_LABEL if label and label.strip() else S.UNDOCUMENTED)

class Manager:
    group_alias_store = group_schema_store = group_family_store = None
    text_guidance_store = Guidance()
    def __init__(self, data): self.data = data
    def get_raw_model_reference_json(self, category): return self.data

m = Manager(json.load(sys.stdin))
dump = lambda answer: answer.model_dump(mode="json")
groups = dump(tu.list_groups(m))
print(json.dumps({
    "summary": dump(tu.list_groups_summary(m)),
    "health": dump(tu.check_groups_health(m)),
    "groups": groups,
    "baselines": dump(tu.get_distinct_baselines(m)),
    "detail": {g: dump(tu.get_group(g, m)) for g in groups["groups"]},
    "schema": {g: dump(tu.get_group_name_schema(g, m)) for g in groups["groups"]},
}))
"""

V1_GROUPED = """
import dataclasses, json, sys
from horde_model_reference.analytics.text_model_parser import compute_group_summaries as cgs
from horde_model_reference.analytics.text_model_parser import get_base_model_name as base
db = json.load(sys.stdin)
for key, entry in db.items():
    entry["text_model_group"] = base(key)
summaries = cgs(db)
out = {}
for key, entry in db.items():
    summary = dataclasses.asdict(summaries[entry["text_model_group"]])
    del summary["group_name"], summary["name_format"]["extra_parts"]
    out[key] = {**entry, "text_model_group_summary": summary}
print(json.dumps(out))
"""


def upstream(script: str, data: bytes, cwd: Path) -> Any:
    done = subprocess.run(
        [str(UPSTREAM_PYTHON), "-c", script],
        input=data,
        capture_output=True,
        check=True,
        cwd=cwd,
    )
    return json.loads(done.stdout)


def test_group_reads_equal_upstreams(dataset: Dataset, tmp_path: Path) -> None:
    """Summary, health, groups, baselines, and every group's detail and schema are upstream's."""
    records = dataset.categories[Category.text_generation].records
    data = encode_v2(records)
    theirs = upstream(GROUP_READS, data, tmp_path)
    view = TextToolkitView.build(json.loads(data), None, ToolkitStores())

    def ours(body: Any) -> Any:
        return json.loads(body.data)

    assert ours(view.summary_body) == theirs["summary"]
    assert ours(view.health_body) == theirs["health"]
    assert ours(view.groups_body) == theirs["groups"]
    assert ours(view.baselines_body) == theirs["baselines"]
    assert len(theirs["detail"]) == 419
    for group, detail in theirs["detail"].items():
        assert ours(view.group_detail(group)) == detail, group
        assert ours(view.group_schema(group)) == theirs["schema"][group], group


def test_v1_grouped_view_equals_upstreams(legacy_dir: Path, tmp_path: Path) -> None:
    """Every v1 entry's group and group summary is upstream's (2,157 entries)."""
    raw = (legacy_dir / "text" / "db.json").read_bytes()
    theirs = upstream(V1_GROUPED, raw, tmp_path)
    assert v1_with_groups(json.loads(raw)) == theirs
