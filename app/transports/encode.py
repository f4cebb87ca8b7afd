"""The one table from gateway errors to what a client receives: an HTTP response or a WebSocket
frame, and the error event that ends an interrupted stream."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import GatewayError, error_body


def http_error_response(error: GatewayError) -> Response:
    response = Response(
        orjson.dumps(error_body(error.code, error.message)),
        status_code=error.status,
        media_type="application/json",
    )
    # Header values may echo client input (an eventId): never let an unencodable one turn into a 500.
    response.raw_headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
        for name, value in error.headers.items()
    )
    return response


async def gateway_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return http_error_response(exc)


def ws_error_response(error: GatewayError) -> dict[str, Any]:
    """The `response` of a `universal.created` frame carrying a gateway error (protocol.md §6)."""
    return {"success": False, "errors": [{"code": error.code, "message": error.message}]}


def stream_error_event(error: GatewayError) -> bytes:
    """The one explicit SSE event that ends an interrupted stream over HTTP (never a fake [DONE])."""
    return (
        b"event: error\ndata: "
        + orjson.dumps({"error": {"code": error.code, "message": error.message}})
        + b"\n\n"
    )
