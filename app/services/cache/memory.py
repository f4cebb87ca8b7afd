"""The in-process response cache: a bounded LRU by total bytes, with per-entry expiry."""

from __future__ import annotations

import time
from collections import OrderedDict

from app.core.notes import Notes
from app.services.cache.store import CachedResponse


class MemoryCache:
    """A bounded LRU of cached responses, by total bytes, with per-entry expiry."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()

    async def get(self, key: str, *, notes: Notes | None = None) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: CachedResponse, ttl_s: int) -> None:
        if value.size > self._max_bytes:
            return
        self._remove(key)
        self._entries[key] = (time.monotonic() + ttl_s, value)
        self._bytes += value.size
        while self._bytes > self._max_bytes and self._entries:
            self._remove(next(iter(self._entries)))

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    # One process: the in-process Coalescer already makes identical misses wait for one leader.
    async def claim(self, key: str, ttl_s: float, *, notes: Notes | None = None) -> bool:
        return True

    async def release(self, key: str) -> None:
        return None

    async def wait_for(
        self, key: str, timeout_s: float, *, notes: Notes | None = None
    ) -> CachedResponse | None:
        return None

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1].size
