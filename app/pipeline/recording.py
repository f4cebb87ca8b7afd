"""Where every log row of the pipeline is begun and finished, for every kind of request (a body,
a stream, a cache hit, a refused or cancelled one, a realtime session): `Recorder.begin` makes a
`StepLog`, and its `finish` ends the row once, shows it to the metrics, and hands it to the sink
unless the request (`cf-aig-collect-log`) or the gateway turned logging off."""

from __future__ import annotations

from collections.abc import Callable

from app.core.notes import Notes
from app.db.otel_exporters import ExporterConfig
from app.logs.record import LogRecord
from app.otel.encode import OpenSpan
from app.otel.tracer import Tracer
from app.pipeline.collaborators import PipelineMetrics, RecordSink
from app.pipeline.step import StepRun
from app.pipeline.tracing import open_session_span, open_span


class StepLog:
    __slots__ = ("_collect", "_metrics", "_notes", "_sink", "_span", "on_finish", "record")

    def __init__(
        self,
        record: LogRecord,
        notes: Notes,
        collect: bool,
        sink: RecordSink,
        metrics: PipelineMetrics,
        span: OpenSpan | None = None,
    ) -> None:
        self.record = record
        self._span = span
        self._notes = notes
        self._collect = collect
        self._sink = sink
        self._metrics = metrics
        # Runs once when the row ends, before it is shown or written (a spend reservation settles).
        self.on_finish: Callable[[LogRecord], None] | None = None

    @property
    def finished(self) -> bool:
        return self.record.duration_ms is not None

    def finish(self, status: int | None, success: bool, error: str | None = None) -> None:
        """End the row (the first call wins: a stream cut and then closed is logged once)."""
        record = self.record
        if self.finished:
            return
        record.finish(status, success, error)
        if self.on_finish is not None:
            self.on_finish(record)
        record.gateway_notes = self._notes.text()
        self._metrics.observe(record)
        if self._collect:
            self._sink.put(record)
        if self._span is not None:
            self._span.end(record)


class Recorder:
    def __init__(
        self, sink: RecordSink, metrics: PipelineMetrics, body_limit: int, tracer: Tracer | None = None
    ) -> None:
        self._sink = sink
        self._tracer = tracer
        self._metrics = metrics
        self._body_limit = body_limit

    def begin(self, run: StepRun, url: str | None = None) -> StepLog:
        options, request, step = run.options, run.request, run.step
        record = LogRecord(
            id=run.log_id,
            account_id=request.account_id,
            gateway_id=request.gateway_id,
            provider=run.provider.slug,
            path=step.endpoint,
            request_type=request.request_type,
            request_id=request.log_id,
            step=run.index,
            event_id=run.event_id,
            connection_id=request.connection_id,
            user_agent=request.user_agent,
            authenticated=run.authenticated,
            metadata=options.metadata,
            custom_cost=options.custom_cost,
            model_in_path=run.provider.model_in_path,
            keep_payload=options.collect_log_payload is not False,
            body_limit=self._body_limit,
            request_body=step.body,
            request_content_type=next(
                (v for n, v in step.headers if n.lower() == "content-type"), request.request_content_type
            ),
        )
        record.route = run.route
        collect = options.collect_log if options.collect_log is not None else run.gateway.collect_logs
        span = open_span(self._tracer, run, url) if self._tracer is not None else None
        return StepLog(record, run.notes, collect, self._sink, self._metrics, span)

    def open_session_span(
        self, exporters: tuple[ExporterConfig, ...], trace_headers: dict[str, str] | None, url: str
    ) -> OpenSpan | None:
        """The span of a realtime session beginning now, when someone would receive it."""
        if self._tracer is None:
            return None
        return open_session_span(self._tracer, exporters, trace_headers, url)

    def begin_record(self, record: LogRecord, collect: bool, span: OpenSpan | None = None) -> StepLog:
        """A row the caller filled itself (a realtime session, which has no body to read)."""
        return StepLog(record, Notes(), collect, self._sink, self._metrics, span)
