"""One `model` element of a dynamic route (routing.md §3.4): the client's chat-completions request
sent to `{provider}/{model}` as the compat endpoint would (translation included), with the
element's timeout and retries, the gateway's stored key, and its own log row. Returns the OpenAI
format answer or, when the element failed, the upstream error answer or the gateway error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.errors import GatewayError, GatewayTimeout, NoProviderResponse, Unauthorized
from app.core.sse import SSESplitter
from app.logs.record import RouteTag
from app.pipeline.collaborators import ProviderSource
from app.pipeline.compat import to_openai_format
from app.pipeline.dlp import RequestDlp
from app.pipeline.recording import Recorder
from app.pipeline.retry import RetryPolicy
from app.pipeline.step import StepRun
from app.pipeline.types import ComposedStream, GatewayRequest, GatewayResult, Options, ResultStream, Step
from app.providers.compat.registry import translate
from app.providers.cost import cost_of
from app.providers.usage import Usage, loads_or_none, usage_from_body
from app.routing.conditions import RequestView
from app.routing.graph import ModelCall, RouteGraph
from app.services.config import GatewayConfig

# Provider credentials of a dynamic route come only from stored keys: whatever the client sent
# as one (its gateway token included) never goes upstream.
CLIENT_CREDENTIALS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"}
)
RunStep = Callable[[StepRun], Awaitable[GatewayResult | None]]


@dataclass(slots=True)
class RouteRequest:
    """A request being walked through one route version (the version it arrived on)."""

    request: GatewayRequest
    gateway: GatewayConfig
    graph: RouteGraph
    body: dict[str, Any]  # the client's chat-completions body
    headers: list[tuple[str, str]]  # the client's headers, credentials removed
    options: Options
    event_id: str
    view: RequestView
    split_key: str
    size: int  # the client's body in bytes (cost limits estimate with it)
    dlp: RequestDlp | None = None  # the gateway's DLP, with the client's request scanned once

    def tag(self, element_id: str | None) -> RouteTag:
        graph = self.graph
        return RouteTag(graph.route_id, graph.name, graph.version_id, element_id)


def without_credentials(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in CLIENT_CREDENTIALS]


class CostMeter:
    """Reads the token usage of an answer (a body, or a stream's events as they pass) and prices
    it once at the end, for the cost limits the request passed."""

    def __init__(self, provider: str, model: str, settle: Callable[[float], None]) -> None:
        self._provider, self._model, self._settle = provider, model, settle
        self._usage = Usage()
        self._splitter = SSESplitter(1 << 20)
        self._settled = False

    def body(self, body: bytes) -> None:
        self._usage = usage_from_body(body)
        self.finish()

    def chunk(self, chunk: bytes) -> None:
        for event in self._splitter.feed(chunk):
            if b"sage" in event.data:
                self._usage.absorb(loads_or_none(event.data))

    def finish(self) -> None:
        if self._settled:
            return
        self._settled = True
        cost = cost_of(self._provider, self._model, self._usage.tokens_in, self._usage.tokens_out, None)
        self._settle(cost or 0.0)


class MeteredStream:
    """A stream whose usage is priced when it ends (closed, whatever happened)."""

    def __init__(self, inner: ResultStream, meter: CostMeter) -> None:
        self._inner, self._meter = inner, meter

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._meter.chunk(chunk)
            yield chunk

    async def aclose(self) -> None:
        self._meter.finish()
        await self._inner.aclose()


class MeteredComposedStream(MeteredStream, ComposedStream):
    """The same for a stream the gateway composed (the transports send those with pings)."""


def metered(result: GatewayResult, meter: CostMeter) -> GatewayResult:
    if result.stream is None:
        meter.body(result.body or b"")
    elif isinstance(result.stream, ComposedStream):
        result.stream = MeteredComposedStream(result.stream, meter)
    else:
        result.stream = MeteredStream(result.stream, meter)
    return result


class ModelCaller:
    def __init__(self, providers: ProviderSource, run_step: RunStep, recorder: Recorder) -> None:
        self._providers = providers
        self._run_step = run_step
        self._recorder = recorder

    async def call(
        self, route: RouteRequest, element: ModelCall, index: int, log_id: str
    ) -> GatewayResult | GatewayError:
        """The element's 2xx answer, else what made it fail: a non-2xx answer or a gateway error."""
        body = dict(route.body)
        body["model"] = f"{element.provider}/{element.model}"
        translation = translate(orjson.dumps(body), list(route.headers))
        native = translation.native
        step = Step(
            native.provider, native.endpoint, native.body, native.headers, "POST", native.query_string
        )
        request, gateway = route.request, route.gateway
        provider = await self._providers.provider(request.account_id, native.provider)
        run = StepRun(
            request, gateway, step, provider, index, True, route.options, route.event_id, log_id, True,
            route=route.tag(element.id), policy=_policy(element, gateway),
        )  # fmt: skip
        if route.dlp is not None:
            route.dlp.route_call(index, translation)
            run.dlp = route.dlp
        credential = await self._providers.stored_credential(
            request.account_id, request.gateway_id, provider, route.options.byok_alias
        )
        if credential is None:  # tried, and failed before any call: its row says why
            missing = Unauthorized(f"No stored key for provider {element.provider}")
            self._recorder.begin(run).finish(missing.status, False, missing.message)
            return missing
        step.headers = [*step.headers, credential]
        try:
            result = await self._run_step(run)
        except (GatewayTimeout, NoProviderResponse) as failure:
            return failure
        assert result is not None  # a step run as the last one answers or raises
        return to_openai_format(translation, result)


def _policy(element: ModelCall, gateway: GatewayConfig) -> RetryPolicy:
    """`1 + retries` attempts, each cut at `timeout` before its first byte; delays are the
    gateway's (none when it sets none)."""
    return RetryPolicy(
        max_attempts=1 + element.retries,
        delay_ms=gateway.retry_delay or 0,
        backoff=gateway.retry_backoff or "constant",
        first_byte_timeout_s=element.timeout_ms / 1000,
        final_attempt_uncut=False,
    )
