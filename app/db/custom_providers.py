"""An account's custom providers (`custom-{slug}`): schemas and queries.

`base_url` must be https. Plain http is refused, except to a loopback host when the development
setting `AIGW_ALLOW_HTTP_CUSTOM_PROVIDERS=true` allows it (tests, a local model server).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import StringConstraints, field_validator
from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from ulid import ULID

from app.db.fields import UtcDatetime
from app.db.models import CustomProvider, utcnow

CUSTOM_PREFIX = "custom-"
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,56}$")]


class SlugTaken(Exception):
    pass


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(value: str, allow_http_loopback: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must not contain credentials, a query or a fragment")
    if parts.scheme == "http" and not (allow_http_loopback and _is_loopback(parts.hostname)):
        raise ValueError("must use https (http is allowed only to loopback, in development)")
    return value.rstrip("/")


class _CustomProviderInput(SQLModel):
    """The https rule depends on a setting, so the router applies `check_base_url` itself; here
    only the URL's form is checked."""

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value, allow_http_loopback=True)


class CustomProviderCreate(_CustomProviderInput):
    name: str = Field(min_length=1, max_length=255)
    slug: Slug
    base_url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=1024)
    enable: bool = True


class CustomProviderUpdate(_CustomProviderInput):
    """PUT body: the fields sent change (the slug is the provider's name in URLs and stays)."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    base_url: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=1024)
    enable: bool | None = None


class CustomProviderPublic(SQLModel):
    id: str
    name: str
    slug: str
    base_url: str
    description: str | None
    enable: bool
    created_at: UtcDatetime
    modified_at: UtcDatetime


async def create_provider(
    session: AsyncSession, account_id: str, data: CustomProviderCreate
) -> CustomProvider:
    stamp = utcnow()
    row = CustomProvider.model_validate(
        data,
        update={
            "id": str(ULID()).lower(),
            "account_id": account_id,
            "created_at": stamp,
            "modified_at": stamp,
        },
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise SlugTaken(data.slug) from exc
    return row


async def get_provider_row(session: AsyncSession, account_id: str, provider_id: str) -> CustomProvider | None:
    row = await session.get(CustomProvider, provider_id)
    return row if row is not None and row.account_id == account_id else None


async def list_providers(
    session: AsyncSession,
    account_id: str,
    *,
    page: int,
    per_page: int,
    search: str | None = None,
    enable: bool | None = None,
) -> tuple[list[CustomProvider], int]:
    query = select(CustomProvider).where(col(CustomProvider.account_id) == account_id)
    if search:
        query = query.where(
            or_(
                col(CustomProvider.id).contains(search, autoescape=True),
                col(CustomProvider.name).icontains(search, autoescape=True),
                col(CustomProvider.slug).contains(search, autoescape=True),
            )
        )
    if enable is not None:
        query = query.where(col(CustomProvider.enable).is_(enable))
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    ordered = query.order_by(col(CustomProvider.id).desc())
    rows = (await session.exec(ordered.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def update_provider(
    session: AsyncSession, row: CustomProvider, data: CustomProviderUpdate
) -> CustomProvider:
    changes = {
        k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None or k == "description"
    }
    row.sqlmodel_update(changes)
    row.modified_at = utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def delete_provider(session: AsyncSession, row: CustomProvider) -> None:
    await session.delete(row)
    await session.commit()
