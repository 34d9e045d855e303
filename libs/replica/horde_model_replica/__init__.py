"""Read the AI-Horde model reference: PRIMARY API, then GitHub, then the last good copy on disk.

from horde_model_replica import ModelReferenceManager
mgr = ModelReferenceManager()            # configured from HORDE_MODEL_REFERENCE_* variables
model = mgr.get_model("image_generation", "Example Photoreal")
"""

import enum

from horde_model_records import (
    RECORD_TYPES,
    Category,
    ModelRecord,
    NameFormat,
    ParsedName,
    group_key,
    has_backend_prefix,
    infer_name_format,
    parse_name,
    size_key,
    text_model_group,
    variant_names,
)
from horde_model_records.categories import BASELINE_ALIASES
from horde_model_records.names import strip_backend_prefix

from ._config import GitHubRepo, ReplicaConfig
from ._errors import (
    ConfigError,
    InvalidBody,
    ModelNotFoundError,
    NoDataError,
    RetryableStatus,
    SourceError,
    StatusError,
    UnreachableError,
)
from ._http import GitHubRawClient, ReplicaClient
from ._manager import DeferredPrefetchHandle, PrefetchStrategy, ReplicaManager
from ._model_query import ControlNetQuery, ImageGenerationQuery, ModelQuery, TextModelQuery
from ._pending import PendingModelProvider
from ._popular import ModelStats, PopularModelResult, UsageStats, WorkerSummary
from ._proxy import ProxySettings
from ._query import (
    declared_size_bytes,
    download_count,
    download_urls,
    primary_download_url,
    select_models,
)
from ._replica import REPLICATED_CATEGORIES, CategoryData, FetchReport, Outcome, Replica
from ._singleton import ModelReferenceManager, get_manager, reset_manager
from ._sources import (
    ANY_SOURCE,
    HORDE_SOURCE_ID,
    PENDING_SOURCE_ID,
    RESERVED_SOURCE_IDS,
    ModelProvider,
    ModelProviderRegistry,
    SourceOutcome,
    SourceSelector,
    normalize_source_selector,
)
from ._store import Source

#: upstream's name for the category enum
MODEL_REFERENCE_CATEGORY = Category

#: the canonical image baselines as upstream's enum, built from the one table (BASELINE_ALIASES)
_BASELINES = {name: name for name in BASELINE_ALIASES}
KNOWN_IMAGE_GENERATION_BASELINE = enum.StrEnum("KNOWN_IMAGE_GENERATION_BASELINE", _BASELINES)  # type: ignore[misc]  # -- members come from a table, not literals (mypy needs literals)

#: upstream's helper names, for existing worker code; the implementations are horde_model_records'
get_model_name_variants = variant_names
has_legacy_text_backend_prefix = has_backend_prefix
get_base_model_name = text_model_group
parse_text_model_name = parse_name
parameter_size_sort_key = size_key

__all__ = [
    "ANY_SOURCE",
    "HORDE_SOURCE_ID",
    "KNOWN_IMAGE_GENERATION_BASELINE",
    "MODEL_REFERENCE_CATEGORY",
    "PENDING_SOURCE_ID",
    "RECORD_TYPES",
    "REPLICATED_CATEGORIES",
    "RESERVED_SOURCE_IDS",
    "Category",
    "CategoryData",
    "ConfigError",
    "ControlNetQuery",
    "DeferredPrefetchHandle",
    "FetchReport",
    "GitHubRawClient",
    "GitHubRepo",
    "ImageGenerationQuery",
    "InvalidBody",
    "ModelNotFoundError",
    "ModelProvider",
    "ModelProviderRegistry",
    "ModelQuery",
    "ModelRecord",
    "ModelReferenceManager",
    "ModelStats",
    "NameFormat",
    "NoDataError",
    "Outcome",
    "ParsedName",
    "PendingModelProvider",
    "PopularModelResult",
    "PrefetchStrategy",
    "ProxySettings",
    "Replica",
    "ReplicaClient",
    "ReplicaConfig",
    "ReplicaManager",
    "RetryableStatus",
    "Source",
    "SourceError",
    "SourceOutcome",
    "SourceSelector",
    "StatusError",
    "TextModelQuery",
    "UnreachableError",
    "UsageStats",
    "WorkerSummary",
    "declared_size_bytes",
    "download_count",
    "download_urls",
    "get_base_model_name",
    "get_manager",
    "get_model_name_variants",
    "group_key",
    "has_legacy_text_backend_prefix",
    "infer_name_format",
    "normalize_source_selector",
    "parameter_size_sort_key",
    "parse_name",
    "parse_text_model_name",
    "primary_download_url",
    "reset_manager",
    "select_models",
    "size_key",
    "strip_backend_prefix",
]
