"""SQLModel tables. Tables are created only by alembic migrations (migrations/), never by
`create_all`, so the schema in production is exactly what the migrations say."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, Index, LargeBinary
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


class Gateway(GatewayBase, table=True):
    __tablename__ = "gateways"

    account_id: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)


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
