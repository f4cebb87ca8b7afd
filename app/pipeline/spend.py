"""Spend limits in the pipeline (spend-limits.md): before a step's upstream call, reserve its
estimate in every applicable budget, or refuse it with 429 / 2045; when its log row ends (however
it ends: answered, failed, cut, abandoned, cancelled), settle the reservation to the real cost.

Gateways without spend limits cost one attribute test per step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from app.core.errors import ServiceUnavailable, SpendLimitExceeded
from app.core.ids import new_log_id
from app.core.settings import Settings
from app.logs.record import LogRecord
from app.pipeline.recording import StepLog
from app.pipeline.route_limits import RouteLimits
from app.pipeline.spend_estimate import estimate_call
from app.pipeline.step import StepRun
from app.providers.cost import cost_of, prices_of
from app.providers.usage import usage_from_body
from app.services.config import GatewayConfig
from app.services.ratelimit import RateLimiter
from app.services.spend.rules import NANO_PER_USD, CallFacts, SpendRule
from app.services.spend.store import Bucket, SpendStore, SpendStoreUnavailable

logger = logging.getLogger("aigw.spend")

UNAVAILABLE_NOTE = "spend limiter unavailable"
Metadata = Mapping[str, Any] | None


def limit_text(limit: float) -> str:
    """The shortest decimal that reads back as the same number: `5`, `0.042`."""
    text = repr(float(limit))
    return text.removesuffix(".0")


def refusal_message(rule: SpendRule, provider: str, model: str | None) -> str:
    return (
        f"Spend limit exceeded: rule '{rule.id}' (cost limit {limit_text(rule.limit)} per "
        f"{rule.window_s}s, {rule.technique}) for {provider} {model or ''}"
    ).rstrip()


def real_cost(record: LogRecord, model: str | None) -> float | None:
    """What the call cost, as its log row will say (None, counted as 0, when nothing came back to
    charge or its price is unknown)."""
    if not record.usage_known and record.success and not record.cached:
        usage = usage_from_body(record.full_body if record.full_body is not None else record.response_head)
        record.tokens_in, record.tokens_out = usage.tokens_in, usage.tokens_out
        record.usage_known = True  # read once: the log writer takes these as they are
    if not record.success and record.tokens_in is None and record.tokens_out is None:
        return None
    return cost_of(record.provider, model, record.tokens_in, record.tokens_out, record.custom_cost)


def _buckets(gateway: GatewayConfig, matched: list[tuple[SpendRule, str]]) -> list[Bucket]:
    scope = f"{gateway.account_id}/{gateway.id}/"
    return [
        Bucket(scope + key, rule.limit_nano, rule.window_s, rule.slot_s, rule.sliding)
        for rule, key in matched
    ]


class SpendGuard:
    def __init__(self, store: SpendStore, fail_open: bool, lease_s: float, default_max_output: int) -> None:
        self._store = store
        self._fail_open = fail_open
        self._lease_s = lease_s
        self._default_max_output = default_max_output

    def route_limits(self, limiter: RateLimiter) -> RouteLimits:
        """The `rate` elements of dynamic routes: cost limits in this store, on the same terms."""
        return RouteLimits(limiter, self._store, self._fail_open, self._lease_s, self._default_max_output)

    @classmethod
    def from_settings(cls, settings: Settings, store: SpendStore) -> SpendGuard:
        # A reservation outlives any call: the upstream idle timeout, plus a minute.
        lease_s = settings.upstream_timeout_s + 60
        return cls(store, settings.spend_limit_fail_open, lease_s, settings.spend_default_max_output_tokens)

    async def admit(self, run: StepRun, log: StepLog) -> bool:
        """True: the call may go (reserved, or not limited). False: refused and logged as 429,
        the next step runs; on the last step the 2045 is raised instead."""
        policy = run.gateway.spend
        if policy is None:
            return True
        call = estimate_call(run, self._default_max_output)
        if call is None:
            return True
        matched = policy.applicable(call.facts)
        if not matched:
            return True
        buckets = _buckets(run.gateway, matched)
        reservation = new_log_id()
        try:
            verdict = await self._store.admit(buckets, reservation, call.estimate, self._lease_s)
        except SpendStoreUnavailable as exc:
            return self._unavailable(run, log, str(exc))
        if verdict.refused is not None:
            rule = matched[verdict.refused][0]
            error = SpendLimitExceeded(
                refusal_message(rule, run.provider.slug, call.model),
                context=run.error_context(),
                retry_after_s=verdict.retry_after_s,
            )
            log.record.cost_override = 0.0
            log.finish(error.status, False, error.message)
            if run.is_last:
                raise error
            return False
        log.on_finish = partial(self._settle, buckets, reservation, call.estimate, call.model)
        return True

    async def admit_session(
        self, gateway: GatewayConfig, provider: str, model: str | None, metadata: Metadata
    ) -> Callable[[LogRecord], None] | None:
        """A realtime session: refused at the handshake when an applicable bucket is already at
        its limit; nothing is reserved, and what it cost is settled when it closes (the callback
        for its log row). None: not limited."""
        policy = gateway.spend
        if policy is None or prices_of(provider, model, None) is None:
            return None
        models = (model, f"{provider}/{model}") if model else ()
        facts = CallFacts(provider, models, f"{provider}/{model}" if model else None, metadata)
        matched = policy.applicable(facts)
        if not matched:
            return None
        buckets = _buckets(gateway, matched)
        try:
            verdict = await self._store.admit(buckets, "", 0, self._lease_s)
        except SpendStoreUnavailable as exc:
            if not self._fail_open:
                raise ServiceUnavailable("Spend limiter unavailable; try again shortly") from exc
            return None
        if verdict.refused is not None:
            rule = matched[verdict.refused][0]
            raise SpendLimitExceeded(
                refusal_message(rule, provider, model), retry_after_s=verdict.retry_after_s
            )
        return partial(self._settle, buckets, "", 0, model)

    def _settle(
        self, buckets: list[Bucket], reservation: str, estimate: int, model: str | None, record: LogRecord
    ) -> None:
        cost = real_cost(record, model)
        record.cost_override = cost
        self._store.settle(buckets, reservation, estimate, max(0, round((cost or 0.0) * NANO_PER_USD)))

    def _unavailable(self, run: StepRun, log: StepLog, why: str) -> bool:
        logger.warning(
            "spend limiter unavailable (%s); failing %s", why, "open" if self._fail_open else "closed"
        )
        run.notes.add(UNAVAILABLE_NOTE)
        if self._fail_open:
            return True
        error = ServiceUnavailable(
            "Spend limiter unavailable; try again shortly", context=run.error_context()
        )
        log.finish(error.status, False, error.message)
        raise error
