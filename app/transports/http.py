"""HTTP surfaces: the universal endpoint and provider pass-through paths. Each handler only turns
the request into a `GatewayRequest`, runs the pipeline, and encodes the result. Traffic arrives
through `asgi.py`; the routes at the bottom exist for the OpenAPI page."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.core.errors import GatewayError, InternalError, MalformedRequest, PayloadTooLarge
from app.core.ids import new_log_id
from app.pipeline.options import split_headers
from app.pipeline.run import Pipeline
from app.pipeline.tracing import trace_headers
from app.pipeline.types import ComposedStream, GatewayRequest, GatewayResult, ResultStream, Step
from app.pipeline.universal import parse_universal_body, steps_from_universal
from app.transports.common import check_ids, header, header_pairs
from app.transports.composed_sse import send_composed
from app.transports.encode import http_error_response, stream_error_event

router = APIRouter(tags=["gateway"])
logger = logging.getLogger("aigw.http")

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
                "headers": {"Authorization": "Bearer sk-your-key", "Content-Type": "application/json"},
                "query": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            },
        }
    },
}  # fmt: skip


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


async def universal_request(
    scope: Scope, receive: Receive, account_id: str, gateway_id: str
) -> GatewayRequest:
    check_ids(account_id, gateway_id)
    pairs = header_pairs(scope)
    options, _ = split_headers(pairs)
    body = await read_body(scope, receive, scope["app"].state.settings.max_body_bytes)
    steps = steps_from_universal(parse_universal_body(body))
    return GatewayRequest(
        account_id, gateway_id, "universal", steps, options, header(pairs, "user-agent"),
        trace_headers=trace_headers(pairs),
    )  # fmt: skip


async def provider_request(
    scope: Scope, receive: Receive, account_id: str, gateway_id: str, provider: str, path: str
) -> GatewayRequest:
    check_ids(account_id, gateway_id)
    if not _SLUG.match(provider):
        raise MalformedRequest("Invalid provider slug")
    pairs = header_pairs(scope)
    options, forward = split_headers(pairs)
    body = await read_body(scope, receive, scope["app"].state.settings.max_body_bytes)
    step = Step(
        provider=provider,
        endpoint=path,
        body=body,
        headers=[(n, v) for n, v in forward if n not in _NOT_FORWARDED],
        method=scope["method"],
        query_string=scope["query_string"].decode("latin-1"),
    )
    return GatewayRequest(
        account_id, gateway_id, "compat" if provider == "compat" else "provider", [step], options,
        user_agent=header(pairs, "user-agent"), request_content_type=header(pairs, "content-type"),
        trace_headers=trace_headers(pairs),
    )  # fmt: skip


class DisconnectWatch:
    """Cancels the request's task when the client goes away before its response is complete, so
    no upstream call (a body or a stream) is left running for nobody. One task per request."""

    def __init__(self, receive: Receive) -> None:
        self._task = asyncio.current_task()
        self.disconnected = False
        self._watcher = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        """Before the last message of the response: a disconnect after it cancels nothing."""
        self._watcher.cancel()

    async def release(self) -> None:
        """Stop, and wait until the watcher has let go of `receive`, for another listener to take
        it (never two waiting on it at once). Raises `CancelledError` if the client just left."""
        self._watcher.cancel()
        await asyncio.wait((self._watcher,))


Build = Callable[[], Awaitable[GatewayRequest]]
# How a surface runs its request (the REST surface shapes the answer) and encodes its errors.
Runner = Callable[[Pipeline, Any], Awaitable[GatewayResult]]
ErrorEncoder = Callable[[GatewayError], Response]


async def run_pipeline(pipeline: Pipeline, request: GatewayRequest) -> GatewayResult:
    return await pipeline.run(request)


def request_id_of(request: GatewayRequest | None) -> str:
    """`cf-aig-request-id`: the request's first log id, or a fresh ULID when it got none."""
    return request.log_id if request is not None and request.log_id else new_log_id()


