"""Upstream connections opened and reused: a pooled idle connection is checked before a request
is written on it, a new one is opened (TCP or TLS, within the connect timeout) when the pool has
room, and otherwise the request waits for a connection to be freed."""

from __future__ import annotations

import asyncio
import ssl

import httpx

from app.upstream.http1 import Connection
from app.upstream.pool import Origin, Pool


class Client:
    def __init__(
        self,
        *,
        limit: int,
        keepalive_s: float,
        connect_timeout_s: float,
        idle_timeout_s: float,
        head_bytes: int,
        head_deadline_s: float,
        ssl_context: ssl.SSLContext,
    ) -> None:
        self._pool: Pool[Connection] = Pool(limit, keepalive_s)
        self._connect_timeout = connect_timeout_s
        self._idle_timeout = idle_timeout_s
        self._head_bytes = head_bytes
        self._head_deadline = head_deadline_s
        self._ssl = ssl_context

    async def request(
        self, key: Origin, head: bytes, body: bytes, *, head_only: bool
    ) -> tuple[Connection, list[tuple[bytes, bytes]]]:
        """Send one request on a pooled or new connection: (connection, response's raw headers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._connect_timeout
        while True:
            connection = self._pool.take_idle(key, loop.time())
            if connection is not None:
                if connection.reusable():
                    break
                connection.close()  # found closed before the write: the request goes elsewhere
                continue
            if self._pool.has_room():
                connection = await self._connect(key)
                break
            await self._pool.wait_for_change(deadline)  # the pool is full: wait for a connection
        try:
            raw_headers = await connection.start(head, body, head_only)
        except BaseException:
            connection.close()
            raise
        return connection, raw_headers

    async def _connect(self, key: Origin) -> Connection:
        scheme, host, port, server_name = key
        self._pool.reserve()
        connection = Connection(self._pool, key, self._idle_timeout, self._head_bytes, self._head_deadline)
        tls = scheme == "https"
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.get_running_loop().create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=self._ssl if tls else None,
                    server_hostname=(server_name or host) if tls else None,
                )
        except TimeoutError:
            self._pool.release_slot()
            raise httpx.ConnectTimeout("connect timeout") from None
        except (OSError, ssl.SSLError) as exc:
            self._pool.release_slot()
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._pool.release_slot()
            raise
        self._pool.joined(connection)
        return connection

    def close(self) -> None:
        self._pool.close_all()
