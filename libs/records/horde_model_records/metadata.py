"""Per-category change-detection metadata (the /metadata routes); nulls are in its wire shape."""

from __future__ import annotations

from attrs import evolve, frozen

from .categories import Category

METADATA_SCHEMA_VERSION = "1.0.0"


@frozen(kw_only=True)
class CategoryMetadata:
    """Change-detection metadata of one category: when and how it last changed."""

    category: Category
    last_updated: int | None = None
    last_operation_type: str | None = None
    last_operation_model: str | None = None
    total_creates: int = 0
    total_updates: int = 0
    total_deletes: int = 0
    total_models: int = 0
    initialization_time: int | None = None
    last_successful_operation: int | None = None
    error_count: int = 0
    metadata_schema_version: str = METADATA_SCHEMA_VERSION
    backend_type: str = "snapshot"

    @classmethod
    def initial(cls, category: Category, now: int, total_models: int) -> CategoryMetadata:
        """A category seen for the first time: every timestamp is now, counters are 0."""
        return cls(
            category=category,
            last_updated=now,
            initialization_time=now,
            last_successful_operation=now,
            total_models=total_models,
        )

    def after_operation(
        self, operation: str, model: str, now: int, total_models: int
    ) -> CategoryMetadata:
        """The metadata once one create/update/delete of `model` has been applied."""
        counter = f"total_{operation}s"
        return evolve(
            self,
            last_updated=now,
            last_successful_operation=now,
            last_operation_type=operation,
            last_operation_model=model,
            total_models=total_models,
            **{counter: getattr(self, counter) + 1},
        )
