"""The GitHub sync's modes: `hmr github-sync` as a process (--dry-run, --no-pr, credentials),
the watch loop, GitHub App authentication and reviewers."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from horde_model_records import Category
from services.github_sync.github import AppAuth, GitHubClient, Repo
from services.github_sync.runner import Runner, make_github
from services.github_sync.sync import Syncer
from shared.dataset import Dataset, publish_dataset
from shared.snapshot import SnapshotStore
from tests.fakes.github_api import IMAGE, FakeGitHubApi, start_fake_github_api
from tests.github_sync_helpers import Clock, Primary, run_sync, sync_config
from tests.helpers import HMR, clean_env, free_port


@pytest.fixture
async def primary(
    tmp_path: Path, dataset: Dataset, make_client: Callable[..., Awaitable[TestClient]]
) -> Primary:
    data_dir = tmp_path / "primary"
    publish_dataset(SnapshotStore(data_dir / "snapshots"), dataset)
    return Primary(await make_client(data_dir), data_dir, dataset)


@pytest.fixture
async def gh(aiohttp_server: Any, legacy_dir: Path) -> FakeGitHubApi:
    return await start_fake_github_api(aiohttp_server, legacy_dir)


def _model(name: str) -> dict[str, Any]:
    return {"name": name, "baseline": "flux_1", "nsfw": False, "config": {"download": []}}


async def _hmr(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run `hmr ARGS` as a process while this loop keeps serving the fakes."""
    proc = await asyncio.create_subprocess_exec(
        *HMR,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _env(primary: Primary, gh: FakeGitHubApi, **extra: str) -> dict[str, str]:
    return clean_env(
        drop=("HMR_", "HORDE_", "GITHUB_"),
        HMR_GITHUB_SYNC_PRIMARY_API_URL=primary.url,
        HMR_GITHUB_SYNC_API_URL=gh.url,
        HMR_GITHUB_SYNC_RETRY_BACKOFF="0.01",
        HMR_LOG_FORMAT="text",
        **extra,
    )


@pytest.mark.subprocess
async def test_dry_run_needs_no_credentials_and_writes_nothing(
    primary: Primary, gh: FakeGitHubApi
) -> None:
    """`hmr github-sync --dry-run` without a token: exit 0, the changes reported, no write call
    and no Authorization header sent."""
    await primary.publish(primary.upsert(Category.image_generation, _model("Dry XL")))
    code, out = await _hmr("github-sync", "--dry-run", env=_env(primary, gh))
    assert code == 0, out
    assert "dry-run" in out and "image_generation: +1 -0 ~0" in out and "Dry XL" in out
    assert {m for m, *_ in gh.requests} == {"GET"}
    assert not any("Authorization" in headers for _m, _p, headers, _b in gh.requests)


@pytest.mark.subprocess
async def test_no_pr_writes_the_files_and_a_diff(
    primary: Primary, gh: FakeGitHubApi, tmp_path: Path, legacy_dir: Path
) -> None:
    """`--no-pr --output-dir D`: the changed file and changes.diff land in D, GitHub is only read."""
    await primary.publish(primary.upsert(Category.image_generation, _model("Offline XL")))
    out_dir = tmp_path / "out"
    code, out = await _hmr(
        "github-sync",
        "--no-pr",
        "--output-dir",
        str(out_dir),
        "--categories",
        "image_generation,esrgan",
        env=_env(primary, gh),
    )
    assert code == 0, out
    root = out_dir / "AI-Horde-image-model-reference"
    assert sorted(p.name for p in root.iterdir()) == ["changes.diff", "stable_diffusion.json"]
    written = (root / "stable_diffusion.json").read_bytes()
    original = (legacy_dir / "image" / "stable_diffusion.json").read_bytes()
    assert list(json.loads(written)) == [*json.loads(original), "Offline XL"]
    diff = (root / "changes.diff").read_text()
    assert diff.startswith("--- a/stable_diffusion.json\n+++ b/stable_diffusion.json\n")
    assert '+    "Offline XL": {' in diff
    removed = [
        line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")
    ]
    assert removed == []  # every line of the file is kept; the new model's lines are added
    assert "offline-render" in out and {m for m, *_ in gh.requests} == {"GET"}


@pytest.mark.subprocess
async def test_without_credentials_a_real_run_is_refused(
    primary: Primary, gh: FakeGitHubApi
) -> None:
    """No token and no App: exit 1 at start with a message naming the settings; nothing called."""
    code, out = await _hmr("github-sync", "--once", env=_env(primary, gh))
    assert code == 1 and "HMR_GITHUB_SYNC_TOKEN" in out and gh.requests == []


@pytest.mark.subprocess
async def test_unknown_category_is_a_configuration_error(
    primary: Primary, gh: FakeGitHubApi
) -> None:
    """`--categories lora` names a category no legacy repository holds: exit 1, nothing called."""
    code, out = await _hmr(
        "github-sync", "--dry-run", "--categories", "lora", env=_env(primary, gh)
    )
    assert code == 1 and "lora" in out and gh.requests == []


async def _watch(
    primary: Primary, gh: FakeGitHubApi, **env: str
) -> tuple[Runner, asyncio.Event, asyncio.Task[None], aiohttp.ClientSession]:
    config = sync_config(primary, gh, WATCH="true", WATCH_INTERVAL="0.05", **env)
    session = aiohttp.ClientSession()
    syncer = Syncer(config, session, github=make_github(config, session), clock=Clock())
    runner = Runner(config, syncer)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.watch(stop, asyncio.sleep))
    return runner, stop, task, session


