"""For a replica on another host: pull new snapshots from the write service over HTTP.

The puller installs each snapshot into the replica's own snapshots directory (verified file by
file, unchanged files taken from the local parent), and the usual watcher then loads it.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from attrs import define
from yarl import URL

from shared.snapshot import MANIFEST, SnapshotError, SnapshotStore, sha256_hex

logger = logging.getLogger(__name__)


class PullError(Exception):
    """The write service did not give a usable snapshot this time."""


@define
class SnapshotPuller:
    session: aiohttp.ClientSession
    source: URL  # the write service's base URL, e.g. http://writer:19802
    store: SnapshotStore
    timeout: float = 10.0
    keep: int = 5  # snapshots kept on this replica's own disk

    async def _aget(self, path: str) -> bytes:
        url = self.source.join(URL("/api/internal/snapshots/" + path))
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                if resp.status != 200:
                    raise PullError(f"{url} answered {resp.status}")
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PullError(f"{url}: {exc.__class__.__name__}") from None

    async def apull_once(self) -> bool:
        """Install the writer's current snapshot if it is new here; True when one was installed."""
        try:
            name = json.loads(await self._aget("current"))["name"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PullError(f"unreadable current snapshot name: {exc}") from None
        if name == self.store.current_name():
            return False
        manifest_bytes = await self._aget(f"{name}/{MANIFEST}")
        try:
            manifest = json.loads(manifest_bytes)
            listing = manifest["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PullError(f"{name}: unreadable manifest: {exc}") from None
        local = self._local_files()
        files: dict[str, bytes] = {}
        for rel, meta in listing.items():
            have = local.get(meta["sha256"])
            files[rel] = have if have is not None else await self._aget(f"{name}/{rel}")
        try:
            await asyncio.to_thread(self.store.install, manifest, files)
        except SnapshotError as exc:
            raise PullError(str(exc)) from None
        await asyncio.to_thread(self.store.prune, self.keep)
        logger.info("pulled snapshot %s", name)
        return True

    def _local_files(self) -> dict[str, bytes]:
        """sha256 -> bytes of the live local snapshot, so unchanged files are not downloaded."""
        try:
            current = self.store.read_current()
        except SnapshotError:
            return {}
        if current is None:
            return {}
        return {sha256_hex(data): data for data in current.files.values()}

    async def arun(self, interval: float) -> None:
        while True:
            try:
                await self.apull_once()
            except PullError as exc:
                logger.warning("snapshot pull failed, keeping what we have: %s", exc)
            except Exception:
                logger.exception("snapshot pull failed")
            await asyncio.sleep(interval)
