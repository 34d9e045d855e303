#!/bin/sh
# The static path's follower: keeps nginx serving whole v2 categories from the snapshot that
# snapshots/CURRENT names, without resolving a symlink on every request.
#
# It writes an nginx include, the body of every static category location of hmr.conf.template,
# naming the live snapshot's directory and id as literals:
#
#     # live snapshot: 000042-9f3c1a
#     root "/srv/hmr/snapshots/000042-9f3c1a";
#     error_page 404 405 = @api;
#     open_file_cache max=128 inactive=60s;
#     etag on; gzip_static on; gzip_vary on;
#     add_header Cache-Control "public, max-age=60";
#     add_header X-Snapshot-Id 42;
#     add_header X-Cache STATIC always;
#
# and, in `follow` mode, rewrites it whenever CURRENT moves, checks the whole config with
# `nginx -t`, and reloads nginx gracefully (`nginx -s reload`: old workers finish what they are
# sending from the old snapshot's files, new ones serve the new snapshot). A config that fails
# `nginx -t` is never left in place: the last good include is put back and nginx keeps serving.
# A missing, unreadable or malformed CURRENT, or one naming a directory that is not there, is
# logged once and changes nothing. With no valid snapshot at all (nothing published yet) the
# include points at a directory that does not exist, so every category read falls back to the
# read replicas (try_files ... @api).
#
#   live-follow.sh once   SNAPSHOTS_DIR INCLUDE              write INCLUDE for CURRENT, then exit
#   live-follow.sh follow SNAPSHOTS_DIR INCLUDE NGINX_CONF   ...then follow CURRENT until killed
#
# Environment:
#   HMR_CACHE_MAX_AGE       Cache-Control max-age of the files, as the read replicas send
#                           (default 60)
#   HMR_LIVE_POLL_INTERVAL  seconds between looks at CURRENT (default 0.2; a publish reaches
#                           nginx within about this plus a reload, well under a second)
#   HMR_NGINX               the nginx binary (default: nginx on PATH)
#   HMR_NGINX_ERROR_LOG     nginx's -e for `nginx -t` and `nginx -s reload` (default: stderr)
#   HMR_LIVE_RETRY_LOOKS    looks at CURRENT before a snapshot `nginx -t` refused is tried again
#                           (default 50, about 10 s)
#   HMR_LIVE_WATCH_PID      nginx's master: the follower stops when that process is gone
#                           (unset: it runs until it is killed)
#
# POSIX sh only (the nginx image has no python): deploy/local.py runs it for `make up`, the nginx
# image's entrypoint (deploy/docker/nginx-entrypoint.sh) in the container.
set -u

usage() {
    echo "usage: live-follow.sh once SNAPSHOTS_DIR INCLUDE | follow SNAPSHOTS_DIR INCLUDE NGINX_CONF" >&2
    exit 64
}

say() { echo "hmr-live-follow: $*" >&2; }

[ $# -ge 3 ] || usage
mode=$1
snapshots=$2
include=$3
case $mode in
    once) [ $# -eq 3 ] || usage ;;
    follow) [ $# -eq 4 ] || usage; conf=$4 ;;
    *) usage ;;
esac
case $snapshots in
    *'"'* | *'\'* | *'$'* | *';'* | *'{'* | *'}'*)
        say "refusing snapshots directory $snapshots: it cannot be written into an nginx config"
        exit 64 ;;
esac
max_age=${HMR_CACHE_MAX_AGE:-60}
case $max_age in
    "" | *[!0-9]*) say "HMR_CACHE_MAX_AGE must be a number of seconds, not $max_age"; exit 64 ;;
esac
interval=${HMR_LIVE_POLL_INTERVAL:-0.2}
nginx=${HMR_NGINX:-nginx}
errlog=${HMR_NGINX_ERROR_LOG:-/dev/stderr}

# name: the snapshot CURRENT names, when it is a well-formed name of a directory that exists,
# else ""; raw: what CURRENT says ("" when it is missing)
live_name() {
    name=""
    IFS= read -r name 2> /dev/null < "$snapshots/CURRENT" || [ -n "$name" ] || { raw=""; return 0; }
    raw=$name
    case $name in
        "" | *[!0-9a-f-]* | *-*-* | -* | *-) name="" ;;
    esac
    num=${name%%-*}
    hex=${name#*-}
    case $num in "" | *[!0-9]* | ?|??|???|????|?????) name="" ;; esac
    case $hex in [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;; *) name="" ;; esac
    [ -n "$name" ] && [ -d "$snapshots/$name/v2" ] || name=""
    return 0
}

