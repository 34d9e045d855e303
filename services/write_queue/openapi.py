"""The write service's OpenAPI documentation, attached to the route handlers (spec 03).

`setup_write_docs(app)` documents every write route and adds the write components, the `apikey`
security scheme and the write tags to the app's document (shared.openapi). On an app that also
runs the read service (`hmr all`) both services share one document at /api/openapi.json, whichever
set up its docs first giving the title. Plain dicts only: nothing of the docs stack is imported
before the first request of the document.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
from aiohttp import web

from horde_model_records import ALL_CATEGORIES
from shared.openapi import (
    any_category_schema,
    any_record_schema,
    document,
    error_response,
    json_content,
    json_response,
    path_param,
    query_param,
    record_schema_name,
    ref,
    setup_openapi,
    validation_response,
)

from .models import OPERATIONS, STATUSES, Change
from .routes import audit, me, pending_queue, proposals, snapshots

TITLE = "AI-Horde model reference write queue"
API_VERSION = "2.0.0"  # of the HTTP API (the v2 paths), as the read service's
DESCRIPTION = (
    "Writes are proposals that enter a review queue: a requestor proposes a change (202), an "
    "approver approves it in a batch, then applies it; applying publishes a new snapshot that the "
    "reads serve. Every write and queue route needs the `apikey` header, an AI-Horde API key whose "
    "user is on the deployment's requestor or approver list (any valid key may read the queue). "
    'Authenticated answers carry `Cache-Control: no-store`; errors are `{"detail": ...}`.'
)

SECURITY = "apikey"  #: the security scheme's name in components.securitySchemes
_SECURITY_SCHEMES = {
    SECURITY: {
        "type": "apiKey",
        "in": "header",
        "name": "apikey",
        "description": "An AI-Horde API key. Roles come from the deployment's allow-lists: "
        "approvers may also propose; any valid key may read the queue.",
    }
}

_TAGS = {
    "proposals": "Propose creating, updating or deleting a model; nothing reaches the dataset "
    "until an approver applies the change (spec 03 §3-4).",
    "pending_queue": "Review and apply proposals, under /v2/pending_queue and /v1/pending_queue "
    "alike (one queue; spec 03 §6-8, §10).",
    "audit": "The queue's history rebuilt from the audit log (spec 03 §11).",
    "roles": "Who the key belongs to and the roles this deployment gives them.",
    "internal": "Published snapshots over HTTP, for read replicas that cannot share the data "
    "volume. Unauthenticated.",
}

JsonDict = dict[str, Any]

_CATEGORY_NAMES = [c.value for c in ALL_CATEGORIES]
_TIME = {"type": "integer", "format": "int64", "description": "Unix seconds"}
_JOB_ID = {
    "type": "string",
    "maxLength": 120,
    "nullable": True,
    "description": "Reservation token (blank = none): without one a token is generated; "
    "retrying an applied change with the same token answers 200 again.",
}


def _nullable(schema: JsonDict, description: str | None = None) -> JsonDict:
    out = {**schema, "nullable": True}
    if description:
        out["description"] = description
    return out


def _str(description: str | None = None, **extra: Any) -> JsonDict:
    schema: JsonDict = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def _ids(description: str) -> JsonDict:
    return {"type": "array", "items": {"type": "integer"}, "description": description}


def _object(required: list[str], properties: JsonDict, description: str) -> JsonDict:
    return {
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
    }


# --- components -------------------------------------------------------------------------------------

#: PendingChangeRecord properties, by Change field (the schema follows the class's field order)
_CHANGE_FIELDS: dict[str, JsonDict] = {
    "change_id": {"type": "integer", "minimum": 1, "description": "Monotonic, never reused."},
    "category": {"type": "string", "enum": _CATEGORY_NAMES},
    "model_name": {"type": "string"},
    "operation": {"type": "string", "enum": list(OPERATIONS)},
    "payload": {
        **any_record_schema(),
        "description": "The record to write: create/update the validated v2 record, delete the "
        "record as it was when the deletion was proposed. Always set by this API.",
    },
    "requested_by": _str("AI-Horde user id of the requestor", example="1234"),
    "requested_username": _str(example="Alice#1234"),
    "requested_at": _TIME,
    "status": {
        "type": "string",
        "enum": list(STATUSES),
        "description": "pending → approved → applying → applied; pending → rejected; "
        "a failed apply goes back to approved.",
    },
    "notes": _nullable({"type": "string"}, "Never set by the API."),
    "batch_id": _nullable({"type": "integer"}, "Set on approve (and on reject)."),
    "batch_title": _nullable({"type": "string"}),
    "approved_by": _nullable({"type": "string"}),
    "approved_username": _nullable({"type": "string"}),
    "approved_at": _nullable(_TIME),
    "rejected_by": _nullable({"type": "string"}),
    "rejected_username": _nullable({"type": "string"}),
    "rejected_at": _nullable(_TIME),
    "reject_reason": _nullable({"type": "string"}),
    "applied_at": _nullable(_TIME),
    "applied_by": _nullable({"type": "string"}),
    "applied_username": _nullable({"type": "string"}),
    "applied_job_id": _nullable({"type": "string"}, "The apply reservation token."),
    "updated_at": {**_TIME, "description": "Unix seconds of the last change of the record"},
    "request_metadata": _nullable(
        {
            "type": "object",
            "properties": {"route": {"type": "string", "example": "create_v2_image_generation"}},
            "additionalProperties": True,
        },
        "How the change was proposed.",
    ),
    "related_models": _nullable(
        {"type": "array", "items": {"type": "string"}},
        "text_generation only: the backend variants the change also writes.",
    ),
}
_CHANGE_REQUIRED = [
    "change_id",
    "category",
    "model_name",
    "operation",
    "requested_by",
    "requested_username",
    "requested_at",
    "status",
    "updated_at",
]


def _change_schema() -> JsonDict:
    """PendingChangeRecord, in Change's field order (a field without a schema here is `{}`)."""
    names = [a.name for a in attrs.fields(Change)]
    return _object(
        [n for n in _CHANGE_REQUIRED if n in names],
        {name: _CHANGE_FIELDS.get(name, {}) for name in names},
        "A proposed change (spec 03 §5). 202 and apply answers omit null fields; list and get "
        "answers keep them as null.",
    )


