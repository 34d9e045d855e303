"""What the replica raises: to callers (no data, no model) and between its own layers (sources)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


class NoDataError(RuntimeError):
    """No source, memory or disk copy has data for this category."""


class ModelNotFoundError(RuntimeError):
    """The category is available but has no model of that name."""


class SourceError(Exception):
    """One source (PRIMARY v2, PRIMARY v1, GitHub) could not deliver; the chain moves on."""


class UnreachableError(SourceError):
    """The source's host could not be reached (connection refused, reset, timed out)."""


class StatusError(SourceError):
    """The source answered with a status other than 200/304."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url} answered HTTP {status}")
        self.status = status


class RetryableStatus(StatusError):
    """5xx or 429: the source may answer next time (after `retry_after` seconds, if it said)."""

    def __init__(self, url: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(url, status)
        self.retry_after = retry_after


class InvalidBody(SourceError):
    """A 200 whose body is not a valid category document (error page, truncated, wrong shape)."""
