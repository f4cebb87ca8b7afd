"""The `/v1` entry: gateway HTTP traffic is served here, before FastAPI's middleware, routing and
dependency solving (a third of the CPU of a proxied request in profiles). Everything else (the
WebSocket sessions on the same paths, the management API, docs, health) goes on to FastAPI.

So for `/v1` HTTP traffic no FastAPI exception handler runs: errors are encoded in `http.serve`.
The FastAPI routes for these paths exist for the OpenAPI page and call the same `serve`.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.transports.http import provider_request, serve, universal_request

_UNIVERSAL_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)/?$")
_PROVIDER_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)/([^/]+)/(.*)$")


async def serve_gateway_path(scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve `/v1/…` gateway traffic directly. False: not a gateway path this handles; nothing
    was read, so the caller passes the request on."""
    path = scope["path"]
    provider = _PROVIDER_PATH.match(path)
    universal = None if provider else _UNIVERSAL_PATH.match(path)
    if provider is None and (universal is None or scope["method"] != "POST"):
        return False
    gauge = scope["app"].state.metrics.in_flight
    gauge.inc()
    try:
        if provider is not None:
            args = provider.groups()
            await serve(
                scope, receive, send, lambda: provider_request(scope, receive, *args), with_step=False
            )
        else:
            assert universal is not None
            ids = universal.groups()
            await serve(scope, receive, send, lambda: universal_request(scope, receive, *ids), with_step=True)
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
        await super().__call__(scope, receive, send)
