"""Spend-limit cost on the request path: what `SpendGuard.admit` plus the settlement at the end
of the log row cost in gateway CPU, with no spend limits, with the in-process store, and with
the Redis store (its round trips counted from Redis's own command statistics), at 1 and at 32
requests in flight.

The Redis store's logic is the same in every row; what carries its commands differs:
- `pipe`: the store's own pipelined connection (app/services/spend/pipe.py), what the server uses;
- `redis-py client`: `Redis.execute_command` through the pool, settlements as tasks (the store
  before the pipe);
- `redis-py Connection`: redis-py's lower-level `redis.asyncio.Connection`, no pool
  (`send_packed_command` / `read_response`), one command at a time under a lock, settlements as
  tasks: what a store on redis-py's thinnest layer would cost.
Then one bare PING through each, the floor of any round trip. Rounds are interleaved (each
variant once per round) and medians printed with their spread.

    .venv/bin/python bench/bench_spend.py [--calls 20000] [--rounds 5] [--loop uvloop|asyncio]
        [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
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
from app.services.spend.pipe import RedisPipe
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
ANSWER = b'{"usage": {"prompt_tokens": 60, "completion_tokens": 20}}'


class _Sink:
    def put(self, record: LogRecord) -> None:
        return None


def _awaited_or_task(call: Coroutine[Any, Any, Any], args: tuple[Any, ...]) -> Any:
    """An admission is awaited by its caller as it is; a settlement, which nobody awaits, needs a
    task to read its reply (as the store did on redis-py)."""
    return asyncio.ensure_future(call) if b"settle" in args else call


class ClientCarrier:
    """Commands through redis-py's client (pool, lock, retry), as the store sent them before."""

    def __init__(self, url: str) -> None:
        from redis import asyncio as redis_asyncio

        # redis-py 8's pool holds 100 connections by default: settlements in flight at 32 requests
        # at a time can need more, and would then fail rather than cost CPU.
        self.client = redis_asyncio.from_url(url, max_connections=10_000)

    def call(self, *args: Any) -> Any:
        return _awaited_or_task(self.client.execute_command(*args), args)

    async def aclose(self) -> None:
        await self.client.aclose()


class ConnectionCarrier:
    """Commands through one `redis.asyncio.Connection`: no pool, a lock so that concurrent callers
    take turns (the connection reads one reply per command sent)."""

    def __init__(self, url: str) -> None:
        from redis.asyncio.connection import Connection, parse_url

        self.connection = Connection(**parse_url(url))
        self._lock = asyncio.Lock()

    def call(self, *args: Any) -> Any:
        return _awaited_or_task(self._call(args), args)

    async def _call(self, args: tuple[Any, ...]) -> Any:
        async with self._lock:
            await self.connection.send_packed_command(self.connection.pack_command(*args), False)
            return await self.connection.read_response()

    async def ping(self) -> Any:
        """A bare round trip: no lock, no task."""
        await self.connection.send_packed_command(b"*1\r\n$4\r\nPING\r\n", False)
        return await self.connection.read_response()

    async def aclose(self) -> None:
        await self.connection.disconnect()


def gateway(spend: dict[str, Any] | None, account: str) -> GatewayConfig:
    return GatewayConfig(
        account_id=account, id="gw", authentication=False, collect_logs=False, cache_ttl=0,
        rate_limiting_limit=0, rate_limiting_interval=0, rate_limiting_technique="fixed",
        retry_max_attempts=None, retry_delay=None, retry_backoff=None, log_management=None,
        log_management_strategy=None, spend=compile_spend_limits(spend),
    )  # fmt: skip


