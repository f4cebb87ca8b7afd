"""The REST surface, `/client/v4/accounts/{acct}/ai/…`: Cloudflare's inference API on its API host.

Served like the `/v1` traffic, before FastAPI's routing (`asgi.py` hands these paths here first),
through the same `http.serve`: only the building of the request, the shaping of the answer
(`pipeline/rest.py`) and the v4 error envelope differ. Everything else under `/client/v4` (the
management API) goes on to FastAPI. The routes at the bottom exist for the OpenAPI page.

The gateway is the `cf-aig-gateway-id` header's (`default` without it). A `run` token is always
required, in `cf-aig-authorization`, `Authorization` or `x-api-key` (that order wins); none of
them is forwarded, so the provider credential comes from `cf-aig-provider-key` or a stored key.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import APIRouter
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.core.errors import GatewayError
from app.pipeline.options import split_headers
from app.pipeline.rest import RestCalls, RestKind, RestRequest, shape_rest_result
from app.pipeline.rest_admission import check_rest_token, rest_token
from app.pipeline.rest_models import model_list
from app.pipeline.run import Pipeline
from app.pipeline.types import GatewayResult, Options
from app.transports.common import check_ids, header_pairs, sent_path
from app.transports.encode import error_headers
from app.transports.http import read_body, request_id_of, serve

_V4_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "success": {"type": "boolean"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                        },
                    },
                    "messages": {"type": "array"},
                    "result": {"nullable": True},
                },
            }
        }
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The provider's answer (a body, or an event stream)",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    **{
        status: {"description": why, **_V4_ERROR}
        for status, why in (
            (400, "2001 unknown gateway, 2008, 2010 malformed, 2040, 2042 no provider credential"),
            (401, "10000 missing or invalid token; 2009 the provider rejected the credential"),
            (403, "10001 token without `run` here"),
            (404, "7003 model not found"),
            (413, "2011 body too large"),
            (429, "2003 rate limit"),
            (502, "2005 no response"),
            (503, "2014 unavailable"),
            (504, "2012 timeout"),
        )
    },
    "default": {"description": "Any other status: the provider's own error, passed through"},
}
router = APIRouter(prefix="/client/v4/accounts/{account_id}/ai", tags=["rest"], responses=_RESPONSES)

_REST_PATH = re.compile(r"^/client/v4/accounts/([^/]+)/ai/(run|run/.+|v1/[a-z/]+?)/?$")
_KINDS: dict[str, RestKind] = {
    "run": "run",
    "v1/chat/completions": "chat",
    "v1/responses": "responses",
    "v1/messages": "messages",
    "v1/embeddings": "embeddings",
}
# Never forwarded: the gateway token's places, hop-by-hop headers, and what the client sets itself.
_NOT_FORWARDED = frozenset(
    {
        "authorization", "x-api-key", "host", "connection", "keep-alive", "transfer-encoding", "te",
        "trailer", "upgrade", "proxy-authorization", "proxy-connection", "content-length",
        "accept-encoding",
    }
)  # fmt: skip
_CALLS = RestCalls()  # stateless; `dynamic/…` models go to the route executor (pipeline/rest.py)


def v4_error_body(error: GatewayError) -> bytes:
    return orjson.dumps(
        {
            "success": False,
            "errors": [{"code": error.code, "message": error.message}],
            "messages": [],
            "result": None,
        }
    )


def rest_error_response(error: GatewayError) -> Response:
    response = Response(v4_error_body(error), status_code=error.status, media_type="application/json")
    response.raw_headers.extend(error_headers(error))
    return response


async def run_rest(pipeline: Pipeline, request: RestRequest) -> GatewayResult:
    result = await pipeline.run(request)
    assert request.plan is not None
    try:
        return shape_rest_result(request.plan, result)
    except GatewayError:
        if result.stream is not None:
            await result.stream.aclose()
        raise


@dataclass(frozen=True, slots=True)
class _Admitted:
    gateway_id: str
    options: Options
    forward: list[tuple[str, str]]  # headers for the provider
    user_agent: str | None
    content_type: str | None


async def _admitted(scope: Scope, account_id: str) -> _Admitted:
    """What an authenticated REST request says in its headers (10000 / 10001 / 2010 otherwise)."""
    pairs = header_pairs(scope)
    named = dict(reversed(pairs))  # the first of a repeated header, as `header()` reads it
    gateway_id = named.get("cf-aig-gateway-id") or "default"
    check_ids(account_id, gateway_id)
    given = named.get("cf-aig-authorization")
    token = rest_token(given, named.get("authorization"), named.get("x-api-key"))
    if token is not None and given is None:
        # The pipeline sees the token where it looks for one (a default gateway is made with it).
        pairs = [*pairs, ("cf-aig-authorization", token)]
    options, forward = split_headers(pairs)  # 2010 on a bad `cf-aig-*` value, before the token
    state = scope["app"].state
    await check_rest_token(state.config_cache, state.settings.admin_token, token, account_id, gateway_id)
    kept = [(n, v) for n, v in forward if n.lower() not in _NOT_FORWARDED]
    return _Admitted(gateway_id, options, kept, named.get("user-agent"), named.get("content-type"))


async def rest_request(
    scope: Scope, receive: Receive, account_id: str, kind: RestKind, path_model: str | None = None
) -> RestRequest:
    admitted = await _admitted(scope, account_id)
    body = await read_body(scope, receive, scope["app"].state.settings.max_body_bytes)
    steps, plan = _CALLS.steps(kind, body, admitted.forward, path_model)
    return RestRequest(
        account_id, admitted.gateway_id, "rest", steps, admitted.options, user_agent=admitted.user_agent,
        request_content_type=admitted.content_type, authenticated=True, require_credential=True, plan=plan,
    )  # fmt: skip


async def serve_models(scope: Scope, receive: Receive, send: Send, account_id: str) -> None:
    """`GET /ai/v1/models`: the models this gateway knows by price, under their REST names, and
    `dynamic/{name}` for each deployed route of the selected gateway."""
    try:
        admitted = await _admitted(scope, account_id)
        names = await scope["app"].state.routes.deployed_names(account_id, admitted.gateway_id)
        routed = [
            {"id": f"dynamic/{name}", "object": "model", "created": 0, "owned_by": "dynamic"}
            for name in names
        ]
        body = orjson.dumps({"object": "list", "data": model_list() + routed})
        response = Response(body, media_type="application/json")
    except GatewayError as error:
        response = rest_error_response(error)
    response.raw_headers.append((b"cf-aig-request-id", request_id_of(None).encode()))
    await response(scope, receive, send)


def _route(scope: Scope) -> tuple[str, str, str | None] | None:
    """(account, endpoint, `{model}` of `/ai/run/{model}`) of a REST inference path, else None."""
    matched = _REST_PATH.match(sent_path(scope))
    if matched is None:
        return None
    account, endpoint = matched.groups()
    account = unquote(account) if "%" in account else account
    if endpoint.startswith("run/"):
        return account, "run_model", unquote(endpoint[4:])  # `%2F` in the model is decoded once
    return account, endpoint, None


async def serve_rest_path(scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve a REST inference call directly. False: not one of its paths (nothing was read)."""
    routed = _route(scope)
    if routed is None:
        return False
    account, endpoint, path_model = routed
    method = scope["method"]
    if endpoint == "v1/models" and method == "GET":
        await serve_models(scope, receive, send, account)
        return True
    kind = "run_model" if path_model is not None else _KINDS.get(endpoint)
    if kind is None or method != "POST":
        return False  # FastAPI answers it (404 / 405 in the v4 envelope)
    gauge = scope["app"].state.metrics.in_flight
    gauge.inc()
    try:
        await serve(
            scope, receive, send, lambda: rest_request(scope, receive, account, kind, path_model),
            with_step=False, run=run_rest, encode_error=rest_error_response,
        )  # fmt: skip
    finally:
        gauge.dec()
    return True


