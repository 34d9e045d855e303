"""SQLite storage of the canonical dataset, the change queue, counters and the audit log.

One long-lived aiosqlite connection (the only writer), WAL, and explicit `BEGIN IMMEDIATE`
transactions. Nothing here knows about HTTP; the queue module decides what to write.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from horde_model_records import (
    ALL_CATEGORIES,
    Category,
    ModelRecord,
    structure_record,
)
from horde_model_records.metadata import CategoryMetadata
from shared.catalogs import Catalogs
from shared.dataset import CategoryData, Dataset, TextView
from shared.layered import Layered, MadeWhenAsked
from shared.text_toolkit import ToolkitStores
from shared.wire import JsonObject, get_converter

from .models import AuditEvent, Change, Status

MIGRATIONS: list[str] = [
    # 1: canonical data, queue, counters, audit
    """
    CREATE TABLE records (
        category TEXT NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (category, name)
    );
    CREATE TABLE legacy_records (
        category TEXT NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (category, name)
    );
    CREATE TABLE category_metadata (
        category TEXT PRIMARY KEY, metadata TEXT NOT NULL, legacy_metadata TEXT NOT NULL,
        has_legacy INTEGER NOT NULL
    );
    CREATE TABLE changes (
        change_id INTEGER PRIMARY KEY, category TEXT NOT NULL, model_name TEXT NOT NULL,
        status TEXT NOT NULL, batch_id INTEGER, requested_by TEXT NOT NULL, data TEXT NOT NULL
    );
    CREATE INDEX changes_status ON changes (status);
    CREATE INDEX changes_batch ON changes (batch_id);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE audit (
        event_id INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL, domain TEXT NOT NULL,
        category TEXT NOT NULL, model_name TEXT NOT NULL, operation TEXT NOT NULL,
        logical_user_id TEXT, request_id TEXT, payload TEXT NOT NULL
    );
    INSERT INTO counters (name, value) VALUES
        ('change_id', 0), ('batch_id', 0), ('dataset_version', 0);
    """,
    # 2: a change records the format of its payload (before, only its route's name told)
    """
    ALTER TABLE changes ADD COLUMN payload_format TEXT NOT NULL DEFAULT 'v2';
    UPDATE changes SET payload_format = 'legacy'
        WHERE json_extract(data, '$.request_metadata.route') LIKE '%\\_legacy%' ESCAPE '\\';
    """,
    # 3: the text toolkit's side stores (spec 07 §6), one row per entry, each store in its order
    """
    CREATE TABLE text_toolkit (
        store TEXT NOT NULL, key TEXT NOT NULL, position INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (store, key)
    );
    """,
    # 4: the reference catalogs (licensing, image_baselines, text_guidance), one JSON row each;
    # a store without rows serves the bundled ones
    """
    CREATE TABLE catalogs (name TEXT PRIMARY KEY, data TEXT NOT NULL);
    """,
]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class StoreBusy(OSError):
    """Another write service holds the store of this data directory."""


def _lock(path: Path) -> int:
    """Hold `<store>.lock` exclusively for as long as the returned descriptor stays open, so a
    second writer on the same data directory stops at start instead of writing beside us."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreBusy(
            f"another write service (pid {holder}) holds the store in {path.parent}; "
            "only one writer may run on a data directory"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _encoded_rows(
    category: Category, entries: Mapping[str, Any], records: bool
) -> list[tuple[str, str, int, str]]:
    """(category, name, position, JSON) rows of a category's records or v1 entries."""
    return [
        (
            category.value,
            name,
            pos,
            _dumps(get_converter().unstructure(value) if records else value),
        )
        for pos, (name, value) in enumerate(entries.items())
    ]


def _record_decoder(category: Category) -> Callable[[str], ModelRecord]:
    def decode(data: str) -> ModelRecord:
        return structure_record(category, json.loads(data))

    return decode


def _check_rows(table: str, rows: Iterable[aiosqlite.Row]) -> None:
    """Decode stored rows and drop them: raises what a row that does not load raises."""
    for category, _name, data in rows:
        value = json.loads(data)
        if table == "records":
            structure_record(Category(category), value)


