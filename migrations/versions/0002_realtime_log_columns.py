"""Log columns for realtime sessions: frames each way and the close code.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.add_column(sa.Column("frames_in", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("frames_out", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("close_code", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        batch.drop_column("close_code")
        batch.drop_column("frames_out")
        batch.drop_column("frames_in")