class _RestServed(Response):
    """What the routes below return: the request served as `serve_rest_path` serves it."""

    def __init__(self, build: Callable[[Scope, Receive], Awaitable[RestRequest]]) -> None:
        self._build = build

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await serve(
            scope, receive, send, lambda: self._build(scope, receive), with_step=False,
            run=run_rest, encode_error=rest_error_response,
        )  # fmt: skip


def _openapi_body(example: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"example": example}}}}


_HEADERS_DOC = (
    " The gateway is `cf-aig-gateway-id` (default `default`); a `run` token goes in `Authorization`,"
    " `x-api-key` or `cf-aig-authorization`; the provider key in `cf-aig-provider-key` (else the"
    " gateway's stored key). Errors use the v4 envelope."
)
_CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def _post(path: str, kind: RestKind, summary: str, example: dict[str, Any]) -> None:
    async def handler(account_id: str) -> Response:
        return _RestServed(lambda scope, receive: rest_request(scope, receive, account_id, kind))

    handler.__name__ = f"rest_{kind}"
    router.post(
        path, summary=summary, description=summary + "." + _HEADERS_DOC, openapi_extra=_openapi_body(example)
    )(handler)


_post(
    "/run", "run", "Run a model: {model, input, provider?}", {"model": "openai/gpt-4o-mini", "input": _CHAT}
)
_post("/v1/chat/completions", "chat", "OpenAI chat completions, for every provider", _CHAT)
_post(
    "/v1/responses",
    "responses",
    "OpenAI Responses (openai, workers-ai)",
    {"model": "openai/gpt-4o-mini", "input": "Hi"},
)
_post(
    "/v1/messages", "messages", "Anthropic Messages",
    {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 64, "messages": _CHAT["messages"]},
)  # fmt: skip
_post(
    "/v1/embeddings",
    "embeddings",
    "OpenAI embeddings",
    {"model": "openai/text-embedding-3-small", "input": "Hi"},
)


@router.post(
    "/run/{model:path}",
    summary="Run a Workers AI model",
    description="The body is the model's input (`@cf/…` or `@hf/…` models; `/` may be sent as `%2F`)."
    + _HEADERS_DOC,
    openapi_extra=_openapi_body({"prompt": "Tell me a joke"}),
)
async def rest_run_model(account_id: str, model: str) -> Response:
    return _RestServed(lambda scope, receive: rest_request(scope, receive, account_id, "run_model", model))


@router.get("/v1/models", summary="The models this gateway can price, under their REST names")
async def rest_models(account_id: str) -> Response:
    class _Models(Response):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await serve_models(scope, receive, send, account_id)

    return _Models()
