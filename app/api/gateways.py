"""`/client/v4/accounts/{account_id}/ai-gateway/gateways`: gateway CRUD (management-api.md)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection, Request

from app.api.deps import AccountId, CanEdit, CanRead, InvalidationDep, SessionDep, SettingsDep
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
from app.api.spend_counters import drop_spend_counters, rule_ids
from app.auth.secretbox import SecretBox, SecretKeyMissing
from app.db import gateways
from app.db.custom_providers import check_base_url
from app.db.gateways import GatewayCreate, GatewayExists, GatewayPublic, GatewayUpdate
from app.db.models import Gateway
from app.db.otel_exporters import open_exporters
from app.services.cache.store import CacheStore
from app.services.invalidation import Change

logger = logging.getLogger("aigw.api")

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/ai-gateway/gateways",
    tags=["gateways"],
    responses=ERROR_RESPONSES,
)

Page = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=100)]
# Provider slugs are path segments of the gateway URL; anything else there is a typo.
ProviderSlug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


async def _existing(session: AsyncSession, account_id: str, gateway_id: str) -> Gateway:
    row = await gateways.get_gateway(session, account_id, gateway_id)
    if row is None:
        raise NotFound(f"gateway {gateway_id!r} not found")
    return row


def _check_exporters(body: GatewayCreate | GatewayUpdate, allow_private: bool) -> None:
    """Exporter URLs follow the destination rules of custom providers (400 / 1001 `otel.N.url`)."""
    for index, exporter in enumerate(body.otel or ()):
        try:
            check_base_url(exporter.url, allow_private)
        except ValueError as exc:
            raise InvalidInput(f"otel.{index}.url: {exc}") from None


NO_SECRET_KEY = (
    "otel: the server has no AIGW_SECRET_KEY, so it cannot store exporter headers or authorization"
)


def _box(conn: HTTPConnection) -> SecretBox | None:
    """The server key's box, for the secrets of OTel exporters (None: an app assembled without
    the gateway's services, which then cannot store any)."""
    return getattr(conn.app.state, "secret_box", None)


BoxDep = Annotated[SecretBox | None, Depends(_box)]


def _public(row: Gateway, box: SecretBox | None) -> GatewayPublic:
    otel = open_exporters(row.otel, box, row.account_id, row.id)
    return GatewayPublic.model_validate(row, update={"is_default": row.id == "default", "otel": otel})


async def _drop_cached_responses(request: Request, account_id: str, gateway_id: str) -> None:
    """Drop the gateway's cached responses (keys are prefixed `{account}/{gateway}/`). The change is
    already committed, so a cache store that is down is logged rather than failing the call."""
    cache: CacheStore | None = getattr(request.app.state, "cache", None)
    if cache is None:  # an app assembled without gateway traffic
        return
    try:
        dropped = await cache.delete_prefix(f"{account_id}/{gateway_id}/")
    except Exception:
        logger.exception("could not drop the cached responses of gateway %s/%s", account_id, gateway_id)
        return
    logger.info("dropped %d cached responses of gateway %s/%s", dropped, account_id, gateway_id)


@router.get("", response_model=PagedEnvelope[GatewayPublic])
async def list_gateways(
    account_id: AccountId,
    principal: CanRead,
    session: SessionDep,
    box: BoxDep,
    page: Page = 1,
    per_page: PerPage = 20,
    search: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    rows, total = await gateways.list_gateways(
        session, account_id, page=page, per_page=per_page, search=search, only=principal.gateways
    )
    info = ResultInfo(page=page, per_page=per_page, count=len(rows), total_count=total)
    return ok([_public(row, box) for row in rows], info)


@router.post("", response_model=Envelope[GatewayPublic])
async def create_gateway(
    account_id: AccountId,
    body: GatewayCreate,
    principal: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
    settings: SettingsDep,
    box: BoxDep,
) -> dict[str, Any]:
    _check_exporters(body, settings.allow_private_destinations)
    # The path has no gateway id, so the dependency could not check a gateway-limited token.
    if not principal.can("edit", account_id, body.id):
        raise PermissionDenied(f"token may not create gateway {body.id!r}")
    try:
        row = await gateways.create_gateway(session, account_id, body, box)
    except GatewayExists as exc:
        raise Conflict(f"gateway {body.id!r} already exists") from exc
    except SecretKeyMissing:
        raise InvalidInput(NO_SECRET_KEY) from None
    await invalidation.changed(Change("gateway", account_id, body.id))
    return ok(_public(row, box))


@router.get("/{gateway_id}", response_model=Envelope[GatewayPublic])
async def get_gateway(
    account_id: AccountId, gateway_id: str, _: CanRead, session: SessionDep, box: BoxDep
) -> dict[str, Any]:
    return ok(_public(await _existing(session, account_id, gateway_id), box))


@router.put("/{gateway_id}", response_model=Envelope[GatewayPublic])
async def update_gateway(
    account_id: AccountId,
    gateway_id: str,
    body: GatewayUpdate,
    _: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
    request: Request,
    settings: SettingsDep,
    box: BoxDep,
) -> dict[str, Any]:
    _check_exporters(body, settings.allow_private_destinations)
    row = await _existing(session, account_id, gateway_id)
    rules_before = rule_ids(row.spend_limits)
    try:
        row = await gateways.update_gateway(session, row, body, box)
    except SecretKeyMissing:
        raise InvalidInput(NO_SECRET_KEY) from None
    await invalidation.changed(Change("gateway", account_id, gateway_id))
    await drop_spend_counters(request, account_id, gateway_id, rules_before - rule_ids(row.spend_limits))
    if row.cache_invalidate_on_update:
        await _drop_cached_responses(request, account_id, gateway_id)
    return ok(_public(row, box))


@router.delete("/{gateway_id}", response_model=Envelope[GatewayPublic])
async def delete_gateway(
    account_id: AccountId,
    gateway_id: str,
    _: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
    request: Request,
    box: BoxDep,
) -> dict[str, Any]:
    """Delete the gateway with its logs, stored provider keys and cached responses."""
    row = await _existing(session, account_id, gateway_id)
    deleted = _public(row, box)  # before the delete expires the row's attributes
    await gateways.delete_gateway(session, row)
    # Its stored keys and routes went with it (the rows cascade).
    await invalidation.changed(
        Change("gateway", account_id, gateway_id), Change("keys", account_id, gateway_id),
        Change("routes", account_id, gateway_id),
    )  # fmt: skip
    await _drop_cached_responses(request, account_id, gateway_id)
    await drop_spend_counters(request, account_id, gateway_id, None)
    return ok(deleted)


@router.get("/{gateway_id}/url/{provider}", response_model=Envelope[str])
async def get_gateway_url(
    account_id: AccountId,
    gateway_id: str,
    provider: ProviderSlug,
    _: CanRead,
    session: SessionDep,
    request: Request,
) -> dict[str, Any]:
    # `default` is created on its first authenticated request, so its URL is valid before it exists.
    if gateway_id != "default":
        await _existing(session, account_id, gateway_id)
    base = str(request.base_url).rstrip("/")
    return ok(f"{base}/v1/{account_id}/{gateway_id}/{provider}")