_ANY_VALUE = {"description": "Any JSON value, null included."}
_FIELD_DIFF = _object(
    ["field_path", "old_value", "new_value", "change_type"],
    {
        "field_path": _str("Dotted path of a leaf (nested objects recursed; lists compared whole)"),
        "old_value": _ANY_VALUE,
        "new_value": _ANY_VALUE,
        "change_type": {"type": "string", "enum": ["added", "removed", "modified"]},
    },
    "One leaf difference between two records.",
)
_NET_OPERATION = {"type": "string", "enum": ["added", "modified", "deleted", "unchanged"]}
_STATE = _nullable({"type": "object", "additionalProperties": True}, "A v2 record, or null.")
_SPLIT_FIELDS: JsonDict = {
    "batch_split_occurred": {
        "type": "boolean",
        "description": "Approved changes left in the applied batch moved to a new batch.",
    },
    "batch_split_original_batch_id": {"type": "integer"},
    "batch_split_new_batch_id": {"type": "integer"},
    "batch_split_reassigned_count": {"type": "integer", "minimum": 0},
}
_APPLY_FAILURE_TYPES = [
    "PendingChangeNotFoundError",
    "PendingChangeStateError",
    "PendingChangePayloadError",
    "PendingChangeBackendError",
]
_BATCH_SUMMARY_FIELDS: JsonDict = {
    "batch_id": {"type": "integer"},
    "batch_title": _nullable({"type": "string"}),
    "approved_by": _nullable({"type": "string"}),
    "approved_at": _nullable(_TIME),
    "applied_at": _nullable(_TIME, "The latest apply."),
    "approved_change_count": {"type": "integer", "minimum": 0},
    "rejected_change_count": {"type": "integer", "minimum": 0},
    "applied_change_count": {"type": "integer", "minimum": 0},
    "total_change_count": {"type": "integer", "minimum": 0, "description": "approved ∪ rejected"},
    "last_event_id": _nullable({"type": "integer"}),
}
_DOMAIN = {"type": "string", "enum": ["v2", "legacy"]}
_AUDIT_CHANGE_FIELDS: JsonDict = {
    "change_id": {"type": "integer"},
    "status": {"type": "string", "enum": list(STATUSES)},
    "operation": _nullable({"type": "string", "enum": list(OPERATIONS)}),
    "category": _nullable({"type": "string", "enum": _CATEGORY_NAMES}),
    "model_name": _nullable({"type": "string"}),
    "requested_by": _nullable({"type": "string"}),
    "requested_at": _nullable(_TIME),
    "approved_by": _nullable({"type": "string"}),
    "approved_at": _nullable(_TIME),
    "rejected_by": _nullable({"type": "string"}),
    "rejected_at": _nullable(_TIME),
    "reject_reason": _nullable({"type": "string"}),
    "applied_by": _nullable({"type": "string"}),
    "applied_at": _nullable(_TIME),
    "applied_job_id": _nullable({"type": "string"}),
    "batch_id": _nullable({"type": "integer"}),
    "batch_title": _nullable({"type": "string"}),
    "events": {"type": "array", "items": ref("AuditChangeEvent")},
}