async def _until(check: Callable[[], bool], within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_watch_follows_a_v2_canonical_primary(primary: Primary, gh: FakeGitHubApi) -> None:
    """On a v2-canonical PRIMARY (/v1/metadata/last_updated is 503) the watch still notices an
    applied change through /v1/metadata/metadata and opens the PR; SIGTERM-like stop ends it."""
    resp = await primary.client.get("/api/model_references/v1/metadata/last_updated")
    assert resp.status == 503
    runner, stop, task, session = await _watch(primary, gh)
    try:
        await _until(lambda: runner.polls >= 1)  # the watch has seen the PRIMARY as it was
        assert runner.status.runs == 0  # an unchanged PRIMARY: the first poll only records
        await primary.publish(primary.upsert(Category.image_generation, _model("Watched XL")))
        await _until(lambda: len(gh.repos[IMAGE].pulls) == 1)
        await _until(lambda: runner.status.runs == 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await session.close()
    assert runner.status.prs_opened == 1 and runner.status.last_success is not None


async def test_watch_full_reconcile_catches_a_change_on_github(
    primary: Primary, gh: FakeGitHubApi, legacy_dir: Path
) -> None:
    """No metadata change, but the base branch lost a model: the periodic full reconcile runs
    and opens the PR that puts it back."""
    runner, stop, task, session = await _watch(primary, gh, FULL_RECONCILE_INTERVAL="0.3")
    try:
        esrgan = json.loads((legacy_dir / "image" / "esrgan.json").read_bytes())
        gone = next(iter(esrgan))
        del esrgan[gone]
        gh.repos[IMAGE].commit_files("main", {"esrgan.json": json.dumps(esrgan).encode()})
        await _until(lambda: len(gh.repos[IMAGE].pulls) == 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await session.close()
    [pull] = gh.repos[IMAGE].pulls
    assert runner.status.runs >= 1 and runner.status.prs_opened == 1
    assert pull["head"].startswith("sync/esrgan/")
    assert gone in json.loads(gh.repos[IMAGE].file(pull["head"], "esrgan.json"))


async def test_watch_startup_sync_runs_at_once(primary: Primary, gh: FakeGitHubApi) -> None:
    """WATCH_STARTUP_SYNC: the first poll runs a sync without waiting for a change."""
    await primary.publish(primary.upsert(Category.image_generation, _model("Startup XL")))
    runner, stop, task, session = await _watch(primary, gh, WATCH_STARTUP_SYNC="true")
    try:
        await _until(lambda: runner.status.runs >= 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await session.close()
    assert len(gh.repos[IMAGE].pulls) == 1


async def test_github_app_authentication(primary: Primary, gh: FakeGitHubApi) -> None:
    """A GitHub App: the installation is found from the repository, one installation token is
    bought with an RS256 JWT and used for every call; the private key is never sent."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    gh.app_public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    gh.public = False
    await primary.publish(primary.upsert(Category.image_generation, _model("App XL")))
    report = await run_sync(
        primary, gh, Clock(), TOKEN="", APP_ID=gh.app_id, APP_PRIVATE_KEY=pem.replace("\n", "\\n")
    )
    assert report.ok and report.outcomes[0].status == "pr-opened"
    assert gh.calls("POST", "/access_tokens") == 1 and gh.calls("GET", "/installation") == 1
    [token] = gh.installation_tokens
    repo_calls = [
        h["Authorization"]
        for _m, p, h, _b in gh.requests
        if p.startswith("/repos/") and not p.endswith("/installation")
    ]
    assert repo_calls and set(repo_calls) == {f"Bearer {token}"}
    assert not any("PRIVATE KEY" in json.dumps(b) for *_x, b in gh.requests if b)


async def test_reviewers_and_team_are_requested(primary: Primary, gh: FakeGitHubApi) -> None:
    """PR_REVIEWERS and PR_TEAM_REVIEWERS (org/team: the slug is sent) reach the new PR."""
    await primary.publish(primary.upsert(Category.image_generation, _model("Reviewed XL")))
    report = await run_sync(
        primary, gh, Clock(), PR_REVIEWERS="alice,bob", PR_TEAM_REVIEWERS="Haidra-Org/reviewers"
    )
    number = report.outcomes[0].pr_number
    assert gh.repos[IMAGE].reviewers[number or 0] == {
        "reviewers": ["alice", "bob"],
        "team_reviewers": ["reviewers"],
    }


def test_upstream_setting_names_are_fallbacks() -> None:
    """HORDE_GITHUB_SYNC_* and GITHUB_* names fill what HMR_GITHUB_SYNC_* leaves unset."""
    from services.github_sync.config import Config

    config = Config.from_environ(
        {
            "HORDE_GITHUB_SYNC_PRIMARY_API_URL": "https://models.example/api/",
            "HORDE_GITHUB_SYNC_GITHUB_TOKEN": "t1",
            "GITHUB_TOKEN": "t2",
            "HORDE_GITHUB_SYNC_CATEGORIES_TO_SYNC": '["esrgan", "text_generation"]',
            "HORDE_GITHUB_SYNC_PR_AUTO_ASSIGN_TEAM": "Haidra-Org/maintainers",
            "HORDE_GITHUB_SYNC_MIN_CHANGES_THRESHOLD": "0",
            "HMR_GITHUB_SYNC_PR_LABELS": "a, b",
            "HORDE_MODEL_REFERENCE_TEXT_GITHUB_REPO__OWNER": "me",
            "HORDE_MODEL_REFERENCE_TEXT_GITHUB_REPO__NAME": "text-fork",
        }
    )
    assert config.token == "t1" and "t1" not in repr(config)
    assert [c.value for c in config.categories] == ["esrgan", "text_generation"]
    assert config.pr_team_reviewers == ("maintainers",)
    assert config.min_changes == 1 and config.pr_labels == ("a", "b")
    assert config.text_repo == "me/text-fork"
    assert not config.export_text_metadata_columns
    exported = Config.from_environ(
        {
            "HORDE_GITHUB_SYNC_PRIMARY_API_URL": "https://models.example/api",
            "HORDE_GITHUB_SYNC_EXPORT_TEXT_METADATA_COLUMNS": "true",
        }
    )
    assert exported.export_text_metadata_columns


def test_upstream_repository_settings_default_each_part() -> None:
    """Upstream's HORDE_MODEL_REFERENCE_*_GITHUB_REPO__{OWNER,NAME,BRANCH} each default on their
    own: a fork that sets only OWNER syncs to its fork, not to Haidra-Org; BRANCH sets that
    repository's base branch unless HMR_GITHUB_SYNC_BASE_BRANCH is set."""
    from services.github_sync.config import Config

    env = {
        "HMR_GITHUB_SYNC_PRIMARY_API_URL": "https://models.example/api",
        "HORDE_MODEL_REFERENCE_IMAGE_GITHUB_REPO__OWNER": "fork",
        "HORDE_MODEL_REFERENCE_IMAGE_GITHUB_REPO__BRANCH": "develop",
        "HORDE_MODEL_REFERENCE_TEXT_GITHUB_REPO__NAME": "text-copy",
    }
    config = Config.from_environ(env)
    assert config.image_repo == "fork/AI-Horde-image-model-reference"
    assert config.text_repo == "Haidra-Org/text-copy"
    assert config.branch_of(config.image_repo) == "develop"
    assert config.branch_of(config.text_repo) == "main"
    ours = Config.from_environ({**env, "HMR_GITHUB_SYNC_BASE_BRANCH": "stable"})
    assert ours.branch_of(ours.image_repo) == ours.branch_of(ours.text_repo) == "stable"


async def test_app_token_is_renewed_when_it_runs_out(gh: FakeGitHubApi) -> None:
    """An installation token with less than 5 minutes left is replaced before the next call."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    gh.app_public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    gh.public = False
    app = AppAuth(gh.app_id, pem, gh.installation_id)
    repo = Repo.parse(IMAGE)
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(session, gh.url, app=app)
        await client.ref_sha(repo, "main")
        first = app.token
        await client.ref_sha(repo, "main")
        assert app.token == first and gh.calls("POST", "/access_tokens") == 1
        app.expires_at = time.time() + 200  # under the 5-minute margin
        await client.ref_sha(repo, "main")
    assert app.token != first and gh.calls("POST", "/access_tokens") == 2


async def test_status_file_reports_the_run(
    primary: Primary, gh: FakeGitHubApi, tmp_path: Path
) -> None:
    """STATUS_FILE holds what the status line says: changes found, PRs opened and closed, the
    last success and each repository's status."""
    await primary.publish(primary.upsert(Category.image_generation, _model("Status XL")))
    path = tmp_path / "status" / "sync.json"
    report = await run_sync(primary, gh, Clock(), STATUS_FILE=str(path))
    status = json.loads(path.read_text())
    assert status["runs"] == 1 and status["failed_runs"] == 0 and status["last_ok"] is True
    assert status["changes_found"] == 1 and status["prs_opened"] == 1 and status["prs_closed"] == 0
    assert status["last_success"] == status["last_run"] and status["last_success"].endswith("Z")
    image, text = status["repositories"]
    assert image["status"] == "pr-opened" and image["pr"].endswith(
        f"/pull/{report.outcomes[0].pr_number}"
    )
    assert image["branch"].startswith("sync/image_generation/") and text["status"] == "unchanged"


async def test_an_unwritable_status_file_does_not_end_the_run(
    primary: Primary, gh: FakeGitHubApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """STATUS_FILE under a regular file: the run still reports (and a watch goes on); the error
    names the file."""
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "status.json"
    await primary.publish(primary.upsert(Category.image_generation, _model("Unwritten XL")))
    with caplog.at_level(logging.ERROR, "hmr.github_sync"):
        report = await run_sync(primary, gh, Clock(), STATUS_FILE=str(path))
    assert report.ok and report.outcomes[0].status == "pr-opened"
    assert "status file" in caplog.text and str(path) in caplog.text


@pytest.mark.subprocess
async def test_watch_process_ends_cleanly_on_sigterm(
    primary: Primary, gh: FakeGitHubApi, tmp_path: Path
) -> None:
    """`hmr github-sync --watch --watch-startup-sync --dry-run` runs at start, keeps polling,
    shows its counters on /metrics, and exits 0 on SIGTERM."""
    status = tmp_path / "status.json"
    await primary.publish(primary.upsert(Category.image_generation, _model("Metered XL")))
    port = free_port()
    env = _env(
        primary,
        gh,
        HMR_GITHUB_SYNC_STATUS_FILE=str(status),
        HMR_GITHUB_SYNC_METRICS_PORT=str(port),
    )
    proc = await asyncio.create_subprocess_exec(
        *HMR,
        "github-sync",
        "--watch",
        "--watch-startup-sync",
        "--dry-run",
        "--watch-interval",
        "0.1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await _until(lambda: status.exists(), within=60)
        assert json.loads(status.read_text())["last_ok"] is True
        assert proc.returncode is None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
            async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 200 and (await resp.json())["runs"] >= 1
        assert 'hmr_github_sync_runs_total{result="ok"}' in metrics
        assert "hmr_github_sync_changes_found_total 1.0" in metrics
        assert "hmr_github_sync_prs_opened_total 0.0" in metrics  # a dry run opens none
        assert "hmr_github_sync_last_success_timestamp_seconds 0.0" not in metrics
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode(errors="replace")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIMARY_API_URL", "models.example/api"),
        ("PRIMARY_API_URL", "ftp://models.example/api"),
        ("API_URL", "ftp:/x"),
        ("API_URL", "https://"),
        ("METRICS_PORT", "99999"),
        ("MAX_REMOVALS", "-1"),
        ("EXPORT_TEXT_METADATA_COLUMNS", "maybe"),
        ("APP_INSTALLATION_ID", "twelve"),
        ("IMAGE_REPO", "just-a-name"),
        ("APP_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\\nbm90IGEga2V5\\n-----END RSA"),
        ("APP_PRIVATE_KEY", "ssh-rsa AAAA"),
    ],
)
def test_a_bad_setting_is_a_clear_error_naming_it(name: str, value: str) -> None:
    """A value that cannot work is refused when the config is read, naming the variable (the
    command prints it and exits 1), never a traceback or a run that fails far from the cause."""
    from services.github_sync.config import Config
    from shared.config import ConfigError

    env = {"HMR_GITHUB_SYNC_PRIMARY_API_URL": "http://127.0.0.1:9/api"}
    with pytest.raises(ConfigError, match=f"HMR_GITHUB_SYNC_{name}"):
        Config.from_environ({**env, f"HMR_GITHUB_SYNC_{name}": value})


async def test_a_taken_metrics_port_ends_the_watch_with_exit_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--watch with METRICS_PORT already in use: an error naming the setting and exit 1, not a
    traceback."""
    import socket

    from services.github_sync.config import Config
    from services.github_sync.runner import arun

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = Config.from_environ(
            {
                "HMR_GITHUB_SYNC_PRIMARY_API_URL": "http://127.0.0.1:9/api",
                "HMR_GITHUB_SYNC_WATCH": "true",
                "HMR_GITHUB_SYNC_DRY_RUN": "true",
                "HMR_GITHUB_SYNC_METRICS_PORT": str(port),
            }
        )
        stop = asyncio.Event()
        stop.set()  # were the port served, the watch would end at once
        with caplog.at_level(logging.ERROR, "hmr.github_sync"):
            assert await arun(config, stop) == 1
    assert "METRICS_HOST/PORT" in caplog.text and str(port) in caplog.text


def test_the_documented_settings_are_exactly_the_ones_read() -> None:
    """docs/operators.md's settings table names every HMR_GITHUB_SYNC_ setting and no other."""
    import re

    from services.github_sync.config import SETTINGS

    docs = (Path(__file__).parent.parent / "docs" / "operators.md").read_text()
    section = docs.split("## GitHub sync", 1)[1].split("### Settings", 1)[1]
    section = section.split("\n## ", 1)[0]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([A-Z_]+)`", line.split("|")[1]))
    assert documented == set(SETTINGS)


def test_a_misspelt_setting_is_refused_with_a_hint() -> None:
    """HMR_GITHUB_SYNC_PR_LABEL (for PR_LABELS) would be silently ignored: it is an error."""
    from services.github_sync.config import Config
    from shared.config import ConfigError

    env = {
        "HMR_GITHUB_SYNC_PRIMARY_API_URL": "http://127.0.0.1:9/api",
        "HMR_GITHUB_SYNC_PR_LABEL": "x",
    }
    with pytest.raises(ConfigError, match=r"HMR_GITHUB_SYNC_PR_LABEL .*HMR_GITHUB_SYNC_PR_LABELS"):
        Config.from_environ(env)


async def test_a_truncated_primary_answer_is_a_primary_error() -> None:
    """The PRIMARY's connection drops mid-body (ClientPayloadError, not a connection error):
    retried, then a PrimaryError naming the URL, which a run reports; never an escaping
    aiohttp exception."""
    from horde_model_records import Category
    from services.github_sync.primary import PrimaryError, PrimaryReader

    answered = 0

    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        answered += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(truncated, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            reader = PrimaryReader(session, f"http://127.0.0.1:{port}/api", backoff=0.001)
            with pytest.raises(PrimaryError, match="/model_references/v1/esrgan"):
                await reader.v1(Category.esrgan)
    finally:
        server.close()
        await server.wait_closed()
    assert answered == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HORDE_GITHUB_SYNC_MIN_CHANGES_THRESHOLD", "few"),
        ("HORDE_GITHUB_SYNC_WATCH_INTERVAL_SECONDS", "-5"),
        ("GITHUB_APP_PRIVATE_KEY", "not a pem"),
        ("HORDE_GITHUB_SYNC_PRIMARY_API_URL", "models.example"),
    ],
)
def test_a_bad_upstream_setting_is_named_as_set(name: str, value: str) -> None:
    """A bad value read through an upstream name: the error names that variable, the one the
    operator set, not only our HMR_GITHUB_SYNC_ name for it."""
    from services.github_sync.config import Config
    from shared.config import ConfigError

    env = {"HORDE_GITHUB_SYNC_PRIMARY_API_URL": "http://127.0.0.1:9/api", name: value}
    with pytest.raises(ConfigError) as caught:
        Config.from_environ(env)
    assert str(caught.value).startswith(name + " (read as HMR_GITHUB_SYNC_")


def test_our_repository_branch_wins_over_upstreams() -> None:
    from services.github_sync.config import Config

    config = Config.from_environ(
        {
            "HMR_GITHUB_SYNC_PRIMARY_API_URL": "http://127.0.0.1:9/api",
            "HMR_GITHUB_SYNC_IMAGE_BASE_BRANCH": "ours",
            "HORDE_MODEL_REFERENCE_IMAGE_GITHUB_REPO__BRANCH": "theirs",
        }
    )
    assert config.branch_of(config.image_repo) == "ours"
