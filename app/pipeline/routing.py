"""Dynamic routes on the request path (routing.md §5): a chat-completions step whose model is
`dynamic/{name}` (or `dynamic/{name}@{version_id}`) is walked through the route's deployed graph:
conditions, deterministic splits, count and cost limits, and model elements with their own
timeout, retries and fallback. The version is fixed when the request arrives.

`resolve_dynamic_model` is the one lookup of a route by model name, for any surface; `wants` is
all a request without a dynamic model pays (a substring test on the body)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson

from app.auth.principals import require
from app.core.errors import (
    ErrorContext,
    GatewayError,
    MalformedRequest,
    NoProviderResponse,
    RateLimited,
    RequestBlockedByDlp,
    ServiceUnavailable,
    UnknownProvider,
)  # fmt: skip
from app.core.ids import new_log_id
from app.logs.record import LogRecord
from app.pipeline.collaborators import GatewaySource, PipelineMetrics, ProviderSource
from app.pipeline.compat import compat_error_result
from app.pipeline.dlp import RequestDlp
from app.pipeline.recording import Recorder
from app.pipeline.route_call import (
    CostMeter,
    ModelCaller,
    RouteRequest,
    RunStep,
    metered,
    without_credentials,
)
from app.pipeline.route_limits import Held, RouteLimits, counter_key
from app.pipeline.step import assign_ids
from app.pipeline.types import GatewayRequest, GatewayResult, Step
from app.providers.compat.base import CompatRequestError, parse_request
from app.routing.conditions import RequestView
from app.routing.graph import Conditional, End, Limit, ModelCall, Percentage, RouteGraph, Start
from app.routing.split import pick_branch, split_fraction
from app.services.config import GatewayConfig
from app.services.ratelimit import RateLimiter
from app.services.route_cache import RouteCache

PREFIX = "dynamic/"
_MARK = PREFIX.encode()
CHAT_ENDPOINTS = frozenset({"chat/completions", "chat/completion"})  # the docs' typo too
Admit = Callable[[GatewayRequest], Awaitable[tuple[GatewayConfig, bool]]]


async def resolve_dynamic_model(
    routes: RouteCache, account_id: str, gateway_id: str, model: str
) -> RouteGraph:
    """The graph a `dynamic/{name}[@{version_id}]` model runs: the deployed version, or the saved
    one named. 400 / 2008 when there is none."""
    name, _, version_id = model.removeprefix(PREFIX).partition("@")
    if version_id:
        graph = await routes.pinned(account_id, gateway_id, name, version_id)
    else:
        graph = await routes.deployed(account_id, gateway_id, name)
    if graph is None:
        raise UnknownProvider(f"Dynamic route not found: {name[:64]}")
    return graph


def is_dynamic(step: Step) -> bool:
    return step.provider == "compat" and _MARK in step.body


class RouteExecutor:
    def __init__(
        self, routes: RouteCache, gateways: GatewaySource, admin_token: str | None,
        providers: ProviderSource, limiter: RateLimiter, recorder: Recorder, metrics: PipelineMetrics,
        run_step: RunStep, limits: RouteLimits,
    ) -> None:  # fmt: skip
        self._routes = routes
        self._gateways = gateways
        self._admin_token = admin_token
        self._gateway_limiter = limiter
        self._limits = limits
        self._recorder = recorder
        self._metrics = metrics
        self._caller = ModelCaller(providers, run_step, recorder)

    @staticmethod
    def wants(request: GatewayRequest) -> bool:
        """Cheap: a substring test; `dynamic_target` then decides."""
        return any(is_dynamic(step) for step in request.steps)

    async def run(
        self, request: GatewayRequest, target: tuple[Step, dict[str, Any]], admit: Admit
    ) -> GatewayResult:
        step, body = target
        request = _with_route_token(request, step)
        gateway, authenticated = await admit(request)
        if not authenticated:  # dynamic routes always need a `run` token
            await require(self._gateways, self._admin_token, request.options.authorization, "run",
                          request.account_id, request.gateway_id)  # fmt: skip
        started = time.perf_counter()
        try:
            parse_request(step.body)  # the chat-completions checks, once, before any element
        except CompatRequestError as error:
            return compat_error_result(error, request.options.event_id)
        graph = await resolve_dynamic_model(
            self._routes, request.account_id, request.gateway_id, body["model"]
        )
        route = _route_request(request, gateway, graph, step, body)
        await self._gateway_rate_limit(route)
        if gateway.dlp is not None:  # the client's request, scanned once before the walk
            route.dlp = RequestDlp(gateway.dlp, [step], request.request_content_type)
            if route.dlp.route_blocks_request():
                raise self._ended(route, RequestBlockedByDlp(route.dlp.findings.header()), 0)
        result = await self._walk(route)
        result.meta.gateway_ms = (time.perf_counter() - started) * 1000 - result.meta.upstream_ms
        self._metrics.observe_gateway_latency(result.meta.gateway_ms / 1000)
        return result

    async def _gateway_rate_limit(self, route: RouteRequest) -> None:
        gateway = route.gateway
        if gateway.rate_limiting_limit <= 0 or gateway.rate_limiting_interval <= 0:
            return
        wait = await self._gateway_limiter.hit(
            f"{gateway.account_id}/{gateway.id}", gateway.rate_limiting_limit,
            gateway.rate_limiting_interval, gateway.rate_limiting_technique,
        )  # fmt: skip
        if wait is not None:
            raise self._ended(route, RateLimited(retry_after_s=wait), 0)

    async def _walk(self, route: RouteRequest) -> GatewayResult:
        graph, request = route.graph, route.request
        elements = graph.elements
        current = graph.start
        tried = 0
        answer: GatewayResult | None = None  # the last upstream error answer
        failure: GatewayError | None = None  # the last gateway error
        budgets: list[Held] = []  # cost limits passed: reserved, settled with what follows
        try:
            for _ in range(len(elements) + 1):  # a validated graph is acyclic
                element = elements[current]
                if isinstance(element, Start):
                    current = element.next
                elif isinstance(element, Conditional):
                    current = element.if_true if element.predicate(route.view) else element.if_false
                elif isinstance(element, Percentage):
                    u = split_fraction(request.gateway_id, graph.name, element.id, route.split_key)
                    current = (
                        pick_branch(element.thresholds, element.otherwise, u) or element.thresholds[-1][1]
                    )
                elif isinstance(element, Limit):
                    key = counter_key(request.account_id, request.gateway_id, graph, element, route.view)
                    try:
                        outcome = await self._limits.admit(graph, element, key, route.body, route.size)
                    except ServiceUnavailable as down:  # the spend store, failing closed
                        raise self._ended(route, down, tried) from None
                    if isinstance(outcome, GatewayError):
                        failure, current = outcome, element.fallback
                    else:
                        if outcome is not None:
                            budgets.append(outcome)
                        current = element.success
                elif isinstance(element, ModelCall):
                    log_id = request.log_id if tried == 0 and request.log_id else new_log_id()
                    called = await self._caller.call(route, element, tried, log_id)
                    tried += 1
                    if isinstance(called, GatewayResult) and 200 <= called.status < 300:
                        handed, budgets = budgets, []  # the answer's meter settles them
                        return self._answered(route, element, called, handed)
                    if isinstance(called, GatewayResult):
                        answer, failure = _labelled(route, element, called), None
                    else:
                        failure, answer = called, None
                    current = element.fallback
                elif isinstance(element, End):
                    break
            return self._no_success(route, answer, failure, tried)
        finally:
            if budgets:  # no answer (or the walk failed): nothing after them was charged
                self._limits.settle(budgets, 0.0)

    def _answered(
        self, route: RouteRequest, element: ModelCall, result: GatewayResult, budgets: list[Held]
    ) -> GatewayResult:
        if budgets:

            def settle(cost: float) -> None:
                self._limits.settle(budgets, cost)

            result = metered(result, CostMeter(element.provider, element.model, settle))
        if route.dlp is not None:
            route.dlp.label(result.headers)
        return _labelled(route, element, result)

    def _no_success(
        self, route: RouteRequest, answer: GatewayResult | None, failure: GatewayError | None, tried: int
    ) -> GatewayResult:
        """The route reached its end without success: one more row, then the last model's upstream
        error answer, else the last gateway error (502 / 2005 when nothing else is known)."""
        if answer is not None and failure is None:
            self._ended(route, None, tried, answer.status)
            return answer
        raise self._ended(route, failure or NoProviderResponse(), tried)

    def _ended(
        self, route: RouteRequest, error: GatewayError | None, tried: int, status: int = 0
    ) -> GatewayError:
        """Log the row of a route that ended without success (`dynamic/{name}`, provider
        `unknown`, cost 0) and give `error` its context."""
        request = route.request
        options = route.options
        record = LogRecord(
            id=new_log_id(), account_id=request.account_id, gateway_id=request.gateway_id,
            provider="unknown", path="chat/completions", request_type=request.request_type, step=tried,
            event_id=route.event_id, connection_id=request.connection_id, user_agent=request.user_agent,
            authenticated=True, metadata=options.metadata, custom_cost=None, model_in_path=False,
            keep_payload=False, body_limit=0, model_override=f"{PREFIX}{route.graph.name}",
            route=route.tag(None), free=True,
        )  # fmt: skip
        if route.dlp is not None and route.dlp.findings.header() is not None:
            route.dlp.record_findings(record)
        collect = options.collect_log if options.collect_log is not None else route.gateway.collect_logs
        log = self._recorder.begin_record(record, collect)
        if error is None:
            log.finish(status, False, "route ended without success")
            return NoProviderResponse()  # not raised: the caller returns the model's answer
        log.finish(error.status, False, error.message)
        error.context = ErrorContext(record.id, route.event_id, tried)
        return error


def dynamic_target(request: GatewayRequest) -> tuple[Step, dict[str, Any]] | None:
    """The step whose model is `dynamic/…` and its parsed body; None: not a routed request (a
    body may mention `dynamic/` in a message without naming a route)."""
    for step in request.steps:
        if not is_dynamic(step):
            continue
        try:
            body = orjson.loads(step.body)
        except orjson.JSONDecodeError:
            continue
        if isinstance(body, dict) and isinstance(body.get("model"), str) and body["model"].startswith(PREFIX):
            if len(request.steps) > 1:
                raise MalformedRequest("A dynamic route must be the only step of a request")
            if step.endpoint not in CHAT_ENDPOINTS:
                raise UnknownProvider("Dynamic routes serve chat/completions only")
            return step, body
    return None


def _with_route_token(request: GatewayRequest, step: Step) -> GatewayRequest:
    """On the compat endpoint the client's `Authorization` is the gateway token (the docs pass it
    as the SDK's API key); elsewhere `cf-aig-authorization` is. No client credential goes upstream."""
    token = request.options.authorization
    if request.request_type == "compat":
        token = next((v for n, v in step.headers if n.lower() == "authorization"), None) or token
    step.headers = without_credentials(step.headers)
    if token == request.options.authorization:
        return request
    return replace(request, options=replace(request.options, authorization=token))


def _route_request(
    request: GatewayRequest, gateway: GatewayConfig, graph: RouteGraph, step: Step, body: dict[str, Any]
) -> RouteRequest:
    log_id, event_id = assign_ids(request)
    options = step.options.over(request.options)
    headers = {name.lower(): value for name, value in step.headers}
    view = RequestView(options.metadata or {}, headers, body)
    split_key = options.routing_key or log_id
    return RouteRequest(
        request, gateway, graph, body, step.headers, options, event_id, view, split_key, len(step.body)
    )


def _latin1(value: str) -> str:
    return value.encode("latin-1", "replace").decode("latin-1")


def _labelled(route: RouteRequest, element: ModelCall, result: GatewayResult) -> GatewayResult:
    result.headers = [
        *result.headers,
        ("cf-aig-model", _latin1(element.model)),
        ("cf-aig-provider", element.provider),
        ("cf-aig-route-version", route.graph.version_id),
        ("cf-aig-route-element", element.id),
    ]
    return result
