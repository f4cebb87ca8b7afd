"""Dynamic-route CPU per request: resolution (cached) and the walk of a 5-element graph
(start → conditional → percentage → model → end), everything the gateway does for a route before
and after the model call, with the model call itself answered at once in process. Also the cost
a request without a dynamic model pays (the `wants` test on its body).

    .venv/bin/python bench/bench_routes.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import orjson

from app.core.ids import new_log_id
from app.pipeline.route_call import RouteRequest
from app.pipeline.routing import RouteExecutor, _route_request, dynamic_target, resolve_dynamic_model
from app.pipeline.types import GatewayRequest, GatewayResult, Options, ResultMeta, Step
from app.routing.graph import ModelCall, compile_graph
from app.routing.validate import validate_elements
from app.services.config import GatewayConfig

ELEMENTS: list[dict[str, Any]] = [
    {"id": "start", "type": "start", "outputs": {"next": {"elementId": "plan"}}},
    {
        "id": "plan",
        "type": "conditional",
        "properties": {"conditions": {"metadata.plan": {"$eq": "free"}}},
        "outputs": {"true": {"elementId": "split"}, "false": {"elementId": "split"}},
    },
    {"id": "split", "type": "percentage", "outputs": {"100%": {"elementId": "m1"}}},
    {
        "id": "m1",
        "type": "model",
        "properties": {"provider": "openai", "model": "gpt-4o-mini", "timeout": 1000, "retries": 0},
        "outputs": {"success": {"elementId": "end"}},
    },
    {"id": "end", "type": "end", "outputs": {}},
]
BODY = orjson.dumps({"model": "dynamic/r", "messages": [{"role": "user", "content": "hi"}]})
PLAIN = orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
GATEWAY = GatewayConfig("acct", "gw", False, True, 0, 0, 0, "fixed", None, None, None, None, None)


class InstantCaller:
    """Answers a model element at once: what is measured is the gateway's own route work."""

    async def call(self, route: RouteRequest, element: ModelCall, index: int, log_id: str) -> GatewayResult:
        meta = ResultMeta(log_id, route.event_id, index, "MISS", "application/json", 200)
        return GatewayResult(200, [("content-type", "application/json")], meta, body=b"{}")


class WarmRoutes:
    """The route cache after its first load (a dict lookup, as `RouteCache.deployed` on a hit)."""

    def __init__(self) -> None:
        elements, problems = validate_elements(ELEMENTS)
        assert not problems, problems
        self.graph = compile_graph("route-id", "r", "version-id", elements)

    async def deployed(self, account_id: str, gateway_id: str, name: str) -> Any:
        return self.graph

    async def pinned(self, *args: str) -> Any:
        return None


def _request(body: bytes) -> GatewayRequest:
    step = Step("compat", "chat/completions", body, [("content-type", "application/json")])
    return GatewayRequest("acct", "gw", "compat", [step], Options(metadata={"plan": "free"}))


async def measure(n: int) -> tuple[float, float]:
    routes: Any = WarmRoutes()
    executor = RouteExecutor.__new__(RouteExecutor)
    executor._caller = InstantCaller()  # type: ignore[assignment]
    executor._routes = routes
    cpu = time.process_time()
    for _ in range(n):
        request = _request(BODY)
        request.log_id = new_log_id()
        target = dynamic_target(request)
        assert target is not None
        step, body = target
        graph = await resolve_dynamic_model(routes, "acct", "gw", body["model"])
        result = await executor._walk(_route_request(request, GATEWAY, graph, step, body))
        assert result.headers[-1] == ("cf-aig-route-element", "m1")
    routed_us = (time.process_time() - cpu) / n * 1e6
    plain = _request(PLAIN)
    cpu = time.process_time()
    for _ in range(n):
        RouteExecutor.wants(plain)
    plain_us = (time.process_time() - cpu) / n * 1e6
    return routed_us, plain_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    routed_us, plain_us = asyncio.run(measure(args.requests))
    print(f"route resolution + walk, 5-element graph: {routed_us:.1f} µs CPU per request")
    print(f"request without a dynamic model (the wants() test): {plain_us:.2f} µs CPU per request")


if __name__ == "__main__":
    main()
