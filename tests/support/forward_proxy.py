"""A minimal HTTP/1.1 forward proxy for tests of the gateway's proxy settings.

`ForwardProxy` is a raw asyncio server (its own event loop in a daemon thread, 127.0.0.1 and an
ephemeral port, like tests/support/hostile_upstream.py) that handles one request per client
connection:

- absolute-form (`POST http://127.0.0.1:9999/v1/x HTTP/1.1`): connects to the origin, forwards the
  request in origin-form with `Connection: close` (hop-by-hop and `Proxy-*` headers dropped, the
  body re-sent exactly as framed), then relays the origin's bytes back untouched until the origin
  closes, and closes. Relaying raw (rather than re-parsing the response) keeps hostile responses
  hostile on the way through.
- `CONNECT host:port`: answers `200 Connection Established` and pipes bytes both ways (TLS tunnels).

Every request is recorded in `.seen` as (method, target), so a test can prove traffic went through
the proxy (and which way: absolute-form for http, CONNECT for https). Only `http` origins are
relayed in absolute-form; other schemes get 400, an unreachable origin 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit

from tests.support.raw_http import AsyncioServerThread, BadRequest, HttpReader, read_request

__all__ = ["ForwardProxy"]

_PIPE_BLOCK = 64 * 1024
# RFC 9110 7.6.1 hop-by-hop headers, plus the proxy's own: never forwarded to the origin.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "upgrade",
}


def _answer(status: str, text: str = "") -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy src to dst until EOF, then half-close dst (so a tunnelled TLS close_notify/FIN passes)."""
    try:
        while data := await src.read(_PIPE_BLOCK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof() and not dst.transport.is_closing():
            dst.write_eof()
    except (ConnectionError, OSError):
        # One side vanished: reset the other (so a client sees the origin's RST as an RST), which
        # also ends the pipe in the other direction instead of leaving it waiting forever.
        sock = dst.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dst.transport.abort()


class ForwardProxy(AsyncioServerThread):
    """HTTP/1.1 forward proxy (absolute-form and CONNECT). Context manager, or start()/stop()."""

    name = "forward-proxy"

    def __init__(self) -> None:
        super().__init__(None)
        self._lock = threading.Lock()
        self._seen: list[tuple[str, str]] = []

    @property
    def seen(self) -> list[tuple[str, str]]:
        """A snapshot of (method, target) for every request received since the last reset."""
        with self._lock:
            return list(self._seen)

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = HttpReader(reader)
        try:
            parsed = await read_request(stream)
        except BadRequest as exc:
            writer.write(_answer("400 Bad Request", str(exc)))
            await writer.drain()
            return
        if parsed is None:
            return
        req, raw_body = parsed
        with self._lock:
            self._seen.append((req.method, req.target))
        if req.method.upper() == "CONNECT":
            await self._tunnel(req.target, stream, reader, writer)
        else:
            await self._forward(req.method, req.target, req.headers, raw_body, writer)

    async def _tunnel(
        self, target: str, stream: HttpReader, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")  # [::1]:443
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port_text))
        except (OSError, ValueError) as exc:
            writer.write(_answer("502 Bad Gateway", f"cannot connect to {target}: {exc}"))
            await writer.drain()
            return
        try:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            # A client may send its first tunnel bytes right behind the CONNECT head.
            if early := stream.take_buffered():
                up_writer.write(early)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.transport.close()

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        raw_body: bytes,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            writer.write(_answer("400 Bad Request", f"not an absolute http URL: {target}"))
            await writer.drain()
            return
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        head = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in kept), "Connection: close"]
        try:
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        except OSError as exc:
            writer.write(_answer("502 Bad Gateway", f"cannot connect to {url.netloc}: {exc}"))
            await writer.drain()
            return
        try:
            up_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + raw_body)
            await up_writer.drain()
            # Connection: close semantics: everything the origin sends, until it closes, is the answer.
            await _pipe(up_reader, writer)
        finally:
            up_writer.transport.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()
