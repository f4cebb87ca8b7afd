"""The upstream client (app/upstream/client.py over app/upstream/http1.py) against raw HTTP/1.1 servers on
loopback: stale kept-alive connections (closed or reset just as they are reused), body framings
and encodings, HEAD and informational answers, header injection, URL encoding, read timeouts and
the connection bound."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.core.settings import Settings
from app.upstream.client import UpstreamClient
from app.upstream.errors import UpstreamBodyError, UpstreamUnreachable

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


async def test_a_request_the_server_read_is_never_sent_again(stale_server: StaleServer) -> None:
    """limits.md §3: the reused connection is reset or closed after the server read the request;
    the request may have been acted on (billed), so it is not replayed on a fresh connection."""
    client = UpstreamClient(Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        assert await post(client, stale_server.url) == b'{"ok":true}'
        with pytest.raises(UpstreamUnreachable):
            await post(client, stale_server.url)
        assert stale_server.connections == 1  # no second connection carried it again
        assert stale_server.answered == 1
    finally:
        await client.aclose()


async def test_a_pooled_connection_closed_while_idle_is_not_written_to() -> None:
    """A connection the server closed while it sat in the pool is found closed before the write,
    so the request goes out once, on a new connection."""
    connections = 0
    requests = 0

    async def answer_once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, requests
        connections += 1
        await read_request(reader)
        requests += 1
        writer.write(ANSWER)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # an idle keep-alive timeout, as uvicorn's or Node's

    server = await asyncio.start_server(answer_once_then_close, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    client = UpstreamClient(Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        assert await post(client, url) == b'{"ok":true}'
        await asyncio.sleep(0.3)
        assert await post(client, url) == b'{"ok":true}'
        assert (connections, requests) == (2, 2)
    finally:
        await client.aclose()
        server.close()


async def test_a_reset_on_a_fresh_connection_is_not_retried() -> None:
    """A fresh connection that is reset after the request was written is not tried again."""
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
        assert resets == 1
    finally:
        await client.aclose()
        server.close()


# ---- wire formats and limits, against scripted raw servers -------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one request."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


@contextlib.asynccontextmanager
async def scripted(handler: Handler, **settings: Any) -> AsyncIterator[tuple[UpstreamClient, str]]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    try:
        yield client, f"http://127.0.0.1:{port}"
    finally:
        await client.aclose()
        server.close()


async def fetch(client: UpstreamClient, url: str, method: str = "POST", **kw: Any) -> tuple[int, bytes]:
    headers = kw.get("headers", [("Content-Type", "application/json")])
    response = await client.send(client.build(method, url, headers, kw.get("body", b"{}")))
    try:
        return response.status_code, await response.aread()
    finally:
        await response.aclose()


async def test_gzip_chunked_and_until_close_bodies_are_decoded() -> None:
    payload = b'{"text":"' + b"x" * 5000 + b'"}'
    packed = gzip.compress(payload)
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await answer(reader, writer):
            pass

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head, _ = await read_request(reader)
        seen.append(head)
        if b"/gzip" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(packed), 700):
                piece = packed[start : start + 700]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
        else:  # no length, not chunked: the body runs until the server closes
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload)
            await writer.drain()
            writer.close()
            return False
        await writer.drain()
        return True

    async with scripted(handler) as (client, base):
        assert await fetch(client, f"{base}/gzip") == (200, payload)
        assert await fetch(client, f"{base}/until-close") == (200, payload)
    assert b"Accept-Encoding: gzip, deflate, br, zstd\r\n" in seen[0]


async def test_head_answer_without_body_and_informational_answers_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)  # one request per connection (HEAD closes its own)
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")  # and no body, as HEAD says
        else:
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with scripted(handler) as (client, base):
        async with asyncio.timeout(5):
            assert await fetch(client, f"{base}/head", "HEAD", body=b"") == (200, b"")
            assert await fetch(client, f"{base}/hints") == (201, b"ok")


async def test_header_injection_is_refused_before_anything_is_sent() -> None:
    requests = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        writer.close()

    async with scripted(handler) as (client, base):
        for name, value in (("X-Ok", "a\r\nX-Injected: 1"), ("Bad Name", "v"), ("X-Ok", "caf\u00e9\u2603")):
            with pytest.raises(UpstreamUnreachable):
                await fetch(client, f"{base}/x", headers=[(name, value)])
    assert requests == 0


async def test_path_and_query_are_percent_encoded_once() -> None:
    targets: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        targets.append(head.split(b" ")[1])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with scripted(handler) as (client, base):
        await fetch(client, f"{base}/v1/files/a b%2Fc/\u00e9?q=x y&r=%20")
    assert targets == [b"/v1/files/a%20b%2Fc/%C3%A9?q=x%20y&r=%20"]


async def test_a_stalled_answer_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        await asyncio.sleep(5)

    async with scripted(handler, upstream_timeout_s=0.3) as (client, base):
        response = await client.send(client.build("GET", f"{base}/slow", [], b""))
        started = time.monotonic()
        with pytest.raises(UpstreamBodyError):
            await response.aread()
        assert time.monotonic() - started < 2
        await response.aclose()


async def test_the_pool_bound_makes_requests_wait_for_a_free_connection() -> None:
    open_connections = 0
    most = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections, most
        open_connections += 1
        most = max(most, open_connections)
        try:
            while True:
                await read_request(reader)
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_connections -= 1

    async with scripted(handler, max_upstream_connections=2) as (client, base):
        results = await asyncio.gather(*(fetch(client, f"{base}/n{i}") for i in range(6)))
    assert results == [(200, b"ok")] * 6
    assert most == 2


async def test_a_large_body_read_slowly_arrives_whole_and_in_order() -> None:
    """Beyond the buffer bound the socket stops being read until the reader catches up."""
    blob = bytes(range(256)) * (6 * 4096)  # 6 MiB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(blob))
        for start in range(0, len(blob), 256 * 1024):
            writer.write(blob[start : start + 256 * 1024])
            await writer.drain()

    async with scripted(handler) as (client, base):
        response = await client.send(client.build("GET", f"{base}/big", [], b""))
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) < 2 * 1024 * 1024:
                await asyncio.sleep(0.001)  # a slow reader at first
        await response.aclose()
    assert bytes(received) == blob


# ---- httpx's API: any transport, event hooks --------------------------------------------------------


async def test_any_httpx_transport_and_event_hooks_can_be_given() -> None:
    """The client is httpx's API over a transport: tests (and embedders) may pass
    `httpx.MockTransport` and httpx-style event hooks; limits and decoding still apply."""
    import gzip as gzip_module

    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "gzip, deflate, br, zstd"
        return httpx.Response(
            200, headers={"content-encoding": "gzip"}, content=gzip_module.compress(b'{"mocked":true}')
        )

    async def on_request(request: httpx.Request) -> None:
        seen.append(f"request {request.method} {request.url.path}")

    async def on_response(response: httpx.Response) -> None:
        seen.append(f"response {response.status_code}")

    client = UpstreamClient(
        Settings(_env_file=None),  # type: ignore[call-arg]
        transport=httpx.MockTransport(handler),
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    try:
        assert await fetch(client, "https://api.openai.com/v1/chat/completions") == (200, b'{"mocked":true}')
    finally:
        await client.aclose()
    assert seen == ["request POST /v1/chat/completions", "response 200"]
