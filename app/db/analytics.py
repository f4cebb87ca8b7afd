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
    or_,
    outerjoin,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.log_store import LOGS, METADATA, GatewayKey
from app.db.log_summary import HOUR_S, NO_DURATION, SUMMARY

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
        self.key = key
        self.scope = and_(LOGS.c.account_id == key[0], LOGS.c.gateway_id == key[1])
        self.where = and_(self.scope, LOGS.c.created_at >= span.start, LOGS.c.created_at < span.end)
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

    def epoch_bucket(self) -> Any:
        """The bucket as the Unix seconds of its start (the summary's form)."""
        if self.postgres:
            return self.bucket()
        step = literal(self.span.step_s, Integer)
        # Whole seconds first: strftime rounds `…:59.9999995` up into the next second.
        seconds = cast(func.strftime("%s", func.substr(LOGS.c.created_at, 1, 19)), Integer)
        return seconds // step * step

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


def _raw_histogram(source: _Source) -> Any:
    group = (source.group if source.group is not None else null()).label("g")
    bucket = source.bucket().label("b")
    duration = LOGS.c.duration_ms.label("d")
    return (
        select(group, bucket, duration, *_row_sums())
        .select_from(source.table)
        .where(source.where)
        .group_by(group, bucket, duration)
    )


def _summary_histogram(source: _Source, plan: _SummaryPlan, group_by: str | None) -> Any:
    """The histogram of the range: whole hours from the hourly summary, the partial hours at its
    edges from the rows (same grain: group, integer bucket start, duration)."""
    s, step = SUMMARY.c, literal(source.span.step_s, Integer)
    group: Any = null()
    if group_by == "provider":
        group = s.provider
    elif group_by == "model":
        group = func.nullif(s.model, "")
    summary_part = select(
        group.label("g"),
        (s.hour // step * step).label("b"),
        case((s.duration_ms == NO_DURATION, null()), else_=s.duration_ms).label("d"),
        *(s[name].label(name) for name in _NAMES),
    ).where(
        s.account_id == source.key[0], s.gateway_id == source.key[1], s.hour >= plan.first, s.hour < plan.end
    )
    parts = [summary_part]
    created = LOGS.c.created_at
    edges = [and_(created >= start, created < end) for start, end in plan.edges(source.span)]
    if edges:
        raw_group = func.nullif(LOGS.c.model, "") if group_by == "model" else source.group
        parts.append(
            select(
                (raw_group if raw_group is not None else null()).label("g"),
                source.epoch_bucket().label("b"),
                LOGS.c.duration_ms.label("d"),
                *_row_sums(),
            )
            .where(source.scope, or_(*edges))
            .group_by(text("1, 2, 3"))
        )
    both = union_all(*parts).subquery("parts")
    p = both.c
    return select(p.g, p.b, p.d, *_partial_sums(p)).group_by(p.g, p.b, p.d)


def _rollup(histogram_query: Any, grouped: bool, postgres: bool) -> Any:
    """Every roll-up level (totals, buckets, and with a group: groups, group by bucket) with its
    sums and interpolated percentiles, from a histogram of (group, bucket, duration) rows."""
    histogram = histogram_query.cte("h").prefix_with("MATERIALIZED")  # read by every level: once
    h = histogram.c
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
        # Rank below the position: SQLite's CAST truncates, PostgreSQL's rounds.
        low_rank = cast(func.floor(position) if postgres else position, Integer)
        low = func.min(case((and_(c.d.is_not(None), c.upto > low_rank), c.d)))
        high = func.min(case((and_(c.d.is_not(None), c.upto > low_rank + 1), c.d)))
        fraction = func.max(position - low_rank)
        percentiles.append((low + (func.coalesce(high, low) - low) * fraction).label(name))
    return select(c.level, c.g, c.b, *_partial_sums(c), *percentiles).group_by(c.level, c.g, c.b)


@dataclass(frozen=True, slots=True)
class _SummaryPlan:
    """The whole hours [first, end) of a range read from the summary."""

    first: int
    end: int

    def edges(self, span: Range) -> list[tuple[datetime, datetime]]:
        head = (span.start, datetime.fromtimestamp(self.first, UTC))
        tail = (datetime.fromtimestamp(self.end, UTC), span.end)
        return [(a, b) for a, b in (head, tail) if a < b]


def _summary_plan(span: Range, group_by: str | None, now: datetime) -> _SummaryPlan | None:
    """Whether (and for which hours) the summary can answer: hourly or daily buckets, no metadata
    grouping, and at least one whole hour in the range. A range ending now counts its current
    hour as whole: the summary holds exactly the rows stored so far, as the logs do."""
    if span.step_s < HOUR_S or (group_by is not None and group_by.startswith("metadata.")):
        return None
    start, end = math.ceil(span.start.timestamp()), span.end.timestamp()
    first = -(-start // HOUR_S) * HOUR_S
    last = int(end) // HOUR_S * HOUR_S
    if end > last and end >= now.timestamp() and last == int(now.timestamp()) // HOUR_S * HOUR_S:
        last += HOUR_S
    return _SummaryPlan(first, last) if first < last else None


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
    connection: AsyncConnection,
    key: GatewayKey,
    span: Range,
    group_by: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    postgres = connection.dialect.name == "postgresql"
    source = _Source(postgres, key, span, group_by)
    plan = _summary_plan(span, group_by, now or datetime.now(UTC))
    grouped = source.group is not None
    if plan is not None:
        query = _rollup(_summary_histogram(source, plan, group_by), grouped, postgres)
    elif postgres:
        query = _postgres_query(source)
    else:
        query = _rollup(_raw_histogram(source), grouped, postgres)
    epoch = (lambda value: int(value)) if plan is not None else source.bucket_epoch
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
            buckets[epoch(row["b"])] = stats
        elif level == GROUPS:
            groups[row["g"]] = stats
        else:
            group_buckets.setdefault(row["g"], {})[epoch(row["b"])] = stats
    result: dict[str, Any] = {"totals": totals, "buckets": _series(span, buckets)}
    if group_by is not None:
        ranked = sorted(groups.items(), key=lambda item: (-item[1]["requests"], str(item[0])))
        result["groups"] = [
            {"key": name, **stats, "buckets": _series(span, group_buckets.get(name, {}))}
            for name, stats in ranked[:MAX_GROUPS]
        ]
        result["groups_truncated"] = len(ranked) > MAX_GROUPS
    return result
