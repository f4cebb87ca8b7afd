"""A fake OTLP/HTTP trace collector: records every POST to `/v1/traces` (headers and body), answers
200, or the status set in `status` (a collector that refuses). Decodes both encodings into one
shape, so tests read spans the same way whatever the exporter sent."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.types import Receive, Scope, Send

from tests.support.server_thread import ServerThread


@dataclass
class Export:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def document(self) -> dict[str, Any]:
        """The body as OTLP/JSON (protobuf bodies converted the way the spec's JSON mapping says)."""
        if self.content_type == "application/json":
            document: dict[str, Any] = orjson.loads(self.body)
            return document
        message = ExportTraceServiceRequest.FromString(self.body)
        document = MessageToDict(message, use_integers_for_enums=True)
        for span in _spans_of(document):
            for name in ("traceId", "spanId", "parentSpanId"):
                if name in span:
                    span[name] = base64.b64decode(span[name]).hex()
        return document


def _spans_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span
        for resource in document.get("resourceSpans", ())
        for scope in resource.get("scopeSpans", ())
        for span in scope.get("spans", ())
    ]


def value_of(any_value: dict[str, Any]) -> Any:
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "doubleValue" in any_value:
        return float(any_value["doubleValue"])
    if "boolValue" in any_value:
        return any_value["boolValue"]
    if "arrayValue" in any_value:
        return [value_of(v) for v in any_value["arrayValue"].get("values", ())]
    return None


def attributes_of(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: value_of(a["value"]) for a in item.get("attributes", ())}


@dataclass
class FakeCollector:
    status: int = 200
    exports: list[Export] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self.exports.append(Export(scope["path"], headers, body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def spans(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(span, resource attributes) of every span received so far."""
        with self._lock:
            exports = list(self.exports)
        found = []
        for export in exports:
            for resource in export.document().get("resourceSpans", ()):
                resource_attributes = attributes_of(resource.get("resource", {}))
                for scope in resource.get("scopeSpans", ()):
                    found.extend((span, resource_attributes) for span in scope.get("spans", ()))
        return found

    def wait_for_span(self, log_id: str, timeout_s: float = 8.0) -> tuple[dict[str, Any], dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for span, resource in self.spans():
                if attributes_of(span).get("cf.aig.log_id") == log_id:
                    return span, resource
            time.sleep(0.05)
        raise AssertionError(f"no span for log {log_id} within {timeout_s} s")

    def exports_for(self, marker: str) -> list[Export]:
        with self._lock:
            return [e for e in self.exports if marker.encode() in e.body]


def start_collector() -> tuple[FakeCollector, ServerThread]:
    collector = FakeCollector()
    server = ServerThread(collector, lifespan="off", name="fake-otlp").start()
    return collector, server
