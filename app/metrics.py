"""Prometheus metrics (`GET /metrics`). One registry per app, not the library's global one, so
several apps in one process (tests) never share counters. With several workers each process
reports its own series; scrape each, or sum by instance."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.pipeline.logs import LogRecord

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "aigw_requests", "Provider steps attempted, by gateway, provider and status",
            ["gateway", "provider", "status"], registry=self.registry,
        )  # fmt: skip
        self.cache_hits = Counter(
            "aigw_cache_hits", "Responses served from the cache", ["gateway"], registry=self.registry
        )
        self.upstream_latency = Histogram(
            "aigw_upstream_latency_seconds", "Time to the upstream's first byte", ["provider"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.gateway_latency = Histogram(
            "aigw_gateway_added_latency_seconds", "Time the gateway itself added before the response started",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "aigw_in_flight_requests", "HTTP gateway requests being served", registry=self.registry
        )

    def watch(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (queue depth, open sockets, dropped rows)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def observe(self, record: LogRecord) -> None:
        gateway = f"{record.account_id}/{record.gateway_id}"
        status = str(record.status_code) if record.status_code is not None else "error"
        self.requests.labels(gateway, record.provider, status).inc()
        if record.cached:
            self.cache_hits.labels(gateway).inc()
        elif record.ttfb_ms is not None:
            self.upstream_latency.labels(record.provider).observe(record.ttfb_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
