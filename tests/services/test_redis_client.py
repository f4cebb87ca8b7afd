"""The shared Redis client queues a burst beyond its pool instead of failing it: 300 rate-limit
hits in flight at once over a pool of 4 connections all get a real answer from Redis, where a
non-blocking pool of the same size (redis-py's default kind) turns most of them into "Redis
unavailable" (here: refused, the limiter failing closed)."""

from __future__ import annotations

import asyncio
import uuid

from redis import asyncio as redis_asyncio

from app.core.settings import Settings
from app.services.ratelimit import RedisRateLimiter
from app.services.redis_client import shared_redis

BURST = 300


async def _burst(client: redis_asyncio.Redis) -> list[float | None]:
    limiter = RedisRateLimiter(client, fail_open=False)  # an unavailable Redis refuses: visible
    key = f"test-burst-{uuid.uuid4().hex}"
    try:
        return await asyncio.gather(*(limiter.hit(key, 1_000_000, 60, "fixed") for _ in range(BURST)))
    finally:
        await client.aclose()


def test_a_burst_beyond_the_pool_waits_for_connections(redis_url: str) -> None:
    client = shared_redis(Settings(redis_url=redis_url, redis_max_connections=4))
    assert client is not None
    answers = asyncio.run(_burst(client))
    assert answers == [None] * BURST  # every hit admitted by Redis itself


def test_the_same_burst_on_a_non_blocking_pool_fails(redis_url: str) -> None:
    """The scenario really exceeds the pool: without waiting, hits fail."""
    answers = asyncio.run(_burst(redis_asyncio.from_url(redis_url, max_connections=4)))
    assert answers.count(None) < BURST
