"""The `rate` elements of dynamic routes (routing.md §3.3): a request counter (`count`, in the
gateway's rate-limit store) or a budget of model cost (`cost`, in the spend store); both are
Redis-shared when Redis is configured.

A cost limit works as spend limits do (spend-limits.md §4): the element reserves the most the
model call after it can cost (the largest estimate over the model elements it can lead to), all
or nothing, and the request takes `fallback` when that does not fit; when the route's answer
ends (or the route ends without one) the reservation is settled to what the call really cost.
So budgets are exact under concurrency, across processes too."""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.errors import GatewayError, RateLimited, ServiceUnavailable
from app.core.ids import new_log_id
from app.core.notes import Notes
from app.pipeline.spend_estimate import output_bound
from app.providers.cost import output_bounds, prices_of
from app.routing.conditions import MISSING, RequestView
from app.routing.graph import Conditional, Limit, ModelCall, Percentage, RouteGraph, Start
from app.services.ratelimit import RateLimiter
from app.services.spend.rules import NANO_PER_USD
from app.services.spend.store import Bucket, SpendStore, SpendStoreUnavailable

logger = logging.getLogger("aigw.routing")

MEMO_SIZE = 4096  # (route version, element) -> the model elements after it


class RouteBudgetExceeded(RateLimited):
    """A route's cost limit was reached and the element has nowhere to fall back to."""

    code, status, default_message = 2045, 429, "Route budget exceeded"


@dataclass(frozen=True, slots=True)
class Held:
    """A cost limit's reservation, settled once when the route's answer ends."""

    bucket: Bucket
    reservation: str
    estimate: int


def counter_key(
    account_id: str, gateway_id: str, graph: RouteGraph, element: Limit, view: RequestView
) -> str:
    """Per (route, element, key value, window, technique): the counters survive a re-deployment
    while these stay the same. The key value is hashed (it may be long, or any JSON)."""
    value = view.lookup(element.key) if element.key is not None else ""
    if value is MISSING:
        value = None
    digest = hashlib.sha256(orjson.dumps(value)).hexdigest()[:32]
    return (
        f"{account_id}/{gateway_id}/route:{graph.route_id}:{element.id}:"
        f"{element.window_s}:{element.technique}:{digest}"
    )


def models_after(graph: RouteGraph, element: Limit) -> tuple[ModelCall, ...]:
    """The model elements a request can reach once it has taken `element`'s `success`."""
    found: dict[str, ModelCall] = {}
    seen: set[str] = set()
    todo = [element.success]
    while todo:
        current = todo.pop()
        if current in seen or current not in graph.elements:
            continue
        seen.add(current)
        node = graph.elements[current]
        if isinstance(node, Start):
            todo.append(node.next)
        elif isinstance(node, Conditional):
            todo += (node.if_true, node.if_false)
        elif isinstance(node, Percentage):
            todo += [target for _, target in node.thresholds]
            if node.otherwise is not None:
                todo.append(node.otherwise)
        elif isinstance(node, Limit):
            todo += (node.success, node.fallback)
        elif isinstance(node, ModelCall):
            found[node.id] = node
            todo.append(node.fallback)
    return tuple(found.values())


def estimate_of(models: tuple[ModelCall, ...], body: dict[str, Any], size: int, default_out: int) -> int:
    """Nano-USD: the largest spend-limits estimate (§4) over `models` for the client's body of
    `size` bytes (a bound on its text tokens in any provider's format); 0 when none is priced."""
    bound = output_bound(body)
    most = 0.0
    for model in models:
        prices = prices_of(model.provider, model.model, None)
        if prices is None:  # unpriced: neither checked nor counted
            continue
        out_max = (
            bound if bound is not None else output_bounds().get((model.provider, model.model), default_out)
        )
        most = max(most, size * prices[0] + out_max * prices[1])
    return math.ceil(most * NANO_PER_USD)


class RouteLimits:
    def __init__(
        self, limiter: RateLimiter, store: SpendStore, fail_open: bool, lease_s: float, default_out: int
    ) -> None:
        self._limiter = limiter
        self._store = store
        self._fail_open = fail_open
        self._lease_s = lease_s
        self._default_out = default_out
        self._after: dict[tuple[str, str, str], tuple[ModelCall, ...]] = {}

    async def admit(
        self, graph: RouteGraph, element: Limit, key: str, body: dict[str, Any], size: int
    ) -> GatewayError | Held | None:
        """None: the request takes `success` (for `count`, counted; for `cost`, the store was
        down and fails open); Held: it takes `success` with this reservation; an error: it takes
        `fallback`, and that error ends the route if the fallback leads nowhere. Raises 503 /
        2014 when the spend store is down and fails closed."""
        if element.limit_type == "count":
            wait = await self._limiter.hit(
                key, max(1, int(element.limit)), element.window_s, element.technique, notes=Notes()
            )
            return None if wait is None else RateLimited("Route rate limit exceeded", retry_after_s=wait)
        estimate = estimate_of(self._models(graph, element), body, size, self._default_out)
        slot_s = max(1, -(-element.window_s // 1000))
        limit = round(element.limit * NANO_PER_USD)
        bucket = Bucket(key, limit, element.window_s, slot_s, element.technique == "sliding")
        held = Held(bucket, new_log_id(), estimate)
        try:
            verdict = await self._store.admit([bucket], held.reservation, estimate, self._lease_s)
        except SpendStoreUnavailable as exc:
            logger.warning(
                "route budget unavailable (%s); failing %s", exc, "open" if self._fail_open else "closed"
            )
            if self._fail_open:
                return None
            raise ServiceUnavailable("Spend limiter unavailable; try again shortly") from exc
        if verdict.refused is not None:
            return RouteBudgetExceeded(retry_after_s=verdict.retry_after_s)
        return held

    def settle(self, held: list[Held], cost: float) -> None:
        """Each reservation released, with what the route's model calls after it cost."""
        amount = max(0, round(cost * NANO_PER_USD))
        for reservation in held:
            self._store.settle([reservation.bucket], reservation.reservation, reservation.estimate, amount)

    def _models(self, graph: RouteGraph, element: Limit) -> tuple[ModelCall, ...]:
        memo_key = (graph.route_id, graph.version_id, element.id)
        models = self._after.get(memo_key)
        if models is None:
            if len(self._after) >= MEMO_SIZE:
                self._after.clear()
            models = self._after[memo_key] = models_after(graph, element)
        return models
