"""The transport-neutral shapes that go into and come out of the pipeline.

Transports (HTTP, WebSocket) translate their input into a `GatewayRequest` and encode the
`GatewayResult`; nothing here knows about a framework object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Literal, Protocol

from app.providers.cost import CustomCost

RequestType = Literal["universal", "provider", "compat", "websocket", "realtime", "rest"]
CacheStatus = Literal["HIT", "MISS", "BYPASS"]


@dataclass(frozen=True, slots=True)
class Options:
    """Per-request settings from `cf-aig-*` headers or a step's `config`. None means "not set here",
    so that layers (step → request → session → gateway → server) can be stacked with `over`."""

    authorization: str | None = None
    skip_cache: bool | None = None
    cache_ttl: int | None = None
    cache_key: str | None = None
    collect_log: bool | None = None
    collect_log_payload: bool | None = None
    metadata: dict[str, str | int | float | bool] | None = None
    event_id: str | None = None
    request_timeout_ms: int | None = None
    max_attempts: int | None = None
    retry_delay_ms: int | None = None
    backoff: str | None = None
    custom_cost: CustomCost | None = None
    byok_alias: str | None = None
    routing_key: str | None = None  # `cf-aig-routing-key`: the split key of dynamic routes
    provider_key: str | None = None  # `cf-aig-provider-key`: the provider credential; never logged

    def over(self, base: Options) -> Options:
        """These options with anything unset taken from `base`."""
        if base is EMPTY_OPTIONS:
            return self
        if self is EMPTY_OPTIONS:
            return base
        values = {}
        for f in fields(self):
            mine = getattr(self, f.name)
            values[f.name] = mine if mine is not None else getattr(base, f.name)
        return Options(**values)


EMPTY_OPTIONS = Options()


@dataclass(slots=True)
class Step:
    """One provider call: a universal step, or the single step of a pass-through request."""

    provider: str
    endpoint: str  # path below the provider's base, without a leading "/"
    body: bytes
    headers: list[tuple[str, str]]  # forwarded upstream; cf-aig-* already removed
    method: str = "POST"
    query_string: str = ""
    options: Options = EMPTY_OPTIONS
    event_id: str | None = None
    # The endpoint is below the parent of the provider's base (Workers AI's `/v1/…` sit beside `/run`).
    from_base_parent: bool = False


@dataclass(slots=True)
class GatewayRequest:
    account_id: str
    gateway_id: str
    request_type: RequestType
    steps: list[Step]
    options: Options = EMPTY_OPTIONS  # request headers (HTTP) or session defaults (WebSocket)
    user_agent: str | None = None
    connection_id: str | None = None
    request_content_type: str | None = None
    authenticated: bool = False  # already proven by the transport (a WebSocket handshake token)
    require_credential: bool = False  # no provider credential at all is 2042 (the REST surface)
    # Given by `step.assign_ids` (the run does it, or a transport that needs them before the run).
    log_id: str | None = None  # the first step's log id
    event_id: str | None = None
    # W3C / Cloudflare trace headers of the request (lower-cased names), when it sent any.
    trace_headers: dict[str, str] | None = None
    trace_id: int | None = None  # the trace of its spans, once the first is opened (pipeline/tracing.py)


@dataclass(slots=True)
class ResultMeta:
    log_id: str
    event_id: str
    step: int
    cache_status: CacheStatus
    content_type: str | None
    status: int
    upstream_ms: float = 0.0
    gateway_ms: float = 0.0
    traceparent: str | None = None  # the answering step's span, when traces are exported


class ResultStream(Protocol):
    """Raw upstream bytes of a streamed response. Iterating may raise `StreamInterrupted` after
    the first chunk; `aclose` must be called once the transport is done, whatever happened."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class ComposedStream:
    """Base of the streams the gateway writes itself (a compat translation), as opposed to the
    provider's bytes relayed unchanged. Each chunk is whole SSE events, so a transport may put a
    keep-alive comment between any two (HTTP does, while the next event is slow to come)."""


@dataclass(slots=True)
class GatewayResult:
    status: int
    headers: list[tuple[str, str]]
    meta: ResultMeta
    body: bytes | None = None
    stream: ResultStream | None = None

    @property
    def is_stream(self) -> bool:
        return self.stream is not None
