"""Log column `gateway_notes`: what the gateway did without for a request (Redis down: the cache
treated as a miss, the rate limiter failing open or closed).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("gateway_notes", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("gateway_notes")
