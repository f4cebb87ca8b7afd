"""A hostile HTTP/1.1 upstream that breaks the protocol on purpose, to test the gateway's upstream client.

`HostileUpstream` is a raw `asyncio.start_server` TCP server (no uvicorn, no h11: nothing between the
scenario and the socket can tidy its bytes up) running its own event loop in a daemon thread on
127.0.0.1 and an ephemeral port, plain or TLS (`ssl_context`, see tests/support/tls_certs.py).

It parses each request properly (request line, headers, `Content-Length` or chunked body), records it
(`.requests`, every byte received for `.saw()`), keeps the connection alive for further requests, and
answers with a **scenario** chosen by

1. the request header `x-hostile: NAME` (the name is matched case-insensitively), else
2. a path segment after `/s/` in the target: `/v1/s/gzip-bomb/chat/completions` → `gzip-bomb`
   (`/s/NAME:ARG/` also gives the argument, for clients that cannot add headers), else
3. `ok`.

`x-hostile-arg: N` (int or float) parameterises a scenario; the table gives its meaning and default.

| scenario | what is sent |
|---|---|
| `ok` | 200 JSON chat completion (`HOSTILE_OK_JSON`), Content-Length, keep-alive |
| `ok-sse` | 200 `text/event-stream`, chunked: 3 `chat.completion.chunk` events, `data: [DONE]` |
| `echo-headers` | 200 JSON `{"headers": [[name, value], ...]}`, the request's headers as received |
| `set-cookie` | `ok` plus `Set-Cookie: session=tenant-a; Path=/` |
| `slow` | sleeps ARG s (2), then `ok` |
| `drip` | JSON head with `Content-Length: 1000000`, then one byte every ARG s (0.2) until the peer goes |
| `drip-sse` | `text/event-stream` head, chunked, then chunk `: drip\\n\\n` (SSE comment) every ARG s (0.2) |
| `header-flood-bytes` | `HTTP/1.1 200 OK\\r\\nX-Big: ` then `a` forever (no CRLF), capped at ARG MiB (256) |
| `header-flood-count` | 200 with ARG (100000) headers `X-H-<i>: v`, then `Content-Length: 2` body `{}` |
| `gzip-bomb` `deflate-bomb` `raw-deflate-bomb` `br-bomb` `zstd-bomb` | 200 JSON with Content-Length, a body |
|  | of ~1 MiB (gzip/deflate; br and zstd are far smaller) inflating to ARG GiB (1) of `0` |
| `gzip-bomb-sse` | the gzip bomb as `text/event-stream`, inflating to `data: ` + endless `0` (no newline) |
| `sse-huge-event` | `text/event-stream`, chunked: `data: {"x":1}\\n\\n`, then `data: ` + endless `a` |
| `endless-body` | 200 JSON head, neither Content-Length nor Transfer-Encoding, endless 64 KiB blocks |
| `endless-chunked` | 200 JSON head, chunked, 64 KiB chunks forever (these three: cap ARG MiB if given) |
| `204-then-200` | one write: a 204 head immediately followed by a complete 200 `hello` response |
| `extra-after-body` | 200 `Content-Length: 2` body `{}` followed in the same write by a stray 200 response |
| `trailers` | 200 chunked `{"ok":true}` with trailers `Set-Cookie: evil=1`, `X-Trailer: 1` (and `Trailer:`) |
| `reset-after-read` | reads the request, then aborts with a TCP RST (SO_LINGER 0) without answering; |
|  | (over TLS, Python's ssl module reports the RST as a plain EOF) |
| `close-after-read` | reads the request, then closes gracefully without answering |
| `info-101` | `101 Switching Protocols` (websocket upgrade), some garbage bytes, close |
| `info-100` `info-102` `info-103` | `100 Continue` / `102 Processing` / `103 Early Hints` + `Link`; `ok` |
| `gzip-gzip` | `Content-Encoding: gzip, gzip`, body gzip(gzip(json)) |
| `two-encodings` | two headers `Content-Encoding: gzip` and `Content-Encoding: br`, body br(gzip(json)) |
| `gzip` `br` `zstd` `deflate` `raw-deflate` | the ok JSON in that one coding (`raw-deflate`: as `deflate`) |
| `te-gzip-chunked` | `Transfer-Encoding: gzip, chunked`: chunked framing of gzip(json) |
| `unknown-encoding` | `Content-Encoding: snappy` with some bytes |

Responses that break the framing (`204-then-200`, `extra-after-body`) leave the connection open, so
a client that reuses it reads the stray bytes as the answer to its next request: that is the test.
Floods and drips stop quietly when the peer goes (no traceback); a request with `Connection: close`
gets its answer and then the connection is closed (the forward proxy relies on that).

The bytes (the ok answer, raw responses, bomb payloads built once per (kind, size)) are in
tests/support/hostile_payloads.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable

import brotli
from backports import zstd

from tests.support.hostile_payloads import (
    CHUNKED,
    HOSTILE_OK_JSON,
    JSON_TYPE,
    OK_RESPONSE,
    OK_SSE_EVENTS,
    SSE_TYPE,
    KiB,
    MiB,
    as_chunk,
    bomb_payload,
    http_response,
    raw_deflate,
)
from tests.support.raw_http import AsyncioServerThread, BadRequest, HttpReader, RawRequest, read_request

__all__ = [
    "HOSTILE_OK_JSON",
    "SCENARIOS",
    "HostileUpstream",
    "MiB",
    "RawRequest",
    "bomb_payload",
]

FLOOD_BLOCK = 64 * KiB
MAX_RECORDED_BYTES = 16 * MiB  # all connections together; `saw()` looks at these only


# --------------------------------------------------------------------------------------------------
# The hostile server.
# --------------------------------------------------------------------------------------------------


class _Conn:
    """One accepted connection: counted writes that fail fast once the peer is gone."""

    def __init__(self, upstream: HostileUpstream, index: int, writer: asyncio.StreamWriter) -> None:
        self.upstream = upstream
        self.index = index
        self.writer = writer

    async def send(self, data: bytes) -> None:
        # A closing transport drops writes silently (and warns after a few): treat it as gone.
        if self.writer.transport.is_closing():
            raise ConnectionResetError("peer gone")
        self.writer.write(data)
        self.upstream._count_sent(len(data))
        await self.writer.drain()
        # drain() does not yield unless the buffer is full. Over TLS, once the socket is dead the
        # writes are dropped below the TLS layer (so the buffer never fills) and the TLS transport
        # learns of the loss only from a loop callback: without this yield a flood spins forever
        # and starves every other connection.
        await asyncio.sleep(0)

    async def send_in_blocks(self, data: bytes) -> None:
        """Large payloads in 64 KiB writes, so a client that aborts stops us early."""
        for at in range(0, len(data), FLOOD_BLOCK):
            await self.send(data[at : at + FLOOD_BLOCK])

    async def flood(self, block: bytes, cap_bytes: float | None) -> None:
        """Write `block` until the peer goes (or `cap_bytes` is reached)."""
        sent = 0
        while cap_bytes is None or sent < cap_bytes:
            await self.send(block)
            sent += len(block)

    def reset(self) -> None:
        """Abort with a TCP RST: SO_LINGER on with a 0 s timeout makes close() reset."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


