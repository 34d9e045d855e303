"""The write service's part of the OpenAPI document: title, tags, the `apikey` scheme, and the
error texts and path parameters its routes share. Each route's operation is declared beside its
handler (`@docs`); schemas come from the classes in wire.py."""

from __future__ import annotations

from aiohttp import web

from horde_model_records import ALL_CATEGORIES
from shared.openapi import JsonDict, setup_openapi
from shared.wire import MAX_ID

TITLE = "AI-Horde model reference write queue"
API_VERSION = "2.0.0"  # of the HTTP API (the v2 paths), as the read service's
DESCRIPTION = (
    "Writes are proposals that enter a review queue: a requestor proposes a change (202), an "
    "approver approves it in a batch, then applies it; applying publishes a new snapshot that the "
    "reads serve. Every write and queue route needs the `apikey` header, an AI-Horde API key whose "
    "user is on the deployment's requestor or approver list (any valid key may read the queue). "
    'Authenticated answers carry `Cache-Control: no-store`; errors are `{"detail": ...}`.'
)

SECURITY = ("apikey",)
_SECURITY_SCHEMES = {
    "apikey": {
        "type": "apiKey",
        "in": "header",
        "name": "apikey",
        "description": "An AI-Horde API key. Roles come from the deployment's allow-lists: "
        "approvers may also propose; any valid key may read the queue.",
    }
}

_TAGS = {
    "proposals": "Propose creating, updating or deleting a model; nothing reaches the dataset "
    "until an approver applies the change.",
    "pending_queue": "Review and apply proposals, under /v2/pending_queue and /v1/pending_queue "
    "alike (one queue).",
    "audit": "The queue's history rebuilt from the audit log.",
    "roles": "Who the key belongs to and the roles this deployment gives them.",
    "text_toolkit": "text_generation curation: naming schemas, aliases and families are written "
    "directly (published before the answer); common fields and name exceptions are queued.",
    "internal": "Published snapshots over HTTP, for read replicas that cannot share the data "
    "volume. Unauthenticated.",
}

# --- what many routes share ----------------------------------------------------------------------

NO_STORE = {
    "Cache-Control": {
        "description": "Authenticated answers are never cached.",
        "schema": {"type": "string", "example": "no-store"},
    }
}
UNAUTHORIZED = (
    "No `apikey` header (`Not authenticated`), or a key AI-Horde does not know (`Invalid API "
    "key`, also when the role's allow-list is empty)."
)
AUTH_DOWN = "AI-Horde could not tell whose key it is (timed out or unavailable)"
REPLICA = "the deployment is a REPLICA"
NO_QUEUE = "the queue is disabled"


#: every route that reaches the queue: the start loads the dataset in the background
LOADING = "the write service is still loading its dataset just after its start (with `Retry-After`)"


def unavailable(*reasons: str) -> str:
    return "Unavailable: " + "; or ".join((AUTH_DOWN, *reasons, LOADING)) + "."


def authenticated(role: str | None, *reasons: str) -> dict[int, str]:
    """The 401, 403 and 503 answers of a route that needs a key (and `role`)."""
    errors = {401: UNAUTHORIZED, 503: unavailable(*reasons)}
    if role is not None:
        errors[403] = f"A valid key whose user is not on the {role} list."
    return errors


CATEGORY: JsonDict = {
    "schema": {"type": "string", "enum": [c.value for c in ALL_CATEGORIES]},
    "description": "A v2 category; another value is a 422.",
}
MODEL_NAME: JsonDict = {
    "schema": {"type": "string", "example": "stable_diffusion"},
    "description": "The model name; it may contain `/`, literally or as `%2F`.",
}
_ID: JsonDict = {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}
CHANGE_ID: JsonDict = {"schema": _ID, "description": "A change id."}
BATCH_ID: JsonDict = {"schema": _ID, "description": "A batch id."}


def setup_write_docs(app: web.Application) -> None:
    """Serve the document and Swagger UI unless another service of `app` already does (then the
    write routes join its document). No I/O."""
    setup_openapi(
        app,
        TITLE,
        API_VERSION,
        description=DESCRIPTION,
        security_schemes=_SECURITY_SCHEMES,
        tags=_TAGS,
    )
