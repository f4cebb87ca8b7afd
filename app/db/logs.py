"""Log queries for the management API: list (one page and the total), get one, edit, and the
public shape of a row (the public API's field names: `duration`, not `duration_ms`; `metadata` as
a JSON-encoded string)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.fields import iso
from app.db.log_filters import TOTAL_TOKENS
from app.db.log_store import LOGS, METADATA, GatewayKey, metadata_rows, stored_count

# order_by value → column. `created_at` sorts by the ULID id (time order, and the index's order).
ORDER_COLUMNS: dict[str, Any] = {
    "created_at": None,
    "provider": LOGS.c.provider,
    "model": LOGS.c.model,
    "model_type": None,
    "success": LOGS.c.success,
    "cached": LOGS.c.cached,
    "cost": LOGS.c.cost,
    "duration": LOGS.c.duration_ms,
    "tokens_in": LOGS.c.tokens_in,
    "tokens_out": LOGS.c.tokens_out,
    "total_tokens": TOTAL_TOKENS,
    "feedback": LOGS.c.feedback,
    "score": LOGS.c.score,
    "status_code": LOGS.c.status_code,
}

_LIST_COLUMNS = (
    "id", "created_at", "provider", "model", "path", "request_type", "success", "cached",
    "status_code", "step", "duration_ms", "ttfb_ms", "tokens_in", "tokens_out", "cost", "custom_cost",
    "metadata", "request_content_type", "response_content_type", "event_id", "feedback", "score",
    "attempts", "dlp_action",
)  # fmt: skip
_DETAIL_COLUMNS = (
    *_LIST_COLUMNS, "request_size", "response_size", "request_body", "request_body_complete",
    "response_body", "response_body_complete", "user_agent", "authenticated", "error",
    "connection_id", "frames_in", "frames_out", "close_code", "gateway_notes",
    "route_id", "route_name", "route_version_id", "route_element_id",
    "dlp",
    "request_id",
)  # fmt: skip


def order_clause(order_by: str, direction: str) -> list[Any]:
    descending = direction == "desc"
    ordered: list[Any] = []
    column = ORDER_COLUMNS.get(order_by)
    if column is not None:
        ordered.append((column.desc() if descending else column.asc()).nulls_last())
    ordered.append(LOGS.c.id.desc() if descending else LOGS.c.id.asc())
    return ordered


def scope(key: GatewayKey) -> list[ColumnElement[bool]]:
    return [LOGS.c.account_id == key[0], LOGS.c.gateway_id == key[1]]


def _metadata_string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # a driver that hands JSON back undecoded
        value = orjson.loads(value)
    return None if value is None else orjson.dumps(value).decode()


def _head(body: bytes | None) -> str | None:
    return None if body is None else bytes(body).decode("utf-8", errors="replace")


def public_log(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as the public API shows it. The SDK types `model` as a string and `duration` as an
    integer, so unknown values come back as "" and 0."""
    out: dict[str, Any] = {
        "id": row["id"],
        "created_at": iso(row["created_at"]),
        "provider": row["provider"],
        "model": row["model"] or "",
        "model_type": None,
        "path": row["path"],
        "request_type": row["request_type"],
        "success": bool(row["success"]),
        "cached": bool(row["cached"]),
        "status_code": row["status_code"],
        "step": row["step"],
        "duration": row["duration_ms"] or 0,
        "ttfb": row["ttfb_ms"],
        "tokens_in": row["tokens_in"],
        "tokens_out": row["tokens_out"],
        "cost": row["cost"],
        "custom_cost": bool(row["custom_cost"]),
        "metadata": _metadata_string(row["metadata"]),
        "request_content_type": row["request_content_type"],
        "response_content_type": row["response_content_type"],
        "event_id": row["event_id"],
        "feedback": row["feedback"],
        "score": row["score"],
        "attempts": row["attempts"],
        "dlp_action": row["dlp_action"],
    }
    if "request_body" in row:
        out.update(
            request_head=_head(row["request_body"]),
            request_head_complete=bool(row["request_body_complete"]),
            request_size=row["request_size"],
            response_head=_head(row["response_body"]),
            response_head_complete=bool(row["response_body_complete"]),
            response_size=row["response_size"],
            user_agent=row["user_agent"],
            authentication=bool(row["authenticated"]),
            error=row["error"],
            connection_id=row["connection_id"],
            frames_in=row["frames_in"],
            frames_out=row["frames_out"],
            close_code=row["close_code"],
            gateway_notes=row["gateway_notes"],
            route_id=row["route_id"],
            route_name=row["route_name"],
            route_version_id=row["route_version_id"],
            route_element_id=row["route_element_id"],
            dlp=row["dlp"],
            request_id=row["request_id"],
        )
    return out


async def list_logs(
    connection: AsyncConnection,
    key: GatewayKey,
    where: Sequence[ColumnElement[bool]],
    order: Sequence[Any],
    *,
    page: int,
    per_page: int,
    page_hints: Sequence[ColumnElement[bool]] = (),
) -> tuple[list[dict[str, Any]], int]:
    """One page of logs (list shape) and the total. Unfiltered totals come from the gateway's
    counter, not from counting a million rows. `page_hints` are redundant conditions that help
    the page query only."""
    conditions = [*scope(key), *where]
    columns = [LOGS.c[name] for name in _LIST_COLUMNS]
    query = select(*columns).where(*conditions, *page_hints).order_by(*order)
    rows = (await connection.execute(query.offset((page - 1) * per_page).limit(per_page))).mappings()
    page_rows = [public_log(dict(row)) for row in rows]
    total = await stored_count(connection, key) if not where else None
    if total is None:
        count = select(func.count()).select_from(LOGS).where(*conditions)
        total = int((await connection.execute(count)).scalar_one())
    return page_rows, total


async def get_log_row(connection: AsyncConnection, key: GatewayKey, log_id: str) -> dict[str, Any] | None:
    columns = [LOGS.c[name] for name in _DETAIL_COLUMNS]
    query = select(*columns).where(*scope(key), LOGS.c.id == log_id)
    row = (await connection.execute(query)).mappings().first()
    return dict(row) if row is not None else None


async def get_body(
    connection: AsyncConnection, key: GatewayKey, log_id: str, which: str
) -> tuple[bool, bytes | None, str | None, bool]:
    """(found, stored body, its content type, complete) of a log's request or response."""
    body, content_type, complete = (
        LOGS.c[f"{which}_body"], LOGS.c[f"{which}_content_type"], LOGS.c[f"{which}_body_complete"]
    )  # fmt: skip
    query = select(body, content_type, complete).where(*scope(key), LOGS.c.id == log_id)
    row = (await connection.execute(query)).first()
    if row is None:
        return False, None, None, False
    return True, (bytes(row[0]) if row[0] is not None else None), row[1], bool(row[2])


async def edit_log(
    connection: AsyncConnection, key: GatewayKey, log_id: str, changes: dict[str, Any]
) -> bool:
    """Set feedback / score / metadata (the metadata index rows follow). False: no such log."""
    if not changes:
        return await get_log_row(connection, key, log_id) is not None
    result = await connection.execute(LOGS.update().where(*scope(key), LOGS.c.id == log_id).values(**changes))
    if not result.rowcount:
        return False
    if "metadata" in changes:
        await connection.execute(METADATA.delete().where(METADATA.c.log_id == log_id))
        entries = metadata_rows(log_id, key[0], key[1], changes["metadata"])
        if entries:
            await connection.execute(METADATA.insert(), entries)
    return True
