"""One sync run: read the PRIMARY and each repository's base branch, render the files, and open
one pull request per repository with changes (spec 08 §4-§5, §9.2, §10)."""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from attrs import define, field, frozen

from horde_model_records import CATEGORY_INFO, Category, has_backend_prefix

from .config import SYNCED, Config
from .github import GitHubClient, GitHubError, RateLimited, Repo, blob_sha
from .legacy_json import LayoutError, canonical, parse_layout, render_json, render_new_file
from .legacy_text import METADATA_COLUMNS, TextFormatError, project, render_text_files
from .messages import (
    SUPERSEDED_COMMENT,
    Changes,
    branch_scope,
    commit_message,
    pr_body,
    pr_categories,
    pr_title,
)
from .primary import PrimaryError, PrimaryReader, View

logger = logging.getLogger("hmr.github_sync")

Clock = Callable[[], float]
#: keys our v1 text view carries from v2 that the repository's converter cannot write (§4)
TEXT_GUARD_IGNORED = ("nsfw", "version")


class SyncRefused(Exception):
    """A repository's sync is refused (guard, unreadable file, PRIMARY problem); others go on."""


class BaseMoved(Exception):
    """The base branch moved while the run prepared its commit."""


@frozen
class FilePlan:
    path: str
    current: bytes | None
    desired: bytes

    @property
    def changed(self) -> bool:
        return self.current != self.desired


