"""One step of a request, resolved once before it runs: its provider, its options layered over the
request's, its ids, and the retry policy that follows from them and the gateway's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.core.errors import ErrorContext
from app.core.ids import new_log_id
from app.core.notes import Notes
from app.logs.record import RouteTag
from app.pipeline.retry import RetryPolicy
from app.pipeline.types import CacheStatus, GatewayRequest, Options, ResultMeta, Step
from app.providers.base import Provider
from app.services.config import GatewayConfig

if TYPE_CHECKING:
    from app.pipeline.dlp import RequestDlp


@dataclass(slots=True)
class StepRun:
    request: GatewayRequest
    gateway: GatewayConfig
    step: Step
    provider: Provider
    index: int
    is_last: bool
    options: Options
    event_id: str
    log_id: str
    authenticated: bool
    notes: Notes = field(default_factory=Notes)  # what degraded (log column gateway_notes)
    route: RouteTag | None = None  # a model element of a dynamic route (pipeline/routing.py)
    policy: RetryPolicy | None = None  # set by the route's element instead of options and gateway
    dlp: RequestDlp | None = None  # the request's DLP, when its gateway has any
    traceparent: str | None = None  # this step's span (recording.py), when traces are exported

    def meta(self, status: int, cache_status: CacheStatus, content_type: str | None) -> ResultMeta:
        return ResultMeta(
            self.log_id, self.event_id, self.index, cache_status, content_type, status,
            traceparent=self.traceparent,
        )  # fmt: skip

    def error_context(self) -> ErrorContext:
        return ErrorContext(self.log_id, self.event_id, self.index)

    def retry_policy(self) -> RetryPolicy:
        if self.policy is not None:
            return self.policy
        options, gateway = self.options, self.gateway
        timeout_ms = options.request_timeout_ms
        return RetryPolicy(
            max_attempts=options.max_attempts or gateway.retry_max_attempts or 1,
            delay_ms=options.retry_delay_ms
            if options.retry_delay_ms is not None
            else gateway.retry_delay or 0,
            backoff=options.backoff or gateway.retry_backoff or "constant",
            first_byte_timeout_s=timeout_ms / 1000 if timeout_ms else None,
            final_attempt_uncut=self.is_last,
        )


def event_id_of(steps: list[Step], options: Options) -> str | None:
    """The client's id for a request: a step's `eventId`, else a step's `cf-aig-event-id` header,
    else the request's (or WebSocket session's) `cf-aig-event-id`. None: the first log id is used."""
    for step in steps:
        if step.event_id:
            return step.event_id
    for step in steps:
        if step.options.event_id:
            return step.options.event_id
    return options.event_id


def assign_ids(request: GatewayRequest) -> tuple[str, str]:
    """(first log id, event id) of a request, given once: a transport that must know them before
    the run (a WebSocket session files requests by event id) and the run see the same ids."""
    if request.log_id is None:
        request.log_id = new_log_id()
    if request.event_id is None:
        request.event_id = event_id_of(request.steps, request.options) or request.log_id
    return request.log_id, request.event_id


def plan_steps(
    request: GatewayRequest, gateway: GatewayConfig, authenticated: bool, providers: list[Provider]
) -> list[StepRun]:
    first_log_id, event_id = assign_ids(request)
    last = len(request.steps) - 1
    return [
        StepRun(
            request,
            gateway,
            step,
            provider,
            index,
            index == last,
            step.options.over(request.options),
            event_id,
            first_log_id if index == 0 else new_log_id(),
            authenticated,
        )
        for index, (step, provider) in enumerate(zip(request.steps, providers, strict=True))
    ]
