"""A lean HTTP/1.1 client for direct upstream connections: asyncio protocols, httptools' response
parser. `connector.py` pools and opens them; `transport.py` serves them to httpx as a transport.

Why our own: a proxied request pays for the upstream call on every request, and httpcore's pool
scans every connection on each enqueue and release (encode/httpx#3215) while aiohttp's client was
the largest block left in the gateway's profile. This does only what a proxy needs: HTTP/1.1 over
TCP or TLS, one request per connection at a time, keep-alive, Content-Length / chunked /
read-until-close bodies, connect / pool / idle timeouts. It raises httpx's exceptions, as any
httpx transport does.

Every answer is untrusted (limits.md §2): the head is bounded in bytes (fed to the parser only up
to the bound, so a flood never reaches it) and in fields; bytes after a complete response,
trailers and a second response in the same packet are dropped and the connection closed; a `101`
or an unexpected `1xx` fails the exchange. A request is never written twice: a pooled
connection is checked before the write, and a failure after it is the caller's to see.
"""

from __future__ import annotations

import asyncio
import collections
import select

import httptools
import httpx

from app.upstream.pool import Origin, Pool

_PAUSE_ABOVE = 1 << 20  # buffered body bytes before the socket stops being read
MAX_HEAD_FIELDS = 256
_SKIPPED_INFORMATIONAL = (100, 103)


class _TooManyFields(Exception):
    pass


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one exchange at a time."""

    def __init__(
        self,
        pool: Pool[Connection],
        key: Origin,
        idle_timeout_s: float,
        head_bytes: int,
        head_deadline_s: float,
    ) -> None:
        self._pool = pool
        self.key = key
        self._loop = asyncio.get_running_loop()
        self._idle_timeout = idle_timeout_s
        self._head_limit = head_bytes
        self._head_deadline = head_deadline_s
        self.transport: asyncio.Transport | None = None
        self._fd = -1
        self.closed = False
        self.used = False  # an exchange has started on it
        self.idle = False  # in the pool, between exchanges
        self.idle_since = 0.0
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = False
        self._head_room: int | None = self._head_limit  # None once the head is complete
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self._headers: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.error: httpx.TransportError | None = None
        self._until_close = False
        self._last_data = 0.0
        self.first_byte_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # ---- exchange ------------------------------------------------------------------------------

    def reusable(self) -> bool:
        """Whether a pooled connection can take a request: not closed, and nothing to read on it
        (a readable idle socket means the server closed it, or sent bytes no request asked for).
        One non-blocking poll, so a request is not written onto a connection already gone."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        if self._fd < 0:
            return True
        try:
            readable, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    async def start(self, head: bytes, body: bytes, head_only: bool) -> list[tuple[bytes, bytes]]:
        """Send a request; return the response's raw headers once they arrive."""
        assert self.transport is not None
        if self.used:
            self._reset_exchange()
        self.used = True
        self.idle = False
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
            self.idle = True
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

    # ---- timers: idle (no byte for this long), and a deadline for the whole head --------------------

    def _arm_timer(self) -> None:
        self._timer = self._loop.call_at(self._next_check(), self._check_timeout)

    def _next_check(self) -> float:
        at = self._last_data + self._idle_timeout
        if self._head_room is not None and self.first_byte_at:
            at = min(at, self.first_byte_at + self._head_deadline)
        return at

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self) -> None:
        self._timer = None
        if self.complete or self.closed or self.error is not None:
            return
        now = self._loop.time()
        if now - self._last_data >= self._idle_timeout:
            self._fail(httpx.ReadTimeout("read timeout: no data for AIGW_UPSTREAM_TIMEOUT_S"))
            self.close()
        elif (
            self._head_room is not None
            and self.first_byte_at
            and now >= self.first_byte_at + self._head_deadline
        ):
            self._fail(
                httpx.RemoteProtocolError("AIGW_UPSTREAM_BODY_DEADLINE_S exceeded in the response head")
            )
            self.close()
        else:
            self._arm_timer()

    # ---- protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                self._fd = sock.fileno()
            except (OSError, AttributeError):
                self._fd = -1

    def data_received(self, data: bytes) -> None:
        if self.complete or self._headers is None or self.idle:
            self._stray_bytes()
            return
        self._last_data = self._loop.time()
        if not self.first_byte_at:
            self.first_byte_at = self._last_data
        room = self._head_room
        if room is not None and len(data) > room:
            # Only what fits the head bound reaches the parser: a flood is never buffered whole.
            head, data = data[:room], data[room:]
            self._feed(head)
            if self._head_room is not None and self.error is None:
                self._fail(httpx.RemoteProtocolError("AIGW_MAX_UPSTREAM_HEAD_BYTES exceeded"))
                self.close()
                return
        elif room is not None:
            self._head_room = room - len(data)
        if data and self.error is None and not self.closed:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse_informational(101)
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after a complete answer: dropped with the connection
                self._stray_bytes()
                return
            if isinstance(exc.__context__, _TooManyFields):
                message = f"more than {MAX_HEAD_FIELDS} header fields in the response head"
            else:
                message = f"invalid response: {exc}"
            self._fail(httpx.RemoteProtocolError(message))
            self.close()

    def _stray_bytes(self) -> None:
        """Bytes no request asked for (after a complete answer, or on an idle connection)."""
        self.keep_alive = False
        if self.idle or self._headers is None:
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self._cancel_timer()
        self._pool.forget(self)
        if was_closed or self.complete or self._headers is None or self.idle:
            return
        reason = type(exc).__name__ if exc else "closed"
        if not self._headers_done():
            self._fail(httpx.RemoteProtocolError(f"server disconnected before the response ({reason})"))
        elif self._until_close and exc is None:
            self._message_done()
        else:
            self._fail(httpx.ReadError(f"connection lost before the body ended ({reason})"))

    # ---- parser callbacks ------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_room is None or self.complete:
            return  # trailers, or a second response: never part of the answer
        if len(self._raw_headers) >= MAX_HEAD_FIELDS:
            raise _TooManyFields
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete or self._head_room is None:
            self.keep_alive = False  # a second response in the same packet
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status in _SKIPPED_INFORMATIONAL:  # the answer is still to come
                self._raw_headers = []
            else:
                self._refuse_informational(status)
            return
        self._head_room = None
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
        if self.status >= 200 and not self.complete:
            self._message_done()

    # ---- helpers ---------------------------------------------------------------------------------

    def _refuse_informational(self, status: int) -> None:
        if self.error is None:
            self._fail(
                httpx.RemoteProtocolError(f"upstream answered {status}, which a provider call never expects")
            )
        self.close()

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

    def _fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        if self._headers is not None and not self._headers.done():
            self._headers.set_exception(error)
        self._wake()  # read_chunk raises self.error
