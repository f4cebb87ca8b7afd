"""A step's span: the few fields the request path fills (`OpenSpan`), and the span data both
encoders read, worked out from its log row in the export task (`to_span`).

On the request path a span is one object: its ids and times, and, once its row ends, a reference
to the row (`LogRecord`), nothing built from it. No OpenTelemetry SDK span objects: building a
`ReadableSpan` and walking it with the SDK's OTLP encoder cost ~110 µs a span
(bench/bench_otel.py). `SpanData` lives only while its span is encoded: each exporter's batch
keeps bytes (JSON) or protobuf messages, not Python objects the cycle collector would walk."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.trace import TraceState

from app.db.otel_exporters import ExporterConfig
from app.logs.record import LogRecord
from app.otel.attributes import Attributes, Common, span_attributes, span_name
from app.otel.context import Parent, traceparent

SCOPE_NAME, SCOPE_VERSION = "aigw", "0.1.0"


@dataclass(slots=True)
class OpenSpan:
    """A step's span from its start; `end` hands it, with its row, to the export task."""

    submit: Callable[[OpenSpan], None]
    exporters: tuple[ExporterConfig, ...]
    trace_id: int
    span_id: int
    parent: Parent | None
    url: str | None  # the upstream URL, for `server.address`
    start_ns: int = field(default_factory=time.time_ns)  # wall clock, for the span
    started: float = field(default_factory=time.perf_counter)  # monotonic, for its duration
    end_ns: int = 0
    record: LogRecord | None = None

    @property
    def traceparent(self) -> str:
        return traceparent(self.trace_id, self.span_id, self.parent)

    def end(self, record: LogRecord) -> None:
        self.end_ns = self.start_ns + int((time.perf_counter() - self.started) * 1e9)
        self.record = record
        self.submit(self)


@dataclass(slots=True)
class SpanData:
    """One CLIENT span, as both encoders read it. A parent, when there is one, is always remote
    (it came in a request header)."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    trace_state: str | None
    name: str
    start_ns: int
    end_ns: int
    common: Common  # values of attributes.COMMON_KEYS, encoded once per distinct tuple
    attributes: Attributes
    error: str | None  # the status message of a failed step; None: status UNSET

    @property
    def flags(self) -> int:
        # The OTLP span flags: 0x100 "is-remote known", 0x200 "parent is remote".
        return 0x100 | (0x200 if self.parent_span_id is not None else 0)


def _trace_state(header: str | None) -> str | None:
    """The `tracestate` as W3C Trace Context keeps it (invalid entries dropped), via the API's
    parser; None when nothing valid is left."""
    if not header:
        return None
    try:
        return TraceState.from_header([header]).to_header() or None
    except ValueError:
        return None


def to_span(span: OpenSpan, record: LogRecord) -> SpanData:
    common, attributes = span_attributes(record, span.url)
    parent = span.parent
    return SpanData(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=parent.span_id if parent is not None else None,
        trace_state=_trace_state(parent.tracestate) if parent is not None else None,
        name=span_name(str(common[0]), common[1] if isinstance(common[1], str) else None),
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        common=common,
        attributes=attributes,
        error=None if record.success else (record.error or str(record.status_code))[:256],
    )
