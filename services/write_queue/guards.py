"""The checks every write goes through: who is calling, is this the PRIMARY, is the queue on."""

from __future__ import annotations

from aiohttp import web

from horde_model_records import CATEGORY_INFO, Category
from shared.errors import Unavailable
from shared.query import category_param

from .auth import api_key_of, arequire
from .keys import authenticator_key, write_config_key, write_queue_key
from .models import Identity
from .queue import WriteQueue

REPLICA_WRITE = (
    "This instance is in REPLICA mode and does not support write operations. "
    "Only PRIMARY instances can modify data."
)
REPLICA_QUEUE = (
    "This instance is in REPLICA mode and does not support write operations. "
    "Only PRIMARY instances can queue model changes."
)
QUEUE_DISABLED = "Pending queue is disabled or unsupported on this deployment."


def path_category(request: web.Request, loc: str = "category") -> Category:
    return category_param(request.match_info["category"], loc)


async def aidentify(request: web.Request, role: str | None) -> Identity:
    key = api_key_of(request)
    return await arequire(request.config_dict[authenticator_key], key, role)


def require_primary(request: web.Request, message: str = REPLICA_WRITE) -> None:
    if request.config_dict[write_config_key].mode != "PRIMARY":
        raise Unavailable(message)


def require_v2_canonical(request: web.Request, category: Category) -> None:
    config = request.config_dict[write_config_key]
    if config.canonical_format != "v2" and CATEGORY_INFO[category].has_legacy:
        raise Unavailable(
            "This deployment does not expose write operations for this API. "
            f"Expected canonical_format='v2', got '{config.canonical_format}'."
        )


def loaded_queue(request: web.Request) -> WriteQueue:
    """The write queue, once its dataset is loaded; a 503 with Retry-After until then.

    The one way routes reach the queue (its dataset, its store): the start loads it in the
    background while the server already answers."""
    queue = request.config_dict[write_queue_key]
    queue.require_loaded()
    return queue


def require_queue(request: web.Request) -> WriteQueue:
    if not request.config_dict[write_config_key].queue_enabled:
        raise Unavailable(QUEUE_DISABLED)
    return loaded_queue(request)
