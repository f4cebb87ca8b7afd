"""Per-gateway rate limits (protocol.md §10): `fixed` windows aligned to the clock, or `sliding`
(trailing) windows. In memory for one process; in Redis, one atomic Lua call per check, so every
worker and replica shares one exact count."""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from typing import Any, Protocol

from app.core.notes import Notes

logger = logging.getLogger("aigw.ratelimit")


def unavailable_note(fail_open: bool) -> str:
    """What the request's log row says when the limiter could not count it (Redis down)."""
    return f"rate limiter unavailable: failed {'open' if fail_open else 'closed'}"


class RateLimiter(Protocol):
    async def hit(
        self, key: str, limit: int, interval_s: int, technique: str, *, notes: Notes | None = None
    ) -> float | None:
        """Count one request. None: admitted. Otherwise the seconds until one would be. A limiter
        that could not count (store unreachable) says so in `notes`."""
        ...


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._fixed: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._sliding: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    async def hit(
        self, key: str, limit: int, interval_s: int, technique: str, *, notes: Notes | None = None
    ) -> float | None:
        now = time.time()
        if len(self._fixed) + len(self._sliding) > self._max_keys:
            self._fixed.clear()  # bounded memory; at worst a window restarts
            self._sliding.clear()
        if technique == "sliding":
            return self._hit_sliding(key, limit, interval_s, now)
        return self._hit_fixed(key, limit, interval_s, now)

    def _hit_fixed(self, key: str, limit: int, interval_s: int, now: float) -> float | None:
        window = int(now // interval_s)
        current, count = self._fixed.get(key, (window, 0))
        if current != window:
            count = 0
        if count >= limit:
            return (window + 1) * interval_s - now
        self._fixed[key] = (window, count + 1)
        return None

    def _hit_sliding(self, key: str, limit: int, interval_s: int, now: float) -> float | None:
        stamps = self._sliding.setdefault(key, deque())
        while stamps and stamps[0] <= now - interval_s:
            stamps.popleft()
        if len(stamps) >= limit:
            return stamps[0] + interval_s - now
        stamps.append(now)
        return None


# KEYS[1] counter key; ARGV: limit, interval (s), technique, now (ms), unique member.
# Returns -1 when admitted, else the milliseconds until a request would be admitted.
_LUA = """
local limit = tonumber(ARGV[1])
local interval_ms = tonumber(ARGV[2]) * 1000
local now = tonumber(ARGV[4])
if ARGV[3] == 'sliding' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - interval_ms)
  if redis.call('ZCARD', KEYS[1]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + interval_ms - now)
  end
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], interval_ms)
  return -1
end
local window = math.floor(now / interval_ms)
local key = KEYS[1] .. ':' .. window
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIRE', key, interval_ms) end
if count > limit then
  return math.max(1, (window + 1) * interval_ms - now)
end
return -1
"""


class RedisRateLimiter:
    """Exact across workers and replicas. `fail_open` decides what happens when Redis is down."""

    def __init__(self, redis: Any, fail_open: bool) -> None:
        self._script = redis.register_script(_LUA)
        self._fail_open = fail_open
        self._sequence = 0
        self._instance = secrets.token_hex(8)  # members must be unique across processes

    async def hit(
        self, key: str, limit: int, interval_s: int, technique: str, *, notes: Notes | None = None
    ) -> float | None:
        now_ms = int(time.time() * 1000)
        self._sequence += 1
        member = f"{now_ms}:{self._instance}:{self._sequence}"
        try:
            wait_ms = await self._script(
                keys=[f"aigw:rl:{key}"], args=[limit, interval_s, technique, now_ms, member]
            )
        except Exception as exc:  # Redis down or unreachable: the documented policy decides
            logger.warning(
                "rate limiter unavailable (%s); failing %s", exc, "open" if self._fail_open else "closed"
            )
            if notes is not None:
                notes.add(unavailable_note(self._fail_open))
            return None if self._fail_open else float(interval_s)
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000
