"""Prometheus metrics (`GET /metrics`). One registry per app, not the library's global one, so
several apps in one process (tests) never share counters.

With `aigw serve --workers N` the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start, so prometheus_client keeps every value in a per-process file there, and
`/metrics` (whichever worker answers) sums the files of all workers. Counters and histograms keep
the counts of workers that exited; the live gauges drop them (the supervisor marks a worker dead
when it exits, app/server/graceful.py). Gauges read from process state (queue depth, open sockets) are
written to the files every `REFRESH_S` seconds and by the worker answering a scrape."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
REFRESH_S = 1.0
# livesum: the sum over running workers (what is in the process now); sum: over every worker since
# the server started (a running total a process keeps, such as rows it dropped).
GaugeMode = Literal["livesum", "sum"]


class Observed(Protocol):
    """What a finished request's log record tells the metrics (structural: no import of `logs`)."""

    account_id: str
    gateway_id: str
    provider: str
    status_code: int | None
    cached: bool
    ttfb_ms: int | None


def multiprocess_mode() -> bool:
    """True when prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR: it decides once, when
    it is imported, from the environment."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


@dataclass(frozen=True, slots=True)
class _Children:
    """The labelled metrics one kind of log record updates."""

    requests: Counter
    cache_hits: Counter | None
    upstream_latency: Histogram | None


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[str, str, str, int | None, bool], _Children] = {}
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
            "aigw_in_flight_requests", "HTTP gateway requests being served", registry=self.registry,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self._watched: list[tuple[Gauge, Callable[[], float]]] = []
        self._refresher: asyncio.Task[None] | None = None
        self._scrape_registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess:
            # Reads every worker's file at each scrape; this process's own registry is not rendered.
            MultiProcessCollector(self._scrape_registry)

    def watch(
        self, name: str, documentation: str, read: Callable[[], float], mode: GaugeMode = "livesum"
    ) -> None:
        """A gauge read from process state (queue depth, open sockets, dropped rows): at scrape time
        in one process; with several workers, written to the shared files (see `refresh`)."""
        gauge = Gauge(name, documentation, registry=self.registry, multiprocess_mode=mode)
        if self.multiprocess:
            self._watched.append((gauge, read))
        else:
            gauge.set_function(read)

    def observe(self, record: Observed) -> None:
        # The labelled children are looked up once per label set: `labels()` (validation, a lock,
        # string building) cost more than the increments themselves on the request path.
        key = (record.account_id, record.gateway_id, record.provider, record.status_code, record.cached)
        children = self._children.get(key)
        if children is None:
            gateway = f"{record.account_id}/{record.gateway_id}"
            status = str(record.status_code) if record.status_code is not None else "error"
            children = self._children[key] = _Children(
                self.requests.labels(gateway, record.provider, status),
                self.cache_hits.labels(gateway) if record.cached else None,
                None if record.cached else self.upstream_latency.labels(record.provider),
            )
        children.requests.inc()
        if children.cache_hits is not None:
            children.cache_hits.inc()
        elif children.upstream_latency is not None and record.ttfb_ms is not None:
            children.upstream_latency.observe(record.ttfb_ms / 1000)

    def observe_gateway_latency(self, seconds: float) -> None:
        self.gateway_latency.observe(seconds)

    def refresh(self) -> None:
        """Writes the watched gauges' current values to this worker's file (multi-process mode)."""
        for gauge, read in self._watched:
            gauge.set(read())

    def start(self) -> None:
        """In multi-process mode, refresh the watched gauges every REFRESH_S seconds, so a scrape
        answered by another worker sees this one's values at most that old."""
        if self._watched and self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="aigw-metrics-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        self.refresh()  # the final values (rows dropped while the log queue drained)

    async def _refresh_forever(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(REFRESH_S)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        self.refresh()
        return generate_latest(self._scrape_registry)


class NullMetrics:
    """Counts nothing: for a pipeline built without a metrics endpoint (unit tests, tools)."""

    def observe(self, record: Observed) -> None:
        return None

    def observe_gateway_latency(self, seconds: float) -> None:
        return None
