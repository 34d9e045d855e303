"""Container health check of the services image: GET a path on the service's own port.

    python /opt/hmr/healthcheck.py [PATH] [PORT]

Healthy (exit 0) when the answer is 200 within HMR_HEALTH_TIMEOUT seconds (default 3);
unhealthy (exit 1) otherwise, with one line on stderr saying why (`docker inspect` shows it).

PATH: the argument, else HMR_HEALTH_PATH, else /readyz (every service answers 200 there only
when it can serve: a snapshot is loaded, the store is open).
PORT: the argument, else HMR_HEALTH_PORT, else HMR_PORT, else the default port of the `hmr`
command the container runs (read-api 19801, write-queue 19802, stats 19803, all 19800).
Standard library only; the address is always 127.0.0.1 (the service listens on 0.0.0.0).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = {"read-api": 19801, "write-queue": 19802, "stats": 19803, "all": 19800}


def _command_port() -> int:
    """Default port of the hmr command running as pid 1 (the image's ENTRYPOINT is `hmr`)."""
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            args = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        args = []
    for i, arg in enumerate(args):
        if arg == "--port" and i + 1 < len(args) and args[i + 1].isdigit():
            return int(args[i + 1])
        if arg.startswith("--port=") and arg[7:].isdigit():
            return int(arg[7:])
    for arg in args:
        if arg in DEFAULT_PORTS:
            return DEFAULT_PORTS[arg]
    return DEFAULT_PORTS["read-api"]


def target(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    path = argv[0] if argv else env.get("HMR_HEALTH_PATH") or "/readyz"
    if len(argv) > 1:
        port = int(argv[1])
    elif env.get("HMR_HEALTH_PORT") or env.get("HMR_PORT"):
        port = int(env.get("HMR_HEALTH_PORT") or env["HMR_PORT"])
    else:
        port = _command_port()
    return path, port


def check(path: str, port: int, timeout: float) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}{path}"
    # no proxy: an HTTP_PROXY in the container's environment must not see this request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            resp.read(65536)
            status = resp.status
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode(errors="replace").strip()
        return False, f"{url}: {exc.code} {body}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"
    return status == 200, f"{url}: {status}"


def main(argv: list[str] | None = None) -> int:
    env = dict(os.environ)
    path, port = target(sys.argv[1:] if argv is None else argv, env)
    ok, detail = check(path, port, float(env.get("HMR_HEALTH_TIMEOUT") or 3))
    print(("healthy: " if ok else "unhealthy: ") + detail, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
