"""The text model name parser: a name's parts, its group key, size ordering, inferred naming schemas.

Stored group names (`text_model_group`) and upstream's schema, alias and family files are keyed by
what this parser returns, so it reproduces upstream 8.6.2's parser exactly, quirks included
(spec 07 §2; docs/text-names.md lists what that means for odd names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from attrs import frozen

from .categories import TEXT_BACKEND_PREFIXES

__all__ = [
    "DEFAULT_PART_ORDER",
    "ExtraPart",
    "NameFormat",
    "ParsedName",
    "backend_prefix_of",
    "compose_name",
    "group_key",
    "infer_name_format",
    "member_parse",
    "parse_name",
    "size_key",
    "strip_backend_prefix",
]

_I = re.IGNORECASE

_LEADING_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)[_\-]")
_SIZE = (
    # upstream's `(\d+\.?\d*[BMK]\d*)` with the parts before [BMK] possessive: a shorter run
    # there can only be followed by a digit or a dot, never [BMK], so every match is the same,
    # but the backtracking over a long digit run is gone (it was cubic: a second for 512
    # digits, about a minute for the 2,600 a compose_name body builds from valid parts)
    re.compile(r"(?<![a-zA-Z])(\d++\.?+\d*+[BMK]\d*)(?![a-zA-Z])", _I),
    re.compile(r"(?<![a-zA-Z])(\d+x\d+[BMK])(?![a-zA-Z])", _I),
)
# a change to _VERSION, _QUANT, _VARIANT or _DATE needs its quick test below to follow
# (tests/test_text_names.py checks none of them says no where a pattern matches)
_VERSION = (
    re.compile(r"(?<![a-zA-Z0-9])([vV]\d+(?:\.\d+)+)(?![a-zA-Z0-9])", _I),
    re.compile(r"(?<![a-zA-Z0-9])([vV]\d+)(?![a-zA-Z0-9.])", _I),
)
_QUANT = (
    re.compile(r"\b(Q[2-8]_K(?:_[SMLH])?)\b", _I),
    re.compile(r"\b(Q[2-8]_[01])\b", _I),
    re.compile(r"\b(Q[2-8])\b", _I),
    re.compile(r"\b(GGUF|GGML|GPTQ|AWQ|EXL2)\b", _I),
    re.compile(r"\b(fp16|fp32|int8|int4)\b", _I),
)
_VARIANT = (
    re.compile(r"\b(Instruct|Chat|Code|Base|Uncensored|Finetune|FT)\b", _I),
    re.compile(r"\b(Thinking|Reasoning)\b", _I),
    re.compile(r"\b(turbo|preview|latest)\b", _I),
)
_DATE = (
    re.compile(r"(?<![a-zA-Z0-9])(\d{2}-\d{4})(?![a-zA-Z0-9])"),
    re.compile(r"(?<![a-zA-Z0-9])(\d{4}-\d{2})(?![a-zA-Z0-9])"),
    re.compile(r"(?<![a-zA-Z0-9])(\d{4})(?![a-zA-Z0-9])"),
)
_SEPARATORS = ("-", "_", " ", ".")
_SIZE_LABEL = re.compile(r"^(?:(\d+(?:\.\d+)?)x)?(\d+(?:\.\d+)?)([KMBT])\d*$", _I)
_UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}

LEADING_VERSION = "LEADING_VERSION"
DATE = "DATE"
DEFAULT_PART_ORDER: tuple[str, ...] = ("base", "size", "variant", "version", "quant")


@frozen
class ExtraPart:
    """A name segment outside the five primary parts (a leading version or a date)."""

    value: str
    position: int
    inferred_type: str


@frozen
class ParsedName:
    """The parts of one name; `base_name` is what is left once the others are cut out."""

    base_name: str
    size: str | None = None
    variant: str | None = None
    quant: str | None = None
    version: str | None = None
    extras: tuple[ExtraPart, ...] = ()

    def counted_parts(self) -> int:
        """How many parts were recognised (the richest name decides a schema's part order)."""
        found = (self.size, self.variant, self.version, self.quant)
        return sum(1 for v in found if v) + len(self.extras)


# Cheap tests that tell a group of patterns cannot match, so a name without a quantisation,
# variant, version or date skips its patterns (most of a name's parse: a `\b...\b` search
# under IGNORECASE tries every position). Each only says "no" when no pattern of its group can
# match; otherwise the group's patterns decide as before.
#: a version match starts with [vV] and a digit (the same flags: the same letters match)
_MAY_BE_VERSION = re.compile(r"[vV]\d", _I)
#: every date pattern matches four digits in a row
_MAY_BE_DATE = re.compile(r"\d{4}")
#: in a lower-cased ASCII name, what every quantisation or variant match contains
_MAY_BE_QUANT = re.compile(r"q[2-8]|gg[um]|gptq|awq|exl2|fp16|fp32|int8|int4")
_MAY_BE_VARIANT = re.compile(
    r"instruct|chat|code|base|uncensored|finetune|ft|thinking|reasoning|turbo|preview|latest"
)


def _may_match(rest: str, quick: re.Pattern[str]) -> bool:
    # beyond ASCII, IGNORECASE matches letters lower() does not map (the Kelvin sign is a k)
    return not rest.isascii() or quick.search(rest.lower()) is not None


def _cut_first(rest: str, patterns: Sequence[re.Pattern[str]]) -> tuple[str, str | None, int]:
    """The first pattern that matches anywhere cuts out its leftmost match."""
    for pattern in patterns:
        match = pattern.search(rest)
        if match:
            return rest[: match.start()] + rest[match.end() :], match.group(1), match.start()
    return rest, None, -1


def _separators_before(text: str, position: int) -> int:
    return sum(1 for char in text[:position] if char in "-_. ")


@lru_cache(maxsize=8192)
def parse_name(name: str) -> ParsedName:
    """Split a name into base, size, variant, quant, version and extras (spec 07 §2.1).

    `parse_name("TheBloke/Mistral-7B-Instruct-v0.2-GGUF")` gives base `TheBloke/Mistral`, size `7B`,
    variant `Instruct`, quant `GGUF`, version `v0.2`. The author stays in the base: the group key
    (`group_key`) removes it before parsing.
    """
    rest = name
    extras: list[ExtraPart] = []
    leading = _LEADING_VERSION.match(rest)
    if leading:
        extras.append(ExtraPart(leading.group(1), 0, LEADING_VERSION))
        rest = rest[leading.end() :]
    rest, size, _ = _cut_first(rest, _SIZE)
    version = quant = variant = date = None
    start = -1
    if _MAY_BE_VERSION.search(rest):
        rest, version, _ = _cut_first(rest, _VERSION)
    if _may_match(rest, _MAY_BE_QUANT):
        rest, quant, _ = _cut_first(rest, _QUANT)
    if _may_match(rest, _MAY_BE_VARIANT):
        rest, variant, _ = _cut_first(rest, _VARIANT)
    if _MAY_BE_DATE.search(rest):
        rest, date, start = _cut_first(rest, _DATE)
    if date is not None:
        # upstream counts separators in the original name up to the match's offset in the cut
        # string; the two no longer line up after a cut, and stored data follows upstream
        extras.append(ExtraPart(date, _separators_before(name, start), DATE))
    for sep in _SEPARATORS:
        while sep + sep in rest:
            rest = rest.replace(sep + sep, sep)
    base = rest.strip("-_ .")
    return ParsedName(
        base_name=base or name,
        size=size.upper() if size is not None else None,
        variant=variant,
        quant=quant.upper() if quant is not None else None,
        version=version,
        extras=tuple(extras),
    )


def backend_prefix_of(name: str) -> str | None:
    """`aphrodite` or `koboldcpp` for a backend duplicate's name, else None."""
    for prefix in TEXT_BACKEND_PREFIXES:
        if name.startswith(prefix):
            return prefix.rstrip("/")
    return None


def strip_backend_prefix(name: str) -> str:
    """The name without one leading `aphrodite/` or `koboldcpp/` (author kept)."""
    for prefix in TEXT_BACKEND_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def member_parse(name: str) -> ParsedName:
    """The parse of a name without its backend prefix and author (the one groups are keyed by)."""
    rest = strip_backend_prefix(name)
    if "/" in rest:
        rest = rest.split("/", 1)[1]
    return parse_name(rest)


def group_key(name: str) -> str:
    """The group a text model name belongs to: `Sao10K/L3-8B-Stheno-v3.2` -> `L3-Stheno` (`base(name)`)."""
    return member_parse(name).base_name


def size_key(label: str) -> tuple[int, float, str]:
    """Sort key of a size label: by parameter count (`8x7B` = 56e9), unrecognised labels last."""
    text = label.strip()
    match = _SIZE_LABEL.fullmatch(text)
    if match is None:
        return (1, 0.0, text.casefold())
    experts = float(match.group(1) or 1)
    total = experts * float(match.group(2)) * _UNITS[match.group(3).upper()]
    return (0, total, text.casefold())


@frozen
class NameFormat:
    """A group's naming convention (inferred from its members, or stored as a custom schema)."""

    separator: str = "-"
    part_order: tuple[str, ...] = DEFAULT_PART_ORDER
    author_included: bool = False
    common_author: str | None = None
    template: str = "{base}-{size}"
    extra_parts: tuple[str, ...] = ()


def _separator_of(names: Iterable[str]) -> str:
    hyphens = underscores = 0
    for name in names:
        for pattern in _QUANT:
            name = pattern.sub("", name)
        hyphens += name.count("-")
        underscores += name.count("_")
    return "_" if underscores > hyphens else "-"


def _part_order(name: str, parsed: ParsedName) -> tuple[str, ...]:
    parts: dict[str, str] = {}
    if parsed.base_name:
        parts["base"] = parsed.base_name
    for label, value in (
        ("size", parsed.size),
        ("variant", parsed.variant),
        ("version", parsed.version),
        ("quant", parsed.quant),
    ):
        if value:
            parts[label] = value
    for extra in parsed.extras:
        parts[f"extra:{extra.inferred_type}"] = extra.value
    lowered = name.lower()
    positions = {label: lowered.find(value.lower()) for label, value in parts.items()}
    found = [(pos, label) for label, pos in positions.items() if pos >= 0]
    return tuple(label for _, label in sorted(found, key=lambda item: item[0]))


def infer_name_format(names: Sequence[str]) -> NameFormat:
    """The naming convention of a group's members (spec 07 §2.4)."""
    if not names:
        return NameFormat()
    authors: list[str] = []
    bare: list[str] = []
    for name in names:
        author, slash, rest = name.partition("/")
        if slash:
            if author not in authors:
                authors.append(author)
            bare.append(rest)
        else:
            bare.append(name)
    separator = _separator_of(bare)
    parsed = [parse_name(n) for n in bare]
    richest = max(range(len(bare)), key=lambda i: parsed[i].counted_parts())
    order = _part_order(bare[richest], parsed[richest])
    extra_parts: list[str] = []
    for p in parsed:
        for extra in p.extras:
            if extra.inferred_type not in extra_parts:
                extra_parts.append(extra.inferred_type)
    template = ("{author}/" if authors else "") + separator.join("{" + p + "}" for p in order)
    return NameFormat(
        separator=separator,
        part_order=order,
        author_included=bool(authors),
        common_author=authors[0] if len(authors) == 1 else None,
        template=template,
        extra_parts=tuple(extra_parts),
    )


def compose_name(
    base_name: str,
    size: str,
    *,
    variant: str | None = None,
    version: str | None = None,
    quant: str | None = None,
    author: str | None = None,
    separator: str | None = None,
    part_order: Sequence[str] | None = None,
) -> str:
    """A name from its parts (spec 07 §3.8): `compose_name("Marx", "3B", version="V3", author="acrastt")`."""
    available = {"base": base_name, "size": size}
    for label, value in (("variant", variant), ("version", version), ("quant", quant)):
        if value:
            available[label] = value
    if part_order:
        ordered = [available[p] for p in part_order if p in available]
    else:
        ordered = [available[p] for p in DEFAULT_PART_ORDER if p in available]
    name = (separator or "-").join(ordered)
    return f"{author}/{name}" if author else name
