"""OpenTelemetry cost: gateway CPU per request with no exporter, a JSON exporter and a protobuf
exporter (c=32, non-streaming, each request a distinct body so each is logged and traced).

Starts `bench/upstream_app.py`, a do-nothing OTLP collector (`collector` below) and `aigw serve`
as separate processes; the three gateways run interleaved for `--rounds` rounds. CPU is read
after the export task has flushed (the flush interval is waited out), so it includes encoding
and sending the spans, not only the request path.

    .venv/bin/python -m bench.bench_otel [--requests 3000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

import httpx
import psutil
from starlette.types import Receive, Scope, Send

from bench.bench_gateway import ROOT, body_maker, cpu_seconds, free_port, pct, run_load, wait_ready

ADMIN = "bench-admin-token"
FLUSH_S = 1.0


async def collector(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts any OTLP export (200) and reads nothing it does not have to."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    upstream_port, collector_port, gateway_port = free_port(), free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="aigw-bench-otel-")
    env = {
        **os.environ,
        "AIGW_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "AIGW_ADMIN_TOKEN": ADMIN,
        "AIGW_UPSTREAM_OPENAI": f"http://127.0.0.1:{upstream_port}/v1",
        "AIGW_ALLOW_PRIVATE_DESTINATIONS": "true",  # the collector is on loopback
        "AIGW_OTEL_FLUSH_INTERVAL_S": str(FLUSH_S),
    }
    python = sys.executable
    uvicorn = [python, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    processes = [
        subprocess.Popen(
            [*uvicorn, "bench.upstream_app:app", "--port", str(upstream_port)], cwd=ROOT, env=env
        ),
        subprocess.Popen(
            [*uvicorn, "bench.bench_otel:collector", "--port", str(collector_port)], cwd=ROOT, env=env
        ),
        subprocess.Popen([python, "-m", "app.cli", "serve", "--port", str(gateway_port)], cwd=ROOT, env=env),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{upstream_port}/")
        wait_ready(f"http://127.0.0.1:{collector_port}/")
        wait_ready(f"http://127.0.0.1:{gateway_port}/healthz")
        sink = f"http://127.0.0.1:{collector_port}/v1/traces"
        gateways = {
            "off": None,
            "json": [{"url": sink, "content_type": "json"}],
            "protobuf": [{"url": sink, "content_type": "protobuf"}],
        }
        for name, otel in gateways.items():
            httpx.post(
                f"http://127.0.0.1:{gateway_port}/client/v4/accounts/bench/ai-gateway/gateways",
                json={"id": name, "collect_logs": True, **({"otel": otel} if otel else {})},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ).raise_for_status()
        proc = psutil.Process(processes[-1].pid)
        asyncio.run(report(proc, gateway_port, list(gateways), args.requests, args.concurrency, args.rounds))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(10)


async def report(
    proc: psutil.Process, port: int, names: list[str], total: int, conc: int, rounds: int
) -> None:
    for name in names:  # warm every path
        await run_load(
            port, f"/v1/bench/{name}/openai/chat/completions", body_maker(False, "warm" + name), 300, 4
        )
    await asyncio.sleep(FLUSH_S * 1.5)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    latency: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            tag = f"{name}-{time.time_ns()}"
            before = cpu_seconds(proc)
            _, lat = await run_load(
                port, f"/v1/bench/{name}/openai/chat/completions", body_maker(False, tag), total, conc
            )
            await asyncio.sleep(FLUSH_S * 1.5)  # the spans of this run exported before CPU is read
            cpu[name].append((cpu_seconds(proc) - before) / total * 1e6)
            latency[name] += lat
    base = sum(cpu["off"]) / rounds
    for name in names:
        mean = sum(cpu[name]) / rounds
        spread = "/".join(f"{v:.0f}" for v in cpu[name])
        print(
            f"otel {name:9s} c={conc} gateway CPU {mean:6.0f} µs/req (rounds {spread})"
            f" | vs off {mean - base:+5.0f} µs | p50 {pct(latency[name], 0.5):.2f} ms p99 {pct(latency[name], 0.99):.2f} ms"
        )


if __name__ == "__main__":
    main()
