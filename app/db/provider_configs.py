"""Stored provider keys (BYOK) of a gateway: schemas and queries. The secret is encrypted before it
reaches the session (app/auth/secretbox.py) and no schema here can carry it back out."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints, field_validator
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from ulid import ULID

from app.auth.secretbox import SecretBox, preview
from app.db.fields import UtcDatetime
from app.db.models import ProviderConfig, utcnow
from app.providers.catalog import PROVIDERS

_CUSTOM_SLUG = re.compile(r"^custom-[a-z0-9][a-z0-9-]{0,56}$")
Alias = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class AliasTaken(Exception):
    pass


def secret_context(account_id: str, gateway_id: str, config_id: str) -> str:
    """Associated data binding a stored secret's ciphertext to its row."""
    return f"provider_configs/{account_id}/{gateway_id}/{config_id}"


def _check_secret(value: str) -> str:
    if value != value.strip() or any(ord(c) < 32 for c in value):
        raise ValueError("must not have spaces at the ends or control characters")
    return value


class ProviderConfigCreate(SQLModel):
    provider_slug: str = Field(max_length=64)
    alias: Alias = "default"
    secret: str = Field(min_length=1, max_length=8192)
    secret_id: str | None = None  # a Secrets Store reference: not supported here
    default_config: bool = False
    rate_limit: float | None = Field(default=None, ge=0)
    rate_limit_period: float | None = Field(default=None, ge=0)

    @field_validator("provider_slug")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value in PROVIDERS or _CUSTOM_SLUG.match(value):
            return value
        raise ValueError(f"unknown provider {value[:64]!r} (a catalog slug or custom-{{slug}})")

    @field_validator("secret_id")
    @classmethod
    def _no_secret_store(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("Secrets Store references are not supported; send the key as `secret`")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        return _check_secret(value)


class ProviderConfigUpdate(SQLModel):
    """PUT body: the fields sent change; a new `secret` replaces (rotates) the stored one."""

    alias: Alias | None = None
    secret: str | None = Field(default=None, min_length=1, max_length=8192)
    default_config: bool | None = None
    rate_limit: float | None = Field(default=None, ge=0)
    rate_limit_period: float | None = Field(default=None, ge=0)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _check_secret(value)


class ProviderConfigPublic(SQLModel):
    id: str
    gateway_id: str
    provider_slug: str
    alias: str
    default_config: bool
    secret_id: str
    secret_preview: str
    rate_limit: float | None
    rate_limit_period: float | None
    created_at: UtcDatetime
    modified_at: UtcDatetime

    @classmethod
    def of(cls, row: ProviderConfig) -> ProviderConfigPublic:
        return cls.model_validate(row, update={"secret_id": row.id})


async def _single_default(session: AsyncSession, row: ProviderConfig) -> None:
    """At most one `default_config` key per provider and gateway: the newest wins."""
    if row.default_config:
        await session.exec(
            update(ProviderConfig)
            .where(
                col(ProviderConfig.account_id) == row.account_id,
                col(ProviderConfig.gateway_id) == row.gateway_id,
                col(ProviderConfig.provider_slug) == row.provider_slug,
                col(ProviderConfig.id) != row.id,
            )
            .values(default_config=False)
        )


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise AliasTaken() from exc


async def create_config(
    session: AsyncSession, box: SecretBox, account_id: str, gateway_id: str, data: ProviderConfigCreate
) -> ProviderConfig:
    config_id = str(ULID()).lower()
    stamp = utcnow()
    row = ProviderConfig(
        id=config_id,
        account_id=account_id,
        gateway_id=gateway_id,
        provider_slug=data.provider_slug,
        alias=data.alias,
        secret_encrypted=box.encrypt(data.secret, secret_context(account_id, gateway_id, config_id)),
        secret_preview=preview(data.secret),
        default_config=data.default_config,
        rate_limit=data.rate_limit,
        rate_limit_period=data.rate_limit_period,
        created_at=stamp,
        modified_at=stamp,
    )
    session.add(row)
    await _single_default(session, row)
    await _commit(session)
    return row


async def update_config(
    session: AsyncSession, box: SecretBox, row: ProviderConfig, data: ProviderConfigUpdate
) -> ProviderConfig:
    changes = data.model_dump(exclude_unset=True)
    secret = changes.pop("secret", None)
    if secret is not None:
        row.secret_encrypted = box.encrypt(secret, secret_context(row.account_id, row.gateway_id, row.id))
        row.secret_preview = preview(secret)
    for name in ("alias", "default_config"):
        if changes.get(name) is None:
            changes.pop(name, None)  # not nullable: null means "unchanged"
    row.sqlmodel_update(changes)
    row.modified_at = utcnow()
    session.add(row)
    await _single_default(session, row)
    await _commit(session)
    await session.refresh(row)
    return row


async def get_config(
    session: AsyncSession, account_id: str, gateway_id: str, config_id: str
) -> ProviderConfig | None:
    row = await session.get(ProviderConfig, config_id)
    if row is None or row.account_id != account_id or row.gateway_id != gateway_id:
        return None
    return row


async def list_configs(
    session: AsyncSession, account_id: str, gateway_id: str, *, page: int, per_page: int
) -> tuple[list[ProviderConfig], int]:
    where = (col(ProviderConfig.account_id) == account_id, col(ProviderConfig.gateway_id) == gateway_id)
    total = (await session.exec(select(func.count()).select_from(ProviderConfig).where(*where))).one()
    query = select(ProviderConfig).where(*where).order_by(col(ProviderConfig.id).desc())
    rows = (await session.exec(query.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def delete_config(session: AsyncSession, row: ProviderConfig) -> None:
    await session.delete(row)
    await session.commit()
