"""The text toolkit's reads, prepared once per snapshot (spec 07 §3, §7.1).

A snapshot's ToolkitSlot builds its TextToolkitView on the first toolkit request, off the event
loop (so loading a snapshot costs nothing more, and replicas nobody asks about text curation
never pay for it). The view encodes the answers that do not depend on the request (groups,
summary, health, baselines, aliases, families) at once; a group's detail and schema, each
family-detection bound, and the 1.7 MB v1 view with groups on first request; all are kept for
the snapshot's life. Answers are encoded with attrs.asdict (no converter to build).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
from attrs import Factory, define

from horde_model_records import Category
from horde_model_records.names import (
    NameFormat,
    ParsedName,
    backend_prefix_of,
    group_key,
    infer_name_format,
    member_parse,
    parse_name,
    size_key,
    strip_backend_prefix,
)
from shared.errors import NotFound
from shared.snapshot import Snapshot, v1_path
from shared.text_toolkit import SNAPSHOT_DIR, ToolkitStores
from shared.toolkit_wire import AliasEntry, FamilyInfo, GroupNameSchemaResponse, StoredNameSchema

from .toolkit_wire import (
    AliasListResponse,
    DetectFamiliesResponse,
    DistinctBaselinesResponse,
    ExtraPartInfo,
    FamilyListResponse,
    GroupHealthIssue,
    GroupHealthResponse,
    GroupListResponse,
    GroupMemberInfo,
    GroupMembersResponse,
    GroupsSummaryResponse,
    GroupSummaryEntry,
    GuidanceSummary,
    NameExceptionInfo,
    NameFormatInfo,
    ParsedNameInfo,
    ParsedNameResponse,
)
from .view import Body

Json = dict[str, Any]
K = TypeVar("K")

COMMON_FIELDS = ("baseline", "description", "url", "nsfw", "tags", "style", "instruct_format")
#: the fields of a record the group list, summary and health read (health_issues: the last three)
_FACTS = ("text_model_group", "baseline", "nsfw", "description")


def encode(value: Any) -> Body:
    """An answer object as compact JSON, with its ETag."""
    return Body.of(
        json.dumps(attrs.asdict(value), ensure_ascii=False, separators=(",", ":")).encode()
    )


def no_group(name: str) -> NotFound:
    return NotFound(f"No models found in group '{name}'")


def extras_of(parsed: ParsedName) -> list[ExtraPartInfo]:
    return [
        ExtraPartInfo(value=e.value, position=e.position, inferred_type=e.inferred_type)  # type: ignore[arg-type]  # -- the parser makes only the two listed types
        for e in parsed.extras
    ]


def parsed_response(name: str, stores: ToolkitStores) -> ParsedNameResponse:
    parsed = parse_name(name)
    return ParsedNameResponse(
        original_name=name,
        base_name=parsed.base_name,
        size=parsed.size,
        variant=parsed.variant,
        quant=parsed.quant,
        version=parsed.version,
        suggested_group=stores.resolve(group_key(name)),
        extras=extras_of(parsed),
    )


def format_info(fmt: NameFormat, *, extra_parts: bool = True) -> NameFormatInfo:
    return NameFormatInfo(
        separator=fmt.separator,
        part_order=list(fmt.part_order),
        author_included=fmt.author_included,
        common_author=fmt.common_author,
        template=fmt.template,
        extra_parts=list(fmt.extra_parts) if extra_parts else [],
    )


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def health_issues(group: str, canonical: Sequence[Json]) -> list[GroupHealthIssue]:
    """The checks of spec 07 §3.5 over a group's canonical members, in order."""
    issues: list[GroupHealthIssue] = []

    def issue(kind: Any, message: str, severity: Any = "warning") -> None:
        issues.append(
            GroupHealthIssue(group_name=group, issue_type=kind, message=message, severity=severity)
        )

    if len(canonical) == 1:
        issue("singleton_group", "Group currently contains one canonical model", "info")
    baselines = {r["baseline"] for r in canonical if _is_text(r.get("baseline"))}
    missing_baseline = sum(1 for r in canonical if not _is_text(r.get("baseline")))
    nsfw = {r["nsfw"] for r in canonical if isinstance(r.get("nsfw"), bool)}
    missing_description = sum(1 for r in canonical if not r.get("description"))
    if len(baselines) > 1:
        issue(
            "inconsistent_baseline",
            f"Members have different baselines: {', '.join(sorted(baselines))}",
        )
    if len(nsfw) > 1:
        issue("inconsistent_nsfw", "Members have different NSFW flags")
    if missing_baseline:
        issue("missing_baseline", f"{missing_baseline} member(s) missing baseline")
    if missing_description:
        issue("missing_description", f"{missing_description} member(s) missing description", "info")
    return issues


