"""One OTLP/HTTP export: a POST of encoded spans, retried a few times on what the OTLP spec calls
retryable (429, 502, 503, 504, or no answer), then given up. Sent with the gateway's upstream
client, so an exporter a tenant configured reaches public addresses only, checked on the address
actually connected to (docs/security.md)."""

from __future__ import annotations

import asyncio
import logging

from app.db.otel_exporters import ExporterConfig
from app.upstream.client import UpstreamClient
from app.upstream.errors import DestinationRefused, UpstreamError

logger = logging.getLogger("aigw.otel")

_RETRYABLE = frozenset({429, 502, 503, 504})
_CONTENT_TYPES = {"json": "application/json", "protobuf": "application/x-protobuf"}
ACCOUNT = "aigw.otel"  # the upstream client's per-account bound: exports share one, apart from tenants


class OtlpSender:
    def __init__(
        self, client: UpstreamClient, *, allow_private: bool, timeout_s: float, attempts: int = 3
    ) -> None:
        self._client = client
        self._allow_private = allow_private
        self._timeout_s = timeout_s
        self._attempts = attempts

    async def send(self, exporter: ExporterConfig, body: bytes) -> bool:
        """True once the collector accepted the batch; False when it finally did not."""
        headers = [*exporter.headers, ("Content-Type", _CONTENT_TYPES[exporter.content_type])]
        delay = 0.5
        for attempt in range(1, self._attempts + 1):
            try:
                status = await asyncio.wait_for(self._post(exporter, headers, body), self._timeout_s)
            except (UpstreamError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, DestinationRefused):
                    break
            else:
                if 200 <= status < 300:
                    return True
                reason = f"HTTP {status}"
                if status not in _RETRYABLE:
                    break
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        logger.warning("OTLP export to %s failed: %s", exporter.url[:256], reason)
        return False

    async def _post(self, exporter: ExporterConfig, headers: list[tuple[str, str]], body: bytes) -> int:
        request = self._client.build(
            "POST", exporter.url, headers, body, account=ACCOUNT,
            tenant_destination=exporter.tenant and not self._allow_private,
        )  # fmt: skip
        response = await self._client.send(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response.status_code
