"""`/client/v4/accounts/{account_id}/tokens`: mint, list and revoke tokens (ours; management-api.md).

Tokens are confined to the account in the path (`require_permission` checks it), and a token can
neither mint nor revoke a token with more power than its own: permissions and gateways must be a
subset of the caller's. The server's admin token may do anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlmodel.ext.asyncio.session import AsyncSession

from app.api.deps import AccountId, CanEdit, CanRead, InvalidationDep, SessionDep
from app.api.envelope import (
    ERROR_RESPONSES,
    Envelope,
    NotFound,
    PagedEnvelope,
    PermissionDenied,
    ResultInfo,
    ok,
)
from app.auth.principals import Principal
from app.db import tokens
from app.db.models import Token
from app.db.tokens import TokenCreate, TokenCreated, TokenPublic
from app.services.invalidation import Change

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/tokens", tags=["tokens"], responses=ERROR_RESPONSES
)


def _within(principal: Principal, permissions: Iterable[str], gateways: Iterable[str]) -> bool:
    """Whether a token with these permissions and gateways has no more power than `principal`."""
    if principal.is_admin:
        return True
    if not set(permissions) <= principal.permissions:
        return False
    if principal.gateways is None:
        return True
    wanted = set(gateways)
    return "*" not in wanted and wanted <= principal.gateways


async def _existing(session: AsyncSession, account_id: str, token_id: str) -> Token:
    row = await tokens.get_token(session, account_id, token_id)
    if row is None:
        raise NotFound(f"token {token_id!r} not found")
    return row


@router.post("", response_model=Envelope[TokenCreated])
async def create_token(
    account_id: AccountId,
    body: TokenCreate,
    principal: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    if not _within(principal, body.permissions, body.gateways):
        raise PermissionDenied("a token cannot mint a token with permissions or gateways it lacks")
    created = await tokens.create_token(session, account_id, body)
    await invalidation.changed(Change("token", account_id, created.id))
    return ok(created)


@router.get("", response_model=PagedEnvelope[TokenPublic])
async def list_tokens(
    account_id: AccountId,
    _: CanRead,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    rows, total = await tokens.list_tokens(session, account_id, page=page, per_page=per_page)
    info = ResultInfo(page=page, per_page=per_page, count=len(rows), total_count=total)
    return ok([TokenPublic.model_validate(row) for row in rows], info)


@router.get("/{token_id}", response_model=Envelope[TokenPublic])
async def get_token(account_id: AccountId, token_id: str, _: CanRead, session: SessionDep) -> dict[str, Any]:
    return ok(TokenPublic.model_validate(await _existing(session, account_id, token_id)))


@router.delete("/{token_id}", response_model=Envelope[TokenPublic])
async def revoke_token(
    account_id: AccountId,
    token_id: str,
    principal: CanEdit,
    session: SessionDep,
    invalidation: InvalidationDep,
) -> dict[str, Any]:
    row = await _existing(session, account_id, token_id)
    if not _within(principal, row.permissions, row.gateways):
        raise PermissionDenied("a token cannot revoke a token with permissions or gateways it lacks")
    row = await tokens.revoke_token(session, row)
    await invalidation.changed(Change("token", account_id, row.id))
    return ok(TokenPublic.model_validate(row))
