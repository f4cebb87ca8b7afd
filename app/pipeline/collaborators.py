"""What the pipeline needs from the rest of the server, as small interfaces. The app passes the
real objects (the config cache, the account providers, the log writer, the Prometheus metrics);
a test can pass in-memory ones (tests/pipeline/test_pipeline_unit.py)."""

from __future__ import annotations

from typing import Protocol

from app.auth.principals import TokenLookup
from app.core.metrics import Observed
from app.logs.record import LogRecord
from app.providers.base import Provider
from app.services.config import GatewayConfig


class GatewaySource(TokenLookup, Protocol):
    """Gateways and tokens, as the request path reads them (cached, never a query per request)."""

    async def gateway(self, account_id: str, gateway_id: str) -> GatewayConfig | None: ...

    async def ensure_default_gateway(self, account_id: str) -> GatewayConfig: ...


class ProviderSource(Protocol):
    """Providers by slug (catalog or the account's custom ones) and the gateway's stored keys."""

    async def provider(self, account_id: str, slug: str) -> Provider: ...

    async def stored_credential(
        self, account_id: str, gateway_id: str, provider: Provider, alias: str | None
    ) -> tuple[str, str] | None: ...


class RecordSink(Protocol):
    """Where finished log records go; `put` never waits."""

    def put(self, record: LogRecord) -> None: ...


class PipelineMetrics(Protocol):
    def observe(self, record: Observed) -> None: ...

    def observe_gateway_latency(self, seconds: float) -> None: ...
