"""Log rows written straight into a management server's database through the log writer's own
`store_batch` (so the counters, metadata index and hourly summary are kept as in production):
rows with any timestamp and values, for tests that check numbers computed by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.ids import new_log_id
from app.db.log_store import store_batch
from app.db.session import async_url
from tests.support.helpers import ACCT
from tests.support.management import Mgmt, _run_in_thread


def row(gw: str, when: datetime, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": new_log_id(), "account_id": ACCT, "gateway_id": gw, "created_at": when,
        "provider": "openai", "model": "gpt-4o", "path": "chat/completions", "request_type": "provider",
        "step": 0, "success": True, "cached": False, "attempts": 1, "duration_ms": 100,
        "tokens_in": None, "tokens_out": None, "cost": None, "custom_cost": False, "metadata": None,
        "request_size": 0, "response_size": 0, "request_body_complete": True,
        "response_body_complete": True, "authenticated": False,
    }  # fmt: skip
    values.update(fields)
    return values


def insert(m: Mgmt, rows: list[dict[str, Any]]) -> None:
    async def go() -> None:
        engine = create_async_engine(async_url(m.server.settings.database_url), poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                await store_batch(connection, rows)
        finally:
            await engine.dispose()

    _run_in_thread(go)
