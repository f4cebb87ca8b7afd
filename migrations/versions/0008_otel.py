"""Gateway column `otel`: the gateway's OpenTelemetry exporters (a JSON list).

Revision ID: 0008_otel
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_otel"
down_revision: str | Sequence[str] | None = "0007_dlp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("otel", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("otel")
