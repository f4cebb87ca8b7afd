"""The one pooled client for every upstream call.

The hot path talks to aiohttp's client directly. Measured with py-spy under bench/bench_gateway.py:
httpcore's pool spent most of its CPU scanning connections under concurrency (encode/httpx#3215),
and after moving to aiohttp's pool behind httpx's transport interface, building `httpx.Request` /
`httpx.Response` objects around aiohttp's own (URL parsing twice, header normalisation twice) was
still ~12 % of the gateway's CPU. A proxy needs none of `httpx.AsyncClient`'s layers (auth,
redirects, URL merging) — and its client-wide cookie jar would carry one tenant's upstream cookies
into another tenant's requests, which is why the session below has a `DummyCookieJar`.

The rest of the pipeline sees two small neutral types, `UpstreamRequest` and `UpstreamResponse`,
and one exception family, `UpstreamError`: nothing outside this module imports aiohttp.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import certifi

from app.settings import Settings


class UpstreamError(Exception):
    """No usable answer: the connection failed, timed out or broke off."""


class UpstreamTimedOut(UpstreamError):
    pass


class UpstreamUnreachable(UpstreamError):
    pass


class _StaleConnection(Exception):
    """The connection was closed or reset before any answer (see `UpstreamClient.send`)."""


_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE})


class UpstreamBodyError(UpstreamError):
    """The response started but its body broke off (connection reset, truncated chunked body)."""


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes


class UpstreamResponse:
    """Status and headers read; the body is read or streamed once, then the response is closed."""

    __slots__ = ("_raw", "headers", "status_code")

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self.status_code: int = raw.status
        self.headers: Mapping[str, str] = raw.headers  # case-insensitive

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return self._raw.raw_headers

    async def aread(self) -> bytes:
        try:
            return await self._raw.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _body_error(exc) from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Chunks as they arrive from the socket (no re-buffering: SSE events are relayed at once)."""
        try:
            async for chunk in self._raw.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _body_error(exc) from exc

    async def aclose(self) -> None:
        # release() returns a fully read connection to the pool and closes one that is not.
        self._raw.release()


def _body_error(exc: BaseException) -> UpstreamBodyError:
    return UpstreamBodyError(type(exc).__name__)


class UpstreamClient:
    def __init__(self, settings: Settings) -> None:
        self._limit = settings.max_upstream_connections
        # sock_read bounds each read (the server's absolute upstream limit); connecting has its
        # own shorter bound, and so does waiting for a free pooled connection.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.connect_timeout_s,
            sock_connect=settings.connect_timeout_s,
            sock_read=settings.upstream_timeout_s,
        )
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        # Created on first use: aiohttp binds a session to the running event loop.
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            keepalive_timeout=30,
            ssl=ssl.create_default_context(cafile=certifi.where()),
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # never share one tenant's cookies with another
            timeout=self._timeout,
            auto_decompress=True,  # bodies are relayed decoded (content-encoding is dropped)
            trust_env=False,
        )

    def build(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> UpstreamRequest:
        return UpstreamRequest(method, url, headers, body)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Headers read, body not yet: the caller reads or streams it, then closes the response."""
        try:
            return await self._send_once(request)
        except _StaleConnection:
            # The server closed or reset the connection before answering: almost always a pooled
            # keep-alive connection it timed out just as we reused it (uvicorn and Node close
            # idle connections after 5 s), so the request never reached the application. Send it
            # once more on a fresh connection, as browsers do. (A server that crashes mid-request
            # also lands here and gets the request twice: an accepted risk.)
            pass
        try:
            return await self._send_once(request)
        except _StaleConnection as exc:
            raise UpstreamUnreachable(type(exc.__cause__).__name__) from exc.__cause__

    async def _send_once(self, request: UpstreamRequest) -> UpstreamResponse:
        session = self._session
        if session is None:
            session = self._session = self._open_session()
        try:
            raw = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body or None,
                allow_redirects=False,
            )
        except aiohttp.ServerDisconnectedError as exc:
            raise _StaleConnection from exc
        except aiohttp.ClientOSError as exc:
            if exc.errno in _RESET_ERRNOS:
                raise _StaleConnection from exc
            raise UpstreamUnreachable(type(exc).__name__) from exc
        except TimeoutError as exc:  # aiohttp's connect and read timeouts are TimeoutErrors
            raise UpstreamTimedOut(type(exc).__name__) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # Refused, reset, DNS failure, TLS failure, an URL aiohttp cannot use.
            raise UpstreamUnreachable(type(exc).__name__) from exc
        return UpstreamResponse(raw)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
