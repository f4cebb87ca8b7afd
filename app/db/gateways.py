"""Gateway schemas and queries, shared by the management API and the `aigw gateways` commands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.secretbox import SecretBox
from app.db.fields import INT32_MAX, GatewayId, UtcDatetime
from app.db.log_store import purge_gateway
from app.db.models import Gateway, GatewayBase, ProviderConfig, utcnow
from app.db.otel_exporters import (
    MAX_EXPORTERS,
    OtelExporterInput,
    OtelExporterPublic,
    keep_stored_authorizations,
    open_exporters,
    seal_exporters,
)
from app.db.routes import delete_gateway_routes
from app.db.spend_limits import SpendLimits
from app.dlp.config import DlpIn


class GatewayExists(Exception):
    pass


class _GatewayInput(GatewayBase):
    """The writable fields, with the value sets the public API accepts."""

    rate_limiting_technique: Literal["fixed", "sliding"] = "fixed"
    log_management_strategy: Literal["STOP_INSERTING", "DELETE_OLDEST"] | None = None
    retry_backoff: Literal["constant", "linear", "exponential"] | None = None
    dlp: DlpIn | None = None  # type: ignore[assignment]  # validated here, stored as written
    otel: list[OtelExporterInput] | None = Field(default=None, max_length=MAX_EXPORTERS)
    spend_limits: SpendLimits | None = None  # type: ignore[assignment]  # stored as its JSON

    @field_serializer("spend_limits")
    def _spend_limits_json(self, value: SpendLimits | None) -> dict[str, Any] | None:
        return value.stored() if value is not None else None

    @field_validator("cache_ttl", "rate_limiting_limit", "rate_limiting_interval", "log_management")
    @classmethod
    def _fits_column(cls, value: int | None) -> int | None:
        if value is not None and value > INT32_MAX:
            raise ValueError(f"must be at most {INT32_MAX}")
        return value

    def stored_fields(self, *, only_sent: bool) -> dict[str, Any]:
        fields = self.model_dump(exclude_unset=only_sent)
        if "dlp" in fields:
            fields["dlp"] = self.dlp.stored() if self.dlp is not None else None
        return fields


class GatewayCreate(_GatewayInput):
    id: GatewayId


class GatewayUpdate(_GatewayInput):
    """PUT body. Only the fields sent are changed (`exclude_unset`); the types still refuse null
    for the columns that cannot hold it."""


class GatewayPublic(GatewayBase):
    id: str
    account_id: str
    created_at: UtcDatetime
    modified_at: UtcDatetime
    is_default: bool = False  # the `default` gateway, created on first use (SDK field)
    otel: list[OtelExporterPublic] | None = None  # `authorization` as a preview only


async def create_gateway(
    session: AsyncSession, account_id: str, data: GatewayCreate, box: SecretBox | None = None
) -> Gateway:
    """`box` encrypts the secrets of OTel exporters (SecretKeyMissing without one when needed)."""
    if await session.get(Gateway, (account_id, data.id)) is not None:
        raise GatewayExists(data.id)
    stamp = utcnow()
    fields = data.stored_fields(only_sent=False)
    fields["otel"] = seal_exporters(fields.get("otel"), box, account_id, data.id)
    row = Gateway.model_validate(
        fields,
        update={"account_id": account_id, "created_at": stamp, "modified_at": stamp},
    )
    # Rows the log writer still had queued for a deleted gateway of this id must not show up here.
    await purge_gateway(await session.connection(), (account_id, data.id))
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:  # created concurrently since the check above
        await session.rollback()
        raise GatewayExists(data.id) from exc
    return row


async def get_gateway(session: AsyncSession, account_id: str, gateway_id: str) -> Gateway | None:
    return await session.get(Gateway, (account_id, gateway_id))


async def list_gateways(
    session: AsyncSession,
    account_id: str,
    *,
    page: int = 1,
    per_page: int = 20,
    search: str | None = None,
    only: frozenset[str] | None = None,
) -> tuple[list[Gateway], int]:
    """One page of the account's gateways (newest first) and the total. `only` limits the listing
    to the gateways a gateway-limited token may see."""
    query = select(Gateway).where(Gateway.account_id == account_id)
    if search:
        query = query.where(col(Gateway.id).contains(search, autoescape=True))
    if only is not None:
        query = query.where(col(Gateway.id).in_(only))
    total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
    ordered = query.order_by(col(Gateway.created_at).desc(), col(Gateway.id))
    rows = (await session.exec(ordered.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def update_gateway(
    session: AsyncSession, row: Gateway, data: GatewayUpdate, box: SecretBox | None = None
) -> Gateway:
    changes = data.stored_fields(only_sent=True)
    if "otel" in changes:  # a preview sent back unchanged keeps the stored secret
        stored = open_exporters(row.otel, box, row.account_id, row.id)
        kept = keep_stored_authorizations(changes["otel"], stored)
        changes["otel"] = seal_exporters(kept, box, row.account_id, row.id)
    row.sqlmodel_update(changes)
    row.modified_at = utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return row


async def delete_gateway(session: AsyncSession, row: Gateway) -> None:
    """Delete the gateway, its logs, stored provider keys and routes in one transaction."""
    key = (row.account_id, row.id)
    await purge_gateway(await session.connection(), key)
    await session.exec(
        delete(ProviderConfig).where(
            col(ProviderConfig.account_id) == row.account_id, col(ProviderConfig.gateway_id) == row.id
        )
    )
    await delete_gateway_routes(session, row.account_id, row.id)
    await session.delete(row)
    await session.commit()
