"""Incremental Server-Sent Events splitting, for reading usage out of streams and for re-framing
streams as WebSocket messages. The bytes themselves are always relayed unchanged."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: bytes


class SSEEventTooLarge(ValueError):
    """An event grew past the splitter's bound before its blank line came."""


class SSESplitter:
    """Feed raw chunks; get back the complete events they finish. With `max_event_bytes`, an
    unfinished event larger than that raises SSEEventTooLarge (an upstream's endless event must
    not grow the buffer without end)."""

    __slots__ = ("_buffer", "_limit")

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._buffer = b""
        self._limit = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse_block(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:]
        if self._limit is not None and len(self._buffer) > self._limit:
            self._buffer = b""
            raise SSEEventTooLarge(f"an event larger than {self._limit} bytes")
        return events

    def close(self) -> list[SSEEvent]:
        """Whatever complete-looking event is left when the stream ends without a blank line."""
        rest, self._buffer = self._buffer, b""
        event = _parse_block(rest.strip(b"\n")) if rest.strip() else None
        return [event] if event is not None else []


def _parse_block(block: bytes) -> SSEEvent | None:
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not data and name is None:
        return None  # comments and keep-alives
    return SSEEvent(name, b"\n".join(data))
