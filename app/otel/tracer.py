"""Spans, from the request path to the collectors, without slowing the request path.

On the request path a step only gets ids (`open`) and, when its row ends, its span is queued
(`OpenSpan.end`: an append to a bounded deque). A background task wakes `_DRAIN_S` after a span
was queued, or once `_DRAIN_AT` spans wait (one timer per wake, not one per span; an idle tracer
sleeps until a span comes or a batch is due), turns queued spans into span data (`encode.py`)
and writes each into a batch per exporter (`otlp_json.py`, `otlp_protobuf.py`); a batch is sent
(`sender.py`) once it is full or its first span has waited `flush_interval_s`, one send at a time
per exporter, so a collector that is down holds only its own batches back. Draining often means
a finished row is not held by the tracer for long (the log writer lets it go within ~0.2 s):
objects that outlive a few young-generation collections are promoted and make full collections
more frequent, which is a cost every request pays. Whatever a full queue refuses, or an export
finally fails to deliver, is counted in `dropped`. With no exporter for a gateway (none of its
own, no OTEL_* endpoint) nothing is made at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.sdk.resources import Resource

from app.db.otel_exporters import ExporterConfig
from app.otel.context import Parent, new_ids, parse_parent
from app.otel.encode import OpenSpan, SpanData, to_span
from app.otel.otlp_json import JsonBatch
from app.otel.otlp_protobuf import ProtobufBatch
from app.otel.sender import OtlpSender

logger = logging.getLogger("aigw.otel")

_MAX_CHANNELS = 1024  # distinct exporters remembered; idle ones go first beyond this
_DRAIN_S = 0.05  # how long a finished span may wait to be encoded into its batches
_DRAIN_AT = 32  # or how many may wait


class Batch(Protocol):
    def __len__(self) -> int: ...

    def add(self, data: SpanData) -> None: ...

    def body(self) -> bytes: ...


@dataclass(slots=True)
class _Channel:
    """The batches waiting for one exporter: full ones, the one being filled, and whether a send
    to it is under way."""

    full: deque[Batch] = field(default_factory=deque)
    filling: Batch | None = None
    since: float = 0.0  # when the filling batch got its first span (monotonic)
    queued: int = 0  # spans in all of them
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
        self._queue: deque[OpenSpan] = deque()
        self._queue_max = queue_max
        self._batch_max = batch_max
        self._interval = flush_interval_s
        self._drain_s = min(_DRAIN_S, flush_interval_s)
        self._channels: dict[ExporterConfig, _Channel] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._enqueue = self._submit  # bound once: not a new method object per span
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
        parent: Parent | None = parse_parent(parent_headers) if parent_headers else None
        trace_id, span_id = new_ids(parent, trace_id)
        return OpenSpan(self._enqueue, exporters, trace_id, span_id, parent, url)

    def _submit(self, span: OpenSpan) -> None:
        queue = self._queue
        if len(queue) >= self._queue_max:
            self.dropped += len(span.exporters)
            return
        queue.append(span)
        if len(queue) == 1 and self._loop is not None:  # the first since the last drain
            self._loop.call_later(self._drain_s, self._wake.set)
        elif len(queue) == _DRAIN_AT:
            self._wake.set()

    # ---- the export task -------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="otel-export")

    async def stop(self) -> None:
        """Export what is queued (bounded by the sender's timeout), then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drain()
        self._dispatch(flush=True)
        if self._sends:
            await asyncio.wait(self._sends)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_due())
            self._wake.clear()
            try:
                self._drain()
                self._dispatch()
            except Exception:  # a bug here must not stop tracing for good
                logger.exception("OTel export loop failed")

    def _next_due(self) -> float | None:
        """Seconds until a filling batch has waited the flush interval; None: none is filling."""
        since = [c.since for c in self._channels.values() if c.filling is not None and not c.sending]
        if not since:
            return None
        return max(0.0, min(since) + self._interval - time.monotonic())

    def _drain(self) -> None:
        """Queued spans written into the batches of each of their exporters."""
        queue, now = self._queue, time.monotonic()
        while queue:
            span = queue.popleft()
            record, span.record = span.record, None  # let the row go once its span is written
            if record is None:  # never: `end` sets it before queueing
                continue
            try:
                data = to_span(span, record)
            except Exception:
                logger.exception("could not build the span of log %s", record.id)
                self.dropped += len(span.exporters)
                continue
            for exporter in span.exporters:
                self._file(exporter, data, now)

    def _file(self, exporter: ExporterConfig, data: SpanData, now: float) -> None:
        channel = self._channels.get(exporter) or self._new_channel(exporter)
        if channel.queued >= self._queue_max:
            self.dropped += 1
            return
        batch = channel.filling
        if batch is None:
            kind = JsonBatch if exporter.content_type == "json" else ProtobufBatch
            batch = channel.filling = kind(self._resource)
            channel.since = now
        try:
            batch.add(data)
        except Exception:
            logger.exception("could not encode a span for %s", exporter.url[:256])
            self.dropped += 1
            return
        channel.queued += 1
        if len(batch) >= self._batch_max:
            channel.full.append(batch)
            channel.filling = None

    def _new_channel(self, exporter: ExporterConfig) -> _Channel:
        if len(self._channels) >= _MAX_CHANNELS:
            for key in [k for k, c in self._channels.items() if not c.queued and not c.sending]:
                del self._channels[key]
        channel = self._channels[exporter] = _Channel()
        return channel

    def _dispatch(self, *, flush: bool = False) -> None:
        """A send for each idle exporter with a full batch, or one whose first span has waited
        the flush interval (any batch, when flushing)."""
        now = time.monotonic()
        for exporter, channel in self._channels.items():
            if channel.sending:
                continue
            if channel.full:
                batch = channel.full.popleft()
            elif channel.filling is not None and (flush or now - channel.since >= self._interval):
                batch, channel.filling = channel.filling, None
            else:
                continue
            channel.queued -= len(batch)
            channel.sending = True
            task = asyncio.create_task(self._send(exporter, channel, batch))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, exporter: ExporterConfig, channel: _Channel, batch: Batch) -> None:
        try:
            delivered = await self._sender.send(exporter, batch.body())
        except Exception:
            logger.exception("OTLP export to %s failed", exporter.url[:256])
            delivered = False
        finally:
            channel.sending = False
        if delivered:
            self.exported += len(batch)
        else:
            self.dropped += len(batch)
        if channel.full or channel.filling is not None:
            self._wake.set()  # more waited behind this batch: send it, or time it
