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


def test_redis_entries_carry_the_log_copy_and_read_older_entries() -> None:
    from app.services.cache.redis import decode, encode

    stream = CachedResponse(
        200, (("content-type", "text/event-stream"),), b"ab\ncd", (b"ab", b"\ncd"), b"[R]"
    )
    assert decode(encode(stream)) == stream
    body = CachedResponse(200, (), b'{"a": 1}', None, b'{"a": "[REDACTED:x]"}')
    assert decode(encode(body)) == body
    assert decode(b'{"s":200,"h":[],"c":null}\n{"a": 1}') == CachedResponse(
        200, (), b'{"a": 1}'
    )  # before log copies
