"""Typed keys for everything the write service keeps on the application."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from shared.snapshot import SnapshotStore

from .auth import Authenticator
from .config import Config
from .publisher import Publisher
from .queue import WriteQueue

write_config_key = web.AppKey("write_config_key", Config)
#: the queue, there from the start; `guards.loaded_queue` hands it to routes once it has loaded
write_queue_key = web.AppKey("write_queue_key", WriteQueue)
#: the task that loads the dataset in the background while the server answers
write_loader_key = web.AppKey("write_loader_key", asyncio.Task[None])
#: set once every part of the app has started: the load waits for it, so it never competes
#: for the CPU with the other services' own start (their snapshot loads) in `hmr all`
write_start_key = web.AppKey("write_start_key", asyncio.Event)
#: where committed datasets go, when not the snapshots directory of the config (tests)
publisher_key = web.AppKey("publisher_key", Publisher)
authenticator_key = web.AppKey("authenticator_key", Authenticator)
horde_session_key = web.AppKey("horde_session_key", aiohttp.ClientSession)
snapshot_store_key = web.AppKey("snapshot_store_key", SnapshotStore)
