"""Gateway overhead benchmark: the fake upstream called directly vs. through the gateway.

Starts `bench/upstream_app.py` and `aigw serve` as separate processes (SQLite logs and the
in-process cache on, every request a distinct body so each one is a cache miss that is stored and
logged), then drives both with a small keep-alive HTTP/1.1 client written on asyncio streams (so
the load tool costs little CPU). Prints requests/s at concurrency 1 and 32, the latency the gateway
adds (p50/p99), the gateway's CPU time per request, and its RSS before and after.

    .venv/bin/python bench/bench_gateway.py [--requests 3000] [--concurrency 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class RawClient:
    """One keep-alive HTTP/1.1 connection; reads Content-Length and chunked bodies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, raw: bytes) -> tuple[int, int]:
        self.writer.write(raw)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, chunked = None, False
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        size = 0
        if length is not None:
            size = len(await self.reader.readexactly(length))
        elif chunked:
            while (n := int((await self.reader.readline()).strip(), 16)) > 0:
                size += len(await self.reader.readexactly(n + 2)) - 2
            await self.reader.readline()
        return status, size


def build_request(port: int, path: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer sk-bench\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run_load(
    port: int, path: str, make_body: Callable[[int], bytes], total: int, concurrency: int
) -> tuple[float, list[float]]:
    """(requests per second, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        client = RawClient(port)
        await client.connect()
        for index in counter:
            raw = build_request(port, path, make_body(index))
            started = time.perf_counter()
            status, _ = await client.request(raw)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"status {status}")
        client.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def body_maker(stream: bool, run_tag: str) -> Callable[[int], bytes]:
    def make(index: int) -> bytes:
        query: dict[str, object] = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"hello {run_tag} {index}"}],
        }
        if stream:
            query["stream"] = True
            query["stream_options"] = {"include_usage": True}
        return json.dumps(query).encode()

    return make


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    upstream_port, gateway_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="aigw-bench-")
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
        httpx.post(
            f"http://127.0.0.1:{gateway_port}/client/v4/accounts/bench/ai-gateway/gateways",
            json={"id": "gw", "cache_ttl": 300, "collect_logs": True},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).raise_for_status()
        proc = psutil.Process(gateway.pid)
        asyncio.run(report(proc, upstream_port, gateway_port, args.requests, args.concurrency, args.rounds))
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(10)


async def report(
    proc: psutil.Process, upstream_port: int, gateway_port: int, total: int, conc: int, rounds: int
) -> None:
    """Every configuration runs `rounds` times, interleaved with the others, and is reported over
    all its runs (the per-round CPU figures show the spread): this machine's speed drifts with
    other load, and one run per configuration would carry that drift into the comparison."""
    direct_path = "/v1/chat/completions"
    gateway_path = "/v1/bench/gw/openai/chat/completions"
    print(f"gateway RSS at start: {proc.memory_info().rss / 2**20:.1f} MiB")
    for stream in (False, True):  # warm both paths (connection pools, caches, dicts)
        await run_load(upstream_port, direct_path, body_maker(stream, "warm"), 300, 4)
        await run_load(gateway_port, gateway_path, body_maker(stream, "warm"), 300, 4)
    configs = [(stream, c, n) for stream in (False, True) for c, n in ((1, total // 3), (conc, total))]
    results: dict[tuple[bool, int], dict[str, list[float]]] = {
        (stream, c): {"direct": [], "gateway": [], "direct_s": [], "gateway_s": [], "cpu": []}
        for stream, c, _ in configs
    }
    for _ in range(rounds):
        for stream, concurrency, count in configs:
            tag = f"{stream}-c{concurrency}-{time.time_ns()}"
            entry = results[(stream, concurrency)]
            started = time.perf_counter()
            _, direct_lat = await run_load(
                upstream_port, direct_path, body_maker(stream, "d" + tag), count, concurrency
            )
            entry["direct_s"].append(time.perf_counter() - started)
            cpu_before = cpu_seconds(proc)
            started = time.perf_counter()
            _, gw_lat = await run_load(
                gateway_port, gateway_path, body_maker(stream, "g" + tag), count, concurrency
            )
            entry["gateway_s"].append(time.perf_counter() - started)
            entry["cpu"].append((cpu_seconds(proc) - cpu_before) / count * 1000)
            entry["direct"] += direct_lat
            entry["gateway"] += gw_lat
    for (stream, concurrency), entry in results.items():
        kind = "streaming" if stream else "non-streaming"
        direct_lat, gw_lat = entry["direct"], entry["gateway"]
        direct_rps = len(direct_lat) / sum(entry["direct_s"])
        gw_rps = len(gw_lat) / sum(entry["gateway_s"])
        cpu = sum(entry["cpu"]) / len(entry["cpu"])
        spread = "/".join(f"{value:.2f}" for value in entry["cpu"])
        print(
            f"{kind:14s} c={concurrency:<3d} direct {direct_rps:7.0f} req/s p50 {pct(direct_lat, 0.5):6.2f} ms"
            f" | gateway {gw_rps:7.0f} req/s p50 {pct(gw_lat, 0.5):6.2f} p99 {pct(gw_lat, 0.99):6.2f} ms"
            f" | added p50 {pct(gw_lat, 0.5) - pct(direct_lat, 0.5):+.2f} ms"
            f" p99 {pct(gw_lat, 0.99) - pct(direct_lat, 0.99):+.2f} ms"
            f" | gateway CPU {cpu:.3f} ms/req (rounds {spread})"
        )
    await asyncio.sleep(1)
    print(f"gateway RSS at end: {proc.memory_info().rss / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
