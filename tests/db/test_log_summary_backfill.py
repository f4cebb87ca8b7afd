"""Migration 0009 fills the hourly summary from the rows already stored, with the same hours and
the same duration rounding as the log writer's Python (app/db/log_summary.py), on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import pool, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.log_store import insert_logs
from app.db.log_summary import SUMMARY, duration_key, hour_of
from app.db.migrate import upgrade
from app.db.session import async_url
from tests.support.backends import fresh_postgres
from tests.support.log_rows import row

DURATIONS = [None, 0, 7, 99, 100, 104, 105, 994, 995, 999, 1000, 1049, 1050, 9949, 9950, 123_456, 98_765_432]
T0 = datetime(2030, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC)  # the last instant of an hour


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backfill.db'}"
        return
    postgres_url = request.getfixturevalue("postgres_url")
    with fresh_postgres(postgres_url, prefix="aigw_sum") as url:
        yield url


def log_rows() -> list[dict[str, Any]]:
    return [
        row(
            "gw",
            T0 + timedelta(microseconds=index % 2),  # 23:59:59.999999 and the next hour's 0:00
            id=f"01J{index:023d}",
            account_id="acct",
            provider="openai" if index % 3 else "anthropic",
            model=None if index % 4 == 0 else "m",
            duration_ms=duration,
            success=index % 5 != 0,
            cached=index % 7 == 0,
            tokens_in=index,
            tokens_out=None if index % 2 else 2 * index,
            cost=index * 0.25,
        )
        for index, duration in enumerate(DURATIONS)
    ]


def expected(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        key = (
            "acct",
            "gw",
            hour_of(r["created_at"]),
            r["provider"],
            r["model"] or "",
            duration_key(r["duration_ms"]),
        )
        s = sums.setdefault(key, [0, 0, 0, 0, 0, 0.0])
        s[0] += 1
        s[1] += 0 if r["success"] else 1
        s[2] += 1 if r["cached"] else 0
        s[3] += r["tokens_in"] or 0
        s[4] += r["tokens_out"] or 0
        s[5] += r["cost"] or 0.0
    return {key: tuple(value) for key, value in sums.items()}


def test_backfill_matches_the_writers_rounding_and_hours(database_url: str) -> None:
    upgrade(database_url, "0005_rest")
    rows = log_rows()

    async def seed_then_read() -> dict[tuple[Any, ...], tuple[Any, ...]]:
        engine = create_async_engine(async_url(database_url), poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                await insert_logs(connection, rows)
            await asyncio.to_thread(upgrade, database_url)
            async with engine.connect() as connection:
                found = await connection.execute(select(SUMMARY))
                return {tuple(r[:6]): tuple(r[6:]) for r in found}
        finally:
            await engine.dispose()

    found = asyncio.run(seed_then_read())
    assert found == expected(rows)
    assert {key[2] for key in found} == {hour_of(T0), hour_of(T0) + 3600}  # .999999 stays in its hour
    assert {key[5] for key in found} >= {
        -1,
        0,
        99,
        100,
        110,
        990,
        1000,
        1100,
        9900,
        10_000,
        120_000,
        99_000_000,
    }
