"""The first snapshot of a legacy directory (`hmr seed`), on both cores of a small machine.

A seed is Python work: importing each category, then encoding its files. At 100x the real data
that is 14 s of one core, while the other waits. The categories are independent, so a forked
copy of this process imports and encodes every image category while this one imports the text
models; then another copy encodes the text v1 file (the largest: 117 MB at 100x) while this one
encodes the text v2 file. A fork copies nothing until written, and the copies hand back only
bytes. The files are the ones `publish_dataset` writes for the same dataset (a test checks it).
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from attrs import evolve, frozen

from horde_model_records import ALL_CATEGORIES, Category, Problem
from horde_model_records.convert import text_v1_view
from horde_model_records.serde import get_converter

from .catalogs import Catalogs, catalog_files
from .dataset import CategoryData, category_block, fresh_category_files, import_category

T = TypeVar("T")
Json = dict[str, Any]

_TEXT = Category.text_generation
_OTHERS = [c for c in ALL_CATEGORIES if c is not _TEXT]


@frozen
class Seed:
    """Every file of the first snapshot, their digests, the manifest's category blocks, the
    number of records per category and the import problems, in category order."""

    files: dict[str, bytes]
    hashes: dict[str, str]
    extra: Json
    counts: dict[Category, int]
    problems: list[Problem]


@frozen
class _Encoded:
    files: dict[str, bytes]
    hashes: dict[str, str]
    block: Json
    count: int
    problems: list[Problem]


def seed_files(root: Path, now: int | None = None) -> Seed:
    """Import a legacy directory and encode every file of its first snapshot."""
    if not root.is_dir():
        raise FileNotFoundError(f"legacy directory not found: {root}")
    now = int(time.time()) if now is None else now
    catalogs = Catalogs.bundled()
    get_converter()  # built once here, so each forked copy inherits it rather than builds it
    others = forked(
        lambda: [_import_and_encode(root, c, now, catalogs.assignments) for c in _OTHERS]
    )
    problems: list[Problem] = []
    text = import_category(root, _TEXT, now, problems, text_view=False)
    # the view's entries are built in the copy that encodes them, where they are cheapest made
    # all at once (text_v1_view); here only its keys are counted (TextView)
    v1 = forked(lambda: _text_v1(text))
    files, hashes = fresh_category_files(_TEXT, text, catalogs.assignments, versions="v2")
    v1_files, v1_hashes = v1()
    encoded = dict(zip(_OTHERS, others(), strict=True))
    encoded[_TEXT] = _Encoded(
        {**files, **v1_files},
        {**hashes, **v1_hashes},
        category_block(_TEXT, text),
        len(text.records),
        problems,
    )
    seed = Seed({}, {}, {"categories": {}}, {}, [])
    for category in ALL_CATEGORIES:
        part = encoded[category]
        seed.files.update(part.files)
        seed.hashes.update(part.hashes)
        seed.extra["categories"][category.value] = part.block
        seed.counts[category] = part.count
        seed.problems.extend(part.problems)
    seed.files.update(catalog_files(catalogs))  # a new dataset has no text toolkit files
    return seed


def _import_and_encode(root: Path, category: Category, now: int, assignments: Json) -> _Encoded:
    problems: list[Problem] = []
    data = import_category(root, category, now, problems)
    files, hashes = fresh_category_files(category, data, assignments)
    return _Encoded(files, hashes, category_block(category, data), len(data.records), problems)


def _text_v1(text: CategoryData) -> tuple[dict[str, bytes], dict[str, str]]:
    view: Mapping[str, Json] = text_v1_view(text.records.values())
    return fresh_category_files(_TEXT, evolve(text, legacy=view), {}, versions="v1")


def forked(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a forked copy of this process (it sees everything built so far); the
    returned callable waits for its result. Where fork is missing, `work` runs here and now."""
    if not hasattr(os, "fork"):
        value = work()
        return lambda: value
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the copy: compute, hand the result back, end without running any cleanup
        os.close(read_end)
        status = 0
        try:
            payload = pickle.dumps((True, work()), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 -- reported by the waiting parent
            payload, status = pickle.dumps((False, f"{exc.__class__.__name__}: {exc}")), 1
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(status)
    os.close(write_end)

    def result() -> T:
        with os.fdopen(read_end, "rb") as received:
            payload = received.read()  # the copy blocks on a full pipe until this reads
        os.waitpid(pid, 0)
        if not payload:
            raise RuntimeError("a seed worker process died before it answered")
        done, value = pickle.loads(payload)
        if not done:
            raise RuntimeError(f"a seed worker process failed: {value}")
        return value  # type: ignore[no-any-return]

    return result
