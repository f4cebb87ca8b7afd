"""Application factory. The lifespan builds every shared object once (one pooled HTTP client, the
database engine, cache, log writer, config directory, pipeline) and puts it on `app.state`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from redis import asyncio as redis_asyncio
from starlette.types import Receive, Scope, Send

from app.api import health
from app.api.docs import install_docs
from app.auth.secretbox import SecretBox
from app.core.errors import GatewayError
from app.core.metrics import Metrics
from app.core.settings import Settings
from app.db.session import create_engine, session_factory
from app.logs.record import LogSink
from app.pipeline.realtime import RealtimeBridge
from app.pipeline.run import Pipeline
from app.services.cache.memory import CacheStore, MemoryCache
from app.services.cache.redis import RedisCache
from app.services.config import Directory
from app.services.invalidation import ConfigInvalidation, ConfigTTL
from app.services.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from app.services.tenants import Tenancy
from app.transports import http as http_transport
from app.transports import realtime as realtime_transport
from app.transports import ws as ws_transport
from app.transports.docs import UniversalStep
from app.transports.encode import gateway_error_handler
from app.upstream.client import UpstreamClient

logger = logging.getLogger("aigw")

DESCRIPTION = """A self-hosted AI gateway, wire-compatible with Cloudflare AI Gateway.

* `POST /v1/{account}/{gateway}`: the universal endpoint (one step or a fallback array).
* `/v1/{account}/{gateway}/{provider}/…`: provider pass-through.
* `/client/v4/accounts/{account}/…`: the management API (v4 envelope).

Per-request settings travel in `cf-aig-*` headers; see the protocol document in the repository.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    # Short TTL until the invalidation subscriber hears Redis, the pub/sub backstop while it does.
    config_ttl = ConfigTTL(settings.config_cache_ttl_s, settings.config_cache_ttl_pubsub_s)
    directory = Directory(sessions, config_ttl)
    sink = LogSink(engine, settings.log_batch_size, settings.log_flush_interval_s, settings.log_queue_max)
    client = UpstreamClient(settings)
    redis = redis_asyncio.from_url(settings.redis_url) if settings.redis_url else None
    cache: CacheStore = RedisCache(redis) if redis is not None else MemoryCache(settings.cache_max_bytes)
    limiter: RateLimiter = (
        RedisRateLimiter(redis, settings.rate_limit_fail_open) if redis is not None else MemoryRateLimiter()
    )
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.directory = directory
    app.state.log_sink = sink
    app.state.cache = cache
    app.state.http_client = client
    app.state.pipeline = Pipeline(settings, client, directory, cache, sink, limiter)
    app.state.secret_box = SecretBox(settings.secret_key)
    app.state.tenancy = Tenancy(sessions, config_ttl, app.state.secret_box)
    app.state.invalidation = invalidation = ConfigInvalidation(
        settings.redis_url, config_ttl, directory, app.state.tenancy
    )
    app.state.pipeline.tenancy = app.state.tenancy
    app.state.ws_sessions = ws_transport.SessionRegistry()
    app.state.metrics = metrics = Metrics()
    app.state.pipeline.metrics = metrics
    metrics.watch("aigw_log_queue_depth", "Log rows waiting to be written", lambda: sink.depth)
    metrics.watch(
        "aigw_logs_dropped",
        "Log rows dropped (queue full or database down)",
        lambda: sink.dropped,
        mode="sum",
    )
    metrics.watch(
        "aigw_open_websockets", "Open universal WebSocket sessions", lambda: len(app.state.ws_sessions)
    )
    app.state.realtime = RealtimeBridge(settings, sink)
    metrics.watch(
        "aigw_config_invalidation_live",
        "1 while config changes arrive over Redis pub/sub (longer config TTL), 0 otherwise",
        lambda: float(config_ttl.live),
    )
    sink.start()
    invalidation.start()
    metrics.start()
    try:
        yield
    finally:
        await invalidation.stop()
        await sink.stop()
        await metrics.stop()
        await client.aclose()
        await engine.dispose()
        if redis is not None:
            await redis.aclose()


def _openapi_with_universal_step(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["UniversalStep"] = UniversalStep.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = schema
    return app.openapi_schema


class GatewayAPI(FastAPI):
    """FastAPI, with gateway traffic (`/v1/…` HTTP) served before the middleware stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scope["app"] = self
            if await http_transport.serve_gateway_path(scope, receive, send):
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = GatewayAPI(
        title="aigw",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.add_exception_handler(GatewayError, gateway_error_handler)
    app.include_router(health.router)
    _include_management(app)
    app.include_router(http_transport.router)
    app.include_router(ws_transport.router)
    app.include_router(realtime_transport.router)
    app.openapi = lambda: _openapi_with_universal_step(app)  # type: ignore[method-assign]
    return app


def _include_management(app: FastAPI) -> None:
    from app.api import analytics, custom_providers, gateways, logs, provider_configs, tokens
    from app.api.envelope import install_management_error_handlers

    app.include_router(gateways.router)
    app.include_router(tokens.router)
    app.include_router(logs.router)
    app.include_router(provider_configs.router)
    app.include_router(custom_providers.router)
    app.include_router(analytics.router)
    install_management_error_handlers(app)


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (used by `aigw serve`, including with several workers)."""
    return create_app(Settings())
