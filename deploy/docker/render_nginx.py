"""Derive the container nginx template from deploy/nginx/hmr.conf.template (stdlib only).

The routing table lives in one place, hmr.conf.template (rendered for `make up` by
deploy/local.py). This script turns it into the template the nginx image renders at start
(deploy/docker/nginx-entrypoint.sh): every deployment-specific value becomes a `${HMR_...}`
environment placeholder, logs go to stdout/stderr, and the upstreams resolve their compose
service names through Docker's DNS at run time:

- every upstream gets a shared-memory `zone`, every `server` the `resolve` parameter, and the
  http block a `resolver` (Docker's embedded DNS, 127.0.0.11). nginx then re-resolves
  `read_api` every HMR_RESOLVER_VALID seconds, so `docker compose up --scale read_api=N`
  (and a replica that is recreated with a new address) is picked up without a reload.
  This needs nginx >= 1.27.3 (open-source `resolve`); nginx:stable-alpine has it.
- with --no-resolve (older nginx) names are resolved once, when nginx starts: after scaling
  the read replicas, `docker compose restart nginx` (or `nginx -s reload`) picks them up.

    python deploy/docker/render_nginx.py [--no-resolve] [--out FILE]

Each anchor below must occur exactly once in hmr.conf.template: if that template changes shape,
rendering fails loudly (and tests/test_docker_files.py with it) instead of drifting silently.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "nginx" / "hmr.conf.template"

#: the environment variables the rendered template uses; nginx-entrypoint.sh substitutes exactly
#: these (its VARS list must match; the test checks) and the nginx image sets their defaults
VARIABLES = (
    "HMR_NGINX_USER",  # user the worker processes run as (the master runs as root)
    "HMR_NGINX_RUN_DIR",  # pid file, temp files and the micro-cache (a tmpfs in compose)
    "HMR_LISTEN",  # listen address/port inside the container
    "HMR_ACCESS_LOG",  # access log path, or "off"
    "HMR_ERROR_LOG",  # error log path
    "HMR_OPENAPI_FILE",  # the deployment's OpenAPI document (written by the `openapi` one-shot)
    "HMR_READ_UPSTREAM",  # host:port of the read replicas (one DNS name for all of them)
    "HMR_WRITE_UPSTREAM",  # host:port of the write queue
    "HMR_STATS_UPSTREAM",  # host:port of the stats service
    "HMR_SNAPSHOTS_DIR",  # the data volume's snapshots dir (the follower writes the live one's
    # path into HMR_NGINX_RUN_DIR/live.conf, which the template includes: not a placeholder)
    "HMR_CACHE_MAX_AGE",  # Cache-Control max-age of those files, as the read replicas send
    # (written into live.conf by the follower too: not a placeholder)
    "HMR_RESOLVER",  # DNS server for run-time re-resolution (Docker: 127.0.0.11)
    "HMR_RESOLVER_VALID",  # how long a DNS answer is used, e.g. 10s
)

RESOLVE_ONLY = ("HMR_RESOLVER", "HMR_RESOLVER_VALID")
#: required by the entrypoint but not in the template: deploy/nginx/live-follow.sh uses them
ENTRYPOINT_ONLY = ("HMR_SNAPSHOTS_DIR", "HMR_CACHE_MAX_AGE")


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise SystemExit(
            f"render_nginx: expected {old!r} once in {TEMPLATE.name}, found it {count} times; "
            "update deploy/docker/render_nginx.py to the template's new shape"
        )
    return text.replace(old, new)


def render(template: str, resolve: bool = True) -> str:
    """The container template: hmr.conf.template with `${HMR_...}` placeholders."""
    text = template
    # logs and the OpenAPI file live outside the run dir in a container
    text = _replace_once(
        text, "error_log ${RUN_DIR}/nginx-error.log warn;", "error_log ${HMR_ERROR_LOG} warn;"
    )
    text = _replace_once(text, "alias ${RUN_DIR}/openapi.json;", "alias ${HMR_OPENAPI_FILE};")
    suffix = " resolve" if resolve else ""
    values = {
        "USER": "user ${HMR_NGINX_USER};",
        "RUN_DIR": "${HMR_NGINX_RUN_DIR}",
        "ACCESS_LOG": "${HMR_ACCESS_LOG}",
        "LISTEN": "${HMR_LISTEN}",
        # one DNS name for every read replica: Docker answers with all of their addresses
        "READ_SERVERS": "        server ${HMR_READ_UPSTREAM}" + suffix + ";",
        "WRITE_SERVER": "${HMR_WRITE_UPSTREAM}" + suffix,
        "STATS_SERVER": "${HMR_STATS_UPSTREAM}" + suffix,
    }
    for key, value in values.items():
        if "${" + key + "}" not in text:
            raise SystemExit(f"render_nginx: placeholder ${{{key}}} is gone from {TEMPLATE.name}")
        text = text.replace("${" + key + "}", value)
    if resolve:
        # `resolve` needs the upstream in shared memory and a resolver
        text, upstreams = re.subn(
            r"^([ \t]*)upstream (\w+) \{\n",
            lambda m: f"{m.group(0)}{m.group(1)}    zone upstream_{m.group(2)} 64k;\n",
            text,
            flags=re.M,
        )
        if upstreams != 3:
            raise SystemExit(f"render_nginx: expected 3 upstream blocks, found {upstreams}")
        text = _replace_once(
            text,
            "\nhttp {\n",
            "\nhttp {\n"
            "    # Docker's DNS: upstream names are re-resolved while nginx runs (scaling, restarts)\n"
            "    resolver ${HMR_RESOLVER} valid=${HMR_RESOLVER_VALID} ipv6=off;\n"
            "    resolver_timeout 2s;\n",
        )
    header = (
        "# GENERATED by deploy/docker/render_nginx.py from deploy/nginx/hmr.conf.template\n"
        "# (do not edit: change the routing there). The HMR_* placeholders are filled from the\n"
        "# environment by deploy/docker/nginx-entrypoint.sh when the container starts.\n"
    )
    text = header + text
    left = set(re.findall(r"\$\{(\w+)\}", text))
    expected = set(VARIABLES) - set(ENTRYPOINT_ONLY)
    if not resolve:
        expected -= set(RESOLVE_ONLY)
    if left != expected:
        raise SystemExit(
            f"render_nginx: placeholders {sorted(left)} differ from the expected {sorted(expected)}"
        )
    return text


def substitute(text: str, env: dict[str, str]) -> str:
    """What envsubst does with the entrypoint's variable list (for tests and local checks)."""
    for name in VARIABLES:
        text = text.replace("${" + name + "}", env[name])
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-resolve",
        action="store_true",
        help="resolve upstream names only at start (nginx older than 1.27.3)",
    )
    parser.add_argument("--out", default="-", help="file to write, - for standard output")
    args = parser.parse_args(argv)
    text = render(TEMPLATE.read_text(encoding="utf-8"), resolve=not args.no_resolve)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
