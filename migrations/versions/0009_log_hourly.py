"""Table `log_hourly`: log rows summed per gateway, UTC hour, provider, model and duration rounded
to two significant digits (app/db/log_summary.py), filled from the rows already stored.

Revision ID: 0009_log_hourly
Revises: 0005_rest
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_log_hourly"
down_revision: str | Sequence[str] | None = "0005_rest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ("account_id", "gateway_id", "hour", "provider", "model", "duration_ms")
# The same rounding as app/db/log_summary.duration_key, in integer SQL both databases run alike.
_ROUNDED = (
    "CASE WHEN duration_ms IS NULL THEN -1 WHEN duration_ms < 100 THEN duration_ms "
    + " ".join(
        f"WHEN duration_ms < {10 ** (digits + 1)} THEN "
        f"(duration_ms + {10 ** (digits - 1) // 2}) / {10 ** (digits - 1)} * {10 ** (digits - 1)}"
        for digits in range(2, 18)
    )
    + " ELSE duration_ms END"
)


def upgrade() -> None:
    op.create_table(
        "log_hourly",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("cached", sa.BigInteger(), nullable=False),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY),
    )
    if op.get_bind().dialect.name == "postgresql":
        hour = "CAST(floor(extract(epoch FROM created_at) / 3600) * 3600 AS BIGINT)"
        truth = "{} IS TRUE"
    else:
        # Whole seconds first: strftime rounds `…:59.9999995` up into the next second.
        hour = "CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) / 3600 * 3600"
        truth = "{} = 1"
    op.execute(
        f"""INSERT INTO log_hourly ({", ".join(_KEY)}, requests, errors, cached, tokens_in, tokens_out, cost)
        SELECT account_id, gateway_id, h, provider, model, d, count(*),
          sum(CASE WHEN {truth.format("success")} THEN 0 ELSE 1 END),
          sum(CASE WHEN {truth.format("cached")} THEN 1 ELSE 0 END),
          coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), coalesce(sum(cost), 0.0)
        FROM (SELECT account_id, gateway_id, {hour} AS h, coalesce(provider, '') AS provider,
                coalesce(model, '') AS model, {_ROUNDED} AS d,
                success, cached, tokens_in, tokens_out, cost
              FROM logs) AS rows
        GROUP BY account_id, gateway_id, h, provider, model, d"""
    )


def downgrade() -> None:
    op.drop_table("log_hourly")