# A scenario answers one request; it returns True to keep the connection for the next one.
Scenario = Callable[[_Conn, RawRequest, float | None], Awaitable[bool]]
SCENARIOS: dict[str, Scenario] = {}


def _scenario(*names: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        for name in names:
            SCENARIOS[name] = fn
        return fn

    return register


def _mib(arg: float | None) -> float | None:
    return None if arg is None else arg * MiB


@_scenario("ok")
async def _ok(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(OK_RESPONSE)
    return True


@_scenario("ok-sse")
async def _ok_sse(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(http_response("200 OK", [SSE_TYPE, ("Cache-Control", "no-cache"), CHUNKED]))
    for event in OK_SSE_EVENTS:
        await conn.send(as_chunk(event))
    await conn.send(b"0\r\n\r\n")
    return True


@_scenario("echo-headers")
async def _echo_headers(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    body = json.dumps({"headers": [[k, v] for k, v in req.headers]}).encode()
    await conn.send(http_response("200 OK", [JSON_TYPE], body))
    return True


@_scenario("set-cookie")
async def _set_cookie(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(
        http_response("200 OK", [JSON_TYPE, ("Set-Cookie", "session=tenant-a; Path=/")], HOSTILE_OK_JSON)
    )
    return True


@_scenario("slow")
async def _slow(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await asyncio.sleep(2.0 if arg is None else arg)
    await conn.send(OK_RESPONSE)
    return True


@_scenario("drip")
async def _drip(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(http_response("200 OK", [JSON_TYPE, ("Content-Length", "1000000")]))
    for _ in range(1_000_000):
        await asyncio.sleep(0.2 if arg is None else arg)
        await conn.send(b" ")  # JSON whitespace: valid, never-finishing
    return True


@_scenario("drip-sse")
async def _drip_sse(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(http_response("200 OK", [SSE_TYPE, CHUNKED]))
    while True:
        await asyncio.sleep(0.2 if arg is None else arg)
        await conn.send(as_chunk(b": drip\n\n"))  # an SSE comment: bytes flow, no event ever ends


@_scenario("header-flood-bytes")
async def _header_flood_bytes(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(b"HTTP/1.1 200 OK\r\nX-Big: ")
    await conn.flood(b"a" * FLOOD_BLOCK, (256 if arg is None else arg) * MiB)
    return False


@_scenario("header-flood-count")
async def _header_flood_count(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    count = 100_000 if arg is None else int(arg)
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H-%d: v\r\n" % i for i in range(count))
    await conn.send_in_blocks(head + b"Content-Length: 2\r\n\r\n{}")
    return True


async def _send_bomb(conn: _Conn, kind: str, coding: str, content_type: str, arg: float | None) -> bool:
    # Built off the loop: the first build of a kind takes a fraction of a second.
    payload = await asyncio.to_thread(bomb_payload, kind, 1.0 if arg is None else arg)
    headers = [
        ("Content-Type", content_type),
        ("Content-Encoding", coding),
        ("Content-Length", str(len(payload))),
    ]
    await conn.send(http_response("200 OK", headers))
    await conn.send_in_blocks(payload)
    return True


def _bomb(name: str, kind: str, coding: str, content_type: str = "application/json") -> None:
    async def scenario(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
        return await _send_bomb(conn, kind, coding, content_type, arg)

    SCENARIOS[name] = scenario


_bomb("gzip-bomb", "gzip", "gzip")
_bomb("deflate-bomb", "deflate", "deflate")
_bomb("raw-deflate-bomb", "raw-deflate", "deflate")
_bomb("br-bomb", "br", "br")
_bomb("zstd-bomb", "zstd", "zstd")
_bomb("gzip-bomb-sse", "gzip-sse", "gzip", "text/event-stream")


@_scenario("sse-huge-event")
async def _sse_huge_event(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(
        http_response("200 OK", [SSE_TYPE, CHUNKED]) + as_chunk(b'data: {"x":1}\n\n') + as_chunk(b"data: ")
    )
    await conn.flood(as_chunk(b"a" * FLOOD_BLOCK), _mib(arg))
    return False


@_scenario("endless-body")
async def _endless_body(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")  # read-until-close
    await conn.flood(b"0" * FLOOD_BLOCK, _mib(arg))
    return False


@_scenario("endless-chunked")
async def _endless_chunked(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(http_response("200 OK", [JSON_TYPE, CHUNKED]))
    await conn.flood(as_chunk(b"0" * FLOOD_BLOCK), _mib(arg))
    return False


@_scenario("204-then-200")
async def _204_then_200(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
    )
    return True


@_scenario("extra-after-body")
async def _extra_after_body(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad"
    )
    return True


@_scenario("trailers")
async def _trailers(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    head = http_response("200 OK", [JSON_TYPE, CHUNKED, ("Trailer", "Set-Cookie, X-Trailer")])
    await conn.send(head + as_chunk(b'{"ok":true}') + b"0\r\nSet-Cookie: evil=1\r\nX-Trailer: 1\r\n\r\n")
    return True


@_scenario("reset-after-read")
async def _reset_after_read(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    conn.reset()
    return False


@_scenario("close-after-read")
async def _close_after_read(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    return False


@_scenario("info-101")
async def _info_101(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    await conn.send(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"\x81\x05hello\x00\xff\xfe not http at all \x88\x00"
    )
    return False


def _info_then_ok(interim: bytes) -> Scenario:
    async def scenario(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
        await conn.send(interim)  # a separate write: the client sees the interim head on its own
        await conn.send(OK_RESPONSE)
        return True

    return scenario


SCENARIOS["info-100"] = _info_then_ok(b"HTTP/1.1 100 Continue\r\n\r\n")
SCENARIOS["info-102"] = _info_then_ok(b"HTTP/1.1 102 Processing\r\n\r\n")
SCENARIOS["info-103"] = _info_then_ok(
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
)


def _encoded(codings: list[str], body: bytes) -> Scenario:
    """The ok JSON with `Content-Encoding` header(s) `codings` and an already encoded `body`."""
    response = http_response("200 OK", [JSON_TYPE, *(("Content-Encoding", c) for c in codings)], body)

    async def scenario(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
        await conn.send(response)
        return True

    return scenario


_GZ = gzip.compress(HOSTILE_OK_JSON, mtime=0)
SCENARIOS["gzip"] = _encoded(["gzip"], _GZ)
SCENARIOS["gzip-gzip"] = _encoded(["gzip, gzip"], gzip.compress(_GZ, mtime=0))
# Codings are listed in the order applied (RFC 9110 8.4): gzip first, then br; decode br first.
SCENARIOS["two-encodings"] = _encoded(["gzip", "br"], brotli.compress(_GZ))
SCENARIOS["br"] = _encoded(["br"], brotli.compress(HOSTILE_OK_JSON))
SCENARIOS["zstd"] = _encoded(["zstd"], zstd.compress(HOSTILE_OK_JSON))
SCENARIOS["deflate"] = _encoded(["deflate"], zlib.compress(HOSTILE_OK_JSON))
SCENARIOS["raw-deflate"] = _encoded(["deflate"], raw_deflate(HOSTILE_OK_JSON))
SCENARIOS["unknown-encoding"] = _encoded(["snappy"], b"\xff\x06\x00\x00sNaPpY\x01\x0b\x00\x00not json")


@_scenario("te-gzip-chunked")
async def _te_gzip_chunked(conn: _Conn, req: RawRequest, arg: float | None) -> bool:
    head = http_response("200 OK", [JSON_TYPE, ("Transfer-Encoding", "gzip, chunked")])
    await conn.send(head + as_chunk(_GZ) + b"0\r\n\r\n")
    return True


_PATH_SCENARIO = re.compile(r"/s/([A-Za-z0-9_.-]+)(?::([0-9.]+))?(?=[/?#]|$)")


def pick_scenario(req: RawRequest) -> tuple[str, float | None]:
    """(scenario name, argument) for a request: `x-hostile`, else `/s/NAME[:ARG]` in the target, else ok."""
    name: str | None = req.header("x-hostile")
    arg_text = req.header("x-hostile-arg")
    if name is None:
        match = _PATH_SCENARIO.search(req.target)
        if match:
            name = match.group(1)
            arg_text = arg_text if arg_text is not None else match.group(2)
    arg = float(arg_text) if arg_text not in (None, "") else None
    return (name or "ok").strip().lower(), arg


class HostileUpstream(AsyncioServerThread):
    """Hostile HTTP/1.1 server; see the module docstring for the scenarios.

    Use as a context manager or call start()/stop(). All recorded state is safe to read from the
    test thread while the server runs.
    """

    name = "hostile-upstream"

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self._lock = threading.Lock()
        self._connections = 0
        self._requests: list[RawRequest] = []
        self._received: dict[int, bytearray] = {}
        self._received_total = 0
        self._sent = 0

    # ---- recorded state --------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """TCP connections accepted since the last reset (TLS: handshakes completed)."""
        with self._lock:
            return self._connections

    @property
    def requests(self) -> list[RawRequest]:
        """A snapshot of every complete request parsed since the last reset, oldest first."""
        with self._lock:
            return list(self._requests)

    def saw(self, needle: bytes) -> bool:
        """Whether the bytes received on any one connection contain `needle` (first 16 MiB in all)."""
        with self._lock:
            return any(needle in buf for buf in self._received.values())

    def bytes_sent(self) -> int:
        """Bytes handed to the transports: with a client that stops reading, this stops growing."""
        with self._lock:
            return self._sent

    def reset(self) -> None:
        """Forget requests, received bytes and counters. Connections open across a reset keep their
        old index in `RawRequest.connection`; new ones count from 0 again."""
        with self._lock:
            self._connections = 0
            self._requests.clear()
            self._received.clear()
            self._received_total = 0
            self._sent = 0

    def _count_sent(self, n: int) -> None:
        with self._lock:
            self._sent += n

    def _record_bytes(self, index: int, data: bytes) -> None:
        with self._lock:
            room = MAX_RECORDED_BYTES - self._received_total
            if room <= 0:
                return
            kept = data[:room]
            self._received.setdefault(index, bytearray()).extend(kept)
            self._received_total += len(kept)

    # ---- serving ---------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            index = self._connections
            self._connections += 1
        stream = HttpReader(reader, lambda data: self._record_bytes(index, data))
        conn = _Conn(self, index, writer)
        while True:
            try:
                parsed = await read_request(stream, index)
            except BadRequest as exc:
                await conn.send(
                    http_response("400 Bad Request", [("Content-Type", "text/plain")], str(exc).encode())
                )
                return
            if parsed is None:
                return
            req = parsed[0]
            with self._lock:
                self._requests.append(req)
            name, arg = pick_scenario(req)
            scenario = SCENARIOS.get(name)
            if scenario is None:
                body = json.dumps({"error": f"unknown hostile scenario {name!r}"}).encode()
                await conn.send(http_response("404 Not Found", [JSON_TYPE], body))
                keep = True
            else:
                keep = await scenario(conn, req, arg)
            if not keep or (req.header("connection") or "").strip().lower() == "close":
                return
