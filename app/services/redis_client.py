"""The process's shared redis-py client (response cache, rate limits).

A blocking pool: redis-py's default pool stops at 100 connections and then raises "Too many
connections", so a burst with more Redis commands in flight than that would turn into cache
misses and rate-limit failures (open or closed) that have nothing to do with Redis. Here a command
beyond `AIGW_REDIS_MAX_CONNECTIONS` waits for a free connection, up to
`AIGW_REDIS_POOL_TIMEOUT_S`, and only then counts as Redis being unavailable.
(The spend store has its own pipelined connection: app/services/spend/pipe.py.)
"""

from __future__ import annotations

from redis import asyncio as redis_asyncio

from app.core.settings import Settings


def shared_redis(settings: Settings) -> redis_asyncio.Redis | None:
    if not settings.redis_url:
        return None
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
    )
    return redis_asyncio.Redis(connection_pool=pool)
