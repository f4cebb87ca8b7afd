"""`…/ai-gateway/gateways/{gateway_id}/routes`: dynamic routes, their versions and deployments,
shaped exactly as the `cloudflare` SDK calls them (routing.md §1). Bodies are read as raw JSON so
that a bad graph answers one 1001 entry per problem, each with its `path`."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.api import route_shapes as shapes
from app.api.deps import AccountId, CanEdit, CanRead, GatewayIdPath, InvalidationDep, SessionDep
from app.api.envelope import ERROR_RESPONSES, Conflict, InvalidInput, NotFound, ok
from app.db import gateways, routes
from app.db.route_models import Route
from app.routing.validate import ROUTE_NAME, Problem, validate_elements
from app.services.invalidation import Change

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes",
    tags=["dynamic routes"],
    responses=ERROR_RESPONSES,
)

Page = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=100)]
MAX_COMMENT = 1024


class GraphInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems[0].message)
        self.problems = problems


def problems_response(problems: list[Problem]) -> JSONResponse:
    errors = [{"code": InvalidInput.code, "message": p.message, "path": list(p.path)} for p in problems]
    return JSONResponse({"success": False, "errors": errors, "messages": [], "result": None}, 400)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise GraphInvalid([Problem(("body",), "not valid JSON")]) from None
    if not isinstance(body, dict):
        raise GraphInvalid([Problem(("body",), "must be a JSON object")])
    return body


def _name(body: dict[str, Any], problems: list[Problem]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not ROUTE_NAME.match(name):
        problems.append(Problem(("body", "name"), "required, and must match ^[A-Za-z0-9_-]{1,64}$"))
        return ""
    return name


def _elements(body: dict[str, Any], problems: list[Problem]) -> list[dict[str, Any]]:
    if "elements" not in body:
        problems.append(Problem(("body", "elements"), "required"))
        return []
    elements, found = validate_elements(body["elements"])
    problems.extend(found)
    return elements


def _comment(body: dict[str, Any], problems: list[Problem]) -> str | None:
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        problems.append(Problem(("body", "comment"), f"must be a string of at most {MAX_COMMENT} characters"))
        return None
    return comment


async def _gateway(session: AsyncSession, account_id: str, gateway_id: str) -> None:
    if await gateways.get_gateway(session, account_id, gateway_id) is None:
        raise NotFound(f"gateway {gateway_id!r} not found")


async def _route(session: AsyncSession, account_id: str, gateway_id: str, route_id: str) -> Route:
    await _gateway(session, account_id, gateway_id)
    route = await routes.get_route(session, account_id, gateway_id, route_id)
    if route is None:
        raise NotFound(f"route {route_id[:64]!r} not found")
    return route


async def _full(session: AsyncSession, route: Route) -> dict[str, Any]:
    version, deployment = await routes.current(session, route)
    return shapes.route_shape(route, version, deployment)


def _changed(account_id: str, gateway_id: str) -> Change:
    return Change("routes", account_id, gateway_id)


@router.post("")
async def create_route(
    account_id: AccountId, gateway_id: GatewayIdPath, request: Request, _: CanEdit,
    session: SessionDep, invalidation: InvalidationDep,
) -> Any:  # fmt: skip
    try:
        body = await _json_object(request)
        problems: list[Problem] = []
        name, elements = _name(body, problems), _elements(body, problems)
        if problems:
            raise GraphInvalid(problems)
    except GraphInvalid as invalid:
        return problems_response(invalid.problems)
    await _gateway(session, account_id, gateway_id)
    try:
        route = await routes.create_route(session, account_id, gateway_id, name, elements)
    except routes.RouteNameTaken:
        raise Conflict(f"a route named {name!r} already exists on this gateway") from None
    except routes.TooManyRoutes:
        raise InvalidInput(f"at most {routes.MAX_ROUTES_PER_GATEWAY} routes per gateway") from None
    await invalidation.changed(_changed(account_id, gateway_id))
    return ok(await _full(session, route))


@router.get("")
async def list_routes(
    account_id: AccountId, gateway_id: GatewayIdPath, _: CanRead, session: SessionDep,
    page: Page = 1, per_page: PerPage = 20,
) -> dict[str, Any]:  # fmt: skip
    await _gateway(session, account_id, gateway_id)
    rows, total = await routes.list_routes(session, account_id, gateway_id, page, per_page)
    items = [await _full(session, route) for route in rows]
    return shapes.unwrapped("data", shapes.page_data("routes", items, page, per_page, total))


@router.get("/{route_id}")
async def get_route(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, _: CanRead, session: SessionDep
) -> dict[str, Any]:
    return ok(await _full(session, await _route(session, account_id, gateway_id, route_id)))


@router.patch("/{route_id}")
async def update_route(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, request: Request, _: CanEdit,
    session: SessionDep, invalidation: InvalidationDep,
) -> Any:  # fmt: skip
    try:
        body = await _json_object(request)
        problems: list[Problem] = []
        name = _name(body, problems)
        if "elements" in body:
            problems.append(Problem(("body", "elements"), "cannot be changed here: create a version"))
        if problems:
            raise GraphInvalid(problems)
    except GraphInvalid as invalid:
        return problems_response(invalid.problems)
    route = await _route(session, account_id, gateway_id, route_id)
    try:
        route = await routes.rename_route(session, route, name)
    except routes.RouteNameTaken:
        raise Conflict(f"a route named {name!r} already exists on this gateway") from None
    await invalidation.changed(_changed(account_id, gateway_id))
    return shapes.unwrapped("route", await _full(session, route))


@router.delete("/{route_id}")
async def delete_route(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, _: CanEdit,
    session: SessionDep, invalidation: InvalidationDep,
) -> dict[str, Any]:  # fmt: skip
    route = await _route(session, account_id, gateway_id, route_id)
    version, _deployment = await routes.current(session, route)
    deleted = shapes.route_core(route, version.elements if version else [])
    await routes.delete_route(session, route)
    await invalidation.changed(_changed(account_id, gateway_id))
    return ok(deleted)


@router.post("/{route_id}/versions")
async def create_version(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, request: Request, _: CanEdit,
    session: SessionDep, invalidation: InvalidationDep,
) -> Any:  # fmt: skip
    try:
        body = await _json_object(request)
        problems: list[Problem] = []
        elements, comment = _elements(body, problems), _comment(body, problems)
        if problems:
            raise GraphInvalid(problems)
    except GraphInvalid as invalid:
        return problems_response(invalid.problems)
    route = await _route(session, account_id, gateway_id, route_id)
    version = await routes.create_version(session, route, elements, comment)
    # Traffic is unchanged, but `dynamic/{name}@{version}` may now name it.
    await invalidation.changed(_changed(account_id, gateway_id))
    return ok({**shapes.route_core(route, version.elements), "version_id": version.id})


@router.get("/{route_id}/versions")
async def list_versions(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, _: CanRead, session: SessionDep,
    page: Page = 1, per_page: PerPage = 20,
) -> dict[str, Any]:  # fmt: skip
    route = await _route(session, account_id, gateway_id, route_id)
    rows, total = await routes.list_versions(session, route, page, per_page)
    items = [shapes.version_shape(version, route) for version in rows]
    return shapes.unwrapped("data", shapes.page_data("versions", items, page, per_page, total))


@router.get("/{route_id}/versions/{version_id}")
async def get_version(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, version_id: str, _: CanRead,
    session: SessionDep,
) -> dict[str, Any]:  # fmt: skip
    route = await _route(session, account_id, gateway_id, route_id)
    version = await routes.get_version(session, route, version_id)
    if version is None:
        raise NotFound(f"version {version_id[:64]!r} not found")
    return ok(shapes.version_detail(version, route))


@router.post("/{route_id}/deployments")
async def create_deployment(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, request: Request, _: CanEdit,
    session: SessionDep, invalidation: InvalidationDep,
) -> Any:  # fmt: skip
    try:
        body = await _json_object(request)
        problems: list[Problem] = []
        version_id, comment = body.get("version_id"), _comment(body, problems)
        if not isinstance(version_id, str) or not version_id:
            problems.append(Problem(("body", "version_id"), "required, a string"))
        if problems:
            raise GraphInvalid(problems)
    except GraphInvalid as invalid:
        return problems_response(invalid.problems)
    assert isinstance(version_id, str)
    route = await _route(session, account_id, gateway_id, route_id)
    version = await routes.get_version(session, route, version_id)
    if version is None:  # unknown, or a version of another route
        raise NotFound(f"version {version_id[:64]!r} not found on this route")
    deployment = await routes.deploy(session, route, version, comment)
    await invalidation.changed(_changed(account_id, gateway_id))
    return ok(
        {
            **shapes.route_core(route, version.elements),
            "deployment": shapes.deployment_shape(deployment),
            "version": shapes.version_shape(version, route),
        }
    )


@router.get("/{route_id}/deployments")
async def list_deployments(
    account_id: AccountId, gateway_id: GatewayIdPath, route_id: str, _: CanRead, session: SessionDep,
    page: Page = 1, per_page: PerPage = 20,
) -> dict[str, Any]:  # fmt: skip
    route = await _route(session, account_id, gateway_id, route_id)
    rows, total = await routes.list_deployments(session, route, page, per_page)
    items = [shapes.deployment_shape(deployment) for deployment in rows]
    return shapes.unwrapped("data", shapes.page_data("deployments", items, page, per_page, total))
