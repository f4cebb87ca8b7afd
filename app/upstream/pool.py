"""The keep-alive pool of the upstream client: idle connections per origin, the most recently used
first, and one bound on every connection open (idle or busy), with waiters for a free slot."""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, Protocol, TypeVar

import httpx

# scheme, host (or the address connected to), port, TLS server name when it differs from the host
Origin = tuple[str, str, int, str | None]


class Pooled(Protocol):
    """What the pool needs of a connection."""

    key: Origin
    idle_since: float

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Pooled)


class Pool(Generic[C]):
    """Idle connections per origin, and a bound on all connections (idle or busy)."""

    def __init__(self, limit: int, keepalive_s: float) -> None:
        self._limit = limit
        self._keepalive = keepalive_s
        self._idle: dict[Origin, list[C]] = {}
        self._open = 0
        self._members: set[C] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_idle(self, key: Origin, now: float) -> C | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()  # the most recently used: least likely to have timed out
            if connection.closed or now - connection.idle_since > self._keepalive:
                connection.close()
                continue
            return connection
        return None

    def has_room(self) -> bool:
        """Whether a new connection may open now (closing an idle one of any origin if needed)."""
        if self._open >= self._limit:
            self._close_oldest_idle()
        return self._open < self._limit

    def reserve(self) -> None:
        self._open += 1

    async def wait_for_change(self, deadline: float) -> None:
        """Until a connection is put back or closed (or `deadline`: httpx.PoolTimeout)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except TimeoutError:
            raise httpx.PoolTimeout("no free upstream connection (AIGW_MAX_UPSTREAM_CONNECTIONS)") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release_slot(self) -> None:
        self._open -= 1
        self._wake_one()

    def joined(self, connection: C) -> None:
        if connection.closed:  # closed by the server before we could use it
            self.release_slot()
            raise httpx.ConnectError("closed as it opened")
        self._members.add(connection)

    def put_back(self, connection: C) -> None:
        self._idle.setdefault(connection.key, []).append(connection)
        self._wake_one()

    def forget(self, connection: C) -> None:
        if connection in self._members:
            self._members.discard(connection)
            idle = self._idle.get(connection.key)
            if idle and connection in idle:
                idle.remove(connection)
            self.release_slot()

    def _close_oldest_idle(self) -> None:
        oldest: C | None = None
        for idle in self._idle.values():
            for connection in idle:
                if oldest is None or connection.idle_since < oldest.idle_since:
                    oldest = connection
        if oldest is not None:
            oldest.close()

    def close_all(self) -> None:
        for connection in list(self._members):
            connection.close()
