"""Database backends for the resilience and scale tests: throwaway PostgreSQL databases, a log
reader that works on SQLite and PostgreSQL alike, and a loopback TCP proxy that can be stopped and
started to make a real database unreachable and reachable again."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import async_url


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def admin_sql(postgres_url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the test server."""

    async def go() -> None:
        engine = create_async_engine(
            async_url(postgres_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            async with engine.connect() as connection:
                await connection.execute(text(sql))
        finally:
            await engine.dispose()

    _run(go())


@contextmanager
def fresh_postgres(postgres_url: str, prefix: str = "aigw_t") -> Iterator[str]:
    """A new, empty database on the test server (migrations not applied), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_sql(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin_sql(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_port(database_url: str, port: int) -> str:
    return make_url(database_url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def port_of(database_url: str) -> int:
    return make_url(database_url).port or 5432


class LogReader:
    """Reads the `logs` table through SQL on either backend (a new connection per call, so it never
    holds a lock the gateway's writer needs)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        async def go() -> list[dict[str, Any]]:
            engine = create_async_engine(async_url(self.database_url), poolclass=pool.NullPool)
            try:
                async with engine.connect() as connection:
                    result = await connection.execute(text(sql), params or {})
                    return [dict(row._mapping) for row in result]
            finally:
                await engine.dispose()

        rows: list[dict[str, Any]] = _run(go())
        return rows

    def rows(self, where: str = "1=1", params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.query(f"SELECT * FROM logs WHERE {where} ORDER BY id", params)

    def wait(
        self, where: str, params: dict[str, Any] | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Poll until at least `count` rows match; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.rows(where, params)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} log rows where {where} {params}, found {len(found)}")
            time.sleep(0.05)


class TcpProxy:
    """A loopback TCP relay to `target_port`, on an asyncio loop in its own thread.

    `stop()` closes the listening socket and cuts every relayed connection (clients see connection
    resets, new connections are refused); `start()` listens again on the same port. `freeze()`
    keeps every socket open but relays nothing (a network partition: no error, just silence);
    `thaw()` lets the bytes flow again.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._loop.call_soon_threadsafe(self._flowing.set)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> TcpProxy:
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())

    def freeze(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def thaw(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        if self._thread.is_alive():
            self.stop()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    # An RST, not a FIN: the database client sees the connection die at once.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        self._writers.clear()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        await self._flowing.wait()
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, server_writer))

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await reader.read(65536):
                    await self._flowing.wait()
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))
        self._writers.difference_update((client_writer, server_writer))


def metric(base_url: str, name: str) -> float:
    """One unlabelled sample of the gateway's /metrics."""
    text_body = httpx.get(f"{base_url}/metrics", timeout=5).text
    for line in text_body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")
