"""Token schemas and queries, shared by the management API and the `aigw tokens` commands.

Only a SHA-256 of a token's value is stored (app.auth.tokens); the value itself is returned once,
by `create_token`, and never again.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import field_validator
from sqlalchemy import func
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth import tokens as security
from app.db.fields import ID_PATTERN, UtcDatetime, as_utc
from app.db.models import Token, utcnow

Permission = Literal["run", "read", "edit"]
PERMISSIONS: tuple[Permission, ...] = ("run", "read", "edit")
MAX_GATEWAYS_PER_TOKEN = 1000


class TokenCreate(SQLModel):
    name: str = Field(default="", max_length=255)
    permissions: list[Permission] = Field(default_factory=lambda: ["run"], min_length=1)
    gateways: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=MAX_GATEWAYS_PER_TOKEN
    )
    expires_on: datetime | None = None

    @field_validator("permissions")
    @classmethod
    def _canonical_permissions(cls, value: list[Permission]) -> list[Permission]:
        return [p for p in PERMISSIONS if p in value]

    @field_validator("gateways")
    @classmethod
    def _gateway_ids(cls, value: list[str]) -> list[str]:
        if "*" in value:
            return ["*"]
        bad = [g for g in value if not re.fullmatch(ID_PATTERN, g)]
        if bad:
            raise ValueError(f"not a gateway id: {bad[0]!r} (use '*' or ids matching {ID_PATTERN})")
        return sorted(set(value))

    @field_validator("expires_on")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if value <= utcnow():
            raise ValueError("must be in the future")
        return value


class TokenPublic(SQLModel):
    id: str
    account_id: str
    name: str
    permissions: list[str]
    gateways: list[str]
    created_at: UtcDatetime
    expires_on: UtcDatetime | None
    revoked_at: UtcDatetime | None


class TokenCreated(TokenPublic):
    value: str = Field(description="The token itself. Shown this once; only its hash is stored.")


async def create_token(session: AsyncSession, account_id: str, data: TokenCreate) -> TokenCreated:
    token_id, value, token_hash = security.new_token()
    row = Token(
        id=token_id,
        account_id=account_id,
        name=data.name,
        token_hash=token_hash,
        permissions=list(data.permissions),
        gateways=list(data.gateways),
        expires_on=data.expires_on,
    )
    session.add(row)
    await session.commit()
    return TokenCreated.model_validate(row, update={"value": value})


async def get_token(session: AsyncSession, account_id: str, token_id: str) -> Token | None:
    row = await session.get(Token, token_id)
    # Another account's token is reported as missing, not as forbidden: ids do not leak.
    return row if row is not None and row.account_id == account_id else None


async def list_tokens(
    session: AsyncSession, account_id: str, *, page: int = 1, per_page: int = 20
) -> tuple[list[Token], int]:
    """One page of the account's tokens, newest first (ULID ids sort by creation), and the total."""
    where = col(Token.account_id) == account_id
    total = (await session.exec(select(func.count()).select_from(Token).where(where))).one()
    query = select(Token).where(where).order_by(col(Token.id).desc())
    rows = (await session.exec(query.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def revoke_token(session: AsyncSession, row: Token) -> Token:
    """Mark the token revoked (idempotent: a second revocation keeps the first time)."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        await session.commit()
        await session.refresh(row)
    return row