_COMPONENTS: dict[str, JsonDict] = {
    "PendingChangeRecord": _change_schema(),
    "PendingQueuePage": _object(
        ["items", "total", "offset", "limit"],
        {
            "items": {"type": "array", "items": ref("PendingChangeRecord")},
            "total": {"type": "integer", "minimum": 0, "description": "matches before paging"},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500},
        },
        "One page of changes, by change_id ascending.",
    ),
    "FieldDiff": _FIELD_DIFF,
    "PendingChangeDiff": _object(
        [
            "change_id",
            "category",
            "model_name",
            "operation",
            "current_state",
            "proposed_state",
            "net_operation",
            "field_diffs",
            "is_critical",
            "fields_added",
            "fields_removed",
            "fields_modified",
        ],
        {
            "change_id": {"type": "integer"},
            "category": {"type": "string", "enum": _CATEGORY_NAMES},
            "model_name": {"type": "string"},
            "operation": {"type": "string", "enum": list(OPERATIONS)},
            "current_state": {**_STATE, "description": "The live record, or null."},
            "proposed_state": {**_STATE, "description": "The change's payload."},
            "net_operation": _NET_OPERATION,
            "field_diffs": {"type": "array", "items": ref("FieldDiff")},
            "is_critical": {
                "type": "boolean",
                "description": "A critical field of the category changes (spec 03 §10).",
            },
            "fields_added": {"type": "array", "items": {"type": "string"}},
            "fields_removed": {"type": "array", "items": {"type": "string"}},
            "fields_modified": {"type": "array", "items": {"type": "string"}},
        },
        "What a change would do to the live record (spec 03 §10).",
    ),
    "PendingChangeDiffPage": _object(
        ["diffs", "total", "errors"],
        {
            "diffs": {"type": "array", "items": ref("PendingChangeDiff")},
            "total": {"type": "integer", "description": "ids requested"},
            "errors": {
                "type": "array",
                "items": _object(
                    ["change_id", "error", "error_type"],
                    {
                        "change_id": {"type": "integer"},
                        "error": _str(example="Change not found"),
                        "error_type": _str(example="NotFound"),
                    },
                    "An id that names no change.",
                ),
            },
        },
        "The diffs of several changes; unknown ids are listed in errors.",
    ),
    "PendingBatchRequest": _object(
        ["batch_title"],
        {
            "batch_title": _str("Trimmed; must not be blank.", minLength=1, maxLength=120),
            "approved_ids": _ids("Pending changes to approve (ids ≤ 0 are dropped)."),
            "rejected_ids": _ids("Pending changes to reject (ids ≤ 0 are dropped)."),
            "reject_reason": _nullable(
                {"type": "string", "maxLength": 500}, "Required (not blank) when rejecting."
            ),
        },
        "Approve and/or reject pending changes together. At least one id; no id in both lists.",
    ),
    "PendingBatchResult": _object(
        ["batch_id", "batch_title", "approved", "rejected"],
        {
            "batch_id": _nullable(
                {"type": "integer"}, "The open batch the approved changes joined; null when none."
            ),
            "batch_title": {"type": "string"},
            "approved": {"type": "array", "items": ref("PendingChangeRecord")},
            "rejected": {"type": "array", "items": ref("PendingChangeRecord")},
        },
        "The changes approved and rejected.",
    ),
    "PurgePendingChangesRequest": {
        "type": "object",
        "description": "Filters (AND-ed; lists are any-of) of the changes to delete, of any "
        "status. At least one filter, or purge_all.",
        "properties": {
            "statuses": {"type": "array", "items": {"type": "string", "enum": list(STATUSES)}},
            "categories": {"type": "array", "items": {"type": "string", "enum": _CATEGORY_NAMES}},
            "model_name": _nullable(
                {"type": "string", "maxLength": 200}, "Case-insensitive substring."
            ),
            "requested_by": {"type": "array", "items": {"type": "string"}},
            "purge_all": {"type": "boolean", "default": False},
            "dry_run": {"type": "boolean", "default": False, "description": "Remove nothing."},
        },
    },
    "PurgePendingChangesResponse": _object(
        ["removed_count", "removed_change_ids", "dry_run"],
        {
            "removed_count": {"type": "integer", "minimum": 0},
            "removed_change_ids": {"type": "array", "items": {"type": "integer"}},
            "dry_run": {"type": "boolean"},
        },
        "What was (or, in a dry run, would be) removed.",
    ),
    "ApplyPendingChangeRequest": {
        "type": "object",
        "description": "Options of a single apply; `{}` is fine.",
        "properties": {"job_id": _JOB_ID},
    },
    "ApplyPendingChangesRequest": _object(
        ["change_ids"],
        {
            "change_ids": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "integer", "minimum": 1},
                "description": "Applied in this order (duplicates dropped), stopping at the "
                "first failure.",
            },
            "job_id": _JOB_ID,
            "allow_mixed_batch": {
                "type": "boolean",
                "default": False,
                "description": "Skip the check that every change exists and all share one batch.",
            },
        },
        "Apply several approved changes in one request (one snapshot).",
    ),
    "ApplySingleChangeResponse": _object(
        ["record", "batch_split_occurred"],
        {"record": ref("PendingChangeRecord"), **_SPLIT_FIELDS},
        "The applied change (nulls omitted) and the batch split it caused, if any.",
    ),
    "ApplyPendingChangesResponse": _object(
        ["applied", "batch_split_occurred"],
        {
            "applied": {"type": "array", "items": ref("PendingChangeRecord")},
            "failed_change_id": {"type": "integer"},
            "failed_error": {"type": "string"},
            "failed_error_type": {"type": "string", "enum": _APPLY_FAILURE_TYPES},
            **_SPLIT_FIELDS,
        },
        "The changes applied (nulls omitted) and, when one failed, which and why.",
    ),
    "MyRoles": _object(
        ["user_id", "username", "roles", "is_approver", "is_requestor"],
        {
            "user_id": _str(example="1234"),
            "username": _str(example="Alice#1234"),
            "roles": {
                "type": "array",
                "items": {"type": "string"},
                "example": ["approver", "requestor"],
                "description": "Sorted; empty for a valid key without a role.",
            },
            "is_approver": {"type": "boolean"},
            "is_requestor": {"type": "boolean"},
        },
        "The caller and their roles.",
    ),
    "AuditChangeEvent": _object(
        ["event_id", "timestamp", "action", "logical_user_id", "payload"],
        {
            "event_id": {"type": "integer"},
            "timestamp": _TIME,
            "action": _str(example="approve"),
            "logical_user_id": _nullable({"type": "string"}),
            "payload": {"type": "object", "additionalProperties": True},
        },
        "One queue event of a change.",
    ),
    "AuditChange": _object(
        ["change_id", "status", "events"],
        _AUDIT_CHANGE_FIELDS,
        "A change as its queue events tell it.",
    ),
    "AuditCurrent": _object(
        ["domain", "pending_changes", "total_pending", "generated_at"],
        {
            "domain": _DOMAIN,
            "pending_changes": {"type": "array", "items": ref("AuditChange")},
            "total_pending": {"type": "integer", "minimum": 0},
            "generated_at": _TIME,
        },
        "Changes still pending, newest first.",
    ),
    "BatchSummary": _object(
        ["batch_id", "approved_change_count", "rejected_change_count", "total_change_count"],
        _BATCH_SUMMARY_FIELDS,
        "A batch as the queue events tell it.",
    ),
    "AuditBatchPage": _object(
        ["domain", "batches", "next_cursor"],
        {
            "domain": _DOMAIN,
            "batches": {"type": "array", "items": ref("BatchSummary")},
            "next_cursor": _nullable(
                {"type": "integer"}, "Pass as `cursor` for the next page; null on the last."
            ),
        },
        "Batches, newest first.",
    ),
    "AuditBatchDetail": _object(
        ["batch_id", "changes"],
        {
            "domain": _DOMAIN,
            **_BATCH_SUMMARY_FIELDS,
            "changes": {"type": "array", "items": ref("AuditChange")},
        },
        "A batch and its changes.",
    ),
    "ModelNetChange": _object(
        ["model_name", "category", "net_operation", "before_state", "after_state", "field_diffs"],
        {
            "model_name": {"type": "string"},
            "category": {"type": "string", "enum": _CATEGORY_NAMES},
            "net_operation": _NET_OPERATION,
            "before_state": {**_STATE, "description": "Before the batch's first event."},
            "after_state": {**_STATE, "description": "After the batch's last event."},
            "field_diffs": {"type": "array", "items": ref("FieldDiff")},
            "is_critical": {"type": "boolean"},
        },
        "What a batch did to one model.",
    ),
    "BatchNetChange": _object(
        ["batch_id", "model_changes"],
        {
            "batch_id": {"type": "integer"},
            "batch_title": _nullable({"type": "string"}),
            "domain": _DOMAIN,
            "model_changes": {"type": "array", "items": ref("ModelNetChange")},
            "models_added": {"type": "integer", "minimum": 0},
            "models_modified": {"type": "integer", "minimum": 0},
            "models_deleted": {"type": "integer", "minimum": 0},
            "models_unchanged": {"type": "integer", "minimum": 0},
            "total_field_changes": {"type": "integer", "minimum": 0},
            "has_critical_changes": {"type": "boolean"},
            "generated_at": _TIME,
        },
        "The net effect of a batch's applied changes on each model it touched.",
    ),
}

