"""The real `hmr` console command, run as a subprocess: help, seed, read-api and all."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from services.cli import SAMPLE_DIR
from tests.helpers import HMR, clean_env, free_port, running

#: every test here runs the `hmr` console script as a process
pytestmark = pytest.mark.subprocess


def _clean_env(**extra: str) -> dict[str, str]:
    """The test process environment without any HMR_* variable, plus `extra`.

    AI-Horde is switched off: tests never reach beyond 127.0.0.1.
    """
    return clean_env(HMR_HORDE_URL="off", **extra)


def run_hmr(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `hmr ARGS` to completion and capture its output."""
    return subprocess.run(
        [*HMR, *args],
        cwd=cwd,
        env=dict(env) if env is not None else _clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ordered(value: Any) -> Any:
    """A JSON value with every object turned into its list of items, so key order counts in ==."""
    if isinstance(value, dict):
        return [(k, ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [ordered(v) for v in value]
    return value


def current(data_dir: Path) -> str:
    return (data_dir / "snapshots" / "CURRENT").read_text(encoding="ascii").strip()


def get_json(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, json.loads(resp.read())


@contextlib.contextmanager
def running_hmr(
    *args: str, cwd: Path, port: int, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `hmr ARGS`, wait until it answers on `port`, and always stop it on exit."""
    with running(
        [*HMR, *args],
        ready_url=f"http://127.0.0.1:{port}/api/",  # any answer is ready enough
        log=cwd / f"hmr-{port}.log",
        env=env if env is not None else _clean_env(),
        cwd=cwd,
    ) as proc:
        yield proc


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    """A data dir seeded from the bundled sample by `hmr seed`."""
    data_dir = tmp_path / "data"
    result = run_hmr("seed", "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return data_dir


# --- help ------------------------------------------------------------------------------------------


def test_help_lists_every_subcommand(tmp_path: Path) -> None:
    """`hmr --help` exits 0, names every subcommand and says options are environment variables."""
    result = run_hmr("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("seed", "read-api", "all"):
        assert command in result.stdout
    assert "environment variable" in result.stdout


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("seed", ["HMR_DATA_DIR", "HMR_SEED_DIR", "HMR_KEEP_SNAPSHOTS", "--force"]),
        (
            "read-api",
            [
                "HMR_DATA_DIR",
                "HMR_HOST",
                "HMR_PORT",
                "HMR_MODE",
                "HMR_CANONICAL_FORMAT",
                "HMR_CORS_ORIGINS",
                "HMR_ACCESS_LOG",
            ],
        ),
        (
            "all",
            [
                "HMR_DATA_DIR",
                "HMR_HOST",
                "HMR_PORT",
                "HMR_MODE",
                "HMR_SEED_DIR",
                "HMR_KEEP_SNAPSHOTS",
            ],
        ),
    ],
)
def test_subcommand_help_names_its_env_vars(tmp_path: Path, command: str, names: list[str]) -> None:
    """`hmr COMMAND --help` exits 0 and names the environment variable of every option."""
    result = run_hmr(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # argparse wraps help lines: join them before looking
    text = " ".join(result.stdout.split())
    for name in names:
        assert name in text, name


def test_missing_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    """`hmr` with no subcommand exits 2 with a usage message and no traceback."""
    result = run_hmr(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: hmr" in result.stderr
    assert "Traceback" not in result.stderr


# --- seed ------------------------------------------------------------------------------------------


def test_seed_without_seed_dir_publishes_the_sample(tmp_path: Path) -> None:
    """`hmr seed --data-dir D` with no --seed-dir publishes the bundled sample as D's snapshot."""
    data_dir = tmp_path / "data"
    result = run_hmr("seed", "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    name = current(data_dir)
    assert (data_dir / "snapshots" / name / "manifest.json").is_file()
    assert str(SAMPLE_DIR) in result.stdout
    assert name in result.stdout
    assert "warning" not in result.stderr
    served = json.loads(
        (data_dir / "snapshots" / name / "v1" / "image_generation.json").read_bytes()
    )
    sample = json.loads((SAMPLE_DIR / "image" / "stable_diffusion.json").read_bytes())
    assert ordered(served) == ordered(sample)


def test_seed_twice_without_force_exits_1(seeded: Path, tmp_path: Path) -> None:
    """Seeding a data dir that already has a snapshot exits 1, says --force, and changes nothing."""
    before = current(seeded)
    result = run_hmr("seed", "--data-dir", str(seeded), cwd=tmp_path)
    assert result.returncode == 1
    assert "already has a snapshot" in result.stderr
    assert "--force" in result.stderr
    assert "Traceback" not in result.stderr
    assert current(seeded) == before


def test_seed_with_force_publishes_a_new_snapshot(seeded: Path, tmp_path: Path) -> None:
    """`hmr seed --force` over an existing snapshot exits 0 and switches CURRENT to a new one."""
    before = current(seeded)
    result = run_hmr("seed", "--data-dir", str(seeded), "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = current(seeded)
    assert after != before
    assert after in result.stdout


def test_seed_from_missing_dir_exits_2(tmp_path: Path) -> None:
    """`--seed-dir` naming a missing directory exits 2 with an error message, no traceback, no snapshot."""
    data_dir = tmp_path / "data"
    missing = tmp_path / "no-such-legacy-dir"
    result = run_hmr("seed", "--data-dir", str(data_dir), "--seed-dir", str(missing), cwd=tmp_path)
    assert result.returncode == 2
    assert "hmr: error:" in result.stderr
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "snapshots" / "CURRENT").exists()


def test_seed_from_a_given_dir_publishes_it(tmp_path: Path) -> None:
    """`--seed-dir` pointing at a legacy directory publishes exactly that directory's models."""
    legacy = tmp_path / "legacy"
    (legacy / "image").mkdir(parents=True)
    sample = json.loads((SAMPLE_DIR / "image" / "blip.json").read_bytes())
    first = dict(list(sample.items())[:1])
    (legacy / "image" / "blip.json").write_text(json.dumps(first, indent=4), encoding="utf-8")
    data_dir = tmp_path / "data"
    result = run_hmr("seed", "--data-dir", str(data_dir), "--seed-dir", str(legacy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(
        (data_dir / "snapshots" / current(data_dir) / "manifest.json").read_bytes()
    )
    counts = {c: v["count"] for c, v in manifest["categories"].items() if v["count"]}
    assert counts == {"blip": 1}


def test_data_dir_from_env(tmp_path: Path) -> None:
    """HMR_DATA_DIR in the environment stands in for --data-dir."""
    data_dir = tmp_path / "from-env"
    result = run_hmr("seed", cwd=tmp_path, env=_clean_env(HMR_DATA_DIR=str(data_dir)))
    assert result.returncode == 0, result.stderr
    assert current(data_dir)
    assert not (tmp_path / "var").exists()


def test_seed_dir_from_env(tmp_path: Path) -> None:
    """HMR_SEED_DIR in the environment stands in for --seed-dir."""
    missing = tmp_path / "missing-from-env"
    result = run_hmr(
        "seed",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
        env=_clean_env(HMR_SEED_DIR=str(missing)),
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr


def test_option_overrides_env(tmp_path: Path) -> None:
    """A command-line option wins over its environment variable."""
    flag_dir, env_dir = tmp_path / "flag", tmp_path / "env"
    result = run_hmr(
        "seed",
        "--data-dir",
        str(flag_dir),
        cwd=tmp_path,
        env=_clean_env(HMR_DATA_DIR=str(env_dir)),
    )
    assert result.returncode == 0, result.stderr
    assert current(flag_dir)
    assert not env_dir.exists()


def test_invalid_config_value_exits_2(seeded: Path, tmp_path: Path) -> None:
    """A malformed option value exits 2 with a message naming its variable and no traceback."""
    result = run_hmr("read-api", "--data-dir", str(seeded), "--port", "not-a-port", cwd=tmp_path)
    assert result.returncode == 2
    assert "HMR_PORT" in result.stderr
    assert "Traceback" not in result.stderr


# --- servers ---------------------------------------------------------------------------------------


def test_read_api_answers_replicate_mode(seeded: Path, tmp_path: Path) -> None:
    """`hmr read-api` on a seeded dir answers GET /api/replicate_mode as a REPLICA by default."""
    port = free_port()
    with running_hmr(
        "read-api",
        "--data-dir",
        str(seeded),
        "--port",
        str(port),
        cwd=tmp_path,
        port=port,
    ):
        status, body = get_json(f"http://127.0.0.1:{port}/api/replicate_mode")
    assert status == 200
    assert body["replicate_mode"] == "REPLICA"
    assert body["writable"] is False


def test_read_api_serves_the_seeded_sample(seeded: Path, tmp_path: Path) -> None:
    """`hmr read-api` serves the seeded sample's stable_diffusion.json as the v1 image view, key order included."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/model_references/v1/stable_diffusion"
    with running_hmr(
        "read-api",
        "--data-dir",
        str(seeded),
        "--port",
        str(port),
        cwd=tmp_path,
        port=port,
    ):
        status, body = get_json(url)
    sample = json.loads((SAMPLE_DIR / "image" / "stable_diffusion.json").read_bytes())
    assert status == 200
    assert ordered(body) == ordered(sample)


def test_read_api_takes_port_and_mode_from_env(seeded: Path, tmp_path: Path) -> None:
    """`hmr read-api` listens on HMR_PORT and reports HMR_MODE from the environment."""
    port = free_port()
    env = _clean_env(HMR_DATA_DIR=str(seeded), HMR_PORT=str(port), HMR_MODE="primary")
    with running_hmr("read-api", cwd=tmp_path, port=port, env=env):
        _, body = get_json(f"http://127.0.0.1:{port}/api/replicate_mode")
    assert body["replicate_mode"] == "PRIMARY"


def test_read_api_exits_0_on_sigterm(seeded: Path, tmp_path: Path) -> None:
    """A running `hmr read-api` stops cleanly with exit status 0 when sent SIGTERM."""
    port = free_port()
    with running_hmr(
        "read-api",
        "--data-dir",
        str(seeded),
        "--port",
        str(port),
        cwd=tmp_path,
        port=port,
    ) as proc:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_all_seeds_an_empty_dir_and_reports_primary(tmp_path: Path) -> None:
    """`hmr all` on an empty data dir seeds it from the sample, then answers as the PRIMARY."""
    data_dir = tmp_path / "empty"
    port = free_port()
    with running_hmr(
        "all", "--data-dir", str(data_dir), "--port", str(port), cwd=tmp_path, port=port
    ):
        status, body = get_json(f"http://127.0.0.1:{port}/api/replicate_mode")
        seeded_name = current(data_dir)
    assert status == 200
    assert body["replicate_mode"] == "PRIMARY"
    assert body["writable"] is True
    assert seeded_name


def test_all_keeps_an_existing_snapshot(seeded: Path, tmp_path: Path) -> None:
    """`hmr all` on a data dir that already has a snapshot serves it without seeding again."""
    before = current(seeded)
    port = free_port()
    with running_hmr(
        "all", "--data-dir", str(seeded), "--port", str(port), cwd=tmp_path, port=port
    ):
        status, _ = get_json(f"http://127.0.0.1:{port}/api/replicate_mode")
    assert status == 200
    assert current(seeded) == before


def test_seed_refuses_broken_files_without_publishing(tmp_path: Path) -> None:
    """A seed dir with an unreadable category file exits 1 and publishes nothing."""
    seed_dir = tmp_path / "legacy"
    (seed_dir / "image").mkdir(parents=True)
    (seed_dir / "image" / "blip.json").write_text("{bad")
    result = run_hmr(
        "seed",
        "--data-dir",
        str(tmp_path / "d"),
        "--seed-dir",
        str(seed_dir),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "blip.json" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d" / "snapshots" / "CURRENT").exists()


def test_seed_refuses_a_dir_without_model_data(tmp_path: Path) -> None:
    """An empty seed dir exits 1 with a message instead of publishing an empty snapshot."""
    (tmp_path / "empty").mkdir()
    result = run_hmr(
        "seed",
        "--data-dir",
        str(tmp_path / "d"),
        "--seed-dir",
        str(tmp_path / "empty"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "no model data found" in result.stderr


def test_invalid_keep_snapshots_publishes_nothing(tmp_path: Path) -> None:
    """--keep-snapshots 0 is rejected before anything is published."""
    result = run_hmr(
        "seed", "--data-dir", str(tmp_path / "d"), "--keep-snapshots", "0", cwd=tmp_path
    )
    assert result.returncode == 2 and "HMR_KEEP_SNAPSHOTS" in result.stderr
    assert not (tmp_path / "d" / "snapshots" / "CURRENT").exists()


def test_data_dir_that_is_a_file_is_a_clean_error(tmp_path: Path) -> None:
    """A data dir that is a regular file exits 2 with an error line and no traceback."""
    (tmp_path / "afile").write_text("")
    result = run_hmr("seed", "--data-dir", str(tmp_path / "afile"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("hmr: error:") and "Traceback" not in result.stderr


def test_seed_refuses_a_data_dir_with_a_write_store(tmp_path: Path) -> None:
    """Seeding over a write store would be undone by it: hmr seed refuses and says why."""
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / "write_queue.sqlite3").write_bytes(b"")
    result = run_hmr("seed", "--data-dir", str(data_dir), "--force", cwd=tmp_path)
    assert result.returncode == 1 and "write store" in result.stderr


def test_seed_output_arrives_whole_through_pipes(tmp_path: Path) -> None:
    """`hmr seed` ends without the interpreter's teardown: its report on stdout and its warnings
    on stderr still arrive whole, and the exit status is the command's."""
    legacy = tmp_path / "legacy"
    (legacy / "image").mkdir(parents=True)
    sample = json.loads((SAMPLE_DIR / "image" / "blip.json").read_bytes())
    renamed = {
        f"key-{i}": {**entry, "name": f"other-{i}"} for i, entry in enumerate(sample.values())
    }
    (legacy / "image" / "blip.json").write_text(json.dumps(renamed, indent=4), encoding="utf-8")
    data_dir = tmp_path / "data"
    result = run_hmr("seed", "--data-dir", str(data_dir), "--seed-dir", str(legacy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"blip={len(renamed)})\n")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(renamed)
    again = run_hmr("seed", "--data-dir", str(data_dir), "--seed-dir", str(legacy), cwd=tmp_path)
    assert again.returncode == 1
    assert "already has a snapshot" in again.stderr
