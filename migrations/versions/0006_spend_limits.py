"""Gateway column `spend_limits`: the gateway's cost budgets (JSON, validated by the API).

Revision ID: 0006_spend_limits
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_spend_limits"
down_revision: str | Sequence[str] | None = "0008_otel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("spend_limits", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("spend_limits")
