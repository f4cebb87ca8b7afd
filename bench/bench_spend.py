"""Spend-limit cost on the request path: what `SpendGuard.admit` plus the settlement at the end
of the log row cost in gateway CPU, with no spend limits, with the in-process store, and with
the Redis store (whose round trips are counted from Redis's own command statistics), next to
what one bare PING costs through the same client (the floor of any round trip).

    .venv/bin/python bench/bench_spend.py [--calls 20000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import orjson

from app.core.metrics import Metrics
from app.logs.record import LogRecord
from app.pipeline.recording import Recorder
from app.pipeline.spend import SpendGuard
from app.pipeline.step import plan_steps
from app.pipeline.types import GatewayRequest, Options, Step
from app.providers.catalog import get_provider
from app.services.config import GatewayConfig
from app.services.spend.memory import MemorySpendStore
from app.services.spend.redis import RedisSpendStore
from app.services.spend.rules import compile_spend_limits
from app.services.spend.store import SpendStore

BODY = orjson.dumps(
    {"model": "gpt-4o-mini", "max_tokens": 256, "messages": [{"role": "user", "content": "hello " * 50}]}
)
RULES = {
    "rules": [
        {"id": "per-user", "limitType": "cost", "limit": 1e6, "window": 86400, "technique": "fixed",
         "metadata": {"user": {"mode": "partition"}}},
        {"id": "week", "limitType": "cost", "limit": 1e6, "window": 604800, "technique": "sliding"},
    ]
}  # fmt: skip


class _Sink:
    def put(self, record: LogRecord) -> None:
        return None


def gateway(spend: dict[str, Any] | None, account: str) -> GatewayConfig:
    return GatewayConfig(
        account_id=account, id="gw", authentication=False, collect_logs=False, cache_ttl=0,
        rate_limiting_limit=0, rate_limiting_interval=0, rate_limiting_technique="fixed",
        retry_max_attempts=None, retry_delay=None, retry_backoff=None, log_management=None,
        log_management_strategy=None, spend=compile_spend_limits(spend),
    )  # fmt: skip


async def measure(store: SpendStore | None, spend: dict[str, Any] | None, calls: int) -> float:
    """Gateway CPU (µs) per call of admission, the end of the log row and its settlement (the
    response body is one with usage). No store: the log row alone, the baseline."""
    guard = SpendGuard(store or MemorySpendStore(), fail_open=False, lease_s=660, default_max_output=4096)
    config = gateway(spend, "bench" + uuid.uuid4().hex[:8])
    recorder = Recorder(_Sink(), Metrics(), 32 * 1024)
    provider = get_provider("openai")
    answer = b'{"usage": {"prompt_tokens": 60, "completion_tokens": 20}}'
    cpu = 0.0
    for i in range(calls):
        options = Options(metadata={"user": f"u{i % 100}"})
        step = Step("openai", "chat/completions", BODY, [], options=options)
        request = GatewayRequest(config.account_id, "gw", "provider", [step], options=options)
        run = plan_steps(request, config, False, [provider])[0]
        log = recorder.begin(run)  # the row exists whether or not spend limits are set
        started = time.process_time()
        if store is not None and config.spend is not None:  # as the pipeline calls it
            assert await guard.admit(run, log)
        log.record.full_body = answer
        log.finish(200, True)
        cpu += time.process_time() - started
    if store is not None:
        await store.drain()
    return cpu / calls * 1e6


async def redis_calls(client: Any) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    await measure(MemorySpendStore(), RULES, 500)  # warm up
    base = await measure(None, None, args.calls)
    print(f"log row alone (baseline): {base:6.2f} µs CPU per call")
    none = await measure(MemorySpendStore(), None, args.calls) - base
    print(f"no spend limits:          {none:+6.2f} µs CPU per call over the baseline")
    memory = await measure(MemorySpendStore(), RULES, args.calls) - base
    print(f"2 rules, in-process:      {memory:+6.2f} µs CPU per call (admission + settlement)")
    if args.redis:
        from redis import asyncio as redis_asyncio

        client = redis_asyncio.from_url(args.redis)
        store = RedisSpendStore(client)
        await measure(store, RULES, 200)
        before = await redis_calls(client)
        wall = time.perf_counter()
        cpu = await measure(store, RULES, args.calls) - base
        wall = (time.perf_counter() - wall) / args.calls * 1e6
        trips = (await redis_calls(client) - before) / args.calls
        print(f"2 rules, Redis:           {cpu:+6.2f} µs CPU per call, {trips:.2f} Redis calls "
              f"(admission + settlement), {wall:.0f} µs wall per call")  # fmt: skip
        started = time.process_time()
        for _ in range(args.calls):
            await client.ping()
        floor = (time.process_time() - started) / args.calls * 1e6
        print(f"reference: one bare Redis PING through redis-py costs {floor:.2f} µs CPU")
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
