"""Upstream's own library (horde-model-reference 8.6.2, Python 3.12) in REPLICA mode against us.

Run with upstream's interpreter, not ours: `<upstream venv>/bin/python
tests/upstream_replica_check.py http://127.0.0.1:19800/api`. The library is pointed at the given
PRIMARY with no other source (GitHub fallback off, an empty cache home), loads every category, then
touches the licensing, text guidance and image baseline stores (each fetches its export once).
Prints one JSON object: per-category record counts, the catalogs it ended up with, and every
warning or error the library logged; exits 1 unless that list is empty and no record was dropped.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def main(primary: str) -> int:
    cache_home = tempfile.mkdtemp(prefix="upstream-replica-")
    os.environ.update(
        {
            "AIWORKER_CACHE_HOME": cache_home,
            "HORDE_MODEL_REFERENCE_REPLICATE_MODE": "REPLICA",
            "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": primary,
            "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
            "HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS": "600",
        }
    )
    from loguru import logger

    logged: list[str] = []
    logger.remove()
    logger.add(lambda message: logged.append(str(message).strip()), level="WARNING")

    from horde_model_reference import ModelReferenceManager
    from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY

    manager = ModelReferenceManager()
    counts: dict[str, int | None] = {}
    raw_counts: dict[str, int | None] = {}
    for category in MODEL_REFERENCE_CATEGORY:
        raw = manager.get_raw_model_reference_json(category)
        raw_counts[category.value] = None if raw is None else len(raw)
        records = manager.get_model_reference_or_none(category)
        counts[category.value] = None if records is None else len(records)
    licensing = manager.licensing_store
    guidance = manager.text_guidance_store
    baselines = manager.image_baseline_store
    invalid = sum((raw_counts[c] or 0) - (counts[c] or 0) for c in counts if counts[c] is not None)
    result = {
        "categories": counts,
        "invalid_records": invalid,
        "licenses": len(licensing.list_definitions(include_deprecated=True)),
        "assets": len(licensing.list_assets()),
        "licensing_revision": licensing.metadata().revision,
        "baselines": sorted(baselines.export().baselines),
        "baselines_revision": baselines.metadata().revision,
        "guidance_revision": guidance.metadata().revision,
        "warnings": logged,
    }
    print(json.dumps(result, indent=1))
    return 0 if not logged and invalid == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
