"""CorkedTransport (app/server/protocol.py): writes of one event-loop iteration leave in one send,
nothing waits past that iteration, and closing sends what is pending first. Driven over a real
socket pair so what arrives is what a client would read."""

from __future__ import annotations

import asyncio
import socket

from app.server.protocol import CorkedTransport


class _Recorder(asyncio.Protocol):
    pass


async def _pair() -> tuple[asyncio.Transport, socket.socket, list[bytes]]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await loop.create_connection(_Recorder, sock=ours)
    sent: list[bytes] = []
    real_write = transport.write

    def counting_write(data: bytes) -> None:  # type: ignore[override]
        sent.append(bytes(data))
        real_write(data)

    transport.write = counting_write  # type: ignore[method-assign]
    return transport, theirs, sent


async def _read_all(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await loop.sock_recv(sock, size - len(data))
    return data


async def test_writes_of_one_iteration_leave_in_one_send_in_order() -> None:
    transport, peer, sent = await _pair()
    corked = CorkedTransport(transport, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"body")
    assert sent == []  # held until the end of this iteration
    await asyncio.sleep(0)
    assert sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    corked.write(b"next")
    await asyncio.sleep(0)
    assert sent[1:] == [b"next"]  # a later iteration's write is not held back for a partner
    assert await _read_all(peer, 27) == b"HTTP/1.1 200 OK\r\n\r\nbodynext"
    corked.close()
    peer.close()


async def test_close_sends_what_is_pending_first() -> None:
    transport, peer, sent = await _pair()
    corked = CorkedTransport(transport, asyncio.get_running_loop())
    corked.write(b"last words")
    corked.close()
    assert sent == [b"last words"]
    assert await _read_all(peer, 10) == b"last words"
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert sent == [b"last words"]
    peer.close()


async def test_abort_discards_and_other_calls_reach_the_transport() -> None:
    transport, peer, sent = await _pair()
    corked = CorkedTransport(transport, asyncio.get_running_loop())
    assert corked.get_extra_info("socket") is transport.get_extra_info("socket")
    assert corked.is_closing() is False
    corked.write(b"never sent")
    corked.abort()
    await asyncio.sleep(0)
    assert sent == []
    assert corked.is_closing() is True
    peer.close()
