"""Spend budgets in Redis: admission and settlement are one Lua call each over every bucket of a
call, so all workers and replicas share one exact count (spend-limits.md §4). The calls go over
the store's own pipelined connection (`pipe.py`), not redis-py's client.

Per bucket, a hash `aigw:spend:{key}` holds `r` (reserved), for fixed windows `w` / `v` (window
number, settled in it), for sliding ones `s{slot}` amounts with their total `t` and oldest slot
`m`; a sorted set `…:leases` holds the reservations (`{id}|{estimate}`, scored by lease expiry).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from app.services.spend.pipe import Arg, RedisPipe, RedisReplyError, RedisUnavailable
from app.services.spend.store import ADMITTED, Bucket, SpendStoreUnavailable, Verdict

logger = logging.getLogger("aigw.spend")

PREFIX = "aigw:spend:"

# KEYS: per bucket its hash, then its lease set. ARGV: now (ms), reservation ('' = none), lease
# expiry (ms), estimate, mode ('admit' | 'settle'), cost, and the buckets' specs in one string
# (`limit sliding(1/0) window(ms) slot(ms)` per bucket: fewer arguments to pack on every call).
# Admit returns {0, -1} or {index of the first refusing bucket (1-based), wait in ms or -1}.
_LUA = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local lease_until = tonumber(ARGV[3])
local estimate = tonumber(ARGV[4])
local mode = ARGV[5]
local cost = tonumber(ARGV[6])
local n = #KEYS / 2
local specs = {}
for number in string.gmatch(ARGV[7], '%S+') do table.insert(specs, tonumber(number)) end

local function spec(i)
  local b = (i - 1) * 4
  return specs[b + 1], specs[b + 2] == 1, specs[b + 3], specs[b + 4]
end

local function admits(settled, reserved, limit)
  return settled + reserved < limit and settled + reserved + estimate <= limit
end

local function settled_of(h, sliding, window, slot)
  if not sliding then
    local f = redis.call('HMGET', h, 'w', 'v')
    if tonumber(f[1]) == math.floor(now / window) then return tonumber(f[2]) or 0 end
    return 0
  end
  local cutoff = math.floor((now - window) / slot)
  local oldest = tonumber(redis.call('HGET', h, 'm'))
  if oldest == nil or oldest >= cutoff then return tonumber(redis.call('HGET', h, 't')) or 0 end
  local all = redis.call('HGETALL', h)
  local total, low = 0, nil
  for j = 1, #all, 2 do
    local f = all[j]
    if string.sub(f, 1, 1) == 's' then
      local k = tonumber(string.sub(f, 2))
      if k < cutoff then
        redis.call('HDEL', h, f)
      else
        total = total + tonumber(all[j + 1])
        if low == nil or k < low then low = k end
      end
    end
  end
  redis.call('HSET', h, 't', total)
  if low == nil then redis.call('HDEL', h, 'm') else redis.call('HSET', h, 'm', low) end
  return total
end

local function add(h, sliding, window, slot, amount)
  if amount <= 0 then return end
  if not sliding then
    local w = math.floor(now / window)
    if tonumber(redis.call('HGET', h, 'w')) == w then
      redis.call('HINCRBY', h, 'v', amount)
    else
      redis.call('HSET', h, 'w', w, 'v', amount)
    end
    return
  end
  settled_of(h, sliding, window, slot)
  local k = math.floor(now / slot)
  redis.call('HINCRBY', h, 's' .. k, amount)
  redis.call('HINCRBY', h, 't', amount)
  if redis.call('HEXISTS', h, 'm') == 0 then redis.call('HSET', h, 'm', k) end
end

local function expire_leases(h, l, sliding, window, slot)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', l, '-inf', now)) do
    redis.call('ZREM', l, m)
    local held = tonumber(string.match(m, '|(%d+)$'))
    redis.call('HINCRBY', h, 'r', -held)
    add(h, sliding, window, slot, held)
  end
end

local function wait_of(h, settled, limit, sliding, window, slot)
  if estimate > limit or admits(settled, 0, limit) then return -1 end
  if not sliding then return (math.floor(now / window) + 1) * window - now end
  local slots = {}
  local all = redis.call('HGETALL', h)
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 1) == 's' then
      table.insert(slots, {tonumber(string.sub(all[j], 2)), tonumber(all[j + 1])})
    end
  end
  table.sort(slots, function(a, b) return a[1] < b[1] end)
  local remaining = settled
  for _, entry in ipairs(slots) do
    remaining = remaining - entry[2]
    if admits(remaining, 0, limit) then return (entry[1] + 1) * slot + window - now end
  end
  return -1
end

-- Only ever lengthened: a settlement must not cut short the lease of another call in flight.
local function keep(h, l, window, slot)
  local ttl = window + slot + math.max(0, lease_until - now)
  for _, key in ipairs({h, l}) do
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end

if mode == 'settle' then
  for i = 1, n do
    local h, l = KEYS[2 * i - 1], KEYS[2 * i]
    local limit, sliding, window, slot = spec(i)
    if member == '' or redis.call('ZREM', l, member) == 1 then
      if member ~= '' then redis.call('HINCRBY', h, 'r', -estimate) end
      add(h, sliding, window, slot, cost)
      keep(h, l, window, slot)
    end
  end
  return {0, -1}
end

local refused, wait = 0, -1
for i = 1, n do
  local h, l = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, sliding, window, slot = spec(i)
  expire_leases(h, l, sliding, window, slot)
  local settled = settled_of(h, sliding, window, slot)
  local reserved = tonumber(redis.call('HGET', h, 'r')) or 0
  if not admits(settled, reserved, limit) then
    if refused == 0 then refused = i end
    wait = math.max(wait, wait_of(h, settled, limit, sliding, window, slot))
  end
end
if refused > 0 or member == '' then return {refused, wait} end
for i = 1, n do
  local h, l = KEYS[2 * i - 1], KEYS[2 * i]
  local _, _, window, slot = spec(i)
  redis.call('HINCRBY', h, 'r', estimate)
  redis.call('ZADD', l, lease_until, member .. '|' .. estimate)
  keep(h, l, window, slot)
end
return {0, -1}
"""


