"""The orchestrator: admit → for each step (fallback): cache → retries → provider call → log.

Every transport calls `Pipeline.run` with a `GatewayRequest` and encodes the `GatewayResult`;
behaviour lives here once, so HTTP and WebSocket cannot drift apart.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.auth import principals as auth
from app.core.errors import GatewayError, GatewayNotFound, NoProviderResponse, RateLimited, UpstreamTimeout
from app.core.metrics import Metrics
from app.core.settings import Settings
from app.logs.record import LogRecord, LogSink, new_log_id
from app.pipeline.compat import compat_error_result, to_openai_format
from app.pipeline.retry import RetryPolicy, UpstreamFailure, send_with_retries
from app.pipeline.stream import ReplayStream, UpstreamStream
from app.pipeline.types import GatewayRequest, GatewayResult, Options, ResultMeta, Step
from app.providers.base import Provider
from app.providers.catalog import get_provider
from app.providers.compat.base import CompatRequestError, Translation
from app.providers.compat.registry import translate
from app.services.cache.memory import CachedResponse, CacheStore, Coalescer, cache_key
from app.services.config import Directory, GatewayConfig
from app.services.ratelimit import RateLimiter, retry_after_header
from app.services.tenants import Tenancy
from app.upstream.client import UpstreamClient, UpstreamError, UpstreamResponse

# Never relayed back: hop-by-hop headers, and what our server sets itself. Bodies are relayed
# decoded, so upstream encoding and length do not apply either.
_DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authenticate", "content-length", "content-encoding", "date", "server",
    }
)  # fmt: skip
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
DEFAULT_KEY_TTL_S = 300
CLAIM_TTL_S = 30.0  # how long other replicas wait for one that fetches a shared cache miss

Publish = Callable[[CachedResponse | None], Awaitable[None]]


@dataclass(slots=True)
class StepRun:
    """Everything one step attempt needs, resolved once."""

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
    notes: list[str] = field(default_factory=list)  # what degraded (log column gateway_notes)

    def meta(self, status: int, cache_status: str, content_type: str | None) -> ResultMeta:
        return ResultMeta(self.log_id, self.event_id, self.index, cache_status, content_type, status)  # type: ignore[arg-type]

    def error_headers(self) -> dict[str, str]:
        return {
            "cf-aig-log-id": self.log_id,
            "cf-aig-event-id": self.event_id,
            "cf-aig-step": str(self.index),
        }


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


def passthrough_headers(response: UpstreamResponse) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in response.raw_headers
        if name.lower().decode("latin-1") not in _DROPPED_RESPONSE_HEADERS
    ]


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        client: UpstreamClient,
        directory: Directory,
        cache: CacheStore,
        sink: LogSink,
        limiter: RateLimiter,
    ) -> None:
        self._settings = settings
        self._client = client
        self._directory = directory
        self._cache = cache
        self._sink = sink
        self._limiter = limiter
        self.metrics: Metrics | None = None
        self.tenancy: Tenancy | None = None  # custom providers and stored keys (set by the app)
        self._coalescer = Coalescer()

    async def run(self, request: GatewayRequest) -> GatewayResult:
        started = time.perf_counter()
        gateway, authenticated = await self.admit(request)
        try:
            translations = [self._compat(step) for step in request.steps]
        except CompatRequestError as error:
            return compat_error_result(error, request.options.event_id)
        # 2008 before any call; `custom-{slug}` resolves through the account's custom providers.
        providers = [await self._provider(request.account_id, step.provider) for step in request.steps]
        runs = self._step_runs(request, gateway, authenticated, providers)
        await self._enforce_rate_limit(runs[0])
        for run, translation in zip(runs, translations, strict=True):
            result = await self._run_step(run)
            if result is not None:
                if translation is not None:
                    result = to_openai_format(translation, result)
                result.meta.gateway_ms = (time.perf_counter() - started) * 1000 - result.meta.upstream_ms
                if self.metrics is not None:
                    self.metrics.gateway_latency.observe(result.meta.gateway_ms / 1000)
                return result
        raise AssertionError("the last step always returns or raises")

    @staticmethod
    def _step_runs(
        request: GatewayRequest, gateway: GatewayConfig, authenticated: bool, providers: list[Provider]
    ) -> list[StepRun]:
        first_log_id = request.log_id or new_log_id()
        event_id = event_id_of(request.steps, request.options) or first_log_id
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

    async def _enforce_rate_limit(self, run: StepRun) -> None:
        """2003 with Retry-After when the gateway's limit is reached; no fallback is tried and the
        rejected request is logged."""
        gateway = run.gateway
        if gateway.rate_limiting_limit <= 0 or gateway.rate_limiting_interval <= 0:
            return
        key = f"{gateway.account_id}/{gateway.id}"
        wait = await self._limiter.hit(
            key,
            gateway.rate_limiting_limit,
            gateway.rate_limiting_interval,
            gateway.rate_limiting_technique,
            notes=run.notes,
        )
        if wait is None:
            return
        error = RateLimited(headers={**run.error_headers(), "Retry-After": retry_after_header(wait)})
        record = self._new_record(run)
        record.attempts = 0
        record.finish(error.status, False, error.message)
        self._log(run, record)
        raise error

    @staticmethod
    def _compat(step: Step) -> Translation | None:
        """A `compat` step becomes the native call it stands for (in place); its translation maps
        the answer back to OpenAI format."""
        if step.provider != "compat":
            return None
        translation = translate(step.body, step.headers)
        native = translation.native
        step.provider, step.endpoint, step.body = native.provider, native.endpoint, native.body
        step.headers, step.query_string, step.method = native.headers, native.query_string, "POST"
        return translation

    async def admit(self, request: GatewayRequest) -> tuple[GatewayConfig, bool]:
        """The gateway's config and whether the request was authenticated (2001 / 2009)."""
        account, gateway_id = request.account_id, request.gateway_id
        token = request.options.authorization
        gateway = await self._directory.gateway(account, gateway_id)
        if gateway is None:
            if gateway_id != "default":
                raise GatewayNotFound()
            await self._check_token(token, account, gateway_id)
            return await self._directory.ensure_default_gateway(account), True
        if gateway.authentication:
            await self._check_token(token, account, gateway_id)
            return gateway, True
        return gateway, request.authenticated

    async def open_session(self, account_id: str, gateway_id: str, token: str | None) -> GatewayConfig:
        """Admission of a WebSocket session: a valid `run` token is required whatever the gateway's
        `authentication` setting (protocol.md §5)."""
        await self._check_token(token, account_id, gateway_id)
        gateway = await self._directory.gateway(account_id, gateway_id)
        if gateway is None:
            if gateway_id != "default":
                raise GatewayNotFound()
            gateway = await self._directory.ensure_default_gateway(account_id)
        return gateway

    async def _check_token(self, token: str | None, account: str, gateway_id: str) -> None:
        await auth.require(self._directory, self._settings.admin_token, token, "run", account, gateway_id)

    # ---- tenancy (management API): custom providers, stored provider keys (BYOK) ------------------
    async def _provider(self, account_id: str, slug: str) -> Provider:
        if self.tenancy is None:
            return get_provider(slug)
        return await self.tenancy.provider(account_id, slug)

    async def _inject_stored_key(self, run: StepRun) -> None:
        """Authenticated requests without a credential of their own get the gateway's stored key."""
        if run.authenticated and self.tenancy is not None:
            request = run.request
            await self.tenancy.inject_key(
                request.account_id, request.gateway_id, run.provider, run.step, run.options.byok_alias
            )

    # ---- end tenancy -------------------------------------------------------------------------------

    async def _run_step(self, run: StepRun) -> GatewayResult | None:
        await self._inject_stored_key(run)  # before the cache key, which covers credentials
        step, options = run.step, run.options
        url = run.provider.upstream_url(step.endpoint, run.request.account_id, self._upstream_override(run))
        if step.query_string:
            url = f"{url}?{step.query_string}"
        record = self._new_record(run)
        ttl = options.cache_ttl or run.gateway.cache_ttl or (DEFAULT_KEY_TTL_S if options.cache_key else 0)
        if options.skip_cache or ttl <= 0:
            return await self._call(run, record, url, "BYPASS" if options.skip_cache else "MISS", _no_publish)

        key = self._cache_key(run, url)
        cached = await self._cache.get(key, notes=run.notes)
        waiting = None if cached is not None else self._coalescer.lead_or_follow(key)
        if waiting is not None:
            cached = await asyncio.shield(waiting)  # an identical request is in flight: share it
        if cached is not None:
            return self._serve_cached(run, record, cached)

        leading = waiting is None
        if leading and not await self._cache.claim(key, CLAIM_TTL_S, notes=run.notes):
            # Another replica is fetching this very response: wait for its entry.
            cached = await self._cache.wait_for(key, CLAIM_TTL_S, notes=run.notes)
            if cached is not None:
                self._coalescer.finish(key, cached)
                return self._serve_cached(run, record, cached)
        published = False

        async def publish(response: CachedResponse | None) -> None:
            nonlocal published
            if published:
                return
            published = True
            if response is not None:
                await self._cache.set(key, response, ttl)
            if leading:
                self._coalescer.finish(key, response)
                await self._cache.release(key)

        try:
            result = await self._call(run, record, url, "MISS", publish)
        except BaseException:
            await publish(None)
            raise
        if result is None or not result.is_stream:
            await publish(None)  # no-op when the response was already published
        return result

    def _upstream_override(self, run: StepRun) -> str | None:
        return self._settings.upstream_override(run.provider.slug)

    def _cache_key(self, run: StepRun, url: str) -> str:
        step = run.step
        names = run.provider.credential_headers
        credentials = [v for n, v in step.headers if n.lower() in names or n.lower() == "authorization"]
        return cache_key(
            run.request.account_id,
            run.request.gateway_id,
            custom_key=run.options.cache_key,
            provider=run.provider.slug,
            method=step.method,
            url=url,
            body=step.body,
            credentials=credentials,
            stream=bool(_STREAM_FLAG.search(step.body)) or "alt=sse" in url,
        )

    def _new_record(self, run: StepRun) -> LogRecord:
        options, request = run.options, run.request
        record = LogRecord(
            id=run.log_id,
            account_id=request.account_id,
            gateway_id=request.gateway_id,
            provider=run.provider.slug,
            path=run.step.endpoint,
            request_type=request.request_type,
            step=run.index,
            event_id=run.event_id,
            connection_id=request.connection_id,
            user_agent=request.user_agent,
            authenticated=run.authenticated,
            notes=run.notes,
            metadata=options.metadata,
            custom_cost=options.custom_cost,
            model_in_path=run.provider.model_in_path,
            keep_payload=options.collect_log_payload is not False,
            body_limit=self._settings.log_body_max_bytes,
            request_body=run.step.body,
            request_content_type=next(
                (v for n, v in run.step.headers if n.lower() == "content-type"), request.request_content_type
            ),
        )
        return record

    def _log(self, run: StepRun, record: LogRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe(record)
        collect = run.options.collect_log
        if collect if collect is not None else run.gateway.collect_logs:
            self._sink.put(record)

    def _retry_policy(self, run: StepRun) -> RetryPolicy:
        options, gateway = run.options, run.gateway
        timeout_ms = options.request_timeout_ms
        return RetryPolicy(
            max_attempts=options.max_attempts or gateway.retry_max_attempts or 1,
            delay_ms=options.retry_delay_ms
            if options.retry_delay_ms is not None
            else gateway.retry_delay or 0,
            backoff=options.backoff or gateway.retry_backoff or "constant",
            first_byte_timeout_s=timeout_ms / 1000 if timeout_ms else None,
            final_attempt_uncut=run.is_last,
        )

    def _serve_cached(self, run: StepRun, record: LogRecord, cached: CachedResponse) -> GatewayResult:
        content_type = next((v for n, v in cached.headers if n.lower() == "content-type"), None)
        record.cached = True
        record.attempts = 0
        record.response_content_type = content_type
        record.add_response_bytes(cached.body)
        record.mark_first_byte()
        record.finish(cached.status, True)
        self._log(run, record)
        meta = run.meta(cached.status, "HIT", content_type)
        headers = list(cached.headers)
        if cached.chunks is not None:
            return GatewayResult(cached.status, headers, meta, stream=ReplayStream(cached.chunks))
        return GatewayResult(cached.status, headers, meta, body=cached.body)

    async def _call(
        self, run: StepRun, record: LogRecord, url: str, cache_status: str, publish: Publish
    ) -> GatewayResult | None:
        """The upstream call of one step. None: the step failed and a later step should run."""
        try:
            return await self._call_upstream(run, record, url, cache_status, publish)
        except asyncio.CancelledError:  # client gone or request cancelled: the step was attempted
            if record.duration_ms is None:
                record.finish(None, False, "cancelled before the response")
                self._log(run, record)
            raise

    async def _call_upstream(
        self, run: StepRun, record: LogRecord, url: str, cache_status: str, publish: Publish
    ) -> GatewayResult | None:
        step = run.step
        request = self._client.build(step.method, url, step.headers, step.body)
        upstream_started = time.perf_counter()
        try:
            response, record.attempts = await send_with_retries(
                self._client, request, self._retry_policy(run)
            )
        except UpstreamFailure as failure:
            self._failed(run, record, str(failure), timed_out=failure.timed_out)
            return None
        record.mark_first_byte()
        status = response.status_code
        ok = 200 <= status < 300
        content_type = response.headers.get("content-type")
        record.response_content_type = content_type
        headers = passthrough_headers(response)
        meta = run.meta(status, cache_status, content_type)
        if ok and content_type is not None and content_type.startswith("text/event-stream"):
            meta.upstream_ms = (time.perf_counter() - upstream_started) * 1000
            return GatewayResult(
                status, headers, meta, stream=self._relay(run, record, response, headers, publish)
            )
        try:
            body = await response.aread()
        except UpstreamError as exc:
            self._failed(run, record, f"upstream body cut: {exc}", timed_out=False)
            return None
        finally:
            await response.aclose()
        meta.upstream_ms = (time.perf_counter() - upstream_started) * 1000
        record.add_response_bytes(body)
        record.full_body = body  # a reference, not a copy; usage is read by the log writer
        record.finish(status, ok)
        self._log(run, record)
        if not ok and not run.is_last:
            return None
        if ok:
            await publish(CachedResponse(status, tuple(headers), body))
        return GatewayResult(status, headers, meta, body=body)

    def _relay(
        self, run: StepRun, record: LogRecord, response: UpstreamResponse, headers: list[tuple[str, str]],
        publish: Publish,
    ) -> UpstreamStream:  # fmt: skip
        async def on_done(chunks: tuple[bytes, ...] | None) -> None:
            self._log(run, record)
            if chunks is None:
                await publish(None)
            else:
                await publish(CachedResponse(response.status_code, tuple(headers), b"".join(chunks), chunks))

        return UpstreamStream(response, record, on_done, self._settings.cache_max_entry_bytes)

    def _failed(self, run: StepRun, record: LogRecord, message: str, *, timed_out: bool) -> None:
        """Log a step that got no usable response; on the last step, raise 2012 or 2005."""
        record.finish(None, False, message)
        self._log(run, record)
        if not run.is_last:
            return
        error: GatewayError = UpstreamTimeout() if timed_out else NoProviderResponse()
        error.headers.update(run.error_headers())
        raise error


async def _no_publish(_response: CachedResponse | None) -> None:
    return None
