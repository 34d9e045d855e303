"""The 15 model categories, their enumerations and what each one is made of."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from . import baselines as _baselines


class Category(enum.StrEnum):
    """A model category; the declaration order is the canonical enumeration order."""

    blip = "blip"
    clip = "clip"
    codeformer = "codeformer"
    controlnet = "controlnet"
    controlnet_annotator = "controlnet_annotator"
    esrgan = "esrgan"
    gfpgan = "gfpgan"
    safety_checker = "safety_checker"
    image_generation = "image_generation"
    text_generation = "text_generation"
    video_generation = "video_generation"
    audio_generation = "audio_generation"
    miscellaneous = "miscellaneous"
    lora = "lora"
    ti = "ti"


class _Open(enum.StrEnum):
    """An enumeration that keeps values it does not list (as members made on the fly)."""

    @classmethod
    def _missing_(cls, value: object) -> _Open | None:
        if not isinstance(value, str):
            return None
        from .unknown import report_unknown

        report_unknown(cls.__name__, value)
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member


class Domain(_Open):
    image = "image"
    text = "text"
    video = "video"
    audio = "audio"
    rendered_3d = "rendered_3d"


class Purpose(_Open):
    generation = "generation"
    post_processing = "post_processing"
    auxiliary_or_patch = "auxiliary_or_patch"
    feature_extractor = "feature_extractor"
    safety_checker = "safety_checker"
    miscellaneous = "miscellaneous"


@attrs.frozen
class CategoryInfo:
    """Static facts about one category: its classification, its legacy and v2 files."""

    category: Category
    domain: Domain
    purpose: Purpose
    legacy_file: str | None  # file name in the GitHub legacy repo; None = no legacy format
    legacy_repo: str | None  # "image" or "text"
    v2_file: str
    legacy_type: str | None  # the legacy `type` value written for new records

    @property
    def has_legacy(self) -> bool:
        return self.legacy_file is not None

    @property
    def managed_elsewhere(self) -> bool:
        return self.category in (Category.lora, Category.ti)


def _info(
    cat: Category,
    domain: Domain,
    purpose: Purpose,
    legacy_file: str | None,
    legacy_type: str | None = None,
    v2_file: str | None = None,
) -> CategoryInfo:
    repo = None
    if legacy_file is not None:
        repo = "text" if domain is Domain.text else "image"
    return CategoryInfo(
        category=cat,
        domain=domain,
        purpose=purpose,
        legacy_file=legacy_file,
        legacy_repo=repo,
        v2_file=v2_file or f"{cat.value}.json",
        legacy_type=legacy_type,
    )


_I, _T, _V, _A = Domain.image, Domain.text, Domain.video, Domain.audio
_P = Purpose

CATEGORY_INFO: dict[Category, CategoryInfo] = {
    info.category: info
    for info in (
        _info(Category.blip, _I, _P.feature_extractor, "blip.json", "blip"),
        _info(Category.clip, _I, _P.feature_extractor, "clip.json", "clip"),
        _info(Category.codeformer, _I, _P.post_processing, "codeformer.json", "CodeFormers"),
        _info(Category.controlnet, _I, _P.auxiliary_or_patch, "controlnet.json"),
        _info(Category.controlnet_annotator, _I, _P.auxiliary_or_patch, None),
        _info(Category.esrgan, _I, _P.post_processing, "esrgan.json", "realesrgan"),
        _info(Category.gfpgan, _I, _P.post_processing, "gfpgan.json", "gfpgan"),
        _info(
            Category.safety_checker, _I, _P.safety_checker, "safety_checker.json", "safety_checker"
        ),
        _info(
            Category.image_generation,
            _I,
            _P.generation,
            "stable_diffusion.json",
            "ckpt",
            v2_file="stable_diffusion.json",
        ),
        _info(Category.text_generation, _T, _P.generation, "models.csv"),
        _info(Category.video_generation, _V, _P.generation, None),
        _info(Category.audio_generation, _A, _P.generation, None),
        _info(Category.miscellaneous, _I, _P.miscellaneous, "miscellaneous.json", "layer_diffuse"),
        _info(Category.lora, _I, _P.auxiliary_or_patch, None),
        _info(Category.ti, _I, _P.auxiliary_or_patch, None),
    )
}

ALL_CATEGORIES: tuple[Category, ...] = tuple(Category)
V2_LISTED_CATEGORIES: tuple[Category, ...] = tuple(
    c for c in Category if not CATEGORY_INFO[c].managed_elsewhere
)
LEGACY_CATEGORIES: tuple[Category, ...] = tuple(c for c in Category if CATEGORY_INFO[c].has_legacy)


# --- image baselines: the catalog's keys and the spellings accepted for each ---------------------
# (the catalog itself is horde_model_records.baselines; this is the vocabulary records check)

BASELINE_ALIASES: dict[str, tuple[str, ...]] = {
    name: tuple(rec["alternative_names"])
    for name, rec in _baselines.bundled_catalog_json()["baselines"].items()
}

#: every accepted spelling -> its catalog key (case-sensitive, as upstream); starts as the bundled
#: catalog and grows with merge_baseline_vocabulary, never shrinks within a process
KNOWN_BASELINES: dict[str, str] = _baselines.vocabulary_of(_baselines.bundled_catalog_json())


def merge_baseline_vocabulary(catalog_json: dict[str, Any]) -> None:
    """Make a served catalog's keys and alternative names known (existing spellings keep their
    key: merge only, so a family deleted upstream stays known until the process restarts)."""
    for spelling, key in _baselines.vocabulary_of(catalog_json).items():
        KNOWN_BASELINES.setdefault(spelling, key)
        if spelling == key:
            KNOWN_BASELINES[spelling] = key


#: legacy baseline string -> v2 baseline, when a legacy record is converted; anything else
#: passes through
LEGACY_TO_V2_BASELINE: dict[str, str] = {
    "stable diffusion 1": "stable_diffusion_1",
    "stable diffusion 2": "stable_diffusion_2_768",
    "stable diffusion 2 512": "stable_diffusion_2_512",
    "stable_diffusion_xl": "stable_diffusion_xl",
    "stable_cascade": "stable_cascade",
}

#: v2 baseline -> legacy baseline string, in the v1 view generated from v2; anything else verbatim
V2_TO_LEGACY_BASELINE: dict[str, str] = {
    "stable_diffusion_1": "stable diffusion 1",
    "stable_diffusion_2_768": "stable diffusion 2",
    "stable_diffusion_2_512": "stable diffusion 2 512",
}

IMAGE_STYLES: frozenset[str] = frozenset(
    {"generalist", "anime", "furry", "artistic", "other", "realistic"}
)

#: the sigma schedules an image model may require (`requirements.schedulers`); others are kept
#: with a warning (spec 06 §5)
IMAGE_SCHEDULERS: frozenset[str] = frozenset(
    {
        "normal",
        "karras",
        "exponential",
        "sgm_uniform",
        "simple",
        "ddim_uniform",
        "beta",
        "linear_quadratic",
        "kl_optimal",
        "align_your_steps",
        "gits",
    }
)

CONTROLNET_STYLES: frozenset[str] = frozenset(
    {
        "control_seg",
        "control_scribble",
        "control_fakescribbles",
        "control_openpose",
        "control_normal",
        "control_mlsd",
        "control_hough",
        "control_hed",
        "control_canny",
        "control_depth",
        "control_qr",
        "control_qr_xl",
        "control_lineart",
        "control_lineart_anime",
        "control_normal_bae",
        "control_recolor",
        "control_tile",
        "control_shuffle",
        "control_color",
    }
)

TEXT_BACKEND_PREFIXES: tuple[str, ...] = ("aphrodite/", "koboldcpp/")


def has_backend_prefix(name: str) -> bool:
    """True when a text model name carries an `aphrodite/` or `koboldcpp/` prefix."""
    return name.startswith(TEXT_BACKEND_PREFIXES)
