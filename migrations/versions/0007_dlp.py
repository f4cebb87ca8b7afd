"""DLP: the gateway column `dlp` (its policies as written) and the log columns `dlp_action` and
`dlp` (the findings, with counts; never matched text).

Revision ID: 0007_dlp
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_dlp"
down_revision: str | Sequence[str] | None = "0005_routes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("dlp", sa.JSON(), nullable=True))
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("dlp_action", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("dlp", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("dlp")
        batch.drop_column("dlp_action")
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("dlp")
