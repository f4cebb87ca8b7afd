"""The `/v1` entry: gateway HTTP traffic is served here, before FastAPI's middleware, routing and
dependency solving (a third of the CPU of a proxied request in profiles). Everything else (the
WebSocket sessions on the same paths, the management API, docs, health) goes on to FastAPI.

So for `/v1` HTTP traffic no FastAPI exception handler runs: errors are encoded in `http.serve`.
The FastAPI routes for these paths exist for the OpenAPI page and call the same `serve`.

Paths are matched on the path as the client sent it (`raw_path`, percent-encoded), never on the
decoded one: an encoded `%2F`, `%23` or `%3F` must not become a `/`, `#` or `?` of the upstream
URL. Only the account, gateway and provider segments are decoded (and then checked as ids); the
endpoint goes to the pipeline as it was sent.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.core.errors import MalformedRequest
from app.pipeline.types import GatewayRequest
from app.transports.common import sent_path
from app.transports.http import Build, provider_request, serve, universal_request
from app.transports.rest import serve_rest_path

_UNIVERSAL_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)/?$")
_PROVIDER_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)/([^/]+)/(.*)$")


def _decoded(segment: str) -> str:
    return unquote(segment) if "%" in segment else segment


async def _refused() -> GatewayRequest:
    raise MalformedRequest("Invalid gateway path")


def _build(scope: Scope, receive: Receive) -> tuple[Build, bool] | None:
    """What serves this path (and whether its answer carries `cf-aig-step`); None: not ours."""
    path = sent_path(scope)
    provider = _PROVIDER_PATH.match(path)
    if provider is not None:
        account, gateway, slug, endpoint = provider.groups()
        ids = (_decoded(account), _decoded(gateway), _decoded(slug))
        return (lambda: provider_request(scope, receive, *ids, endpoint)), False
    universal = _UNIVERSAL_PATH.match(path)
    if universal is not None and scope["method"] == "POST":
        account, gateway = universal.groups()
        return (lambda: universal_request(scope, receive, _decoded(account), _decoded(gateway))), True
    if "%" in path:  # FastAPI routes on the decoded path, which may have another shape: refuse
        return _refused, False
    return None


async def serve_gateway_path(scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve `/v1/…` gateway traffic directly. False: not a gateway path this handles; nothing
    was read, so the caller passes the request on."""
    served = _build(scope, receive)
    if served is None:
        return False
    build, with_step = served
    gauge = scope["app"].state.metrics.in_flight
    gauge.inc()
    try:
        await serve(scope, receive, send, build, with_step=with_step)
    finally:
        gauge.dec()
    return True


class GatewayAPI(FastAPI):
    """FastAPI, with gateway traffic (`/v1/…` HTTP) served first, by `serve_gateway_path`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scope["app"] = self
            if await serve_gateway_path(scope, receive, send):
                return
        elif scope["type"] == "http" and scope["path"].startswith("/client/v4/accounts/"):
            scope["app"] = self  # the REST inference paths; the management API goes on to FastAPI
            if await serve_rest_path(scope, receive, send):
                return
        await super().__call__(scope, receive, send)
