"""Typed keys for everything the read service keeps on the application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from shared.snapshot_watch import SnapshotHolder

from .config import Config
from .view import ReadModel

read_config_key = web.AppKey("read_config_key", Config)
snapshot_holder_key = web.AppKey("snapshot_holder_key", SnapshotHolder[ReadModel])
snapshot_watcher_key = web.AppKey("snapshot_watcher_key", list[asyncio.Task[None]])
