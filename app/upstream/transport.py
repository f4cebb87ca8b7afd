"""The project's HTTP/1.1 pool (`http1.py`) as an httpx transport: httpx builds the request and
holds URL and headers as bytes; this writes them as they are and hands the body back as httpx's
byte stream. Nothing is re-encoded and no object is made per request beyond httpx's own and the
response's body stream.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator

import httpx

from app.upstream.connector import Client
from app.upstream.http1 import Connection
from app.upstream.limits import UpstreamLimits

_HTTP11 = {"http_version": b"HTTP/1.1"}
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class ConnectionBody(httpx.AsyncByteStream):
    """A response body read from its connection; closing it returns the connection to the pool
    (when the body was read to its end) or closes it."""

    __slots__ = ("_connection", "_done")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while (chunk := await connection.read_chunk()) is not None:
            yield chunk

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._connection.finish()


class PoolTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: UpstreamLimits, ssl_context: ssl.SSLContext) -> None:
        self._client = Client(
            limit=limits.connections,
            keepalive_s=limits.keepalive_s,
            connect_timeout_s=limits.connect_timeout_s,
            idle_timeout_s=limits.idle_timeout_s,
            head_bytes=limits.head_bytes,
            head_deadline_s=limits.body_deadline_s,
            ssl_context=ssl_context,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"only http and https upstreams, not {scheme!r}", request=request)
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, url.raw_host.decode("ascii"), port, request.extensions.get("sni_hostname"))
        headers = request.headers.raw
        head = b"".join(
            [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
            + [name + b": " + value + b"\r\n" for name, value in headers]
            + [b"\r\n"]
        )
        # One scan each instead of a check per header: a CR, LF or NUL inside a value would make
        # more lines than headers (header injection); httpx does not refuse them itself.
        if (
            head.count(b"\n") != len(headers) + 2
            or head.count(b"\r") != len(headers) + 2
            or b"\0" in head
            or not all(_TOKEN.fullmatch(name) for name, _ in headers)
        ):
            raise httpx.LocalProtocolError("a request header is not valid HTTP", request=request)
        # A body given as bytes (every gateway call) is read without an async iteration.
        body = request.read() if isinstance(request.stream, httpx.ByteStream) else await request.aread()
        try:
            connection, raw_headers = await self._client.request(
                key, head, body, head_only=request.method == "HEAD"
            )
        except httpx.TransportError as exc:
            exc.request = request
            raise
        extensions = {**_HTTP11, "aigw_first_byte_at": connection.first_byte_at}
        return httpx.Response(
            connection.status, headers=raw_headers, stream=ConnectionBody(connection), request=request,
            extensions=extensions,
        )  # fmt: skip

    async def aclose(self) -> None:
        self._client.close()
