"""A request's log record, and the row it becomes (pure: no I/O).

The request path only fills a `LogRecord`; parsing that is needed only for the log (model name,
token usage of a whole JSON body, cost) happens in `to_row`, which the writer calls off the
request path, in batches (`writer.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.providers.cost import CustomCost, cost_of
from app.providers.usage import model_from_request, usage_from_body


@dataclass(frozen=True, slots=True)
class RouteTag:
    """Which dynamic route, version and model element a row belongs to (`element_id` None: the
    row of a route that ended without success)."""

    route_id: str
    route_name: str
    version_id: str
    element_id: str | None


@dataclass(slots=True)
class LogRecord:
    id: str
    account_id: str
    gateway_id: str
    provider: str
    path: str
    request_type: str
    step: int
    event_id: str | None
    connection_id: str | None
    user_agent: str | None
    authenticated: bool
    metadata: dict[str, Any] | None
    custom_cost: CustomCost | None
    model_in_path: bool
    keep_payload: bool
    body_limit: int
    request_body: bytes = b""
    request_content_type: str | None = None
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status_code: int | None = None
    success: bool = False
    cached: bool = False
    attempts: int = 0
    ttfb_ms: int | None = None
    duration_ms: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    response_content_type: str | None = None
    response_head: bytes = b""
    response_size: int = 0
    usage_known: bool = False  # a stream scanner already filled tokens_in/out
    full_body: bytes | None = None  # the whole non-stream response, read for usage off the hot path
    error: str | None = None
    # Realtime sessions: what a body-less WebSocket relay reports instead.
    model_override: str | None = None
    request_size_override: int | None = None
    frames_in: int | None = None
    frames_out: int | None = None
    close_code: int | None = None
    gateway_notes: str | None = None  # what degraded while serving it (Redis down: cache, rate limiter)
    route: RouteTag | None = None  # a call made by a dynamic route
    free: bool = False  # costs nothing whatever its model (a route that ended without success)
    dlp_action: str | None = None  # DLP findings (app/pipeline/dlp.py); bodies are already redacted
    dlp: dict[str, Any] | None = None
    cost_override: float | None = None  # what spend limits counted (0 for a refused call)
    request_id: str | None = None  # `cf-aig-request-id`: the id of the request's first row
    # `derived()`, once: the log writer and the span of the row both need it, and it parses bodies.
    _derived: tuple[str | None, float | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def mark_first_byte(self) -> None:
        self.ttfb_ms = round((time.perf_counter() - self.started) * 1000)

    def finish(self, status: int | None, success: bool, error: str | None = None) -> None:
        self.status_code = status
        self.success = success
        self.error = error
        self.duration_ms = round((time.perf_counter() - self.started) * 1000)

    def add_response_bytes(self, chunk: bytes) -> None:
        self.response_size += len(chunk)
        room = self.body_limit - len(self.response_head)
        if room > 0 and self.keep_payload:
            self.response_head += chunk[:room]

    def derived(self) -> tuple[str | None, float | None]:
        """The model and cost of a finished record, with its token usage filled in (from the
        response body, unless a stream scanner counted it). Worked out on the first call only:
        a finished record does not change."""
        if self._derived is not None:
            return self._derived
        model = self.model_override or model_from_request(self.request_body, self.path, self.model_in_path)
        if not self.usage_known and self.success and not self.cached:
            usage = usage_from_body(self.full_body if self.full_body is not None else self.response_head)
            self.tokens_in, self.tokens_out = usage.tokens_in, usage.tokens_out
        if self.cost_override is not None or self.cached or self.free:
            cost: float | None = self.cost_override or 0.0
        elif not self.success and self.tokens_in is None and self.tokens_out is None:
            cost = None  # nothing came back to charge (a per-call custom cost included)
        else:
            cost = cost_of(self.provider, model, self.tokens_in, self.tokens_out, self.custom_cost)
        self._derived = (model, cost)
        return self._derived

    def to_row(self) -> dict[str, Any]:
        model, cost = self.derived()
        request_head = self.request_body[: self.body_limit] if self.keep_payload else None
        return {
            "id": self.id,
            "account_id": self.account_id,
            "gateway_id": self.gateway_id,
            "created_at": self.created_at,
            "provider": self.provider,
            "model": model,
            "path": self.path[:2048],
            "request_type": self.request_type,
            "step": self.step,
            "event_id": self.event_id,
            "connection_id": self.connection_id,
            "status_code": self.status_code,
            "success": self.success,
            "cached": self.cached,
            "attempts": max(self.attempts, 1),
            "duration_ms": self.duration_ms,
            "ttfb_ms": self.ttfb_ms,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": cost,
            "custom_cost": self.custom_cost is not None,
            "metadata": self.metadata,
            "request_content_type": self.request_content_type,
            "response_content_type": self.response_content_type,
            "request_size": (
                self.request_size_override
                if self.request_size_override is not None
                else len(self.request_body)
            ),
            "response_size": self.response_size,
            "request_body": request_head,
            "request_body_complete": self.keep_payload and len(self.request_body) <= self.body_limit,
            "response_body": self.response_head if self.keep_payload else None,
            "response_body_complete": self.keep_payload and self.response_size <= self.body_limit,
            "user_agent": self.user_agent[:512] if self.user_agent else None,
            "authenticated": self.authenticated,
            "error": self.error,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "close_code": self.close_code,
            "gateway_notes": self.gateway_notes,
            **_route_columns(self.route),
            "dlp_action": self.dlp_action,
            "dlp": self.dlp,
            "request_id": self.request_id,
        }


def _route_columns(tag: RouteTag | None) -> dict[str, str | None]:
    if tag is None:  # the same keys on every row: a batch is inserted with one statement
        return {"route_id": None, "route_name": None, "route_version_id": None, "route_element_id": None}
    return {
        "route_id": tag.route_id,
        "route_name": tag.route_name,
        "route_version_id": tag.version_id,
        "route_element_id": tag.element_id,
    }
