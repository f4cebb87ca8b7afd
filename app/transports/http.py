"""HTTP surfaces: the universal endpoint and provider pass-through paths. Each handler only turns
the request into a `GatewayRequest`, runs the pipeline, and encodes the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.core.errors import GatewayError, MalformedRequest, PayloadTooLarge
from app.pipeline.options import split_headers
from app.pipeline.run import Pipeline
from app.pipeline.types import GatewayRequest, GatewayResult, Step
from app.pipeline.universal import parse_universal_body, steps_from_universal
from app.transports.encode import http_error_response, stream_error_event

router = APIRouter(tags=["gateway"])

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# Not forwarded to a provider: hop-by-hop headers, and those the upstream client sets itself.
_NOT_FORWARDED = frozenset(
    {
        "host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-connection", "content-length", "accept-encoding",
    }
)  # fmt: skip
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

UNIVERSAL_BODY_SCHEMA: dict[str, Any] = {
    "description": "One step object, or an array of steps tried in order (a fallback chain).",
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [{"$ref": "#/components/schemas/UniversalStep"}, {
                    "type": "array", "items": {"$ref": "#/components/schemas/UniversalStep"}
                }],
            },
            "example": {
                "provider": "openai",
                "endpoint": "chat/completions",
                "headers": {"Authorization": "Bearer sk-…", "Content-Type": "application/json"},
                "query": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            },
        }
    },
}  # fmt: skip


def check_ids(account_id: str, gateway_id: str) -> None:
    if not _ID.match(account_id) or not _ID.match(gateway_id):
        raise MalformedRequest("Account and gateway ids must match ^[A-Za-z0-9_-]{1,64}$")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 2011 as soon as it passes `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge(f"Request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedRequest("Client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header_pairs(scope: Scope) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]


def _header(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in pairs if key == name), None)


async def run_universal(scope: Scope, receive: Receive, account_id: str, gateway_id: str) -> GatewayResponse:
    state = scope["app"].state
    check_ids(account_id, gateway_id)
    pairs = header_pairs(scope)
    options, _ = split_headers(pairs)
    body = await read_body(scope, receive, state.settings.max_body_bytes)
    steps = steps_from_universal(parse_universal_body(body))
    request = GatewayRequest(
        account_id, gateway_id, "universal", steps, options, _header(pairs, "user-agent")
    )
    pipeline: Pipeline = state.pipeline
    return GatewayResponse(await pipeline.run(request), with_step=True)


async def run_provider(
    scope: Scope, receive: Receive, account_id: str, gateway_id: str, provider: str, path: str
) -> GatewayResponse:
    state = scope["app"].state
    check_ids(account_id, gateway_id)
    if not _SLUG.match(provider):
        raise MalformedRequest("Invalid provider slug")
    pairs = header_pairs(scope)
    options, forward = split_headers(pairs)
    body = await read_body(scope, receive, state.settings.max_body_bytes)
    step = Step(
        provider=provider,
        endpoint=path,
        body=body,
        headers=[(n, v) for n, v in forward if n not in _NOT_FORWARDED],
        method=scope["method"],
        query_string=scope["query_string"].decode("latin-1"),
    )
    request = GatewayRequest(
        account_id, gateway_id, "compat" if provider == "compat" else "provider", [step], options,
        user_agent=_header(pairs, "user-agent"), request_content_type=_header(pairs, "content-type"),
    )  # fmt: skip
    pipeline: Pipeline = state.pipeline
    return GatewayResponse(await pipeline.run(request))


# The routes below are what the OpenAPI page shows; traffic is served by `serve_gateway_path`
# before routing. Both call the same two functions above.
@router.post(
    "/v1/{account_id}/{gateway_id}",
    summary="Universal endpoint",
    description="Send one provider request, or an array of them tried in order until one succeeds.",
    openapi_extra={"requestBody": UNIVERSAL_BODY_SCHEMA},
    response_description="The answering provider's response, passed through unchanged.",
)
@router.post("/v1/{account_id}/{gateway_id}/", include_in_schema=False)
async def universal(request: Request, account_id: str, gateway_id: str) -> Response:
    return await run_universal(request.scope, request.receive, account_id, gateway_id)


_PASSTHROUGH_PATH = "/v1/{account_id}/{gateway_id}/{provider}/{path:path}"


@router.post(
    _PASSTHROUGH_PATH,
    summary="Provider pass-through",
    description="The provider's own API (any method): method, query, headers and body are forwarded as "
    "they are (minus cf-aig-* settings), and the response or stream comes back unchanged.",
)
@router.api_route(
    _PASSTHROUGH_PATH, methods=[m for m in _ALL_METHODS if m != "POST"], include_in_schema=False
)
async def provider_passthrough(
    request: Request, account_id: str, gateway_id: str, provider: str, path: str
) -> Response:
    return await run_provider(request.scope, request.receive, account_id, gateway_id, provider, path)


logger = logging.getLogger("aigw.http")
_UNIVERSAL_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)/?$")
_PROVIDER_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)/([^/]+)/(.*)$")


async def serve_gateway_path(scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve `/v1/…` gateway traffic directly, before the framework's middleware, routing and
    dependency solving (a third of the CPU of a proxied request in profiles). False: not a
    gateway path this handles; nothing was read, so the caller passes the request on."""
    path = scope["path"]
    match = _PROVIDER_PATH.match(path)
    universal = None if match else _UNIVERSAL_PATH.match(path)
    if match is None and (universal is None or scope["method"] != "POST"):
        return False
    gauge = scope["app"].state.metrics.in_flight
    gauge.inc()
    try:
        await _serve(scope, receive, send, path, match, universal)
    finally:
        gauge.dec()
    return True