# --- parameters ---------------------------------------------------------------------------------------


_CATEGORY = path_param(
    "category",
    {"type": "string", "enum": _CATEGORY_NAMES},
    "A v2 category; another value is a 422.",
)
_V1_CATEGORY = path_param(
    "category", {"type": "string", "example": "image_generation"}, "A category."
)
_MODEL_NAME = path_param(
    "model_name",
    {"type": "string", "example": "stable_diffusion"},
    "The model name; it may contain `/`, literally or as `%2F`.",
)
_ID = {"type": "integer", "format": "int64", "minimum": 1}
_CHANGE_ID = path_param("change_id", _ID, "A change id.")
_BATCH_ID = path_param("batch_id", _ID, "A batch id.")


def _many(name: str, items: JsonDict, description: str, max_items: int) -> JsonDict:
    schema = {"type": "array", "items": items, "maxItems": max_items}
    return query_param(name, schema, f"{description} (repeat the key; any of them matches).")


_STATUSES = _many("statuses", {"type": "string", "enum": list(STATUSES)}, "Statuses", 100)
_CATEGORIES = _many("categories", {"type": "string", "enum": _CATEGORY_NAMES}, "Categories", 100)
_PAGING = [
    query_param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Matches to skip."),
    query_param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
        "Page size, 1–500.",
    ),
]
_DOMAIN_OVERRIDE = query_param(
    "domain_override", _DOMAIN, "Whose audit log to read (default: the canonical format)."
)

