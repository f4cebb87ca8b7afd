"""Raw HTTP/1.1 plumbing for the tests' own misbehaving servers (tests/support/hostile_upstream.py,
tests/support/forward_proxy.py): reading requests off an asyncio stream, and an asyncio server
running its own loop in a daemon thread. Nothing here tidies bytes up: what a server writes is
what goes on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

KiB = 1024
MiB = 1024 * KiB
READ_BLOCK = 64 * KiB
MAX_HEAD_BYTES = 1 * MiB  # request line + headers
MAX_BODY_BYTES = 64 * MiB

# Network errors that mean "the peer went away": servers stop quietly on these.
GONE = (ConnectionError, OSError, asyncio.IncompleteReadError, EOFError)


# --------------------------------------------------------------------------------------------------
# Reading HTTP/1.1 requests off a stream (shared with tests/support/forward_proxy.py).
# --------------------------------------------------------------------------------------------------


class BadRequest(Exception):
    """The peer sent something that is not an HTTP/1.1 request we can parse."""


class HttpReader:
    """Buffered reads over a StreamReader; every byte taken from the socket is passed to `on_bytes`.

    Reading through our own buffer (rather than `StreamReader.readuntil`) is what lets the server
    record the raw bytes exactly as they arrived, and bound the head without StreamReader's limit.
    """

    def __init__(self, reader: asyncio.StreamReader, on_bytes: Callable[[bytes], None] | None = None) -> None:
        self._reader = reader
        self._on_bytes = on_bytes
        self._buf = bytearray()

    async def _fill(self) -> bool:
        data = await self._reader.read(READ_BLOCK)
        if not data:
            return False
        if self._on_bytes is not None:
            self._on_bytes(data)
        self._buf += data
        return True

    async def at_eof(self) -> bool:
        """True if the peer closed and nothing is left in the buffer (waits for bytes otherwise)."""
        return not self._buf and not await self._fill()

    async def read_until(self, delim: bytes, limit: int) -> bytes:
        """Bytes up to and including `delim`; BadRequest past `limit` bytes or at EOF."""
        start = 0
        while True:
            at = self._buf.find(delim, start)
            if at >= 0:
                end = at + len(delim)
                out = bytes(self._buf[:end])
                del self._buf[:end]
                return out
            if len(self._buf) > limit:
                raise BadRequest(f"no {delim!r} within {limit} bytes")
            start = max(0, len(self._buf) - len(delim) + 1)
            if not await self._fill():
                raise BadRequest("connection closed mid-request")

    async def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not await self._fill():
                raise BadRequest("connection closed mid-body")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def take_buffered(self) -> bytes:
        """Whatever was read past the last request (e.g. a TLS ClientHello sent right after CONNECT)."""
        out = bytes(self._buf)
        self._buf.clear()
        return out


@dataclass
class RawRequest:
    """One complete request as the hostile server parsed it."""

    method: str
    target: str  # as on the request line: origin-form, absolute-form or authority-form
    headers: list[tuple[str, str]]  # in order, names as sent
    body: bytes  # de-chunked
    connection: int  # 0-based index of the TCP connection it came on (since the last reset)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


async def read_request(reader: HttpReader, connection: int = 0) -> tuple[RawRequest, bytes] | None:
    """Read one request: (parsed request, body bytes as framed on the wire); None at a clean EOF.

    Raises BadRequest for anything unparseable, so a caller can answer 400 and close.
    """
    if await reader.at_eof():
        return None
    head = await reader.read_until(b"\r\n\r\n", MAX_HEAD_BYTES)
    # RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line.
    lines = head.lstrip(b"\r\n").decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(f"bad request line {lines[0]!r}")
    method, target, _version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line!r}")
        headers.append((name, value.strip(" \t")))
    lower = {k.lower(): v for k, v in headers}
    raw_body = b""
    body = b""
    if "chunked" in lower.get("transfer-encoding", "").lower():
        pieces: list[bytes] = []
        wire: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.read_until(b"\r\n", 4 * KiB)
            wire.append(size_line)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest(f"bad chunk size {size_line!r}") from None
            if size == 0:
                while True:  # trailer section, ends with an empty line
                    trailer = await reader.read_until(b"\r\n", MAX_HEAD_BYTES)
                    wire.append(trailer)
                    if trailer == b"\r\n":
                        break
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise BadRequest("chunked body too large")
            chunk = await reader.read_exact(size + 2)
            if not chunk.endswith(b"\r\n"):
                raise BadRequest("chunk not followed by CRLF")
            wire.append(chunk)
            pieces.append(chunk[:-2])
        body, raw_body = b"".join(pieces), b"".join(wire)
    elif "content-length" in lower:
        try:
            length = int(lower["content-length"])
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise BadRequest("bad Content-Length")
        body = raw_body = await reader.read_exact(length)
    return RawRequest(method, target, headers, body, connection), raw_body


# --------------------------------------------------------------------------------------------------
# AsyncioServerThread: an asyncio.start_server on its own loop, in a daemon thread.
# --------------------------------------------------------------------------------------------------


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Peers vanishing is the point of these servers: do not print tracebacks for it."""
    if isinstance(context.get("exception"), (*GONE, asyncio.CancelledError)):
        return
    loop.default_exception_handler(context)


class AsyncioServerThread:
    """Base for raw asyncio servers on 127.0.0.1: subclasses implement `_serve(reader, writer)`.

    The listening socket is bound before the thread starts, so `.port` is known at once and there is
    no race for it. `stop()` cancels every connection handler (floods and drips included) and waits.
    """

    name = "asyncio-server"

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.port: int = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{self.name} not started")
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            writer.transport.abort()  # stopping: do not wait to flush a flood's buffer
            raise
        except GONE:
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.close()

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_exception_handler)
        self._loop = loop
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._on_connect, sock=sock, ssl=self.ssl_context, backlog=128)
                )
            except BaseException as exc:
                self._error = exc
                sock.close()
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if self._error is not None:
            self._thread = None
            raise RuntimeError(f"{self.name} failed to start") from self._error
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
