"""`hmr`'s applications built in process: `build_app(argv)` is what the command would serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import cli

V2 = "/api/model_references/v2"


def test_build_app_of_all_seeds_the_empty_data_dir(tmp_path: Path) -> None:
    """`build_app(["all", ...])` does what `hmr all` does before serving: seed an empty data dir."""
    data_dir = tmp_path / "empty"
    app = cli.build_app(["all", "--data-dir", str(data_dir)], environ={"HMR_HORDE_URL": "off"})
    assert (data_dir / "snapshots" / "CURRENT").read_text().strip()
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    # every service on one app: a read, a write and a stats route
    assert {"/api/replicate_mode", f"{V2}/pending_queue/changes", "/api/heartbeat"} <= paths


def test_build_app_refuses_a_command_that_serves_nothing(tmp_path: Path) -> None:
    """`seed`, `openapi` and `dev-auth` have no application to build: ValueError, nothing written."""
    for argv in (["seed", "--data-dir", str(tmp_path / "d")], ["openapi"], ["dev-auth", "x"]):
        with pytest.raises(ValueError, match="does not serve"):
            cli.build_app(argv, environ={})
    assert not (tmp_path / "d").exists()
