"""The upstream client against a raw HTTP/1.1 server on loopback that misbehaves the ways real
servers do: closing or resetting a kept-alive connection just as the client reuses it."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from app.upstream import UpstreamClient, UpstreamUnreachable

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class StaleServer:
    """Answers the first request of every connection and keeps it open; the second request on
    a connection is met with a reset (`reset`) or a plain close (`close`), never an answer."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.answered = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for index in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if index == 0:
                    self.answered += 1
                    writer.write(ANSWER)
                    await writer.drain()
                    continue
                sock = writer.get_extra_info("socket")
                if self.mode == "reset":  # SO_LINGER 0: close sends RST instead of FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.close()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions"


@pytest.fixture(params=["reset", "close"])
async def stale_server(request: pytest.FixtureRequest) -> AsyncIterator[StaleServer]:
    server = StaleServer(request.param)
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


async def post(client: UpstreamClient, url: str) -> bytes:
    response = await client.send(client.build("POST", url, [("Content-Type", "application/json")], b"{}"))
    try:
        assert response.status_code == 200
        return await response.aread()
    finally:
        await response.aclose()


async def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(stale_server: StaleServer) -> None:
    client = UpstreamClient(Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        assert await post(client, stale_server.url) == b'{"ok":true}'
        # The pooled connection is reused; the server resets or closes it instead of answering.
        assert await post(client, stale_server.url) == b'{"ok":true}'
        assert stale_server.connections == 2
        assert stale_server.answered == 2
    finally:
        await client.aclose()


async def test_a_server_that_resets_every_time_is_unreachable_after_one_retry() -> None:
    resets = 0

    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal resets
        resets += 1
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(reset_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        with pytest.raises(UpstreamUnreachable):
            await post(client, f"http://127.0.0.1:{port}/v1/chat/completions")
        assert resets == 2  # the first attempt and exactly one retry
    finally:
        await client.aclose()
        server.close()