def detect_families(
    names: Iterable[str], min_prefix_length: int, min_family_size: int
) -> dict[str, list[str]]:
    """Suggested families: the longest shared `-` prefix claims its groups first (spec 07 §3.9)."""
    by_prefix: dict[str, set[str]] = defaultdict(set)
    for name in names:
        parts = name.split("-")
        for depth in range(len(parts) - 1, 0, -1):
            prefix = "-".join(parts[:depth])
            if len(prefix) >= min_prefix_length:
                by_prefix[prefix].add(name)
    claimed: set[str] = set()
    found: dict[str, list[str]] = {}
    for prefix in sorted(by_prefix, key=len, reverse=True):
        free = sorted(by_prefix[prefix] - claimed)
        if len(free) >= min_family_size:
            found[prefix] = free
            claimed.update(free)
    return dict(sorted(found.items()))


def _sorted_optional(values: Iterable[str | None]) -> list[str | None]:
    return sorted(set(values), key=lambda v: v or "")


def _count(counts: dict[str, int], value: str | None) -> None:
    if value:
        counts[value] = counts.get(value, 0) + 1


def _guidance(record: Json) -> GuidanceSummary:
    shown = record.get("guidance")  # what the v2 read derived from the guidance catalog
    if isinstance(shown, dict) and shown.get("status") in ("published", "legacy_label"):
        return GuidanceSummary(
            status=shown["status"],
            primary_profile_id=shown.get("primary_profile_id"),
            supplemental_profile_ids=list(shown.get("supplemental_profile_ids") or []),
        )
    label = record.get("instruct_format")
    status = "legacy_label" if isinstance(label, str) and label.strip() else "undocumented"
    return GuidanceSummary(status=status)  # type: ignore[arg-type]  # -- one of the two literals


def _raw(record: Json, key: str) -> Any:
    return record.get(key)


