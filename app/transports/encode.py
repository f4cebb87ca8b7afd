"""Every gateway error as a client receives it, in one place: an HTTP response, a WebSocket frame,
or the last event of a stream that was cut. The error's context (log id, event id, step) becomes
`cf-aig-*` headers over HTTP and frame metadata over WebSocket."""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import DlpBlocked, GatewayError, RateLimited, UpstreamRefused


def gateway_error_json(error: GatewayError) -> bytes:
    """The public service's error shape (note `error`, singular)."""
    return orjson.dumps(
        {
            "success": False,
            "result": [],
            "messages": [],
            "error": [{"code": error.code, "message": error.message}],
        }
    )


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_headers(error: GatewayError) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    context = error.context
    if context is not None:
        # The event id may echo client input: never let an unencodable one turn into a 500.
        headers += [
            (b"cf-aig-log-id", context.log_id.encode()),
            (b"cf-aig-event-id", context.event_id.encode("latin-1", "replace")),
            (b"cf-aig-step", str(context.step).encode()),
        ]
    if isinstance(error, RateLimited) and error.retry_after_s is not None:
        headers.append((b"retry-after", retry_after_header(error.retry_after_s).encode()))
    if isinstance(error, DlpBlocked) and error.dlp_header is not None:
        headers.append((b"cf-aig-dlp", error.dlp_header.encode()))
    return headers


def http_error_response(error: GatewayError) -> Response:
    if isinstance(error, UpstreamRefused):  # the provider's own answer, passed through
        return Response(error.body, status_code=error.status, media_type=error.content_type)
    response = Response(gateway_error_json(error), status_code=error.status, media_type="application/json")
    response.raw_headers.extend(error_headers(error))
    return response


async def gateway_error_handler(_request: Request, exc: Exception) -> Response:
    """For the framework's routes (the `/v1` HTTP traffic is answered before them, in asgi.py)."""
    assert isinstance(exc, GatewayError)
    return http_error_response(exc)


def stream_error_event(error: GatewayError) -> bytes:
    """The one explicit SSE event that ends an interrupted stream over HTTP (never a fake [DONE]),
    after a blank line: the stream may have been cut inside an event, and this must parse alone."""
    return (
        b"\n\nevent: error\ndata: "
        + orjson.dumps({"error": {"code": error.code, "message": error.message}})
        + b"\n\n"
    )


def ws_frame(kind: str, metadata: dict[str, Any], response: bytes | None = None) -> bytes:
    """A `universal.*` frame; `response` is JSON spliced in as it is (never re-serialised)."""
    head = b'{"type":"' + kind.encode() + b'","metadata":' + orjson.dumps(metadata)
    return head + (b',"response":' + response + b"}" if response is not None else b"}")


def ws_error_frame(error: GatewayError, event_id: str | None, request_id: str | None = None) -> bytes:
    """The `universal.created` frame of a request that failed before any answer (protocol.md §6);
    `requestId` when the request was logged."""
    metadata: dict[str, Any] = {"status": error.status}
    if event_id is not None:
        metadata["eventId"] = event_id
    if error.context is not None:
        metadata["logId"] = error.context.log_id
        metadata["step"] = str(error.context.step)
        if request_id:
            metadata["requestId"] = request_id
    response = {"success": False, "errors": [{"code": error.code, "message": error.message}]}
    return ws_frame("universal.created", metadata, orjson.dumps(response))


def ws_stream_failed_frame(error: GatewayError, metadata: dict[str, Any]) -> bytes:
    """The `universal.done` frame of a stream the upstream cut after it started."""
    failure = {"code": error.code, "message": error.message}
    return ws_frame("universal.done", {**metadata, "success": False, "error": failure})
