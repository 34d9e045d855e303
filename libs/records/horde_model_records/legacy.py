"""Legacy (v1, GitHub) records, fields in the order the legacy files use."""

from __future__ import annotations

from typing import Any

from attrs import Factory, frozen


@frozen(kw_only=True)
class LegacyFile:
    path: str
    md5sum: str | None = None
    sha256sum: str | None = None
    file_type: str | None = None
    content_hash: str | None = None


@frozen(kw_only=True)
class LegacyDownload:
    file_name: str
    file_path: str = ""
    file_url: str | None = None  # clip records may lack it


@frozen(kw_only=True)
class LegacyConfig:
    files: list[LegacyFile] = Factory(list)
    download: list[LegacyDownload] = Factory(list)
    embedded_component_hashes: dict[str, str] | None = None


@frozen(kw_only=True)
class LegacyRecord:
    """A record of any legacy JSON category except stable_diffusion.json."""

    name: str
    type: str | None = None
    description: str | None = None
    version: str | None = None
    style: str | None = None
    nsfw: bool | None = None
    download_all: bool | None = None
    config: LegacyConfig = Factory(LegacyConfig)
    available: bool | None = None
    features_not_supported: list[str] | None = None
    pretrained_name: str | None = None  # clip only
    baseline: str | None = None  # miscellaneous only; dropped by conversion


@frozen(kw_only=True)
class LegacyImageRecord:
    """A stable_diffusion.json record, fields in the canonical serialisation order."""

    name: str
    baseline: str
    optimization: str | None = None
    type: str | None = None
    inpainting: bool | None = None
    description: str | None = None
    tags: list[str] | None = None
    showcases: list[str] | None = None
    version: str | None = None
    style: str | None = None
    trigger: list[str] | None = None
    homepage: str | None = None
    nsfw: bool | None = None
    download_all: bool | None = None
    requirements: dict[str, Any] | None = None
    config: LegacyConfig = Factory(LegacyConfig)
    available: bool | None = None
    features_not_supported: list[str] | None = None
    min_bridge_version: int | None = None
    size_on_disk_bytes: int | None = None


@frozen(kw_only=True)
class LegacyTextRecord:
    """One db.json entry (a base model or one of its backend variants), in db.json key order."""

    name: str
    model_name: str
    baseline: str = ""
    parameters: int | None = None
    description: str = ""
    version: str = "1"
    style: str = "generalist"
    nsfw: bool = False
    display_name: str | None = None
    url: str | None = None
    tags: list[str] = Factory(list)
    instruct_format: str | None = None
    settings: dict[str, Any] | None = None


@frozen(kw_only=True)
class TextCsvRow:
    """One models.csv row, parsed: the text reference's source, from which db.json is generated."""

    name: str
    parameters_bn: float
    display_name: str = ""
    url: str = ""
    baseline: str = ""
    description: str = ""
    style: str = ""
    tags: list[str] = Factory(list)
    instruct_format: str = ""
    settings: dict[str, Any] | None = None
    version: str = ""
    nsfw: bool = False