async def _serve(
    scope: Scope,
    receive: Receive,
    send: Send,
    path: str,
    match: re.Match[str] | None,
    universal: re.Match[str] | None,
) -> None:
    try:
        if match is not None:
            response: Response = await run_provider(scope, receive, *match.groups())
        else:
            assert universal is not None
            response = await run_universal(scope, receive, *universal.groups())
    except GatewayError as error:
        response = http_error_response(error)
    except Exception:  # last resort: a bug must still answer, and be logged
        logger.exception("unhandled error on %s", path)
        response = http_error_response(GatewayError("Internal error"))
        response.status_code = 500
    await response(scope, receive, send)


def result_headers(result: GatewayResult, with_step: bool) -> list[tuple[bytes, bytes]]:
    meta = result.meta
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in result.headers]
    headers += [
        (b"cf-aig-log-id", meta.log_id.encode()),
        (b"cf-aig-event-id", meta.event_id.encode("latin-1", "replace")),
        (b"cf-aig-cache-status", meta.cache_status.encode()),
        (
            b"server-timing",
            f"gateway;dur={meta.gateway_ms:.2f}, upstream;dur={meta.upstream_ms:.2f}".encode(),
        ),
    ]
    if with_step:
        headers.append((b"cf-aig-step", str(meta.step).encode()))
    return headers


class GatewayResponse(Response):
    """An ASGI response for a pipeline result: a body, or a stream relayed as it arrives.

    A stream is stopped as soon as the client disconnects (so the upstream call is not left
    running), ends with one explicit error event if the upstream cuts it, and is always closed.
    """

    def __init__(self, result: GatewayResult, with_step: bool = False) -> None:
        # Deliberately not Response.__init__: headers and body are sent as they come.
        self.result = result
        self.with_step = with_step
        self.status_code = result.status
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        result = self.result
        headers = result_headers(result, self.with_step)
        if result.stream is None:
            body = result.body or b""
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": result.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await send({"type": "http.response.start", "status": result.status, "headers": headers})
            relay = asyncio.ensure_future(self._relay(send))
            watch = asyncio.ensure_future(_wait_for_disconnect(receive))
            await asyncio.wait((relay, watch), return_when=asyncio.FIRST_COMPLETED)
            for task in (relay, watch):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await relay
        finally:
            await result.stream.aclose()

    async def _relay(self, send: Send) -> None:
        assert self.result.stream is not None
        try:
            async for chunk in self.result.stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except GatewayError as error:
            await send({"type": "http.response.body", "body": stream_error_event(error), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
