"""The deployed dynamic routes of each gateway, compiled and cached in process for the request
path (no query per request). A gateway's routes load together in one query; every route write
evicts them here and, over `invalidation.py` (kind `routes`), in every other process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import routes
from app.routing.graph import RouteGraph, compile_graph
from app.services.config import TTL, TTLCache


class RouteCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: TTL) -> None:
        self._sessions = sessions
        self._deployed: TTLCache[tuple[str, str], dict[str, RouteGraph]] = TTLCache(ttl)
        # `dynamic/{name}@{version}`: saved versions are immutable, but a rename or delete changes
        # what a name means, so these go with any route change of the gateway.
        self._pinned: TTLCache[tuple[str, str, str, str], RouteGraph | None] = TTLCache(ttl, 10_000)

    async def _load(self, account_id: str, gateway_id: str) -> dict[str, RouteGraph]:
        async with self._sessions() as session:
            rows = await routes.deployed_versions(session, account_id, gateway_id)
        return {
            route.name: compile_graph(route.id, route.name, version.id, version.elements)
            for route, version in rows
        }

    async def deployed(self, account_id: str, gateway_id: str, name: str) -> RouteGraph | None:
        found = await self._deployed.get((account_id, gateway_id), lambda: self._load(account_id, gateway_id))
        return found.get(name)

    async def deployed_names(self, account_id: str, gateway_id: str) -> list[str]:
        """Names of the gateway's routes that have a deployment, sorted (what `/ai/v1/models` lists)."""
        return sorted(
            await self._deployed.get((account_id, gateway_id), lambda: self._load(account_id, gateway_id))
        )

    async def pinned(self, account_id: str, gateway_id: str, name: str, version_id: str) -> RouteGraph | None:
        async def load() -> RouteGraph | None:
            async with self._sessions() as session:
                found = await routes.version_by_name(session, account_id, gateway_id, name, version_id)
            if found is None:
                return None
            route, version = found
            return compile_graph(route.id, route.name, version.id, version.elements)

        return await self._pinned.get((account_id, gateway_id, name, version_id), load)

    def invalidate_gateway(self, account_id: str, gateway_id: str) -> None:
        self._deployed.invalidate((account_id, gateway_id))
        self._pinned.clear()

    def clear(self) -> None:
        self._deployed.clear()
        self._pinned.clear()
