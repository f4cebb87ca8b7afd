"""Identical concurrent misses in one process share one upstream call."""

from __future__ import annotations

import asyncio

from app.services.cache.store import CachedResponse


class Coalescer:
    """Lets the first miss for a key call upstream while identical misses wait for its result."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[CachedResponse | None]] = {}

    def lead_or_follow(self, key: str) -> asyncio.Future[CachedResponse | None] | None:
        """None: the caller leads and must call `finish`. Otherwise a future to await."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending
        self._pending[key] = asyncio.get_running_loop().create_future()
        return None

    def finish(self, key: str, response: CachedResponse | None) -> None:
        future = self._pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(response)
