"""Finished steps as OpenTelemetry SDK spans, and spans as OTLP/HTTP bodies.

Protobuf comes from the SDK's OTLP encoder. The OpenTelemetry Python packages have no OTLP/JSON
encoder, so `content_type: "json"` is our small writer over the same SDK span data, in the OTLP
spec's JSON mapping: trace and span ids as hex, enums as integers, 64-bit integers as strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from app.logs.record import LogRecord
from app.otel.attributes import span_attributes, span_name
from app.otel.context import SpanIds

SCOPE = InstrumentationScope("aigw", "0.1.0")


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
    """OTLP/JSON written straight from the SDK's span data: building the protobuf message and
    converting it (json_format) cost ~400 µs a span, this ~10 µs (bench/bench_otel.py)."""
    groups: dict[int, tuple[Resource, list[dict[str, Any]]]] = {}
    for span in spans:
        resource = span.resource
        groups.setdefault(id(resource), (resource, []))[1].append(_json_span(span))
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(resource.attributes)},
                "scopeSpans": [{"scope": {"name": SCOPE.name, "version": SCOPE.version}, "spans": encoded}],
            }
            for resource, encoded in groups.values()
        ]
    }
    return orjson.dumps(document)


def _json_span(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    out: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": span.kind.value + 1,  # the API's enum starts at INTERNAL = 0, OTLP's at UNSPECIFIED
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "attributes": _json_attributes(span.attributes),
        "status": {"code": span.status.status_code.value, **_message(span.status.description)},
    }
    parent = span.parent
    # The OTLP span flags: 0x100 "is-remote known", 0x200 "parent is remote".
    out["flags"] = 0x100 | (0x200 if parent is not None and parent.is_remote else 0)
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
    if context.trace_state:
        out["traceState"] = context.trace_state.to_header()
    return out


def _message(description: str | None) -> dict[str, str]:
    return {"message": description} if description else {}


def _json_attributes(attributes: Any) -> list[dict[str, Any]]:
    return [{"key": key, "value": _any_value(value)} for key, value in (attributes or {}).items()]


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in OTLP/JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any_value(item) for item in value]}}
    return {"stringValue": str(value)}
