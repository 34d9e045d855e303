#!/bin/sh
# Entrypoint of the nginx image (deploy/docker/nginx.Dockerfile): render the nginx config from
# the environment, check it with `nginx -t`, then run the command (default: nginx).
#
# The template is deploy/nginx/hmr.conf.template turned into ${HMR_...} placeholders by
# deploy/docker/render_nginx.py at build time. Only the variables in VARS are substituted
# (nginx's own $variables are left alone); each must be set and non-empty (the image sets
# defaults, compose.yaml the upstream names).
#
#   HMR_NGINX_TEMPLATE  template to render (default /etc/nginx/hmr/nginx.conf.template)
#   HMR_NGINX_CONF      where the rendered config goes (default /etc/nginx/nginx.conf)
#   HMR_LIVE_FOLLOW     the static path's follower (default /usr/local/bin/hmr-live-follow, a
#                       copy of deploy/nginx/live-follow.sh)
#
# The static path: before `nginx -t`, the follower writes HMR_NGINX_RUN_DIR/live.conf (the body
# of the category locations: the live snapshot's directory and id, HMR_CACHE_MAX_AGE). When the
# command is nginx, the follower then keeps following HMR_SNAPSHOTS_DIR/CURRENT in the
# background, rewriting live.conf and reloading nginx gracefully on every publish.
set -eu

VARS="HMR_NGINX_USER HMR_NGINX_RUN_DIR HMR_LISTEN HMR_ACCESS_LOG HMR_ERROR_LOG HMR_OPENAPI_FILE HMR_READ_UPSTREAM HMR_WRITE_UPSTREAM HMR_STATS_UPSTREAM HMR_SNAPSHOTS_DIR HMR_CACHE_MAX_AGE HMR_RESOLVER HMR_RESOLVER_VALID"

: "${HMR_NGINX_TEMPLATE:=/etc/nginx/hmr/nginx.conf.template}"
: "${HMR_NGINX_CONF:=/etc/nginx/nginx.conf}"
: "${HMR_LIVE_FOLLOW:=/usr/local/bin/hmr-live-follow}"

shell_format=""
for name in $VARS; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        echo "hmr-nginx: $name is not set; see deploy/docker/README.md" >&2
        exit 64
    fi
    shell_format="$shell_format \${$name}"
done

mkdir -p "$HMR_NGINX_RUN_DIR"
envsubst "$shell_format" < "$HMR_NGINX_TEMPLATE" > "$HMR_NGINX_CONF.tmp"
mv "$HMR_NGINX_CONF.tmp" "$HMR_NGINX_CONF"
echo "hmr-nginx: rendered $HMR_NGINX_CONF (reads -> $HMR_READ_UPSTREAM, writes -> $HMR_WRITE_UPSTREAM, stats -> $HMR_STATS_UPSTREAM)" >&2

# the live snapshot for the static path (no snapshot yet: category reads go to the replicas)
live_include="$HMR_NGINX_RUN_DIR/live.conf"
export HMR_NGINX_ERROR_LOG="$HMR_ERROR_LOG"
sh "$HMR_LIVE_FOLLOW" once "$HMR_SNAPSHOTS_DIR" "$live_include"

# a bad value (an unparsable upstream, a missing directory) fails here, with nginx's message
nginx -t -q -e "$HMR_ERROR_LOG" -c "$HMR_NGINX_CONF"

if [ "${1:-}" = "nginx" ]; then
    shift
    # this shell's pid is nginx's after the exec: the follower stops when nginx does
    HMR_LIVE_WATCH_PID=$$ sh "$HMR_LIVE_FOLLOW" follow "$HMR_SNAPSHOTS_DIR" "$live_include" \
        "$HMR_NGINX_CONF" &
    exec nginx -e "$HMR_ERROR_LOG" -c "$HMR_NGINX_CONF" "$@"
fi
exec "$@"
