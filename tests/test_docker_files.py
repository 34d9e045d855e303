"""The container files in deploy/docker/: what can be checked without a Docker engine.

- compose.yaml parses; every long-running service has a healthcheck and a restart policy; the
  read replicas (and stats) mount the data volume read-only; the pull-mode replica has none;
  nginx waits for healthy services.
- every path the Dockerfiles COPY exists and is let through by their .dockerignore.
- the container nginx config (derived from deploy/nginx/hmr.conf.template by render_nginx.py,
  filled by nginx-entrypoint.sh) passes `nginx -t` and answers from a real nginx.
- the health check script's exit codes.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import clean_env, free_port, http_get, running, threaded_http_server

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "deploy" / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENTRYPOINT = DOCKER / "nginx-entrypoint.sh"
LIVE_FOLLOW = REPO / "deploy" / "nginx" / "live-follow.sh"
LONG_RUNNING = ("write_queue", "read_api", "stats", "nginx", "read_api_remote")


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_nginx = _module("render_nginx")
healthcheck = _module("healthcheck")


# --- compose.yaml -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves the `<<:` merges
    assert isinstance(data, dict)
    return data


def _mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """source volume -> long-syntax mount (short syntax `src:dst[:ro]` is normalised)."""
    mounts = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            parts = entry.split(":")
            entry = {"source": parts[0], "target": parts[1], "read_only": parts[2:] == ["ro"]}
        mounts[entry["source"]] = entry
    return mounts


def test_compose_services_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*LONG_RUNNING, "openapi", "github_sync"}
    for name in LONG_RUNNING:
        service = services[name]
        check = service.get("healthcheck", {})
        assert not check.get("disable") and check.get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always"), name
    # the one-shot that renders the OpenAPI document exits; it must not be restarted
    assert services["openapi"]["restart"] == "no"
    assert services["openapi"]["command"][:1] == ["openapi"]
    # every python service checks its own port: HMR_PORT is set and unique per service
    ports = {
        n: services[n]["environment"]["HMR_PORT"] for n in ("write_queue", "read_api", "stats")
    }
    assert ports == {"write_queue": "19802", "read_api": "19801", "stats": "19803"}
    for name in ("write_queue", "read_api", "stats", "read_api_remote"):
        assert services[name]["environment"]["HMR_HOST"] == "0.0.0.0", name
        assert "/readyz" in services[name]["healthcheck"]["test"], name


def test_compose_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "data" in compose["volumes"]
    writer = _mounts(services["write_queue"])["data"]
    assert writer["target"] == "/data" and not writer.get("read_only")
    for name in ("read_api", "stats"):
        mount = _mounts(services[name]).get("data")
        assert mount is not None, f"{name} does not mount the data volume"
        assert mount["target"] == "/data" and mount.get("read_only") is True, name
    assert services["read_api"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["read_api"], "a published port would prevent --scale"


def test_compose_remote_replica_pulls_over_http(compose: dict[str, Any]) -> None:
    remote = compose["services"]["read_api_remote"]
    assert remote["profiles"] == ["remote"]
    assert "data" not in _mounts(remote), "the pull-mode replica must not share the data volume"
    env = remote["environment"]
    assert env["HMR_SNAPSHOT_SOURCE"] == "http://write_queue:19802"
    assert env["HMR_DATA_DIR"] == "/data" and "/data" in {
        m["target"] for m in _mounts(remote).values()
    }
    assert "read_api" in remote["networks"]["default"]["aliases"]


def test_compose_github_sync_is_optional_and_reads_over_http(compose: dict[str, Any]) -> None:
    """The GitHub sync runs only with its profile, watches the PRIMARY through a read replica,
    mounts no data, restarts, and takes its credentials from the environment only."""
    sync = compose["services"]["github_sync"]
    assert sync["profiles"] == ["github-sync"]
    assert sync["command"][:2] == ["github-sync", "--watch"]
    assert sync["restart"] == "unless-stopped"
    assert "volumes" not in sync, "it reads the PRIMARY over HTTP like any client"
    env = sync["environment"]
    assert env["HMR_GITHUB_SYNC_PRIMARY_API_URL"] == "http://read_api:19801/api"
    assert env["HMR_GITHUB_SYNC_TOKEN"] == "${HMR_GITHUB_SYNC_TOKEN:-}"
    assert sync["depends_on"] == {"read_api": {"condition": "service_healthy"}}
    port = env["HMR_GITHUB_SYNC_METRICS_PORT"]
    assert sync["healthcheck"]["test"][-2:] == ["/readyz", port]


def test_compose_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nginx = services["nginx"]
    assert nginx["depends_on"] == {
        "openapi": {"condition": "service_completed_successfully"},
        "read_api": {"condition": "service_healthy"},
        "write_queue": {"condition": "service_healthy"},
        "stats": {"condition": "service_healthy"},
    }
    env = nginx["environment"]
    for var, service in (
        ("HMR_READ_UPSTREAM", "read_api"),
        ("HMR_WRITE_UPSTREAM", "write_queue"),
        ("HMR_STATS_UPSTREAM", "stats"),
    ):
        assert env[var] == f"{service}:{services[service]['environment']['HMR_PORT']}", var
    assert env["HMR_RESOLVER"] == "127.0.0.11"  # Docker's embedded DNS
    openapi = _mounts(nginx)["openapi"]
    assert openapi["read_only"] is True
    data = _mounts(nginx)["data"]  # the static path: whole categories from the live snapshot
    assert data["read_only"] is True
    assert _dockerfile_env("nginx.Dockerfile")["HMR_SNAPSHOTS_DIR"] == data["target"] + "/snapshots"
    assert _mounts(services["openapi"])["openapi"]["target"] == "/openapi"
    assert services["openapi"]["command"][-1] == "/openapi/openapi.json"
    assert (
        openapi["target"] + "/openapi.json"
        == _dockerfile_env("nginx.Dockerfile")["HMR_OPENAPI_FILE"]
    )
    for name in ("nginx", "write_queue"):
        build = services[name]["build"]
        assert (DOCKER / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).is_file()


# --- Dockerfiles --------------------------------------------------------------------------------


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DOCKER / dockerfile).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerfile_env(dockerfile: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in _instructions(dockerfile):
        if word == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", rest))
    return env


def _copy_sources(dockerfile: str) -> list[str]:
    sources = []
    for word, rest in _instructions(dockerfile):
        if word != "COPY":
            continue
        args = rest.split()
        if any(a.startswith("--from") for a in args):
            continue
        paths = [a for a in args if not a.startswith("--")]
        sources.extend(paths[:-1])
    return sources


def _let_through(dockerignore: str, path: str) -> bool:
    """Whether a whitelist-style ignore file (`*` then `!path`) lets `path` into the context."""
    allowed = [
        line[1:].rstrip("/")
        for line in (DOCKER / dockerignore).read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    path = path.rstrip("/")
    return any(path == a or path.startswith(a + "/") for a in allowed)


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "nginx.Dockerfile"])
def test_dockerfile_paths_exist(dockerfile: str) -> None:
    sources = _copy_sources(dockerfile)
    assert sources, "no COPY found"
    for source in sources:
        assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: missing"
        assert _let_through(f"{dockerfile}.dockerignore", source), (
            f"{dockerfile}: {source} is excluded by {dockerfile}.dockerignore"
        )


def test_services_dockerfile() -> None:
    instructions = _instructions("Dockerfile")
    words = [w for w, _ in instructions]
    assert words.count("FROM") == 2  # builder + runtime
    froms = [rest for w, rest in instructions if w == "FROM"]
    assert froms[1].startswith("${PYTHON_IMAGE}")
    assert "ARG" in words and any("python:3.11-slim" in r for w, r in instructions if w == "ARG")
    last_user = [rest for w, rest in instructions if w == "USER"][-1]
    assert not last_user.startswith(("root", "0")), "the services must not run as root"
    assert dict(instructions)["ENTRYPOINT"] == '["hmr"]'
    health = dict(instructions)["HEALTHCHECK"]
    assert "/opt/hmr/healthcheck.py" in health
    # the runtime stage installs from the builder's wheels only, never from an index
    runtime = " ".join(r for w, r in instructions[words.index("FROM", 1) :] if w == "RUN")
    assert "--no-index" in runtime and "from=builder" in runtime
    assert "apt-get" not in runtime and "gcc" not in runtime


# --- nginx configuration ------------------------------------------------------------------------


def _nginx() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        pytest.skip("nginx is not installed (deploy/ensure-tools.sh nginx)")
    return found


def _nginx_supports_resolve(nginx: str) -> bool:
    """`server ... resolve` in open-source nginx: 1.27.3 and later."""
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr + done.stdout)
    return match is not None and tuple(int(x) for x in match.groups()) >= (1, 27, 3)


def test_entrypoint_and_image_know_every_placeholder() -> None:
    match = re.search(r'^VARS="([^"]+)"', ENTRYPOINT.read_text(encoding="utf-8"), re.M)
    assert match is not None
    assert tuple(match.group(1).split()) == render_nginx.VARIABLES
    image_env = _dockerfile_env("nginx.Dockerfile")
    assert set(render_nginx.VARIABLES) <= set(image_env), "the image must default every variable"


def test_renderer_derives_from_the_local_template() -> None:
    """The container config keeps the routing table of hmr.conf.template, line for line."""
    source = render_nginx.TEMPLATE.read_text(encoding="utf-8")
    rendered = render_nginx.render(source, resolve=True)
    assert len(re.findall(r" resolve[ ;]", rendered)) == 3
    assert rendered.count("zone upstream_") == 3
    assert "resolver ${HMR_RESOLVER} valid=${HMR_RESOLVER_VALID}" in rendered
    # (the static category locations include ${RUN_DIR}/live.conf: the container's run dir)
    locations = [
        line.replace("${RUN_DIR}", "${HMR_NGINX_RUN_DIR}")
        for line in re.findall(r"^\s*location .*$", source, re.M)
    ]
    assert locations and locations == re.findall(r"^\s*location .*$", rendered, re.M)
    plain = render_nginx.render(source, resolve=False)
    assert not re.findall(r" resolve[ ;]", plain) and "resolver " not in plain


def _values(tmp_path: Path, **upstreams: str) -> dict[str, str]:
    (tmp_path / "openapi").mkdir(exist_ok=True)
    openapi = tmp_path / "openapi" / "openapi.json"
    openapi.write_text('{"openapi": "3.0.2", "paths": {}}\n')
    values = {
        "HMR_NGINX_USER": pwd.getpwuid(os.geteuid()).pw_name,
        "HMR_NGINX_RUN_DIR": str(tmp_path / "run"),
        "HMR_LISTEN": f"127.0.0.1:{free_port()}",
        "HMR_ACCESS_LOG": "off",
        "HMR_ERROR_LOG": str(tmp_path / "error.log"),
        "HMR_OPENAPI_FILE": str(openapi),
        "HMR_READ_UPSTREAM": f"127.0.0.1:{free_port()}",
        "HMR_WRITE_UPSTREAM": f"127.0.0.1:{free_port()}",
        "HMR_STATS_UPSTREAM": f"127.0.0.1:{free_port()}",
        "HMR_SNAPSHOTS_DIR": str(tmp_path / "snapshots"),
        "HMR_CACHE_MAX_AGE": "60",
        "HMR_RESOLVER": "127.0.0.1",
        "HMR_RESOLVER_VALID": "10s",
    }
    values.update(upstreams)
    return values


def _entrypoint_env(tmp_path: Path, nginx: str, values: dict[str, str]) -> dict[str, str]:
    """Render the container template the way the image does, into tmp_path."""
    template = tmp_path / "nginx.conf.template"
    text = render_nginx.render(
        render_nginx.TEMPLATE.read_text(encoding="utf-8"), resolve=_nginx_supports_resolve(nginx)
    )
    template.write_text(text)
    env = clean_env(**values)
    env["HMR_NGINX_TEMPLATE"] = str(template)
    env["HMR_NGINX_CONF"] = str(tmp_path / "nginx.conf")
    env["HMR_LIVE_FOLLOW"] = str(LIVE_FOLLOW)  # the image's /usr/local/bin/hmr-live-follow
    env["PATH"] = f"{Path(nginx).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


@pytest.mark.subprocess
def test_container_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx = _nginx()
    values = _values(tmp_path)
    if shutil.which("envsubst") is None:
        # no gettext here: substitute in Python (the image has envsubst) and check directly
        text = render_nginx.substitute(
            render_nginx.render(
                render_nginx.TEMPLATE.read_text(encoding="utf-8"),
                resolve=_nginx_supports_resolve(nginx),
            ),
            values,
        )
        conf = tmp_path / "nginx.conf"
        conf.write_text(text)
        (tmp_path / "run").mkdir()
        live = tmp_path / "run" / "live.conf"
        subprocess.run(
            ["sh", str(LIVE_FOLLOW), "once", values["HMR_SNAPSHOTS_DIR"], str(live)], check=True
        )
        done = subprocess.run(
            [nginx, "-t", "-e", values["HMR_ERROR_LOG"], "-c", str(conf), "-p", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    else:
        env = _entrypoint_env(tmp_path, nginx, values)
        done = subprocess.run(
            ["sh", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 0, done.stderr
    conf_text = (tmp_path / "nginx.conf").read_text()
    assert "${" not in conf_text
    assert values["HMR_READ_UPSTREAM"] in conf_text


@pytest.mark.subprocess
def test_entrypoint_refuses_an_unset_variable(tmp_path: Path) -> None:
    if shutil.which("envsubst") is None:
        pytest.skip("envsubst (gettext) is not installed")
    nginx = _nginx()
    env = _entrypoint_env(tmp_path, nginx, _values(tmp_path))
    env["HMR_READ_UPSTREAM"] = ""
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 64 and "HMR_READ_UPSTREAM" in done.stderr


@pytest.mark.e2e
@pytest.mark.subprocess
def test_container_nginx_serves(tmp_path: Path) -> None:
    """The rendered config runs: the OpenAPI file, the closed internal paths, the 503 envelope."""
    if shutil.which("envsubst") is None:
        pytest.skip("envsubst (gettext) is not installed")
    nginx = _nginx()
    values = _values(tmp_path)
    base = f"http://{values['HMR_LISTEN']}"
    env = _entrypoint_env(tmp_path, nginx, values)
    with running(
        ["sh", str(ENTRYPOINT), "nginx"],
        ready_url=f"{base}/api/openapi.json",
        log=tmp_path / "entrypoint.log",
        within=15.0,
        env=env,
        new_session=True,
    ) as proc:
        follower = _follower_of(proc.pid)
        status, body = http_get(f"{base}/api/openapi.json")
        assert status == 200 and b'"openapi"' in body
        status, _ = http_get(f"{base}/api/internal/snapshots/current")
        assert status == 404  # replicas pull from the writer directly, never through nginx
        status, body = http_get(f"{base}/api/heartbeat")  # nothing listens on the stats port
        assert status == 503 and b'"detail"' in body
        # the static path: no snapshot yet, so the read replicas (none here) answer ...
        category = f"{base}/api/model_references/v2/blip"
        status, body = http_get(category)
        assert status == 503 and b'"detail"' in body
        # ... and the entrypoint's follower brings a publish to nginx within a second
        snapshots = Path(values["HMR_SNAPSHOTS_DIR"])
        (snapshots / "000007-abcdef" / "v2").mkdir(parents=True)
        (snapshots / "000007-abcdef" / "v2" / "blip.json").write_text("[7]")
        (snapshots / "CURRENT").write_text("000007-abcdef\n")
        published = time.monotonic()
        while (status, body) != (200, b"[7]"):
            assert time.monotonic() - published < 1.0, f"nginx still answers {status}"
            time.sleep(0.02)
            status, body = http_get(category)
    # nginx is gone (stopped and reaped): its follower stops by itself
    deadline = time.monotonic() + 5.0
    while Path(f"/proc/{follower}").exists():
        assert time.monotonic() < deadline, "the follower outlived nginx"
        time.sleep(0.05)


def _follower_of(nginx: int) -> int:
    """The pid of the live-follow.sh that the entrypoint left beside nginx (its child)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == nginx and any(a.endswith(b"live-follow.sh") for a in args):
            return int(entry.name)
    raise AssertionError("no live-follow.sh beside nginx")


