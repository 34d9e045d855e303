"""A private event loop on a daemon thread, so sync callers work inside or outside a running loop.

A forked child inherits the LoopThread object but not its thread: there `submit` raises instead of
waiting forever, and `close` has nothing to stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on its own loop; `run` blocks the calling thread, `arun` awaits from another loop."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self.pid = os.getpid()  # the process whose thread runs the loop
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._closed:
            coro.close()
            raise RuntimeError("the replica's event loop is closed")
        if os.getpid() != self.pid:
            coro.close()
            raise RuntimeError("the replica's event loop runs in another process (this one forked)")
        if threading.current_thread() is self._thread:
            coro.close()
            # blocking our own loop on itself would deadlock
            raise RuntimeError("sync replica methods cannot be called from the replica's own loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.submit(coro))

    async def _release(self) -> None:
        await self._loop.shutdown_asyncgens()
        await self._loop.shutdown_default_executor()

    def close(self) -> None:
        """Release the loop's resources on its own thread, stop it and wait for the thread.

        Everything runs on the loop's thread, so this works from inside another running loop.
        """
        if self._closed:
            return
        if os.getpid() != self.pid:
            self._closed = True  # the thread lives in the parent; nothing of it runs here
            return
        asyncio.run_coroutine_threadsafe(self._release(), self._loop).result()
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
