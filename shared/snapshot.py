"""The snapshot directory format: atomic publish, verified read, retention.

snapshots/CURRENT                 name of the live snapshot, replaced by rename
snapshots/live                    symlink to that snapshot's directory (for nginx), follows CURRENT
snapshots/000042-9f3c1a/          immutable: id + short content hash
    manifest.json                 id, parent, created_at, every file's sha256 and size, and
                                  per-category counts and metadata
    v2/<category>.json[.gz]       exact response bytes of the v2 category read
    v1/<category>.json[.gz]       exact response bytes of the v1 view
    index/v2/<category>.json      the record index of the v2 file (shared.read_index)

Every file's mtime is stamped from its digest (stamp_of), so nginx's ETag for it
("<mtime hex>-<size hex>") is a function of its bytes, the ETag the read service sends too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from attrs import frozen

from .errors import Unavailable

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CURRENT = "CURRENT"
LIVE = "live"  # symlink to the live snapshot directory, for static file servers
MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^(\d{6,})-([0-9a-f]{6})$")
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")


def v2_path(category: str) -> str:
    """Where a category's v2 answer lives inside a snapshot."""
    return f"v2/{category}.json"


def v1_path(category: str) -> str:
    """Where a category's v1 view lives inside a snapshot."""
    return f"v1/{category}.json"


class SnapshotError(Exception):
    """A snapshot that is missing, damaged or not of this format."""


class SnapshotFileGone(SnapshotError, Unavailable):
    """A file of a verified snapshot, read after the snapshot went live, is gone or was changed
    in place (its directory pruned under a slow reader): a request that needed it answers 503
    and is retried against the next snapshot."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, {"Retry-After": "1"})


class UnlinkableFile(SnapshotError):
    """A publish was asked to keep a file of the parent snapshot that is gone or damaged."""


@frozen
class Snapshot:
    """A verified snapshot: its manifest and every file's bytes (a snapshot read from disk reads
    its large files when they are first asked for: see SnapshotFiles)."""

    name: str
    manifest: dict[str, Any]
    files: Mapping[str, bytes]
    directory: Path | None = None  # where its files are on disk, if they are

    @property
    def id(self) -> int:
        return int(self.manifest["id"])

    def path(self, rel: str) -> Path | None:
        """A verified file's path on disk, for a reader that serves it from there."""
        if self.directory is None or rel not in self.manifest["files"]:
            return None
        return self.directory / rel


class SnapshotFiles(Mapping[str, bytes]):
    """The files of a snapshot verified on disk, by path: the small ones were read while being
    verified, a large one (LARGE_FILE) is read when it is first asked for, so that a reader which
    serves it from disk never holds it. A file whose inode, size or mtime moved since it was
    verified is verified again."""

    def __init__(
        self,
        name: str,
        directory: Path,
        listing: Mapping[str, Any],
        loaded: dict[str, bytes],
        signatures: Mapping[str, _Signature],
    ) -> None:
        self._name = name
        self._directory = directory
        self._listing = listing
        self._loaded = loaded
        self._signatures = signatures

    def __getitem__(self, rel: str) -> bytes:
        return self.read(rel)

    def read(self, rel: str, keep: bool = True) -> bytes:
        """A file's verified bytes; `keep=False`: not kept for the next read (a large file
        read once, which the snapshot would otherwise hold for as long as it lives)."""
        data = self._loaded.get(rel)
        if data is not None:
            return data
        meta = self._listing[rel]  # KeyError: not a file of this snapshot
        path = self._directory / rel
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SnapshotFileGone(f"{self._name}: file {rel} is missing: {exc}") from exc
        if len(data) != meta["size"] or (
            _signature(path) != self._signatures.get(rel) and sha256_hex(data) != meta["sha256"]
        ):
            raise SnapshotFileGone(f"{self._name}: file {rel} does not match its recorded hash")
        if keep:
            self._loaded[rel] = data
        return data

    def __iter__(self) -> Iterator[str]:
        return iter(self._listing)

    def __len__(self) -> int:
        return len(self._listing)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot_id_of(name: str) -> int | None:
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else None


