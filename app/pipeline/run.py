"""The orchestrator: admit → for each step (fallback): cache → retries → provider call → log.

Every transport calls `Pipeline.run` with a `GatewayRequest` and encodes the `GatewayResult`;
behaviour lives here once, so HTTP and WebSocket cannot drift apart. The steps of the run are
the collaborators': admission (`admission.py`), the step plan (`step.py`), the cache slot
(`cache_slot.py`), retries (`retry.py`), the log row (`recording.py`), the live stream (`stream.py`).
"""

from __future__ import annotations

import asyncio
import time

from app.core.errors import GatewayError, GatewayTimeout, MalformedRequest, NoProviderResponse, RateLimited
from app.core.rest_errors import MissingProviderCredential
from app.core.settings import Settings
from app.otel.tracer import Tracer
from app.pipeline.admission import Admission
from app.pipeline.cache_slot import CacheSlot, CacheSlots
from app.pipeline.collaborators import GatewaySource, PipelineMetrics, ProviderSource, RecordSink
from app.pipeline.compat import compat_error_result, to_openai_format
from app.pipeline.credentials import provider_key_header
from app.pipeline.dlp import RequestDlp
from app.pipeline.dlp_stream import DlpStream, TranslatedDlpStream
from app.pipeline.recording import Recorder, StepLog
from app.pipeline.request_checks import check_steps
from app.pipeline.retry import send_with_retries
from app.pipeline.routing import RouteExecutor, dynamic_target
from app.pipeline.spend import SpendGuard
from app.pipeline.step import StepRun, plan_steps
from app.pipeline.stream import ReplayStream, UpstreamStream
from app.pipeline.types import CacheStatus, GatewayRequest, GatewayResult, Step
from app.providers.compat.base import CompatRequestError, Translation
from app.providers.compat.registry import translate
from app.services.cache.store import CachedResponse, CacheStore
from app.services.ratelimit import RateLimiter
from app.services.route_cache import RouteCache
from app.services.spend.memory import MemorySpendStore
from app.upstream.client import UpstreamClient, UpstreamResponse
from app.upstream.errors import DestinationRefused, InvalidUpstreamRequest, UpstreamError, UpstreamTimeout

