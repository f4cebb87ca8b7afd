"""Spans, from the request path to the collectors, without slowing the request path.

On the request path a step only gets ids (`open`) and, when its row ends, its record is queued
(`OpenSpan.end`: an append to a bounded deque). A background task turns queued steps into span
data (`encode.py`), batches them per exporter and sends each batch (`sender.py`), one send at a time per
exporter, so a collector that is down holds only its own batches back. Whatever a full queue
refuses, or an export finally fails to deliver, is counted in `dropped`. With no exporter for a
gateway (none of its own, no OTEL_* endpoint) nothing is made at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.resources import Resource

from app.db.otel_exporters import ExporterConfig
from app.logs.record import LogRecord
from app.otel.context import Parent, SpanIds, new_span_ids, parse_parent
from app.otel.encode import FinishedStep, SpanData, to_span
from app.otel.otlp_json import json_body
from app.otel.otlp_protobuf import protobuf_body
from app.otel.sender import OtlpSender

logger = logging.getLogger("aigw.otel")

_MAX_CHANNELS = 1024  # distinct exporters remembered; idle ones go first beyond this


@dataclass(slots=True)
class OpenSpan:
    tracer: Tracer
    exporters: tuple[ExporterConfig, ...]
    ids: SpanIds
    url: str | None
    start_ns: int = field(default_factory=time.time_ns)
    started: float = field(default_factory=time.perf_counter)

    def end(self, record: LogRecord) -> None:
        end_ns = self.start_ns + int((time.perf_counter() - self.started) * 1e9)
        self.tracer.submit(FinishedStep(record, self.ids, self.start_ns, end_ns, self.url), self.exporters)


@dataclass(slots=True)
class _Channel:
    """The spans waiting for one exporter, and whether a send to it is under way."""

    pending: list[SpanData] = field(default_factory=list)
    sending: bool = False


class Tracer:
    def __init__(
        self,
        sender: OtlpSender,
        server_exporter: ExporterConfig | None,
        service_name: str,
        *,
        queue_max: int = 10_000,
        batch_max: int = 512,
        flush_interval_s: float = 1.0,
    ) -> None:
        self._sender = sender
        self._server: tuple[ExporterConfig, ...] = (server_exporter,) if server_exporter else ()
        # The SDK's resource, for its standard `telemetry.sdk.*` attributes; read once.
        self._resource = dict(Resource.create({"service.name": service_name}).attributes)
        self._queue: deque[tuple[FinishedStep, tuple[ExporterConfig, ...]]] = deque()
        self._queue_max = queue_max
        self._batch_max = batch_max
        self._interval = flush_interval_s
        self._channels: dict[ExporterConfig, _Channel] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.exported = 0

    # ---- the request path ------------------------------------------------------------------------

    @property
    def has_server_exporter(self) -> bool:
        return bool(self._server)

    def open(
        self,
        exporters: tuple[ExporterConfig, ...],
        parent_headers: Mapping[str, str] | None,
        url: str | None,
        trace_id: int | None = None,
    ) -> OpenSpan | None:
        """A span for a step beginning now, or None when nobody would receive it. Without a
        parent it goes in `trace_id` (the trace of the request's earlier steps) or a new trace."""
        if self._server:
            exporters = exporters + self._server
        if not exporters:
            return None
        parent: Parent | None = parse_parent(dict(parent_headers)) if parent_headers else None
        return OpenSpan(self, exporters, new_span_ids(parent, trace_id), url)

    def submit(self, step: FinishedStep, exporters: tuple[ExporterConfig, ...]) -> None:
        if len(self._queue) >= self._queue_max:
            self.dropped += len(exporters)
            return
        self._queue.append((step, exporters))
        if len(self._queue) >= self._batch_max:
            self._wake.set()

    # ---- the export task -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="otel-export")

    async def stop(self) -> None:
        """Export what is queued (bounded by the sender's timeout), then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drain()
        self._dispatch()
        if self._sends:
            await asyncio.wait(self._sends)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                self._drain()
                self._dispatch()
            except Exception:  # a bug here must not stop tracing for good
                logger.exception("OTel export loop failed")
            await asyncio.sleep(0)

    def _drain(self) -> None:
        """Queued steps as spans, filed under each of their exporters."""
        queue = self._queue
        while queue:
            step, exporters = queue.popleft()
            try:
                span = to_span(step)
            except Exception:
                logger.exception("could not build the span of log %s", step.record.id)
                self.dropped += len(exporters)
                continue
            for exporter in exporters:
                channel = self._channels.get(exporter) or self._new_channel(exporter)
                if len(channel.pending) >= self._queue_max:
                    self.dropped += 1
                else:
                    channel.pending.append(span)

    def _new_channel(self, exporter: ExporterConfig) -> _Channel:
        if len(self._channels) >= _MAX_CHANNELS:
            for key in [k for k, c in self._channels.items() if not c.pending and not c.sending]:
                del self._channels[key]
        channel = self._channels[exporter] = _Channel()
        return channel

    def _dispatch(self) -> None:
        for exporter, channel in self._channels.items():
            if channel.pending and not channel.sending:
                size = self._batch_max
                batch, channel.pending = channel.pending[:size], channel.pending[size:]
                channel.sending = True
                task = asyncio.create_task(self._send(exporter, channel, batch))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    async def _send(self, exporter: ExporterConfig, channel: _Channel, batch: list[SpanData]) -> None:
        try:
            encode = json_body if exporter.content_type == "json" else protobuf_body
            body = encode(batch, self._resource)
            delivered = await self._sender.send(exporter, body)
        except Exception:
            logger.exception("OTLP export to %s failed", exporter.url[:256])
            delivered = False
        finally:
            channel.sending = False
        if delivered:
            self.exported += len(batch)
        else:
            self.dropped += len(batch)
        if channel.pending:
            self._wake.set()  # more waited behind this batch
