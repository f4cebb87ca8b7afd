"""The log store below the API, driven directly: metadata index rows, counters, storage limits in
one batch, rows queued for a deleted gateway, chunked deletion — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.ids import new_log_id
from app.db import log_store
from app.db.gateways import GatewayCreate, create_gateway
from app.db.log_store import COUNTERS, METADATA, delete_matching, metadata_text, store_batch
from app.db.migrate import upgrade_async
from app.db.session import create_engine, session_factory
from tests.support.management import BACKENDS, backend_url

ACCT = "acct"


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    with backend_url(request.param, tmp_path) as url:
        await upgrade_async(url)
        engine = create_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()


async def gateway(engine: AsyncEngine, gateway_id: str, **fields: Any) -> None:
    async with session_factory(engine)() as session:
        await create_gateway(session, ACCT, GatewayCreate(id=gateway_id, **fields))


def row(gateway_id: str, *, at: datetime | None = None, metadata: Any = None) -> dict[str, Any]:
    return {
        "id": new_log_id(), "account_id": ACCT, "gateway_id": gateway_id,
        "created_at": at or datetime.now(UTC), "provider": "openai", "model": "m", "path": "p",
        "request_type": "provider", "step": 0, "success": True, "cached": False, "attempts": 1,
        "custom_cost": False, "metadata": metadata, "request_size": 0, "response_size": 0,
        "request_body_complete": True, "response_body_complete": True, "authenticated": False,
    }  # fmt: skip


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar()


async def store(engine: AsyncEngine, rows: list[dict[str, Any]]) -> tuple[int, int]:
    async with engine.begin() as connection:
        return await store_batch(connection, rows)


def test_metadata_text() -> None:
    assert [metadata_text(v) for v in (True, False, 1.0, 1.5, 7, "x")] == [
        "true",
        "false",
        "1",
        "1.5",
        "7",
        "x",
    ]
    assert len(metadata_text("y" * 2000)) == 512


async def test_metadata_rows_and_counters(engine: AsyncEngine) -> None:
    await gateway(engine, "g1")
    written, refused = await store(
        engine, [row("g1", metadata={"user": "u", "flag": True, "n": 2.0}), row("g1"), row("g1", metadata={})]
    )
    assert (written, refused) == (3, 0)
    async with engine.connect() as connection:
        entries = (
            await connection.execute(select(METADATA.c.key, METADATA.c.value).order_by(METADATA.c.key))
        ).all()
        counter = (await connection.execute(select(COUNTERS.c.log_count))).scalar()
    assert [tuple(e) for e in entries] == [("flag", "true"), ("n", "2"), ("user", "u")]
    assert counter == 3


async def test_limits_within_one_batch(engine: AsyncEngine) -> None:
    await gateway(engine, "stop", log_management=2, log_management_strategy="STOP_INSERTING")
    await gateway(engine, "oldest", log_management=2, log_management_strategy="DELETE_OLDEST")
    stop_rows, oldest_rows = (
        [row("stop") for _ in range(5)],
        [row("oldest", metadata={"k": i}) for i in range(5)],
    )
    assert await store(engine, [*stop_rows, *oldest_rows]) == (7, 3)
    async with engine.connect() as connection:
        kept = {
            g: sorted(
                i
                for (i,) in await connection.execute(
                    text("SELECT id FROM logs WHERE gateway_id = :g"), {"g": g}
                )
            )
            for g in ("stop", "oldest")
        }
    assert kept["stop"] == sorted(r["id"] for r in stop_rows[:2])
    assert kept["oldest"] == sorted(r["id"] for r in oldest_rows[3:])
    assert await scalar(engine, "SELECT count(*) FROM log_metadata WHERE gateway_id = 'oldest'") == 2
    assert await scalar(engine, "SELECT log_count FROM log_counters WHERE gateway_id = 'oldest'") == 2
    assert await store(engine, [row("stop")]) == (0, 1)


async def test_rows_queued_for_a_deleted_gateway(engine: AsyncEngine) -> None:
    queued_at = datetime.now(UTC) - timedelta(seconds=5)
    orphan = row("again", at=queued_at)
    assert await store(engine, [orphan]) == (1, 0)  # no such gateway (any more): written...
    await gateway(engine, "again")  # ...and purged when the id is taken again
    assert await scalar(engine, "SELECT count(*) FROM logs WHERE gateway_id = 'again'") == 0
    assert await scalar(engine, "SELECT count(*) FROM log_counters WHERE gateway_id = 'again'") == 0
    late = row("again", at=queued_at)  # queued before the new gateway existed, written after
    fresh = row("again")
    assert await store(engine, [late, fresh]) == (1, 1)
    assert await scalar(engine, "SELECT id FROM logs WHERE gateway_id = 'again'") == fresh["id"]


async def test_chunked_delete_keeps_the_counter(engine: AsyncEngine) -> None:
    await gateway(engine, "big")
    count = log_store.DELETE_CHUNK * 2 + 17
    await store(engine, [row("big", metadata={"i": i}) for i in range(count)])
    async with engine.begin() as connection:
        removed = await delete_matching(connection, (ACCT, "big"), [], [log_store.LOGS.c.id], 600)
    assert removed == 600
    assert await scalar(engine, "SELECT log_count FROM log_counters WHERE gateway_id = 'big'") == count - 600
    async with engine.begin() as connection:
        assert (
            await delete_matching(connection, (ACCT, "big"), [], [log_store.LOGS.c.id], None) == count - 600
        )
    assert await scalar(engine, "SELECT count(*) FROM log_metadata") == 0
    assert await scalar(engine, "SELECT log_count FROM log_counters WHERE gateway_id = 'big'") == 0


async def test_retry_skips_rows_an_earlier_attempt_committed(engine: AsyncEngine) -> None:
    await gateway(engine, "gw-retry")
    first, second = row("gw-retry"), row("gw-retry")
    assert await store(engine, [first]) == (1, 0)  # committed, but say its acknowledgement was lost
    async with engine.begin() as connection:
        assert await store_batch(connection, [first, second], skip_existing=True) == (1, 0)
    count = await scalar(engine, "SELECT count(*) FROM logs WHERE gateway_id = 'gw-retry'")
    assert count == 2