# Never relayed back: hop-by-hop headers, and what our server sets itself. Bodies are relayed
# decoded, so upstream encoding and length do not apply either.
_DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authenticate", "content-length", "content-encoding", "date", "server",
    }
)  # fmt: skip


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
        gateways: GatewaySource,
        providers: ProviderSource,
        cache: CacheStore,
        limiter: RateLimiter,
        sink: RecordSink,
        metrics: PipelineMetrics,
        routes: RouteCache | None = None,
        tracer: Tracer | None = None,
        spend: SpendGuard | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        # Tenant-configured hosts (custom providers) may reach public addresses only (limits.md §1).
        self._public_only = not settings.allow_private_destinations
        self._providers = providers
        self._limiter = limiter
        self._metrics = metrics
        self._spend = spend or SpendGuard.from_settings(settings, MemorySpendStore())
        self.admission = Admission(gateways, settings.admin_token)
        self.recorder = Recorder(sink, metrics, settings.log_body_max_bytes, tracer)
        self._cache_slots = CacheSlots(cache)
        self.routes = None if routes is None else RouteExecutor(
            routes, gateways, settings.admin_token, providers, limiter, self.recorder, metrics,
            self._run_step, self._spend.route_limits(limiter),
        )  # fmt: skip

    async def run(self, request: GatewayRequest) -> GatewayResult:
        if self.routes is not None and self.routes.wants(request):  # `dynamic/…` models
            target = dynamic_target(request)
            if target is not None:
                return await self.routes.run(request, target, self.admission.admit)
        started = time.perf_counter()
        gateway, authenticated = await self.admission.admit(request)
        dlp = RequestDlp.of(gateway.dlp, request.steps, request.request_content_type)  # before compat
        try:
            translations = [self._compat(step) for step in request.steps]
        except CompatRequestError as error:
            if request.request_type == "rest":
                raise  # the REST surface answers its own errors in the v4 envelope
            return compat_error_result(error, request.options.event_id)
        if dlp is not None:
            dlp.translations = translations  # responses are checked as the client gets them
        # 2008 before any call; `custom-{slug}` resolves through the account's custom providers.
        providers = [
            await self._providers.provider(request.account_id, step.provider) for step in request.steps
        ]
        check_steps(request.steps, providers)  # 2010 before any call: endpoints, headers, host segments
        runs = plan_steps(request, gateway, authenticated, providers)
        await self._enforce_rate_limit(runs[0])
        for run, translation in zip(runs, translations, strict=True):
            run.dlp = dlp
            result = await self._run_step(run)
            if result is not None:
                if dlp is not None:
                    dlp.label(result.headers)
                if translation is not None:
                    result = to_openai_format(translation, result)
                result.meta.gateway_ms = (time.perf_counter() - started) * 1000 - result.meta.upstream_ms
                self._metrics.observe_gateway_latency(result.meta.gateway_ms / 1000)
                return result
        raise AssertionError("the last step always returns or raises")

    async def _enforce_rate_limit(self, run: StepRun) -> None:
        """2003 with Retry-After when the gateway's limit is reached; no fallback is tried and the
        rejected request is logged."""
        gateway = run.gateway
        if gateway.rate_limiting_limit <= 0 or gateway.rate_limiting_interval <= 0:
            return
        wait = await self._limiter.hit(
            f"{gateway.account_id}/{gateway.id}",
            gateway.rate_limiting_limit,
            gateway.rate_limiting_interval,
            gateway.rate_limiting_technique,
            notes=run.notes,
        )
        if wait is None:
            return
        error = RateLimited(context=run.error_context(), retry_after_s=wait)
        self.recorder.begin(run).finish(error.status, False, error.message)
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

    async def _add_stored_key(self, run: StepRun) -> None:
        """Authenticated requests without a credential of their own get the gateway's stored key
        (the request's own credential wins, and then no alias is looked up). A `cf-aig-provider-key`
        is the request's own credential, put in the provider's header. Without any: 2042 where the
        surface requires one."""
        request, step, provider = run.request, run.step, run.provider
        if any(name.lower() in provider.credential_headers for name, _ in step.headers):
            return
        credential = provider_key_header(provider, run.options.provider_key)
        if credential is None and run.authenticated:
            credential = await self._providers.stored_credential(
                request.account_id, request.gateway_id, provider, run.options.byok_alias
            )
        if credential is not None:
            step.headers = [*step.headers, credential]
        elif request.require_credential:
            raise MissingProviderCredential(context=run.error_context())

    async def _run_step(self, run: StepRun) -> GatewayResult | None:
        """One step: its answer, or None when it failed and a later step should run."""
        await self._add_stored_key(run)  # before the cache key, which covers credentials
        step = run.step
        override = self._settings.upstream_override(run.provider.slug)
        url = run.provider.upstream_url(
            step.endpoint, run.request.account_id, override, from_parent=step.from_base_parent
        )
        if step.query_string:
            url = f"{url}?{step.query_string}"
        log = self.recorder.begin(run, url)
        if run.dlp is not None:  # before the cache: a blocked prompt is never served from it
            run.dlp.check_request(run.index, log, run.error_context())
        slot = self._cache_slots.open(run, url)
        if slot is None:
            return await self._call(run, log, url, "BYPASS" if run.options.skip_cache else "MISS", None)
        cached = await slot.lookup()
        if cached is not None:
            return self._serve_cached(run, log, cached)
        try:
            result = await self._call(run, log, url, "MISS", slot)
        except BaseException:
            await slot.abandon()
            raise
        if result is None or not result.is_stream:
            await slot.abandon()  # a no-op when the answer was stored
        return result

    def _serve_cached(self, run: StepRun, log: StepLog, cached: CachedResponse) -> GatewayResult:
        content_type = next((v for n, v in cached.headers if n.lower() == "content-type"), None)
        record = log.record
        record.cached = True
        record.attempts = 0
        record.response_content_type = content_type
        # A hit is not checked by DLP again; its row stores the body as the miss's row did.
        record.add_response_bytes(cached.body if cached.log_body is None else cached.log_body)
        record.response_size = len(cached.body)
        record.mark_first_byte()
        log.finish(cached.status, True)
        meta = run.meta(cached.status, "HIT", content_type)
        headers = list(cached.headers)
        if cached.chunks is not None:
            return GatewayResult(cached.status, headers, meta, stream=ReplayStream(cached.chunks))
        return GatewayResult(cached.status, headers, meta, body=cached.body)

    async def _call(
        self, run: StepRun, log: StepLog, url: str, cache_status: CacheStatus, slot: CacheSlot | None
    ) -> GatewayResult | None:
        """The upstream call of one step, with its retries."""
        try:
            return await self._call_upstream(run, log, url, cache_status, slot)
        except asyncio.CancelledError:  # client gone or request cancelled: the step was attempted
            log.finish(None, False, "cancelled before the response")  # a no-op once it has an answer
            raise

    async def _call_upstream(
        self, run: StepRun, log: StepLog, url: str, cache_status: CacheStatus, slot: CacheSlot | None
    ) -> GatewayResult | None:
        step = run.step
        # Spend limits, after the cache lookup (hits cost nothing): over budget is logged as 429
        # and the next step runs; the last step raised 2045.
        if run.gateway.spend is not None and not await self._spend.admit(run, log):
            return None
        upstream_started = time.perf_counter()
        try:
            request = self._client.build(
                step.method, url, step.headers, step.body, account=run.request.account_id,
                tenant_destination=self._public_only and run.provider.tenant_destination,
            )  # fmt: skip
            response, log.record.attempts = await send_with_retries(self._client, request, run.retry_policy())
        except (InvalidUpstreamRequest, DestinationRefused) as refused:
            # The request, not the provider, is at fault: 400 / 2010 whatever step this is.
            log.finish(None, False, str(refused))
            raise MalformedRequest(str(refused), context=run.error_context()) from None
        except UpstreamError as failure:
            self._failed(run, log, str(failure), timed_out=isinstance(failure, UpstreamTimeout))
            return None
        log.record.mark_first_byte()
        status = response.status_code
        content_type = response.headers.get("content-type")
        log.record.response_content_type = content_type
        headers = passthrough_headers(response)
        meta = run.meta(status, cache_status, content_type)
        ok = 200 <= status < 300
        if ok and content_type is not None and content_type.startswith("text/event-stream"):
            meta.upstream_ms = (time.perf_counter() - upstream_started) * 1000
            if run.dlp is not None and run.dlp.checks_responses:
                held = self._held_stream(run, response, headers, log, slot)
                await held.prime()
                return GatewayResult(status, headers, meta, stream=held)
            keep, limit = self._settings.cache_max_entry_bytes, self._settings.max_sse_event_bytes
            stream = UpstreamStream(response, headers, log, slot, keep, limit)
            return GatewayResult(status, headers, meta, stream=stream)
        try:
            body = await response.aread()
        except UpstreamError as exc:
            self._failed(run, log, f"upstream body cut: {exc}", timed_out=False)
            return None
        finally:
            await response.aclose()
        meta.upstream_ms = (time.perf_counter() - upstream_started) * 1000
        log.record.add_response_bytes(body)
        log.record.full_body = body  # a reference, not a copy; usage is read by the log writer
        redacted = None
        if ok and run.dlp is not None:
            redacted = run.dlp.check_response(status, body, content_type, log, run.index, run.error_context())
        log.finish(status, ok)
        if not ok and not run.is_last:
            return None
        if ok and slot is not None:
            await slot.store(CachedResponse(status, tuple(headers), body, log_body=redacted))
        return GatewayResult(status, headers, meta, body=body)

    def _held_stream(
        self,
        run: StepRun,
        response: UpstreamResponse,
        headers: list[tuple[str, str]],
        log: StepLog,
        slot: CacheSlot | None,
    ) -> DlpStream:
        """The stream under a response DLP policy; a compat step's is translated before the hold-back."""
        assert run.dlp is not None
        keep, limit = self._settings.cache_max_entry_bytes, self._settings.max_sse_event_bytes
        translator = run.dlp.stream_translator(run.index)
        held = DlpStream if translator is None else TranslatedDlpStream
        stream = held(response, headers, log, slot, keep, limit)
        holdback = self._settings.dlp_stream_holdback_chars
        return stream.with_dlp(run.dlp, holdback, run.error_context(), translator)

    def _failed(self, run: StepRun, log: StepLog, message: str, *, timed_out: bool) -> None:
        """Log a step that got no usable response; on the last step, raise 2012 or 2005."""
        log.finish(None, False, message)
        if not run.is_last:
            return
        error_type: type[GatewayError] = GatewayTimeout if timed_out else NoProviderResponse
        raise error_type(context=run.error_context())
