"""Queries of dynamic routes, versions and deployments (routing.md §1), shared by the management
API and the route cache. A version is immutable; a deployment only moves the route's pointer and
adds to the history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.models import utcnow
from app.db.route_models import Route, RouteDeployment, RouteVersion

MAX_ROUTES_PER_GATEWAY = 100


class RouteNameTaken(Exception):
    pass


class TooManyRoutes(Exception):
    pass


def new_id() -> str:
    return str(uuid.uuid4())


async def _name_taken(session: AsyncSession, account_id: str, gateway_id: str, name: str) -> bool:
    query = select(Route.id).where(
        Route.account_id == account_id, Route.gateway_id == gateway_id, Route.name == name
    )
    return (await session.exec(query)).first() is not None


async def create_route(
    session: AsyncSession, account_id: str, gateway_id: str, name: str, elements: list[dict[str, Any]]
) -> Route:
    """A route with version 1, deployed at once (as the hosted service does)."""
    if await _name_taken(session, account_id, gateway_id, name):
        raise RouteNameTaken(name)
    count_query = select(func.count()).where(Route.account_id == account_id, Route.gateway_id == gateway_id)
    if (await session.exec(count_query)).one() >= MAX_ROUTES_PER_GATEWAY:
        raise TooManyRoutes(gateway_id)
    stamp = utcnow()
    route = Route(id=new_id(), account_id=account_id, gateway_id=gateway_id, name=name, created_at=stamp)
    route.modified_at = stamp
    version = RouteVersion(id=new_id(), route_id=route.id, elements=elements, created_at=stamp)
    deployment = RouteDeployment(id=new_id(), route_id=route.id, version_id=version.id, created_at=stamp)
    route.version_id, route.deployment_id = version.id, deployment.id
    session.add_all([route, version, deployment])
    try:
        await session.commit()
    except IntegrityError as exc:  # created concurrently since the check above
        await session.rollback()
        raise RouteNameTaken(name) from exc
    return route


async def get_route(session: AsyncSession, account_id: str, gateway_id: str, route_id: str) -> Route | None:
    route = await session.get(Route, route_id)
    if route is None or route.account_id != account_id or route.gateway_id != gateway_id:
        return None
    return route


async def current(session: AsyncSession, route: Route) -> tuple[RouteVersion | None, RouteDeployment | None]:
    """The deployed version and the current deployment of a route."""
    version = await session.get(RouteVersion, route.version_id) if route.version_id else None
    deployment = await session.get(RouteDeployment, route.deployment_id) if route.deployment_id else None
    return version, deployment


async def list_routes(
    session: AsyncSession, account_id: str, gateway_id: str, page: int, per_page: int
) -> tuple[list[Route], int]:
    where = (col(Route.account_id) == account_id, col(Route.gateway_id) == gateway_id)
    total = (await session.exec(select(func.count()).where(*where))).one()
    query = select(Route).where(*where).order_by(col(Route.created_at).desc(), col(Route.id))
    rows = (await session.exec(query.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def rename_route(session: AsyncSession, route: Route, name: str) -> Route:
    if name != route.name and await _name_taken(session, route.account_id, route.gateway_id, name):
        raise RouteNameTaken(name)
    route.name, route.modified_at = name, utcnow()
    session.add(route)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise RouteNameTaken(name) from exc
    await session.refresh(route)
    return route


async def _delete_children(session: AsyncSession, route_ids: list[str]) -> None:
    if route_ids:
        await session.exec(delete(RouteVersion).where(col(RouteVersion.route_id).in_(route_ids)))
        await session.exec(delete(RouteDeployment).where(col(RouteDeployment.route_id).in_(route_ids)))


async def delete_route(session: AsyncSession, route: Route) -> None:
    await _delete_children(session, [route.id])
    await session.delete(route)
    await session.commit()


async def delete_gateway_routes(session: AsyncSession, account_id: str, gateway_id: str) -> None:
    """Within the caller's transaction (the gateway's own delete commits it)."""
    query = select(Route.id).where(Route.account_id == account_id, Route.gateway_id == gateway_id)
    ids = list((await session.exec(query)).all())
    await _delete_children(session, ids)
    await session.exec(delete(Route).where(col(Route.id).in_(ids)))


async def create_version(
    session: AsyncSession, route: Route, elements: list[dict[str, Any]], comment: str | None
) -> RouteVersion:
    """A new saved version; traffic does not change."""
    stamp = utcnow()
    version = RouteVersion(
        id=new_id(), route_id=route.id, elements=elements, comment=comment, created_at=stamp
    )
    route.modified_at = stamp
    session.add_all([version, route])
    await session.commit()
    await session.refresh(route)
    return version


async def get_version(session: AsyncSession, route: Route, version_id: str) -> RouteVersion | None:
    version = await session.get(RouteVersion, version_id)
    return version if version is not None and version.route_id == route.id else None


async def list_versions(
    session: AsyncSession, route: Route, page: int, per_page: int
) -> tuple[list[RouteVersion], int]:
    where = col(RouteVersion.route_id) == route.id
    total = (await session.exec(select(func.count()).where(where))).one()
    query = select(RouteVersion).where(where).order_by(col(RouteVersion.created_at).desc())
    rows = (await session.exec(query.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def deploy(
    session: AsyncSession, route: Route, version: RouteVersion, comment: str | None
) -> RouteDeployment:
    """Point the route at `version` (an earlier one is a rollback); always a new history entry."""
    stamp = utcnow()
    deployment = RouteDeployment(
        id=new_id(), route_id=route.id, version_id=version.id, comment=comment, created_at=stamp
    )
    route.version_id, route.deployment_id, route.modified_at = version.id, deployment.id, stamp
    session.add_all([deployment, route])
    await session.commit()
    await session.refresh(route)
    return deployment


async def list_deployments(
    session: AsyncSession, route: Route, page: int, per_page: int
) -> tuple[list[RouteDeployment], int]:
    where = col(RouteDeployment.route_id) == route.id
    total = (await session.exec(select(func.count()).where(where))).one()
    query = select(RouteDeployment).where(where).order_by(col(RouteDeployment.created_at).desc())
    rows = (await session.exec(query.offset((page - 1) * per_page).limit(per_page))).all()
    return list(rows), total


async def deployed_versions(
    session: AsyncSession, account_id: str, gateway_id: str
) -> list[tuple[Route, RouteVersion]]:
    """Every deployed route of a gateway with its version, in one query (the route cache's load)."""
    query = (
        select(Route, RouteVersion)
        .join(RouteVersion, col(RouteVersion.id) == col(Route.version_id))
        .where(Route.account_id == account_id, Route.gateway_id == gateway_id)
    )
    return [(route, version) for route, version in (await session.exec(query)).all()]


async def version_by_name(
    session: AsyncSession, account_id: str, gateway_id: str, name: str, version_id: str
) -> tuple[Route, RouteVersion] | None:
    """A saved version of a named route (`dynamic/{name}@{version_id}`), deployed or not."""
    query = (
        select(Route, RouteVersion)
        .join(RouteVersion, col(RouteVersion.route_id) == col(Route.id))
        .where(Route.account_id == account_id, Route.gateway_id == gateway_id, Route.name == name)
        .where(RouteVersion.id == version_id)
    )
    row = (await session.exec(query)).first()
    return None if row is None else (row[0], row[1])
