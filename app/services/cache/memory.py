"""Response cache (protocol.md §9): the key, the store interface, the in-memory store, and the
coalescing of identical concurrent misses into one upstream call."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes  # the whole body; for a stream, every chunk joined
    chunks: tuple[bytes, ...] | None = None  # a stream, replayed chunk by chunk

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 64


# What a store that could not be reached (Redis down) adds to the caller's `notes`: the request
# goes on as a miss, and its log row says why.
CACHE_UNAVAILABLE = "cache unavailable: treated as a miss"


def add_note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


class CacheStore(Protocol):
    """`notes`: where a lookup that had to degrade (store unreachable) says so, once per note."""

    async def get(self, key: str, *, notes: list[str] | None = None) -> CachedResponse | None: ...

    async def set(self, key: str, value: CachedResponse, ttl_s: int) -> None: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def claim(self, key: str, ttl_s: float, *, notes: list[str] | None = None) -> bool:
        """Across replicas: True if this process may fetch `key` now (no one else is)."""
        ...

    async def release(self, key: str) -> None: ...

    async def wait_for(
        self, key: str, timeout_s: float, *, notes: list[str] | None = None
    ) -> CachedResponse | None:
        """The entry another replica is fetching, once stored; None if it gave up or time ran out."""
        ...


class MemoryCache:
    """A bounded LRU of cached responses, by total bytes, with per-entry expiry."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()

    async def get(self, key: str, *, notes: list[str] | None = None) -> CachedResponse | None:
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
    async def claim(self, key: str, ttl_s: float, *, notes: list[str] | None = None) -> bool:
        return True

    async def release(self, key: str) -> None:
        return None

    async def wait_for(
        self, key: str, timeout_s: float, *, notes: list[str] | None = None
    ) -> CachedResponse | None:
        return None

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1].size


def cache_key(
    account_id: str,
    gateway_id: str,
    *,
    custom_key: str | None,
    provider: str,
    method: str,
    url: str,
    body: bytes,
    credentials: Iterable[str],
    stream: bool,
) -> str:
    """`{account}/{gateway}/` + SHA-256 of what identifies the response. The scope prefix keeps
    tenants apart and lets one gateway's entries be dropped at once."""
    digest = hashlib.sha256()
    if custom_key is not None:
        digest.update(b"custom\0" + custom_key.encode())
    else:
        credential_digest = hashlib.sha256("\0".join(credentials).encode()).digest()
        for part in (provider.encode(), method.encode(), url.encode(), credential_digest):
            digest.update(part + b"\0")
        digest.update(body)
    digest.update(b"\0stream" if stream else b"\0json")
    return f"{account_id}/{gateway_id}/{digest.hexdigest()}"


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
