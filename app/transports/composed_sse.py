"""A stream the gateway composes itself (`ComposedStream`: a compat translation), sent over HTTP by
sse-starlette's `EventSourceResponse`: the same status, headers and event bytes as before, plus a
comment line (`: ping - <time>`) every `AIGW_SSE_PING_S` seconds, so that a proxy does not cut a
stream that is slow to bring its next event. Streams relayed from a provider never come here: their
bytes are the provider's, and a ping could land inside one of its events.

sse-starlette listens for the client's disconnect on `receive` itself (the caller's watch has let
go of it) and then cancels the stream's iteration at once. It is told to never cut a stream when
the server shuts down: composed streams drain like relayed ones, within uvicorn's own grace."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from app.core.errors import GatewayError
from app.pipeline.types import ResultStream
from app.transports.encode import stream_error_event

_EVENT_STREAM = b"text/event-stream"


async def send_composed(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    stream: ResultStream,
) -> None:
    """Send `stream` (never closed here: the caller does it, once) as it comes, with pings."""
    response = EventSourceResponse(
        _events(stream),
        status_code=status,
        ping=max(scope["app"].state.settings.sse_ping_s, 0.0),  # 0 turns pings off
        sep="\n",  # the separator of the translators' events
        shutdown_grace_period=math.inf,
    )
    # Our headers only: not sse-starlette's defaults (Connection is the server's, Cache-Control and
    # X-Accel-Buffering are not sent on relayed streams either).
    response.raw_headers = _event_stream_typed(headers)
    await response(scope, receive, send)


async def _events(stream: ResultStream) -> AsyncIterator[bytes]:
    """The stream's chunks, ended by one error event if it is cut. A generator of its own, so that
    sse-starlette closing it (after a failed send) never closes `stream`."""
    try:
        async for chunk in stream:
            yield chunk
    except GatewayError as error:
        yield stream_error_event(error)


def _event_stream_typed(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers`, with `text/event-stream` as the content type unless they already say so."""
    for name, value in headers:
        if name == b"content-type" and value.lower().startswith(_EVENT_STREAM):
            return headers
    return [*(pair for pair in headers if pair[0] != b"content-type"), (b"content-type", _EVENT_STREAM)]
