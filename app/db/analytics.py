"""Gateway analytics computed in the database: counts, sums and duration percentiles over a time
range — in total, per time bucket, per group (provider, model or a metadata key) and per group and
bucket — in one statement that reads the range's rows once.

Percentiles are continuous (interpolated between the two ranks around p*(n-1), as PostgreSQL's
`percentile_cont`).
- PostgreSQL: `percentile_cont … WITHIN GROUP` with `GROUP BY CUBE(group, bucket)`.
- SQLite has neither, so the rows are first folded into a histogram per (group, bucket, duration)
  with the sums alongside; each roll-up level is aggregated from that histogram, a running count
  (`sum() OVER (… ORDER BY duration)`) locates the ranks, and the two durations around each rank
  are interpolated. Sorting a histogram of distinct millisecond durations is far cheaper than
  ranking every row.
Only aggregates leave the database. Buckets are UTC minutes, hours or days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    outerjoin,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.log_store import LOGS, METADATA, GatewayKey

PERCENTILES = (("duration_p50", 0.5), ("duration_p95", 0.95))
MAX_GROUPS = 100
ANALYTICS_WORK_MEM = "64MB"  # PostgreSQL, for this transaction only (SET LOCAL)
_SQLITE_PREFIX = {60: 16, 3600: 13, 86400: 10}  # `YYYY-MM-DD HH:MM` / `… HH` / `YYYY-MM-DD`
_SQLITE_FORMAT = {16: "%Y-%m-%d %H:%M", 13: "%Y-%m-%d %H", 10: "%Y-%m-%d"}
TOTALS, BUCKETS, GROUPS, GROUP_BUCKETS = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime  # exclusive
    step_s: int  # 60, 3600 or 86400

    def bucket_starts(self) -> list[int]:
        first = int(self.start.timestamp()) // self.step_s * self.step_s
        return list(range(first, math.ceil(self.end.timestamp()), self.step_s))


class _Source:
    """The range's rows of one gateway, with the bucket and group expressions for a dialect."""

    def __init__(self, postgres: bool, key: GatewayKey, span: Range, group_by: str | None) -> None:
        self.postgres = postgres
        self.span = span
        self.where = and_(
            LOGS.c.account_id == key[0],
            LOGS.c.gateway_id == key[1],
            LOGS.c.created_at >= span.start,
            LOGS.c.created_at < span.end,
        )
        self.table: Any = LOGS
        self.group: Any = None
        if group_by is not None and group_by.startswith("metadata."):
            on = and_(METADATA.c.log_id == LOGS.c.id, METADATA.c.key == group_by.removeprefix("metadata."))
            self.table = outerjoin(LOGS, METADATA, on)
            self.group = METADATA.c.value
        elif group_by is not None:
            self.group = LOGS.c[group_by]

    def bucket(self) -> Any:
        if self.postgres:
            step = literal(self.span.step_s, Integer)
            return cast(func.floor(func.extract("epoch", LOGS.c.created_at) / step) * step, BigInteger)
        # SQLite stores `YYYY-MM-DD HH:MM:SS.ffffff`: a prefix names the bucket (strftime is slow).
        return func.substr(LOGS.c.created_at, 1, _SQLITE_PREFIX[self.span.step_s])

    def bucket_epoch(self, value: Any) -> int:
        if self.postgres:
            return int(value)
        text = str(value)
        return int(datetime.strptime(text, _SQLITE_FORMAT[len(text)]).replace(tzinfo=UTC).timestamp())


_NAMES = ("requests", "errors", "cached", "tokens_in", "tokens_out", "cost")


def _row_sums() -> list[Any]:
    c = LOGS.c
    return [
        func.count().label("requests"),
        func.sum(case((c.success.is_(False), 1), else_=0)).label("errors"),
        func.sum(case((c.cached.is_(True), 1), else_=0)).label("cached"),
        func.coalesce(func.sum(c.tokens_in), 0).label("tokens_in"),
        func.coalesce(func.sum(c.tokens_out), 0).label("tokens_out"),
        func.coalesce(func.sum(c.cost), 0.0).label("cost"),
    ]


def _partial_sums(columns: Any) -> list[Any]:
    """The same statistics re-aggregated from partial sums (a histogram's columns)."""
    return [func.sum(columns[name]).label(name) for name in _NAMES]


def _postgres_query(source: _Source) -> Any:
    bucket = source.bucket().label("b")
    group = (source.group if source.group is not None else null()).label("g")
    percentiles = [
        func.percentile_cont(p).within_group(LOGS.c.duration_ms).label(name) for name, p in PERCENTILES
    ]
    if source.group is not None:
        level = func.grouping(source.group) * -2 + 3 - func.grouping(bucket.element)
        dims = [source.group, bucket.element]
    else:
        level = 1 - func.grouping(bucket.element)
        dims = [bucket.element]
    return (
        select(level.label("level"), group, bucket, *_row_sums(), *percentiles)
        .select_from(source.table)
        .where(source.where)
        .group_by(func.cube(*dims))
    )


