"""Trace context in and out (pure): the parent a client names in W3C `traceparent` / `tracestate`,
or in Cloudflare's `cf-aig-otel-trace-id` / `cf-aig-otel-parent-span-id`, and the `traceparent`
the gateway answers with."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
TRACE_HEADERS = frozenset({"traceparent", "tracestate", "cf-aig-otel-trace-id", "cf-aig-otel-parent-span-id"})
SAMPLED = 0x01


@dataclass(frozen=True, slots=True)
class Parent:
    trace_id: int
    span_id: int
    flags: int = SAMPLED
    tracestate: str | None = None


def traceparent(trace_id: int, span_id: int, parent: Parent | None) -> str:
    """The `traceparent` naming a span (the parent's sampling flags, else sampled)."""
    flags = parent.flags if parent is not None else SAMPLED
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def parse_parent(headers: Mapping[str, str]) -> Parent | None:
    """The parent named by the (lower-cased) trace headers; None when absent or malformed (a bad
    header starts a new trace rather than failing the request, as W3C Trace Context asks)."""
    header = headers.get("traceparent")
    if header is not None:
        match = _TRACEPARENT.match(header.strip().lower())
        if match is not None and match.group(1) != "ff":
            version, trace_hex, span_hex, flags_hex, rest = match.groups()
            if not (version == "00" and rest) and _nonzero(trace_hex) and _nonzero(span_hex):
                state = headers.get("tracestate")
                return Parent(int(trace_hex, 16), int(span_hex, 16), int(flags_hex, 16), state or None)
    trace_hex = headers.get("cf-aig-otel-trace-id", "").strip().lower()
    span_hex = headers.get("cf-aig-otel-parent-span-id", "").strip().lower()
    if _HEX32.match(trace_hex) and _HEX16.match(span_hex) and _nonzero(trace_hex) and _nonzero(span_hex):
        return Parent(int(trace_hex, 16), int(span_hex, 16))
    return None


def _nonzero(hex_id: str) -> bool:
    return hex_id.strip("0") != ""


def new_ids(parent: Parent | None, trace_id: int | None = None) -> tuple[int, int]:
    """(trace id, span id) of a new span: in the parent's trace, else in `trace_id`, else in a new
    one; `random` is enough for ids, as the OpenTelemetry SDK's own generator uses it."""
    if parent is not None:
        trace_id = parent.trace_id
    elif trace_id is None:
        trace_id = random.getrandbits(128) or 1
    return trace_id, random.getrandbits(64) or 1
