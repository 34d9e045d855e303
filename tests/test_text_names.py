"""The text model name parser: spec 07 §2 and §9 vectors, and the group key over the real data."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from horde_model_records import (
    compose_name,
    convert_models_csv,
    group_key,
    infer_name_format,
    names,
    parse_name,
    size_key,
)
from horde_model_records.names import member_parse

UPSTREAM_PYTHON = Path("/work/upstream-venv/bin/python")

# name, base_name, size, variant, quant, version, extras, suggested group (spec 07 §9)
VECTORS: list[tuple[str, str, str | None, str | None, str | None, str | None, list[Any], str]] = [
    (
        "koboldcpp/LLaMA2-13B-Tiefighter",
        "koboldcpp/LLaMA2-Tiefighter",
        "13B",
        None,
        None,
        None,
        [],
        "LLaMA2-Tiefighter",
    ),
    (
        "TheBloke/Mistral-7B-Instruct-v0.2-GGUF",
        "TheBloke/Mistral",
        "7B",
        "Instruct",
        "GGUF",
        "v0.2",
        [],
        "Mistral",
    ),
    ("Sao10K/L3-8B-Stheno-v3.2", "Sao1/L3-8B-Stheno", "0K", None, None, "v3.2", [], "L3-Stheno"),
    (
        "bartowski/Meta-Llama-3.1-8B-Instruct-Q4_K_M",
        "bartowski/Meta-Llama-3.1",
        "8B",
        "Instruct",
        "Q4_K_M",
        None,
        [],
        "Meta-Llama-3.1",
    ),
    (
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "mistralai/Mixtral",
        "8X7B",
        "Instruct",
        None,
        "v0.1",
        [],
        "Mixtral",
    ),
    (
        "mistralai/Mixtral-8x22B-Instruct-v0.1",
        "mistralai/Mixtral-8x2",
        "2B",
        "Instruct",
        None,
        "v0.1",
        [],
        "Mixtral-8x2",
    ),
    (
        "CohereForAI/c4ai-command-r-08-2024",
        "CohereForAI/c4ai-command-r",
        None,
        None,
        None,
        None,
        [("08-2024", 3, "DATE")],
        "c4ai-command-r",
    ),
    (
        "4.2.0-Broken-Tutu-24b",
        "Broken-Tutu",
        "24B",
        None,
        None,
        None,
        [("4.2.0", 0, "LEADING_VERSION")],
        "Broken-Tutu",
    ),
    (
        "ReadyArt/4.2.0-Broken-Tutu-24b",
        "ReadyArt/4.2.0-Broken-Tutu",
        "24B",
        None,
        None,
        None,
        [],
        "Broken-Tutu",
    ),
    (
        "EleutherAI/pythia-125m-deduped",
        "EleutherAI/pythia-deduped",
        "125M",
        None,
        None,
        None,
        [],
        "pythia-deduped",
    ),
    (
        "zerofata/Q3.5-BlueStar-27B",
        "zerofata/.5-BlueStar",
        "27B",
        None,
        "Q3",
        None,
        [],
        "5-BlueStar",
    ),
    (
        "lizpreciatior/lzlv_70b_fp16_hf",
        "lizpreciatior/lzlv_fp16_hf",
        "70B",
        None,
        None,
        None,
        [],
        "lzlv_fp16_hf",
    ),
    (
        "deepseek-ai/DeepSeek-V2.5-1210",
        "deepseek-ai/DeepSeek",
        None,
        None,
        None,
        "V2.5",
        [("1210", 2, "DATE")],
        "DeepSeek",
    ),
    ("Foo-7b-v2.0.1-int4", "Foo", "7B", None, "INT4", "v2.0.1", [], "Foo"),
]


@pytest.mark.parametrize(
    ("name", "base", "size", "variant", "quant", "version", "extras", "group"), VECTORS
)
def test_parse_name_vectors(
    name: str,
    base: str,
    size: str | None,
    variant: str | None,
    quant: str | None,
    version: str | None,
    extras: list[tuple[str, int, str]],
    group: str,
) -> None:
    """parse_name and group_key give upstream's parts and group for the spec's names."""
    parsed = parse_name(name)
    assert (parsed.base_name, parsed.size, parsed.variant, parsed.quant, parsed.version) == (
        base,
        size,
        variant,
        quant,
        version,
    )
    assert [(e.value, e.position, e.inferred_type) for e in parsed.extras] == extras
    assert group_key(name) == group


@pytest.mark.parametrize(
    ("name", "base", "quant", "variant"),
    [
        ("lzlv_70b_fp16_hf", "lzlv_fp16_hf", None, None),
        ("Foo_Instruct_7B", "Foo_Instruct", None, None),
        ("Foo-7B_Q8_0", "Foo-_Q8_0", None, None),
        ("Foo-7B-Q4_K_M-GGUF", "Foo-GGUF", "Q4_K_M", None),
        ("Foo-7B-preview-latest", "Foo-latest", None, "preview"),
        ("Phi-3-mini-4k-instruct", "Phi-3-mini", None, "instruct"),
    ],
)
def test_parse_name_quirks(name: str, base: str, quant: str | None, variant: str | None) -> None:
    """`\\b` never fires beside `_`, and each step takes one value (spec 07 §2.1 consequences)."""
    parsed = parse_name(name)
    assert (parsed.base_name, parsed.quant, parsed.variant) == (base, quant, variant)


def test_parse_of_an_empty_name() -> None:
    """An empty name parses to an empty base and no parts."""
    parsed = parse_name("")
    assert parsed.base_name == "" and parsed.size is None and parsed.extras == ()


#: parses a 5,000-digit name in a child process (the regex engine holds the GIL, so only a
#: separate process can be stopped when it hangs)
_LONG_PARSE = """
from horde_model_records import parse_name
digits = "1" * 5000
print(parse_name(digits + "x").size, parse_name(digits + "B").size == digits + "B")
"""


@pytest.mark.subprocess
def test_a_long_digit_run_does_not_stall_the_parser() -> None:
    """A guard against catastrophic backtracking, not a speed measurement: the size pattern
    once backtracked cubically over a digit run (a second for 512 digits, about a minute for
    the 2,600 POST compose_name builds from valid parts and parses on the event loop, a quarter
    of an hour for these 5,000). It now takes well under a second; the bound only tells a hang
    from an answer."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LONG_PARSE],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("parse_name still backtracks over a long digit run")
    assert done.stdout.split() == ["None", "True"]