@define
class TextToolkitView:
    """The toolkit answers of one snapshot: encoded bodies and per-group caches."""

    stores: ToolkitStores
    records: Mapping[str, Json]  # v2 text records, dataset order
    members: Mapping[str, list[str]]  # stored group -> member names, dataset order
    v1_bytes: bytes | None  # the v1 text view, parsed only for `include_group`
    groups_body: Body
    baselines_body: Body
    summary_body: Body
    health_body: Body
    aliases_body: Body
    families_body: Body
    candidates: tuple[str, ...]  # resolve(base(name)) of every record, distinct, sorted
    _details: dict[str, Body]
    _schemas: dict[str, Body]
    _detected: dict[tuple[int, int], Body]
    _v1_grouped: Body | None = None
    _lock: threading.Lock = Factory(threading.Lock)

    @classmethod
    def build(
        cls, records: Mapping[str, Json], v1_bytes: bytes | None, stores: ToolkitStores
    ) -> TextToolkitView:
        """The toolkit over the v2 text `records` (dataset order), the v1 text view's bytes and
        the side stores."""
        # each record is parsed once, for the few fields the whole-toolkit answers read (a
        # parse is most of the build: 72k text records at 100x the data take seconds)
        facts = {name: {k: r.get(k) for k in _FACTS} for name, r in records.items()}
        members: dict[str, list[str]] = {}
        for name, fact in facts.items():
            group = fact["text_model_group"]
            if isinstance(group, str) and group:
                members.setdefault(group, []).append(name)
        baselines = sorted(
            {
                f["baseline"].strip()
                for f in facts.values()
                if isinstance(f["baseline"], str) and f["baseline"].strip()
            }
        )
        aliases = AliasListResponse(
            entries=[
                AliasEntry(canonical=c, aliases=list(stores.aliases[c]))
                for c in sorted(stores.aliases)
            ]
        )
        families = FamilyListResponse(
            families=[
                FamilyInfo(family_name=f, members=list(stores.families[f]))
                for f in sorted(stores.families)
            ]
        )
        candidates = tuple(sorted({stores.resolve(group_key(n)) for n in records}))
        view = cls(
            stores=stores,
            records=records,
            members=members,
            v1_bytes=v1_bytes,
            groups_body=encode(GroupListResponse(groups=sorted(members))),
            baselines_body=encode(DistinctBaselinesResponse(baselines=baselines)),
            summary_body=Body.of(b""),
            health_body=Body.of(b""),
            aliases_body=encode(aliases),
            families_body=encode(families),
            candidates=candidates,
            details={},
            schemas={},
            detected={},
        )
        view.summary_body, view.health_body = view._summary_and_health(facts)
        return view

    # --- whole-toolkit answers -----------------------------------------------------------------

    def _canonical(self, group: str) -> list[str]:
        return [n for n in self.members.get(group, ()) if backend_prefix_of(n) is None]

    def _summary_and_health(self, facts: Mapping[str, Json]) -> tuple[Body, Body]:
        stores = self.stores
        entries: list[GroupSummaryEntry] = []
        issues: list[GroupHealthIssue] = []
        with_families = with_aliases = with_issues = total = 0
        for group in sorted(self.members):
            names = self.members[group]
            canonical = self._canonical(group)
            total += len(names)
            family = stores.family_of(group)
            with_families += family is not None
            resolved = stores.resolve(group)
            own_aliases = [] if resolved != group else list(stores.aliases.get(group, ()))
            with_aliases += resolved != group or bool(own_aliases)
            sizes = {parse_name(strip_backend_prefix(n)).size for n in canonical}
            found = health_issues(group, [facts[n] for n in canonical])
            with_issues += bool(found)
            issues += found
            entries.append(
                GroupSummaryEntry(
                    group_name=group,
                    canonical_count=len(canonical),
                    backend_duplicate_count=len(names) - len(canonical),
                    has_custom_schema=stores.schema_for(group) is not None,
                    family_name=family,
                    alias_canonical=None if resolved == group else resolved,
                    aliases=own_aliases,
                    available_sizes=sorted((s for s in sizes if s), key=size_key),
                    health_issues=found,
                )
            )
        counts: dict[str, int] = {}
        for found_issue in issues:
            counts[found_issue.issue_type] = counts.get(found_issue.issue_type, 0) + 1
        summary = GroupsSummaryResponse(
            groups=entries,
            total_groups=len(entries),
            total_models=total,
            groups_with_families=with_families,
            groups_with_aliases=with_aliases,
            groups_with_issues=with_issues,
        )
        health = GroupHealthResponse(
            issues=issues,
            total_groups_checked=len(entries),
            groups_with_issues=with_issues,
            issue_counts_by_type=counts,
        )
        return encode(summary), encode(health)

    # --- per-group answers (cached for the snapshot) ------------------------------------------

    def _cached(self, cache: dict[K, Body], key: K, make: Callable[[], Body]) -> Body:
        found = cache.get(key)
        if found is None:
            found = cache.setdefault(key, make())
        return found

    def group_detail(self, group: str) -> Body:
        """`GET /group?name=`; NotFound for a group without members."""
        if group not in self.members:
            raise no_group(group)
        return self._cached(self._details, group, lambda: encode(self._detail(group)))

    def _detail(self, group: str) -> GroupMembersResponse:
        members: list[GroupMemberInfo] = []
        canonical: list[tuple[str, ParsedName]] = []
        for name in self.members[group]:
            record = self.records[name]
            prefix = backend_prefix_of(name)
            parsed = member_parse(name)
            members.append(
                GroupMemberInfo(
                    name=name,
                    parsed=ParsedNameInfo(
                        base_name=parsed.base_name,
                        size=parsed.size,
                        variant=parsed.variant,
                        quant=parsed.quant,
                        version=parsed.version,
                        extras=extras_of(parsed),
                    ),
                    parameters=_raw(record, "parameters"),
                    baseline=_raw(record, "baseline"),
                    nsfw=_raw(record, "nsfw"),
                    description=_raw(record, "description"),
                    url=_raw(record, "url"),
                    style=_raw(record, "style"),
                    tags=_raw(record, "tags"),
                    display_name=_raw(record, "display_name"),
                    instruct_format=_raw(record, "instruct_format"),
                    is_backend_duplicate=prefix is not None,
                    backend_prefix=prefix,
                    guidance=None if prefix is not None else _guidance(record),
                )
            )
            if prefix is None:
                canonical.append((name, parsed))
        canonical_records = [self.records[n] for n, _ in canonical]
        common: dict[str, Any] = {}
        for key in COMMON_FIELDS:
            values = [r.get(key) for r in canonical_records]
            if values and values[0] is not None and all(v == values[0] for v in values):
                common[key] = values[0]
        size_usage: dict[str, int] = {}
        variant_usage: dict[str, int] = {}
        quant_usage: dict[str, int] = {}
        for _, parsed in canonical:
            _count(size_usage, parsed.size)
            _count(variant_usage, parsed.variant)
            _count(quant_usage, parsed.quant)
        stored = self.stores.schema_for(group)
        if stored is not None:
            schema = StoredNameSchema.of(stored)
            name_format = NameFormatInfo(
                separator=schema.separator,
                part_order=schema.part_order,
                author_included=schema.author_included,
                common_author=schema.common_author,
                template=schema.template or "",
                extra_parts=schema.extra_parts,
            )
        else:
            name_format = format_info(infer_name_format([n for n, _ in canonical]))
        family = self.stores.family_of(group)
        coverage = {"published": 0, "legacy_label": 0, "undocumented": 0}
        for member in members:
            if member.guidance is not None:
                coverage[member.guidance.status] += 1
        return GroupMembersResponse(
            group_name=group,
            members=members,
            common_fields=common,
            available_sizes=sorted({p.size for _, p in canonical if p.size}, key=size_key),
            available_variants=_sorted_optional(p.variant for _, p in canonical),
            available_quants=_sorted_optional(p.quant for _, p in canonical),
            available_versions=_sorted_optional(p.version for _, p in canonical),
            size_usage=size_usage,
            variant_usage=variant_usage,
            quant_usage=quant_usage,
            name_format=name_format,
            canonical_count=len(canonical),
            backend_duplicate_count=len(members) - len(canonical),
            name_schema_is_custom=stored is not None,
            exception_members=[
                NameExceptionInfo(name=n, reason=r["name_schema_exception"])
                for n, r in zip((n for n, _ in canonical), canonical_records, strict=True)
                if r.get("name_schema_exception")
            ],
            related_family=None
            if family is None
            else FamilyInfo(family_name=family, members=list(self.stores.families[family])),
            guidance_coverage=coverage,
        )

    def group_schema(self, group: str) -> Body:
        """`GET /group/name_schema?name=`: stored, else inferred; NotFound without either."""
        stored = self.stores.schema_for(group)
        if stored is None and group not in self.members:
            raise no_group(group)

        def make() -> Body:
            if stored is not None:
                return encode(
                    GroupNameSchemaResponse(
                        group_name=group, name_schema=StoredNameSchema.of(stored), is_custom=True
                    )
                )
            fmt = infer_name_format(self._canonical(group))
            schema = StoredNameSchema(
                separator=fmt.separator,
                part_order=list(fmt.part_order),
                author_included=fmt.author_included,
                common_author=fmt.common_author,
                template=fmt.template,
                extra_parts=[],
            )
            return encode(
                GroupNameSchemaResponse(group_name=group, name_schema=schema, is_custom=False)
            )

        return self._cached(self._schemas, group, make)

    def detected(self, min_prefix_length: int, min_family_size: int) -> Body:
        """`GET /families/detect` for one pair of bounds."""

        def make() -> Body:
            found = detect_families(self.candidates, min_prefix_length, min_family_size)
            grouped = sum(len(m) for m in found.values())
            return encode(
                DetectFamiliesResponse(
                    suggestions=[FamilyInfo(family_name=f, members=m) for f, m in found.items()],
                    total_groups_analyzed=len(self.candidates),
                    groups_in_families=grouped,
                    standalone_groups=len(self.candidates) - grouped,
                )
            )

        return self._cached(self._detected, (min_prefix_length, min_family_size), make)

    def alias_entry(self, canonical: str) -> Body:
        aliases = self.stores.aliases.get(canonical)
        if aliases is None:
            raise NotFound(f"No alias entry for canonical group '{canonical}'")
        return encode(AliasEntry(canonical=canonical, aliases=list(aliases)))

    def family(self, name: str) -> Body:
        members = self.stores.families.get(name)
        if members is None:
            raise NotFound(f"Family '{name}' not found")
        return encode(FamilyInfo(family_name=name, members=list(members)))

    # --- the v1 view with groups (spec 07 §7.1) ------------------------------------------------

    def v1_grouped(self) -> Body:
        """The v1 text view with every entry's group and group summary, and its gzip; built on
        first use (1.7 MB) and kept for the snapshot."""
        if self._v1_grouped is None:
            with self._lock:
                if self._v1_grouped is None:
                    view = json.loads(self.v1_bytes or b"{}")
                    data = json.dumps(
                        v1_with_groups(view), ensure_ascii=False, separators=(",", ":")
                    ).encode()
                    self._v1_grouped = Body.of(data, gzip.compress(data, compresslevel=6, mtime=0))
        return self._v1_grouped


