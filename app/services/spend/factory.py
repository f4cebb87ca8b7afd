"""The budget store a server uses: Redis when it has one (shared by every worker and replica),
otherwise this process's memory."""

from __future__ import annotations

from app.core.settings import Settings
from app.services.spend.memory import MemorySpendStore
from app.services.spend.redis import RedisSpendStore
from app.services.spend.store import SpendStore


def spend_store_for(settings: Settings) -> SpendStore:
    if settings.redis_url:
        return RedisSpendStore.at(settings.redis_url, settings.spend_redis_timeout_s)
    return MemorySpendStore()