def _categories(
    metadata: Iterable[aiosqlite.Row],
    records: dict[Category, StoredRows],
    legacy: dict[Category, StoredRows],
) -> dict[Category, CategoryData]:
    categories: dict[Category, CategoryData] = {}
    for row in metadata:
        category = Category(row["category"])
        view: Mapping[str, JsonObject] | None = None
        if row["has_legacy"]:
            view = legacy[category]
            if category is Category.text_generation:
                view = TextView(records[category])  # generated from the records, not stored
        categories[category] = CategoryData(
            records=records[category],
            legacy=view,
            metadata=get_converter().structure(json.loads(row["metadata"]), CategoryMetadata),
            legacy_metadata=get_converter().structure(
                json.loads(row["legacy_metadata"]), CategoryMetadata
            ),
        )
    return categories


async def _to_thread(work: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(work)


def _updated(before: Mapping[str, Any], after: Mapping[str, Any], kept: list[str]) -> list[str]:
    """The keys in `kept` whose value in `after` is another object than in `before`: of two
    `Layered` mappings over one origin, only among the changed ones (the rest are not read)."""
    old, new = Layered.of(before), Layered.of(after)
    if old.origin is not new.origin:
        return [k for k in kept if after[k] is not before[k]]
    missing = object()
    return [
        k
        for k, value in new.changed.items()
        if k in old and k in new and old.changed.get(k, missing) is not value
    ]


class _Reader:
    """A second connection, for the dataset's lookups: it sees committed rows only, from the
    event loop and from publishing threads (one query at a time)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.lock = threading.Lock()

    def one(self, sql: str, args: tuple[Any, ...]) -> Any:
        with self.lock:
            row = self.db.execute(sql, args).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        with self.lock:
            self.db.close()


class StoredRows(MadeWhenAsked[Any]):
    """One category's rows of a table, in position order, read from the store when asked: the
    writer holds their names, not the records (at 100x the real data that is 350 MB less).

    Only committed rows are seen. A row an apply changes is also in the `Layered` mapping over
    this one, which answers for it from then on, so this mapping stays the dataset as loaded."""

    def __init__(
        self,
        reader: _Reader,
        table: str,
        category: Category,
        names: list[str],
        decode: Callable[[str], Any],
        aliases: dict[str, str] | None = None,
    ) -> None:
        super().__init__(dict.fromkeys(names))
        self._reader = reader
        self._sql = f"SELECT data FROM {table} WHERE category = ? AND name = ?"
        self._category = category
        self._decode = decode
        #: v1 only: record name -> the v1 key that spells it otherwise (see `legacy_keys`)
        self.aliases = aliases

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        data = self._reader.one(self._sql, (self._category.value, name))
        if data is None:
            raise KeyError(name)
        return self._decode(data)


class Store:
    """The write service's database. Use `async with store.transaction():` for every change."""

    def __init__(
        self, db: aiosqlite.Connection, lock_fd: int | None = None, path: Path | None = None
    ) -> None:
        self.db = db
        self._lock_fd = lock_fd
        self._path = path
        self._reader_connection: _Reader | None = None
        #: grows with every committed transaction: answers derived from the store can be cached
        #: until it moves (this process is the only writer, see _lock)
        self.generation = 0

    @classmethod
    async def aopen(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(path)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)  # we issue BEGIN ourselves
        except BaseException:
            os.close(lock_fd)
            raise
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")  # an acknowledged apply survives power loss
        await db.execute("PRAGMA foreign_keys=ON")
        store = cls(db, lock_fd, path)
        try:
            await store._migrate()
        except BaseException:
            await store.aclose()  # a refused or failed migration must not leak the connection
            raise
        return store

    @property
    def _reader(self) -> _Reader:
        if self._reader_connection is None:
            if self._path is None:
                raise RuntimeError("a store opened without its path cannot read its dataset")
            self._reader_connection = _Reader(self._path)
        return self._reader_connection

    async def aclose(self) -> None:
        try:
            if self._reader_connection is not None:
                self._reader_connection.close()
            await self.db.close()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the writer lock
                self._lock_fd = None

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the write store is at schema version {version}, newer than this release knows "
                f"({len(MIGRATIONS)}): run the newer release, or restore a backup taken before"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {number}")
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self.db.execute("COMMIT")
        self.generation += 1

    # --- counters ------------------------------------------------------------------------------

    async def counter(self, name: str) -> int:
        async with self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def set_counter(self, name: str, value: int) -> None:
        await self.db.execute("UPDATE counters SET value = ? WHERE name = ?", (value, name))

    async def next_value(self, name: str) -> int:
        """Increment a persisted counter and return its new value (inside a transaction)."""
        await self.db.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))
        return await self.counter(name)

    # --- the dataset ---------------------------------------------------------------------------

    async def has_dataset(self) -> bool:
        async with self.db.execute("SELECT COUNT(*) FROM category_metadata") as cur:
            row = await cur.fetchone()
        return bool(row and row[0])

    async def write_dataset(
        self, dataset: Dataset, off_loop: Callable[[Callable[[], Any]], Awaitable[Any]] = _to_thread
    ) -> None:
        """Replace the whole dataset (first import); call inside a transaction.

        Each category is taken from the dataset by `off_loop` (a worker thread): an imported
        snapshot's categories are decoded when taken, one at a time (dataset_from_snapshot)."""
        await self.db.execute("DELETE FROM records")
        await self.db.execute("DELETE FROM legacy_records")
        await self.db.execute("DELETE FROM category_metadata")
        for category in list(dataset.categories):
            data = await off_loop(functools.partial(dataset.categories.__getitem__, category))
            await self.write_category(category, data)
            del data  # before the next one is decoded
        await self.write_toolkit(dataset.text_toolkit)
        await self.write_catalogs(dataset.catalogs)

    async def write_toolkit(self, stores: ToolkitStores) -> None:
        """Replace the text toolkit's stores; call inside a transaction."""
        await self.db.execute("DELETE FROM text_toolkit")
        rows: list[tuple[str, str, int, str]] = []
        for store, entries in (
            ("schemas", stores.schemas),
            ("aliases", stores.aliases),
            ("families", stores.families),
        ):
            rows += [
                (store, key, pos, _dumps(value)) for pos, (key, value) in enumerate(entries.items())
            ]
        await self.db.executemany(
            "INSERT INTO text_toolkit (store, key, position, data) VALUES (?, ?, ?, ?)", rows
        )

    async def read_toolkit(self) -> ToolkitStores:
        found: dict[str, dict[str, Any]] = {"schemas": {}, "aliases": {}, "families": {}}
        async with self.db.execute(
            "SELECT store, key, data FROM text_toolkit ORDER BY store, position"
        ) as cur:
            async for row in cur:
                found[row["store"]][row["key"]] = json.loads(row["data"])
        return ToolkitStores(
            schemas=found["schemas"],
            aliases={k: tuple(v) for k, v in found["aliases"].items()},
            families={k: tuple(v) for k, v in found["families"].items()},
        )

    async def write_catalogs(self, catalogs: Catalogs) -> None:
        """Replace the stored catalogs; call inside a transaction."""
        await self.db.executemany(
            "INSERT OR REPLACE INTO catalogs (name, data) VALUES (?, ?)",
            [
                ("image_baselines", _dumps(catalogs.baselines)),
                ("licensing", _dumps(catalogs.licensing)),
                ("text_guidance", _dumps(catalogs.guidance)),
            ],
        )

    async def read_catalogs(self) -> Catalogs:
        """The stored catalogs; the bundled one for each the store has no row of."""
        bundled = Catalogs.bundled()
        async with self.db.execute("SELECT name, data FROM catalogs") as cur:
            rows = {row["name"]: json.loads(row["data"]) async for row in cur}
        return Catalogs(
            baselines=rows.get("image_baselines", bundled.baselines),
            licensing=rows.get("licensing", bundled.licensing),
            guidance=rows.get("text_guidance", bundled.guidance),
        )

    async def write_category(self, category: Category, data: CategoryData) -> None:
        """Replace one category's records, legacy view and metadata; call inside a transaction."""
        await self.db.execute("DELETE FROM records WHERE category = ?", (category.value,))
        await self.db.execute("DELETE FROM legacy_records WHERE category = ?", (category.value,))
        # encoded in a worker thread: a whole category at 100x the real data is seconds of CPU
        # that would stop the event loop (the first start imports every category this way)
        await self.db.executemany(
            "INSERT INTO records (category, name, position, data) VALUES (?, ?, ?, ?)",
            await asyncio.to_thread(_encoded_rows, category, data.records, True),
        )
        if data.legacy is not None and category is not Category.text_generation:
            # the text view is generated from the records; JSON views carry legacy-only fields
            await self.db.executemany(
                "INSERT INTO legacy_records (category, name, position, data) VALUES (?, ?, ?, ?)",
                await asyncio.to_thread(_encoded_rows, category, data.legacy, False),
            )
        await self.db.execute(
            "INSERT OR REPLACE INTO category_metadata VALUES (?, ?, ?, ?)",
            (
                category.value,
                _dumps(get_converter().unstructure(data.metadata)),
                _dumps(get_converter().unstructure(data.legacy_metadata)),
                int(data.legacy is not None),
            ),
        )

    async def write_category_changes(
        self, category: Category, before: CategoryData, after: CategoryData
    ) -> None:
        """Write what changed in one category from `before` (what the store holds) to `after`:
        the rows of the records and v1 entries that are other objects, and the metadata; call
        inside a transaction. An apply then costs its own rows, not the category's."""
        await self._write_rows("records", category, before.records, after.records, True)
        if after.legacy is not None and category is not Category.text_generation:
            await self._write_rows(
                "legacy_records", category, before.legacy or {}, after.legacy, False
            )
        await self.db.execute(
            "INSERT OR REPLACE INTO category_metadata VALUES (?, ?, ?, ?)",
            (
                category.value,
                _dumps(get_converter().unstructure(after.metadata)),
                _dumps(get_converter().unstructure(after.legacy_metadata)),
                int(after.legacy is not None),
            ),
        )

    async def _write_rows(
        self,
        table: str,
        category: Category,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        records: bool,
    ) -> None:
        def encode(value: Any) -> str:
            return _dumps(get_converter().unstructure(value) if records else value)

        kept = [k for k in before if k in after]
        added = [k for k in after if k not in before]
        if list(after) != kept + added:
            # the change reordered entries: positions are rewritten with the rest
            await self.db.execute(f"DELETE FROM {table} WHERE category = ?", (category.value,))
            await self.db.executemany(
                f"INSERT INTO {table} (category, name, position, data) VALUES (?, ?, ?, ?)",
                [(category.value, k, pos, encode(v)) for pos, (k, v) in enumerate(after.items())],
            )
            return
        await self.db.executemany(
            f"DELETE FROM {table} WHERE category = ? AND name = ?",
            [(category.value, k) for k in before if k not in after],
        )
        await self.db.executemany(
            f"UPDATE {table} SET data = ? WHERE category = ? AND name = ?",
            [(encode(after[k]), category.value, k) for k in _updated(before, after, kept)],
        )
        if added:
            async with self.db.execute(
                f"SELECT COALESCE(MAX(position), -1) FROM {table} WHERE category = ?",
                (category.value,),
            ) as cur:
                row = await cur.fetchone()
            last = int(row[0]) if row else -1
            await self.db.executemany(
                f"INSERT INTO {table} (category, name, position, data) VALUES (?, ?, ?, ?)",
                [(category.value, k, last + 1 + i, encode(after[k])) for i, k in enumerate(added)],
            )

    async def count_records(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM records") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def read_dataset(
        self, progress: Callable[[int], None] | None = None, every: int = 1000, check: bool = True
    ) -> Dataset:
        """The whole dataset as loaded: its records and v1 entries are read from the store when
        asked (see StoredRows); each row is decoded now, to check it, and dropped. `progress(n)`
        is called on the event loop after every `every` rows (`n`: the records read so far).
        The dataset reads through this store's connection: use it while the store is open.
        `check=False` skips the decoding, for rows this process has just written from records.

        Rows are checked in a worker thread: at 100x the real data that is seconds of CPU, which
        on the event loop would stop every other request for as long."""
        names: dict[tuple[str, Category], list[str]] = {
            (table, c): [] for table in ("records", "legacy_records") for c in ALL_CATEGORIES
        }
        count = 0
        for table in ("records", "legacy_records"):
            async with self.db.execute(
                f"SELECT category, name, data FROM {table} ORDER BY category, position"
            ) as cur:
                while rows := list(await cur.fetchmany(every)):
                    # every row is decoded once, so that a store holding a row that no longer
                    # loads fails here, at start, and not in some later request
                    if check:
                        await asyncio.to_thread(_check_rows, table, rows)
                    for row in rows:
                        names[table, Category(row[0])].append(row[1])
                    if table == "records":
                        count += len(rows)
                    if progress is not None:
                        progress(count)
        # v1 keys that spell their record's name otherwise (a few): found by SQLite, not Python
        aliases: dict[Category, dict[str, str]] = {c: {} for c in ALL_CATEGORIES}
        async with self.db.execute(
            "SELECT category, name, json_extract(data, '$.name') FROM legacy_records"
            " WHERE json_type(data, '$.name') = 'text' AND json_extract(data, '$.name') != name"
        ) as cur:
            async for row in cur:
                aliases[Category(row[0])][row[2]] = row[1]
        records = {
            c: StoredRows(self._reader, "records", c, names["records", c], _record_decoder(c))
            for c in ALL_CATEGORIES
        }
        legacy = {
            c: StoredRows(
                self._reader,
                "legacy_records",
                c,
                names["legacy_records", c],
                json.loads,
                aliases[c],
            )
            for c in ALL_CATEGORIES
        }
        async with self.db.execute("SELECT * FROM category_metadata") as cur:
            metadata = list(await cur.fetchall())
        return Dataset(
            categories=await asyncio.to_thread(_categories, metadata, records, legacy),
            text_toolkit=await self.read_toolkit(),
            catalogs=await self.read_catalogs(),
        )

    # --- changes ------------------------------------------------------------------------------

    async def insert_change(self, change: Change) -> None:
        await self.db.execute(
            "INSERT INTO changes (change_id, category, model_name, status, batch_id, requested_by,"
            " payload_format, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.change_id,
                change.category.value,
                change.model_name,
                change.status,
                change.batch_id,
                change.requested_by,
                change.payload_format,
                _dumps(get_converter().unstructure(change)),
            ),
        )

    async def update_change(self, change: Change) -> None:
        await self.db.execute(
            "UPDATE changes SET status = ?, batch_id = ?, data = ? WHERE change_id = ?",
            (
                change.status,
                change.batch_id,
                _dumps(get_converter().unstructure(change)),
                change.change_id,
            ),
        )

    async def delete_changes(self, change_ids: Iterable[int]) -> None:
        await self.db.executemany(
            "DELETE FROM changes WHERE change_id = ?", [(i,) for i in change_ids]
        )

    async def get_change(self, change_id: int) -> Change | None:
        async with self.db.execute(
            "SELECT payload_format, data FROM changes WHERE change_id = ?", (change_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else Change.from_row(row)

    async def list_changes(
        self, statuses: Iterable[Status] = (), batch_id: int | None = None
    ) -> list[Change]:
        """Changes in change_id order, optionally narrowed by status and batch in SQL."""
        sql = "SELECT payload_format, data FROM changes"
        where: list[str] = []
        args: list[object] = []
        statuses = list(statuses)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if batch_id is not None:
            where.append("batch_id = ?")
            args.append(batch_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY change_id"
        async with self.db.execute(sql, args) as cur:
            return [Change.from_row(row) async for row in cur]

    async def status_counts(self) -> dict[str, int]:
        async with self.db.execute("SELECT status, COUNT(*) FROM changes GROUP BY status") as cur:
            return {row[0]: int(row[1]) async for row in cur}

    # --- audit ---------------------------------------------------------------------------------

    async def append_audit(self, event: AuditEvent) -> int:
        cur = await self.db.execute(
            "INSERT INTO audit (timestamp, domain, category, model_name, operation,"
            " logical_user_id, request_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.timestamp,
                event.domain,
                event.category,
                event.model_name,
                event.operation,
                event.logical_user_id,
                event.request_id,
                _dumps(event.payload),
            ),
        )
        return int(cur.lastrowid or 0)

    async def audit_events(self, domain: str | None = None) -> list[AuditEvent]:
        sql = "SELECT * FROM audit"
        args: tuple[str, ...] = ()
        if domain is not None:
            sql += " WHERE domain = ?"
            args = (domain,)
        sql += " ORDER BY event_id"
        async with self.db.execute(sql, args) as cur:
            return [AuditEvent.from_row(row) async for row in cur]
