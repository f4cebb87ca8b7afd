"""The two budget stores keep the same contract (spend-limits.md §4): all-or-nothing admission,
settlement exactly once, leases settled at their estimate, fixed and sliding windows, and the
Retry-After they compute. The Redis one runs when AIGW_TEST_REDIS_URL is set."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from app.services.spend.memory import MemorySpendStore
from app.services.spend.redis import RedisSpendStore
from app.services.spend.store import Bucket, SpendStore, SpendStoreUnavailable


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SpendStore]:
    if request.param == "memory":
        yield MemorySpendStore()
        return
    redis_store = RedisSpendStore.at(request.getfixturevalue("redis_url"), 1.0)
    yield redis_store
    await redis_store.aclose()


def bucket(limit: int, window_s: int = 3600, *, sliding: bool = False, slot_s: int = 1) -> Bucket:
    return Bucket(f"test-{uuid.uuid4().hex}/r/x/{window_s}/", limit, window_s, slot_s, sliding)


async def settle(
    store: SpendStore, buckets: list[Bucket], reservation: str, estimate: int, cost: int
) -> None:
    store.settle(buckets, reservation, estimate, cost)
    await store.drain()


async def test_all_or_nothing(store: SpendStore) -> None:
    roomy, tight = bucket(100), bucket(10)
    assert (await store.admit([roomy, tight], "a", 10, 60)).refused is None
    verdict = await store.admit([roomy, tight], "b", 10, 60)
    assert verdict.refused == 1 and verdict.retry_after_s is None  # only the reservation blocks
    # The refused call reserved nothing in the roomy bucket: 90 still fit there.
    assert (await store.admit([roomy], "c", 90, 60)).refused is None


async def test_settles_once_to_the_real_cost(store: SpendStore) -> None:
    b = bucket(10)
    assert (await store.admit([b], "a", 10, 60)).refused is None
    await settle(store, [b], "a", 10, 3)
    await settle(store, [b], "a", 10, 3)  # a second settlement of the same call changes nothing
    assert (await store.admit([b], "b", 7, 60)).refused is None
    assert (await store.admit([b], "c", 1, 60)).refused == 0


async def test_exact_under_concurrency(store: SpendStore) -> None:
    b = bucket(5)
    verdicts = await asyncio.gather(*(store.admit([b], f"r{i}", 1, 60) for i in range(20)))
    assert sum(v.refused is None for v in verdicts) == 5


async def test_fixed_window_retry_after(store: SpendStore) -> None:
    b = bucket(10, window_s=60)
    await store.admit([b], "a", 10, 60)
    await settle(store, [b], "a", 10, 10)
    verdict = await store.admit([b], "b", 1, 60)
    assert verdict.refused == 0
    assert verdict.retry_after_s is not None and 0 < verdict.retry_after_s <= 60


async def test_sliding_window_expires_after_the_window(store: SpendStore) -> None:
    b = bucket(10, window_s=2, sliding=True, slot_s=1)
    await store.admit([b], "a", 10, 60)
    await settle(store, [b], "a", 10, 10)
    verdict = await store.admit([b], "b", 5, 60)
    assert verdict.refused == 0
    assert verdict.retry_after_s is not None and 2 < verdict.retry_after_s <= 3
    await asyncio.sleep(1.5)
    assert (await store.admit([b], "c", 5, 60)).refused == 0  # never sooner than the window
    await asyncio.sleep(verdict.retry_after_s - 1.5 + 0.05)
    assert (await store.admit([b], "d", 5, 60)).refused is None


async def test_an_expired_lease_is_settled_at_its_estimate(store: SpendStore) -> None:
    b = bucket(10)
    assert (await store.admit([b], "lost", 6, 0.2)).refused is None  # its process never settles
    await asyncio.sleep(0.3)
    assert (await store.admit([b], "b", 4, 60)).refused is None  # 6 settled + 4 = 10
    assert (await store.admit([b], "c", 1, 60)).refused == 0
    await settle(store, [b], "lost", 6, 0)  # too late: it was settled at its estimate already
    assert (await store.admit([b], "d", 1, 60)).refused == 0


async def test_drop_forgets_the_prefix(store: SpendStore) -> None:
    b = bucket(1)
    await store.admit([b], "a", 1, 60)
    assert (await store.admit([b], "b", 1, 60)).refused == 0
    await store.drop(b.key.split("/")[0] + "/")
    assert (await store.admit([b], "c", 1, 60)).refused is None


async def test_redis_down_is_reported() -> None:
    down = RedisSpendStore.at("redis://127.0.0.1:1/0", 0.2)
    with pytest.raises(SpendStoreUnavailable):
        await down.admit([bucket(1)], "a", 1, 60)
    await down.aclose()