_SIZE_CASES = ["1.B", "1.2.3B", "7B1a", "7b1", "1.5x", "12.B3-x", "Sao10K", "8x22B", "a1B", "1B2b"]


@pytest.mark.parametrize("name", _SIZE_CASES)
def test_size_pattern_keeps_upstreams_matches(name: str) -> None:
    """The size step matches what upstream's pattern matches (leftmost match, same text)."""
    upstream = re.compile(r"(?<![a-zA-Z])(\d+\.?\d*[BMK]\d*)(?![a-zA-Z])", re.IGNORECASE)
    found = upstream.search(name)
    expected = None if found is None else found.group(1).upper()
    if found is None:
        found = re.search(r"(?<![a-zA-Z])(\d+x\d+[BMK])(?![a-zA-Z])", name, re.IGNORECASE)
        expected = None if found is None else found.group(1).upper()
    assert parse_name(name).size == expected


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("koboldcpp/LLaMA2-13B-Tiefighter", "LLaMA2-Tiefighter"),
        ("Sao10K/L3-8B-Stheno-v3.2", "L3-Stheno"),
        ("acrastt/Marx-3B-V3", "Marx"),
        ("ReadyArt/4.2.0-Broken-Tutu-24b", "Broken-Tutu"),
        ("aphrodite/ReadyArt/Broken-Tutu-24B", "Broken-Tutu"),
    ],
)
def test_group_key_drops_backend_and_author(name: str, group: str) -> None:
    """base(name) removes one backend prefix and the author, then parses (spec 07 §2.2)."""
    assert group_key(name) == group


def test_size_key_orders_by_parameter_count() -> None:
    """Sizes sort by parameter count, experts multiplied, unrecognised labels last."""
    sizes = ["13B", "1.3B", "70M", "2.8B", "0K", "8X7B", "abc", "125M", "1B", "12B"]
    assert sorted(sizes, key=size_key) == [
        "0K",
        "70M",
        "125M",
        "1B",
        "1.3B",
        "2.8B",
        "12B",
        "13B",
        "8X7B",
        "abc",
    ]


def test_infer_name_format_of_no_names() -> None:
    """No names give the default schema."""
    fmt = infer_name_format([])
    assert (fmt.separator, fmt.part_order, fmt.template) == (
        "-",
        ("base", "size", "variant", "version", "quant"),
        "{base}-{size}",
    )


def test_infer_name_format_example() -> None:
    """The spec's L3-Stheno schema: one author, the base cut out of the richest name."""
    fmt = infer_name_format(["Sao10K/L3-8B-Stheno-v3.1", "Sao10K/L3-8B-Stheno-v3.2"])
    assert fmt.separator == "-" and fmt.part_order == ("size", "version")
    assert fmt.author_included and fmt.common_author == "Sao10K"
    assert fmt.template == "{author}/{size}-{version}" and fmt.extra_parts == ()


@pytest.mark.parametrize(
    ("kwargs", "composed"),
    [
        (
            {
                "author": "Sao10K",
                "base_name": "L3-Stheno",
                "size": "8B",
                "version": "v3.2",
                "part_order": ["base", "size", "version"],
            },
            "Sao10K/L3-Stheno-8B-v3.2",
        ),
        (
            {
                "base_name": "Mistral",
                "size": "7B",
                "variant": "Instruct",
                "version": "v0.2",
                "quant": "Q4_K_M",
            },
            "Mistral-7B-Instruct-v0.2-Q4_K_M",
        ),
        (
            {
                "author": "TheBloke",
                "base_name": "Mistral",
                "size": "7B",
                "variant": "Instruct",
                "separator": "_",
                "part_order": ["quant", "base", "size", "nonsense"],
            },
            "TheBloke/Mistral_7B",
        ),
        ({"base_name": "", "size": ""}, "-"),
    ],
)
def test_compose_name(kwargs: dict[str, Any], composed: str) -> None:
    """compose_name joins the available parts in the asked order (spec 07 §3.8)."""
    base_name = kwargs.pop("base_name")
    size = kwargs.pop("size")
    assert compose_name(base_name, size, **kwargs) == composed


