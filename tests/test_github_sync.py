"""The GitHub sync end to end: a real PRIMARY (the read service on the real legacy data) and the
fake GitHub API on loopback; spec 08 §13's scenarios, the PR lifecycle and the failure paths."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from horde_model_records import Category
from services.github_sync.legacy_text import convert_rows, rows_of
from shared.dataset import Dataset, publish_dataset
from shared.snapshot import SnapshotStore
from tests.fakes.github_api import IMAGE, TEXT, FakeGitHubApi, start_fake_github_api
from tests.github_sync_helpers import Clock, Primary, entries, run_sync
from tests.helpers import Sleeps

LABELS = ["automated", "sync", "ready-for-review"]
DAY = "2026-06-01"
SD = "stable_diffusion.json"


@pytest.fixture
async def primary(
    tmp_path: Path, dataset: Dataset, make_client: Callable[..., Awaitable[TestClient]]
) -> Primary:
    """The read service (PRIMARY) on a data dir seeded from the real legacy files."""
    data_dir = tmp_path / "primary"
    publish_dataset(SnapshotStore(data_dir / "snapshots"), dataset)
    return Primary(await make_client(data_dir), data_dir, dataset)


@pytest.fixture
async def gh(aiohttp_server: Any, legacy_dir: Path) -> FakeGitHubApi:
    """The fake GitHub API holding both legacy repositories at their real content."""
    return await start_fake_github_api(aiohttp_server, legacy_dir)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _image_model(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "baseline": "stable_diffusion_xl",
        "nsfw": False,
        "description": "A new model",
        "config": {
            "download": [
                {
                    "file_name": f"{name}.safetensors",
                    "file_url": f"https://example.org/{name}.safetensors",
                    "sha256sum": "ab" * 32,
                }
            ]
        },
        **extra,
    }


async def _change_sd(primary: Primary) -> tuple[str, str, str]:
    """Add, modify and remove one stable_diffusion model on the PRIMARY."""
    names = list(primary.dataset.categories[Category.image_generation].records)
    modified, removed = names[5], names[9]
    primary.dataset = primary.upsert(Category.image_generation, _image_model("Zeta Test XL"))
    record = primary.v2(Category.image_generation, modified)
    primary.dataset = primary.upsert(
        Category.image_generation, {**record, "description": "An updated description"}
    )
    await primary.publish(primary.delete(Category.image_generation, removed))
    return "Zeta Test XL", modified, removed


def _branches(gh: FakeGitHubApi, repo: str) -> list[str]:
    return sorted(r.removeprefix("heads/") for r in gh.repos[repo].refs if r != "heads/main")


async def test_add_modify_remove_opens_one_pr_with_untouched_models_kept(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, legacy_dir: Path
) -> None:
    """One added, one modified and one removed image model: one branch, one commit, one PR
    titled as upstream titles it; every other model keeps its exact bytes; text is unchanged."""
    added, modified, removed = await _change_sd(primary)
    report = await run_sync(primary, gh, clock)
    assert report.ok, report.status_line()
    image, text = report.outcomes
    assert (image.status, text.status) == ("pr-opened", "unchanged")
    repo = gh.repos[IMAGE]
    [branch] = _branches(gh, IMAGE)
    assert branch.startswith("sync/image_generation/20260601-12")
    [pull] = repo.pulls
    assert pull["title"] == f"Auto Sync image_generation from horde_model_reference service - {DAY}"
    assert pull["head"] == branch and pull["base"] == "main" and pull["state"] == "open"
    assert repo.labels[pull["number"]] == LABELS
    head = repo.refs[f"heads/{branch}"]
    assert repo.commits[head]["parents"] == [repo.refs["heads/main"]]
    assert repo.commits[head]["message"].startswith("Sync image_generation from PRIMARY instance")
    base_tree = repo.trees[repo.commits[repo.refs["heads/main"]]["tree"]]
    head_tree = repo.trees[repo.commits[head]["tree"]]
    assert {p for p in head_tree if head_tree[p] != base_tree.get(p)} == {SD}
    before = entries((legacy_dir / "image" / SD).read_bytes())
    after = entries(repo.file(branch, SD))
    assert list(after) == [k for k in before if k != removed] + [added]
    for key in before:
        if key not in (modified, removed):
            assert after[key] == before[key], key
    assert json.loads(after[modified].split(":", 1)[1])["description"] == "An updated description"
    body = pull["body"]
    assert "**Source:** " + primary.url in body
    for name in (added, modified, removed):
        assert f"`{name}`" in body
    assert not body.endswith("\n")
    assert gh.repos[TEXT].pulls == [] and _branches(gh, TEXT) == []


async def test_a_repository_base_branch_of_its_own_is_the_pr_target(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """IMAGE_BASE_BRANCH (upstream: HORDE_MODEL_REFERENCE_IMAGE_GITHUB_REPO__BRANCH): the image
    repository is read at that branch and its PR targets it; the text repository keeps main."""
    repo = gh.repos[IMAGE]
    repo.refs["heads/develop"] = repo.refs["heads/main"]
    develop = repo.commit_files("develop", {"README.md": b"develop\n"})
    await _change_sd(primary)
    report = await run_sync(primary, gh, clock, IMAGE_BASE_BRANCH="develop")
    assert report.ok, report.status_line()
    [pull] = repo.pulls
    assert pull["base"] == "develop"
    assert repo.commits[repo.refs[f"heads/{pull['head']}"]]["parents"] == [develop]
    assert report.outcomes[1].status == "unchanged"


async def test_noop_sync_opens_nothing(primary: Primary, gh: FakeGitHubApi, clock: Clock) -> None:
    """The PRIMARY seeded from the repositories: every category is unchanged, no write call."""
    report = await run_sync(primary, gh, clock)
    assert report.ok and [o.status for o in report.outcomes] == ["unchanged", "unchanged"]
    assert report.changes_found == 0
    # all 11 files rendered from the PRIMARY's answers over HTTP are byte for byte the same
    assert [o.files for o in report.outcomes] == [[], []]
    assert [m for m, *_ in gh.requests if m != "GET"] == []


async def test_two_image_categories_make_one_multi_category_pr(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """esrgan and image_generation changed together: one sync/multi-category/ PR, one commit."""
    esrgan = next(iter(primary.dataset.categories[Category.esrgan].records))
    primary.dataset = primary.delete(Category.esrgan, esrgan)
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Multi XL")))
    report = await run_sync(primary, gh, clock)
    assert report.ok
    [branch] = _branches(gh, IMAGE)
    assert branch.startswith("sync/multi-category/")
    [pull] = gh.repos[IMAGE].pulls
    assert pull["title"] == f"Sync multiple categories from PRIMARY instance - {DAY}"
    assert "**Categories:** esrgan, image_generation" in pull["body"]
    message = gh.repos[IMAGE].commits[gh.repos[IMAGE].refs[f"heads/{branch}"]]["message"]
    assert "Categories: esrgan, image_generation" in message and "Total changes: 2" in message
    assert esrgan not in json.loads(gh.repos[IMAGE].file(branch, "esrgan.json"))
    repo = gh.repos[IMAGE]
    assert repo.labels[pull["number"]] == LABELS and pull["base"] == "main"
    head = repo.refs[f"heads/{branch}"]
    assert repo.commits[head]["parents"] == [repo.refs["heads/main"]]
    base_tree = repo.trees[repo.commits[repo.refs["heads/main"]]["tree"]]
    head_tree = repo.trees[repo.commits[head]["tree"]]
    assert {p for p in head_tree if head_tree[p] != base_tree.get(p)} == {"esrgan.json", SD}
    before = entries(repo.file("main", "esrgan.json"))
    assert entries(repo.file(branch, "esrgan.json")) == {
        k: v for k, v in before.items() if k != esrgan
    }


async def test_rerun_opens_nothing_and_a_new_change_supersedes(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """Unchanged rerun: no new branch or PR. A new change: a new PR first, then the old one is
    commented on, closed and its branch deleted."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("First XL")))
    first = (await run_sync(primary, gh, clock)).outcomes[0]
    again = (await run_sync(primary, gh, clock)).outcomes[0]
    assert (first.status, again.status) == ("pr-opened", "pr-up-to-date")
    assert again.pr_number == first.pr_number and len(gh.repos[IMAGE].pulls) == 1
    assert _branches(gh, IMAGE) == [first.branch]
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Second XL")))
    report = await run_sync(primary, gh, clock)
    third = report.outcomes[0]
    assert third.status == "pr-opened" and third.closed == [first.pr_number]
    repo = gh.repos[IMAGE]
    old = next(p for p in repo.pulls if p["number"] == first.pr_number)
    assert old["state"] == "closed"
    assert f"#{third.pr_number}" in repo.comments[first.pr_number][0]
    assert first.branch in repo.deleted_refs and _branches(gh, IMAGE) == [third.branch]
    assert [p["number"] for p in repo.open_pulls()] == [third.pr_number]
    new = json.loads(repo.file(str(third.branch), SD))
    assert "First XL" in new and "Second XL" in new
    assert report.prs_opened == 1 and report.prs_closed == 1


