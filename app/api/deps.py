"""FastAPI dependencies for the management API.

Typed on `HTTPConnection`, so the same dependencies serve HTTP routes and WebSocket endpoints.
Everything comes from `app.state`, which the lifespan fills; nothing here is module-level state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection

from app.api.envelope import AuthenticationError, PermissionDenied
from app.auth.principals import Principal, identify
from app.core.errors import Unauthorized
from app.core.settings import Settings
from app.services.config import ConfigCache
from app.services.invalidation import ConfigInvalidation, ConfigTTL

Permission = Literal["run", "read", "edit"]


def get_sessions(conn: HTTPConnection) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = conn.app.state.sessions
    return sessions


def get_config_cache(conn: HTTPConnection) -> ConfigCache:
    config_cache: ConfigCache = conn.app.state.config_cache
    return config_cache


def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def get_invalidation(conn: HTTPConnection) -> ConfigInvalidation:
    """What management writes report their changes to (app/services/invalidation.py). An app
    assembled without the lifespan (tests mounting some routers) gets a local-only one over the
    caches it has."""
    state = conn.app.state
    invalidation: ConfigInvalidation | None = getattr(state, "invalidation", None)
    if invalidation is None:
        ttl = ConfigTTL(state.settings.config_cache_ttl_s, state.settings.config_cache_ttl_s)
        config_cache, account_providers = (
            getattr(state, "config_cache", None),
            getattr(state, "account_providers", None),
        )
        invalidation = state.invalidation = ConfigInvalidation(None, ttl, config_cache, account_providers)
    return invalidation


SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]
ConfigCacheDep = Annotated[ConfigCache, Depends(get_config_cache)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
InvalidationDep = Annotated[ConfigInvalidation, Depends(get_invalidation)]


async def get_session(sessions: SessionsDep) -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def require_permission(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a bearer token holding `permission` on the path's `account_id`
    (and on its `gateway_id`, when the path has one). 401 when the token is missing or not valid,
    403 when it is valid but not allowed: a `run`-only token gets 403 here."""

    async def dependency(
        conn: HTTPConnection, config_cache: ConfigCacheDep, settings: SettingsDep
    ) -> Principal:
        try:
            principal = await identify(config_cache, settings.admin_token, conn.headers.get("authorization"))
        except Unauthorized as exc:
            raise AuthenticationError(_authentication_hint(conn)) from exc
        account_id = conn.path_params.get("account_id", "")
        if not principal.can(permission, account_id, conn.path_params.get("gateway_id")):
            raise PermissionDenied(f"token lacks '{permission}' on this account or gateway")
        return principal

    return dependency


def _authentication_hint(conn: HTTPConnection) -> str:
    """Say which header the management API reads: `cf-aig-authorization` is the gateway paths' one."""
    if conn.headers.get("authorization") is None:
        header = "cf-aig-authorization" if "cf-aig-authorization" in conn.headers else None
        sent = f"; {header} is read on gateway paths only" if header else ""
        return f"Authentication error: send `Authorization: Bearer <token>`{sent}"
    return "Authentication error: the bearer token is unknown, expired or revoked"


CanRead = Annotated[Principal, Depends(require_permission("read"))]
CanEdit = Annotated[Principal, Depends(require_permission("edit"))]


# Path parameters shared by the management routers.
AccountId = Annotated[str, Path(min_length=1, max_length=64)]
GatewayIdPath = Annotated[str, Path(min_length=1, max_length=64)]
RowId = Annotated[str, Path(pattern=r"^[0-9a-z]{26}$", description="lower-case ULID")]
