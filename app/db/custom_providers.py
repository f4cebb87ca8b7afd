"""An account's custom providers (`custom-{slug}`): schemas and queries.

`base_url` must be https, and a host written as a literal loopback, private, link-local,
unspecified or multicast address (`10.0.0.1`, `[::ffff:10.0.0.1]`, `127.1`) is refused. Host names
are accepted here: the upstream client checks the address a name resolves to when it connects
(the provider is a `tenant_destination`). The development setting
`AIGW_ALLOW_PRIVATE_DESTINATIONS=true` lifts both rules (tests, a local model server).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import StringConstraints, field_validator
from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from ulid import ULID

from app.core.addresses import is_refused_address, literal_address
from app.db.fields import UtcDatetime
from app.db.models import CustomProvider, utcnow

CUSTOM_PREFIX = "custom-"
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,56}$")]


class SlugTaken(Exception):
    pass


def check_base_url(value: str, allow_private: bool) -> str:
    """The base URL as stored (no trailing `/`); ValueError says what is wrong with it."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        raise ValueError("must be an absolute https:// URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an absolute https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must not contain credentials, a query or a fragment")
    if allow_private:
        return value.rstrip("/")
    if parts.scheme == "http":
        raise ValueError("must use https (http is allowed only with AIGW_ALLOW_PRIVATE_DESTINATIONS)")
    address = literal_address(host)
    if address is not None and is_refused_address(address):
        raise ValueError(f"{host} is a loopback, private, link-local or otherwise non-public address")
    return value.rstrip("/")


class _CustomProviderInput(SQLModel):
    """The https and address rules depend on a setting, so the router applies `check_base_url`
    itself; here only the URL's form is checked."""

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value, allow_private=True)


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
