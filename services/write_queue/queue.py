"""The review queue: propose, approve or reject in batches, apply, purge.

Every state change runs under one lock and one SQLite transaction. An apply commits the new
records, statuses and audit events together, then publishes one snapshot; if the process dies in
between, the next start publishes what the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import attrs
from attrs import define, frozen

from horde_model_records import Category, legacy_to_v2, structure_record, unstructure_record
from horde_model_records.categories import merge_baseline_vocabulary
from horde_model_records.served import read_fields
from horde_model_records.text import model_name_of
from shared.dataset import Dataset, delete_record, import_legacy_dir, upsert_record
from shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    Unavailable,
)
from shared.memory import release_free_memory
from shared.text_toolkit import ToolkitStores
from shared.wire import JsonObject, get_converter

from . import catalogs, guidance
from .audit import AuditReplay
from .diff import catalog_change_diff, change_diff
from .models import (
    ALL_CHANGES,
    AuditEvent,
    Change,
    ChangeFilter,
    Identity,
    Proposal,
    Status,
    keep_creation,
)
from .publisher import Publisher
from .store import Store
from .text_toolkit import entry_changes
from .wire import (
    BatchSplit,
    DiffError,
    PendingBatchResult,
    PendingChangeDiffPage,
    PurgePendingChangesResponse,
    Refusal,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ApplyFailure(ServiceError):
    """One change of an apply could not be applied; `error_type` names the kind for clients."""

    error_type = "PendingChangeError"

    def __init__(self, change_id: int, message: str) -> None:
        super().__init__(message)
        self.change_id = change_id


class ChangeMissing(ApplyFailure, NotFound):
    error_type = "PendingChangeNotFoundError"


class ChangeNotReady(ApplyFailure, BadRequest):
    """Not approved, reserved by another job."""

    error_type = "PendingChangeStateError"


class BadPayload(ApplyFailure, BadRequest):
    error_type = "PendingChangePayloadError"


class DatasetRefused(ApplyFailure, Unavailable):
    """The dataset cannot take the change (e.g. deleting a model that is gone)."""

    error_type = "PendingChangeBackendError"


#: the rule of two-person review, as the refusals state it
TWO_PERSON_RULE = (
    "Two-person review: the requestor of a change cannot approve or apply it; "
    "another approver must."
)


def _own(changes: Iterable[Change], who: Identity) -> list[Refusal]:
    """The changes `who` proposed, refused under the two-person rule."""
    return [
        Refusal(change_id=c.change_id, reason=TWO_PERSON_RULE)
        for c in changes
        if c.requested_by == who.user_id
    ]


#: what every route that needs the dataset or the store answers while the start loads them
LOADING = "The write service is still loading the dataset; retry in a few seconds."
#: seconds a client is told to wait before it asks again while the dataset loads
LOADING_RETRY_AFTER = 5


class Loading(Unavailable):
    """The dataset is not loaded yet (503 with Retry-After)."""

    def __init__(self) -> None:
        super().__init__(LOADING, headers={"Retry-After": str(LOADING_RETRY_AFTER)})


class LoadFailed(Unavailable):
    """The dataset could not be loaded; a served process has ended, an app in process says so."""

    def __init__(self) -> None:
        super().__init__("The write service could not load the dataset; see its log.")


def _settle_young() -> None:
    """Move every object alive out of the collector's scans, cheaply.

    The writer's dataset at 100x the real data is about a million objects that live until the
    next apply replaces them; while they sit in the collector's generations, every full
    collection walks them all (measured: pauses of 0.1-0.6 s during the load, 0.6 s for the
    `gc.collect()` after it), and those pauses stop the event loop the reads are served on.
    Only the young generations are collected first (well under a millisecond); `gc.freeze()`
    itself is constant time. Frozen objects are still freed by reference counting."""
    gc.collect(1)
    gc.freeze()


#: records read from the store between two progress reports
_LOAD_STEP = 2000
#: seconds between two settles while the start builds the dataset
_SETTLE_EVERY = 0.1


@asynccontextmanager
async def _settling() -> AsyncIterator[None]:
    """Settle the heap every `_SETTLE_EVERY` seconds while the body runs.

    The start builds the dataset in worker threads (reading the store, or importing the live
    snapshot on the first start); with the collector left alone, its full collections walk
    all that was built so far, while holding the GIL: measured at 100x, pauses of 0.1-1 s of
    every request. Settled every 0.1 s, a collection walks at most what 0.1 s built. Cyclic
    garbage of those seconds is frozen with it (a bounded, one-time cost)."""

    async def settle() -> None:
        while True:
            await asyncio.sleep(_SETTLE_EVERY)
            _settle_young()

    task = asyncio.create_task(settle())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # else the awaiting task was cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


async def _in_daemon_thread(work: Callable[[], T]) -> T:
    """`await asyncio.to_thread(work)`, in a daemon thread: for work that only reads and builds
    objects, which a stopping process may abandon. The default executor's threads are waited
    for at exit: a first start's import stopped by SIGTERM would hold the exit 15 s at 100x."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        deliver: Callable[[], None]
        try:
            deliver = functools.partial(_succeed, future, work())
        except BaseException as exc:  # noqa: BLE001 -- handed to the awaiting task as is
            deliver = functools.partial(_fail, future, exc)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(deliver)

    threading.Thread(target=run, name="hmr-write-import", daemon=True).start()
    return await future


