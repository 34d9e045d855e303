"""The image baseline catalog: each image architecture family, what exists for it, how AI-Horde
prices and schedules it.

The catalog replaces a fixed baseline enum: the 13 families this package ships (data/
image_baselines.json) are the vocabulary until a catalog is read from the service, and catalog
entries are merged into it (merge only: a family stays known for the life of the process). A
record naming a baseline outside the vocabulary is kept with a warning, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from typing import Any

from attrs import Factory, field, frozen

from .licensing import LicensingRecordMetadata as CatalogRecordMetadata

CATALOG_SCHEMA_VERSION = 1

#: names a baseline may not take: they are routes beside /baselines/{name}
RESERVED_NAMES = frozenset({"export", "change-sets"})


@frozen(kw_only=True)
class BaselineCapabilities:
    """What exists for the family (weights, mechanisms), not what a given worker can run."""

    controlnet: bool = False
    controlnet_types_unavailable: list[str] = Factory(list)
    transparent: bool = False
    qr_code: bool = False
    remix: bool = False
    flow_matching: bool = False


@frozen(kw_only=True)
class HordeBaselinePolicy:
    """AI-Horde pricing and scheduling; the defaults are par (an uncatalogued family gets them)."""

    kudos: float = 1.0
    kudos_qr_code: float | None = None
    kudos_hires: float | None = None  # None: as `kudos`
    batching: int = field(default=1, metadata={"openapi": {"minimum": 1}})
    ttl: int = field(default=1, metadata={"openapi": {"minimum": 1}})
    resolution_floor: int = field(default=0, metadata={"openapi": {"minimum": 0}})


@frozen(kw_only=True)
class ImageBaseline:
    """One baseline family of the catalog."""

    name: str = field(metadata={"openapi": {"minLength": 1}})
    display_name: str | None = None
    native_resolution: int | None = field(default=None, metadata={"openapi": {"minimum": 1}})
    alternative_names: list[str] = Factory(list)
    capabilities: BaselineCapabilities = Factory(BaselineCapabilities)
    horde_policy: HordeBaselinePolicy = Factory(HordeBaselinePolicy)
    metadata: CatalogRecordMetadata = Factory(CatalogRecordMetadata)


@frozen(kw_only=True)
class CatalogMetadata:
    """A whole catalog's version: the schema, a revision bumped by every apply, when."""

    schema_version: int = CATALOG_SCHEMA_VERSION
    revision: int = 1
    updated_at: int | None = None


@frozen(kw_only=True)
class ImageBaselineCatalog:
    metadata: CatalogMetadata = Factory(CatalogMetadata)
    baselines: dict[str, ImageBaseline] = Factory(dict)


def catalog_problems(baselines: Iterable[ImageBaseline], keys: Iterable[str]) -> list[str]:
    """What breaks the catalog's invariants: a key that is not its record's name, an alternative
    name that is another key or is shared by two baselines (repeating its own name is fine)."""
    records = list(baselines)
    names = set(keys)
    problems = [
        f"Baseline key '{key}' does not match its record name '{rec.name}'."
        for key, rec in zip(keys, records, strict=False)
        if key != rec.name
    ]
    owner: dict[str, str] = {}
    for rec in records:
        for alt in dict.fromkeys(rec.alternative_names):
            if alt != rec.name and alt in names:
                problems.append(f"Baseline alternative name '{alt}' names another baseline.")
            elif alt in owner and owner[alt] != rec.name:
                problems.append(f"Baseline alternative name '{alt}' is shared by two baselines.")
            owner.setdefault(alt, rec.name)
    return problems


# --- the bundled catalog and the in-process vocabulary --------------------------------------------


def bundled_catalog_json() -> dict[str, Any]:
    """The catalog this package ships, in the export's JSON shape (13 families, revision 1)."""
    raw = json.loads(
        resources.files(__package__).joinpath("data/image_baselines.json").read_text("utf-8")
    )
    baselines: dict[str, Any] = {}
    for entry in raw["baselines"]:
        baselines[entry["name"]] = {
            "name": entry["name"],
            "display_name": entry.get("display_name"),
            "native_resolution": entry.get("native_resolution"),
            "alternative_names": entry.get("alternative_names", []),
            "capabilities": {
                "controlnet": "controlnet" in entry.get("capabilities", []),
                "controlnet_types_unavailable": entry.get("controlnet_types_unavailable", []),
                **{
                    cap: cap in entry.get("capabilities", [])
                    for cap in ("transparent", "qr_code", "remix", "flow_matching")
                },
            },
            "horde_policy": {
                "kudos": float(entry.get("kudos", 1.0)),
                "kudos_qr_code": entry.get("kudos_qr_code"),
                "kudos_hires": entry.get("kudos_hires"),
                "batching": entry.get("batching", 1),
                "ttl": entry.get("ttl", 1),
                "resolution_floor": entry.get("resolution_floor", 0),
            },
            "metadata": {
                "revision": 1,
                "created_at": None,
                "created_by": None,
                "updated_at": None,
                "updated_by": None,
            },
        }
    return {
        "metadata": {"schema_version": CATALOG_SCHEMA_VERSION, "revision": 1, "updated_at": None},
        "baselines": baselines,
    }


def vocabulary_of(catalog_json: dict[str, Any]) -> dict[str, str]:
    """Every spelling a catalog knows (keys and alternative names) -> its key."""
    out: dict[str, str] = {}
    for name, rec in catalog_json.get("baselines", {}).items():
        for alt in rec.get("alternative_names", []):
            out.setdefault(alt, name)
        out[name] = name
    return out