async def test_a_multi_category_pr_of_a_category_filtered_run_is_superseded(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """With CATEGORIES=esrgan,image_generation a newer multi-category PR closes the older one
    (it holds the same categories' current state); they do not pile up."""
    esrgan = list(primary.dataset.categories[Category.esrgan].records)
    primary.dataset = primary.delete(Category.esrgan, esrgan[0])
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Pile XL")))
    chosen = {"CATEGORIES": "esrgan,image_generation"}
    first = (await run_sync(primary, gh, clock, **chosen)).outcomes[0]
    primary.dataset = primary.delete(Category.esrgan, esrgan[1])
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Pile2 XL")))
    second = (await run_sync(primary, gh, clock, **chosen)).outcomes[0]
    assert str(first.branch).startswith("sync/multi-category/")
    assert str(second.branch).startswith("sync/multi-category/")
    assert second.status == "pr-opened" and second.closed == [first.pr_number]
    assert [p["number"] for p in gh.repos[IMAGE].open_pulls()] == [second.pr_number]


async def test_text_new_model_appends_one_crlf_row_and_three_entries(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, legacy_dir: Path
) -> None:
    """One new text model: models.csv gains one CRLF row at its end, db.json the three entries
    the repository's converter makes of it, every other byte as it was."""
    await primary.publish(
        primary.upsert(
            Category.text_generation,
            {
                "name": "TestOrg/Brand-New-12B",
                "parameters": 12_000_000_000,
                "baseline": "mistral",
                "description": "Fresh",
                "tags": ["roleplay"],
                "instruct_format": "ChatML",
                "config": {"download": []},
            },
        )
    )
    report = await run_sync(primary, gh, clock)
    assert report.ok, report.status_line()
    image, text = report.outcomes
    assert (image.status, text.status) == ("unchanged", "pr-opened")
    assert text.changes[0].added == (
        "TestOrg/Brand-New-12B",
        "aphrodite/TestOrg/Brand-New-12B",
        "koboldcpp/Brand-New-12B",
    )
    repo = gh.repos[TEXT]
    [pull] = repo.pulls
    assert pull["title"] == (
        f"Auto Sync text_generation from horde_model_reference service - {DAY}"
    )
    branch = pull["head"]
    assert branch.startswith("sync/text_generation/")
    old_csv = (legacy_dir / "text" / "models.csv").read_bytes()
    new_csv = repo.file(branch, "models.csv")
    assert new_csv == old_csv + b"TestOrg/Brand-New-12B,12,,,mistral,Fresh,,roleplay,ChatML,\r\n"
    old_db = json.loads((legacy_dir / "text" / "db.json").read_bytes())
    new_db_bytes = repo.file(branch, "db.json")
    new_db = json.loads(new_db_bytes)
    assert list(new_db)[: len(old_db)] == list(old_db)
    added = {k: v for k, v in new_db.items() if k not in old_db}
    expected = convert_rows(rows_of(new_csv.decode()))
    assert added == {k: expected[k] for k in text.changes[0].added}
    assert new_db_bytes == (json.dumps(expected, indent=4) + "\n").encode()
    assert added["koboldcpp/Brand-New-12B"]["tags"] == ["12B", "roleplay"]


async def test_text_guard_failure_leaves_image_syncing_and_exits_1(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """A v1 text view that does not match the v2 records fails text only: image still gets its
    PR, the run exits 1."""
    primary.dataset = primary.upsert(Category.image_generation, _image_model("Guarded XL"))
    key = next(iter(primary.dataset.categories[Category.text_generation].legacy or {}))
    await primary.publish(primary.tamper_v1(Category.text_generation, key, description="other"))
    report = await run_sync(primary, gh, clock)
    image, text = report.outcomes
    assert image.status == "pr-opened" and len(gh.repos[IMAGE].pulls) == 1
    assert (
        text.status == "failed" and "does not match" in str(text.error) and key in str(text.error)
    )
    assert gh.repos[TEXT].pulls == [] and report.exit_code == 1


async def test_text_guard_ignores_nsfw_and_version(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """Our v1 text view carries v2 nsfw/version, which models.csv cannot: not a mismatch."""
    name = next(iter(primary.dataset.categories[Category.text_generation].records))
    record = primary.v2(Category.text_generation, name)
    await primary.publish(
        primary.upsert(Category.text_generation, {**record, "nsfw": True, "version": "2"})
    )
    report = await run_sync(primary, gh, clock)
    assert report.ok and report.outcomes[1].status == "unchanged"


async def test_text_guard_ignores_metadata_columns_unless_exported(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """A v1 view carrying context_window (upstream's PRIMARY does) that the repository cannot
    hold is no mismatch while EXPORT_TEXT_METADATA_COLUMNS is off; on, it must match v2."""
    key = next(iter(primary.dataset.categories[Category.text_generation].legacy or {}))
    window = {"max": 4096}
    await primary.publish(primary.tamper_v1(Category.text_generation, key, context_window=window))
    report = await run_sync(primary, gh, clock)
    assert report.ok and report.outcomes[1].status == "unchanged"
    report = await run_sync(primary, gh, clock, EXPORT_TEXT_METADATA_COLUMNS="true")
    text = report.outcomes[1]
    assert text.status == "failed" and key in str(text.error) and gh.repos[TEXT].pulls == []


async def test_primary_rate_limit_on_pull_creation_waits_then_succeeds(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, sleeps: Sleeps
) -> None:
    """A 403 with X-RateLimit-Remaining 0 and a reset 2 s ahead: the client waits for the reset
    (about 3 s), then the PR is created."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Limited XL")))
    gh.rate_limit("POST", "/pulls", reset_in=2)
    report = await run_sync(primary, gh, clock, sleeps)
    assert report.ok and report.outcomes[0].status == "pr-opened"
    assert [d for d in sleeps.delays if d >= 1] and max(sleeps.delays) <= 4
    assert gh.calls("POST", "/pulls") == 2 and len(gh.repos[IMAGE].pulls) == 1


async def test_secondary_rate_limit_honours_retry_after(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, sleeps: Sleeps
) -> None:
    """A secondary-limit 403 with Retry-After: 7 waits 7 s, then goes on."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Second XL")))
    gh.secondary("POST", "/git/blobs", retry_after=7)
    report = await run_sync(primary, gh, clock, sleeps)
    assert report.ok and 7.0 in sleeps.delays


async def test_rate_limit_too_long_stops_the_run(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, sleeps: Sleeps
) -> None:
    """A reset 30 minutes ahead is more than the 120 s allowed: the run stops, both repos fail,
    nothing waits."""
    gh.rate_limit("GET", "/git/ref/heads/main", reset_in=1800)
    report = await run_sync(primary, gh, clock, sleeps)
    assert [o.status for o in report.outcomes] == ["failed", "failed"]
    assert "rate limited" in str(report.outcomes[0].error)
    assert "run stopped" in str(report.outcomes[1].error)
    assert sleeps.delays == [] and report.exit_code == 1


async def test_502_after_pull_creation_makes_no_duplicate(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """GitHub creates the PR but the answer is a 502: the sync looks the PR up instead of
    posting it again."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Flaky XL")))
    gh.fail("POST", "/pulls", 502, apply=True)
    report = await run_sync(primary, gh, clock)
    assert report.ok and report.outcomes[0].status == "pr-opened"
    assert gh.calls("POST", "/pulls") == 1 and len(gh.repos[IMAGE].pulls) == 1
    assert any("head=Haidra-Org" in p for m, p, *_ in gh.requests if m == "GET")
    assert gh.repos[IMAGE].labels[report.outcomes[0].pr_number or 0] == LABELS


async def test_pull_already_exists_is_taken_over(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """A 422 "A pull request already exists" (GitHub made it, the answer was lost in a retry) is
    answered by finding that PR: one PR, labelled, the run succeeds."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Twice XL")))
    exists = {
        "resource": "PullRequest",
        "code": "custom",
        "message": "A pull request already exists for Haidra-Org:sync/x.",
    }
    gh.fail("POST", "/pulls", 422, apply=True, message="Validation Failed", errors=[exists])
    report = await run_sync(primary, gh, clock)
    outcome = report.outcomes[0]
    assert report.ok and outcome.status == "pr-opened"
    assert gh.calls("POST", "/pulls") == 1 and len(gh.repos[IMAGE].pulls) == 1
    assert outcome.pr_number == gh.repos[IMAGE].pulls[0]["number"]
    assert gh.repos[IMAGE].labels[outcome.pr_number] == LABELS


