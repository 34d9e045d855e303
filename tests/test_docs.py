"""Every command shown in the docs is exercised by a test.

The docs are README.md, docs/*.md and libs/replica/README.md. Every command line of a ```sh block
(and every ```python block) of a doc is run, in document order, as one bash script in a
sandbox: a temporary working directory, free loopback ports instead of 19800-19809, `/srv/...`
and `/backup/...` moved under the sandbox, AI-Horde switched off and the worker library pointed
at the sandbox's own service (the library's README must point it there itself, as it tells its
readers to). Each command must exit 0; a trailing `# prints: TEXT` comment must find TEXT in its
output, and a curl without -f (an error example) must have one. `hmr all|read-api|write-queue|stats`
lines start servers in the background (ready when /readyz answers 200); `<!-- doctest: stop [PATTERN] -->` between blocks
stops the ones whose command contains PATTERN (all without one). Every server is stopped at the
end.

A command that cannot run inside a test is listed in ELSEWHERE with the test that covers it.
A command that is neither run nor listed fails the test; so does a sh command that would reach
beyond 127.0.0.1 (show those in ```text blocks).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen

from tests.helpers import clean_env, free_port, stop, wait_for_server

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "libs" / "replica" / "README.md",
]
SERVERS = ("all", "read-api", "write-queue", "stats")
TOOLS = ("bash", "curl", "jq", "sqlite3", "make")
SCRIPT_TIMEOUT = 120.0
READY_TIMEOUT = 20.0

#: commands not run line by line here, each with the files (and text in them) that exercise it
ELSEWHERE: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "make run": (
        "run here: the `make -n run` recipe (hmr dev-auth + hmr all) starts the system that "
        "README.md and docs/api.md talk to",
        [("Makefile", "$(BIN)/hmr all"), ("tests/test_docs.py", "def start_make_run")],
    ),
    "make test": (
        "the whole suite: CI runs `make test`",
        [(".ci/run", "make test")],
    ),
    "make test-fast": (
        "a subset of `make test`: the tests not marked e2e or subprocess",
        [("Makefile", '-m "not e2e and not subprocess"'), ("pyproject.toml", "subprocess: ")],
    ),
    "make up": (
        "tests/test_deploy.py runs deploy/local.py up, the recipe of `make up`",
        [("Makefile", "deploy/local.py up"), ("tests/test_deploy.py", '"up",')],
    ),
    "/work/upstream-venv/bin/python tests/upstream_replica_check.py http://127.0.0.1:19800/api": (
        "needs upstream's own Python 3.12 virtualenv: tests/test_upstream_library.py runs the "
        "script against a live `hmr all` (skipped where that interpreter is missing)",
        [
            ("tests/test_upstream_library.py", "CHECK = Path(__file__).with_name"),
            ("tests/upstream_replica_check.py", "HORDE_MODEL_REFERENCE_REPLICATE_MODE"),
        ],
    ),
    "make down": (
        "tests/test_deploy.py runs deploy/local.py down, the recipe of `make down`",
        [("Makefile", "deploy/local.py down"), ("tests/test_deploy.py", '"down",')],
    ),
    "pip install ./libs/records ./libs/replica": (
        "needs the package index: tests/test_replica_install.py installs both in a fresh venv",
        [
            (
                "tests/test_replica_install.py",
                "def test_library_installs_alone_in_a_fresh_virtualenv",
            )
        ],
    ),
}

#: what the sandbox itself puts in its working directory while a doc runs: the script and its
#: state, the docs' /srv and /backup, the worker library's cache (AIWORKER_CACHE_HOME)
SANDBOX_FILES = {"script.sh", ".doctest", "srv", "backup", "models"}

#: docs whose examples talk to a running `make run` (the real data for the replica library)
SETUP = {"README.md": "make-run", "api.md": "make-run", "operators.md": "none"}
REPLICA_README = REPO / "libs" / "replica" / "README.md"


# --- reading the docs ------------------------------------------------------------------------------


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


@frozen
class Command:
    doc: Path
    line: int
    text: str  # as written, continuation lines joined by newlines
    code: str  # without comments
    prints: str | None

    @property
    def normalized(self) -> str:
        return " ".join(self.code.replace("\\\n", " ").split())

    @property
    def where(self) -> str:
        return f"{rel(self.doc)}:{self.line}"


@frozen
class Python:
    doc: Path
    line: int
    code: str

    @property
    def where(self) -> str:
        return f"{rel(self.doc)}:{self.line}"


@frozen
class Directive:
    doc: Path
    line: int
    text: str


Item = Command | Python | Directive


def strip_comment(text: str) -> tuple[str, str | None]:
    """Split shell text into code and its comments (# outside quotes, at a word start)."""
    code: list[str] = []
    comments: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch == "#" and (i == 0 or text[i - 1].isspace()):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            comments.append(text[i + 1 : end].strip())
            i = end
            continue
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            code.append(text[i : i + 2])
            i += 2
            continue
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
        code.append(ch)
        i += 1
    return "".join(code).rstrip(), (" ".join(comments) or None)


def _complete(text: str) -> bool:
    """True when `text` is a whole shell command: no open quote, no trailing backslash."""
    if text.rstrip().endswith("\\"):
        return False
    code, _ = strip_comment(text)
    try:
        shlex.split(code)
    except ValueError:
        return False
    return True


def split_commands(doc: Path, first_line: int, lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    buf: list[str] = []
    start = 0
    for offset, line in enumerate(lines):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not buf:
            start = first_line + offset
        buf.append(line)
        text = "\n".join(buf)
        if not _complete(text):
            continue
        code, comment = strip_comment(text)
        prints = None
        if comment is not None and (m := re.search(r"prints:\s*(.+)$", comment)):
            prints = m.group(1).strip()
        commands.append(Command(doc, start, text, code, prints))
        buf = []
    assert not buf, f"{rel(doc)}:{start}: unfinished command in a sh block"
    return commands


def parse(doc: Path) -> list[Item]:
    """The sh commands, python blocks and doctest directives of a markdown file, in order."""
    items: list[Item] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^\s*```\s*([\w+-]*)\s*$", line)
        if fence is None:
            if m := re.search(r"<!--\s*doctest:\s*(.*?)\s*-->", line):
                items.append(Directive(doc, i + 1, m.group(1)))
            i += 1
            continue
        language = fence.group(1).lower()
        end = i + 1
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        assert end < len(lines), f"{rel(doc)}:{i + 1}: unclosed code block"
        body = lines[i + 1 : end]
        where = f"{rel(doc)}:{i + 1}"
        assert language not in ("bash", "shell", "console", "zsh", "shell-session"), (
            f"{where}: commands go in ```sh blocks (run by this test) or ```text (illustrations)"
        )
        if language == "sh":
            items.extend(split_commands(doc, i + 2, body))
        elif language in ("python", "py"):
            items.append(Python(doc, i + 2, "\n".join(body) + "\n"))
        i = end + 1
    return items


def all_items() -> list[Item]:
    return [item for doc in DOCS for item in parse(doc)]


# --- the sandbox ------------------------------------------------------------------------------------


class Sandbox:
    """Where one doc's commands run: its own directory, ports and environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports: dict[str, int] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        #: where the worker library looks for its PRIMARY; None: this sandbox's service
        self.library_primary: str | None = None

    def port(self, documented: str) -> int:
        if documented not in self.ports:
            self.ports[documented] = free_port()
        return self.ports[documented]

    def substitute(self, text: str) -> str:
        """Documented ports and absolute paths -> this sandbox's."""
        text = re.sub(r"\b(1980\d)\b", lambda m: str(self.port(m.group(1))), text)
        return re.sub(r"(?<![\w./$-])/(srv|backup)(?=/|\b)", rf"{self.root}/\1", text)

    def env(self) -> dict[str, str]:
        env = clean_env(
            drop=("HMR_", "HORDE_MODEL_REFERENCE_", "AIWORKER_"),
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            HMR_HORDE_URL="off",  # never AI-Horde
            # the worker library reads this sandbox's service, never the internet
            HORDE_MODEL_REFERENCE_PRIMARY_API_URL=self.library_primary
            or f"http://127.0.0.1:{self.port('19800')}/api",
            HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK="false",
            HORDE_MODEL_REFERENCE_GITHUB_RAW_BASE="http://127.0.0.1:9",
            HORDE_MODEL_REFERENCE_PRIMARY_API_RETRY_MAX_ATTEMPTS="1",
            AIWORKER_CACHE_HOME=str(self.root / "models"),
        )
        return env

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)


def start_make_run(box: Sandbox, **make_vars: str) -> None:
    """Run what `make run` runs (its recipe, from `make -n`) on a sandbox port and data dir;
    `make_vars` are further make variables (`SEED_DIR=...`)."""
    port = box.port("19800")
    data_dir = box.root / "var"
    variables = [f"{k}={v}" for k, v in make_vars.items()]
    shown = subprocess.run(
        [
            "make",
            "-n",
            "run",
            f"BIN={VENV_BIN}",
            f"PORT={port}",
            f"DATA_DIR={data_dir}",
            *variables,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    recipe = [shlex.split(line) for line in shown.splitlines() if f"{VENV_BIN}/hmr " in line]
    assert [argv[1] for argv in recipe] == ["dev-auth", "all"], shown
    env = box.env()
    subprocess.run(recipe[0], cwd=REPO, env=env, capture_output=True, check=True, timeout=30)
    log = box.root / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(recipe[1], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    box.procs.append(proc)
    wait_for_server(
        f"http://127.0.0.1:{port}/readyz", proc, log, within=READY_TIMEOUT, ready=lambda s: s == 200
    )


# --- turning a doc into a script --------------------------------------------------------------------

PREAMBLE = r"""
set -euo pipefail
__S="$1"
: > "$__S/servers"
__serve() {  # pid port log command: wait until the server is ready
    local pid=$1 port=$2 log=$3
    printf '%s %s\n' "$pid" "$4" >> "$__S/servers"
    local deadline=$((SECONDS + __READY))
    until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "server exited: $4" >&2; cat "$log" >&2; return 1
        fi
        if (( SECONDS > deadline )); then
            echo "server not ready: $4" >&2; cat "$log" >&2; return 1
        fi
        sleep 0.05
    done
}
__stop() {  # stop the servers whose command contains $1 (all when empty)
    local pid cmd
    : > "$__S/servers.keep"
    while read -r pid cmd; do
        if [[ -z "$1" || "$cmd" == *"$1"* ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        else
            printf '%s %s\n' "$pid" "$cmd" >> "$__S/servers.keep"
        fi
    done < "$__S/servers"
    mv "$__S/servers.keep" "$__S/servers"
}
trap '__stop ""' EXIT
"""

_LOOPBACK = {"127.0.0.1", "localhost"}


def check_loopback_only(command: Command, code: str) -> None:
    """A sh command must not reach beyond 127.0.0.1 (request bodies may mention URLs)."""
    without_bodies = re.sub(r"(-d|--data\S*|--json)\s+('[^']*'|\"[^\"]*\"|\S+)", "", code)
    for host in re.findall(r"https?://([^/\s'\"]+)", without_bodies):
        name = host.rsplit("@", 1)[-1].split(":")[0]
        assert name in _LOOPBACK, (
            f"{command.where}: `{command.normalized}` reaches {host}; "
            "show it in a ```text block instead"
        )


def check_curl_fails_on_errors(command: Command) -> None:
    """A curl that does not fail on an HTTP error must say what it prints (an error example)."""
    if not re.search(r"(^|[\s|(])curl\s", command.code) or command.prints is not None:
        return
    fails = re.search(r"(^|\s)(-[a-zA-Z]*f[a-zA-Z]*|--fail(-with-body)?)(?=\s|$)", command.code)
    assert fails, (
        f"{command.where}: `{command.normalized}` needs -f (--fail) so that an error answer "
        "fails the test, or a `# prints: ...` comment saying what it shows"
    )


def server_port(command: Command, code: str) -> int | None:
    """The port of an `hmr all|read-api|write-queue|stats` line; None for other commands."""
    try:
        words = shlex.split(code)
    except ValueError:
        return None
    env = {}
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    if len(words) < 2 or words[0] != "hmr" or words[1] not in SERVERS or "--help" in words:
        return None
    port = words[words.index("--port") + 1] if "--port" in words else env.get("HMR_PORT")
    assert port is not None and port.isdigit(), (
        f"{command.where}: a server command in the docs needs a literal --port"
    )
    return int(port)


@frozen
class Plan:
    script: str
    run: dict[int, Command | Python]  # step number -> what it runs
    elsewhere: list[Command]


def plan(items: list[Item], box: Sandbox) -> Plan:
    out = [PREAMBLE]
    run: dict[int, Command | Python] = {}
    elsewhere: list[Command] = []
    for item in items:
        if isinstance(item, Directive):
            words = item.text.split(maxsplit=1)
            assert words and words[0] == "stop", f"unknown doctest directive: {item.text!r}"
            pattern = box.substitute(words[1]) if len(words) > 1 and words[1] != "all" else ""
            out.append(f"__stop {shlex.quote(pattern)}")
            continue
        if isinstance(item, Command) and item.normalized in ELSEWHERE:
            elsewhere.append(item)
            continue
        step = len(run) + 1
        run[step] = item
        out.append(f'echo {step} > "$__S/current"')
        if isinstance(item, Python):
            script = box.root / f"step{step}.py"
            script.write_text(box.substitute(item.code), encoding="utf-8")
            out.append(f'{{ python3 {shlex.quote(str(script))}\n}} > "$__S/{step}.out" 2>&1')
        else:
            text, code = box.substitute(item.text), box.substitute(item.code)
            check_loopback_only(item, code)
            check_curl_fails_on_errors(item)
            port = server_port(item, code)
            if port is None:
                out.append(f'{{ {text}\n}} > "$__S/{step}.out" 2>&1')
            else:
                log = f'"$__S/{step}.out"'
                out.append(f"{code} > {log} 2>&1 &")
                out.append(f"__serve $! {port} {log} {shlex.quote(' '.join(code.split()))}")
        out.append(f'echo {step} >> "$__S/done"')
    return Plan("\n".join(out) + "\n", run, elsewhere)


def run_doc(doc: Path, box: Sandbox) -> Plan:
    """Run every command of `doc` in `box`; fail with the first command that fails."""
    steps = plan(parse(doc), box)
    state = box.root / ".doctest"
    state.mkdir()
    (box.root / "script.sh").write_text(steps.script, encoding="utf-8")
    env = {**box.env(), "__READY": str(int(READY_TIMEOUT))}
    proc = subprocess.Popen(
        ["bash", str(box.root / "script.sh"), str(state)],
        cwd=box.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, servers included
        output, _ = proc.communicate()
    finally:
        _stop_leftovers(state)

    done = set()
    if (state / "done").exists():
        done = {int(n) for n in (state / "done").read_text().split()}
    if proc.returncode != 0:
        current = int((state / "current").read_text()) if (state / "current").exists() else 0
        failed = steps.run.get(current)
        step_out = state / f"{current}.out"
        detail = step_out.read_text(errors="replace")[-3000:] if step_out.exists() else ""
        what = failed.text if isinstance(failed, Command) else getattr(failed, "code", "?")
        where = failed.where if failed is not None else str(doc)
        pytest.fail(
            f"{where}: exit {proc.returncode}\n{what}\n--- output ---\n{detail}\n"
            f"--- script ---\n{output.decode(errors='replace')[-2000:]}"
        )
    missing = [steps.run[n].where for n in steps.run if n not in done]
    assert not missing, f"commands that did not run: {missing}"
    for step, item in steps.run.items():
        if isinstance(item, Command) and item.prints is not None:
            printed = (state / f"{step}.out").read_text(errors="replace")
            assert box.substitute(item.prints) in printed, (
                f"{item.where}: `{item.normalized}` should print {item.prints!r}, got:\n"
                f"{printed[-2000:]}"
            )
    return steps


def _stop_leftovers(state: Path) -> None:
    """Servers the script started and did not stop (it was killed): stop them by pid."""
    servers = state / "servers"
    if not servers.exists():
        return
    for line in servers.read_text().splitlines():
        pid = int(line.split()[0])
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.5)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the docs' commands need {', '.join(missing)}: "
            f"deploy/ensure-tools.sh {' '.join(missing)}"
        )
    sandbox = Sandbox(tmp_path)
    try:
        yield sandbox
    finally:
        sandbox.stop()


