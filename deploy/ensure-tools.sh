#!/bin/sh
# Make sure the given command-line tools are installed, installing their Debian
# packages with apt-get only when a binary is missing.  Idempotent: when every
# tool is already there it does nothing (and needs no network, no root).
#
#   deploy/ensure-tools.sh nginx wrk
#
# Each argument is a tool name; the binary and package it maps to are listed
# in tool_binary/tool_package below (unknown tools: binary = package = name).
# Packages are installed without starting their services: a policy-rc.d that
# refuses every start is put in place for the duration of the install (unless
# one already exists), and if a service was started anyway (nginx on port 80)
# it is stopped and disabled again.
set -eu

die() {
    echo "ensure-tools: error: $*" >&2
    exit 1
}

tool_binary() {
    case "$1" in
        nginx) echo nginx ;;
        wrk) echo wrk ;;
        *) echo "$1" ;;
    esac
}

tool_package() {
    case "$1" in
        nginx) echo nginx ;;   # nginx-light is gone from bookworm; "nginx" is the core package
        wrk) echo wrk ;;
        *) echo "$1" ;;
    esac
}

# sbin directories are not always on PATH for non-login shells.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

[ "$#" -gt 0 ] || die "usage: $0 TOOL [TOOL...]"

missing_packages=""
missing_tools=""
for tool in "$@"; do
    if command -v "$(tool_binary "$tool")" >/dev/null 2>&1; then
        continue
    fi
    missing_tools="$missing_tools $tool"
    missing_packages="$missing_packages $(tool_package "$tool")"
done

if [ -z "$missing_packages" ]; then
    echo "ensure-tools: all present:$(printf ' %s' "$@")"
    exit 0
fi

echo "ensure-tools: missing:$missing_tools; installing Debian packages:$missing_packages"

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install$missing_packages by hand"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        die "not root and no sudo; install$missing_packages by hand"
    fi
else
    SUDO=""
fi

# Keep services from starting during the install (invoke-rc.d honours policy-rc.d).
POLICY=/usr/sbin/policy-rc.d
created_policy=""
cleanup() {
    if [ -n "$created_policy" ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, written by deploy/ensure-tools.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    created_policy=yes
fi

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q \
    || die "apt-get update failed"
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing_packages \
    || die "apt-get install$missing_packages failed"

# If the nginx package started the system service anyway, stop and disable it:
# the benchmarks run their own nginx on a loopback port.
case " $missing_packages " in
    *" nginx "*)
        if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
            echo "ensure-tools: stopping the system nginx service started by the install"
            $SUDO service nginx stop >/dev/null 2>&1 || $SUDO nginx -s stop 2>/dev/null || true
        fi
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            $SUDO systemctl disable nginx >/dev/null 2>&1 || true
        elif command -v update-rc.d >/dev/null 2>&1; then
            $SUDO update-rc.d nginx disable >/dev/null 2>&1 || true
        fi
        ;;
esac

for tool in $missing_tools; do
    command -v "$(tool_binary "$tool")" >/dev/null 2>&1 \
        || die "$tool still missing after installing $(tool_package "$tool")"
done
echo "ensure-tools: installed:$missing_tools"
