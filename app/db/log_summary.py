"""The hourly summary of log rows (`log_hourly`): per gateway, UTC hour, provider, model and
rounded duration, the number of rows, errors and cache hits and the sums of tokens and cost.

It is kept in the same transactions as the rows it sums — added to by the log writer's batch,
subtracted from by every deletion — so it always equals a GROUP BY over the stored rows, and
analytics over whole hours read a few thousand summary rows instead of every log row (a busy day
is a million rows; the summary of that day is about ten thousand).

Durations are kept to two significant digits (exact below 100 ms, then rounded to the nearest
10, 100, … ms: within 5 %), which is what makes the summary small: the duration percentiles of
summarised hours are percentiles of the rounded durations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.models import LogHourly

SUMMARY = LogHourly.__table__  # type: ignore[attr-defined]
HOUR_S = 3600
NO_DURATION = -1
# What a log row contributes, in the order of `_SUM_COLUMNS`.
_SUM_COLUMNS = ("requests", "errors", "cached", "tokens_in", "tokens_out", "cost")
# The columns of a deleted row the summary needs (what `delete … RETURNING` asks for).
ROW_COLUMNS = (
    "created_at", "provider", "model", "duration_ms", "success", "cached", "tokens_in", "tokens_out", "cost",
)  # fmt: skip
_Key = tuple[str, str, int, str, str, int]


def duration_key(duration_ms: int | None) -> int:
    """A duration rounded to two significant digits (exact below 100 ms); -1 for none."""
    if duration_ms is None:
        return NO_DURATION
    if duration_ms < 100:
        return max(duration_ms, 0)
    unit = 10 ** (len(str(duration_ms)) - 2)
    return (duration_ms + unit // 2) // unit * unit


def hour_of(created_at: datetime) -> int:
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return int(moment.timestamp()) // HOUR_S * HOUR_S


def _sums(
    rows: Iterable[Mapping[Any, Any]], account_id: str | None, gateway_id: str | None
) -> dict[_Key, list[Any]]:
    """Rows folded by summary key. Rows of the log writer carry their gateway; deleted rows come
    from one gateway, given."""
    sums: dict[_Key, list[Any]] = {}
    for row in rows:
        key = (
            account_id or row["account_id"],
            gateway_id or row["gateway_id"],
            hour_of(row["created_at"]),
            row.get("provider") or "",
            row.get("model") or "",
            duration_key(row.get("duration_ms")),
        )
        entry = sums.get(key)
        if entry is None:
            entry = sums[key] = [0, 0, 0, 0, 0, 0.0]
        entry[0] += 1
        entry[1] += 0 if row.get("success") else 1
        entry[2] += 1 if row.get("cached") else 0
        entry[3] += row.get("tokens_in") or 0
        entry[4] += row.get("tokens_out") or 0
        entry[5] += row.get("cost") or 0.0
    return sums


async def _apply(connection: AsyncConnection, sums: dict[_Key, list[Any]], sign: int) -> None:
    if not sums:
        return
    names = ("account_id", "gateway_id", "hour", "provider", "model", "duration_ms")
    params = [
        dict(zip(names, key, strict=True)) | {n: v * sign for n, v in zip(_SUM_COLUMNS, values, strict=True)}
        for key, values in sorted(sums.items())  # one order for every writer: no deadlock on PostgreSQL
    ]
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(SUMMARY)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(names),
        set_={name: SUMMARY.c[name] + stmt.excluded[name] for name in _SUM_COLUMNS},
    )
    await connection.execute(stmt, params)


async def add_rows(connection: AsyncConnection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Count newly stored log rows (the writer's batch) into the summary."""
    await _apply(connection, _sums(rows, None, None), 1)


async def subtract_rows(
    connection: AsyncConnection, key: tuple[str, str], rows: Iterable[Mapping[Any, Any]]
) -> None:
    """Take deleted log rows of one gateway out of the summary; drop entries left empty."""
    sums = _sums(rows, key[0], key[1])
    if not sums:
        return
    await _apply(connection, sums, -1)
    await connection.execute(delete(SUMMARY).where(_scope(key), SUMMARY.c.requests <= 0))


async def purge(connection: AsyncConnection, key: tuple[str, str]) -> None:
    await connection.execute(delete(SUMMARY).where(_scope(key)))


def _scope(key: tuple[str, str]) -> ColumnElement[bool]:
    return and_(SUMMARY.c.account_id == key[0], SUMMARY.c.gateway_id == key[1])
