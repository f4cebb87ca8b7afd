"""`http.serve` with a composed stream, at the ASGI level (no server, no upstream): on every way a
stream can end (to its end, cut by the upstream, the client gone, the client's socket broken) the
stream is closed exactly once, the events go out unchanged with pings between them, a cut ends
with exactly one error event, and `receive` never has two listeners at once (the disconnect watch
hands it over to sse-starlette)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from app.core.errors import GatewayError, StreamInterrupted
from app.pipeline.types import ComposedStream, GatewayRequest, GatewayResult, ResultMeta
from app.transports.encode import stream_error_event
from app.transports.http import serve

EVENTS = [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', b"data: [DONE]\n\n"]


class Composed(ComposedStream):
    """Yields `chunks` `gap` seconds apart, then raises `error` or hangs (until cancelled)."""

    def __init__(
        self, chunks: list[bytes], gap: float = 0.0, error: GatewayError | None = None, hang: bool = False
    ) -> None:
        self.chunks, self.gap, self.error, self.hang = chunks, gap, error, hang
        self.closed = 0
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            if index and self.gap:
                await asyncio.sleep(self.gap)
            yield chunk
        if self.error is not None:
            raise self.error
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise

    async def aclose(self) -> None:
        self.closed += 1


class Client:
    """The client side of the ASGI calls: gone after `leave_after` body chunks, or its socket
    broken (`OSError`) on the body chunk number `break_at`."""

    def __init__(self, leave_after: int | None = None, break_at: int | None = None) -> None:
        self.leave_after, self.break_at = leave_after, break_at
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.listeners = 0
        self.most_listeners = 0

    async def receive(self) -> dict[str, Any]:
        self.listeners += 1
        self.most_listeners = max(self.most_listeners, self.listeners)
        try:
            await self.gone.wait()
        finally:
            self.listeners -= 1
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone.is_set():
            raise OSError("the client is gone")
        if message["type"] == "http.response.body":
            if len(self.bodies) + 1 == self.break_at:
                raise OSError("broken pipe")
            if not message.get("more_body", False):
                self.gone.set()  # a complete response: the server reports a disconnect from now on
        self.messages.append(message)
        if self.leave_after is not None and len(self.bodies) >= self.leave_after:
            self.gone.set()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]

    @property
    def events(self) -> list[bytes]:
        return [body for body in self.bodies if body and not body.startswith(b": ping")]

    @property
    def pings(self) -> list[bytes]:
        return [body for body in self.bodies if body.startswith(b": ping")]


async def run(stream: Composed, client: Client, ping_s: float = 30.0) -> None:
    meta = ResultMeta("01LOG", "01LOG", 0, "MISS", "text/event-stream", 200)
    result = GatewayResult(200, [("content-type", "text/event-stream")], meta, stream=stream)

    async def run_pipeline(_request: GatewayRequest) -> GatewayResult:
        return result

    state = SimpleNamespace(
        settings=SimpleNamespace(sse_ping_s=ping_s), pipeline=SimpleNamespace(run=run_pipeline)
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/a/g/compat/chat/completions",
        "app": SimpleNamespace(state=state),
    }

    async def build() -> GatewayRequest:
        return GatewayRequest("a", "g", "compat", [])

    async with asyncio.timeout(5):
        await serve(scope, client.receive, client.send, build, with_step=False)  # type: ignore[arg-type]


async def test_to_its_end_events_unchanged_with_pings_between_closed_once() -> None:
    stream, client = Composed(EVENTS, gap=0.15), Client()
    await run(stream, client, ping_s=0.02)
    start = client.messages[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"text/event-stream") in start["headers"]
    assert not any(name in (b"x-accel-buffering", b"connection") for name, _ in start["headers"])
    assert client.events == EVENTS
    assert len(client.pings) >= 4
    assert all(ping.startswith(b": ping - ") and ping.endswith(b"\n\n") for ping in client.pings)
    assert client.bodies[-1] == b"" and client.messages[-1]["more_body"] is False
    assert stream.closed == 1
    assert client.most_listeners == 1


async def test_a_cut_stream_ends_with_one_error_event_closed_once() -> None:
    error = StreamInterrupted("Upstream stream interrupted after it started")
    stream, client = Composed(EVENTS[:1], error=error), Client()
    await run(stream, client)
    assert client.events == [EVENTS[0], stream_error_event(error)]
    assert client.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert stream.closed == 1


async def test_a_client_gone_mid_stream_stops_it_at_once_closed_once() -> None:
    stream, client = Composed(EVENTS[:1], hang=True), Client(leave_after=1)
    started = asyncio.get_running_loop().time()
    await run(stream, client)
    assert asyncio.get_running_loop().time() - started < 1
    assert stream.cancelled
    assert client.events == EVENTS[:1]
    assert stream.closed == 1
    assert client.most_listeners == 1


async def test_a_broken_client_socket_closed_once() -> None:
    stream, client = Composed(EVENTS), Client(break_at=2)
    await run(stream, client)
    assert client.events == EVENTS[:1]
    assert stream.closed == 1


async def test_a_client_gone_before_the_stream_starts_closed_once() -> None:
    stream, client = Composed([], hang=True), Client()
    client.gone.set()
    await run(stream, client)
    assert client.events == []
    assert stream.closed == 1
    assert client.most_listeners == 1
