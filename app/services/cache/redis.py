"""The response cache in Redis, shared by every worker and replica (same interface as
MemoryCache). Redis being down degrades to a miss with a warning; it never fails a request, and
the lookups say so in the caller's `notes` (the request's log row)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from app.core.notes import Notes
from app.services.cache.store import CACHE_UNAVAILABLE, CachedResponse

logger = logging.getLogger("aigw.cache")
PREFIX = "aigw:cache:"
LOCK_PREFIX = "aigw:fetching:"
WAIT_POLL_S = 0.02


def encode(value: CachedResponse) -> bytes:
    """A JSON head line (status, headers, chunk lengths, the log copy's length) then the raw body
    bytes, then those of the log copy (entries written without one read as before)."""
    head: dict[str, Any] = {
        "s": value.status,
        "h": value.headers,
        "c": [len(c) for c in value.chunks] if value.chunks is not None else None,
    }
    if value.log_body is None:
        return orjson.dumps(head) + b"\n" + value.body
    head["l"] = len(value.log_body)
    return orjson.dumps(head) + b"\n" + value.body + value.log_body


def decode(raw: bytes) -> CachedResponse:
    head_raw, _, body = raw.partition(b"\n")
    head = orjson.loads(head_raw)
    log_body = None
    if head.get("l") is not None:
        cut = len(body) - int(head["l"])
        body, log_body = body[:cut], body[cut:]
    chunks = None
    if head["c"] is not None:
        pieces, offset = [], 0
        for length in head["c"]:
            pieces.append(body[offset : offset + length])
            offset += length
        chunks = tuple(pieces)
    headers = tuple((str(k), str(v)) for k, v in head["h"])
    return CachedResponse(int(head["s"]), headers, body, chunks, log_body)


class RedisCache:
    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self.errors = 0

    async def get(self, key: str, *, notes: Notes | None = None) -> CachedResponse | None:
        try:
            raw = await self._redis.get(PREFIX + key)
        except Exception as exc:
            self._degraded("get", exc, notes)
            return None
        return decode(raw) if raw is not None else None

    async def set(self, key: str, value: CachedResponse, ttl_s: int) -> None:
        try:
            await self._redis.set(PREFIX + key, encode(value), ex=ttl_s)
        except Exception as exc:
            self._degraded("set", exc)

    async def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            async for key in self._redis.scan_iter(match=PREFIX + prefix + "*", count=500):
                deleted += await self._redis.unlink(key)
        except Exception as exc:
            self._degraded("delete", exc)
        return deleted

    async def claim(self, key: str, ttl_s: float, *, notes: Notes | None = None) -> bool:
        """A short-lived Redis lock, so identical misses on several replicas make one upstream call.
        Redis down: claim granted (each replica fetches for itself)."""
        try:
            return bool(await self._redis.set(LOCK_PREFIX + key, b"1", nx=True, px=int(ttl_s * 1000)))
        except Exception as exc:
            self._degraded("claim", exc, notes)
            return True

    async def release(self, key: str) -> None:
        try:
            await self._redis.delete(LOCK_PREFIX + key)
        except Exception as exc:
            self._degraded("release", exc)

    async def wait_for(
        self, key: str, timeout_s: float, *, notes: Notes | None = None
    ) -> CachedResponse | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
            found = await self.get(key, notes=notes)
            if found is not None:
                return found
            try:
                if not await self._redis.exists(LOCK_PREFIX + key):
                    return await self.get(key, notes=notes)  # the leader finished (or failed): one last look
            except Exception as exc:
                self._degraded("wait", exc, notes)
                return None
        return None

    def _degraded(self, operation: str, exc: Exception, notes: Notes | None = None) -> None:
        self.errors += 1
        logger.warning("cache %s failed, treated as a miss: %s", operation, exc)
        if notes is not None:
            notes.add(CACHE_UNAVAILABLE)