# --- responses ------------------------------------------------------------------------------------------

_NO_STORE = {
    "Cache-Control": {
        "description": "Authenticated answers are never cached.",
        "schema": {"type": "string", "example": "no-store"},
    }
}


def _ok(description: str, schema: JsonDict) -> JsonDict:
    return json_response(description, schema, _NO_STORE)


_UNAUTHORIZED = {
    **error_response(
        "No `apikey` header (`Not authenticated`), or a key AI-Horde does not know "
        "(`Invalid API key`, also when the role's allow-list is empty)."
    ),
    "headers": {
        "WWW-Authenticate": {
            "description": "`APIKey` when the header is missing.",
            "schema": {"type": "string"},
        }
    },
}
_AUTH_DOWN = "AI-Horde could not tell whose key it is (timed out or unavailable)"
_REPLICA = "the deployment is a REPLICA"
_NO_QUEUE = "the pending queue is disabled"


def _unavailable(*why: str) -> JsonDict:
    return error_response("Unavailable: " + "; or ".join((_AUTH_DOWN, *why)) + ".")


def _forbidden(role: str) -> JsonDict:
    return error_response(f"The key's user is not on the {role} list.")


def _auth(role: str | None) -> dict[int, JsonDict]:
    responses = {401: _UNAUTHORIZED}
    if role is not None:
        responses[403] = _forbidden(role)
    return responses


def _apply_outcome(description: str) -> JsonDict:
    """A failed apply answers its outcome (what was applied before the failure) or a guard error."""
    return json_response(
        description,
        {"oneOf": [ref("ApplyPendingChangesResponse"), ref("HTTPError")]},
    )


def _record_body(description: str) -> JsonDict:
    pairs = ", ".join(f"{c.value} → {record_schema_name(c)}" for c in ALL_CATEGORIES)
    return {
        "required": True,
        "description": description,
        "content": json_content(
            {
                "anyOf": [ref(record_schema_name(c)) for c in ALL_CATEGORIES],
                "description": "The record schema of the category in the path "
                f"({pairs}); `record_type` may be left out (it is the path's category).",
            }
        ),
    }


def _body(name: str, description: str) -> JsonDict:
    return {"required": True, "description": description, "content": json_content(ref(name))}


# --- attaching ------------------------------------------------------------------------------------------


@functools.cache
def _document_handlers() -> None:
    """Give every write handler its operation (once per process; the handlers are module-level)."""
    _document_proposals()
    _document_queue()
    _document_audit()
    _document_snapshots()