@define
class RepoOutcome:
    """What a run did for one repository; `status` is one word an operator can grep for."""

    repo: str
    status: str = "unchanged"
    changes: list[Changes] = field(factory=list)
    files: list[str] = field(factory=list)
    branch: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    closed: list[int] = field(factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def total(self) -> int:
        return sum(c.total for c in self.changes)

    def describe(self) -> str:
        text = f"{self.repo}: {self.status}"
        if self.pr_number is not None:
            text += f" #{self.pr_number}"
        if self.changes:
            text += " (" + ", ".join(c.summary() for c in self.changes) + ")"
        if self.closed:
            text += f" closed {', '.join('#' + str(n) for n in self.closed)}"
        if self.error:
            text += f": {self.error}"
        return text


@define
class RunReport:
    started: float
    finished: float = 0.0
    outcomes: list[RepoOutcome] = field(factory=list)

    @property
    def ok(self) -> bool:
        return not any(o.failed for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def changes_found(self) -> int:
        return sum(o.total for o in self.outcomes)

    @property
    def prs_opened(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "pr-opened")

    @property
    def prs_closed(self) -> int:
        return sum(len(o.closed) for o in self.outcomes)

    def status_line(self) -> str:
        state = "ok" if self.ok else "failed"
        parts = "; ".join(o.describe() for o in self.outcomes) or "nothing to sync"
        return (
            f"github-sync run {state} in {self.finished - self.started:.1f} s: {parts}; "
            f"changes {self.changes_found}, PRs opened {self.prs_opened}, "
            f"closed {self.prs_closed}"
        )


def _utc(now: float, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(now))


def _branch_name(changes: list[Changes], now: float) -> str:
    """`sync/{category}/{YYYYmmdd-HHMMSS}` (UTC), or `sync/multi-category/…` (spec 08 §5)."""
    return f"sync/{branch_scope(changes)}/{_utc(now, '%Y%m%d-%H%M%S')}"


def _sync_ref(pull: dict[str, Any], repo: Repo) -> str | None:
    head = pull.get("head") or {}
    ref = str(head.get("ref") or "")
    full = ((head.get("repo") or {}).get("full_name")) or repo.full_name
    return ref if ref.startswith("sync/") and full == repo.full_name else None


class Syncer:
    """Runs syncs with one config, one PRIMARY reader and one GitHub client."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        *,
        github: GitHubClient,
        primary: PrimaryReader | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.github = github
        self.primary = primary or PrimaryReader(
            session,
            config.primary_url,
            timeout=config.primary_timeout,
            backoff=config.retry_backoff,
        )
        self._clock = clock

    # --- the run ----------------------------------------------------------------------------------

    def groups(self) -> list[tuple[Repo, tuple[Category, ...]]]:
        image = tuple(c for c in self.config.categories if c is not Category.text_generation)
        text = tuple(c for c in self.config.categories if c is Category.text_generation)
        out: list[tuple[Repo, tuple[Category, ...]]] = []
        if image:
            out.append((Repo.parse(self.config.image_repo), image))
        if text:
            out.append((Repo.parse(self.config.text_repo), text))
        return out

    async def run(self) -> RunReport:
        report = RunReport(started=self._clock())
        aborted: str | None = None
        for repo, categories in self.groups():
            if aborted is not None:
                report.outcomes.append(RepoOutcome(repo.full_name, "failed", error=aborted))
                continue
            outcome = RepoOutcome(repo.full_name)
            try:
                try:
                    await self._sync_repo(repo, categories, outcome)
                except BaseMoved:
                    logger.warning("%s: the base branch moved during the run; again", repo)
                    outcome = RepoOutcome(repo.full_name)
                    await self._sync_repo(repo, categories, outcome)
            except RateLimited as exc:
                aborted = f"run stopped: {exc}"
                outcome.status, outcome.error = "failed", str(exc)
            except (SyncRefused, PrimaryError, GitHubError, BaseMoved) as exc:
                outcome.status, outcome.error = "failed", str(exc)
            except (LayoutError, TextFormatError, UnicodeDecodeError) as exc:
                outcome.status, outcome.error = "failed", f"unreadable file: {exc}"
            except Exception as exc:  # a bug or an answer of a shape we did not expect:
                # that repository fails, the other still syncs (spec 08 §10)
                logger.exception("github-sync %s: unexpected error", repo)
                outcome.status = "failed"
                outcome.error = f"unexpected error: {type(exc).__name__}: {exc}"
            report.outcomes.append(outcome)
            log = logger.error if outcome.failed else logger.info
            log("github-sync %s", outcome.describe())
        report.finished = self._clock()
        return report

    async def _sync_repo(
        self, repo: Repo, categories: tuple[Category, ...], outcome: RepoOutcome
    ) -> None:
        config = self.config
        branch = config.branch_of(repo.full_name)
        base = await self.github.ref_sha(repo, branch)
        base_tree = await self.github.commit_tree(repo, base)
        tree = await self.github.tree(repo, base_tree)
        plans: list[FilePlan] = []
        for category in categories:
            changes, files = await self._plan(repo, category, tree)
            plans.extend(files)
            if changes.total:
                outcome.changes.append(changes)
            self._guard_removals(changes)
        total = outcome.total
        changed = [p for p in plans if p.changed]
        outcome.files = [p.path for p in changed]
        if total == 0 or not changed:
            outcome.status = "unchanged"
            return
        if total < config.min_changes:
            outcome.status = "below-threshold"
            return
        if config.dry_run:
            outcome.status = "dry-run"
            for c in outcome.changes:
                logger.info("dry run: %s", _dry_summary(c))
            return
        if config.no_pr:
            self._write_offline(repo, changed, outcome)
            return
        await self._pull_request(repo, categories, base, base_tree, plans, changed, outcome)

    def _guard_removals(self, changes: Changes) -> None:
        removed = [n for n in changes.removed if not has_backend_prefix(n)]
        if len(removed) > self.config.max_removals and not self.config.force:
            raise SyncRefused(
                f"{changes.category}: {len(removed)} models would be removed "
                f"(more than MAX_REMOVALS={self.config.max_removals}); rerun with --force "
                "if that is intended"
            )

    # --- reading and rendering ----------------------------------------------------------------------

    async def _read(self, repo: Repo, tree: dict[str, str], path: str) -> bytes | None:
        sha = tree.get(path)
        return None if sha is None else await self.github.blob(repo, sha)

    async def _plan(
        self, repo: Repo, category: Category, tree: dict[str, str]
    ) -> tuple[Changes, list[FilePlan]]:
        if category is Category.text_generation:
            return await self._plan_text(repo, tree)
        path = CATEGORY_INFO[category].legacy_file
        assert path is not None
        view = await self.primary.v1(category)
        current = await self._read(repo, tree, path)
        if current is None:
            desired = render_new_file(view.data).encode()
            return Changes.of(category.value, {}, _canon(view.data)), [
                FilePlan(path, None, desired)
            ]
        layout = parse_layout(current.decode("utf-8"))
        if not view.data and layout.entries:
            raise SyncRefused(
                f"{category.value}: the PRIMARY has no models but {path} has "
                f"{len(layout.entries)}: refusing to empty it"
            )
        changes = Changes.of(category.value, _canon(layout.records), _canon(view.data))
        desired = render_json(layout, view.data).encode("utf-8")
        return changes, [FilePlan(path, current, desired)]

    async def _text_views(self) -> tuple[View, View]:
        v2 = await self.primary.v2(Category.text_generation)
        v1 = await self.primary.v1(Category.text_generation)
        if v1.snapshot_id != v2.snapshot_id:  # a publish in between: once more
            v2 = await self.primary.v2(Category.text_generation)
            v1 = await self.primary.v1(Category.text_generation)
        if v1.snapshot_id == v2.snapshot_id:
            return v2, v1
        raise SyncRefused(
            "text_generation: the PRIMARY's v1 and v2 views came from different snapshots "
            f"({v1.snapshot_id} and {v2.snapshot_id}) twice"
        )

    async def _plan_text(self, repo: Repo, tree: dict[str, str]) -> tuple[Changes, list[FilePlan]]:
        v2, v1 = await self._text_views()
        metadata = self.config.export_text_metadata_columns
        projected = project(v2.data, metadata=metadata)
        # without the metadata columns the repository cannot hold them, so v1 may differ there
        ignored = TEXT_GUARD_IGNORED + (() if metadata else METADATA_COLUMNS)
        mismatched = _guard_mismatch(projected, v1.data, ignored)
        if mismatched:
            raise SyncRefused(
                "text_generation: the PRIMARY's v1 view does not match its v2 records "
                f"projected as the repository's converter would ({len(mismatched)} entries, "
                f"e.g. {', '.join(mismatched[:5])}): refusing to sync text"
            )
        csv_current = await self._read(repo, tree, "models.csv")
        db_current = await self._read(repo, tree, "db.json")
        if not v2.data and csv_current and csv_current.count(b"\n") > 1:
            raise SyncRefused("text_generation: the PRIMARY has no models; refusing to empty")
        merged, db_text, db = render_text_files(
            (csv_current or b"").decode("utf-8"), v2.data, metadata=metadata
        )
        try:
            current_db = json.loads(db_current) if db_current else {}
        except ValueError as exc:
            raise SyncRefused(f"db.json is not JSON: {exc}") from None
        changes = Changes.of("text_generation", _canon(current_db), _canon(db))
        return changes, [
            FilePlan("models.csv", csv_current, merged.encode("utf-8")),
            FilePlan("db.json", db_current, db_text.encode("utf-8")),
        ]

    # --- --no-pr ----------------------------------------------------------------------------------

    def _write_offline(self, repo: Repo, changed: list[FilePlan], outcome: RepoOutcome) -> None:
        outcome.status = "offline-render"
        outcome.branch = _branch_name(outcome.changes, self._clock())
        if self.config.output_dir is None:
            return
        root = self.config.output_dir / repo.name
        diff: list[str] = []
        for plan in changed:
            target = root / plan.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(plan.desired)
            before = (plan.current or b"").decode("utf-8").splitlines(keepends=True)
            after = plan.desired.decode("utf-8").splitlines(keepends=True)
            diff.extend(difflib.unified_diff(before, after, f"a/{plan.path}", f"b/{plan.path}"))
        (root / "changes.diff").write_text("".join(diff), encoding="utf-8", newline="")
        logger.info(
            "offline render of %s in %s (branch %s, no PR created)", repo, root, outcome.branch
        )

    # --- pull requests ------------------------------------------------------------------------------

    async def _pull_request(
        self,
        repo: Repo,
        categories: tuple[Category, ...],
        base: str,
        base_tree: str,
        plans: list[FilePlan],
        changed: list[FilePlan],
        outcome: RepoOutcome,
    ) -> None:
        gh = self.github
        pulls = [p for p in await gh.open_pulls(repo) if _sync_ref(p, repo)]
        pulls.sort(key=lambda p: int(p["number"]), reverse=True)
        wanted = {p.path: blob_sha(p.desired) for p in plans}
        current = await self._identical(repo, pulls, wanted)
        if current is not None:
            outcome.status = "pr-up-to-date"
            await self._labels(repo, int(current["number"]))
        else:
            current = await self._create(repo, base, base_tree, changed, outcome)
            outcome.status = "pr-opened"
        outcome.pr_number = int(current["number"])
        outcome.pr_url = current.get("html_url")
        outcome.branch = str((current.get("head") or {}).get("ref") or outcome.branch)
        for pull in pulls:
            if int(pull["number"]) != outcome.pr_number and self._superseded(
                pull, repo, categories
            ):
                await self._close(repo, pull, current, outcome)

    async def _identical(
        self, repo: Repo, pulls: list[dict[str, Any]], wanted: dict[str, str]
    ) -> dict[str, Any] | None:
        """The open sync PR whose head already holds exactly the files this run would write."""
        for pull in pulls:
            sha = (pull.get("head") or {}).get("sha")
            if not sha:
                continue
            try:
                head = await self.github.tree(repo, await self.github.commit_tree(repo, sha))
            except GitHubError as exc:
                if exc.status in (404, 409, 422):
                    continue
                raise
            if all(head.get(path) == blob for path, blob in wanted.items()):
                return pull
        return None

    async def _create(
        self,
        repo: Repo,
        base: str,
        base_tree: str,
        changed: list[FilePlan],
        outcome: RepoOutcome,
    ) -> dict[str, Any]:
        gh, config = self.github, self.config
        blobs = {plan.path: await gh.create_blob(repo, plan.desired) for plan in changed}
        tree = await gh.create_tree(repo, base_tree, blobs)
        author = {"name": config.commit_author_name, "email": config.commit_author_email}
        commit = await gh.create_commit(repo, commit_message(outcome.changes), tree, base, author)
        if await gh.ref_sha(repo, config.branch_of(repo.full_name)) != base:
            raise BaseMoved()
        now = self._clock()
        branch = _branch_name(outcome.changes, now)
        try:
            await gh.create_ref(repo, branch, commit)
        except GitHubError as exc:
            if exc.status != 422:
                raise
            branch += "-2"  # a sync of the same second: once, then it is an error
            await gh.create_ref(repo, branch, commit)
        outcome.branch = branch
        title = pr_title(outcome.changes, _utc(now, "%Y-%m-%d"))
        body = pr_body(outcome.changes, self.primary.url)
        pull = await self._open_pull(repo, title, body, branch)
        await self._labels(repo, int(pull["number"]))
        if config.pr_reviewers or config.pr_team_reviewers:
            try:
                await gh.request_reviewers(
                    repo,
                    int(pull["number"]),
                    list(config.pr_reviewers),
                    list(config.pr_team_reviewers),
                )
            except GitHubError as exc:
                logger.warning("%s #%s: reviewers not requested: %s", repo, pull["number"], exc)
        return pull

    async def _open_pull(self, repo: Repo, title: str, body: str, branch: str) -> dict[str, Any]:
        """POST the PR; after a 5xx, no answer or "already exists", look it up before retrying,
        so a retried POST never makes a second PR."""
        head = f"{repo.owner}:{branch}"
        for attempt in (1, 2):
            try:
                return await self.github.create_pull(
                    repo, title, body, branch, self.config.branch_of(repo.full_name)
                )
            except GitHubError as exc:
                exists = exc.status == 422 and "already exists" in exc.text.lower()
                if not (exists or exc.status == 0 or exc.status >= 500):
                    raise
                logger.warning("%s: creating the PR for %s: %s; looking it up", repo, branch, exc)
                found = await self.github.open_pulls(repo, head=head)
                if found:
                    return found[0]
                if exists or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _labels(self, repo: Repo, number: int) -> None:
        if not self.config.pr_labels:
            return
        try:
            await self.github.add_labels(repo, number, list(self.config.pr_labels))
        except GitHubError as exc:
            logger.warning("%s #%s: labels not set: %s", repo, number, exc)

    def _superseded(
        self, pull: dict[str, Any], repo: Repo, categories: tuple[Category, ...]
    ) -> bool:
        """A sync PR of this run's scope: one of its categories, or a multi-category PR whose
        categories (its body's list; unknown: all the repository's) this run covered, since the
        new PR then holds their current state."""
        ref = _sync_ref(pull, repo) or ""
        scope = ref.split("/")[1] if ref.count("/") >= 2 else ""
        covered = {c.value for c in categories}
        if scope == "multi-category":
            held = pr_categories(pull.get("body")) or {
                c.value for c in SYNCED if self.config.repo_of(c) == repo.full_name
            }
            return held <= covered
        return scope in covered

    async def _close(
        self, repo: Repo, pull: dict[str, Any], new: dict[str, Any], outcome: RepoOutcome
    ) -> None:
        number = int(pull["number"])
        gh = self.github
        text = SUPERSEDED_COMMENT.format(number=new["number"], url=new.get("html_url", ""))
        try:
            await gh.comment(repo, number, text)
        except GitHubError as exc:
            logger.warning("%s #%s: comment not posted: %s", repo, number, exc)
        try:
            await gh.close_pull(repo, number)
        except GitHubError as exc:
            logger.warning("%s #%s: not closed: %s", repo, number, exc)
            return
        outcome.closed.append(number)
        ref = _sync_ref(pull, repo)
        if self.config.delete_superseded_branches and ref:
            try:
                await gh.delete_ref(repo, ref)
            except GitHubError as exc:
                if exc.status != 422:  # 422: the branch is already gone
                    logger.warning("%s: branch %s not deleted: %s", repo, ref, exc)


def _canon(records: dict[str, Any]) -> dict[str, str]:
    return {name: canonical(record) for name, record in records.items()}


def _guard_mismatch(
    projected: dict[str, Any], v1: dict[str, Any], ignored: tuple[str, ...]
) -> list[str]:
    """Names where the v1 view differs from the projection, the `ignored` keys aside."""

    def bare(entry: Any) -> str:
        if isinstance(entry, dict):
            entry = {k: v for k, v in entry.items() if k not in ignored}
        return canonical(entry)

    names = sorted(projected.keys() ^ v1.keys())
    names += sorted(n for n in projected.keys() & v1.keys() if bare(projected[n]) != bare(v1[n]))
    return names


def _dry_summary(changes: Changes) -> str:
    parts = [changes.summary()]
    for label, names in (
        ("added", changes.added),
        ("removed", changes.removed),
        ("modified", changes.modified),
    ):
        if names:
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            parts.append(f"{label}: {', '.join(names[:5])}{more}")
    return "; ".join(parts)