async def test_5xx_on_reads_is_retried(primary: Primary, gh: FakeGitHubApi, clock: Clock) -> None:
    """Two 500s on reading the base tree, then success: the run goes on."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Retry XL")))
    gh.fail("GET", "/git/trees/", 500, times=2)
    report = await run_sync(primary, gh, clock)
    assert report.ok and report.outcomes[0].status == "pr-opened"


async def test_existing_branch_name_gets_a_suffix(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """The branch of this second exists already (422): the sync uses `-2` once."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Clash XL")))
    repo = gh.repos[IMAGE]
    # the run reads the clock for its start and then for the branch: take the same readings
    probe = Clock(clock.start)
    stamps = {probe() for _ in range(6)}
    for stamp in stamps:
        name = time.strftime("sync/image_generation/%Y%m%d-%H%M%S", time.gmtime(stamp))
        repo.refs[f"heads/{name}"] = repo.refs["heads/main"]
    report = await run_sync(primary, gh, clock)
    outcome = report.outcomes[0]
    assert outcome.status == "pr-opened" and str(outcome.branch).endswith("-2")
    assert repo.pulls[0]["head"] == outcome.branch


async def test_bad_token_fails_without_logging_it(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 fails both repositories (exit 1); the token appears in no log line."""
    caplog.set_level(logging.DEBUG)
    gh.public = False
    gh.token = "the-right-token"
    report = await run_sync(primary, gh, clock, TOKEN="secret-wrong-token-123")
    assert report.exit_code == 1
    assert all("401" in str(o.error) for o in report.outcomes)
    assert "secret-wrong-token-123" not in caplog.text
    assert "secret-wrong-token-123" not in report.status_line()


async def test_the_token_reaches_no_log_status_file_or_metrics(
    primary: Primary,
    gh: FakeGitHubApi,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A run that opens a PR and one whose PR creation fails: the token is in no log line (at
    DEBUG, aiohttp's included), printed line, status file, /readyz or /metrics answer, nor in
    the config's repr or first log line."""
    import aiohttp

    from services.github_sync.config import describe
    from services.github_sync.metrics import serve_metrics
    from services.github_sync.status import SyncStatus
    from tests.github_sync_helpers import sync_config

    caplog.set_level(logging.DEBUG)
    secret = gh.token = "ghp_s3cret-token-that-must-not-leak"
    status_file = tmp_path / "status.json"
    status = SyncStatus()
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Leak XL")))
    status.record(await run_sync(primary, gh, clock, STATUS_FILE=str(status_file)))
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Leak2 XL")))
    gh.fail("POST", "/pulls", 422, times=2)
    report = await run_sync(primary, gh, clock, STATUS_FILE=str(status_file))
    status.record(report)
    assert report.exit_code == 1 and gh.calls("POST", "/pulls") >= 2
    runner = await serve_metrics(status, "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            answers = [
                await (await session.get(f"http://{host}:{port}{path}")).text()
                for path in ("/metrics", "/readyz")
            ]
    finally:
        await runner.cleanup()
    config = sync_config(primary, gh)
    seen = [caplog.text, capsys.readouterr().out, status_file.read_text(), *answers]
    seen += [repr(config), describe(config), status.line(), report.status_line()]
    for text in seen:
        assert secret not in text


async def test_credentials_in_the_primary_url_stay_out_of_prs_and_logs(
    primary: Primary,
    gh: FakeGitHubApi,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A PRIMARY URL with user:password (basic auth in front of it): the PR body, which is
    public, names the PRIMARY without them, and so do the logs and the error of a failed read."""
    from services.github_sync.config import describe
    from tests.github_sync_helpers import sync_config

    caplog.set_level(logging.DEBUG)
    url = primary.url.replace("http://", "http://sync:pw-s3cret@")
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Auth XL")))
    report = await run_sync(primary, gh, clock, PRIMARY_API_URL=url)
    assert report.ok, report.status_line()
    [pull] = gh.repos[IMAGE].pulls
    assert f"**Source:** {primary.url}" in pull["body"]
    failed = await run_sync(primary, gh, clock, PRIMARY_API_URL=url + "/missing")
    assert failed.exit_code == 1 and "404" in failed.status_line()
    config = sync_config(primary, gh, PRIMARY_API_URL=url)
    seen = [caplog.text, capsys.readouterr().out, failed.status_line(), describe(config)]
    seen += [str(o.error) for o in failed.outcomes]
    for text in seen:
        assert "pw-s3cret" not in text


async def test_removal_guard_refuses_then_force_passes(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """Removing 11 image models (more than MAX_REMOVALS=10) is refused; --force opens the PR."""
    names = list(primary.dataset.categories[Category.image_generation].records)[:11]
    await primary.publish(primary.delete(Category.image_generation, *names))
    refused = await run_sync(primary, gh, clock)
    assert refused.outcomes[0].status == "failed"
    assert "MAX_REMOVALS" in str(refused.outcomes[0].error) and gh.repos[IMAGE].pulls == []
    forced = await run_sync(primary, gh, clock, FORCE="true")
    assert forced.ok and forced.outcomes[0].status == "pr-opened"


async def test_empty_primary_category_is_refused(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """A PRIMARY with no esrgan models never empties esrgan.json, even with --force."""
    names = list(primary.dataset.categories[Category.esrgan].records)
    await primary.publish(primary.delete(Category.esrgan, *names))
    report = await run_sync(primary, gh, clock, FORCE="true", CATEGORIES="esrgan")
    assert report.outcomes[0].status == "failed" and gh.repos[IMAGE].pulls == []


async def test_repositories_are_independent(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, legacy_dir: Path
) -> None:
    """The image repository's base branch is missing (404): text still gets its PR."""
    del gh.repos[IMAGE].refs["heads/main"]
    record = primary.v2(Category.text_generation, "Aeala/Enterredaas-33b")
    await primary.publish(
        primary.upsert(Category.text_generation, {**record, "description": "Now described"})
    )
    report = await run_sync(primary, gh, clock)
    image, text = report.outcomes
    assert image.status == "failed" and "404" in str(image.error)
    assert text.status == "pr-opened" and report.exit_code == 1
    assert text.changes[0].modified == (
        "Aeala/Enterredaas-33b",
        "aphrodite/Aeala/Enterredaas-33b",
        "koboldcpp/Enterredaas-33b",
    )
    old = (legacy_dir / "text" / "models.csv").read_bytes().split(b"\r\n")
    new = gh.repos[TEXT].file(str(text.branch), "models.csv").split(b"\r\n")
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert changed == [
        (
            b"Aeala/Enterredaas-33b,33,,https://huggingface.co/Aeala/Enterredaas-33b,,,,,,",
            b"Aeala/Enterredaas-33b,33,,https://huggingface.co/Aeala/Enterredaas-33b,,Now described,,,,",
        )
    ]


async def test_a_malformed_github_answer_fails_only_its_repository(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 200 answer without the fields the sync needs (a proxy's page, an API change) fails that
    repository with a message; the other still syncs; the run ends with exit 1, not a crash."""
    gh.fail("GET", f"/repos/{IMAGE}/git/ref/heads/main", 200, message="Moved")
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Odd XL")))
    report = await run_sync(primary, gh, clock)
    image, text = report.outcomes
    assert image.status == "failed" and "unexpected" in str(image.error)
    assert text.status == "unchanged" and report.exit_code == 1
    assert gh.repos[IMAGE].pulls == []
    again = await run_sync(primary, gh, clock)
    assert again.ok and again.outcomes[0].status == "pr-opened"


async def test_crash_before_the_pr_leaves_no_duplicate(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """The process dies right after pushing its branch: the next run opens exactly one PR."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Crash XL")))
    gh.crash_after("POST", "/git/refs")
    crashed = await run_sync(primary, gh, clock)
    assert crashed.outcomes[0].status == "failed" and gh.repos[IMAGE].pulls == []
    gh.recover()
    report = await run_sync(primary, gh, clock)
    assert report.ok and len(gh.repos[IMAGE].open_pulls()) == 1
    again = await run_sync(primary, gh, clock)
    assert again.outcomes[0].status == "pr-up-to-date" and len(gh.repos[IMAGE].pulls) == 1


async def test_crash_after_the_pr_closes_the_superseded_on_the_next_run(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """The process dies right after opening a new PR, before closing the old one: the next run
    finds the new PR up to date, labels it and closes the old one."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Old XL")))
    old = (await run_sync(primary, gh, clock)).outcomes[0]
    await primary.publish(primary.upsert(Category.image_generation, _image_model("New XL")))
    gh.crash_after("POST", "/pulls")
    await run_sync(primary, gh, clock)
    assert len(gh.repos[IMAGE].open_pulls()) == 2
    gh.recover()
    report = await run_sync(primary, gh, clock)
    outcome = report.outcomes[0]
    assert outcome.status == "pr-up-to-date" and outcome.closed == [old.pr_number]
    [open_pull] = gh.repos[IMAGE].open_pulls()
    assert open_pull["number"] == outcome.pr_number != old.pr_number
    assert gh.repos[IMAGE].labels[open_pull["number"]] == LABELS
    assert len(gh.repos[IMAGE].pulls) == 2


async def test_base_branch_moving_mid_run_restarts_the_repository(
    primary: Primary, gh: FakeGitHubApi, clock: Clock, legacy_dir: Path
) -> None:
    """A maintainer pushes to main while the run builds its commit: the run starts that
    repository again and bases the PR on the new main, keeping the maintainer's change."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Moving XL")))
    repo = gh.repos[IMAGE]
    readme = b"# pushed by a maintainer mid-run\n"
    gh.after("POST", "/git/commits", lambda: repo.commit_files("main", {"README.md": readme}))
    report = await run_sync(primary, gh, clock)
    outcome = report.outcomes[0]
    assert report.ok and outcome.status == "pr-opened" and len(repo.pulls) == 1
    head = repo.refs[f"heads/{outcome.branch}"]
    assert repo.commits[head]["parents"] == [repo.refs["heads/main"]]
    assert repo.file(str(outcome.branch), "README.md") == readme
    assert gh.calls("POST", "/git/commits") == 2


async def test_fewer_changes_than_min_changes_open_nothing(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """MIN_CHANGES=3 and one new model: below the threshold, nothing written; --force syncs it."""
    await primary.publish(primary.upsert(Category.image_generation, _image_model("Small XL")))
    report = await run_sync(primary, gh, clock, MIN_CHANGES="3")
    assert report.ok and report.outcomes[0].status == "below-threshold"
    assert gh.repos[IMAGE].pulls == []
    forced = await run_sync(primary, gh, clock, MIN_CHANGES="3", FORCE="true")
    assert forced.outcomes[0].status == "pr-opened"


async def test_unreadable_file_on_github_fails_only_its_repository(
    primary: Primary, gh: FakeGitHubApi, clock: Clock
) -> None:
    """esrgan.json on main is no longer JSON: the image repository fails with that reason and
    nothing is written there; the text repository is still synced."""
    gh.repos[IMAGE].commit_files("main", {"esrgan.json": b"<<<<<<< merge conflict\n"})
    record = primary.v2(Category.text_generation, "Aeala/Enterredaas-33b")
    await primary.publish(primary.upsert(Category.text_generation, {**record, "url": ""}))
    report = await run_sync(primary, gh, clock)
    image, text = report.outcomes
    assert image.status == "failed" and "unreadable file" in str(image.error)
    assert gh.repos[IMAGE].pulls == [] and text.status == "pr-opened"
