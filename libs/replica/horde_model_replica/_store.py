"""The last good copy of each category on disk: atomic replace, plus the ETag it was fetched with.

Layout under the cache dir B (`$AIWORKER_CACHE_HOME/horde_model_reference`): `B/<v2 file>` (the
v2 document), `B/legacy/<legacy file>` (the GitHub file a conversion came from) and
`B/.replica/<category>.json`, a small sidecar naming the source, URL and ETag of the document
together with its sha256. The sidecar is trusted
only while that hash matches the document, so a file replaced by somebody else is never paired
with a stale ETag.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from attrs import field, frozen

from horde_model_records import CATEGORY_INFO, Category

logger = logging.getLogger("horde_model_replica")


class Source(enum.StrEnum):
    """Where a category's data came from."""

    primary_v2 = "primary_v2"
    primary_v1 = "primary_v1"
    github = "github"
    disk = "disk"  # a file on disk of unknown origin (no sidecar, or one that does not match)


@frozen
class FileStamp:
    """What identifies one version of a file: a change of any part means it was replaced."""

    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_mtime_ns, st.st_size, st.st_ino)


@frozen
class Validator:
    """The sidecar: which source the document came from and the ETag to revalidate it with."""

    source: Source
    url: str | None
    etag: str | None
    sha256: str
    saved_at: float
    aliases: Mapping[str, str] = field(factory=dict)  # other spelling -> record name


@frozen
class StoredCopy:
    document: bytes
    stamp: FileStamp
    validator: Validator | None  # None: no sidecar, or it describes other bytes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> os.stat_result:
    """Replace `path` with `data`: temp file in the same dir, fsync, rename, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return st


class DiskStore:
    """Reads and atomically replaces the files under one cache dir."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def v2_path(self, category: Category) -> Path:
        return self.root / CATEGORY_INFO[category].v2_file

    def legacy_path(self, category: Category) -> Path | None:
        legacy_file = CATEGORY_INFO[category].legacy_file
        return None if legacy_file is None else self.root / "legacy" / legacy_file

    def sidecar_path(self, category: Category) -> Path:
        return self.root / ".replica" / f"{category.value}.json"

    def stamp(self, category: Category) -> FileStamp | None:
        try:
            return FileStamp.of(os.stat(self.v2_path(category)))
        except OSError:
            return None

    def read(self, category: Category) -> StoredCopy | None:
        """The v2 document on disk with its stamp and (matching) sidecar; None when absent."""
        try:
            with open(self.v2_path(category), "rb") as f:
                stamp = FileStamp.of(os.fstat(f.fileno()))
                document = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.error("cannot read %s: %s", self.v2_path(category), exc)
            return None
        return StoredCopy(document, stamp, self._validator(category, document))

    def _validator(self, category: Category, document: bytes) -> Validator | None:
        try:
            data = json.loads(self.sidecar_path(category).read_bytes())
            validator = Validator(
                source=Source(data["source"]),
                url=data.get("url"),
                etag=data.get("etag"),
                sha256=str(data["sha256"]),
                saved_at=float(data.get("saved_at", 0)),
                aliases={str(k): str(v) for k, v in data.get("aliases", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if validator.sha256 != hashlib.sha256(document).hexdigest():
            return None
        return validator

    def write(
        self,
        category: Category,
        document: bytes,
        *,
        source: Source,
        url: str | None,
        etag: str | None,
        legacy: bytes | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> FileStamp:
        """Replace the category's files; only ever called with a validated document."""
        legacy_path = self.legacy_path(category)
        if legacy is not None and legacy_path is not None:
            atomic_write(legacy_path, legacy)
        st = atomic_write(self.v2_path(category), document)
        sidecar = {
            "source": source.value,
            "url": url,
            "etag": etag,
            "sha256": hashlib.sha256(document).hexdigest(),
            "saved_at": time.time(),
            "aliases": dict(aliases or {}),
        }
        atomic_write(self.sidecar_path(category), json.dumps(sidecar, indent=2).encode())
        return FileStamp.of(st)
