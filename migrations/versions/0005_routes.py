"""Dynamic routes: `routes`, `route_versions`, `route_deployments`, and the route columns of a log
row (which route, version and element served it).

Revision ID: 0005_routes
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_routes"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOG_COLUMNS = ("route_id", "route_name", "route_version_id", "route_element_id")


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version_id", sa.String(36), nullable=True),
        sa.Column("deployment_id", sa.String(36), nullable=True),
    )
    op.create_index("ux_routes_name", "routes", ["account_id", "gateway_id", "name"], unique=True)
    op.create_table(
        "route_versions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("route_id", sa.String(36), nullable=False),
        sa.Column("elements", sa.JSON(), nullable=False),
        sa.Column("comment", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_route_versions_route", "route_versions", ["route_id", "created_at"])
    op.create_table(
        "route_deployments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("route_id", sa.String(36), nullable=False),
        sa.Column("version_id", sa.String(36), nullable=False),
        sa.Column("comment", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_route_deployments_route", "route_deployments", ["route_id", "created_at"])
    with op.batch_alter_table("logs") as batch:
        for name in _LOG_COLUMNS:
            batch.add_column(sa.Column(name, sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logs") as batch:
        for name in reversed(_LOG_COLUMNS):
            batch.drop_column(name)
    op.drop_table("route_deployments")
    op.drop_table("route_versions")
    op.drop_index("ux_routes_name", table_name="routes")
    op.drop_table("routes")
