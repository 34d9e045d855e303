"""Moving the text toolkit's stores across deployments: upstream's three JSON files in and out
(`hmr toolkit-import`, `hmr toolkit-export`)."""

from __future__ import annotations

from pathlib import Path

from shared.errors import Conflict
from shared.snapshot import SnapshotStore
from shared.text_toolkit import FILES, StoreFileError, ToolkitStores

from . import text_toolkit as ops
from .config import Config
from .models import Identity
from .publisher import SnapshotPublisher
from .queue import WriteQueue
from .store import Store

#: who the audit log names for an import
IMPORTER = Identity(user_id="hmr-cli", username="hmr toolkit-import", roles=frozenset())


class ImportRefused(ValueError):
    """Files that cannot be imported (unreadable, of another shape, or breaking an invariant)."""


def read_upstream_files(source: Path) -> tuple[ToolkitStores, list[str]]:
    """The stores in `source`'s upstream files, checked against the invariants, and which of the
    three files were there."""
    found = {name: (source / name).read_bytes() for name in FILES if (source / name).is_file()}
    if not found:
        raise ImportRefused(f"none of {', '.join(FILES)} is in {source}")
    try:
        raw = ToolkitStores.from_files(found)
    except StoreFileError as exc:
        raise ImportRefused(str(exc)) from None
    checked = ToolkitStores(schemas=raw.schemas)
    try:
        for canonical, aliases in raw.aliases.items():
            checked = ops.put_aliases(checked, canonical, aliases)
        for family, members in raw.families.items():
            if members:  # upstream deletes empty families; an empty one is dropped, not refused
                checked = ops.put_family(checked, family, members)
    except Conflict as exc:
        raise ImportRefused(str(exc.detail)) from None
    return checked, sorted(found)


def merged(live: ToolkitStores, imported: ToolkitStores, present: list[str]) -> ToolkitStores:
    """Each store whose file was imported replaces the live one; the others stay."""
    schemas, aliases, families = FILES
    return ToolkitStores(
        schemas=imported.schemas if schemas in present else live.schemas,
        aliases=imported.aliases if aliases in present else live.aliases,
        families=imported.families if families in present else live.families,
    )


async def aimport_files(config: Config, source: Path) -> ToolkitStores:
    """Import upstream's files into the write store of `config`'s data dir, audit and publish.
    The write service must not be running (the store's lock refuses a second writer)."""
    imported, present = read_upstream_files(source)
    store = await Store.aopen(config.database_path)
    try:
        queue = WriteQueue(
            store=store,
            publisher=SnapshotPublisher(SnapshotStore(config.snapshots_dir), config.keep_snapshots),
            domain=config.canonical_format,
        )
        await queue.astart(config.seed_dir)
        return await queue.aupdate_toolkit(IMPORTER, lambda live: merged(live, imported, present))
    finally:
        await store.aclose()


def export_files(snapshots_dir: Path, out: Path) -> list[Path]:
    """Write the live snapshot's stores as upstream's three files into `out`."""
    snapshot = SnapshotStore(snapshots_dir).read_current()
    if snapshot is None:
        raise FileNotFoundError(f"no snapshot in {snapshots_dir}")
    stores = ToolkitStores.from_snapshot_files(snapshot.files)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in stores.files().items():
        (out / name).write_bytes(data)  # as upstream writes them: no trailing newline
        written.append(out / name)
    return written