# --- the tests ---------------------------------------------------------------------------------------


@pytest.mark.subprocess
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_of_the_doc_runs(doc: Path, box: Sandbox) -> None:
    """Each sh command and python block of the doc runs in order and exits 0 (or is mapped)."""
    # the library's README talks to `make run` too (its three lines read the bundled sample)
    setup = SETUP.get(doc.name, "make-run") if doc != REPLICA_README else "make-run"
    if setup == "make-run":
        start_make_run(box)
    before = set(os.listdir(box.root))
    if doc == REPLICA_README:
        # nothing listens there: only the README's own `export` reaches `make run`'s service
        box.library_primary = "http://127.0.0.1:9/api"
    steps = run_doc(doc, box)
    assert steps.run or steps.elsewhere, f"{doc}: no commands"
    if doc != REPLICA_README:  # a worker's directory, where `fetch --out DIR` is the point
        left = set(os.listdir(box.root)) - before - SANDBOX_FILES
        assert not {name for name in left if not re.fullmatch(r"step\d+\.py", name)}, (
            f"{rel(doc)}: its commands leave files in the working directory (the repository "
            f"root, where the docs are run from): {sorted(left)}"
        )
    if doc == REPLICA_README:
        cached = list((box.root / "models" / "horde_model_reference").glob("*.json"))
        assert cached, "the three lines did not fetch from the sandbox's service"


