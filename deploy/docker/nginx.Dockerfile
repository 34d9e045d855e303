# syntax=docker/dockerfile:1
#
# nginx in front of the services: the routing of deploy/nginx/hmr.conf.template (the same file
# `make up` renders), with upstreams named after the compose services. Build from the
# repository root (compose.yaml does this):
#
#   docker build -f deploy/docker/nginx.Dockerfile -t hmr-nginx .
#
# Build time: deploy/docker/render_nginx.py turns hmr.conf.template into a template of
# ${HMR_...} placeholders (a python stage: the nginx image has no python).
# Start: deploy/docker/nginx-entrypoint.sh fills them from the environment (envsubst, only
# those variables), writes the static path's live.conf (deploy/nginx/live-follow.sh), runs
# `nginx -t`, then nginx, with the follower reloading it on every publish. /api/openapi.json
# is the file the compose `openapi` one-shot writes into a shared volume mounted at
# /usr/share/hmr/openapi.
#
# nginx >= 1.27.3 is needed for run-time re-resolution of the upstream names (`resolve`);
# with an older NGINX_IMAGE build with --build-arg RENDER_ARGS=--no-resolve (names are then
# resolved once at start: restart nginx after scaling the read replicas).

ARG PYTHON_IMAGE=python:3.11-slim
ARG NGINX_IMAGE=nginx:stable-alpine
ARG RENDER_ARGS=""

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS conf
ARG RENDER_ARGS
WORKDIR /src
COPY deploy/nginx/hmr.conf.template deploy/nginx/hmr.conf.template
COPY deploy/docker/render_nginx.py deploy/docker/render_nginx.py
RUN python deploy/docker/render_nginx.py ${RENDER_ARGS} --out /out/nginx.conf.template

# ---------------------------------------------------------------------------------------------
FROM ${NGINX_IMAGE}
ARG RENDER_ARGS

# defaults of every placeholder (compose.yaml sets the upstreams explicitly)
ENV HMR_NGINX_USER=nginx \
    HMR_NGINX_RUN_DIR=/var/cache/hmr \
    HMR_LISTEN=80 \
    HMR_ACCESS_LOG=/dev/stdout \
    HMR_ERROR_LOG=/dev/stderr \
    HMR_OPENAPI_FILE=/usr/share/hmr/openapi/openapi.json \
    HMR_READ_UPSTREAM=read_api:19801 \
    HMR_WRITE_UPSTREAM=write_queue:19802 \
    HMR_STATS_UPSTREAM=stats:19803 \
    HMR_SNAPSHOTS_DIR=/data/snapshots \
    HMR_CACHE_MAX_AGE=60 \
    HMR_RESOLVER=127.0.0.11 \
    HMR_RESOLVER_VALID=10s

COPY --from=conf /out/nginx.conf.template /etc/nginx/hmr/nginx.conf.template
COPY --chmod=0755 deploy/docker/nginx-entrypoint.sh /usr/local/bin/hmr-nginx-entrypoint
COPY --chmod=0755 deploy/nginx/live-follow.sh /usr/local/bin/hmr-live-follow

# the image's sample site is not ours. Render and `nginx -t` the config once at build time: an
# nginx without `resolve` support fails here, not at start. (With `resolve` no name is looked
# up, so this needs no running services; --no-resolve configs are only checked at start.)
RUN rm -f /etc/nginx/conf.d/default.conf \
    && install -d /var/cache/hmr /usr/share/hmr/openapi \
    && command -v envsubst > /dev/null \
    && if [ -z "$RENDER_ARGS" ]; then \
        HMR_NGINX_CONF=/tmp/nginx-check.conf HMR_NGINX_RUN_DIR=/tmp/nginx-check \
            hmr-nginx-entrypoint true \
        && rm -rf /tmp/nginx-check.conf /tmp/nginx-check; \
    fi

EXPOSE 80
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1/api/openapi.json"]

ENTRYPOINT ["/usr/local/bin/hmr-nginx-entrypoint"]
CMD ["nginx"]
