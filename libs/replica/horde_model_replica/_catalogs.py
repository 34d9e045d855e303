"""The three catalogs a worker may need: image baselines, licensing, text guidance.

Each is the PRIMARY's export, fetched with a conditional GET and kept on disk as the last good
copy (beside an ETag sidecar), like the categories. When the PRIMARY cannot deliver, the disk copy
is used, else what this package ships (the 13 baselines, an empty guidance catalog; licensing has
no bundled copy here). A baseline catalog read is merged into the records' baseline vocabulary.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
from pathlib import Path
from typing import Any

from horde_model_records.baselines import bundled_catalog_json
from horde_model_records.categories import merge_baseline_vocabulary

from ._errors import InvalidBody, SourceError
from ._http import ReplicaClient
from ._store import atomic_write

logger = logging.getLogger("horde_model_replica")

Json = dict[str, Any]


class CatalogKind(enum.StrEnum):
    image_baselines = "image_baselines"
    licensing = "licensing"
    text_guidance = "text_guidance"


_EXPORT_PATHS = {
    CatalogKind.image_baselines: "model_references/v2/image_generation/baselines/export",
    CatalogKind.licensing: "model_references/v2/licensing/export",
    CatalogKind.text_guidance: "model_references/v2/text_generation/guidance/export",
}
#: keys a valid export has (each must hold the JSON type given)
_REQUIRED: dict[CatalogKind, dict[str, type]] = {
    CatalogKind.image_baselines: {"metadata": dict, "baselines": dict},
    CatalogKind.licensing: {"metadata": dict, "licenses": list, "assets": list},
    CatalogKind.text_guidance: {"metadata": dict, "profiles": dict, "assignments": dict},
}


def _bundled(kind: CatalogKind) -> Json | None:
    if kind is CatalogKind.image_baselines:
        return bundled_catalog_json()
    if kind is CatalogKind.text_guidance:
        meta = {"schema_version": 1, "revision": 1, "updated_at": None}
        return {"metadata": meta, "profiles": {}, "assignments": {}}
    return None


def _decoder(kind: CatalogKind) -> Any:
    def decode(body: bytes) -> Json:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidBody(f"{kind.value} export is not JSON ({exc})") from None
        if not isinstance(data, dict) or any(
            not isinstance(data.get(key), of) for key, of in _REQUIRED[kind].items()
        ):
            raise InvalidBody(f"{kind.value} export lacks {sorted(_REQUIRED[kind])}")
        return data

    return decode


class CatalogCopies:
    """Fetches, keeps and serves the catalogs for one replica (one event loop)."""

    def __init__(self, primary: ReplicaClient | None, cache_dir: Path) -> None:
        self._primary = primary
        self._root = cache_dir / "catalogs"
        self._cached: dict[CatalogKind, Json | None] = {}

    def _paths(self, kind: CatalogKind) -> tuple[Path, Path]:
        return self._root / f"{kind.value}.json", self._root / f"{kind.value}.etag"

    def _disk(self, kind: CatalogKind) -> tuple[Json | None, str | None]:
        document, sidecar = self._paths(kind)
        try:
            data = _decoder(kind)(document.read_bytes())
        except (OSError, InvalidBody):
            return None, None
        etag = None
        with contextlib.suppress(OSError):
            etag = sidecar.read_text(encoding="utf-8").strip() or None
        return data, etag

    def cached(self, kind: CatalogKind) -> Json | None:
        return self._cached.get(kind)

    async def aget(self, kind: CatalogKind, *, force: bool = False) -> Json | None:
        """The catalog: from memory, else the PRIMARY (conditional on the disk copy's ETag),
        else the disk copy, else the bundled one (None for licensing)."""
        if not force and kind in self._cached:
            return self._cached[kind]
        disk, etag = self._disk(kind)
        data = disk
        if self._primary is not None:
            url = self._primary.base_url / _EXPORT_PATHS[kind]
            try:
                fetched = await self._primary._fetch(url, etag if disk else None, _decoder(kind))
            except SourceError as exc:
                fallback = "the last good copy" if disk else "the bundled copy"
                logger.warning(
                    "%s: PRIMARY export failed (%s); using %s", kind.value, exc, fallback
                )
            else:
                if fetched.payload is not None:
                    data = fetched.payload
                    document, sidecar = self._paths(kind)
                    atomic_write(document, json.dumps(data, ensure_ascii=False).encode())
                    atomic_write(sidecar, (fetched.etag or "").encode())
        if data is None:
            data = _bundled(kind)
        if kind is CatalogKind.image_baselines and data is not None:
            merge_baseline_vocabulary(data)
        self._cached[kind] = data
        return data
