"""The three reference catalogs beside the records: licensing, image baselines, text guidance.

They live in the write store, travel in every snapshot as three files of their own under
`catalogs/` (so a read replica serves them without asking the writer), and are plain JSON in their
wire shapes: the write side validates with the attrs classes of horde_model_records before it
stores anything, the read side only serves.
"""

from __future__ import annotations

import json
import weakref
from importlib import resources
from typing import Any

from attrs import evolve, frozen

from horde_model_records.baselines import CATALOG_SCHEMA_VERSION, bundled_catalog_json
from horde_model_records.licensing import LicensedAsset, LicenseDefinition
from horde_model_records.serde import catalog_converter

from .snapshot import Snapshot

Json = dict[str, Any]

BASELINES_FILE = "catalogs/image_baselines.json"
LICENSING_FILE = "catalogs/licensing.json"
GUIDANCE_FILE = "catalogs/text_guidance.json"
CATALOG_FILES = (BASELINES_FILE, LICENSING_FILE, GUIDANCE_FILE)

LICENSING_SCHEMA_VERSION = 1


def _dataset(revision: int, updated_at: int | None, records: Json) -> Json:
    return {
        "schema_version": LICENSING_SCHEMA_VERSION,
        "revision": revision,
        "updated_at": updated_at,
        "records": records,
    }


def bundled_licensing() -> Json:
    """The 16 definitions and 6 assets a new store starts with, in their full wire shape:
    `{"licenses": dataset, "assets": dataset}`, a dataset being {schema_version, revision,
    updated_at, records: {key: record}}."""
    raw = json.loads(
        resources.files("horde_model_records")
        .joinpath("data/licensing.json")
        .read_text(encoding="utf-8")
    )
    licenses: Json = {}
    for entry in raw["licenses"]:
        definition = catalog_converter.structure(entry, LicenseDefinition)
        licenses[definition.license_id] = catalog_converter.unstructure(definition)
    assets: Json = {}
    for entry in raw["assets"]:
        asset = catalog_converter.structure(entry, LicensedAsset)
        assets[asset.key] = catalog_converter.unstructure(asset)
    return {
        "licenses": _dataset(raw["revision"], raw["updated_at"], licenses),
        "assets": _dataset(raw["revision"], raw["updated_at"], assets),
    }


def empty_guidance() -> Json:
    """An empty guidance catalog (revision 1): every text model is legacy_label or undocumented."""
    return {
        "metadata": {"schema_version": CATALOG_SCHEMA_VERSION, "revision": 1, "updated_at": None},
        "profiles": {},
        "assignments": {},
    }


@frozen
class Catalogs:
    """The catalogs of one dataset state, each in its stored JSON shape."""

    baselines: Json  # {metadata, baselines: {name: record}} (the export)
    licensing: Json  # {licenses: dataset, assets: dataset}
    guidance: Json  # {metadata, profiles, assignments} (the export)

    @classmethod
    def bundled(cls) -> Catalogs:
        return cls(
            baselines=bundled_catalog_json(),
            licensing=bundled_licensing(),
            guidance=empty_guidance(),
        )

    @property
    def assignments(self) -> Json:
        """Text model name -> its guidance assignment."""
        assignments: Json = self.guidance.get("assignments", {})
        return assignments

    def replace(self, **changes: Json) -> Catalogs:
        return evolve(self, **changes)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


#: id(Catalogs) -> (a weak reference to it, its files): catalogs unchanged by an apply are the
#: same object in the next dataset, so a publish encodes them only when they changed
_encoded: dict[int, tuple[weakref.ref[Catalogs], dict[str, bytes]]] = {}


def catalog_files(catalogs: Catalogs) -> dict[str, bytes]:
    """The snapshot files of the catalogs."""
    cached = _encoded.get(id(catalogs))
    if cached is not None and cached[0]() is catalogs:
        return cached[1]
    files = {
        BASELINES_FILE: _dumps(catalogs.baselines),
        LICENSING_FILE: _dumps(catalogs.licensing),
        GUIDANCE_FILE: _dumps(catalogs.guidance),
    }
    key = id(catalogs)
    _encoded[key] = (weakref.ref(catalogs, lambda _ref: _encoded.pop(key, None)), files)
    return files


def catalogs_from_snapshot(snapshot: Snapshot) -> Catalogs:
    """The catalogs a snapshot carries; the bundled ones for a snapshot older than catalogs."""
    bundled = Catalogs.bundled()

    def load(path: str, default: Json) -> Json:
        data = snapshot.files.get(path)
        return default if data is None else dict(json.loads(data))

    return Catalogs(
        baselines=load(BASELINES_FILE, bundled.baselines),
        licensing=load(LICENSING_FILE, bundled.licensing),
        guidance=load(GUIDANCE_FILE, bundled.guidance),
    )
