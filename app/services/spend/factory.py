"""The budget store a server uses: Redis when it has one (shared by every worker and replica),
otherwise this process's memory."""

from __future__ import annotations

from typing import Any

from app.services.spend.memory import MemorySpendStore
from app.services.spend.redis import RedisSpendStore
from app.services.spend.store import SpendStore


def spend_store_for(redis: Any | None) -> SpendStore:
    return RedisSpendStore(redis) if redis is not None else MemorySpendStore()