def _document_proposals() -> None:
    change = ref("PendingChangeRecord")
    queued = _ok("Queued: the new change, null fields omitted.", change)
    propose_503 = _unavailable(
        _REPLICA,
        "the canonical format is legacy (except categories without a legacy format)",
        _NO_QUEUE,
    )
    prefix_400 = "text_generation: the name has a backend prefix (aphrodite/, koboldcpp/)"
    create = {
        202: queued,
        400: error_response(f"Not possible: {prefix_400}."),
        **_auth("requestor"),
        409: error_response("The model already exists in the category: use PUT."),
        422: validation_response(
            "Unknown category, a body failing the record schema, or a "
            "blank name or one containing `\\`."
        ),
        503: propose_503,
    }
    for handler, summary, route in (
        (proposals.create_model, "Propose a new model (typed create)", "create_v2_<category>"),
        (
            proposals.create_model_generic,
            "Propose a new model (generic create, same as the typed one)",
            "create_v2_model",
        ),
    ):
        document(
            handler,
            summary=summary,
            description="The body is validated with the schema of the path's category and "
            f"queued as a `create` (request_metadata.route `{route}`). The model must not exist "
            "in the live dataset (a pending create of the same name does not block it).",
            tags=["proposals"],
            parameters=[_CATEGORY],
            request_body=_record_body("The new model."),
            responses=create,
            security=[SECURITY],
        )
    document(
        proposals.update_model,
        summary="Propose a new version of a model (typed update)",
        description="The body replaces the record; its `name` must be the path's. "
        "metadata.created_at and created_by are kept from the live record.",
        tags=["proposals"],
        parameters=[_CATEGORY, _MODEL_NAME],
        request_body=_record_body("The whole new record."),
        responses={
            202: queued,
            400: error_response(
                f"Not possible: the body's name is not the path's, or {prefix_400}."
            ),
            **_auth("requestor"),
            404: error_response("No such model in the category: use POST."),
            422: validation_response("Unknown category, or a body failing the record schema."),
            503: propose_503,
        },
        security=[SECURITY],
    )
    document(
        proposals.delete_model,
        summary="Propose deleting a model",
        description="The change's payload is the record as it is now.",
        tags=["proposals"],
        parameters=[_CATEGORY, _MODEL_NAME],
        responses={
            202: queued,
            400: error_response(f"Not possible: {prefix_400}."),
            **_auth("requestor"),
            404: error_response("No such model in the category."),
            422: validation_response("Unknown category, or a blank name or one containing `\\`."),
            503: propose_503,
        },
        security=[SECURITY],
    )
    document(
        proposals.legacy_write,
        summary="v1 (legacy) write: create (POST), update (PUT) or delete",
        description="Only on a legacy-canonical PRIMARY (elsewhere 503). The body is a legacy "
        "record of the category (text: a db.json entry with a base name); it is queued as sent "
        "and, once applied, becomes the model's v1 entry verbatim while v2 gets its conversion.",
        tags=["proposals"],
        parameters=[_V1_CATEGORY, _MODEL_NAME],
        request_body={
            "required": False,
            "description": "The legacy record (POST/PUT).",
            "content": json_content({"type": "object", "additionalProperties": True}),
        },
        responses={
            202: _ok("Queued: the new change, null fields omitted.", ref("PendingChangeRecord")),
            400: error_response("text_generation: the name has a backend prefix."),
            **_auth("requestor"),
            404: error_response("Update or delete of a model that does not exist."),
            409: error_response("Create of a model that already exists: use PUT."),
            422: validation_response(
                "A category without a legacy format, or a body that is not a valid legacy record."
            ),
            503: error_response(
                "REPLICA mode, canonical format v2 (v1 writes not offered), or queue disabled."
            ),
        },
        security=[SECURITY],
    )
    document(
        me.get_my_roles,
        summary="The caller's user and roles",
        tags=["roles"],
        responses={
            200: _ok("The caller (any valid key; no role needed).", ref("MyRoles")),
            401: _UNAUTHORIZED,
            503: _unavailable(),
        },
        security=[SECURITY],
    )
    document(
        me.list_beta_models,
        summary="Beta models: proposed creates and updates not yet applied",
        description="Model name → the payload of its newest pending or approved create/update "
        "(by updated_at, then change_id); deletes never show.",
        tags=["proposals"],
        parameters=[_CATEGORY],
        responses={
            200: _ok("The beta models of the category.", any_category_schema()),
            401: _UNAUTHORIZED,
            422: validation_response("Not a category."),
            503: _unavailable(_NO_QUEUE),
        },
        security=[SECURITY],
    )


