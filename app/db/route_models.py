"""Tables of dynamic routes (routing.md): a route, its immutable versions, and the history of its
deployments. The route row points at the deployed version, so the request path reads one row
per route and its version, never the history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from app.db.models import utcnow


class Route(SQLModel, table=True):
    __tablename__ = "routes"
    __table_args__ = (Index("ux_routes_name", "account_id", "gateway_id", "name", unique=True),)

    id: str = Field(primary_key=True, max_length=36)
    account_id: str = Field(max_length=64)
    gateway_id: str = Field(max_length=64)
    name: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)
    version_id: str | None = Field(default=None, max_length=36)  # the deployed version
    deployment_id: str | None = Field(default=None, max_length=36)  # the current deployment


class RouteVersion(SQLModel, table=True):
    __tablename__ = "route_versions"
    __table_args__ = (Index("ix_route_versions_route", "route_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    route_id: str = Field(max_length=36)
    # JSON (not JSONB on PostgreSQL): the key order of a percentage element's outputs is its meaning.
    elements: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    comment: str | None = Field(default=None, max_length=1024)
    created_at: datetime = Field(default_factory=utcnow)


class RouteDeployment(SQLModel, table=True):
    __tablename__ = "route_deployments"
    __table_args__ = (Index("ix_route_deployments_route", "route_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    route_id: str = Field(max_length=36)
    version_id: str = Field(max_length=36)
    comment: str | None = Field(default=None, max_length=1024)
    created_at: datetime = Field(default_factory=utcnow)
