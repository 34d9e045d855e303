"""The static path's follower (deploy/nginx/live-follow.sh) with a real nginx started the way
`make up` starts it (deploy/local.py renders the config, writes live.conf, starts the follower):
nginx follows snapshots/CURRENT within a second, falls back to the read replicas while there is no
snapshot, and a bad CURRENT or a config that fails `nginx -t` never leaves it broken."""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from horde_model_records import ALL_CATEGORIES
from tests.helpers import clean_env, free_port, running

REPO = Path(__file__).resolve().parents[1]
PATH = "/api/model_references/v2/blip"


def _local() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_local", REPO / "deploy" / "local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local = _local()


class Served:
    """nginx (the `make up` config, no services behind it) and its follower on one data dir."""

    def __init__(self, data_dir: Path, port: int, follower: subprocess.Popen[bytes]) -> None:
        self.snapshots = data_dir / "snapshots"
        self.run_dir = data_dir / "run"
        self.port = port
        self.follower = follower

    def publish(self, number: int, *, current: bool = True) -> str:
        """A snapshot directory with a v2 file saying `number`, made live by renaming CURRENT
        over (as shared/snapshot.py does)."""
        name = f"{number:06d}-{number:06x}"
        (self.snapshots / name / "v2").mkdir(parents=True)
        (self.snapshots / name / "v2" / "blip.json").write_text(f'{{"snapshot": {number}}}')
        if current:
            self.set_current(name + "\n")
        return name

    def set_current(self, text: str | None) -> None:
        current = self.snapshots / "CURRENT"
        if text is None:
            current.unlink(missing_ok=True)
            return
        tmp = self.snapshots / "CURRENT.tmp"
        tmp.write_text(text)
        os.replace(tmp, current)

    def get(self) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", PATH, headers={"Accept-Encoding": "identity"})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def wait_serving(self, number: int, within: float = 1.0) -> None:
        """nginx answers the file of snapshot `number` within `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            status, headers, body = self.get()
            if status == 200 and body == f'{{"snapshot": {number}}}'.encode():
                assert headers.get("X-Cache") == "STATIC"
                assert headers.get("X-Snapshot-Id") == str(number)
                return
            assert time.monotonic() < deadline, f"nginx still answers {status} {body[:80]!r}"
            time.sleep(0.02)

    def log(self) -> str:
        return (self.run_dir / "live_follow.log").read_text(errors="replace")

    def wait_logged(self, text: str, *, times: int = 1, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while self.log().count(text) < times:
            assert self.follower.poll() is None, f"the follower exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"never logged {text!r}:\n{self.log()}"
            time.sleep(0.02)

    def include_names(self) -> str:
        return (self.run_dir / "live.conf").read_text().splitlines()[0]

    def nginx_t(self) -> subprocess.CompletedProcess[str]:
        conf = self.run_dir / "nginx.conf"
        err = self.run_dir / "nginx-error.log"
        return subprocess.run(
            [local.nginx_binary(), "-t", "-q", "-e", str(err), "-c", str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
        )


def test_every_category_has_an_exact_static_location() -> None:
    """hmr.conf.template serves each category of the records library from the live snapshot's
    file, in an exact location (no regex per request) whose body is the follower's include."""
    template = local.TEMPLATE.read_text()
    found = re.findall(
        r"^\s*location = /api/model_references/v2/(\w+) \{ include \$\{RUN_DIR\}/live\.conf; "
        r"try_files /v2/(\w+)\.json @api; \}$",
        template,
        re.M,
    )
    assert all(a == b for a, b in found)
    assert sorted(a for a, _ in found) == sorted(c.value for c in ALL_CATEGORIES)
    assert "$realpath_root" not in template


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    run_dir = data_dir / "run"
    run_dir.mkdir(parents=True)
    (data_dir / "snapshots").mkdir()
    (run_dir / "openapi.json").write_text('{"openapi": "3.0.2"}\n')
    port = free_port()
    # nothing listens behind nginx: a read that falls back to the replicas gets nginx's 503
    conf = local.render_nginx(run_dir, port, [free_port()], free_port(), free_port())
    env = clean_env()
    local.live_follow("once", data_dir, run_dir, env)
    with running(
        [local.nginx_binary(), "-c", str(conf)],
        ready_url=f"http://127.0.0.1:{port}/api/openapi.json",
        log=run_dir / "nginx.log",
        env=env,
        new_session=True,
    ) as nginx:
        follower = local.live_follow("follow", data_dir, run_dir, env, nginx.pid)
        assert follower is not None
        try:
            yield Served(data_dir, port, follower)
        finally:
            os.killpg(follower.pid, signal.SIGTERM)
            follower.wait(timeout=10)


@pytest.mark.e2e
@pytest.mark.subprocess
def test_no_snapshot_falls_back_then_every_publish_is_served_within_a_second(
    served: Served,
) -> None:
    status, headers, body = served.get()
    assert status == 503 and b'"detail"' in body  # @api: the read replicas (down here)
    assert headers.get("X-Cache") != "STATIC"
    assert served.include_names() == "# live snapshot: none"
    for number in (1, 2, 3):
        served.publish(number)
        served.wait_serving(number)
    assert served.include_names() == f"# live snapshot: {3:06d}-{3:06x}"
    assert served.follower.poll() is None


@pytest.mark.e2e
@pytest.mark.subprocess
def test_a_bad_current_never_breaks_nginx(served: Served) -> None:
    good = served.publish(1)
    served.wait_serving(1)
    served.publish(2, current=False)
    # consecutive texts differ (the follower says each bad content of CURRENT once)
    bad = [
        "not a snapshot name\n",
        "",
        "000009-abcdef\n",  # well formed, but no such directory
        "../000002-000002\n",
        None,  # CURRENT missing
        'x"; return 500; #\n',
    ]
    for text in bad:
        said = (
            f"({text.strip()}) names no snapshot directory"
            if text
            else "CURRENT is missing or empty"
        )
        before = served.log().count(said)
        served.set_current(text)
        served.wait_logged(said, times=before + 1)
        status, headers, _ = served.get()
        assert status == 200 and headers.get("X-Snapshot-Id") == "1", text
        assert served.include_names() == f"# live snapshot: {good}"
        assert served.nginx_t().returncode == 0
    served.set_current(f"{2:06d}-{2:06x}\n")
    served.wait_serving(2)
    assert served.follower.poll() is None


@pytest.mark.e2e
@pytest.mark.subprocess
def test_a_config_nginx_t_refuses_is_never_left_in_place(served: Served) -> None:
    served.publish(1)
    served.wait_serving(1)
    conf = served.run_dir / "nginx.conf"
    text = conf.read_text()
    conf.write_text(text + "\nthis_is_not_a_directive;\n")  # an operator's broken edit
    served.publish(2)
    served.wait_logged(f"nginx -t refused the config for snapshot {2:06d}-{2:06x}")
    assert served.include_names() == f"# live snapshot: {1:06d}-{1:06x}"  # the last good one
    served.wait_serving(1)  # nginx itself was never reloaded
    conf.write_text(text)
    assert served.nginx_t().returncode == 0
    served.publish(3)
    served.wait_serving(3)
    assert served.follower.poll() is None
