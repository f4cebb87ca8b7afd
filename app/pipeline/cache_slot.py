"""One step's place in the response cache: look it up, then store the answer or abandon the slot.

Identical concurrent misses share one upstream call: in one process through the `Coalescer`, across
replicas through a short claim in the store (Redis). The step that leads a miss must end its slot
once, with `store` or `abandon`, so the requests waiting on it go on; both are idempotent.
"""

from __future__ import annotations

import asyncio
import re

from app.pipeline.step import StepRun
from app.services.cache.coalescer import Coalescer
from app.services.cache.key import cache_key
from app.services.cache.store import CachedResponse, CacheStore

DEFAULT_KEY_TTL_S = 300  # a request with `cf-aig-cache-key` and no TTL anywhere
CLAIM_TTL_S = 30.0  # how long other replicas wait for one that fetches a shared cache miss
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')


class CacheSlot:
    __slots__ = ("_coalescer", "_ended", "_leading", "_run", "_store", "key", "ttl_s")

    def __init__(self, store: CacheStore, coalescer: Coalescer, run: StepRun, key: str, ttl_s: int) -> None:
        self._store = store
        self._coalescer = coalescer
        self._run = run
        self.key = key
        self.ttl_s = ttl_s
        self._leading = False
        self._ended = False

    async def lookup(self) -> CachedResponse | None:
        """The cached answer (possibly one an identical request in flight just fetched), or None:
        the step calls upstream and must end the slot."""
        notes = self._run.notes
        cached = await self._store.get(self.key, notes=notes)
        if cached is not None:
            return cached
        waiting = self._coalescer.lead_or_follow(self.key)
        if waiting is not None:  # an identical request is in flight: share its answer
            return await asyncio.shield(waiting)  # None: it failed, and this step calls itself
        self._leading = True
        if not await self._store.claim(self.key, CLAIM_TTL_S, notes=notes):
            # Another replica is fetching this very response: wait for its entry.
            cached = await self._store.wait_for(self.key, CLAIM_TTL_S, notes=notes)
            if cached is not None:
                self._ended = True
                self._coalescer.finish(self.key, cached)
                return cached
        return None

    async def store(self, response: CachedResponse) -> None:
        await self._end(response)

    async def abandon(self) -> None:
        await self._end(None)

    async def _end(self, response: CachedResponse | None) -> None:
        if self._ended:
            return
        self._ended = True
        if response is not None:
            await self._store.set(self.key, response, self.ttl_s)
        if self._leading:
            self._coalescer.finish(self.key, response)
            await self._store.release(self.key)


class CacheSlots:
    """Opens the cache slot of a step, or none when the step is not to be cached."""

    def __init__(self, store: CacheStore) -> None:
        self._store = store
        self._coalescer = Coalescer()

    def open(self, run: StepRun, url: str) -> CacheSlot | None:
        options = run.options
        ttl = options.cache_ttl or run.gateway.cache_ttl or (DEFAULT_KEY_TTL_S if options.cache_key else 0)
        if options.skip_cache or ttl <= 0:
            return None
        return CacheSlot(self._store, self._coalescer, run, self._key(run, url), ttl)

    @staticmethod
    def _key(run: StepRun, url: str) -> str:
        step = run.step
        names = run.provider.credential_headers
        credentials = [v for n, v in step.headers if n.lower() in names or n.lower() == "authorization"]
        return cache_key(
            run.request.account_id,
            run.request.gateway_id,
            custom_key=run.options.cache_key,
            provider=run.provider.slug,
            method=step.method,
            url=url,
            body=step.body,
            credentials=credentials,
            stream=bool(_STREAM_FLAG.search(step.body)) or "alt=sse" in url,
        )
