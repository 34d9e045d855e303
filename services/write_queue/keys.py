"""Typed keys for everything the write service keeps on the application."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from shared.snapshot import SnapshotStore

from .auth import Authenticator
from .config import Config
from .queue import WriteQueue

write_config_key = web.AppKey("write_config_key", Config)
write_queue_key = web.AppKey("write_queue_key", WriteQueue)
authenticator_key = web.AppKey("authenticator_key", Authenticator)
horde_session_key = web.AppKey("horde_session_key", aiohttp.ClientSession)
snapshot_store_key = web.AppKey("snapshot_store_key", SnapshotStore)