def test_commands_not_run_here_are_mapped_to_their_tests() -> None:
    """ELSEWHERE stays small and true: every entry is used by a doc and names what runs it."""
    used = {item.normalized for item in all_items() if isinstance(item, Command)}
    unused = set(ELSEWHERE) - used
    assert not unused, f"ELSEWHERE entries no doc shows: {unused}"
    for command, (_, evidence) in ELSEWHERE.items():
        for path, text in evidence:
            assert text in (REPO / path).read_text(encoding="utf-8"), (command, path, text)


def test_doc_parser_finds_commands_and_multiline_ones(tmp_path: Path) -> None:
    """The extraction the other tests rely on: continuation lines, quotes, comments, fences."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n```sh\n# a comment\nmake test\ncurl -fsS \\\n  http://127.0.0.1:19800/  # prints: ok\n"
        "X=$(echo '{\n  \"a\": 1\n}' | jq .a)\n```\n<!-- doctest: stop all -->\n"
        "```text\nnot a command\n```\n```python\nprint(1)\n```\n",
        encoding="utf-8",
    )
    items = parse(doc)
    commands = [i for i in items if isinstance(i, Command)]
    assert [c.normalized for c in commands] == [
        "make test",
        "curl -fsS http://127.0.0.1:19800/",
        "X=$(echo '{ \"a\": 1 }' | jq .a)",
    ]
    assert commands[1].prints == "ok" and commands[1].line == 5
    assert [type(i).__name__ for i in items] == ["Command"] * 3 + ["Directive", "Python"]
    box = Sandbox(tmp_path)
    steps = plan(items, box)
    assert [c.normalized for c in steps.elsewhere] == ["make test"]
    assert len(steps.run) == 3  # an unmapped command is run, never skipped
    bad = tmp_path / "bad.md"
    bad.write_text("```sh\ncurl https://aihorde.net/api/\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="text"):
        plan(parse(bad), box)
    lax = tmp_path / "lax.md"
    lax.write_text("```sh\ncurl http://127.0.0.1:19800/api/\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="--fail"):
        plan(parse(lax), box)
    bash = tmp_path / "bash.md"
    bash.write_text("```bash\nls\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="sh"):
        parse(bash)


def test_readme_is_the_entry_point() -> None:
    """README.md shows `make run` and `make test` and links the three guides."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = {i.normalized for i in parse(REPO / "README.md") if isinstance(i, Command)}
    assert {"make run", "make test"} <= commands
    for target in ("docs/api.md", "docs/operators.md", "libs/replica/README.md"):
        assert f"]({target})" in readme, target


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{rel(doc)}: broken link {target}"


