"""The REST surface's cost beside the paths it shares work with: `/ai/v1/chat/completions` (REST)
vs `/compat/chat/completions` (the same translation, legacy host) vs the provider pass-through.

Same setup as `bench_gateway.py` (separate upstream and `aigw serve` processes, SQLite logs and the
cache on, every body distinct, so each call is a stored miss that is logged). Prints, per path, the
latency added over calling the fake directly at c=1 (p50) and the gateway's CPU per request at
c=32. REST calls always carry a token, so `compat+token` (compat on a gateway with authentication
on) is the like-for-like comparison; `compat` shows what the token check itself costs. The paths are interleaved over `--rounds` so that drift of the machine hits them alike.

    .venv/bin/python bench/bench_rest.py [--requests 3000] [--concurrency 32] [--rounds 3] [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import httpx
import psutil

from bench.bench_gateway import ADMIN, ROOT, RawClient, cpu_seconds, free_port, pct, wait_ready

ACCOUNT, GATEWAY = "bench", "gw"
AUTH_GATEWAY = "gw-auth"  # authentication on: the compat call checks a token too, as REST always does


def build(port: int, path: str, body: bytes, headers: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"{headers}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run_load(
    port: int, path: str, headers: str, make_body: Callable[[int], bytes], total: int, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        client = RawClient(port)
        await client.connect()
        for index in counter:
            raw = build(port, path, make_body(index), headers)
            started = time.perf_counter()
            status, _ = await client.request(raw)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"{path}: status {status}")
        client.writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def body_maker(model: str, stream: bool, tag: str) -> Callable[[int], bytes]:
    def make(index: int) -> bytes:
        query: dict[str, object] = {
            "model": model,
            "messages": [{"role": "user", "content": f"hi {tag} {index}"}],
        }
        if stream:
            query["stream"] = True
            query["stream_options"] = {"include_usage": True}
        return json.dumps(query).encode()

    return make


def paths(token: str) -> dict[str, tuple[str, str, str]]:
    """name → (path, headers, model) of each way to the same upstream call."""
    provider_key = "Authorization: Bearer sk-bench\r\n"
    rest_headers = (
        f"Authorization: Bearer {token}\r\ncf-aig-gateway-id: {GATEWAY}\r\ncf-aig-provider-key: sk-bench\r\n"
    )
    return {
        "direct": ("/v1/chat/completions", provider_key, "gpt-4o-mini"),
        "pass-through": (f"/v1/{ACCOUNT}/{GATEWAY}/openai/chat/completions", provider_key, "gpt-4o-mini"),
        "compat": (f"/v1/{ACCOUNT}/{GATEWAY}/compat/chat/completions", provider_key, "openai/gpt-4o-mini"),
        "compat+token": (
            f"/v1/{ACCOUNT}/{AUTH_GATEWAY}/compat/chat/completions",
            f"{provider_key}cf-aig-authorization: Bearer {token}\r\n",
            "openai/gpt-4o-mini",
        ),
        "rest": (f"/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions", rest_headers, "openai/gpt-4o-mini"),
    }


async def report(
    proc: psutil.Process, ports: dict[str, int], token: str, total: int, conc: int, rounds: int, stream: bool
) -> None:
    ways = paths(token)
    for name, (path, headers, model) in ways.items():  # warm every path
        await run_load(ports[name], path, headers, body_maker(model, stream, "warm"), 200, 4)
    latency: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways if name != "direct"}
    for _ in range(rounds):
        for name, (path, headers, model) in ways.items():
            tag = f"{name}-{time.time_ns()}"
            latency[name] += await run_load(
                ports[name], path, headers, body_maker(model, stream, tag), total // 3, 1
            )
            if name == "direct":
                continue
            before = cpu_seconds(proc)
            await run_load(ports[name], path, headers, body_maker(model, stream, tag + "c"), total, conc)
            cpu[name].append((cpu_seconds(proc) - before) / total * 1000)
    direct_p50 = pct(latency["direct"], 0.5)
    kind = "streaming" if stream else "non-streaming"
    print(f"{kind}: direct p50 {direct_p50:.2f} ms at c=1")
    for name in cpu:
        spread = "/".join(f"{value:.3f}" for value in cpu[name])
        print(
            f"  {name:13s} c=1 added p50 {pct(latency[name], 0.5) - direct_p50:+.2f} ms"
            f" | c={conc} gateway CPU {sum(cpu[name]) / len(cpu[name]):.3f} ms/req (rounds {spread})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    upstream_port, gateway_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="aigw-bench-rest-")
    env = {
        **os.environ,
        "AIGW_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "AIGW_ADMIN_TOKEN": ADMIN,
        "AIGW_UPSTREAM_OPENAI": f"http://127.0.0.1:{upstream_port}/v1",
    }
    python = sys.executable
    upstream = subprocess.Popen(
        [python, "-m", "uvicorn", "bench.upstream_app:app", "--port", str(upstream_port),
         "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [python, "-m", "app.cli", "serve", "--port", str(gateway_port)], cwd=ROOT, env=env
    )
    try:
        wait_ready(f"http://127.0.0.1:{upstream_port}/")
        wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
        admin = {"Authorization": f"Bearer {ADMIN}"}
        base = f"http://127.0.0.1:{gateway_port}/client/v4/accounts/{ACCOUNT}"
        for gateway_id, authentication in ((GATEWAY, False), (AUTH_GATEWAY, True)):
            fields = {
                "id": gateway_id,
                "cache_ttl": 300,
                "collect_logs": True,
                "authentication": authentication,
            }
            httpx.post(f"{base}/ai-gateway/gateways", json=fields, headers=admin).raise_for_status()
        created = httpx.post(f"{base}/tokens", json={"name": "bench", "permissions": ["run"]}, headers=admin)
        created.raise_for_status()
        token = created.json()["result"]["value"]
        ports = {name: gateway_port for name in paths(token)} | {"direct": upstream_port}
        proc = psutil.Process(gateway.pid)
        asyncio.run(report(proc, ports, token, args.requests, args.concurrency, args.rounds, args.stream))
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
