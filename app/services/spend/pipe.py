"""One pipelined Redis connection for the spend store: `hiredis` packs every command and parses
every reply; this module keeps only the FIFO of callers' futures, connecting and reconnecting,
one watchdog timeout for the connection, and a bound on commands in flight.

Why not redis-py's client: its pool, per-connection lock, retry and timeout layers cost about
three times the CPU of the round trip itself, and spend limits make two round trips per request
(the measured numbers are in docs/spend-limits.md and bench/bench_spend.py). Concurrent callers
pipeline on this one connection: replies come back in the order the commands were written.

A command with no reply within `timeout_s` means the connection is stuck (every reply behind it
waits too), so the connection is cut and every command in flight fails; a lost connection does
the same, and the next command connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis


class RedisReplyError(Exception):
    """Redis answered with an error reply (`NOSCRIPT …`, `WRONGTYPE …`)."""


class RedisUnavailable(Exception):
    """No reply: could not connect, the connection was lost or cut, timed out, or too busy."""


Arg = bytes | str | int | float
# hiredis's stub types the command as a 1-tuple; it takes any number of arguments.
pack_command = cast(Callable[[tuple[Arg, ...]], bytes], hiredis.pack_command)


def _endpoint(url: str) -> tuple[dict[str, Any], list[tuple[Arg, ...]]]:
    """Where to connect (the kwargs of create_connection / create_unix_connection) and the
    commands that open a session (AUTH, SELECT), from a `redis://`, `rediss://` or `unix://` URL."""
    parts = urlparse(url)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    where: dict[str, Any]
    if parts.scheme == "unix":
        where = {"path": unquote(parts.path)}
        db = query.get("db", "0")
    elif parts.scheme in ("redis", "rediss"):
        where = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 6379}
        if parts.scheme == "rediss":
            where["ssl"] = ssl.create_default_context()
        db = parts.path.lstrip("/") or query.get("db", "0")
    else:
        raise ValueError(f"not a Redis URL: {parts.scheme}://")
    opening: list[tuple[Arg, ...]] = []
    if parts.password is not None:
        password = unquote(parts.password)
        opening.append(("AUTH", unquote(parts.username), password) if parts.username else ("AUTH", password))
    if int(db):
        opening.append(("SELECT", int(db)))
    return where, opening


class _Connection(asyncio.Protocol):
    def __init__(self, timeout_s: float) -> None:
        self._reader = hiredis.Reader(replyError=RedisReplyError)
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()  # with its deadline
        self._timeout = timeout_s
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, packed: bytes, future: asyncio.Future[Any]) -> None:
        assert self.transport is not None
        deadline = self._loop.time() + self._timeout
        self._waiting.append((future, deadline))
        self.transport.write(packed)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(deadline, self._check)

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        try:
            while (reply := reader.gets()) is not False:
                if not waiting:
                    raise hiredis.ProtocolError("a reply that no command asked for")
                future = waiting.popleft()[0]
                if future.done():  # its caller was cancelled meanwhile
                    continue
                if isinstance(reply, RedisReplyError):  # hiredis hands error replies back as values
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except hiredis.ProtocolError as exc:  # garbage on the wire: nothing after it can be trusted
            self._cut(f"protocol error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost ({exc or 'closed by Redis'})")

    def _check(self) -> None:
        """One timer per connection, not per command: it fires at the oldest command's deadline."""
        self._watchdog = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if deadline <= self._loop.time():
            self._cut(f"no reply within {self._timeout:g}s")
        else:
            self._watchdog = self._loop.call_at(deadline, self._check)

    def _cut(self, why: str) -> None:
        self._fail(why)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, why: str) -> None:
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiting, self._waiting = self._waiting, deque()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(RedisUnavailable(why))


class RedisPipe:
    """`call` writes a command at once (or as soon as the connection is open) and returns the
    future of its reply: `await pipe.call(...)`, or a done callback for fire-and-forget."""

    def __init__(self, url: str, timeout_s: float = 1.0, max_in_flight: int = 10_000) -> None:
        self._where, self._opening = _endpoint(url)
        self._timeout = timeout_s
        self._max = max_in_flight
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []  # written once connected

    def call(self, *args: Arg) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        connection = self._connection
        if connection is not None and not connection.lost:
            if connection.in_flight >= self._max:
                future.set_exception(RedisUnavailable(f"{self._max} commands already in flight"))
            else:
                connection.send(pack_command(args), future)
            return future
        if len(self._queued) >= self._max:
            future.set_exception(RedisUnavailable(f"{self._max} commands already waiting to connect"))
            return future
        self._queued.append((pack_command(args), future))
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return future

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._connection = None
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._timeout):
                opens = loop.create_unix_connection if "path" in self._where else loop.create_connection
                _, connection = await opens(lambda: _Connection(self._timeout), **self._where)
                for command in self._opening:  # AUTH, SELECT: before any queued command
                    future: asyncio.Future[Any] = loop.create_future()
                    connection.send(pack_command(command), future)
                    await future
        except Exception as exc:  # refused, unreachable, timed out, AUTH refused: all are "down"
            if connection is not None and connection.transport is not None:
                connection.transport.abort()
            self._fail_queued(f"cannot connect to Redis: {exc or type(exc).__name__}")
            return
        finally:
            self._connecting = None
        queued, self._queued = self._queued, []
        self._connection = connection
        for packed, waiting in queued:
            if not waiting.done():  # its caller may have given up while it waited
                connection.send(packed, waiting)

    def _fail_queued(self, why: str) -> None:
        queued, self._queued = self._queued, []
        for _, future in queued:
            if not future.done():
                future.set_exception(RedisUnavailable(why))

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        self._fail_queued("closed")
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.close()