def stamp_of(sha256: str) -> int:
    """The mtime (Unix seconds) every published file gets, derived from its bytes' digest: the
    same bytes carry the same mtime in every snapshot and on every host, so a static file server
    whose ETag is mtime-size (nginx: `"<mtime hex>-<size hex>"`) gives one ETag per content."""
    return int(sha256[:7], 16)


def static_etag(sha256: str, size: int) -> str:
    """The strong ETag nginx sends for a published file of this digest and size."""
    return f'"{stamp_of(sha256):x}-{size:x}"'


_Signature = tuple[int, int, int, int] | None

#: snapshots root -> sha256 -> (bytes or None, file signature) of the snapshot read or written
#: last under that root in this process: the next read (a new publish, or another service of
#: `hmr all`) takes an unchanged file as verified, and from memory when it was held (one copy
#: for every service of the process), when its file is still the inode it was verified or
#: written as, untouched since (a write in place moves its mtime off its stamp, so it is read
#: and verified again)
_known: dict[str, dict[str, tuple[bytes | None, _Signature]]] = {}

#: files larger than this are verified by streaming them and read only when asked for
LARGE_FILE = 1 << 20


#: snapshots root -> what to call after this process moved its CURRENT (from any thread): the
#: services of `hmr all` load a publish of their own writer at once instead of at their next poll
_switch_listeners: dict[str, list[Callable[[], None]]] = {}


def _signature(path: Path) -> _Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, mtime: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        if mtime is not None:
            os.utime(fh.fileno(), (mtime, mtime))
        os.fsync(fh.fileno())


