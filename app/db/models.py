"""SQLModel tables. Tables are created only by alembic migrations (migrations/), never by
`create_all`, so the schema in production is exactly what the migrations say."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class GatewayBase(SQLModel):
    cache_ttl: int | None = Field(default=0, ge=0)
    cache_invalidate_on_update: bool = False
    collect_logs: bool = True
    rate_limiting_limit: int | None = Field(default=0, ge=0)
    rate_limiting_interval: int | None = Field(default=0, ge=0)
    rate_limiting_technique: str = Field(default="fixed", max_length=16)
    authentication: bool = False
    log_management: int | None = Field(default=None, ge=0)
    log_management_strategy: str | None = Field(default=None, max_length=16)
    retry_max_attempts: int | None = Field(default=None, ge=1, le=5)
    retry_delay: int | None = Field(default=None, ge=0, le=5000)
    retry_backoff: str | None = Field(default=None, max_length=16)
    # DLP policies as written (app/dlp/config.py validates them; migration 0007_dlp).
    dlp: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Validated and normalised on input (app/db/spend_limits.py); migration 0006.
    spend_limits: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Gateway(GatewayBase, table=True):
    __tablename__ = "gateways"

    account_id: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)
    # OpenTelemetry exporters (db/otel_exporters.py): [{url, headers, authorization, content_type}].
    otel: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))


class Token(SQLModel, table=True):
    """A gateway/API token. Only a SHA-256 of the secret is stored."""

    __tablename__ = "tokens"

    id: str = Field(primary_key=True, max_length=32)
    account_id: str = Field(index=True, max_length=64)
    name: str = Field(default="", max_length=255)
    token_hash: str = Field(max_length=64)
    permissions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    gateways: list[str] = Field(default_factory=lambda: ["*"], sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    expires_on: datetime | None = None
    revoked_at: datetime | None = None


class Log(SQLModel, table=True):
    """One row per step attempted. `id` is a ULID, so ordering by id is ordering by time."""

    __tablename__ = "logs"
    __table_args__ = (
        Index("ix_logs_gateway_id_order", "account_id", "gateway_id", "id"),
        Index("ix_logs_gateway_created", "account_id", "gateway_id", "created_at"),
        Index("ix_logs_event", "account_id", "gateway_id", "event_id"),
        # The common list filters (provider, success, model), each ending in `id` so that a filtered
        # page is read in ULID order straight from the index (migration 0003).
        Index("ix_logs_gateway_provider", "account_id", "gateway_id", "provider", "success", "id"),
        Index("ix_logs_gateway_model", "account_id", "gateway_id", "model", "id"),
    )

    id: str = Field(primary_key=True, max_length=26)
    account_id: str = Field(max_length=64)
    gateway_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    provider: str = Field(default="", max_length=64)
    model: str | None = Field(default=None, max_length=255)
    path: str = Field(default="", max_length=2048)
    request_type: str = Field(default="universal", max_length=16)
    step: int = 0
    event_id: str | None = Field(default=None, max_length=128)
    connection_id: str | None = Field(default=None, max_length=36)
    status_code: int | None = None
    success: bool = False
    cached: bool = False
    attempts: int = 1
    duration_ms: int | None = None
    ttfb_ms: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    custom_cost: bool = False
    metadata_json: dict[str, object] | None = Field(default=None, sa_column=Column("metadata", JSON))
    request_content_type: str | None = Field(default=None, max_length=255)
    response_content_type: str | None = Field(default=None, max_length=255)
    request_size: int = 0
    response_size: int = 0
    request_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    request_body_complete: bool = True
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    response_body_complete: bool = True
    user_agent: str | None = Field(default=None, max_length=512)
    authenticated: bool = False
    error: str | None = None
    feedback: int | None = None
    score: int | None = None
    # Realtime (WebSocket-to-WebSocket) sessions: frames each way and the close code.
    frames_in: int | None = None
    frames_out: int | None = None
    close_code: int | None = None
    # What the gateway had to do without for this request (Redis down: cache treated as a miss, rate
    # limiter failed open or closed), "; "-separated; null when nothing degraded.
    gateway_notes: str | None = None
    # Dynamic routes: which route, version and model element this row was a call of (migration 0005).
    route_id: str | None = Field(default=None, max_length=64)
    route_name: str | None = Field(default=None, max_length=64)
    route_version_id: str | None = Field(default=None, max_length=64)
    route_element_id: str | None = Field(default=None, max_length=64)
    # DLP: "FLAG", "BLOCK" or null, and the findings with counts (never matched text).
    dlp_action: str | None = Field(default=None, max_length=8)
    dlp: dict[str, object] | None = Field(default=None, sa_column=Column("dlp", JSON))
    request_id: str | None = Field(default=None, max_length=26)  # the client request's first row id


class LogMetadata(SQLModel, table=True):
    """One row per metadata entry of a log, so that metadata filters and groupings use an index
    instead of parsing JSON row by row. `logs.metadata` stays the source the API returns."""

    __tablename__ = "log_metadata"
    __table_args__ = (Index("ix_log_metadata_value", "account_id", "gateway_id", "value", "key", "log_id"),)

    log_id: str = Field(primary_key=True, max_length=26)
    key: str = Field(primary_key=True, max_length=255)
    account_id: str = Field(max_length=64)
    gateway_id: str = Field(max_length=64)
    value: str = Field(max_length=512)


class LogCounter(SQLModel, table=True):
    """Stored log rows per gateway, kept by the log writer and by deletions in the same
    transactions: the storage limit and unfiltered list totals read it instead of COUNT(*)."""

    __tablename__ = "log_counters"

    account_id: str = Field(primary_key=True, max_length=64)
    gateway_id: str = Field(primary_key=True, max_length=64)
    log_count: int = 0


class LogHourly(SQLModel, table=True):
    """Log rows summed per gateway, UTC hour, provider, model and rounded duration, kept by the log
    writer and by deletions in the same transactions as the rows (db/log_summary.py): analytics
    over whole hours read these sums instead of every row (migration 0009_log_hourly)."""

    __tablename__ = "log_hourly"

    account_id: str = Field(primary_key=True, max_length=64)
    gateway_id: str = Field(primary_key=True, max_length=64)
    hour: int = Field(primary_key=True, sa_type=BigInteger)  # Unix seconds of the hour's start
    provider: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=255)  # "" for rows without a model
    duration_ms: int = Field(primary_key=True, sa_type=BigInteger)  # rounded; -1: no duration
    requests: int = Field(default=0, sa_type=BigInteger)
    errors: int = Field(default=0, sa_type=BigInteger)
    cached: int = Field(default=0, sa_type=BigInteger)
    tokens_in: int = Field(default=0, sa_type=BigInteger)
    tokens_out: int = Field(default=0, sa_type=BigInteger)
    cost: float = 0.0


class ProviderConfig(SQLModel, table=True):
    """A stored provider key (BYOK). The secret is kept only encrypted (app/auth/secretbox.py)."""

    __tablename__ = "provider_configs"
    __table_args__ = (
        Index("ux_provider_configs_alias", "account_id", "gateway_id", "provider_slug", "alias", unique=True),
    )

    id: str = Field(primary_key=True, max_length=32)
    account_id: str = Field(max_length=64)
    gateway_id: str = Field(max_length=64)
    provider_slug: str = Field(max_length=64)
    alias: str = Field(max_length=64)
    secret_encrypted: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    secret_preview: str = Field(max_length=32)
    default_config: bool = False
    rate_limit: float | None = None
    rate_limit_period: float | None = None
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)


class CustomProvider(SQLModel, table=True):
    """An account's own OpenAI-style upstream, reachable as `custom-{slug}`."""

    __tablename__ = "custom_providers"
    __table_args__ = (Index("ux_custom_providers_slug", "account_id", "slug", unique=True),)

    id: str = Field(primary_key=True, max_length=32)
    account_id: str = Field(max_length=64)
    slug: str = Field(max_length=64)
    name: str = Field(max_length=255)
    base_url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=1024)
    enable: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)