def _document_queue() -> None:
    pq = pending_queue
    queue_503 = _unavailable(_REPLICA, _NO_QUEUE)
    read_503 = _unavailable(_NO_QUEUE)
    document(
        pq.list_changes,
        summary="Changes in the queue, any status",
        description="Filters AND together; list filters match any of their values.",
        tags=["pending_queue"],
        parameters=[
            _STATUSES,
            _CATEGORIES,
            query_param("batch_id", {"type": "integer", "minimum": 1}, "Only this batch."),
            query_param(
                "model_name",
                {"type": "string", "minLength": 1, "maxLength": 200},
                "Case-insensitive substring of the model name.",
            ),
            _many("requested_by", {"type": "string"}, "Requestor user ids", 100),
            *_PAGING,
        ],
        responses={
            200: _ok("One page of changes.", ref("PendingQueuePage")),
            401: _UNAUTHORIZED,
            422: validation_response("A bad parameter value."),
            503: queue_503,
        },
        security=[SECURITY],
    )
    document(
        pq.list_my_changes,
        summary="The caller's own changes",
        tags=["pending_queue"],
        parameters=[_STATUSES, _CATEGORIES, *_PAGING],
        responses={
            200: _ok("One page of the caller's changes.", ref("PendingQueuePage")),
            **_auth("requestor"),
            422: validation_response("A bad parameter value."),
            503: queue_503,
        },
        security=[SECURITY],
    )
    not_found = error_response("No such change.")
    bad_id = validation_response("The id is not a positive integer.")
    document(
        pq.get_change,
        summary="One change",
        tags=["pending_queue"],
        parameters=[_CHANGE_ID],
        responses={
            200: _ok("The change, null fields included.", ref("PendingChangeRecord")),
            401: _UNAUTHORIZED,
            404: not_found,
            422: bad_id,
            503: read_503,
        },
        security=[SECURITY],
    )
    document(
        pq.get_change_diff,
        summary="What one change would do to the live record",
        tags=["pending_queue"],
        parameters=[_CHANGE_ID],
        responses={
            200: _ok("The diff.", ref("PendingChangeDiff")),
            401: _UNAUTHORIZED,
            404: not_found,
            422: bad_id,
            503: read_503,
        },
        security=[SECURITY],
    )
    document(
        pq.list_diffs,
        summary="The diffs of several changes",
        tags=["pending_queue"],
        parameters=[
            query_param(
                "change_ids",
                {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 100},
                "Change ids, 1–100 (repeat the key).",
                required=True,
            )
        ],
        responses={
            200: _ok("The diffs; unknown ids in errors.", ref("PendingChangeDiffPage")),
            401: _UNAUTHORIZED,
            422: validation_response("No ids, more than 100, or one that is not an integer."),
            503: read_503,
        },
        security=[SECURITY],
    )
    document(
        pq.review_batch,
        summary="Approve and reject pending changes",
        description="Approved changes join the open batch (one at a time: every approved, "
        "unapplied change shares it); rejected ones get the same batch id. All or nothing.",
        tags=["pending_queue"],
        request_body=_body("PendingBatchRequest", "The review."),
        responses={
            200: _ok("The reviewed changes.", ref("PendingBatchResult")),
            400: error_response("A change does not exist or is not pending; nothing changed."),
            **_auth("approver"),
            422: validation_response(
                "Blank title, no ids, an id in both lists, or rejecting without a reason."
            ),
            503: queue_503,
        },
        security=[SECURITY],
    )
    document(
        pq.purge_changes,
        summary="Delete changes from the queue, history included",
        tags=["pending_queue"],
        request_body=_body("PurgePendingChangesRequest", "What to delete."),
        responses={
            200: _ok("What was removed.", ref("PurgePendingChangesResponse")),
            **_auth("approver"),
            422: validation_response(
                "No filter and not purge_all, or an unknown status or category."
            ),
            503: queue_503,
        },
        security=[SECURITY],
    )
    document(
        pq.apply_change,
        summary="Apply one approved change",
        description="Writes the change to the dataset and publishes a new snapshot, which the "
        "reads serve within a second. Approved changes left in its batch move to a new batch.",
        tags=["pending_queue"],
        parameters=[_CHANGE_ID],
        request_body=_body("ApplyPendingChangeRequest", "Required; `{}` is fine."),
        responses={
            200: _ok("The applied change.", ref("ApplySingleChangeResponse")),
            400: error_response(
                "The change is not approved, is reserved by another job, or has no payload."
            ),
            **_auth("approver"),
            404: not_found,
            422: validation_response("A bad id, body or job_id."),
            503: _unavailable(_REPLICA, _NO_QUEUE, "the dataset could not take the change"),
        },
        security=[SECURITY],
    )
    outcome_errors = {
        400: _apply_outcome(
            "A change is not approved, is reserved by another job or has no payload (outcome), "
            "or the changes are not all in one batch (detail)."
        ),
        404: _apply_outcome("A change does not exist (outcome or detail)."),
        503: _apply_outcome(
            "The dataset could not take a change (outcome); or (detail) "
            + "; or ".join((_AUTH_DOWN, _REPLICA, _NO_QUEUE))
            + "."
        ),
    }
    applied = _ok("Every change applied.", ref("ApplyPendingChangesResponse"))
    document(
        pq.apply_changes,
        summary="Apply several approved changes, in order",
        description="Stops at the first failure; the changes applied before it stay applied "
        "(one snapshot), and the answer is the outcome with the failure's status.",
        tags=["pending_queue"],
        request_body=_body("ApplyPendingChangesRequest", "The changes."),
        responses={
            200: applied,
            **outcome_errors,
            **_auth("approver"),
            422: validation_response(
                "change_ids is not a non-empty list of positive integers, or a bad job_id."
            ),
        },
        security=[SECURITY],
    )
    document(
        pq.apply_batch,
        summary="Apply the approved changes of a batch",
        description="In change_id order. A batch whose changes are all applied answers 200 "
        "with nothing applied.",
        tags=["pending_queue"],
        parameters=[
            _BATCH_ID,
            query_param("job_id", {"type": "string", "maxLength": 120}, "Reservation token."),
        ],
        responses={
            200: applied,
            **outcome_errors,
            404: _apply_outcome(
                "No such batch, no approved change in it (detail), or a change vanished (outcome)."
            ),
            **_auth("approver"),
            422: validation_response("A bad batch id or job_id."),
        },
        security=[SECURITY],
    )