def v1_with_groups(view: Mapping[str, Json]) -> dict[str, Json]:
    """Every v1 entry with `text_model_group` = base(key) and its group's summary over v1 entries."""
    by_group: dict[str, list[str]] = {}
    for key in view:
        by_group.setdefault(group_key(key), []).append(key)
    summaries: dict[str, Json] = {}
    for group, keys in by_group.items():
        sizes: set[str] = set()
        quants: set[str] = set()
        baselines: set[str] = set()
        tags: set[str] = set()
        any_nsfw = any_description = False
        for key in keys:
            parsed = parse_name(key)
            entry = view[key]
            if parsed.size:
                sizes.add(parsed.size)
            if parsed.quant:
                quants.add(parsed.quant)
            if entry.get("baseline"):
                baselines.add(str(entry["baseline"]))
            any_nsfw = any_nsfw or bool(entry.get("nsfw"))
            any_description = any_description or bool(entry.get("description"))
            if isinstance(entry.get("tags"), list):
                tags.update(str(t) for t in entry["tags"])
        fmt = attrs.asdict(format_info(infer_name_format(keys)))
        del fmt["extra_parts"]
        summaries[group] = {
            "member_count": len(keys),
            "available_sizes": sorted(sizes, key=size_key),
            "available_quants": sorted(quants),
            "common_baseline": next(iter(baselines)) if len(baselines) == 1 else None,
            "any_nsfw": any_nsfw,
            "any_has_description": any_description,
            "merged_tags": sorted(tags),
            "name_format": fmt,
        }
    out: dict[str, Json] = {}
    for key, entry in view.items():
        group = group_key(key)
        out[key] = {
            **entry,
            "text_model_group": group,
            "text_model_group_summary": summaries[group],
        }
    return out