class SnapshotStore:
    """The snapshots directory of one data dir. Only the single writer calls publish()."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def _known(self) -> dict[str, tuple[bytes | None, _Signature]]:
        return _known.get(os.path.abspath(self.root), {})

    def on_switch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (in the publishing thread) whenever this process switches CURRENT
        under this root; returns the function that stops it."""
        listeners = _switch_listeners.setdefault(os.path.abspath(self.root), [])
        listeners.append(callback)
        return lambda: listeners.remove(callback)

    # --- reading -------------------------------------------------------------------------------

    def current_name(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"cannot read {CURRENT}: {exc}") from exc
        return name or None

    def current_marker(self) -> tuple[int, int] | None:
        """A cheap token that changes whenever CURRENT is replaced (inode and mtime)."""
        try:
            st = os.stat(self.root / CURRENT)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name)]
        return sorted(found, key=lambda n: snapshot_id_of(n) or 0)

    def read(self, name: str) -> Snapshot:
        """Read and verify a snapshot: every file listed must exist with its recorded hash."""
        if not _NAME_RE.match(name):
            raise SnapshotError(f"not a snapshot name: {name!r}")
        directory = self.root / name
        try:
            manifest = json.loads((directory / MANIFEST).read_bytes())
        except FileNotFoundError as exc:
            raise SnapshotError(f"{name}: manifest is missing") from exc
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{name}: manifest is unreadable: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
            raise SnapshotError(f"{name}: unknown snapshot format")
        known = self._known
        listing: dict[str, Any] = manifest["files"]

        def verified(rel: str) -> tuple[bytes | None, _Signature]:
            """(the bytes, unless a large file, and the file's signature) once it verifies."""
            meta = listing[rel]
            path = directory / rel
            signature = _signature(path)
            hit = known.get(meta["sha256"])
            if hit is not None and signature is not None and hit[1] == signature:
                return hit[0], signature  # verified (or written) from this same inode before
            data = None
            try:
                with open(path, "rb") as fh:
                    if meta["size"] > LARGE_FILE:
                        digest = hashlib.file_digest(fh, "sha256").hexdigest()
                        size = os.fstat(fh.fileno()).st_size
                    else:
                        data = fh.read()
                        digest, size = sha256_hex(data), len(data)
            except OSError as exc:
                raise SnapshotError(f"{name}: file {rel} is missing: {exc}") from exc
            if size != meta["size"] or digest != meta["sha256"]:
                raise SnapshotError(f"{name}: file {rel} does not match its recorded hash")
            return data, signature

        # reading and hashing release the GIL: both cores verify, largest files first
        order = sorted(listing, key=lambda rel: -int(listing[rel]["size"]))
        found = dict(zip(order, _pool.map(verified, order), strict=True))
        loaded = {rel: data for rel, (data, _) in found.items() if data is not None}
        signatures = {rel: signature for rel, (_, signature) in found.items()}
        _known[os.path.abspath(self.root)] = {
            listing[rel]["sha256"]: (loaded.get(rel), signature)
            for rel, signature in signatures.items()
        }
        files = SnapshotFiles(name, directory, listing, loaded, signatures)
        return Snapshot(name=name, manifest=manifest, files=files, directory=directory)

    def read_current(self) -> Snapshot | None:
        name = self.current_name()
        return None if name is None else self.read(name)

    # --- writing -------------------------------------------------------------------------------

    def publish(
        self,
        files: Mapping[str, bytes | None],
        extra: Mapping[str, Any],
        now: float | None = None,
        hashes: Mapping[str, str] | None = None,
        sizes: Mapping[str, int] | None = None,
    ) -> Snapshot:
        """Write a new snapshot aside, fsync it, rename it into place, then switch CURRENT.

        Files whose bytes equal the parent's are hard-linked, so a publish costs what changed.
        A crash at any step leaves the previous snapshot live. `hashes` (path -> sha256) spares
        hashing files whose digest the caller already knows (the writer's unchanged categories).
        A file given as None is the parent's, unchanged (its digest in `hashes`, its size in
        `sizes`): it is linked, and UnlinkableFile is raised when the parent's copy is gone or
        damaged, so that the caller encodes it again.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        parent = self.current_name()
        parent_manifest = self._manifest_or_none(parent)
        existing = [snapshot_id_of(n) or 0 for n in self.names()]
        new_id = max(existing, default=0) + 1

        known = hashes or {}
        listing = {
            rel: (
                {"sha256": known[rel], "size": (sizes or {})[rel]}
                if data is None
                else {"sha256": known.get(rel) or sha256_hex(data), "size": len(data)}
            )
            for rel, data in files.items()
        }
        content = sha256_hex(
            json.dumps(sorted((rel, m["sha256"]) for rel, m in listing.items())).encode()
        )
        name = f"{new_id:06d}-{content[:6]}"
        manifest = {
            "format": FORMAT_VERSION,
            "id": new_id,
            "name": name,
            "parent": parent,
            "created_at": int(now if now is not None else time.time()),
            "content_sha256": content,
            "files": listing,
            **extra,
        }
        return self._install(name, manifest, files, parent, parent_manifest)

    def install(self, manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> Snapshot:
        """Install a snapshot published elsewhere (a replica pulling from the writer) as live.

        Every file must match the manifest's hash; the snapshot keeps its name and id.
        """
        name = str(manifest.get("name", ""))
        if not _NAME_RE.match(name) or manifest.get("format") != FORMAT_VERSION:
            raise SnapshotError(f"not an installable snapshot: {name!r}")
        for rel, meta in manifest["files"].items():
            data = files.get(rel)
            if data is None or len(data) != meta["size"] or sha256_hex(data) != meta["sha256"]:
                raise SnapshotError(f"{name}: file {rel} does not match its recorded hash")
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / name).is_dir():
            self._switch_current(name)
            return self.read(name)
        parent = self.current_name()
        return self._install(name, dict(manifest), files, parent, self._manifest_or_none(parent))

    def _install(
        self,
        name: str,
        manifest: dict[str, Any],
        files: Mapping[str, bytes | None],
        parent: str | None,
        parent_manifest: dict[str, Any] | None,
    ) -> Snapshot:
        """Write files and manifest aside, fsync, rename into place, then switch CURRENT."""
        listing = manifest["files"]
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))
        try:
            # checking the parent's files is reading and hashing them: two threads (hashlib
            # releases the GIL) on what may be most of the snapshot
            linked = _pool.map(
                lambda rel: self._link_from_parent(
                    parent, parent_manifest, rel, listing[rel], tmp / rel
                ),
                list(files),
            )
            for (rel, data), was_linked in zip(files.items(), list(linked), strict=True):
                stamp = stamp_of(listing[rel]["sha256"])
                if not was_linked:
                    if data is None:
                        raise UnlinkableFile(f"{parent}: {rel} is gone or damaged")
                    _write_file(tmp / rel, data, stamp)
                elif os.stat(tmp / rel).st_mtime != stamp:
                    os.utime(tmp / rel, (stamp, stamp))  # a file published before stamping
            manifest_bytes = json.dumps(manifest, indent=1).encode()
            _write_file(tmp / MANIFEST, manifest_bytes)
            for sub in {tmp, *(p for p in tmp.rglob("*") if p.is_dir())}:
                sub.chmod(0o755)  # mkdtemp makes 0700: readers may run as another user
                _fsync_dir(sub)
            os.rename(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)
        self._switch_current(name)
        directory = self.root / name
        signatures = {rel: _signature(directory / rel) for rel in files}
        # what a later read of this process takes as verified: large files by signature only
        small = {
            rel: data for rel, data in files.items() if data is not None and len(data) <= LARGE_FILE
        }
        _known[os.path.abspath(self.root)] = {
            listing[rel]["sha256"]: (small.get(rel), signature)
            for rel, signature in signatures.items()
        }
        return Snapshot(
            name=name,
            manifest=manifest,
            files=SnapshotFiles(name, directory, listing, small, signatures),
            directory=directory,
        )

    def _manifest_or_none(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        try:
            manifest = json.loads((self.root / name / MANIFEST).read_bytes())
        except (OSError, ValueError):
            return None
        return manifest if isinstance(manifest, dict) else None

    def _link_from_parent(
        self,
        parent: str | None,
        parent_manifest: dict[str, Any] | None,
        rel: str,
        meta: dict[str, Any],
        target: Path,
    ) -> bool:
        """Hard-link an unchanged file from the parent, once its bytes are checked: a file damaged
        in place after it was published is written afresh, never carried into a new snapshot.

        The check is a hash, unless this store verified or wrote those bytes from that very
        inode and its size and stamped mtime are unchanged since (a write in place moves them)."""
        if parent is None or parent_manifest is None:
            return False
        if parent_manifest.get("files", {}).get(rel) != meta:
            return False
        source = self.root / parent / rel
        known = self._known.get(meta["sha256"])
        try:
            if (known is None or known[1] != _signature(source)) and sha256_hex(
                source.read_bytes()
            ) != meta["sha256"]:
                logger.error("snapshot %s: file %s is damaged; writing it afresh", parent, rel)
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, target)
        except OSError:
            return False
        return True

    def _switch_current(self, name: str) -> None:
        tmp = self.root / f"{CURRENT}.tmp"
        _write_file(tmp, name.encode("ascii") + b"\n")
        os.replace(tmp, self.root / CURRENT)
        self._switch_live(name)
        _fsync_dir(self.root)
        for callback in list(_switch_listeners.get(os.path.abspath(self.root), ())):
            callback()

    def _switch_live(self, name: str) -> None:
        """Point the `live` symlink at the snapshot CURRENT names (relative, replaced by rename):
        a static file server (the deployed nginx) serves the live snapshot's files through it.
        CURRENT stays the pointer of record; `live` follows it after every switch."""
        tmp = self.root / f"{LIVE}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(name, tmp)
        os.replace(tmp, self.root / LIVE)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` snapshots; never the live one."""
        live = self.current_name()
        names = self.names()
        doomed = [n for n in names[: max(len(names) - keep, 0)] if n != live]
        for n in doomed:
            shutil.rmtree(self.root / n, ignore_errors=True)
        for leftover in self.root.glob(".build-*"):
            # an interrupted publish; nothing points at it
            with contextlib.suppress(OSError):
                if time.time() - leftover.stat().st_mtime > 60:
                    shutil.rmtree(leftover, ignore_errors=True)
        return doomed