# --- health check -------------------------------------------------------------------------------


@pytest.fixture
def probe_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == "/readyz" else 503
            body = b'{"status": "ready"}' if status == 200 else b'{"status": "not ready"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with threaded_http_server(Handler) as port:
        yield port


def test_healthcheck_exit_codes(probe_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    port = str(probe_server)
    assert healthcheck.main(["/readyz", port]) == 0
    assert healthcheck.main(["/notready", port]) == 1
    assert healthcheck.main(["/readyz", str(free_port())]) == 1  # nothing listens
    monkeypatch.setenv("HMR_PORT", port)
    monkeypatch.delenv("HMR_HEALTH_PORT", raising=False)
    monkeypatch.delenv("HMR_HEALTH_PATH", raising=False)
    assert healthcheck.main([]) == 0  # /readyz on HMR_PORT
    monkeypatch.setenv("HMR_HEALTH_PATH", "/notready")
    assert healthcheck.main([]) == 1


def test_healthcheck_target() -> None:
    assert healthcheck.target([], {"HMR_PORT": "19803"}) == ("/readyz", 19803)
    assert healthcheck.target(["/livez"], {"HMR_HEALTH_PORT": "1", "HMR_PORT": "2"}) == (
        "/livez",
        1,
    )
    assert healthcheck.target(["/x", "7"], {"HMR_PORT": "2"}) == ("/x", 7)
