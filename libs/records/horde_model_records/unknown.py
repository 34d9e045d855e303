"""Values and fields this version does not know: kept as they are, each reported once.

New baselines, styles and fields appear upstream every few months; a worker that dropped such a
record would lose a model it could serve. So an unknown value is accepted and round-trips, and a
warning names it the first time it is seen in this process.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("horde_model_records")

_seen: set[tuple[str, str]] = set()
_lock = threading.Lock()


def report_unknown(kind: str, value: str) -> None:
    """Warn once per process about an unknown value (`kind` says what it is: a baseline, a field
    of ImageGenerationRecord, ...); it is kept, not dropped."""
    with _lock:
        if (kind, value) in _seen:
            return
        _seen.add((kind, value))
    logger.warning(
        "unknown %s %r: kept as it is (a newer reference than this library)", kind, value
    )
