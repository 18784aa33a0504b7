"""The store thread: all SQLite work runs on one thread, so the event loop keeps ticking."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class StoreThread:
    """All SQLite work happens on one thread, so the event loop (and the watchdog) keeps ticking."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self.last_ok = time.monotonic()

    async def call(self, fn: Any, *args: Any) -> Any:
        out = await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        self.last_ok = time.monotonic()
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True)
