"""The one pooled client for every upstream call, as the pipeline sees it.

What it stands on was chosen from profiles of bench/bench_gateway.py (py-spy, c=32, logging and
cache on):
- httpx's own pool (httpcore) spent most of its CPU scanning connections under concurrency
  (encode/httpx#3215); aiohttp's pool behind httpx's interface gave 2.2x the requests/s.
- httpx's request/response objects around aiohttp's cost ~12 % of CPU: aiohttp directly,
  1.18 -> 0.77 ms of gateway CPU per request.
- aiohttp's client machinery was then the largest block left; `http1.py`, a lean
  HTTP/1.1 client on asyncio protocols and httptools, took the gateway from 0.50-0.73 to 0.39-0.47
  ms per request and the added latency at c=1 from +0.73-0.87 to +0.56-0.64 ms.
No client keeps cookies: one tenant's upstream cookies must never reach another tenant's request.

The rest of the pipeline sees two small neutral types, `UpstreamRequest` and `UpstreamResponse`,
and one exception tree, `errors.py`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import certifi

from app.core.settings import Settings
from app.upstream.errors import StaleConnection, UpstreamBodyError, UpstreamError, UpstreamUnreachable
from app.upstream.http1 import Client, Response


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


class UpstreamResponse:
    """Status and headers read; the body is read or streamed once, then the response is closed."""

    __slots__ = ("_raw", "headers", "status_code")

    def __init__(self, raw: Response) -> None:
        self._raw = raw
        self.status_code: int = raw.status_code
        self.headers: Mapping[str, str] = raw.headers  # case-insensitive

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._raw.raw_headers

    async def aread(self) -> bytes:
        try:
            return await self._raw.aread()
        except UpstreamError as exc:
            raise _body_error(exc) from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Chunks as they arrive from the socket (no re-buffering: SSE events are relayed at once)."""
        try:
            async for chunk in self._raw.aiter_bytes():
                yield chunk
        except UpstreamError as exc:
            raise _body_error(exc) from exc

    async def aclose(self) -> None:
        # A fully read response returns its connection to the pool; any other closes it.
        self._raw.close()


class UpstreamClient:
    def __init__(self, settings: Settings) -> None:
        # Reads are bounded by the server's absolute upstream limit (each wait for data);
        # connecting, and waiting for a free connection, by the shorter connect timeout.
        self._client = Client(
            limit=settings.max_upstream_connections,
            keepalive_s=30,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.upstream_timeout_s,
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
        )

    def build(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> UpstreamRequest:
        return UpstreamRequest(method, url, headers, body)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Headers read, body not yet: the caller reads or streams it, then closes the response."""
        try:
            return await self._client_send(request, fresh=False)
        except StaleConnection:
            # The server closed or reset the connection before answering: almost always a pooled
            # keep-alive connection it timed out just as we reused it (uvicorn and Node close
            # idle connections after 5 s), so the request never reached the application. Send it
            # once more on a fresh connection, as browsers do. (A server that crashes mid-request
            # also lands here and gets the request twice: an accepted risk.)
            pass
        try:
            return await self._client_send(request, fresh=True)
        except StaleConnection as exc:
            raise UpstreamUnreachable(str(exc)) from exc

    async def _client_send(self, request: UpstreamRequest, *, fresh: bool) -> UpstreamResponse:
        raw = await self._client.request(
            request.method, request.url, request.headers, request.body, fresh=fresh
        )
        return UpstreamResponse(raw)

    async def aclose(self) -> None:
        self._client.close()


def _body_error(exc: UpstreamError) -> UpstreamBodyError:
    """Whatever broke a body that had started (a reset, a read timeout) is a body error."""
    if isinstance(exc, UpstreamBodyError):
        return exc
    return UpstreamBodyError(str(exc) or type(exc).__name__)
