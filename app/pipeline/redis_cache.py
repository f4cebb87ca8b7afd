"""The response cache in Redis, shared by every worker and replica (same interface as
MemoryCache). Redis being down degrades to a miss with a warning; it never fails a request."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from app.pipeline.cache import CachedResponse

logger = logging.getLogger("aigw.cache")
PREFIX = "aigw:cache:"


def encode(value: CachedResponse) -> bytes:
    """A JSON head line (status, headers, chunk lengths) then the raw body bytes."""
    head = {
        "s": value.status,
        "h": value.headers,
        "c": [len(c) for c in value.chunks] if value.chunks is not None else None,
    }
    return orjson.dumps(head) + b"\n" + value.body


def decode(raw: bytes) -> CachedResponse:
    head_raw, _, body = raw.partition(b"\n")
    head = orjson.loads(head_raw)
    chunks = None
    if head["c"] is not None:
        pieces, offset = [], 0
        for length in head["c"]:
            pieces.append(body[offset : offset + length])
            offset += length
        chunks = tuple(pieces)
    headers = tuple((str(k), str(v)) for k, v in head["h"])
    return CachedResponse(int(head["s"]), headers, body, chunks)


class RedisCache:
    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self.errors = 0

    async def get(self, key: str) -> CachedResponse | None:
        try:
            raw = await self._redis.get(PREFIX + key)
        except Exception as exc:
            self._degraded("get", exc)
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

    def _degraded(self, operation: str, exc: Exception) -> None:
        self.errors += 1
        logger.warning("cache %s failed, treated as a miss: %s", operation, exc)