@define
class ToolkitSlot:
    """What a snapshot keeps for the toolkit until it is first asked for: references to data the
    read model holds anyway (records, the snapshot's files, where the v1 view is read from when
    the view is built) and the small store files."""

    records: Mapping[str, Json]
    files: Mapping[str, bytes]
    store_files: Mapping[str, bytes]
    _view: TextToolkitView | None = None
    _lock: threading.Lock = Factory(threading.Lock)

    @classmethod
    def of(cls, snapshot: Snapshot, records: Mapping[str, Json]) -> ToolkitSlot:
        files = snapshot.files  # iterated by name: a large file is read only when asked for
        return cls(
            records=records,
            files=files,
            store_files={k: files[k] for k in files if k.startswith(SNAPSHOT_DIR + "/")},
        )

    def view(self, replica: bool) -> TextToolkitView:
        """The view, built by the first caller (thread-safe). A REPLICA deployment has no side
        stores, as upstream: no aliases, families or stored schemas (spec 07 §4); a process
        keeps its mode, so the first caller's `replica` is every caller's."""
        if self._view is None:
            with self._lock:
                if self._view is None:
                    stores = (
                        ToolkitStores()
                        if replica
                        else ToolkitStores.from_snapshot_files(self.store_files)
                    )
                    v1_bytes = self.files.get(v1_path(Category.text_generation))
                    self._view = TextToolkitView.build(self.records, v1_bytes, stores)
        return self._view

    async def aview(self, replica: bool) -> TextToolkitView:
        """The view; its first build runs off the event loop. `replica`: this process serves
        a REPLICA deployment (required, so that no caller can build the view in the wrong mode
        for every later request of the snapshot)."""
        if self._view is not None:
            return self._view
        return await asyncio.get_running_loop().run_in_executor(None, self.view, replica)
