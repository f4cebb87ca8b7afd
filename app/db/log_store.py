"""Writing and deleting log rows together with what must change alongside them: the metadata
index rows (`log_metadata`), the per-gateway counter (`log_counters`), the hourly summary
(`log_hourly`, db/log_summary.py), and the per-gateway storage limit (`log_management` with
`STOP_INSERTING` or `DELETE_OLDEST`).

Everything here runs in the log writer's batch transaction or in a management request, never on
the gateway request path. The storage limit costs one small query per batch (the limits and
counters of the gateways in it), not a round trip per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import log_summary
from app.db.fields import as_utc
from app.db.models import Gateway, Log, LogCounter, LogMetadata

GatewayKey = tuple[str, str]  # (account_id, gateway_id)

LOGS = Log.__table__  # type: ignore[attr-defined]
METADATA = LogMetadata.__table__  # type: ignore[attr-defined]
COUNTERS = LogCounter.__table__  # type: ignore[attr-defined]
GATEWAYS = Gateway.__table__  # type: ignore[attr-defined]

METADATA_KEY_CHARS = 255
METADATA_VALUE_CHARS = 512
DELETE_CHUNK = 500
# DELETE_OLDEST trims at most this many rows per batch, so that lowering a limit a long way cannot
# stall the writer; the rest goes with the following batches.
MAX_TRIM_PER_BATCH = 20_000


def metadata_text(value: object) -> str:
    """How a metadata value is indexed and matched: booleans as `true`/`false`, integral floats as
    integers (`1.0` → `1`), everything else as its string."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        text = str(int(value))
    else:
        text = str(value)
    return text[:METADATA_VALUE_CHARS]


def metadata_rows(log_id: str, account_id: str, gateway_id: str, metadata: Any) -> list[dict[str, str]]:
    if not isinstance(metadata, Mapping):
        return []
    rows: dict[str, dict[str, str]] = {}
    for key, value in metadata.items():
        if value is None or isinstance(value, dict | list):
            continue
        short = str(key)[:METADATA_KEY_CHARS]
        rows.setdefault(
            short,
            {
                "log_id": log_id,
                "key": short,
                "account_id": account_id,
                "gateway_id": gateway_id,
                "value": metadata_text(value),
            },
        )
    return list(rows.values())


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # (row key, bind processor)


_insert_plans: dict[tuple[str, tuple[str, ...]], _InsertPlan] = {}


