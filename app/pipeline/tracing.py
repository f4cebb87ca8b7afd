"""Where a step's span begins: the trace headers that name its parent, and the span itself when
someone would receive it (app/otel/tracer.py)."""

from __future__ import annotations

from app.db.otel_exporters import ExporterConfig
from app.otel.context import TRACE_HEADERS
from app.otel.encode import OpenSpan
from app.otel.tracer import Tracer
from app.pipeline.step import StepRun


def trace_headers(pairs: list[tuple[str, str]]) -> dict[str, str] | None:
    """The trace headers among a request's (lower-cased) header pairs; None when there are none."""
    found = None
    for name, value in pairs:
        if name in TRACE_HEADERS:
            if found is None:
                found = {}
            found[name] = value
    return found


def open_session_span(
    tracer: Tracer,
    exporters: tuple[ExporterConfig, ...],
    headers: dict[str, str] | None,
    url: str | None,
) -> OpenSpan | None:
    """A realtime session's one span, parented by its handshake's trace headers."""
    if not exporters and not tracer.has_server_exporter:
        return None
    return tracer.open(exporters, headers, url)


def open_span(tracer: Tracer, run: StepRun, url: str | None) -> OpenSpan | None:
    """A universal step (over HTTP or a WebSocket frame) may carry its own `traceparent` in its
    `headers`; it wins over the request's."""
    if not run.gateway.otel and not tracer.has_server_exporter:
        return None  # the common case: no exporter, no span, nothing else done
    headers = run.request.trace_headers
    if run.request.request_type in ("universal", "websocket"):
        own = trace_headers([(name.lower(), value) for name, value in run.step.headers])
        if own is not None:
            headers = own
    span = tracer.open(run.gateway.otel, headers, url, run.request.trace_id)
    if span is not None:
        run.traceparent = span.traceparent
        run.request.trace_id = span.trace_id  # the request's later steps share its trace
    return span
