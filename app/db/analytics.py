"""Gateway analytics computed in the database: counts, sums and duration percentiles per time
bucket and per group (provider, model or a metadata key), over a time range.

Percentiles are continuous (interpolated, as PostgreSQL's `percentile_cont`). PostgreSQL computes
them with `percentile_cont … WITHIN GROUP`; SQLite, which has no such aggregate, ranks the rows
with window functions (`row_number`/`count` over each partition) and interpolates between the two
ranks around `p*(n-1)`. Either way only aggregates leave the database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, and_, case, cast, func, literal, outerjoin, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.log_store import LOGS, METADATA, GatewayKey

PERCENTILES = (("duration_p50", 0.5), ("duration_p95", 0.95))
MAX_GROUPS = 100


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime
    step_s: int

    def bucket_starts(self) -> list[int]:
        first = int(self.start.timestamp()) // self.step_s * self.step_s
        return list(range(first, math.ceil(self.end.timestamp()), self.step_s))


def _sums() -> list[Any]:
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(case((LOGS.c.success.is_(False), 1), else_=0)), 0).label("errors"),
        func.coalesce(func.sum(case((LOGS.c.cached.is_(True), 1), else_=0)), 0).label("cached"),
        func.coalesce(func.sum(LOGS.c.tokens_in), 0).label("tokens_in"),
        func.coalesce(func.sum(LOGS.c.tokens_out), 0).label("tokens_out"),
        func.coalesce(func.sum(LOGS.c.cost), 0.0).label("cost"),
    ]


class Query:
    """One analytics query: the range, the gateway, and how rows are grouped."""

    def __init__(
        self, connection: AsyncConnection, key: GatewayKey, span: Range, metadata_key: str | None
    ) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.span = span
        self.where = and_(
            LOGS.c.account_id == key[0],
            LOGS.c.gateway_id == key[1],
            LOGS.c.created_at >= span.start,
            LOGS.c.created_at < span.end,
        )
        self.source: Any = LOGS
        if metadata_key is not None:
            on = and_(METADATA.c.log_id == LOGS.c.id, METADATA.c.key == metadata_key)
            self.source = outerjoin(LOGS, METADATA, on)

    def bucket(self) -> Any:
        step = literal(self.span.step_s, Integer)
        if self.postgres:
            epoch = func.floor(func.extract("epoch", LOGS.c.created_at) / step) * step
            return cast(epoch, BigInteger).label("bucket")
        seconds = cast(func.strftime("%s", LOGS.c.created_at), Integer)
        return ((seconds / step) * step).label("bucket")

    async def aggregate(self, dims: Sequence[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Stats per distinct value of `dims` (no dims: one entry, the totals)."""
        columns = [*dims, *_sums()]
        if self.postgres:
            for name, p in PERCENTILES:
                columns.append(func.percentile_cont(p).within_group(LOGS.c.duration_ms).label(name))
        query = select(*columns).select_from(self.source).where(self.where)
        if dims:
            query = query.group_by(*dims)
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in (await self.connection.execute(query)).mappings():
            group = tuple(row[d.name] for d in dims)
            out[group] = _stats(row)
        if not self.postgres:
            for group, values in (await self._sqlite_percentiles(dims)).items():
                if group in out:
                    out[group].update(values)
        return out

    async def _sqlite_percentiles(self, dims: Sequence[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
        duration = LOGS.c.duration_ms
        partition = list(dims) or None
        ranked = (
            select(
                *dims,
                duration.label("d"),
                (func.row_number().over(partition_by=partition, order_by=duration) - 1).label("rn"),
                func.count().over(partition_by=partition).label("n"),
            )
            .select_from(self.source)
            .where(self.where, duration.is_not(None))
            .subquery()
        )
        names = [ranked.c[d.name] for d in dims]
        columns: list[Any] = []
        for name, p in PERCENTILES:
            position = p * (ranked.c.n - 1)
            low_rank = cast(position, Integer)
            low = func.max(case((ranked.c.rn == low_rank, ranked.c.d)))
            high = func.max(case((ranked.c.rn == low_rank + 1, ranked.c.d)))
            fraction = func.max(position - low_rank)
            columns.append((low + (func.coalesce(high, low) - low) * fraction).label(name))
        query = select(*names, *columns)
        if names:
            query = query.group_by(*names)
        rows = (await self.connection.execute(query)).mappings()
        return {
            tuple(row[d.name] for d in dims): {name: _float(row[name]) for name, _ in PERCENTILES}
            for row in rows
        }


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _stats(row: Any) -> dict[str, Any]:
    requests = int(row["requests"])
    stats: dict[str, Any] = {
        "requests": requests,
        "errors": int(row["errors"]),
        "cached": int(row["cached"]),
        "cache_hit_ratio": round(int(row["cached"]) / requests, 6) if requests else 0.0,
        "tokens_in": int(row["tokens_in"]),
        "tokens_out": int(row["tokens_out"]),
        "cost": round(float(row["cost"]), 10),
    }
    for name, _ in PERCENTILES:
        stats[name] = _float(row[name]) if name in row else None
    return stats


def empty_stats() -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(("requests", "errors", "cached", "tokens_in", "tokens_out"), 0)
    stats.update(cache_hit_ratio=0.0, cost=0.0)
    stats.update({name: None for name, _ in PERCENTILES})
    return stats


def _series(span: Range, per_bucket: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"start": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
         **per_bucket.get(start, empty_stats())}
        for start in span.bucket_starts()
    ]  # fmt: skip


async def gateway_analytics(
    connection: AsyncConnection, key: GatewayKey, span: Range, group_by: str | None
) -> dict[str, Any]:
    metadata_key = (
        group_by.removeprefix("metadata.") if group_by and group_by.startswith("metadata.") else None
    )
    query = Query(connection, key, span, metadata_key)
    bucket = query.bucket()
    totals = (await query.aggregate([])).get((), empty_stats())
    buckets = {int(b): s for (b,), s in (await query.aggregate([bucket])).items()}
    result: dict[str, Any] = {"totals": totals, "buckets": _series(span, buckets)}
    if group_by is not None:
        group = (METADATA.c.value if metadata_key is not None else LOGS.c[group_by]).label("grp")
        per_group = await query.aggregate([group])
        ranked = sorted(per_group.items(), key=lambda item: (-item[1]["requests"], str(item[0][0])))
        kept = ranked[:MAX_GROUPS]
        per_group_bucket = await query.aggregate([group, bucket])
        result["groups"] = [
            {
                "key": name,
                **stats,
                "buckets": _series(span, {int(b): s for (g, b), s in per_group_bucket.items() if g == name}),
            }
            for (name,), stats in kept
        ]
        result["groups_truncated"] = len(ranked) > MAX_GROUPS
    return result
