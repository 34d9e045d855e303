"""Typed keys for everything the stats service keeps on the application."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from shared.snapshot_watch import SnapshotHolder

from .config import Config
from .model import ResultCache, StatsModel
from .poller import Poller

stats_config_key = web.AppKey("stats_config_key", Config)
stats_snapshot_key = web.AppKey("stats_snapshot_key", SnapshotHolder[StatsModel])
stats_session_key = web.AppKey("stats_session_key", aiohttp.ClientSession)
poller_key = web.AppKey("poller_key", Poller)
result_cache_key = web.AppKey("result_cache_key", ResultCache)
stats_tasks_key = web.AppKey("stats_tasks_key", list[asyncio.Task[None]])
