"""uvicorn's httptools protocol with a client read timeout and a request-head size limit.

uvicorn arms its keep-alive timer only after a response, so a connection that sends nothing, or
stops partway through its request head or body, is otherwise held for ever (slow-loris); and the
httptools parser buffers a request head of any size. This subclass adds:

- a head deadline: from the connection (or the first byte of the next request) to the end of the
  head, at most `read_timeout_s`; a partial head is answered 408, an idle connection just closed;
- a body idle timer: the body must keep arriving, with no gap longer than `read_timeout_s`;
- a head size limit: a head over `max_head_bytes` (request line and headers) is answered 431;
- corked writes: what the response writes in one event-loop iteration leaves in one send. uvicorn
  writes the status line and headers, then the body, each with its own `send` system call; on
  loopback and in profiles that second call was a visible share of a small response's cost. A
  WebSocket upgraded from the connection keeps the corked transport: frames written together
  (many requests of one session answered at once) leave together.

The timers only run while the gateway waits for the client to send: not while it reads nothing
because the app has not consumed the body yet (flow control, `Expect: 100-continue`), not while a
response is in progress, and never after a WebSocket upgrade.

uvicorn instantiates the protocol class itself, so the limits are class attributes: see
`protocol_class`. The classes it returns pickle by value (uvicorn's `--workers` spawn processes
and pickle the config, protocol class included).
"""

from __future__ import annotations

import asyncio
import copyreg
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
# After refusing a request, keep reading (and discarding) for this long before closing: closing a
# socket with unread input makes the kernel send a reset, which can destroy the answer in flight.
LINGER_S = 2.0

_IDLE, _HEAD, _BODY, _DONE = "idle", "head", "body", "done"


class HeadTooLarge(Exception):
    pass


class CorkedTransport:
    """A transport whose writes are joined until the end of the current event-loop iteration.

    Nothing waits longer than the iteration that wrote it, so a streamed chunk leaves as soon as
    before; only writes that would have left back to back (headers, then body) share one send.
    Closing and half-closing send what is pending first. Everything else goes to the transport.
    """

    __slots__ = ("_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self.transport.is_closing():
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._pending = None
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._read_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # request line and headers seen so far (lower bound while buffering)
        self._head_started = False  # the parser has begun a message whose head is not complete
        self._head_began_in_chunk = False
        self._head_too_large = False

    # ---- timers ---------------------------------------------------------------------------------

    def _arm(self, callback: Callable[[], None], delay: float | None = None) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.read_timeout_s if delay is None else delay, callback)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _start_head(self) -> None:
        self._phase = _HEAD
        self._head_bytes = 0
        self._head_started = False
        self._head_too_large = False
        self._arm(self._head_timed_out)

    def _not_waiting_for_client(self) -> bool:
        """True when the client is not to blame for the silence: the gateway is not reading."""
        if self.flow is not None and self.flow.read_paused:
            return True
        cycle = self.cycle
        return cycle is not None and cycle.waiting_for_100_continue

    def _head_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self._phase != _HEAD:
            return
        if self._not_waiting_for_client() or (self.cycle is not None and not self.cycle.response_complete):
            self._arm(self._head_timed_out)  # a pipelined head behind a response in progress
            return
        if self._head_started:
            self._refuse(408, "Request head not received in time.")
        else:
            self._phase = _DONE
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self._phase != _BODY:
            return
        if self._not_waiting_for_client():
            self._arm(self._body_timed_out)
            return
        self.logger.info("Closing a connection whose request body stopped arriving.")
        self._phase = _DONE
        self.transport.close()

    # ---- refusing -------------------------------------------------------------------------------

    def _refuse(self, status: int, msg: str) -> None:
        """Answer `status` and close, reading and discarding the rest of the input for a while."""
        if self.cycle is not None and not self.cycle.response_complete:
            # A request is being served: its response must not be mixed with ours, as uvicorn does.
            self._phase = _DONE
            self._cancel_read_timer()
            super().send_400_response(msg)
            return
        self._phase = _DONE
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        body = msg.encode("ascii")
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(self.transport.close, min(LINGER_S, self.read_timeout_s))

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self.logger.warning("Request head larger than %d bytes refused.", self.max_head_bytes)
            self._refuse(431, "Request header fields too large.")
        else:
            self._refuse(400, msg)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise HeadTooLarge

    # ---- protocol and parser callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CorkedTransport(transport, self.loop)  # type: ignore[assignment]
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        self._phase = _DONE
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == _DONE:
            return  # refused or timed out: discard until closed
        head_pending = self._phase == _HEAD and self._head_started
        self._head_began_in_chunk = False
        if self._phase == _BODY:
            self._arm(self._body_timed_out)
        super().data_received(data)
        if self._phase == _HEAD and head_pending and not self._head_began_in_chunk:
            # The whole chunk is head that httptools is still buffering (a long header or url).
            try:
                self._count_head(len(data))
            except HeadTooLarge:
                self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began_in_chunk = True
        if self._phase != _HEAD or self._read_timer is None:
            self._start_head()  # else the deadline armed at connection_made still runs
        self._head_started = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        self._cancel_read_timer()
        self._head_started = False
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            self._phase = _IDLE
        else:
            self._phase = _BODY
            self._arm(self._body_timed_out)

    def on_message_complete(self) -> None:
        if self._phase == _BODY:
            self._cancel_read_timer()
            self._phase = _IDLE
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_read_timer()
        self._phase = _DONE
        # The WebSocket protocol keeps the corked transport: the frames of many requests answered
        # in one iteration of the loop (a busy session) leave in one send, one TLS record.
        super().handle_websocket_upgrade()


class _ProtocolClassMeta(type):
    pass


def _reduce_protocol_class(cls: _ProtocolClassMeta) -> tuple[Any, tuple[float, int]]:
    return protocol_class, (cls.read_timeout_s, cls.max_head_bytes)  # type: ignore[attr-defined]


copyreg.pickle(_ProtocolClassMeta, _reduce_protocol_class)

_classes: dict[tuple[float, int], type[GuardedHttpToolsProtocol]] = {}


def protocol_class(
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S, max_head: int = DEFAULT_MAX_HEAD_BYTES
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http` option, with these limits."""
    key = (float(read_timeout_s), int(max_head))
    if key not in _classes:
        attrs = {"read_timeout_s": key[0], "max_head_bytes": key[1], "__module__": __name__}
        _classes[key] = _ProtocolClassMeta("AigwHttpToolsProtocol", (GuardedHttpToolsProtocol,), attrs)  # type: ignore[assignment]
    return _classes[key]
