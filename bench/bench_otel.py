"""OpenTelemetry cost: gateway CPU per request with no exporter, a JSON exporter and a protobuf
exporter (c=32, non-streaming, each request a distinct body so each is logged and traced).

Starts `bench/upstream_app.py`, a do-nothing OTLP collector (`collector` below) and `aigw serve`
as separate processes; the three gateways run interleaved for `--rounds` rounds. CPU is read
after the export task has flushed (the flush interval is waited out), so it includes encoding
and sending the spans, not only the request path.

    .venv/bin/python -m bench.bench_otel [--requests 3000] [--concurrency 32 1] [--rounds 5]

Rounds alternate their order (off, json, protobuf, then protobuf, json, off, …) so that a drift of
the shared machine's load does not favour one of them; each line gives the median and the range
over the rounds, and the median of the per-round differences to "off".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--gateways", nargs="+", default=["off", "json", "protobuf"], help="a subset, e.g. to profile one"
    )
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
        print(f"gateway pid {proc.pid}", file=sys.stderr, flush=True)  # for a profiler (py-spy -p)
        names = [name for name in gateways if name in args.gateways]
        for concurrency in args.concurrency:
            asyncio.run(report(proc, gateway_port, names, args.requests, concurrency, args.rounds))
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
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            tag = f"{name}-{time.time_ns()}"
            before = cpu_seconds(proc)
            _, lat = await run_load(
                port, f"/v1/bench/{name}/openai/chat/completions", body_maker(False, tag), total, conc
            )
            await asyncio.sleep(FLUSH_S * 1.5)  # the spans of this run exported before CPU is read
            cpu[name].append((cpu_seconds(proc) - before) / total * 1e6)
            latency[name] += lat
    for name in names:
        rounds_text = "/".join(f"{v:.0f}" for v in cpu[name])
        off = cpu.get("off", [0.0] * rounds)
        diff = statistics.median(v - o for v, o in zip(cpu[name], off, strict=True))
        print(
            f"otel {name:9s} c={conc:<3d} gateway CPU median {statistics.median(cpu[name]):5.0f} µs/req"
            f" (range {min(cpu[name]):.0f}-{max(cpu[name]):.0f}; rounds {rounds_text})"
            f" | vs off {diff:+4.0f} µs | p50 {pct(latency[name], 0.5):.2f} ms p99 {pct(latency[name], 0.99):.2f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
