"""A lean HTTP/1.1 client for upstream calls: asyncio protocols, httptools' response parser, a
keep-alive pool per origin.

Why our own: a proxied request pays for the upstream call on every request, and aiohttp's client
(request and payload objects, header multidicts, tracing hooks, a timer per read) was the largest
block left in the gateway's profile. This does only what a proxy needs: HTTP/1.1 over TCP or TLS,
one request per connection at a time, keep-alive, Content-Length / chunked / read-until-close
bodies, gzip and deflate decoding, connect / pool / read timeouts. No proxies, redirects, cookies
or HTTP/2. `client.py` is the interface the pipeline sees; `wire.py` holds the wire formats
(request head, URL, headers, decoding) and `errors.py` the exceptions.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator

import httptools

from app.upstream.errors import (
    StaleConnection,
    UpstreamBodyError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from app.upstream.pool import Origin, Pool
from app.upstream.wire import ResponseHeaders, decode, decoder_for, parse_url, request_head

_PAUSE_ABOVE = 1 << 20  # buffered body bytes before the socket stops being read


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one exchange at a time."""

    def __init__(self, pool: Pool[Connection], key: Origin, read_timeout_s: float) -> None:
        self._pool = pool
        self.key = key
        self._loop = asyncio.get_running_loop()
        self._read_timeout = read_timeout_s
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # an exchange has started on it
        self.reused = False  # the current exchange is not its first: a silent close means "stale"
        self.idle_since = 0.0
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False
        self._got_bytes = False
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self._headers: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.error: UpstreamError | None = None
        self._until_close = False
        self._last_data = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # ---- exchange ------------------------------------------------------------------------------

    async def start(self, head: bytes, body: bytes, head_only: bool) -> list[tuple[bytes, bytes]]:
        """Send a request; return the response's raw headers once they arrive."""
        assert self.transport is not None
        if self.used:
            self._reset_exchange()
        self.reused = self.used
        self.used = True
        self._head_only = head_only
        self._headers = self._loop.create_future()
        self._last_data = self._loop.time()
        self._arm_timer()
        if len(body) < 65536:  # one send; a large body is not copied just to join it to the head
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        await self._headers
        return self._raw_headers

    async def read_chunk(self) -> bytes | None:
        """The next piece of the body; None at its end."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _PAUSE_ABOVE // 2 and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self._waiter = self._loop.create_future()
            await self._waiter

    def finish(self) -> None:
        """The caller is done with the response: back to the pool, or closed."""
        self._cancel_timer()
        if self.complete and self.keep_alive and not self.closed and self.error is None:
            self.idle_since = self._loop.time()
            self._pool.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_timer()
            if self.transport is not None:
                self.transport.close()
            self._pool.forget(self)

    # ---- read timeout: one timer per exchange, re-armed lazily ------------------------------------

    def _arm_timer(self) -> None:
        self._timer = self._loop.call_at(self._last_data + self._read_timeout, self._check_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self) -> None:
        self._timer = None
        if self.complete or self.closed or self.error is not None:
            return
        if self._loop.time() - self._last_data >= self._read_timeout:
            self._fail(UpstreamTimeout("read timeout"))
            self.close()
        else:
            self._arm_timer()

    # ---- protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(
                UpstreamBodyError(f"invalid response: {exc}")
                if self._headers_done()
                else UpstreamUnreachable(str(exc))
            )
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self._cancel_timer()
        self._pool.forget(self)
        if was_closed or self.complete:
            return
        if self._headers is None:
            return  # idle in the pool
        if not self._headers_done():
            if not self._got_bytes and self.reused:
                self._fail(StaleConnection(type(exc).__name__ if exc else "closed"))
            else:
                self._fail(UpstreamUnreachable(type(exc).__name__ if exc else "closed before the response"))
        elif self._until_close and exc is None:
            self._message_done()
        else:
            self._fail(UpstreamBodyError(type(exc).__name__ if exc else "closed before the body ended"))

    # ---- parser callbacks ------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # informational (103 Early Hints): the answer is still to come
            self._raw_headers = []
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        names = {name.lower() for name, _ in self._raw_headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names
        if self._head_only:
            self.keep_alive = False  # the parser would wait for a body that never comes
            self.complete = True
        if self._headers is not None and not self._headers.done():
            self._headers.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.status < 200 or self.complete:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _PAUSE_ABOVE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status >= 200:
            self._message_done()

    # ---- helpers ---------------------------------------------------------------------------------

    def _headers_done(self) -> bool:
        return self._headers is not None and self._headers.done()

    def _message_done(self) -> None:
        self.complete = True
        self._cancel_timer()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        if self._headers is not None and not self._headers.done():
            self._headers.set_exception(error)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # read_chunk raises self.error


class Response:
    __slots__ = ("_connection", "_decoder", "headers", "raw_headers", "status_code")

    def __init__(self, connection: Connection, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._connection = connection
        self.status_code = connection.status
        self.raw_headers = raw_headers
        self.headers = ResponseHeaders(raw_headers)
        encoding = self.headers.get("content-encoding")
        self._decoder = decoder_for(encoding) if isinstance(encoding, str) else None

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        connection = self._connection
        decoder = self._decoder
        while (chunk := await connection.read_chunk()) is not None:
            if decoder is not None:
                chunk = decode(decoder, chunk)
            if chunk:
                yield chunk
        if decoder is not None and (tail := decoder.flush()):
            yield tail

    async def aread(self) -> bytes:
        chunks = [chunk async for chunk in self.aiter_bytes()]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        self._connection.finish()


class Client:
    def __init__(
        self,
        *,
        limit: int,
        keepalive_s: float,
        connect_timeout_s: float,
        read_timeout_s: float,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self._pool: Pool[Connection] = Pool(limit, keepalive_s)
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._ssl = ssl_context

    async def request(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes, *, fresh: bool = False
    ) -> Response:
        key, host_header, target = parse_url(url)
        head = request_head(method, target, host_header, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            connection = None if fresh else self._pool.take_idle(key, loop.time())
            if connection is not None:
                break
            if self._pool.has_room():
                connection = await self._connect(key)
                break
            await self._pool.wait_for_change(deadline)  # the pool is full: wait for a connection
        try:
            raw_headers = await connection.start(head, body, method == "HEAD")
        except BaseException:
            connection.close()
            raise
        return Response(connection, raw_headers)

    async def _connect(self, key: tuple[str, str, int]) -> Connection:
        scheme, host, port = key
        self._pool.reserve()
        connection = Connection(self._pool, key, self._read_timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=self._ssl if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            self._pool.release_slot()
            raise UpstreamTimeout("connect timeout") from None
        except (OSError, ssl.SSLError) as exc:
            self._pool.release_slot()
            raise UpstreamUnreachable(type(exc).__name__) from exc
        except BaseException:
            self._pool.release_slot()
            raise
        self._pool.joined(connection)
        return connection

    def close(self) -> None:
        self._pool.close_all()
