"""Span data as an OTLP/HTTP JSON body, in the OTLP spec's JSON mapping: trace and span ids as
hex (not protobuf JSON's base64), enums as integers, 64-bit integers as strings. The OpenTelemetry
Python packages have no OTLP/JSON encoder, and converting the protobuf messages with
`google.protobuf.json_format` costs ~1 ms a span and still needs the ids rewritten.

The body is written as bytes, not built as a document for `orjson.dumps`: a document is ~45 dicts
and lists a span (one per attribute and per attribute value), and in the gateway that churn of
tracked containers set off the cycle collector often enough to cost ~4x the encoding itself
(bench/bench_otel.py). Bytes are not tracked; orjson still escapes every string (keys, values,
names, status messages), so the output is the same JSON. Each span is written when it reaches its
exporter's batch (`JsonBatch.add`); the batch keeps bytes, which the cycle collector never walks,
and its body is one join. A span's `common` attributes are written once per distinct tuple."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson

from app.otel.attributes import COMMON_KEYS, Common
from app.otel.encode import SCOPE_NAME, SCOPE_VERSION, SpanData

_CLIENT = 3  # SPAN_KIND_CLIENT
_ERROR = 2  # STATUS_CODE_ERROR
_dumps = orjson.dumps
_SCOPE = _dumps({"name": SCOPE_NAME, "version": SCOPE_VERSION})
_UNSET = b'{"code":0}'
_TRUE, _FALSE = b'{"boolValue":true}', b'{"boolValue":false}'


class JsonBatch:
    """Spans for one OTLP/JSON export, written as they come."""

    __slots__ = ("_resource", "_spans")

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self._resource = resource
        self._spans: list[bytes] = []

    def __len__(self) -> int:
        return len(self._spans)

    def add(self, data: SpanData) -> None:
        self._spans.append(_span(data))

    def body(self) -> bytes:
        return b"".join(
            (
                b'{"resourceSpans":[{"resource":{"attributes":[',
                _attributes(self._resource.items()),
                b']},"scopeSpans":[{"scope":',
                _SCOPE,
                b',"spans":[',
                b",".join(self._spans),
                b"]}]}]}",
            )
        )


@lru_cache(maxsize=1024)  # distinct gateway/model/status tuples; the bound is for the rest
def _common(values: Common) -> bytes:
    return _attributes((k, v) for k, v in zip(COMMON_KEYS, values, strict=True) if v is not None)


def _span(data: SpanData) -> bytes:
    parent = b',"parentSpanId":"%016x"' % data.parent_span_id if data.parent_span_id is not None else b""
    state = b',"traceState":' + _dumps(data.trace_state) if data.trace_state else b""
    status = b'{"code":%d,"message":%b}' % (_ERROR, _dumps(data.error)) if data.error is not None else _UNSET
    return (
        b'{"traceId":"%032x","spanId":"%016x"%b%b,"flags":%d,"name":%b,"kind":%d,'
        b'"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[%b],"status":%b}'
        % (
            data.trace_id,
            data.span_id,
            parent,
            state,
            data.flags,
            _dumps(data.name),
            _CLIENT,
            data.start_ns,
            data.end_ns,
            # Neither part is ever empty: common has the operation, attributes the log id.
            _common(data.common) + b"," + _attributes(data.attributes.items()),
            status,
        )
    )


def _attributes(items: Iterable[tuple[str, Any]]) -> bytes:
    return b",".join([b"%b%b}" % (_key(key), _any_value(value)) for key, value in items])


@lru_cache(maxsize=4096)  # the fixed names and each gateway's metadata keys
def _key(key: str) -> bytes:
    return b'{"key":%b,"value":' % _dumps(key)


def _any_value(value: Any) -> bytes:
    if isinstance(value, str):
        return b'{"stringValue":%b}' % _dumps(value)
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, int):
        return b'{"intValue":"%d"}' % value  # int64 is a string in OTLP/JSON
    if isinstance(value, float):
        return b'{"doubleValue":%b}' % _dumps(value)
    if isinstance(value, list | tuple):
        return b'{"arrayValue":{"values":[%b]}}' % b",".join([_any_value(item) for item in value])
    return b'{"stringValue":%b}' % _dumps(str(value))
