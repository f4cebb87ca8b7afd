"""The one client for every upstream call, as the pipeline sees it: httpx's requests, responses
and transports, with the gateway's limits around them.

- Transports: direct HTTP/1.1 connections go through the project's pool (`transport.py`), because
  stock httpx (httpcore) cost 3-7x the CPU per request in bench/bench_gateway.py (its pool scans
  every connection on each enqueue and release, encode/httpx#3215). Proxied origins
  (`HTTPS_PROXY`…, `environment.py`) use httpx's own proxy transport. `AIGW_UPSTREAM_TRANSPORT=httpx`
  puts everything on stock httpx (HTTP/2 included). Tests may pass any httpx transport
  (`httpx.MockTransport`) and httpx-style event hooks.
- Requests are sent with the transport directly, not through `httpx.AsyncClient.send`: that adds
  ~50 µs per call (measured) and keeps a cookie jar, and no cookie one tenant's upstream sets may
  ever reach another tenant's request. Redirects are never followed.
- Limits (limits.md §2, §4): calls in flight per account (`accounts.py`); bodies decoded here, for
  every transport alike, a bounded piece at a time (`decoding.py`); a buffered body is bounded in
  decoded bytes and by a deadline from its head's first byte.
- Failures leave here as the project's exception tree (`errors.py`), never as httpx's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import httpx

from app.core.settings import Settings
from app.upstream.accounts import AccountSlots
from app.upstream.decoding import BodyDecoder, codings_of
from app.upstream.destinations import pinned_to_public_address
from app.upstream.environment import Mount, proxy_mounts, ssl_context
from app.upstream.errors import (
    InvalidUpstreamRequest,
    UpstreamBodyError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.upstream.limits import UpstreamLimits
from app.upstream.transport import PoolTransport

RequestHook = Callable[[httpx.Request], Awaitable[None]]
ResponseHook = Callable[[httpx.Response], Awaitable[None]]

# Never sent as given: the transport sets these itself, or they are hop-by-hop.
_OWN_HEADERS = frozenset(
    {
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
        "upgrade", "proxy-connection", "proxy-authorization", "accept-encoding",
    }
)  # fmt: skip
ACCEPT_ENCODING = (b"Accept-Encoding", b"gzip, deflate, br, zstd")
USER_AGENT = (b"User-Agent", b"aigw")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_PARSED_URLS = 4096  # distinct URLs remembered (the map starts over when full)
ACCOUNT = "aigw_account"  # request extensions: the account whose call this is
TENANT_DESTINATION = "aigw_tenant_destination"  # …and whether its host is tenant-configured


class UpstreamResponse:
    """Status and headers read; the body is read or streamed once (decoded), then closed."""

    __slots__ = ("_decoder", "_limits", "_raw", "_release", "headers", "status_code")

    def __init__(self, raw: httpx.Response, limits: UpstreamLimits, release: Callable[[], None]) -> None:
        self._raw = raw
        self._limits = limits
        self._release: Callable[[], None] | None = release
        self.status_code: int = raw.status_code
        self.headers: httpx.Headers = raw.headers  # case-insensitive
        encoding = raw.headers.get_list("content-encoding")
        transfer = raw.headers.get_list("transfer-encoding")
        codings = codings_of(encoding, transfer) if encoding or transfer else []
        self._decoder = BodyDecoder(codings) if codings else None  # UnknownCoding: the step fails

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        return self._raw.headers.raw

    async def aread(self) -> bytes:
        """The whole decoded body, within AIGW_MAX_RESPONSE_BYTES and AIGW_UPSTREAM_BODY_DEADLINE_S."""
        limit = self._limits.response_bytes
        loop = asyncio.get_running_loop()
        started = self._raw.extensions.get("aigw_first_byte_at") or loop.time()
        # Checked as pieces arrive (a timer per read would cost more than the read): a drip
        # sends pieces, and a body that stops sending meets the idle timeout instead.
        deadline = started + self._limits.body_deadline_s
        parts: list[bytes] = []
        size = 0
        async for piece in self.aiter_bytes():
            size += len(piece)
            if size > limit:
                raise UpstreamBodyError("AIGW_MAX_RESPONSE_BYTES exceeded")
            if loop.time() > deadline:
                raise UpstreamBodyError("AIGW_UPSTREAM_BODY_DEADLINE_S exceeded")
            parts.append(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Decoded pieces as they arrive (no re-buffering: SSE events are relayed at once)."""
        decoder = self._decoder
        try:
            # The transport's byte stream itself: `aiter_raw` re-chunks and wraps every chunk in
            # an exception-mapping context, which costs more than the rest of this loop.
            stream = self._raw.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            async for chunk in stream:
                if decoder is None:
                    yield chunk
                    continue
                for piece in decoder.feed(chunk):
                    yield piece
            if decoder is not None:
                for piece in decoder.flush():
                    yield piece
        except httpx.TimeoutException as exc:
            raise UpstreamBodyError(f"read timeout: {exc}") from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise UpstreamBodyError(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        # A fully read response returns its connection to the pool; any other closes it.
        try:
            await self._raw.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class UpstreamClient:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Awaitable[None]]]] | None = None,
    ) -> None:
        self.limits = limits = UpstreamLimits.from_settings(settings)
        context = ssl_context()
        if transport is None:
            transport = stock_transport(limits, context) if settings.upstream_transport == "httpx" else None
        self._transport: httpx.AsyncBaseTransport = transport or PoolTransport(limits, context)
        self._mounts: list[Mount] = proxy_mounts(context, limits)
        self._accounts = AccountSlots(limits.connections_per_account, limits.connect_timeout_s)
        hooks = event_hooks or {}
        self._request_hooks: list[RequestHook] = list(hooks.get("request", []))
        self._response_hooks: list[ResponseHook] = list(hooks.get("response", []))
        self._urls: dict[str, httpx.URL] = {}
        # Read by httpx's own transports (ours applies the same limits itself).
        self._timeout = {
            "connect": limits.connect_timeout_s,
            "read": limits.idle_timeout_s,
            "write": limits.idle_timeout_s,
            "pool": limits.connect_timeout_s,
        }

    def build(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        account: str = "",
        tenant_destination: bool = False,
    ) -> httpx.Request:
        """An httpx request for one upstream call. InvalidUpstreamRequest if it cannot be sent."""
        try:
            parsed = self._parsed(url)
            # Built from a stream with the headers complete, so httpx does not look each default
            # header up again (a third of the cost of building a request, in profiles).
            # Latin-1 bytes: header values may be any Latin-1 text (httpx would encode str as ASCII).
            sent: list[tuple[bytes, bytes]] = [(b"Host", parsed.netloc)]
            has_user_agent = False
            for name, value in headers:
                lowered = name.lower()
                if lowered not in _OWN_HEADERS:
                    # Surrounding spaces are not part of a field value (RFC 9110 §5.5); h11 refuses them.
                    sent.append((name.encode("latin-1"), value.strip(" \t").encode("latin-1")))
                    has_user_agent = has_user_agent or lowered == "user-agent"
            if not has_user_agent:
                sent.append(USER_AGENT)
            sent.append(ACCEPT_ENCODING)
            if body or method in _WITH_BODY:
                sent.append((b"Content-Length", str(len(body)).encode()))
            extensions = {"timeout": self._timeout, ACCOUNT: account, TENANT_DESTINATION: tenant_destination}
            return httpx.Request(
                method, parsed, headers=sent, stream=httpx.ByteStream(body), extensions=extensions
            )
        except (httpx.InvalidURL, UnicodeError, ValueError, TypeError) as exc:
            raise InvalidUpstreamRequest(f"cannot send: {exc}") from None

    def _parsed(self, url: str) -> httpx.URL:
        """httpx's URL for `url`, parsed once: most calls go to the same few endpoints, and
        parsing is the largest part of building a request (URLs are immutable, so shared)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if len(self._urls) >= _PARSED_URLS:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    async def send(self, request: httpx.Request) -> UpstreamResponse:
        """Headers read, body not yet: the caller reads or streams it, then closes the response."""
        account = str(request.extensions.get(ACCOUNT, ""))
        await self._accounts.acquire(account)
        try:
            if request.extensions.get(TENANT_DESTINATION):
                request = await pinned_to_public_address(request)
            for request_hook in self._request_hooks:
                await request_hook(request)
            raw = await self._transport_for(request.url).handle_async_request(request)
            try:
                if raw.status_code < 200:  # a 101 (httpcore hands upgrades over) is no answer
                    raise UpstreamUnreachable(
                        f"upstream answered {raw.status_code}, which a provider call never expects"
                    )
                for response_hook in self._response_hooks:
                    await response_hook(raw)
                return UpstreamResponse(raw, self.limits, lambda: self._accounts.release(account))
            except BaseException:  # an unknown coding, a hook's error: the connection goes
                await raw.aclose()
                raise
        except BaseException as exc:
            self._accounts.release(account)
            if isinstance(exc, httpx.HTTPError):
                raise upstream_error(exc) from exc
            raise

    def _transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        for pattern, transport in self._mounts:
            if pattern.matches(url):
                return self._transport if transport is None else transport
        return self._transport

    async def aclose(self) -> None:
        await self._transport.aclose()
        for _, transport in self._mounts:
            if transport is not None:
                await transport.aclose()


def stock_transport(limits: UpstreamLimits, context: object) -> httpx.AsyncBaseTransport:
    """httpx's own transport (httpcore), HTTP/2 included, for AIGW_UPSTREAM_TRANSPORT=httpx."""
    return httpx.AsyncHTTPTransport(
        verify=context,  # type: ignore[arg-type]
        http2=True,
        limits=httpx.Limits(max_connections=limits.connections, keepalive_expiry=limits.keepalive_s),
        retries=0,
    )


def upstream_error(exc: httpx.HTTPError) -> UpstreamError:
    """httpx's exceptions as the project's tree: what failed before any answer came back."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(message)
    if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
        return InvalidUpstreamRequest(message)
    return UpstreamUnreachable(message)
