"""`/client/v4/accounts/{account_id}/ai-gateway/custom-providers`: an account's own upstreams,
used as `custom-{slug}` in provider paths, universal steps and compat model prefixes.

Custom providers belong to the account, not to one gateway: reading them needs `read`, changing
them needs `edit` on every gateway (a token limited to some gateways cannot add an upstream the
others would serve). A base URL must be https and must not name a private address literally
(`app/db/custom_providers.py`), unless the development setting allows private destinations.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel.ext.asyncio.session import AsyncSession

from app.api.deps import AccountId, CanEdit, CanRead, InvalidationDep, RowId, SessionDep, SettingsDep
from app.api.envelope import (
    ERROR_RESPONSES,
    Conflict,
    Envelope,
    InvalidInput,
    NotFound,
    PagedEnvelope,
    PermissionDenied,
    ResultInfo,
    ok,
)
from app.auth.principals import Principal
from app.core.settings import Settings
from app.db import custom_providers as customs
from app.db.custom_providers import (
    CustomProviderCreate,
    CustomProviderPublic,
    CustomProviderUpdate,
    SlugTaken,
    check_base_url,
)
from app.db.models import CustomProvider
from app.services.invalidation import Change

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/ai-gateway/custom-providers",
    tags=["custom providers"],
    responses=ERROR_RESPONSES,
)


def _every_gateway(principal: Principal) -> None:
    if principal.gateways is not None:
        raise PermissionDenied(
            "custom providers serve every gateway: a gateway-limited token cannot change them"
        )


def _destination_rule(settings: Settings, base_url: str | None) -> None:
    """https, and no literal private address, unless `AIGW_ALLOW_PRIVATE_DESTINATIONS` (400 / 1001)."""
    if base_url is None:
        return
    try:
        check_base_url(base_url, settings.allow_private_destinations)
    except ValueError as exc:
        raise InvalidInput(f"base_url: {exc}") from None


async def _existing(session: AsyncSession, account_id: str, provider_id: str) -> CustomProvider:
    row = await customs.get_provider_row(session, account_id, provider_id)
    if row is None:
        raise NotFound(f"custom provider {provider_id!r} not found")
    return row


@router.post("", response_model=Envelope[CustomProviderPublic])
async def create_custom_provider(
    account_id: AccountId,
    body: CustomProviderCreate,
    principal: CanEdit,
    session: SessionDep,
    settings: SettingsDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    _every_gateway(principal)
    _destination_rule(settings, body.base_url)
    try:
        row = await customs.create_provider(session, account_id, body)
    except SlugTaken as exc:
        raise Conflict(f"custom provider slug {body.slug!r} already exists") from exc
    await invalidation.changed(Change("custom", account_id))
    return ok(CustomProviderPublic.model_validate(row))


@router.get("", response_model=PagedEnvelope[CustomProviderPublic])
async def list_custom_providers(
    account_id: AccountId,
    _: CanRead,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    search: Annotated[str | None, Query(max_length=64)] = None,
    enable: bool | None = None,
) -> dict[str, Any]:
    rows, total = await customs.list_providers(
        session, account_id, page=page, per_page=per_page, search=search, enable=enable
    )
    info = ResultInfo(page=page, per_page=per_page, count=len(rows), total_count=total)
    return ok([CustomProviderPublic.model_validate(row) for row in rows], info)


@router.get("/{provider_id}", response_model=Envelope[CustomProviderPublic])
async def get_custom_provider(
    account_id: AccountId, provider_id: RowId, _: CanRead, session: SessionDep
) -> dict[str, Any]:
    return ok(CustomProviderPublic.model_validate(await _existing(session, account_id, provider_id)))


@router.put("/{provider_id}", response_model=Envelope[CustomProviderPublic])
async def update_custom_provider(
    account_id: AccountId,
    provider_id: RowId,
    body: CustomProviderUpdate,
    principal: CanEdit,
    session: SessionDep,
    settings: SettingsDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    _every_gateway(principal)
    _destination_rule(settings, body.base_url)
    row = await customs.update_provider(session, await _existing(session, account_id, provider_id), body)
    await invalidation.changed(Change("custom", account_id))
    return ok(CustomProviderPublic.model_validate(row))


@router.delete("/{provider_id}", response_model=Envelope[CustomProviderPublic])
async def delete_custom_provider(
    account_id: AccountId,
    provider_id: RowId,
    principal: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    _every_gateway(principal)
    row = await _existing(session, account_id, provider_id)
    deleted = CustomProviderPublic.model_validate(row)
    await customs.delete_provider(session, row)
    await invalidation.changed(Change("custom", account_id))
    return ok(deleted)
