"""Cache keys and the in-memory store (app/services/cache/)."""

from __future__ import annotations

from app.services.cache.key import cache_key
from app.services.cache.memory import MemoryCache
from app.services.cache.store import CachedResponse


def test_cache_key_scopes() -> None:
    common = {"provider": "openai", "method": "POST", "url": "u", "body": b"{}", "stream": False}
    a = cache_key("acct", "gw", custom_key=None, credentials=["Bearer a"], **common)  # type: ignore[arg-type]
    b = cache_key("acct", "gw", custom_key=None, credentials=["Bearer b"], **common)  # type: ignore[arg-type]
    c = cache_key("acct2", "gw", custom_key=None, credentials=["Bearer a"], **common)  # type: ignore[arg-type]
    assert len({a, b, c}) == 3 and a.startswith("acct/gw/")


async def test_memory_cache_bounds_and_expiry() -> None:
    cache = MemoryCache(max_bytes=1000)
    await cache.set("a", CachedResponse(200, (), b"x" * 600), 60)
    await cache.set("b", CachedResponse(200, (), b"y" * 600), 60)
    assert await cache.get("a") is None and await cache.get("b") is not None
    await cache.set("c", CachedResponse(200, (), b"z"), 0)
    assert await cache.get("c") is None
