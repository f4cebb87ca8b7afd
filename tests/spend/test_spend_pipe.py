"""The spend store's own Redis connection (app/services/spend/pipe.py): concurrent callers pipeline
on one connection and each gets its own reply; a reply that does not come, a connection cut in
the middle of a reply, or garbage fail the commands in flight (the store is then unavailable) and
the next command connects again; NOSCRIPT falls back to EVAL; the queue is bounded. Against a
real Redis (AIGW_TEST_REDIS_URL) and a hostile fake one (fake_redis.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from app.services.spend.pipe import RedisPipe, RedisReplyError, RedisUnavailable
from app.services.spend.redis import _LUA, RedisSpendStore
from app.services.spend.store import Bucket, SpendStoreUnavailable
from tests.spend.fake_redis import FakeRedis


@pytest.fixture
def fake() -> Iterator[FakeRedis]:
    server = FakeRedis().start()
    yield server
    server.stop()


@pytest.fixture
async def pipe(redis_url: str) -> AsyncIterator[RedisPipe]:
    connection = RedisPipe(redis_url, timeout_s=2.0)
    yield connection
    await connection.aclose()


def bucket(limit: int = 100) -> Bucket:
    return Bucket(f"test-{uuid.uuid4().hex}/r/fixed/3600/", limit, 3600, 4, False)


async def test_concurrent_callers_each_get_their_own_reply(pipe: RedisPipe) -> None:
    replies = await asyncio.gather(*(pipe.call(b"ECHO", f"n{i}") for i in range(500)))
    assert replies == [f"n{i}".encode() for i in range(500)]


async def test_a_cancelled_caller_does_not_shift_the_replies(pipe: RedisPipe) -> None:
    await pipe.call(b"PING")
    first = pipe.call(b"ECHO", b"first")
    first.cancel()  # its caller gave up: its reply still comes, and is dropped
    assert await pipe.call(b"ECHO", b"second") == b"second"


async def test_an_error_reply_fails_its_command_only(pipe: RedisPipe) -> None:
    key = f"test-{uuid.uuid4().hex}"
    await pipe.call(b"SET", key, b"text", b"EX", 60)
    with pytest.raises(RedisReplyError, match="not an integer"):
        await pipe.call(b"INCR", key)
    assert await pipe.call(b"ECHO", b"still here") == b"still here"


async def test_a_killed_connection_reconnects_on_next_use(pipe: RedisPipe, redis_url: str) -> None:
    own_id = await pipe.call(b"CLIENT", b"ID")
    killer = RedisPipe(redis_url)
    assert await killer.call(b"CLIENT", b"KILL", b"ID", own_id) == 1
    await killer.aclose()
    await asyncio.sleep(0.1)  # the close reaches us
    assert await pipe.call(b"ECHO", b"again") == b"again"
    assert await pipe.call(b"CLIENT", b"ID") != own_id


async def test_concurrent_admissions_share_one_connection(fake: FakeRedis) -> None:
    store = RedisSpendStore.at(fake.redis_url, 1.0)
    verdicts = await asyncio.gather(*(store.admit([bucket()], f"r{i}", 1, 60) for i in range(50)))
    assert all(verdict.refused is None for verdict in verdicts)
    assert fake.connections == 1 and fake.names().count(b"EVALSHA") == 50
    await store.aclose()


async def test_no_reply_times_out_then_reconnects(fake: FakeRedis) -> None:
    store = RedisSpendStore.at(fake.redis_url, 0.3)
    assert (await store.admit([bucket()], "a", 1, 60)).refused is None
    fake.mode = "slow"
    started = time.monotonic()
    results = await asyncio.gather(
        *(store.admit([bucket()], f"s{i}", 1, 60) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, SpendStoreUnavailable) for result in results), results
    assert "no reply within 0.3s" in str(results[0])
    assert 0.25 < time.monotonic() - started < 1.5
    fake.mode = "ok"
    assert (await store.admit([bucket()], "b", 1, 60)).refused is None
    assert fake.connections == 2
    await store.aclose()


@pytest.mark.parametrize("mode", ["cut", "garbage"])
async def test_a_broken_reply_fails_what_is_in_flight_then_reconnects(fake: FakeRedis, mode: str) -> None:
    store = RedisSpendStore.at(fake.redis_url, 1.0)
    assert (await store.admit([bucket()], "a", 1, 60)).refused is None
    fake.mode = mode
    results = await asyncio.gather(
        *(store.admit([bucket()], f"x{i}", 1, 60) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, SpendStoreUnavailable) for result in results), results
    fake.mode = "ok"
    assert (await store.admit([bucket()], "b", 1, 60)).refused is None
    assert fake.connections == 2
    await store.aclose()


async def test_noscript_falls_back_to_eval(fake: FakeRedis) -> None:
    fake.mode = "noscript"
    store = RedisSpendStore.at(fake.redis_url, 1.0)
    target = bucket()
    assert (await store.admit([target], "a", 1, 60)).refused is None
    store.settle([target], "a", 1, 1)
    await store.drain()
    assert fake.names() == [b"EVALSHA", b"EVAL", b"EVALSHA", b"EVAL"]
    assert all(command[1] == _LUA.encode() for command in fake.commands if command[0] == b"EVAL")
    await store.aclose()


async def test_redis_url_credentials_and_database(fake: FakeRedis) -> None:
    store = RedisSpendStore.at(f"redis://:secret@127.0.0.1:{fake.port}/3", 1.0)
    assert (await store.admit([bucket()], "a", 1, 60)).refused is None
    assert fake.commands[:2] == [[b"AUTH", b"secret"], [b"SELECT", b"3"]]
    await store.aclose()
    refused = RedisSpendStore.at(f"redis://user:wrong@127.0.0.1:{fake.port}/0", 1.0)
    with pytest.raises(SpendStoreUnavailable, match="WRONGPASS"):
        await refused.admit([bucket()], "a", 1, 60)
    await refused.aclose()


async def test_commands_in_flight_are_bounded(fake: FakeRedis) -> None:
    bounded = RedisPipe(fake.redis_url, timeout_s=5.0, max_in_flight=3)
    assert await bounded.call(b"PING") == b"PONG"  # connected: what follows is in flight
    fake.mode = "slow"
    waiting = [bounded.call(b"EVALSHA", b"x", 0) for _ in range(3)]
    over = bounded.call(b"EVALSHA", b"x", 0)
    assert over.done() and isinstance(over.exception(), RedisUnavailable)  # at once, not queued
    await bounded.aclose()
    for future in waiting:
        with pytest.raises(RedisUnavailable):
            await future