def _insert_plan(dialect: Dialect, keys: tuple[str, ...]) -> _InsertPlan:
    """The INSERT for these log columns compiled once per dialect, with each column's own bind
    processor (what SQLAlchemy would apply to the value: datetime format, JSON, ...)."""
    plan = _insert_plans.get((dialect.name, keys))
    if plan is None:
        compiled = insert(LOGS).compile(dialect=dialect, column_keys=list(keys))
        order = compiled.positiontup or []
        binds = tuple(
            (name, LOGS.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in order
        )
        plan = _insert_plans[(dialect.name, keys)] = _InsertPlan(compiled.string, binds)
    return plan


async def insert_logs(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany for a batch of log rows (all with the same keys).

    The same statement and value conversions as `connection.execute(insert(LOGS), rows)`, minus
    SQLAlchemy's per-row parameter processing, which was about half the log writer's CPU (the
    writer shares the process, and the GIL, with the request path)."""
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):  # not rows from LogRecord.to_row: the generic way
        await connection.execute(insert(LOGS), rows)
        return
    plan = _insert_plan(connection.dialect, tuple(keys))
    binds = plan.binds
    params = [
        tuple([row[name] if process is None else process(row[name]) for name, process in binds])
        for row in rows
    ]
    await connection.exec_driver_sql(plan.sql, params)


def _dialect_insert(connection: AsyncConnection, table: Any) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _scope(table: Any, key: GatewayKey) -> ColumnElement[bool]:
    return and_(table.c.account_id == key[0], table.c.gateway_id == key[1])


async def add_to_counters(connection: AsyncConnection, increments: Mapping[GatewayKey, int]) -> None:
    if not increments:
        return
    stmt = _dialect_insert(connection, COUNTERS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "gateway_id"],
        set_={"log_count": COUNTERS.c.log_count + stmt.excluded.log_count},
    )
    params = [{"account_id": a, "gateway_id": g, "log_count": n} for (a, g), n in sorted(increments.items())]
    await connection.execute(stmt, params)


async def subtract_from_counter(connection: AsyncConnection, key: GatewayKey, removed: int) -> None:
    if removed <= 0:
        return
    column = COUNTERS.c.log_count
    await connection.execute(
        update(COUNTERS)
        .where(_scope(COUNTERS, key))
        .values(log_count=case((column > removed, column - removed), else_=0))
    )


async def stored_count(connection: AsyncConnection, key: GatewayKey) -> int | None:
    """The gateway's counter, or None when it has none (no row was ever written)."""
    value = (await connection.execute(select(COUNTERS.c.log_count).where(_scope(COUNTERS, key)))).scalar()
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class _Target:
    created_at: datetime
    limit: tuple[int, str] | None  # (max rows, strategy); None: unlimited


async def _gateways(connection: AsyncConnection, keys: Sequence[GatewayKey]) -> dict[GatewayKey, _Target]:
    """The batch's gateways that exist, with their creation time and storage limit."""
    g = GATEWAYS.c
    rows = await connection.execute(
        select(g.account_id, g.id, g.created_at, g.log_management, g.log_management_strategy).where(
            tuple_(g.account_id, g.id).in_(keys)
        )
    )
    return {
        (a, gw): _Target(
            as_utc(created), None if limit is None else (int(limit), strategy or "STOP_INSERTING")
        )
        for a, gw, created, limit, strategy in rows
    }


async def _locked_counts(connection: AsyncConnection, keys: Sequence[GatewayKey]) -> dict[GatewayKey, int]:
    """Current counters of limited gateways, locked until the batch commits (PostgreSQL), so two
    writers cannot both fill the last free places."""
    await add_to_counters(connection, dict.fromkeys(keys, 0))  # make sure there is a row to lock
    query = (
        select(COUNTERS.c.account_id, COUNTERS.c.gateway_id, COUNTERS.c.log_count)
        .where(tuple_(COUNTERS.c.account_id, COUNTERS.c.gateway_id).in_(keys))
        .order_by(COUNTERS.c.account_id, COUNTERS.c.gateway_id)
        .with_for_update()
    )
    return {(a, g): int(n) for a, g, n in await connection.execute(query)}


async def store_batch(
    connection: AsyncConnection, rows: Sequence[dict[str, Any]], skip_existing: bool = False
) -> tuple[int, int]:
    """Insert a batch of log rows honouring each gateway's storage limit. Returns (written, not
    stored: the gateway is full and its strategy is STOP_INSERTING, or the row was queued for a
    deleted gateway whose id has been taken again since).

    `skip_existing`: on a retry, rows an earlier attempt committed (its acknowledgement lost) are
    left out instead of failing the batch on their duplicate ids."""
    if skip_existing:
        present = {
            row_id
            for (row_id,) in await connection.execute(
                select(LOGS.c.id).where(LOGS.c.id.in_([r["id"] for r in rows]))
            )
        }
        rows = [row for row in rows if row["id"] not in present]
    groups: dict[GatewayKey, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["account_id"], row["gateway_id"]), []).append(row)
    gateways = await _gateways(connection, list(groups))
    limited = sorted(key for key, target in gateways.items() if target.limit is not None)
    counts = await _locked_counts(connection, limited) if limited else {}
    kept: list[dict[str, Any]] = []
    added: dict[GatewayKey, int] = {}
    trims: dict[GatewayKey, int] = {}
    for key, rows_of_gateway in groups.items():
        target = gateways.get(key)
        group = rows_of_gateway
        if target is not None:
            # Rows older than the gateway were queued for a deleted one of the same id. (Rows of
            # a gateway that is gone are written; creating one with its id purges them.)
            group = [row for row in group if as_utc(row["created_at"]) >= target.created_at]
        limit = target.limit if target is not None else None
        if limit is not None:
            max_rows, strategy = limit
            current = counts.get(key, 0)
            if strategy == "DELETE_OLDEST":
                trims[key] = current + len(group) - max_rows
            else:
                group = group[: max(0, max_rows - current)]
        kept.extend(group)
        added[key] = len(group)
    if kept:
        await insert_logs(connection, kept)
        entries = [
            entry
            for row in kept
            for entry in metadata_rows(row["id"], row["account_id"], row["gateway_id"], row.get("metadata"))
        ]
        if entries:
            await connection.execute(insert(METADATA), entries)
        await log_summary.add_rows(connection, kept)
    await add_to_counters(connection, {k: n for k, n in added.items() if n})
    for key, excess in trims.items():
        if excess > 0:
            await delete_oldest(connection, key, min(excess, MAX_TRIM_PER_BATCH))
    return len(kept), len(rows) - len(kept)


async def delete_ids(connection: AsyncConnection, key: GatewayKey, ids: Sequence[str]) -> int:
    """Delete these logs of one gateway (and their metadata rows); keeps the counter right."""
    removed = 0
    for start in range(0, len(ids), DELETE_CHUNK):
        chunk = list(ids[start : start + DELETE_CHUNK])
        await connection.execute(delete(METADATA).where(METADATA.c.log_id.in_(chunk)))
        deleted = (
            (
                await connection.execute(
                    delete(LOGS)
                    .where(_scope(LOGS, key), LOGS.c.id.in_(chunk))
                    .returning(*(LOGS.c[name] for name in log_summary.ROW_COLUMNS))
                )
            )
            .mappings()
            .all()
        )
        await log_summary.subtract_rows(connection, key, deleted)
        removed += len(deleted)
    await subtract_from_counter(connection, key, removed)
    return removed


async def delete_oldest(connection: AsyncConnection, key: GatewayKey, count: int) -> int:
    ids = (
        await connection.execute(select(LOGS.c.id).where(_scope(LOGS, key)).order_by(LOGS.c.id).limit(count))
    ).scalars()
    return await delete_ids(connection, key, list(ids))


async def delete_matching(
    connection: AsyncConnection,
    key: GatewayKey,
    where: Iterable[ColumnElement[bool]],
    order: Sequence[Any],
    limit: int | None,
) -> int:
    """Delete the logs matching `where`, in `order`, at most `limit` (None: all), in chunks."""
    conditions = [_scope(LOGS, key), *where]
    removed = 0
    while limit is None or removed < limit:
        size = DELETE_CHUNK if limit is None else min(DELETE_CHUNK, limit - removed)
        ids = list(
            (
                await connection.execute(select(LOGS.c.id).where(*conditions).order_by(*order).limit(size))
            ).scalars()
        )
        if not ids:
            break
        removed += await delete_ids(connection, key, ids)
        if len(ids) < size:
            break
    return removed


async def purge_gateway(connection: AsyncConnection, key: GatewayKey) -> int:
    """Everything a deleted gateway leaves behind: logs, their metadata, its counter."""
    await connection.execute(delete(METADATA).where(_scope(METADATA, key)))
    result = await connection.execute(delete(LOGS).where(_scope(LOGS, key)))
    await connection.execute(delete(COUNTERS).where(_scope(COUNTERS, key)))
    await log_summary.purge(connection, key)
    return result.rowcount or 0