def _document_audit() -> None:
    audit_503 = _unavailable(_NO_QUEUE, "the audit trail is disabled")
    batch_404 = error_response("No such batch.")
    bad = validation_response("A bad parameter value.")
    document(
        audit.get_current,
        summary="Changes still pending, from the audit log",
        tags=["audit"],
        parameters=[_DOMAIN_OVERRIDE],
        responses={
            200: _ok("The pending changes.", ref("AuditCurrent")),
            401: _UNAUTHORIZED,
            422: bad,
            503: audit_503,
        },
        security=[SECURITY],
    )
    document(
        audit.list_batches,
        summary="Batches, newest first",
        tags=["audit"],
        parameters=[
            query_param("cursor", {"type": "integer", "minimum": 1}, "Only batch ids below this."),
            query_param(
                "limit", {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}, "1–50."
            ),
            _DOMAIN_OVERRIDE,
        ],
        responses={
            200: _ok("One page of batches.", ref("AuditBatchPage")),
            401: _UNAUTHORIZED,
            422: bad,
            503: audit_503,
        },
        security=[SECURITY],
    )
    document(
        audit.get_batch,
        summary="A batch and its changes",
        tags=["audit"],
        parameters=[_BATCH_ID, _DOMAIN_OVERRIDE],
        responses={
            200: _ok("The batch.", ref("AuditBatchDetail")),
            401: _UNAUTHORIZED,
            404: batch_404,
            422: bad,
            503: audit_503,
        },
        security=[SECURITY],
    )
    document(
        audit.get_batch_net_changes,
        summary="What a batch did to each model",
        tags=["audit"],
        parameters=[_BATCH_ID, _DOMAIN_OVERRIDE],
        responses={
            200: _ok("The net changes.", ref("BatchNetChange")),
            401: _UNAUTHORIZED,
            404: batch_404,
            422: bad,
            503: audit_503,
        },
        security=[SECURITY],
    )


def _document_snapshots() -> None:
    document(
        snapshots.get_current_snapshot,
        summary="The name of the live snapshot",
        tags=["internal"],
        responses={
            200: json_response(
                "The live snapshot (never cached).",
                _object(["name"], {"name": _str(example="000042-3f9a1c")}, "A snapshot name."),
                {"Cache-Control": {"schema": {"type": "string", "example": "no-store"}}},
            ),
            404: error_response("No snapshot has been published yet."),
        },
    )
    document(
        snapshots.get_snapshot_file,
        summary="One file of a published snapshot",
        description="The manifest, or a file it lists (path relative to the snapshot, e.g. "
        "`v2/image_generation.json`). Snapshots never change once published.",
        tags=["internal"],
        parameters=[
            path_param("name", {"type": "string", "example": "000042-3f9a1c"}, "A snapshot name."),
            path_param("path", {"type": "string", "example": "manifest.json"}, "A file of it."),
        ],
        responses={
            200: {
                "description": "The file's bytes.",
                "headers": {
                    "Cache-Control": {
                        "schema": {
                            "type": "string",
                            "example": "public, max-age=31536000, immutable",
                        }
                    }
                },
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            404: error_response("No such snapshot, or a file its manifest does not list."),
        },
    )


def setup_write_docs(app: web.Application) -> None:
    """Document the write routes; serve the document and Swagger UI unless another service of
    `app` already does (then the write routes join its document). No I/O."""
    _document_handlers()
    setup_openapi(
        app,
        TITLE,
        API_VERSION,
        description=DESCRIPTION,
        components=_COMPONENTS,
        security_schemes=_SECURITY_SCHEMES,
        tags=_TAGS,
    )
