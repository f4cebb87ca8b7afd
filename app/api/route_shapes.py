"""Dynamic routes as the SDK reads them (routing.md §2): Route, RouteCore, Version, VersionDetail,
Deployment, and the four list/update responses that are not wrapped in `result`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from app.db.fields import as_utc
from app.db.route_models import Route, RouteDeployment, RouteVersion


def iso_ms(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def version_shape(version: RouteVersion, route: Route) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "version_id": version.id,
        "active": "true" if route.version_id == version.id else "false",
        "created_at": iso_ms(version.created_at),
        "data": json.dumps(version.elements, separators=(",", ":")),
        "is_valid": True,  # invalid graphs are refused on write
    }
    if version.comment is not None:
        shape["comment"] = version.comment
    return shape


def deployment_shape(deployment: RouteDeployment) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "deployment_id": deployment.id,
        "version_id": deployment.version_id,
        "created_at": iso_ms(deployment.created_at),
    }
    if deployment.comment is not None:
        shape["comment"] = deployment.comment
    return shape


def route_core(route: Route, elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": route.id,
        "name": route.name,
        "gateway_id": route.gateway_id,
        "created_at": iso_ms(route.created_at),
        "modified_at": iso_ms(route.modified_at),
        "elements": elements,
    }


def route_shape(
    route: Route, version: RouteVersion | None, deployment: RouteDeployment | None
) -> dict[str, Any]:
    shape = route_core(route, version.elements if version is not None else [])
    shape["account_tag"] = route.account_id
    shape["version"] = version_shape(version, route) if version is not None else None
    shape["deployment"] = deployment_shape(deployment) if deployment is not None else None
    return shape


def version_detail(version: RouteVersion, route: Route) -> dict[str, Any]:
    return {
        **version_shape(version, route),
        "id": route.id,
        "name": route.name,
        "gateway_id": route.gateway_id,
        "modified_at": iso_ms(route.modified_at),
        "elements": version.elements,
    }


def unwrapped(key: str, value: Any) -> dict[str, Any]:
    """A response the SDK reads at the top level (`data`, `route`), not under `result`."""
    return {"success": True, "errors": [], "messages": [], key: value}


def page_data(name: str, items: list[dict[str, Any]], page: int, per_page: int, total: int) -> dict[str, Any]:
    return {
        name: items,
        "page": page,
        "per_page": per_page,
        "order_by": "created_at",
        "order_by_direction": "desc",
        "total_count": total,
    }