async def serve(
    scope: Scope,
    receive: Receive,
    send: Send,
    build: Build,
    *,
    with_step: bool,
    run: Runner = run_pipeline,
    encode_error: ErrorEncoder = http_error_response,
) -> None:
    """Build the request (`build` reads the body), run it, send the answer or the error."""
    watch: DisconnectWatch | None = None
    request: GatewayRequest | None = None
    try:
        request = await build()
        pipeline: Pipeline = scope["app"].state.pipeline
        watch = DisconnectWatch(receive)
        result = await run(pipeline, request)
        await send_result(result, scope, receive, send, watch, with_step, request_id_of(request))
        return
    except GatewayError as error:
        response: Response = encode_error(error)
    except asyncio.CancelledError:
        if watch is None or not watch.disconnected:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
        return  # the client is gone: there is no one to answer
    except Exception:  # last resort: a bug must still answer, and be logged
        logger.exception("unhandled error on %s", scope["path"])
        response = encode_error(InternalError())
    if watch is not None:
        watch.stop()
    response.raw_headers.append((b"cf-aig-request-id", request_id_of(request).encode()))
    await response(scope, receive, send)


def result_headers(result: GatewayResult, with_step: bool, request_id: str) -> list[tuple[bytes, bytes]]:
    meta = result.meta
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in result.headers]
    headers += [
        (b"cf-aig-request-id", request_id.encode()),
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
    if meta.traceparent is not None:  # ours names the gateway's span, not the provider's
        headers = [pair for pair in headers if pair[0] != b"traceparent"]
        headers.append((b"traceparent", meta.traceparent.encode()))
    return headers


async def send_result(
    result: GatewayResult,
    scope: Scope,
    receive: Receive,
    send: Send,
    watch: DisconnectWatch,
    with_step: bool,
    request_id: str,
) -> None:
    """A body in one go; a stream as it arrives, ended with one explicit error event if the upstream
    cuts it, stopped when the client disconnects, and always closed. A relayed stream goes out as
    it came (the watch stops it); one the gateway composed goes through sse-starlette, with pings
    (`composed_sse.py`: it listens for the disconnect itself)."""
    headers = result_headers(result, with_step, request_id)
    if result.stream is None:
        watch.stop()
        body = result.body or b""
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    try:
        if isinstance(result.stream, ComposedStream):
            await watch.release()
            await send_composed(scope, receive, send, result.status, headers, result.stream)
        else:
            await relay_stream(send, result.status, headers, result.stream, watch)
    except OSError:
        pass  # the client's socket broke while we wrote: the stream is closed below
    finally:
        watch.stop()
        await result.stream.aclose()


async def relay_stream(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], stream: ResultStream, watch: DisconnectWatch
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    try:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except GatewayError as error:
        await send({"type": "http.response.body", "body": stream_error_event(error), "more_body": True})
    watch.stop()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class ServedResponse(Response):
    """What the routes below return: the request served by `serve`, as `asgi.py` serves it."""

    def __init__(self, build: Callable[[Scope, Receive], Awaitable[GatewayRequest]], with_step: bool) -> None:
        self._build = build
        self._with_step = with_step

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve(scope, receive, send, lambda: self._build(scope, receive), with_step=self._with_step)


# The routes below are what the OpenAPI page shows; traffic is served by `asgi.serve_gateway_path`
# before routing, through the same `serve`.
@router.post(
    "/v1/{account_id}/{gateway_id}",
    summary="Universal endpoint",
    description="Send one provider request, or an array of them tried in order until one succeeds.",
    openapi_extra={"requestBody": UNIVERSAL_BODY_SCHEMA},
    response_description="The answering provider's response, passed through unchanged.",
)
@router.post("/v1/{account_id}/{gateway_id}/", include_in_schema=False)
async def universal(account_id: str, gateway_id: str) -> Response:
    return ServedResponse(
        lambda scope, receive: universal_request(scope, receive, account_id, gateway_id), with_step=True
    )


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
async def provider_passthrough(account_id: str, gateway_id: str, provider: str, path: str) -> Response:
    return ServedResponse(
        lambda scope, receive: provider_request(scope, receive, account_id, gateway_id, provider, path),
        with_step=False,
    )