async def measure(store: SpendStore | None, spend: dict[str, Any] | None, calls: int, inflight: int) -> float:
    """Gateway CPU (µs) per call of admission, the end of the log row and its settlement (the
    response body is one with usage), `inflight` calls at a time. No store: the log row alone."""
    guard = SpendGuard(store or MemorySpendStore(), fail_open=False, lease_s=660, default_max_output=4096)
    config = gateway(spend, "bench" + uuid.uuid4().hex[:8])
    recorder = Recorder(_Sink(), Metrics(), 32 * 1024)
    provider = get_provider("openai")
    checked = store is not None and config.spend is not None

    async def worker(first: int) -> None:
        for i in range(first, calls, inflight):
            options = Options(metadata={"user": f"u{i % 100}"})
            step = Step("openai", "chat/completions", BODY, [], options=options)
            request = GatewayRequest(config.account_id, "gw", "provider", [step], options=options)
            run = plan_steps(request, config, False, [provider])[0]
            log = recorder.begin(run)  # the row exists whether or not spend limits are set
            if checked:  # as the pipeline calls it
                assert await guard.admit(run, log)
            log.record.full_body = ANSWER
            log.finish(200, True)

    started = time.process_time()
    await asyncio.gather(*(worker(first) for first in range(inflight)))
    if store is not None:
        await store.drain()
    return (time.process_time() - started) / calls * 1e6


async def ping_cpu(ping: Callable[[], Awaitable[Any]], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await ping()
    return (time.process_time() - started) / calls * 1e6


async def script_calls(url: str) -> int:
    pipe = RedisPipe(url)
    raw = await pipe.call(b"INFO", b"commandstats")
    await pipe.aclose()
    total = 0
    for line in raw.decode().splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):+7.1f} µs (min {min(values):+.1f}, max {max(values):+.1f})"


async def main(args: argparse.Namespace) -> None:
    calls, rounds = args.calls, args.rounds
    await measure(MemorySpendStore(), RULES, 500, 1)  # warm up
    results: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    carriers: dict[str, Any] = {}
    if args.redis:
        carriers = {
            "pipe": RedisPipe(args.redis),
            "redis-py client": ClientCarrier(args.redis),
            "redis-py Connection": ConnectionCarrier(args.redis),
        }
        for carrier in carriers.values():  # connect, and load the script once
            await measure(RedisSpendStore(carrier), RULES, 200, 4)
    trips: list[float] = []
    for _ in range(rounds):
        for inflight in (1, 32):
            base = await measure(None, None, calls, inflight)
            note(f"c={inflight:<2} request set-up and log row (baseline, absolute)", base)
            note(
                f"c={inflight:<2} no spend limits",
                await measure(MemorySpendStore(), None, calls, inflight) - base,
            )
            note(
                f"c={inflight:<2} 2 rules, in-process",
                await measure(MemorySpendStore(), RULES, calls, inflight) - base,
            )
            for name, carrier in carriers.items():
                before = await script_calls(args.redis) if name == "pipe" else 0
                cpu = await measure(RedisSpendStore(carrier), RULES, calls, inflight) - base
                if name == "pipe":
                    trips.append((await script_calls(args.redis) - before) / calls)
                note(f"c={inflight:<2} 2 rules, Redis via {name}", cpu)
        if args.redis:
            pipe, client, conn = (
                carriers["pipe"],
                carriers["redis-py client"],
                carriers["redis-py Connection"],
            )
            note("PING via pipe (absolute)", await ping_cpu(partial(pipe.call, b"PING"), calls))
            note("PING via redis-py client (absolute)", await ping_cpu(client.client.ping, calls))
            note("PING via redis-py Connection (absolute)", await ping_cpu(conn.ping, calls))
    print(f"{rounds} interleaved rounds of {calls} calls, loop {args.loop}; CPU per call over the baseline:")
    for name, values in results.items():
        print(f"  {name:56} {summary(values)}")
    if trips:
        print(
            f"  Redis script calls per request (pipe): {statistics.median(trips):.2f} (admission + settlement)"
        )
    for carrier in carriers.values():
        await carrier.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")  # the server's
    parser.add_argument("--redis", default=None)
    arguments = parser.parse_args()
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
