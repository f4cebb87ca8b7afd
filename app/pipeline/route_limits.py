"""The `rate` elements of dynamic routes (routing.md §3.3): a request counter (`count`, in the
gateway's rate-limit store, so Redis-shared when configured) or a budget of model cost (`cost`,
kept in this process) per value of the element's key.

A cost limit admits a request while what was spent in the window is under the limit, and the
cost of the model calls made after it is added once they are known (settled at the end of the
body or stream)."""

from __future__ import annotations

import hashlib
import time
from collections import deque

import orjson

from app.core.errors import GatewayError, RateLimited
from app.core.notes import Notes
from app.routing.conditions import MISSING, RequestView
from app.routing.graph import Limit, RouteGraph
from app.services.ratelimit import RateLimiter

MAX_BUDGET_KEYS = 100_000


class RouteBudgetExceeded(GatewayError):
    """A route's cost limit was reached and the element has nowhere to fall back to."""

    code, status, default_message = 2045, 429, "Route budget exceeded"


class CostWindows:
    """Spent cost per key, over fixed (epoch-aligned) or sliding windows; bounded memory."""

    def __init__(self) -> None:
        self._fixed: dict[str, tuple[int, float]] = {}
        self._sliding: dict[str, deque[tuple[float, float]]] = {}

    def spent(self, key: str, window_s: int, technique: str, now: float) -> float:
        if technique == "fixed":
            number, total = self._fixed.get(key, (-1, 0.0))
            return total if number == int(now // window_s) else 0.0
        entries = self._sliding.get(key)
        if not entries:
            return 0.0
        while entries and entries[0][0] <= now - window_s:
            entries.popleft()
        return sum(amount for _, amount in entries)

    def add(self, key: str, amount: float, window_s: int, technique: str, now: float) -> None:
        if len(self._fixed) + len(self._sliding) > MAX_BUDGET_KEYS:
            self._fixed.clear()
            self._sliding.clear()
        if technique == "fixed":
            number = int(now // window_s)
            current, total = self._fixed.get(key, (number, 0.0))
            self._fixed[key] = (number, (total if current == number else 0.0) + amount)
        else:
            self._sliding.setdefault(key, deque()).append((now, amount))


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


class RouteLimits:
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._costs = CostWindows()

    async def admit(self, element: Limit, key: str, notes: Notes) -> GatewayError | None:
        """None: the request takes `success` (and, for `count`, is counted); else the error that
        ends the route when the fallback leads nowhere."""
        if element.limit_type == "count":
            wait = await self._limiter.hit(
                key, max(1, int(element.limit)), element.window_s, element.technique, notes=notes
            )
            return None if wait is None else RateLimited("Route rate limit exceeded", retry_after_s=wait)
        if self._costs.spent(key, element.window_s, element.technique, time.time()) >= element.limit:
            return RouteBudgetExceeded()
        return None

    def settle(self, element: Limit, key: str, cost: float) -> None:
        if cost > 0:
            self._costs.add(key, cost, element.window_s, element.technique, time.time())
