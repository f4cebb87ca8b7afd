"""What the response cache stores and the interface every store has (in memory, in Redis)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.core.notes import Notes


@dataclass(frozen=True, slots=True)
class CachedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes  # the whole body; for a stream, every chunk joined
    chunks: tuple[bytes, ...] | None = None  # a stream, replayed chunk by chunk
    # The body as the miss's log row stored it, when that differs: DLP redacted matched text in
    # it. A hit is not checked again (dlp.md §4), and its row stores this copy, never the secret.
    log_body: bytes | None = None

    @property
    def size(self) -> int:
        extra = len(self.log_body) if self.log_body is not None else 0
        return len(self.body) + extra + sum(len(k) + len(v) for k, v in self.headers) + 64


# What a store that could not be reached (Redis down) adds to the caller's `notes`: the request
# goes on as a miss, and its log row says why.
CACHE_UNAVAILABLE = "cache unavailable: treated as a miss"


class CacheStore(Protocol):
    """`notes`: where a lookup that had to degrade (store unreachable) says so, once per note."""

    async def get(self, key: str, *, notes: Notes | None = None) -> CachedResponse | None: ...

    async def set(self, key: str, value: CachedResponse, ttl_s: int) -> None: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def claim(self, key: str, ttl_s: float, *, notes: Notes | None = None) -> bool:
        """Across replicas: True if this process may fetch `key` now (no one else is)."""
        ...

    async def release(self, key: str) -> None: ...

    async def wait_for(
        self, key: str, timeout_s: float, *, notes: Notes | None = None
    ) -> CachedResponse | None:
        """The entry another replica is fetching, once stored; None if it gave up or time ran out."""
        ...
