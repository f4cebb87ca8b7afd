"""`/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs` (management-api.md):
list, get, the stored request and response bodies, edit (feedback, score, metadata), delete.

Paths, query encoding and shapes follow the official `cloudflare` SDK (`client.ai_gateway.logs`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import AccountId, CanEdit, CanRead, GatewayIdPath, SessionDep
from app.api.envelope import ERROR_RESPONSES, Envelope, NotFound, ResultInfo, ok
from app.api.log_params import (
    LogDeleteParams,
    LogListParams,
    id_range,
    openapi_parameters,
    parse,
    where_clause,
)
from app.core.ids import canonical_log_id
from app.db import logs
from app.db.gateways import get_gateway
from app.db.log_store import GatewayKey, delete_matching
from app.pipeline.options import MAX_METADATA_ENTRIES

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs",
    tags=["logs"],
    responses=ERROR_RESPONSES,
)

# Any string: a ULID or a UUID names a log (canonical_log_id), anything else names none (404 / 1002).
LogId = Annotated[str, Path(description="ULID or UUID")]
MetadataValue = str | int | float | bool


class LogEdit(BaseModel):
    """PATCH body. Only the fields sent change; null clears one."""

    model_config = ConfigDict(extra="forbid")

    feedback: int | None = None
    score: int | None = Field(default=None, ge=0, le=100)
    metadata: dict[Annotated[str, Field(max_length=255)], MetadataValue] | None = None

    @field_validator("feedback")
    @classmethod
    def _feedback(cls, value: int | None) -> int | None:
        if value is not None and value not in (-1, 0, 1):
            raise ValueError("must be -1, 0 or 1")
        return value

    @field_validator("metadata")
    @classmethod
    def _few_entries(cls, value: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        if value is not None and len(value) > MAX_METADATA_ENTRIES:
            raise ValueError(f"at most {MAX_METADATA_ENTRIES} entries")
        return value


def _stored_id(log_id: str) -> str:
    """The stored form of an id given as a ULID or a UUID; an impossible one for anything else
    (so it is looked up like any unknown id and answers 404 / 1002, never 400)."""
    return canonical_log_id(log_id) or "-"


async def _gateway(
    session: AsyncSession, account_id: str, gateway_id: str
) -> tuple[GatewayKey, AsyncConnection]:
    if await get_gateway(session, account_id, gateway_id) is None:
        raise NotFound(f"gateway {gateway_id!r} not found")
    return (account_id, gateway_id), await session.connection()


@router.get("", openapi_extra={"parameters": openapi_parameters(LogListParams)})
async def list_logs(
    account_id: AccountId, gateway_id: GatewayIdPath, _: CanRead, session: SessionDep, request: Request
) -> dict[str, Any]:
    params, filters = parse(request.query_params.multi_items(), LogListParams)
    key, connection = await _gateway(session, account_id, gateway_id)
    direction = "desc" if params.descending else "asc"
    rows, total = await logs.list_logs(
        connection,
        key,
        where_clause(key, params, filters),
        logs.order_clause(params.order_by, direction),
        page=params.page,
        per_page=params.per_page,
        page_hints=id_range(params),
    )
    info = ResultInfo(page=params.page, per_page=params.per_page, count=len(rows), total_count=total)
    return ok(rows, info)


@router.delete("", openapi_extra={"parameters": openapi_parameters(LogDeleteParams)})
async def delete_logs(
    account_id: AccountId, gateway_id: GatewayIdPath, _: CanEdit, session: SessionDep, request: Request
) -> dict[str, Any]:
    """Delete the logs matching the filters (all of the gateway's without any), at most `limit`,
    taken in `order_by` order (oldest first by default)."""
    params, filters = parse(request.query_params.multi_items(), LogDeleteParams)
    key, connection = await _gateway(session, account_id, gateway_id)
    direction = "desc" if params.descending else "asc"
    removed = await delete_matching(
        connection,
        key,
        [*where_clause(key, params, filters), *id_range(params)],
        logs.order_clause(params.order_by, direction),
        params.limit,
    )
    await session.commit()
    return ok({"deleted": removed})


@router.get("/{log_id}", response_model=Envelope[dict[str, Any]])
async def get_log(
    account_id: AccountId, gateway_id: GatewayIdPath, log_id: LogId, _: CanRead, session: SessionDep
) -> dict[str, Any]:
    key, connection = await _gateway(session, account_id, gateway_id)
    row = await logs.get_log_row(connection, key, _stored_id(log_id))
    if row is None:
        raise NotFound(f"log {log_id!r} not found")
    return ok(logs.public_log(row))


@router.patch("/{log_id}", response_model=Envelope[dict[str, Any]])
async def edit_log(
    account_id: AccountId,
    gateway_id: GatewayIdPath,
    log_id: LogId,
    body: LogEdit,
    _: CanEdit,
    session: SessionDep,
) -> dict[str, Any]:
    key, connection = await _gateway(session, account_id, gateway_id)
    changes = body.model_dump(include=body.model_fields_set)
    if not await logs.edit_log(connection, key, _stored_id(log_id), changes):
        raise NotFound(f"log {log_id!r} not found")
    await session.commit()
    row = await logs.get_log_row(await session.connection(), key, _stored_id(log_id))
    assert row is not None
    return ok(logs.public_log(row))


async def _body(session: AsyncSession, account_id: str, gateway_id: str, log_id: str, which: str) -> Response:
    key, connection = await _gateway(session, account_id, gateway_id)
    found, body, content_type, complete = await logs.get_body(connection, key, _stored_id(log_id), which)
    if not found:
        raise NotFound(f"log {log_id!r} not found")
    if body is None:
        raise NotFound(f"log {log_id!r} has no stored {which} body")
    headers = {
        "content-type": content_type or "application/octet-stream",
        "x-body-complete": "true" if complete else "false",
    }
    return Response(content=body, headers=headers)


@router.get("/{log_id}/request", response_class=Response)
async def get_log_request(
    account_id: AccountId, gateway_id: GatewayIdPath, log_id: LogId, _: CanRead, session: SessionDep
) -> Response:
    """The request body as it was stored (its head, when longer than the log body limit:
    `x-body-complete: false`), with its content type."""
    return await _body(session, account_id, gateway_id, log_id, "request")


@router.get("/{log_id}/response", response_class=Response)
async def get_log_response(
    account_id: AccountId, gateway_id: GatewayIdPath, log_id: LogId, _: CanRead, session: SessionDep
) -> Response:
    """The response body as it was stored, with its content type."""
    return await _body(session, account_id, gateway_id, log_id, "response")