# write the include for snapshot $1 ("" = none) to $2: the body of every static category
# location of hmr.conf.template (its `try_files /v2/<category>.json @api` is there)
render() {
    {
        echo "# live snapshot: ${1:-none}"
        echo "# written by deploy/nginx/live-follow.sh; nginx is reloaded after every change"
        if [ -n "$1" ]; then
            num=${1%%-*}
            id=${num#"${num%%[!0]*}"}
            echo "root \"$snapshots/$1\";"
        else
            echo "# no valid snapshot yet: nothing is there, so category reads go to the read replicas"
            echo "root \"$snapshots/.no-live-snapshot\";"
        fi
        echo "# the static handler's 405 is a write; a 404 a file pruned under an old worker"
        echo "error_page 404 405 = @api;"
        echo "# a snapshot's files never change under their path: keep them open (no open, stat"
        echo "# and close per request); a missing file is not remembered, so it still falls back"
        echo "open_file_cache max=128 inactive=60s;"
        echo "etag on;"
        echo "gzip_static on;"
        echo "gzip_vary on;"
        echo "add_header Cache-Control \"public, max-age=$max_age\";"
        [ -z "$1" ] || echo "add_header X-Snapshot-Id ${id:-0};"
        echo "add_header X-Cache STATIC always;"
    } > "$2"
}

# the snapshot the include on disk names ("none", or "" when there is no include)
installed() {
    first=""
    IFS= read -r first 2> /dev/null < "$include" || true
    case $first in
        "# live snapshot: "*) echo "${first#"# live snapshot: "}" ;;
        *) echo "" ;;
    esac
}

live_name
if [ "$mode" = once ]; then
    render "$name" "$include.tmp" && mv -f "$include.tmp" "$include" || exit 1
    say "${name:-no valid snapshot in $snapshots/CURRENT}: wrote $include"
    exit 0
fi

# follow: install every new name, check, reload; never leave a config that fails `nginx -t`
applied=$(installed)
failed=""
warned=""
reload_pending=""
failed_looks=0
retry_looks=${HMR_LIVE_RETRY_LOOKS:-50}
watch=${HMR_LIVE_WATCH_PID:-}
while :; do
    if [ -n "$watch" ] && ! kill -0 "$watch" 2> /dev/null; then
        say "nginx (pid $watch) is gone: stopping"
        exit 0
    fi
    live_name
    if [ -n "$reload_pending" ]; then
        # the include is in place but nginx did not take it yet (not running, or starting)
        if "$nginx" -s reload -e "$errlog" -c "$conf" 2> /dev/null; then
            say "nginx serves snapshot $applied"
            reload_pending=""
        fi
    fi
    if [ -z "$name" ]; then
        # said once for each bad content of CURRENT
        if [ "$warned" != "x$raw" ]; then
            if [ -z "$raw" ]; then
                say "$snapshots/CURRENT is missing or empty; nginx keeps serving ${applied:-what it has}"
            else
                say "$snapshots/CURRENT ($raw) names no snapshot directory; nginx keeps serving ${applied:-what it has}"
            fi
            warned="x$raw"
        fi
    elif [ "$name" != "$applied" ] && [ "$name" != "$failed" ]; then
        warned=""
        failed_looks=0
        if render "$name" "$include.tmp"; then
            [ -f "$include" ] && cp -p "$include" "$include.good"
            mv -f "$include.tmp" "$include"
            if out=$("$nginx" -t -q -e "$errlog" -c "$conf" 2>&1); then
                if "$nginx" -s reload -e "$errlog" -c "$conf"; then
                    say "nginx serves snapshot $name"
                    reload_pending=""
                else
                    say "nginx -s reload failed (is nginx running?); $include names $name: retrying"
                    reload_pending=1
                fi
                applied=$name
                failed=""
            else
                [ -f "$include.good" ] && mv -f "$include.good" "$include"
                say "nginx -t refused the config for snapshot $name; kept ${applied:-the last include}: $out"
                failed=$name
            fi
        else
            say "could not write $include.tmp"
        fi
    else
        warned=""
        # a refused snapshot is tried again now and then (an operator may have fixed nginx)
        if [ -n "$failed" ] && [ "$name" = "$failed" ]; then
            failed_looks=$((failed_looks + 1))
            [ "$failed_looks" -lt "$retry_looks" ] || failed=""
        fi
    fi
    # a sleep without fractions (a minimal busybox) must not turn this into a busy loop
    sleep "$interval" 2> /dev/null || sleep 1
done
