"""`/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/provider_configs`: stored
provider keys (BYOK). Results carry `secret_preview`, never the secret; secrets are encrypted
with `AIGW_SECRET_KEY`, and without it none can be stored (400)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection

from app.api.deps import AccountId, CanEdit, CanRead, GatewayIdPath, InvalidationDep, RowId, SessionDep
from app.api.envelope import (
    ERROR_RESPONSES,
    Conflict,
    Envelope,
    InvalidInput,
    NotFound,
    PagedEnvelope,
    ResultInfo,
    ok,
)
from app.auth.secretbox import SecretBox
from app.db import provider_configs as configs
from app.db.gateways import get_gateway
from app.db.models import ProviderConfig
from app.db.provider_configs import (
    AliasTaken,
    ProviderConfigCreate,
    ProviderConfigPublic,
    ProviderConfigUpdate,
)
from app.services.invalidation import Change

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/provider_configs",
    tags=["provider keys"],
    responses=ERROR_RESPONSES,
)

NO_SECRET_KEY = "secret: the server has no AIGW_SECRET_KEY, so it cannot store provider keys"


def get_box(conn: HTTPConnection) -> SecretBox:
    box: SecretBox = conn.app.state.secret_box
    return box


BoxDep = Annotated[SecretBox, Depends(get_box)]


async def _gateway_exists(session: AsyncSession, account_id: str, gateway_id: str) -> None:
    if await get_gateway(session, account_id, gateway_id) is None:
        raise NotFound(f"gateway {gateway_id!r} not found")


async def _existing(
    session: AsyncSession, account_id: str, gateway_id: str, config_id: str
) -> ProviderConfig:
    row = await configs.get_config(session, account_id, gateway_id, config_id)
    if row is None:
        raise NotFound(f"provider config {config_id!r} not found")
    return row


@router.post("", response_model=Envelope[ProviderConfigPublic])
async def create_provider_config(
    account_id: AccountId,
    gateway_id: GatewayIdPath,
    body: ProviderConfigCreate,
    _: CanEdit,
    session: SessionDep,
    box: BoxDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    if not box.enabled:
        raise InvalidInput(NO_SECRET_KEY)
    await _gateway_exists(session, account_id, gateway_id)
    try:
        row = await configs.create_config(session, box, account_id, gateway_id, body)
    except AliasTaken as exc:
        raise Conflict(f"a key for {body.provider_slug!r} with alias {body.alias!r} already exists") from exc
    await invalidation.changed(Change("keys", account_id, gateway_id))
    return ok(ProviderConfigPublic.of(row))


@router.get("", response_model=PagedEnvelope[ProviderConfigPublic])
async def list_provider_configs(
    account_id: AccountId,
    gateway_id: GatewayIdPath,
    _: CanRead,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    await _gateway_exists(session, account_id, gateway_id)
    rows, total = await configs.list_configs(session, account_id, gateway_id, page=page, per_page=per_page)
    info = ResultInfo(page=page, per_page=per_page, count=len(rows), total_count=total)
    return ok([ProviderConfigPublic.of(row) for row in rows], info)


@router.get("/{config_id}", response_model=Envelope[ProviderConfigPublic])
async def get_provider_config(
    account_id: AccountId, gateway_id: GatewayIdPath, config_id: RowId, _: CanRead, session: SessionDep
) -> dict[str, Any]:
    return ok(ProviderConfigPublic.of(await _existing(session, account_id, gateway_id, config_id)))


@router.put("/{config_id}", response_model=Envelope[ProviderConfigPublic])
async def update_provider_config(
    account_id: AccountId,
    gateway_id: GatewayIdPath,
    config_id: RowId,
    body: ProviderConfigUpdate,
    _: CanEdit,
    session: SessionDep,
    box: BoxDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    """Change a stored key; a new `secret` rotates it, effective from the next request."""
    if body.secret is not None and not box.enabled:
        raise InvalidInput(NO_SECRET_KEY)
    row = await _existing(session, account_id, gateway_id, config_id)
    slug = row.provider_slug  # a rollback below expires the row
    try:
        row = await configs.update_config(session, box, row, body)
    except AliasTaken as exc:
        raise Conflict(f"a key for {slug!r} with alias {body.alias!r} already exists") from exc
    await invalidation.changed(Change("keys", account_id, gateway_id))
    return ok(ProviderConfigPublic.of(row))


@router.delete("/{config_id}", response_model=Envelope[ProviderConfigPublic])
async def delete_provider_config(
    account_id: AccountId,
    gateway_id: GatewayIdPath,
    config_id: RowId,
    _: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    row = await _existing(session, account_id, gateway_id, config_id)
    deleted = ProviderConfigPublic.of(row)
    await configs.delete_config(session, row)
    await invalidation.changed(Change("keys", account_id, gateway_id))
    return ok(deleted)
