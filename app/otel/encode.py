"""Finished steps as span data, and span data as OTLP/HTTP bodies.

A step becomes a `SpanData` once, in the export task: plain fields, no OpenTelemetry SDK span
objects (building a `ReadableSpan` and walking it with the SDK's OTLP encoder cost ~110 µs a
span, bench/bench_otel.py). Protobuf bodies are the `opentelemetry-proto` messages, filled in
place and serialized by protobuf's C backend (`otlp_protobuf.py`); the OpenTelemetry Python
packages have no OTLP/JSON encoder, so JSON is our small writer (`otlp_json.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.trace import TraceState

from app.logs.record import LogRecord
from app.otel.attributes import Attributes, span_attributes, span_name
from app.otel.context import SpanIds

SCOPE_NAME, SCOPE_VERSION = "aigw", "0.1.0"


@dataclass(slots=True)
class FinishedStep:
    """What the request path hands over when a step's row ends: the record and its span's ids and
    times (wall clock, nanoseconds). Everything else is worked out in the export task."""

    record: LogRecord
    ids: SpanIds
    start_ns: int
    end_ns: int
    url: str | None  # the upstream URL, for `server.address`


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


def to_span(step: FinishedStep) -> SpanData:
    record, ids = step.record, step.ids
    attributes = span_attributes(record, urlsplit(step.url).hostname if step.url else None)
    parent = ids.parent
    return SpanData(
        trace_id=ids.trace_id,
        span_id=ids.span_id,
        parent_span_id=parent.span_id if parent is not None else None,
        trace_state=_trace_state(parent.tracestate) if parent is not None else None,
        name=span_name(attributes),
        start_ns=step.start_ns,
        end_ns=step.end_ns,
        attributes=attributes,
        error=None if record.success else (record.error or str(record.status_code))[:256],
    )
