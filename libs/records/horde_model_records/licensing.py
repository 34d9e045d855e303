"""Licensing: a model's reviewed licence conclusion, licence definitions and non-model assets.

Shapes only; the server checks licence expressions and references (`NOASSERTION` rules, known
definitions) before it stores anything. Legacy-converted records carry no conclusion: a v2 read
shows `unknown_model_licensing()` for them instead.
"""

from __future__ import annotations

import enum
from typing import Any

from attrs import Factory, field, frozen

NOASSERTION = "NOASSERTION"

#: the notes of the conclusion a read shows for a record that has none
UNREVIEWED_NOTES = "No reviewed licensing conclusion is currently available."
#: the notes a model create stores when it supplies no conclusion (spec 06 §1.2)
CREATED_WITHOUT_NOTES = "No licensing conclusion was supplied when this model was created."


class PermissionStatus(enum.StrEnum):
    allowed = "allowed"
    allowed_with_conditions = "allowed_with_conditions"
    prohibited = "prohibited"
    unknown = "unknown"


class LicenseObligation(enum.StrEnum):
    attribution = "attribution"
    include_license = "include_license"
    share_alike = "share_alike"
    disclose_source = "disclose_source"
    network_source_disclosure = "network_source_disclosure"
    responsible_use_restrictions = "responsible_use_restrictions"
    other = "other"


class LicensedAssetKind(enum.StrEnum):
    software_component = "software_component"
    custom_node = "custom_node"
    other = "other"


@frozen(kw_only=True)
class LicenseEvidence:
    """Where a conclusion comes from; `checked_at` is a `YYYY-MM-DD` date."""

    source: str
    description: str | None = None
    checked_at: str | None = None


@frozen(kw_only=True)
class LicenseAssignment:
    """A reviewed licence conclusion for one scope (a model, a file, an asset)."""

    license_expression: str
    license_ids: list[str] = Factory(list)
    commercial_use: PermissionStatus
    redistribution: PermissionStatus
    obligations: list[LicenseObligation] = Factory(list)
    attribution: str | None = None
    evidence: list[LicenseEvidence] = Factory(list)
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    notes: str | None = None


@frozen(kw_only=True)
class ModelLicensing(LicenseAssignment):
    """A model's conclusion, with overrides for some of its download files (by file name)."""

    files: dict[str, LicenseAssignment] = Factory(dict)

    @property
    def all_license_ids(self) -> list[str]:
        """The model-level ids, then those only file overrides use, each once."""
        ids = list(self.license_ids)
        for assignment in self.files.values():
            ids += assignment.license_ids
        return list(dict.fromkeys(ids))


def unknown_model_licensing(notes: str = UNREVIEWED_NOTES) -> ModelLicensing:
    """The fail-closed conclusion of a model nobody has reviewed: NOASSERTION, all unknown."""
    return ModelLicensing(
        license_expression=NOASSERTION,
        commercial_use=PermissionStatus.unknown,
        redistribution=PermissionStatus.unknown,
        notes=notes,
    )


#: the JSON a v2 read adds to a record that has no `licensing` (nulls left out, as upstream)
UNKNOWN_LICENSING_JSON: dict[str, Any] = {
    "license_expression": NOASSERTION,
    "license_ids": [],
    "commercial_use": "unknown",
    "redistribution": "unknown",
    "obligations": [],
    "evidence": [],
    "notes": UNREVIEWED_NOTES,
    "files": {},
}


@frozen(kw_only=True)
class LicensingRecordMetadata:
    """Server-owned bookkeeping of a definition or asset (unix seconds, user ids)."""

    revision: int = 1
    created_at: int | None = None
    created_by: str | None = None
    updated_at: int | None = None
    updated_by: str | None = None


@frozen(kw_only=True)
class LicenseDefinition:
    """A reusable licence: what it permits and asks for."""

    license_id: str = field(metadata={"openapi": {"minLength": 1}})
    name: str = field(metadata={"openapi": {"minLength": 1}})
    spdx_identifier: str | None = None
    canonical_url: str = field(metadata={"openapi": {"minLength": 1}})
    commercial_use: PermissionStatus
    redistribution: PermissionStatus
    obligations: list[LicenseObligation] = Factory(list)
    restrictions: list[str] = Factory(list)
    notes: str | None = None
    deprecated: bool = False
    metadata: LicensingRecordMetadata = Factory(LicensingRecordMetadata)


@frozen(kw_only=True)
class LicensedAsset:
    """A licensed thing that is not a model (a ComfyUI node, a software component)."""

    asset_kind: LicensedAssetKind
    asset_identifier: str = field(metadata={"openapi": {"minLength": 1}})
    display_name: str = field(metadata={"openapi": {"minLength": 1}})
    source_url: str | None = None
    version: str | None = None
    locations: list[str] = Factory(list)
    related_assets: list[str] = Factory(list)
    licensing: LicenseAssignment
    notes: str | None = None
    metadata: LicensingRecordMetadata = Factory(LicensingRecordMetadata)

    @property
    def key(self) -> str:
        return f"{self.asset_kind.value}:{self.asset_identifier}"
