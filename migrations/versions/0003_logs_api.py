"""Logs API, stored provider keys, custom providers.

- `log_metadata`: one row per metadata entry of a log (indexed metadata filters and groupings),
  back-filled from `logs.metadata`.
- `log_counters`: stored log rows per gateway (storage limit, unfiltered list totals), back-filled.
- Indexes on logs for the common filters (provider + success, model), ending in `id`.
- `provider_configs` (BYOK, secrets encrypted) and `custom_providers`.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL_METADATA = {
    "sqlite": """
        INSERT INTO log_metadata (log_id, key, account_id, gateway_id, value)
        SELECT l.id, substr(j.key, 1, 255), l.account_id, l.gateway_id,
               substr(CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                      ELSE CAST(j.value AS TEXT) END, 1, 512)
        FROM logs l, json_each(l.metadata) j
        WHERE l.metadata IS NOT NULL AND json_type(l.metadata) = 'object'
          AND j.type NOT IN ('object', 'array', 'null')
    """,
    "postgresql": """
        INSERT INTO log_metadata (log_id, key, account_id, gateway_id, value)
        SELECT l.id, left(j.key, 255), l.account_id, l.gateway_id, left(j.value, 512)
        FROM logs l, json_each_text(l.metadata) j
        WHERE l.metadata IS NOT NULL AND json_typeof(l.metadata) = 'object' AND j.value IS NOT NULL
        ON CONFLICT DO NOTHING
    """,
}


def upgrade() -> None:
    op.create_table(
        "log_metadata",
        sa.Column("log_id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "key"),
    )
    op.create_index(
        "ix_log_metadata_value", "log_metadata", ["account_id", "gateway_id", "value", "key", "log_id"]
    )
    op.create_table(
        "log_counters",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("log_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "gateway_id"),
    )
    op.create_index(
        "ix_logs_gateway_provider", "logs", ["account_id", "gateway_id", "provider", "success", "id"]
    )
    op.create_index("ix_logs_gateway_model", "logs", ["account_id", "gateway_id", "model", "id"])

    op.create_table(
        "provider_configs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("provider_slug", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("secret_preview", sa.String(length=32), nullable=False),
        sa.Column("default_config", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("rate_limit_period", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_provider_configs_alias",
        "provider_configs",
        ["account_id", "gateway_id", "provider_slug", "alias"],
        unique=True,
    )
    op.create_table(
        "custom_providers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("enable", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_custom_providers_slug", "custom_providers", ["account_id", "slug"], unique=True)

    bind = op.get_bind()
    backfill = _BACKFILL_METADATA.get(bind.dialect.name)
    if backfill is not None:
        op.execute(backfill)
    op.execute(
        "INSERT INTO log_counters (account_id, gateway_id, log_count) "
        "SELECT account_id, gateway_id, COUNT(*) FROM logs GROUP BY account_id, gateway_id"
    )


def downgrade() -> None:
    op.drop_index("ux_custom_providers_slug", table_name="custom_providers")
    op.drop_table("custom_providers")
    op.drop_index("ux_provider_configs_alias", table_name="provider_configs")
    op.drop_table("provider_configs")
    op.drop_index("ix_logs_gateway_model", table_name="logs")
    op.drop_index("ix_logs_gateway_provider", table_name="logs")
    op.drop_table("log_counters")
    op.drop_index("ix_log_metadata_value", table_name="log_metadata")
    op.drop_table("log_metadata")