_SHA = hashlib.sha1(_LUA.encode()).hexdigest().encode()


def _encoded(bucket: Bucket) -> tuple[bytes, bytes, bytes]:
    """Its two keys and its spec, as sent: built once per bucket, not on every call."""
    key = f"{PREFIX}{bucket.key}".encode()
    spec = f"{bucket.limit} {int(bucket.sliding)} {bucket.window_s * 1000} {bucket.slot_s * 1000}"
    return key, key + b":leases", spec.encode()


def _noscript(error: BaseException | None) -> bool:
    return isinstance(error, RedisReplyError) and str(error).startswith("NOSCRIPT")


class RedisSpendStore:
    # Buckets remembered with their encoded form; past this many (partitions by user, say) the
    # memo starts again rather than grow without bound.
    MEMO_SIZE = 4096

    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe
        self._memo: dict[Bucket, tuple[bytes, bytes, bytes]] = {}
        self._pending: set[asyncio.Future[Any]] = set()

    @classmethod
    def at(cls, url: str, timeout_s: float) -> RedisSpendStore:
        return cls(RedisPipe(url, timeout_s))

    def _call_args(self, buckets: list[Bucket]) -> tuple[list[bytes], bytes]:
        keys: list[bytes] = []
        specs: list[bytes] = []
        memo = self._memo
        for bucket in buckets:
            encoded = memo.get(bucket)
            if encoded is None:
                if len(memo) >= self.MEMO_SIZE:
                    memo.clear()
                encoded = memo[bucket] = _encoded(bucket)
            keys += encoded[:2]
            specs.append(encoded[2])
        return keys, b" ".join(specs)

    async def admit(self, buckets: list[Bucket], reservation: str, estimate: int, lease_s: float) -> Verdict:
        now_ms = int(time.time() * 1000)
        lease_until = now_ms + int(lease_s * 1000)
        keys, specs = self._call_args(buckets)
        args: tuple[Arg, ...] = (
            len(keys),
            *keys,
            now_ms,
            reservation.encode(),
            lease_until,
            estimate,
            b"admit",
            0,
            specs,
        )
        try:
            try:
                refused, wait_ms = await self._pipe.call(b"EVALSHA", _SHA, *args)
            except RedisReplyError as exc:
                if not _noscript(exc):
                    raise
                # Redis restarted or its scripts were flushed: EVAL runs it and caches it again.
                refused, wait_ms = await self._pipe.call(b"EVAL", _LUA, *args)
        except (RedisUnavailable, RedisReplyError) as exc:  # the caller's policy decides
            raise SpendStoreUnavailable(str(exc)) from exc
        if refused == 0:
            return ADMITTED
        return Verdict(int(refused) - 1, int(wait_ms) / 1000 if int(wait_ms) >= 0 else None)

    def settle(self, buckets: list[Bucket], reservation: str, estimate: int, cost: int) -> None:
        """Written at once, its reply awaited by no task: only a callback reads it."""
        member = f"{reservation}|{estimate}".encode() if reservation else b""
        keys, specs = self._call_args(buckets)
        now_ms = int(time.time() * 1000)
        args: tuple[Arg, ...] = (len(keys), *keys, now_ms, member, 0, estimate, b"settle", cost, specs)
        self._track(self._pipe.call(b"EVALSHA", _SHA, *args), args)

    def _track(self, future: asyncio.Future[Any], args: tuple[Arg, ...] | None) -> None:
        self._pending.add(future)
        future.add_done_callback(lambda done: self._settled(done, args))

    def _settled(self, future: asyncio.Future[Any], args: tuple[Arg, ...] | None) -> None:
        self._pending.discard(future)
        error = None if future.cancelled() else future.exception()
        if error is None:
            return
        if args is not None and _noscript(error):
            self._track(self._pipe.call(b"EVAL", _LUA, *args), None)
            return
        # Its lease settles it at the estimate: the conservative side.
        logger.warning("spend settlement not recorded (%s); its lease will settle it", error)

    async def drop(self, prefix: str) -> None:
        pattern = PREFIX + "".join(f"[{c}]" if c in "*?[]\\" else c for c in prefix) + "*"
        cursor: bytes = b"0"
        try:
            while True:
                cursor, keys = await self._pipe.call(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", 500)
                if keys:
                    await self._pipe.call(b"DEL", *keys)
                if cursor == b"0":
                    return
        except (RedisUnavailable, RedisReplyError) as exc:
            raise SpendStoreUnavailable(str(exc)) from exc

    async def drain(self) -> None:
        while self._pending:  # a NOSCRIPT retry may add one while we wait
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self._pipe.aclose()
