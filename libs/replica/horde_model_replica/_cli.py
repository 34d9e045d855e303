"""`python -m horde_model_replica fetch|show|diff`: the operator's view of a replica.

    fetch --out DIR              fetch every category into DIR (conditional: unchanged = 304)
    show CATEGORY NAME [--dir D] print one model (from the sources, or offline from a fetched D)
    diff OLD_DIR NEW_DIR CAT     models added (+), removed (-) and changed (~) between two fetches

Configuration comes from the HORDE_MODEL_REFERENCE_* variables (see the README); `--primary-url`
overrides the PRIMARY. Exit status: 0 ok; 1 a category without data (fetch), a missing model
(show) or differences (diff, like diff(1)); 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from horde_model_records import Category, unstructure_record

from ._config import ReplicaConfig
from ._decode import decode_v2
from ._errors import ConfigError, InvalidBody
from ._manager import ReplicaManager
from ._replica import Outcome, as_category
from ._store import DiskStore


def _parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").split("\n\n")
    p = argparse.ArgumentParser(
        prog="python -m horde_model_replica",
        description=doc[0],
        epilog=doc[1] if len(doc) > 1 else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log each request and retry")
    sub = p.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="fetch every category into a directory")
    fetch.add_argument("--out", type=Path, required=True, help="directory to write the files to")
    fetch.add_argument("--primary-url", help="PRIMARY API base URL (ends with /api); '' = none")

    show = sub.add_parser("show", help="print one model as v2 JSON")
    show.add_argument("category")
    show.add_argument("name")
    show.add_argument("--dir", type=Path, help="read offline from a directory written by fetch")
    show.add_argument("--primary-url", help="PRIMARY API base URL (ends with /api); '' = none")

    diff = sub.add_parser("diff", help="compare one category between two fetched directories")
    diff.add_argument("old", type=Path)
    diff.add_argument("new", type=Path)
    diff.add_argument("category")
    return p


def _config(env: Mapping[str, str], args: argparse.Namespace, **changes: Any) -> ReplicaConfig:
    config = ReplicaConfig.from_environ(env)
    if getattr(args, "primary_url", None) is not None:
        changes["primary_api_url"] = args.primary_url
    return attrs.evolve(config, **changes)


def _fetch(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    config = _config(env, args, cache_dir=args.out, offline=False)
    with ReplicaManager(config) as mgr:
        reports = mgr.refresh()
    missing = []
    total = 0
    for category, report in reports.items():
        total += report.wire_bytes
        if report.outcome is Outcome.no_data:
            missing.append(category.value)
        source = report.source.value if report.source else "-"
        print(
            f"{category.value:22} {report.outcome.value:13} {source:11} "
            f"{report.models:5} models {report.wire_bytes:>10,} bytes",
            file=out,
        )
    print(f"{len(reports)} categories in {args.out}, {total:,} body bytes received", file=out)
    if missing:
        print(f"no data for: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _show(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    category = as_category(args.category)
    changes: dict[str, Any] = {}
    if args.dir is not None:
        changes = {"cache_dir": args.dir, "offline": True}
    with ReplicaManager(_config(env, args, **changes)) as mgr:
        if mgr.get_model_reference_or_none(category) is None:
            print(f"no data for {category.value}", file=sys.stderr)
            return 1
        record = mgr.get_model_or_none(category, args.name)
    if record is None:
        print(f"model {args.name!r} not found in {category.value}", file=sys.stderr)
        return 1
    print(json.dumps(unstructure_record(record), indent=2, ensure_ascii=False), file=out)
    return 0


def _load(directory: Path, category: Category) -> dict[str, dict[str, Any]]:
    stored = DiskStore(directory).read(category)
    if stored is None:
        raise FileNotFoundError(f"{DiskStore(directory).v2_path(category)} does not exist")
    payload = decode_v2(category, stored.document, str(DiskStore(directory).v2_path(category)))
    return {name: unstructure_record(record) for name, record in payload.records.items()}


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    category = as_category(args.category)
    old, new = _load(args.old, category), _load(args.new, category)
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    changed = [n for n in new if n in old and new[n] != old[n]]
    for name in added:
        print(f"+ {name}", file=out)
    for name in removed:
        print(f"- {name}", file=out)
    for name in changed:
        keys = sorted(
            k for k in old[name].keys() | new[name].keys() if old[name].get(k) != new[name].get(k)
        )
        print(f"~ {name} ({', '.join(keys)})", file=out)
    print(
        f"{category.value}: {len(added)} added, {len(removed)} removed, {len(changed)} changed",
        file=out,
    )
    return 1 if added or removed or changed else 0


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "fetch":
            return _fetch(args, env, out)
        if args.command == "show":
            return _show(args, env, out)
        return _diff(args, out)
    except (ConfigError, ValueError, OSError, InvalidBody) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
