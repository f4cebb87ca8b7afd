"""Log column `request_id`: the id of the client request a row belongs to (its first row's id),
sent as `cf-aig-request-id` and returned by `GET /logs/{id}`.

Revision ID: 0005_rest
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_rest"
down_revision: str | Sequence[str] | None = "0006_spend_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=26), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("request_id")
