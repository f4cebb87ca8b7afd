"""The one pooled client for every upstream call.

Requests go straight to an httpx transport. httpx's `AsyncClient` layers (auth, redirects, cookie
jar, URL merging) cost CPU on every call and add nothing for a proxy — worse, a client-wide cookie
jar would carry one tenant's upstream cookies into another tenant's requests. The transport is
aiohttp's connection pool behind httpx's interface: under concurrency httpcore's pool spends most
of its time scanning connections (encode/httpx#3215); bench/bench_gateway.py measured 2.2x more
requests/s with aiohttp's pool on this machine.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from app.settings import Settings


class UpstreamClient:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        limits = httpx.Limits(
            max_connections=settings.max_upstream_connections,
            max_keepalive_connections=settings.max_upstream_connections,
            keepalive_expiry=30,
        )
        self._transport = transport or AiohttpTransport(limits=limits, trust_env=False)
        # Per read: the server's absolute upstream limit; connect has its own shorter bound.
        self._timeouts = {
            "connect": settings.connect_timeout_s,
            "read": settings.upstream_timeout_s,
            "write": settings.upstream_timeout_s,
            "pool": settings.connect_timeout_s,
        }

    def build(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> httpx.Request:
        return httpx.Request(
            method, url, headers=headers, content=body, extensions={"timeout": self._timeouts}
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Headers read, body not yet: the caller reads or streams it, then closes the response."""
        try:
            response = await self._handle(request)
        except httpx.ConnectTimeout as exc:
            # httpx-aiohttp maps every aiohttp connection error (refused, reset, DNS) to
            # ConnectTimeout; only a real timeout may count as one (2012 vs 2005).
            if exc.__cause__ is None or isinstance(exc.__cause__, aiohttp.ServerTimeoutError):
                raise
            raise httpx.ConnectError(str(exc), request=request) from exc.__cause__
        response.request = request
        return response

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            # The server closed the connection without answering: almost always a pooled keep-alive
            # connection it had just timed out as we reused it, so the request never reached the
            # application. Send it once more on a fresh connection, as browsers do. (A server that
            # crashes mid-request also lands here and gets the request twice: an accepted risk.)
            if not isinstance(exc.__cause__, aiohttp.ServerDisconnectedError):
                raise
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()
