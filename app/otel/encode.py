"""Finished steps as OpenTelemetry SDK spans, and spans as OTLP/HTTP bodies.

Both encodings come from the SDK's OTLP protobuf encoder. There is no OTLP/JSON encoder in the
OpenTelemetry Python packages, so `content_type: "json"` is protobuf's JSON mapping of the same
message with the two changes the OTLP spec asks for: trace and span ids as hex (not base64) and
enums as integers."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from app.logs.record import LogRecord
from app.otel.attributes import span_attributes, span_name
from app.otel.context import SpanIds

SCOPE = InstrumentationScope("aigw", "0.1.0")
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


@dataclass(slots=True)
class FinishedStep:
    """What the request path hands over when a step's row ends: the record and its span's ids and
    times (wall clock, nanoseconds). Everything else is worked out in the export task."""

    record: LogRecord
    ids: SpanIds
    start_ns: int
    end_ns: int
    url: str | None  # the upstream URL, for `server.address`


def _trace_state(header: str | None) -> TraceState | None:
    if not header:
        return None
    try:
        return TraceState.from_header([header])
    except ValueError:
        return None


def to_span(step: FinishedStep, resource: Resource) -> ReadableSpan:
    record, ids = step.record, step.ids
    attributes = span_attributes(record, record.to_row(), urlsplit(step.url).hostname if step.url else None)
    parent = ids.parent
    flags = TraceFlags(parent.flags if parent is not None else TraceFlags.SAMPLED)
    state = _trace_state(parent.tracestate if parent is not None else None)
    context = SpanContext(ids.trace_id, ids.span_id, False, flags, state)
    parent_context = (
        SpanContext(parent.trace_id, parent.span_id, True, flags, state) if parent is not None else None
    )
    status = (
        Status(StatusCode.ERROR, (record.error or str(record.status_code))[:256])
        if not record.success
        else Status(StatusCode.UNSET)
    )
    return ReadableSpan(
        name=span_name(attributes),
        context=context,
        parent=parent_context,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=status,
        start_time=step.start_ns,
        end_time=step.end_ns,
        instrumentation_scope=SCOPE,
    )


def protobuf_body(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def json_body(spans: Sequence[ReadableSpan]) -> bytes:
    document = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _hex_ids(span)
    return orjson.dumps(document)


def _hex_ids(span: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        if name in span:
            span[name] = base64.b64decode(span[name]).hex()