def _real_text_names(legacy_dir: Path) -> list[str]:
    return list(json.loads((legacy_dir / "text" / "db.json").read_bytes()))


def test_every_real_name_groups_as_its_stored_group(legacy_dir: Path) -> None:
    """Every v1 text key (backend duplicates too) has the stored text_model_group of its model."""
    records, _ = convert_models_csv((legacy_dir / "text" / "models.csv").read_text())
    stored = {name: record.text_model_group for name, record in records.items()}  # type: ignore[attr-defined]  # -- text records carry the group
    names = _real_text_names(legacy_dir)
    assert len(names) == 2157
    for name in names:
        canonical = next(
            n for n in stored if name in (n, f"aphrodite/{n}", f"koboldcpp/{n.split('/', 1)[-1]}")
        )
        assert group_key(name) == stored[canonical] == member_parse(name).base_name, name
    assert len(set(stored.values())) == 419


@pytest.mark.skipif(not UPSTREAM_PYTHON.exists(), reason="upstream 8.6.2 is not installed here")
@pytest.mark.subprocess
def test_every_real_name_parses_as_upstream(legacy_dir: Path, tmp_path: Path) -> None:
    """Upstream 8.6.2's parser and ours agree on every part and group of every real text name."""
    names = _real_text_names(legacy_dir)
    names += [n.split("/", 1)[1] for n in names if "/" in n]
    script = (
        "import json, sys\n"
        "from horde_model_reference.analytics.text_model_parser import "
        "parse_text_model_name as p, get_base_model_name as g\n"
        "out = {}\n"
        "for n in json.load(sys.stdin):\n"
        "    r = p(n)\n"
        "    out[n] = [r.base_name, r.size, r.variant, r.quant, r.version,\n"
        "              [[e.value, e.position, str(e.inferred_type.value)] for e in r.extras], g(n)]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(UPSTREAM_PYTHON), "-c", script],
        input=json.dumps(names),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    upstream = json.loads(done.stdout)
    for name in names:
        ours = parse_name(name)
        assert upstream[name] == [
            ours.base_name,
            ours.size,
            ours.variant,
            ours.quant,
            ours.version,
            [[e.value, e.position, e.inferred_type] for e in ours.extras],
            group_key(name),
        ], name


def test_worker_library_exposes_the_parser() -> None:
    """horde_model_replica re-exports the one parser and group key, also under upstream's names."""
    import horde_model_replica as replica

    assert replica.parse_name is parse_name and replica.group_key is group_key
    assert replica.parse_text_model_name("Org/Foo-7B-Q4_K_M").quant == "Q4_K_M"
    assert replica.get_base_model_name("koboldcpp/LLaMA2-13B-Tiefighter") == "LLaMA2-Tiefighter"
    assert replica.parameter_size_sort_key is size_key
    assert replica.infer_name_format is infer_name_format


def _names_to_try(legacy_dir: Path) -> list[str]:
    """Every real name (with and without its author) and many made of the parts patterns
    look for, odd letters included (IGNORECASE matches the Kelvin sign as a k)."""
    text = (legacy_dir / "text" / "models.csv").read_text(encoding="utf-8")
    real = list(convert_models_csv(text)[0])
    pieces = [
        *"qQ48_kKsmlhgufGUFvV0123456789.-_ /BbMmxXtT",
        "GGUF", "Instruct", "chat", "v1.2", "2024-05", "fp16", "INT8", "\u212a", "\u017f",
        "\u0130", "Q4_K_M", "q8_0", "exl2", "AWQ", "base", "FT", "\u0661\u0662\u0663\u0664",
        "Thinking", "TURBO", "latest", "Code",
    ]  # fmt: skip
    rnd = random.Random(16)
    made = ["".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 12))) for _ in range(20000)]
    return real + [n.split("/", 1)[-1] for n in real] + made


def test_quick_checks_never_skip_a_match(legacy_dir: Path) -> None:
    """parse_name skips a group of patterns when a cheap test says none can match: that test
    must say "maybe" for every name where one of the group's patterns matches."""
    checks = [
        (names._VERSION, lambda n: names._MAY_BE_VERSION.search(n) is not None),
        (names._QUANT, lambda n: names._may_match(n, names._MAY_BE_QUANT)),
        (names._VARIANT, lambda n: names._may_match(n, names._MAY_BE_VARIANT)),
        (names._DATE, lambda n: names._MAY_BE_DATE.search(n) is not None),
    ]
    for name in _names_to_try(legacy_dir):
        for patterns, may_match in checks:
            if any(p.search(name) for p in patterns):
                assert may_match(name), (name, patterns)