# --- the configuration table of docs/operators.md ---------------------------------------------------


def configuration_rows() -> dict[str, str]:
    text = (REPO / "docs" / "operators.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if m := re.match(r"^\| `(HMR_[A-Z_]+)` \|", line):
            rows[m.group(1)] = line
    return rows


def test_configuration_table_has_every_variable() -> None:
    """Every HMR_* variable the code reads has a row, and every row is read by the code."""
    used = set()
    for path in [*REPO.glob("services/**/*.py"), *REPO.glob("shared/*.py")]:
        used |= set(re.findall(r"\"(HMR_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    assert set(configuration_rows()) == used


def test_configuration_table_names_every_flag() -> None:
    """Each flag of `hmr` sits in the row of its environment variable."""
    from services import cli

    rows = configuration_rows()
    for flag, env, _ in cli.COMMON + cli.SERVE + cli.SEED + cli.WRITE + cli.STATS + cli.KEEP:
        assert f"`{flag}`" in rows[env], (flag, env)
    flagged = {env for env, row in rows.items() if re.match(r"^\| `\w+` \| `--", row)}
    options = cli.COMMON + cli.SERVE + cli.SEED + cli.WRITE + cli.STATS + cli.KEEP
    assert flagged == {env for _, env, _ in options}


def _shown(value: Any) -> str | None:
    if value is None or value in ((), frozenset(), ""):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_configuration_table_defaults_match_the_config_classes() -> None:
    """The default shown for each variable is what each service's Config reads from nothing."""
    from services.read_api.config import Config as ReadConfig
    from services.stats.config import Config as StatsConfig
    from services.write_queue.config import Config as WriteConfig

    field_of = {"HMR_HORDE_RETRY_BACKOFF": "retry_backoff_min"}
    rows = configuration_rows()
    checked = 0
    for config_class in (ReadConfig, WriteConfig, StatsConfig):
        config = config_class.from_environ({})
        for env, row in rows.items():
            field = field_of.get(env, env.removeprefix("HMR_").lower())
            if not hasattr(config, field):
                continue
            shown = _shown(getattr(config, field))
            if shown is not None:
                assert f"`{shown}`" in row or f"`./{shown}`" in row, (env, shown, row)
                checked += 1
    assert checked >= 20


def test_documented_id_lists_are_read_as_shown() -> None:
    """Every way the docs write an id list (one bare id, comma-separated, a JSON array) is read
    by the writer as exactly those ids, and none of them is said to be refused."""
    from services.write_queue.config import Config as WriteConfig

    row = configuration_rows()["HMR_REQUESTOR_IDS"]
    shown = [value for value in re.findall(r"`([^`]+)`", row) if re.search(r"\d", value)]
    assert {"1001", "1001,1002", '["1001", "1002"]'} <= set(shown), row
    for value in shown:
        config = WriteConfig.from_environ({"HMR_REQUESTOR_IDS": value})
        assert config.requestor_ids == set(re.findall(r"\d+", value)), value
    assert "refused" not in row


def test_documented_snapshot_mode_is_the_real_one(tmp_path: Path) -> None:
    """The mode the docs give snapshot directories is the one a publish creates."""
    from services.cli import SAMPLE_DIR
    from shared.dataset import import_legacy_dir, publish_dataset
    from shared.snapshot import SnapshotStore

    store = SnapshotStore(tmp_path / "snapshots")
    snapshot = publish_dataset(store, import_legacy_dir(SAMPLE_DIR)[0])
    mode = f"0{(tmp_path / 'snapshots' / snapshot.name).stat().st_mode & 0o777:o}"
    for doc in (REPO / "docs" / "operators.md", REPO / "deploy" / "docker" / "README.md"):
        text = " ".join(doc.read_text(encoding="utf-8").split())
        stated = set(re.findall(r"(?:mode|created) `?(0[0-7]{3})`?", text))
        assert stated == {mode}, (rel(doc), stated, mode)


# --- a claim of the restore procedure ---------------------------------------------------------------


def _call(method: str, url: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"apikey": key} if key else {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.mark.subprocess
def test_restored_store_is_published_again(box: Sandbox) -> None:
    """docs/operators.md: after restoring an older store, the writer republishes its data."""
    start_make_run(box)
    base = f"http://127.0.0.1:{box.port('19800')}/api/model_references/v2"
    data_dir = box.root / "var"
    keys = json.loads((data_dir / "dev-auth.json").read_text())
    requestor = next(k for k, v in keys.items() if v["roles"] == ["requestor"])
    approver = next(k for k, v in keys.items() if v["roles"] == ["approver"])
    database = data_dir / "write_queue.sqlite3"
    backup = box.root / "backup.sqlite3"
    source, target = sqlite3.connect(database), sqlite3.connect(backup)
    with target:
        source.backup(target)
    source.close()
    target.close()

    record = {"name": "After Backup", "baseline": "flux_1", "nsfw": False}
    status, change = _call("POST", f"{base}/image_generation", requestor, record)
    assert status == 202, change
    batch = {"batch_title": "after the backup", "approved_ids": [change["change_id"]]}
    status, result = _call("POST", f"{base}/pending_queue/batches", approver, batch)
    assert status == 200, result
    status, result = _call(
        "POST", f"{base}/pending_queue/apply_batch/{result['batch_id']}", approver
    )
    assert status == 200, result
    applied = (data_dir / "snapshots" / "CURRENT").read_text().strip()

    box.stop()
    box.procs.clear()
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    start_make_run(box)
    live = (data_dir / "snapshots" / "CURRENT").read_text().strip()
    assert int(live.split("-")[0]) > int(applied.split("-")[0])
    deadline = time.monotonic() + 5  # readers switch within HMR_SNAPSHOT_POLL_INTERVAL
    while (status := _call("GET", f"{base}/image_generation/model/After%20Backup")[0]) != 404:
        assert time.monotonic() < deadline, f"the applied model is still served ({status})"
        time.sleep(0.05)