def _sqlite_query(source: _Source) -> Any:
    group = (source.group if source.group is not None else null()).label("g")
    bucket = source.bucket().label("b")
    duration = LOGS.c.duration_ms.label("d")
    histogram = (
        select(group, bucket, duration, *_row_sums())
        .select_from(source.table)
        .where(source.where)
        .group_by(group, bucket, duration)
        .cte("h")
        .prefix_with("MATERIALIZED")  # read by every level below: computed once
    )
    h = histogram.c
    grouped = source.group is not None
    levels = [(TOTALS, False, False), (BUCKETS, False, True)]
    if grouped:
        levels += [(GROUPS, True, False), (GROUP_BUCKETS, True, True)]
    parts = []
    for level, by_group, by_bucket in levels:
        g = h.g if by_group else null()
        b = h.b if by_bucket else null()
        head = [literal(level).label("level"), g.label("g"), b.label("b"), h.d]
        if by_bucket and (by_group or not grouped):  # the histogram's own grain: nothing to fold
            parts.append(select(*head, *(h[name] for name in _NAMES)))
            continue
        keys = [k for k, used in ((h.g, by_group), (h.b, by_bucket)) if used]
        parts.append(select(*head, *_partial_sums(h)).group_by(*keys, h.d))
    rolled = union_all(*parts).subquery("l")
    r = rolled.c
    timed = case((r.d.is_not(None), r.requests), else_=0)
    partition = [r.level, r.g, r.b]
    ranked = select(
        *r,
        func.sum(timed).over(partition_by=partition, order_by=r.d, rows=(None, 0)).label("upto"),
        func.sum(timed).over(partition_by=partition, order_by=r.d, rows=(None, None)).label("n"),
    ).subquery("c")
    c = ranked.c
    percentiles = []
    for name, p in PERCENTILES:
        position = p * (c.n - 1)
        low_rank = cast(position, Integer)
        low = func.min(case((and_(c.d.is_not(None), c.upto > low_rank), c.d)))
        high = func.min(case((and_(c.d.is_not(None), c.upto > low_rank + 1), c.d)))
        fraction = func.max(position - low_rank)
        percentiles.append((low + (func.coalesce(high, low) - low) * fraction).label(name))
    return select(c.level, c.g, c.b, *_partial_sums(c), *percentiles).group_by(c.level, c.g, c.b)


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _stats(row: Any) -> dict[str, Any]:
    requests = int(row["requests"] or 0)
    cached = int(row["cached"] or 0)
    stats: dict[str, Any] = {
        "requests": requests,
        "errors": int(row["errors"] or 0),
        "cached": cached,
        "cache_hit_ratio": round(cached / requests, 6) if requests else 0.0,
        "tokens_in": int(row["tokens_in"] or 0),
        "tokens_out": int(row["tokens_out"] or 0),
        "cost": round(float(row["cost"] or 0.0), 10),
    }
    for name, _ in PERCENTILES:
        stats[name] = _float(row[name])
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
    postgres = connection.dialect.name == "postgresql"
    source = _Source(postgres, key, span, group_by)
    query = _postgres_query(source) if postgres else _sqlite_query(source)
    if postgres:  # the percentile sorts of a busy day fit in memory instead of spilling to disk
        await connection.execute(text(f"SET LOCAL work_mem = '{ANALYTICS_WORK_MEM}'"))
    totals = empty_stats()
    buckets: dict[int, dict[str, Any]] = {}
    groups: dict[Any, dict[str, Any]] = {}
    group_buckets: dict[Any, dict[int, dict[str, Any]]] = {}
    for row in (await connection.execute(query)).mappings():
        level, stats = int(row["level"]), _stats(row)
        if level == TOTALS:
            totals = stats
        elif level == BUCKETS:
            buckets[source.bucket_epoch(row["b"])] = stats
        elif level == GROUPS:
            groups[row["g"]] = stats
        else:
            group_buckets.setdefault(row["g"], {})[source.bucket_epoch(row["b"])] = stats
    result: dict[str, Any] = {"totals": totals, "buckets": _series(span, buckets)}
    if group_by is not None:
        ranked = sorted(groups.items(), key=lambda item: (-item[1]["requests"], str(item[0])))
        result["groups"] = [
            {"key": name, **stats, "buckets": _series(span, group_buckets.get(name, {}))}
            for name, stats in ranked[:MAX_GROUPS]
        ]
        result["groups_truncated"] = len(ranked) > MAX_GROUPS
    return result
