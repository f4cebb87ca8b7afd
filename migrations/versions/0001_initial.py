"""Initial schema: gateways, tokens, logs.

Generated with autogenerate against an empty SQLite database, then edited by hand: sqlmodel's
AutoString/UTCDateTime are written as plain sa.String/sa.DateTime(timezone=True) (what they
render as), so this file does not depend on sqlmodel internals.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 17:04:47.535779
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateways",
        sa.Column("cache_ttl", sa.Integer(), nullable=True),
        sa.Column("cache_invalidate_on_update", sa.Boolean(), nullable=False),
        sa.Column("collect_logs", sa.Boolean(), nullable=False),
        sa.Column("rate_limiting_limit", sa.Integer(), nullable=True),
        sa.Column("rate_limiting_interval", sa.Integer(), nullable=True),
        sa.Column("rate_limiting_technique", sa.String(length=16), nullable=False),
        sa.Column("authentication", sa.Boolean(), nullable=False),
        sa.Column("log_management", sa.Integer(), nullable=True),
        sa.Column("log_management_strategy", sa.String(length=16), nullable=True),
        sa.Column("retry_max_attempts", sa.Integer(), nullable=True),
        sa.Column("retry_delay", sa.Integer(), nullable=True),
        sa.Column("retry_backoff", sa.String(length=16), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "id"),
    )
    op.create_table(
        "logs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("path", sa.String(length=2048), nullable=False),
        sa.Column("request_type", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("connection_id", sa.String(length=36), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("ttfb_ms", sa.Integer(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("custom_cost", sa.Boolean(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("request_content_type", sa.String(length=255), nullable=True),
        sa.Column("response_content_type", sa.String(length=255), nullable=True),
        sa.Column("request_size", sa.Integer(), nullable=False),
        sa.Column("response_size", sa.Integer(), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=True),
        sa.Column("request_body_complete", sa.Boolean(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column("response_body_complete", sa.Boolean(), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("feedback", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # Listing and filtering logs is always scoped to one gateway; ULID ids sort by time.
    op.create_index("ix_logs_gateway_id_order", "logs", ["account_id", "gateway_id", "id"])
    op.create_index("ix_logs_gateway_created", "logs", ["account_id", "gateway_id", "created_at"])
    op.create_index("ix_logs_event", "logs", ["account_id", "gateway_id", "event_id"])

    op.create_table(
        "tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("gateways", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_on", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tokens_account_id", "tokens", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_tokens_account_id", table_name="tokens")
    op.drop_table("tokens")
    op.drop_index("ix_logs_event", table_name="logs")
    op.drop_index("ix_logs_gateway_created", table_name="logs")
    op.drop_index("ix_logs_gateway_id_order", table_name="logs")
    op.drop_table("logs")
    op.drop_table("gateways")