@frozen
class ApplyOutcome:
    """What an apply did: the changes applied, the failure that stopped it, the batch split."""

    applied: list[Change]
    failure: ApplyFailure | None = None
    split: BatchSplit | None = None
    refused: list[Refusal] = attrs.Factory(list)


def _now() -> int:
    return int(time.time())


@define
class WriteQueue:
    """The single writer: owns the in-memory dataset that mirrors the database."""

    store: Store
    publisher: Publisher  # public: tests swap in one that fails
    domain: str  # canonical format, recorded on audit events
    clock: Callable[[], int] = _now
    dataset: Dataset | None = None
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)
    _beta: dict[Category, tuple[int, bytes]] = attrs.Factory(dict)  # category -> (generation, JSON)
    version: int = 0  # dataset version the database holds
    published_version: int | None = None  # dataset version the live snapshot holds
    #: True once astart has loaded, recovered and published: routes answer from then on
    loaded: bool = False
    #: what the start is doing, for /readyz while it loads
    progress: str = "waiting to start"
    #: why the start failed (the served process then ends; an app in process keeps saying it)
    load_error: str | None = None

    # --- start-up ------------------------------------------------------------------------------

    async def astart(self, seed_dir: Path | None) -> None:
        """Load the dataset (importing CURRENT or a seed the first time), recover, republish.

        Runs in the background while the server already answers: until it ends, `require_loaded`
        refuses every use of the queue with a 503 (`Loading`)."""
        async with self.lock, _settling():
            # built once, here, off the event loop: not at import, which would delay the reads
            # of `hmr all` (about 150 ms), nor on the first request that needs it
            await asyncio.to_thread(get_converter)
            imported = not await self.store.has_dataset()
            if imported:
                self.progress = "importing the live snapshot or the seed into a new store"
                # only reads (the live snapshot or the seed): abandoned if the process stops
                dataset, version = await _in_daemon_thread(
                    functools.partial(self._initial_dataset, seed_dir)
                )
                self.progress = "writing the imported dataset into the new store"
                async with self.store.transaction():
                    await self.store.write_dataset(dataset, _in_daemon_thread)
                    await self.store.set_counter("dataset_version", version)
                # the store holds it now: read it back like every later start, which keeps the
                # records' names and not the records (rows made from records: no check needed)
                del dataset
            total = await self.store.count_records()
            self.progress = f"reading the store (0 of {total} records)"

            def read(count: int) -> None:
                self.progress = f"reading the store ({count} of {total} records)"

            self.dataset = await self.store.read_dataset(read, _LOAD_STEP, check=not imported)
            self.progress = "recovering interrupted applies"
            await self._recover_applying()
            self.progress = "publishing what the store holds, or preparing the next publish"
            await self._publish_if_behind()
            _settle_young()  # the dataset lives until the next apply: out of the GC's scans
            await asyncio.to_thread(release_free_memory)  # what the import and checks used
            self.loaded, self.progress = True, "dataset loaded"

    def failed(self, error: BaseException) -> None:
        """The start failed with `error`: the queue stays refused, /readyz says why."""
        self.load_error = f"{error.__class__.__name__}: {error}"

    def require_loaded(self) -> None:
        """Raise the 503 of a queue whose start has not (or could not) load the dataset."""
        if self.loaded:
            return
        raise Loading() if self.load_error is None else LoadFailed()

    def readiness(self) -> tuple[bool, str]:
        """(ready, detail) for /readyz: loaded, or what the start is doing, or why it failed."""
        if self.loaded:
            return True, "dataset loaded"
        if self.load_error is not None:
            return False, f"the dataset could not be loaded: {self.load_error}"
        return False, f"loading the dataset: {self.progress}"

    def _initial_dataset(self, seed_dir: Path | None) -> tuple[Dataset, int]:
        """The first dataset and its version: the live snapshot's, else a seed (version 0)."""
        live = self.publisher.live_dataset()
        if live is not None:
            return live
        if seed_dir is None:
            raise RuntimeError("empty data dir and no seed dir: run `hmr seed` first")
        dataset, problems = import_legacy_dir(seed_dir)
        for problem in problems:
            logger.warning("seed: %s", problem)
        return dataset, 0

    async def _recover_applying(self) -> None:
        stuck = await self.store.list_changes(statuses=["applying"])
        if not stuck:
            return
        async with self.store.transaction():
            for change in stuck:
                logger.warning(
                    "change %s was applying at shutdown: back to approved", change.change_id
                )
                await self.store.update_change(
                    change.evolve(status="approved", applied_job_id=None)
                )

    async def _publish_if_behind(self) -> None:
        self.version = await self.store.counter("dataset_version")
        if await asyncio.to_thread(self.publisher.published_version) != self.version:
            await self._apublish(self.version)
        else:
            self.published_version = self.version
            assert self.dataset is not None
            await asyncio.to_thread(self.publisher.adopt, self.dataset)

    async def _apublish(self, version: int) -> None:
        assert self.dataset is not None
        name = await asyncio.to_thread(self.publisher.publish, self.dataset, version)
        self.published_version = version
        logger.info("published snapshot %s (dataset version %s)", name, version)

    async def _apublish_pending(self) -> None:
        """Publish what the database holds if the live snapshot is behind it.

        Runs after every commit and before every apply, so a publish that failed once (full
        disk, I/O error) is retried by the next apply; the committed changes stay applied.
        """
        if self.published_version == self.version:
            return
        try:
            await self._apublish(self.version)
        except OSError as exc:
            logger.exception("publishing dataset version %s failed", self.version)
            raise Unavailable(
                "The change is applied but its snapshot could not be published yet "
                f"({exc.__class__.__name__}); it is retried on the next apply and at restart."
            ) from None

    # --- reads ---------------------------------------------------------------------------------

    def live(self) -> Dataset:
        self.require_loaded()
        assert self.dataset is not None  # loaded
        return self.dataset

    def live_legacy_record(self, category: Category, name: str) -> JsonObject | None:
        """The record's entry in the v1 view (text: the base-name db.json entry)."""
        view = self.live().categories[category].legacy
        return None if view is None else view.get(name)

    def live_record(self, category: Category, name: str) -> JsonObject | None:
        record = self.live().categories[category].records.get(name)
        return None if record is None else unstructure_record(record)

    def current_state(self, change: Change) -> JsonObject | None:
        """The live record a change is compared with, in the change's own format."""
        if change.is_legacy:
            return self.live_legacy_record(change.category, change.model_name)
        return self.live_record(change.category, change.model_name)

    async def aget(self, change_id: int) -> Change:
        change = await self.store.get_change(change_id)
        if change is None:
            raise NotFound("Change not found")
        return change

    async def alist(self, selected: ChangeFilter = ALL_CHANGES) -> list[Change]:
        found = await self.store.list_changes(selected.statuses, selected.batch_id)
        return [c for c in found if selected.matches(c)]

    async def adiffs(self, change_ids: Iterable[int]) -> PendingChangeDiffPage:
        ids = list(change_ids)
        diffs, errors = [], []
        for cid in ids:
            change = await self.store.get_change(cid)
            if change is None:
                errors.append(
                    DiffError(change_id=cid, error="Change not found", error_type="NotFound")
                )
            elif change.resource_kind != catalogs.MODEL_REFERENCE:
                try:
                    current, proposed = self.catalog_diff_states(change)
                except (Conflict, InvalidInput) as exc:
                    errors.append(
                        DiffError(
                            change_id=cid, error=str(exc.detail), error_type=type(exc).__name__
                        )
                    )
                else:
                    diffs.append(catalog_change_diff(change, current, proposed))
            else:
                diffs.append(change_diff(change, self.current_state(change)))
        return PendingChangeDiffPage(diffs=diffs, total=len(ids), errors=errors)

    async def abeta_models(self, category: Category) -> bytes:
        """The beta models of `category` as JSON (every default worker polls them): computed
        once per state of the store, then answered from memory."""
        generation = self.store.generation
        cached = self._beta.get(category)
        if cached is not None and cached[0] == generation:
            return cached[1]
        data = json.dumps(await self._beta_models(category), ensure_ascii=False).encode()
        self._beta[category] = (generation, data)
        return data

    async def _beta_models(self, category: Category) -> dict[str, JsonObject]:
        """Create/update payloads still pending or approved, as v2 records (text guidance as
        the live catalog assigns it); the newest change per name wins (by updated_at, then
        change_id). Catalog change sets are no models (spec 06 §4)."""
        latest: dict[str, JsonObject] = {}
        order: dict[str, tuple[int, int]] = {}
        assignments = self.live().catalogs.guidance.get("assignments", {})
        for change in await self.store.list_changes(statuses=["pending", "approved"]):
            if change.category is not category or change.operation == "delete":
                continue
            if change.resource_kind != catalogs.MODEL_REFERENCE:
                continue
            key = (change.updated_at, change.change_id)
            if change.payload is None or key <= order.get(change.model_name, (-1, -1)):
                continue
            order[change.model_name] = key
            payload = change.payload
            if change.is_legacy:
                payload = unstructure_record(legacy_to_v2(category, payload))
            assignment = assignments.get(change.model_name)
            latest[change.model_name] = read_fields(category, payload, assignment)
        return latest

    async def areplay(self, domain: str) -> AuditReplay:
        """The queue's history as the audit log of `domain` tells it."""
        return AuditReplay.of(await self.store.audit_events(domain))

    async def acheck_one_batch(self, change_ids: Iterable[int]) -> None:
        """Every change exists and all were approved in the same batch."""
        batches: set[int | None] = set()
        for cid in change_ids:
            change = await self.store.get_change(cid)
            if change is None:
                raise NotFound(f"Change {cid} not found")
            batches.add(change.batch_id)
        if None in batches:
            raise BadRequest("Cannot apply changes that have not been approved in a batch")
        if len(batches) > 1:
            found = sorted(b for b in batches if b is not None)
            raise BadRequest(f"All changes must belong to the same batch. Found batch IDs: {found}")

    async def abatch_members(self, batch_id: int) -> list[Change]:
        return await self.store.list_changes(batch_id=batch_id)

    async def astatus_counts(self) -> dict[str, int]:
        return await self.store.status_counts()

    # --- audit ---------------------------------------------------------------------------------

    async def _audit(
        self,
        category: str,
        model_name: str,
        operation: str,
        user_id: str | None,
        payload: JsonObject,
        request_id: str | None = None,
    ) -> None:
        event = AuditEvent(
            timestamp=self.clock(),
            domain=self.domain,
            category=category,
            model_name=model_name,
            operation=operation,
            logical_user_id=user_id,
            request_id=request_id,
            payload={"before": None, "after": None, "delta": None, **payload},
        )
        await self.store.append_audit(event)

    async def _queue_event(self, who: Identity, model: str, after: JsonObject) -> None:
        await self._audit("pending_queue", model, "update", who.user_id, {"after": after})

    # --- propose -------------------------------------------------------------------------------

    async def aenqueue(self, who: Identity, proposal: Proposal) -> Change:
        return (await self.aenqueue_all(who, [proposal]))[0]

    async def aenqueue_all(self, who: Identity, proposals: Iterable[Proposal]) -> list[Change]:
        """Queue proposals together: all of them, in order, or none."""
        now = self.clock()
        changes: list[Change] = []
        async with self.lock, self.store.transaction():
            for proposal in proposals:
                changes.append(await self._enqueue(who, proposal, now))
        return changes

    async def _enqueue(self, who: Identity, proposal: Proposal, now: int) -> Change:
        related = proposal.related_models
        if proposal.category is Category.text_generation and proposal.resource_id is None:
            related = ["aphrodite/" + proposal.name, "koboldcpp/" + model_name_of(proposal.name)]
        change = Change(
            change_id=await self.store.next_value("change_id"),
            category=proposal.category,
            model_name=proposal.name,
            operation=proposal.operation,
            payload=proposal.payload,
            requested_by=who.user_id,
            requested_username=who.username,
            requested_at=now,
            status="pending",
            updated_at=now,
            request_metadata={"route": proposal.route, **(proposal.request_metadata or {})},
            related_models=related,
            payload_format=proposal.payload_format,
            resource_kind=proposal.resource_kind,
            resource_id=proposal.resource_id,
            notes=proposal.notes,
        )
        await self.store.insert_change(change)
        await self._queue_event(
            who,
            str(change.change_id),
            {
                "action": "enqueue",
                "change_id": change.change_id,
                "operation": proposal.operation,
                "category": proposal.category.value,
                "model": proposal.name,
            },
        )
        return change

    # --- direct catalog writes (licensing) --------------------------------------------------------

    async def alicensing_write(
        self,
        who: Identity,
        write: Callable[
            [JsonObject, int, Dataset], tuple[JsonObject, JsonObject, JsonObject | None]
        ],
    ) -> JsonObject | None:
        """Run one licensing write on the live licensing data (with the live dataset it checks
        references against, both read under the lock), store it, audit it (category
        `licensing`, the record key as model name) and publish; the record written, if any."""
        async with self.lock:
            dataset = self.live()
            now = self.clock()
            licensing, audit, written = write(dataset.catalogs.licensing, now, dataset)
            after = attrs.evolve(dataset, catalogs=dataset.catalogs.replace(licensing=licensing))
            async with self.store.transaction():
                await self.store.write_catalogs(after.catalogs)
                await self._audit(
                    "licensing",
                    audit["record_key"],
                    audit["operation"],
                    who.user_id,
                    {
                        "before": audit["before"],
                        "after": audit["after"],
                        "record_kind": audit["record_kind"],
                    },
                )
                self.version = await self.store.next_value("dataset_version")
            self.dataset = after
            await self._apublish_pending()
        return written

    # --- review --------------------------------------------------------------------------------

    async def _open_batch(self) -> int:
        for change in await self.store.list_changes(statuses=["approved"]):
            if change.batch_id is not None:
                return change.batch_id
        return await self.store.next_value("batch_id")

    async def _pending(self, change_ids: Iterable[int]) -> dict[int, Change]:
        changes: dict[int, Change] = {}
        for cid in sorted(set(change_ids)):
            change = await self.store.get_change(cid)
            if change is None:
                raise BadRequest(f"Change {cid} does not exist.")
            if change.status != "pending":
                raise BadRequest(f"Change {cid} is not pending (status={change.status}).")
            changes[cid] = change
        return changes

    async def abatch(
        self,
        who: Identity,
        title: str,
        approved_ids: list[int],
        rejected_ids: list[int],
        reason: str | None,
    ) -> PendingBatchResult:
        """Approve and reject pending changes together; nothing changes if any id is unusable."""
        now = self.clock()
        async with self.lock, self.store.transaction():
            changes = await self._pending([*approved_ids, *rejected_ids])
            refused = _own((changes[cid] for cid in approved_ids), who)
            if refused and len(refused) == len(approved_ids) and not rejected_ids:
                raise Forbidden(TWO_PERSON_RULE)
            own = {r.change_id for r in refused}
            approved_ids = [cid for cid in approved_ids if cid not in own]
            batch_id = await self._open_batch() if approved_ids else None
            batch = (batch_id, title)
            approved = [changes[cid].reviewed("approved", who, now, batch) for cid in approved_ids]
            rejected = [
                changes[cid].reviewed("rejected", who, now, batch, reason) for cid in rejected_ids
            ]
            for change in [*approved, *rejected]:
                await self.store.update_change(change)
                event: JsonObject = {
                    "action": "approve" if change.status == "approved" else "reject",
                    "change_id": change.change_id,
                    "batch_id": batch_id,
                    "batch_title": title,
                }
                if change.status == "rejected":
                    event["reason"] = reason
                await self._queue_event(who, str(change.change_id), event)
        return PendingBatchResult(
            batch_id=batch_id,
            batch_title=title,
            approved=approved,
            rejected=rejected,
            refused=refused,
        )

    async def apurge(
        self, who: Identity, selected: ChangeFilter, dry_run: bool
    ) -> PurgePendingChangesResponse:
        async with self.lock, self.store.transaction():
            doomed = await self.alist(selected)
            if not dry_run:
                await self.store.delete_changes(c.change_id for c in doomed)
                for c in doomed:
                    await self._queue_event(
                        who,
                        str(c.change_id),
                        {
                            "action": "purge",
                            "change_id": c.change_id,
                            "category": c.category.value,
                            "model": c.model_name,
                            "requested_by": c.requested_by,
                            "purged_by_username": who.username,
                        },
                    )
        return PurgePendingChangesResponse(
            removed_count=len(doomed),
            removed_change_ids=[c.change_id for c in doomed],
            dry_run=dry_run,
        )

    # --- apply ---------------------------------------------------------------------------------

    def _needs_apply(self, change: Change | None, cid: int, job: str) -> Change:
        """The change, checked to be applicable by `job`; ApplyFailure says why not."""
        if change is None:
            raise ChangeMissing(cid, f"Change {cid} not found.")
        if change.status == "applied" and change.applied_job_id == job:
            return change  # a retry of the same job: already done, nothing twice
        if change.status == "applying" and change.applied_job_id != job:
            raise ChangeNotReady(
                cid,
                f"Change {cid} is already reserved for apply (job_id={change.applied_job_id}).",
            )
        if change.status not in ("approved", "applying"):
            raise ChangeNotReady(cid, f"Change {cid} is not approved (status={change.status}).")
        if change.payload is None:
            raise BadPayload(cid, f"Change {cid} has no payload.")
        return change

    async def aapply(
        self, who: Identity, change_ids: list[int], job_id: str | None
    ) -> ApplyOutcome:
        """Apply changes in order, stopping at the first failure; one snapshot for the lot."""
        job = job_id or f"apply-{change_ids[0]}-{secrets.token_hex(16)}"
        async with self.lock:
            await self._apublish_pending()
            dataset = self.live()
            todo: list[Change] = []
            done: list[Change] = []
            refused: list[Refusal] = []
            failure: ApplyFailure | None = None
            queued: set[str] | None = None  # baselines queued model changes name, when needed
            for cid in change_ids:
                try:
                    change = self._needs_apply(await self.store.get_change(cid), cid, job)
                    if change.status == "applied":
                        done.append(change)
                        continue
                    if _own([change], who):
                        refused += _own([change], who)
                        continue
                    if change.resource_kind == catalogs.IMAGE_BASELINE and queued is None:
                        queued = await self.aqueued_baselines()
                    dataset = self._applied(dataset, change, who, queued or set())
                except ApplyFailure as exc:
                    failure = exc
                    break
                todo.append(change)
            split = None
            if todo:
                await self._reserve(todo, job)
                try:
                    applied, split = await self._commit(dataset, todo, who, job)
                except BaseException:
                    await self._release(todo)  # nothing was committed: back to approved
                    raise
                done.extend(applied)
                await self._apublish_pending()
        if refused and not done and failure is None:
            raise Forbidden(TWO_PERSON_RULE)
        return ApplyOutcome(applied=done, failure=failure, split=split, refused=refused)

    async def aqueued_baselines(self) -> set[str]:
        """Baselines named by image model changes still in the queue (pending, approved or
        applying): a baseline delete must not pull the baseline from under them."""
        changes = await self.store.list_changes(statuses=("pending", "approved", "applying"))
        return catalogs.referenced_baselines(
            [],
            [
                c.payload
                for c in changes
                if c.category is Category.image_generation
                and c.resource_kind == catalogs.MODEL_REFERENCE
            ],
        )

    def _applied(
        self, dataset: Dataset, change: Change, who: Identity, queued: set[str]
    ) -> Dataset:
        """The dataset with one change applied (pure; raises ApplyFailure); `queued`: the
        baselines queued model changes name."""
        now = self.clock()
        if change.resource_kind != catalogs.MODEL_REFERENCE:
            return self._catalog_applied(dataset, change, who, now, queued)
        category = change.category
        if change.operation == "delete":
            if change.model_name not in dataset.categories[category].records:
                raise DatasetRefused(
                    change.change_id,
                    f"Model '{change.model_name}' not found in category '{category.value}'",
                )
            return delete_record(dataset, category, change.model_name, now)
        legacy_record = None
        payload = dict(change.payload or {})
        if change.is_legacy:
            legacy_record = payload
            try:
                payload = unstructure_record(legacy_to_v2(category, legacy_record))
            except Exception as exc:  # noqa: BLE001 -- a stored payload that no longer converts
                raise BadPayload(change.change_id, f"Change {change.change_id}: {exc}") from None
        existing = dataset.categories[category].records.get(change.model_name)
        payload = keep_creation(payload, None if existing is None else unstructure_record(existing))
        metadata = payload["metadata"]
        metadata.setdefault("created_at", now)
        metadata["updated_at"] = now
        metadata["updated_by"] = who.username
        payload["metadata"] = metadata
        try:
            record = structure_record(category, payload)
        except Exception as exc:  # noqa: BLE001 -- a stored payload that no longer validates
            raise BadPayload(change.change_id, f"Change {change.change_id}: {exc}") from None
        return upsert_record(dataset, category, record, now, legacy_record)

    def _catalog_applied(
        self, dataset: Dataset, change: Change, who: Identity, now: int, queued: set[str]
    ) -> Dataset:
        """The dataset with a catalog change set applied on live data: refused (503, back to
        approved) with the dry run's message when it no longer holds."""
        payload = dict(change.payload or {})
        try:
            if change.resource_kind == catalogs.TEXT_GUIDANCE:
                texts = set(dataset.categories[Category.text_generation].records)
                live_guidance = dataset.catalogs.guidance
                after = guidance.applied_guidance(live_guidance, payload, texts, who.user_id, now)
                if after is live_guidance:
                    return dataset  # the change set's end states already hold: a no-op
                return attrs.evolve(dataset, catalogs=dataset.catalogs.replace(guidance=after))
            images = dataset.categories[Category.image_generation].records.values()
            baselines = catalogs.applied_catalog(
                dataset.catalogs.baselines,
                payload,
                catalogs.referenced_baselines(images, []) | queued,
                who.user_id,
                now,
            )
        except (Conflict, InvalidInput) as exc:
            raise DatasetRefused(change.change_id, str(exc.detail)) from None
        if baselines is dataset.catalogs.baselines:
            return dataset  # the change set's end states already hold: a no-op
        return attrs.evolve(dataset, catalogs=dataset.catalogs.replace(baselines=baselines))

    def catalog_diff_states(self, change: Change) -> tuple[JsonObject, JsonObject]:
        """(live catalog, catalog after the change set) for a catalog change's diff; Conflict
        or InvalidInput when the change set no longer applies."""
        dataset = self.live()
        if change.resource_kind == catalogs.TEXT_GUIDANCE:
            texts = set(dataset.categories[Category.text_generation].records)
            current = dataset.catalogs.guidance
            return current, guidance.guidance_dry_run(
                current,
                dict(change.payload or {}),
                texts,
                change.approved_by,
                change.approved_at or self.clock(),
            )
        images = dataset.categories[Category.image_generation].records.values()
        current = dataset.catalogs.baselines
        proposed = catalogs.baseline_dry_run(
            current,
            dict(change.payload or {}),
            catalogs.referenced_baselines(images, []),
            change.approved_by,
            change.approved_at or self.clock(),
        )
        return current, proposed

    async def _set_status(self, changes: list[Change], status: Status, job: str | None) -> None:
        async with self.store.transaction():
            for change in changes:
                await self.store.update_change(change.evolve(status=status, applied_job_id=job))

    async def _reserve(self, changes: list[Change], job: str) -> None:
        await self._set_status(changes, "applying", job)

    async def _release(self, changes: list[Change]) -> None:
        await self._set_status(changes, "approved", None)

    async def _commit(
        self, dataset: Dataset, changes: list[Change], who: Identity, job: str
    ) -> tuple[list[Change], BatchSplit | None]:
        now = self.clock()
        before = self.live()
        touched = {c.category for c in changes if c.resource_kind == catalogs.MODEL_REFERENCE}
        applied: list[Change] = []
        async with self.store.transaction():
            for category in touched:
                await self.store.write_category_changes(
                    category, before.categories[category], dataset.categories[category]
                )
            if dataset.catalogs is not before.catalogs:
                await self.store.write_catalogs(dataset.catalogs)
            for change in changes:
                done = change.evolve(
                    status="applied",
                    applied_at=now,
                    applied_by=who.user_id,
                    applied_username=who.username,
                    applied_job_id=job,
                    updated_at=now,
                )
                await self.store.update_change(done)
                if change.resource_kind == catalogs.MODEL_REFERENCE:
                    await self._model_event(before, dataset, change, who, job)
                await self._queue_event(
                    who,
                    str(change.change_id),
                    {
                        "action": "apply",
                        "change_id": change.change_id,
                        "batch_id": change.batch_id,
                        "job_id": job,
                    },
                )
                applied.append(done)
            batches = {c.batch_id for c in changes if c.batch_id is not None}
            split = await self._split_batches(who, batches, now)
            self.version = await self.store.next_value("dataset_version")
        self.dataset = dataset
        # records naming a newly catalogued baseline then load without a warning
        merge_baseline_vocabulary(dataset.catalogs.baselines)
        return applied, split

    async def _model_event(
        self, before: Dataset, after: Dataset, change: Change, who: Identity, job: str
    ) -> None:
        category = change.category
        old = before.categories[category].records.get(change.model_name)
        new = after.categories[category].records.get(change.model_name)
        old_wire = None if old is None else unstructure_record(old)
        new_wire = {} if new is None else unstructure_record(new)
        payload: JsonObject
        if change.operation == "delete":
            operation, payload = "delete", {"before": old_wire}
        elif old_wire is None:
            operation, payload = "create", {"after": new_wire}
        else:
            delta = {
                key: {"old": old_wire.get(key), "new": new_wire.get(key)}
                for key in sorted(set(old_wire) | set(new_wire))
                if old_wire.get(key) != new_wire.get(key)
            }
            # the whole previous record too: audit views can then tell an update from a create
            operation, payload = "update", {"before": old_wire, "delta": delta}
        await self._audit(category.value, change.model_name, operation, who.user_id, payload, job)

    async def _split_batches(
        self, who: Identity, batch_ids: set[int], now: int
    ) -> BatchSplit | None:
        """Move approved changes left behind in the touched batches to one new open batch."""
        left: list[Change] = []
        for batch_id in sorted(batch_ids):
            left += await self.store.list_changes(["approved"], batch_id)
        if not left:
            return None
        new_batch = await self.store.next_value("batch_id")
        for change in left:
            await self.store.update_change(change.evolve(batch_id=new_batch, updated_at=now))
        original = min(batch_ids)
        await self._queue_event(
            who,
            "queue",
            {
                "action": "batch_split",
                "original_batch_id": original,
                "new_batch_id": new_batch,
                "reassigned_change_ids": [c.change_id for c in left],
                "reason": "partial_apply",
            },
        )
        return BatchSplit(
            original_batch_id=original, new_batch_id=new_batch, reassigned_count=len(left)
        )

    # --- the text toolkit's direct writes (spec 07 §6) ----------------------------------------

    async def aupdate_toolkit(
        self,
        who: Identity,
        edit: Callable[[ToolkitStores], ToolkitStores],
        request_id: str | None = None,
    ) -> ToolkitStores:
        """Apply `edit` to the live toolkit stores: persist, audit each changed entry, publish,
        then return the new stores. An edit that changes nothing writes nothing."""
        async with self.lock:
            await self._apublish_pending()
            before = self.live()
            stores = edit(before.text_toolkit)  # raises Conflict / NotFound: nothing written
            changes = entry_changes(before.text_toolkit, stores)
            if not changes:
                return stores
            async with self.store.transaction():
                await self.store.write_toolkit(stores)
                for category, key, operation, old, new in changes:
                    payload = {"before": old, "after": new}
                    await self._audit(category, key, operation, who.user_id, payload, request_id)
                self.version = await self.store.next_value("dataset_version")
            self.dataset = attrs.evolve(before, text_toolkit=stores)
            await self._apublish_pending()
        return stores
