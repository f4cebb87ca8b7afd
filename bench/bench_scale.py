"""Scale-out benchmark (issue 5): the single-process SQLite default vs. PostgreSQL + Redis with
`aigw serve --workers 2`, against the fast fake upstream (bench/upstream_app.py, its own process).

Prints (nothing is asserted):
  1. requests/s and the latency the gateway adds (p50/p99 over the direct call) at concurrency 64,
     every request a distinct body (a cache miss that is stored, and a log row);
  2. N concurrent SSE streams held for a while (default 500 for 60 s, one event every 100 ms): the
     gap between consecutive events as the client sees it (p50/p99/max), through each gateway
     configuration and directly from the upstream (its own cadence under the same load);
  3. the gateway's RSS (all its processes) sampled every 10 s over a soak under steady load, and
     its growth after the warm-up.

    .venv/bin/python bench/bench_scale.py [--soak-seconds 600] [--stream-seconds 60] [--streams 500]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/test] [--redis-url redis://127.0.0.1:6379/0]

The PostgreSQL configuration uses a fresh database created on that server and dropped afterwards.
Load generator, gateway and fake share this machine's cores: numbers are relative, not absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_gateway import body_maker, build_request, free_port, pct, run_load, wait_ready  # noqa: E402

ADMIN = "bench-admin-token"
GATEWAY_PATH = "/v1/bench/gw/openai/chat/completions"
DIRECT_PATH = "/v1/chat/completions"
CHUNK_GAP_MS = 100


# ---- processes ---------------------------------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM to the process group (uvicorn workers too); the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)
    return process.returncode


def tree_rss_mib(pid: int) -> tuple[float, list[float]]:
    """(total, per process) resident memory of a process and its children, in MiB."""
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    sizes = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            sizes.append(process.memory_info().rss / 2**20)
    return sum(sizes), sizes


@dataclass
class Gateway:
    name: str
    port: int
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    from sqlalchemy.engine import make_url

    from tests.support.backends import fresh_postgres

    with fresh_postgres(server_url, prefix="aigw_bench") as url:
        yield str(make_url(url).render_as_string(hide_password=False))


@contextlib.contextmanager
def gateway(name: str, env: dict[str, str], workers: int) -> Iterator[Gateway]:
    port = free_port()
    args = ["-m", "app.cli", "serve", "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    process = spawn(args, env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=60)
        httpx.post(
            f"http://127.0.0.1:{port}/client/v4/accounts/bench/ai-gateway/gateways",
            json={"id": "gw", "cache_ttl": 300, "collect_logs": True},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).raise_for_status()
        yield Gateway(name, port, process)
    finally:
        code = stop(process)
        print(f"[{name}] exit status after SIGTERM: {code}")


# ---- 1. requests/s at concurrency 64 --------------------------------------------------------------------


async def throughput(gw: Gateway, upstream_port: int, requests: int, concurrency: int) -> None:
    tag = uuid.uuid4().hex[:8]
    await run_load(upstream_port, DIRECT_PATH, body_maker(False, "warm-d" + tag), 500, 8)
    await run_load(gw.port, GATEWAY_PATH, body_maker(False, "warm-g" + tag), 1000, concurrency)
    direct_rps, direct = await run_load(
        upstream_port, DIRECT_PATH, body_maker(False, "d" + tag), requests, concurrency
    )
    rps, through = await run_load(gw.port, GATEWAY_PATH, body_maker(False, "g" + tag), requests, concurrency)
    print(
        f"[{gw.name}] c={concurrency} n={requests}: gateway {rps:7.0f} req/s"
        f" (direct {direct_rps:.0f}) | latency p50 {pct(through, 0.5):.2f} p99 {pct(through, 0.99):.2f} ms"
        f" | added p50 {pct(through, 0.5) - pct(direct, 0.5):+.2f} ms"
        f" p99 {pct(through, 0.99) - pct(direct, 0.99):+.2f} ms"
    )


# ---- 2. held SSE streams -----------------------------------------------------------------------------------


async def one_stream(port: int, path: str, body: bytes, chunks: int, gaps: list[float]) -> bool:
    """One streamed request on its own connection; appends the gaps between its events (ms)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = f"x-bench-chunk-gap-ms: {CHUNK_GAP_MS}\r\nx-bench-chunks: {chunks}\r\n"
    writer.write(build_request(port, path, body, extra))
    try:
        status = int((await reader.readline()).split(b" ", 2)[1])
        while (await reader.readline()) != b"\r\n":
            pass
        last: float | None = None
        pending = b""
        done = False
        while not done:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                break
            data = await reader.readexactly(size + 2)
            now = time.perf_counter()
            pending += data[:-2]
            while b"\n\n" in pending:
                event, pending = pending.split(b"\n\n", 1)
                if event.startswith(b"data: [DONE]"):
                    done = True
                if last is not None:
                    gaps.append((now - last) * 1000)
                last = now
        return status == 200 and done
    finally:
        writer.close()


async def held_streams(port: int, path: str, streams: int, seconds: float, label: str) -> None:
    chunks = max(1, int(seconds * 1000 / CHUNK_GAP_MS))
    gaps: list[float] = []
    tag = uuid.uuid4().hex[:8]
    bodies = [body_maker(True, f"{label}-{tag}")(i) for i in range(streams)]
    started = time.perf_counter()
    tasks = []
    for body in bodies:
        tasks.append(asyncio.create_task(one_stream(port, path, body, chunks, gaps)))
        await asyncio.sleep(CHUNK_GAP_MS / 1000 / streams)  # spread the starts over one cadence
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    ok = sum(result is True for result in results)
    errors = [r for r in results if isinstance(r, BaseException)][:3]
    print(
        f"[{label}] {streams} streams x {chunks} events every {CHUNK_GAP_MS} ms, {elapsed:.0f} s:"
        f" {ok} complete; gap between events p50 {pct(gaps, 0.5):.1f} p99 {pct(gaps, 0.99):.1f}"
        f" p99.9 {pct(gaps, 0.999):.1f} max {max(gaps):.1f} ms" + (f" errors {errors}" if errors else "")
    )


# ---- 3. RSS soak -------------------------------------------------------------------------------------------


async def soak(gw: Gateway, seconds: float, concurrency: int) -> None:
    """Steady load (plain requests, distinct bodies, plus a few streams) while RSS is sampled."""
    stop_at = time.monotonic() + seconds
    samples: list[tuple[float, float, list[float]]] = []

    async def load() -> None:
        index = 0
        while time.monotonic() < stop_at:
            tag = f"soak-{index}-{uuid.uuid4().hex[:6]}"
            await run_load(gw.port, GATEWAY_PATH, body_maker(index % 4 == 0, tag), 400, concurrency)
            index += 1

    async def sample() -> None:
        started = time.monotonic()
        while True:
            total, sizes = tree_rss_mib(gw.process.pid)
            samples.append((time.monotonic() - started, total, sizes))
            print(f"[{gw.name}] soak t={samples[-1][0]:5.0f} s RSS {total:7.1f} MiB "
                  f"({' + '.join(f'{s:.1f}' for s in sizes)})", flush=True)  # fmt: skip
            if time.monotonic() >= stop_at:
                return
            await asyncio.sleep(min(10.0, max(0.0, stop_at - time.monotonic())))

    await asyncio.gather(load(), sample())
    warm = next((s for s in samples if s[0] >= min(60.0, seconds / 5)), samples[0])
    last = samples[-1]
    peak = max(s[1] for s in samples)
    growth = (last[1] - warm[1]) / warm[1] * 100
    print(
        f"[{gw.name}] soak {seconds:.0f} s: RSS after warm-up (t={warm[0]:.0f} s) {warm[1]:.1f} MiB,"
        f" at end {last[1]:.1f} MiB ({growth:+.1f}%), peak {peak:.1f} MiB"
    )


# ---- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--stream-seconds", type=float, default=60)
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--soak-concurrency", type=int, default=16)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "AIGW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))  # fmt: skip
    parser.add_argument(
        "--redis-url", default=os.environ.get("AIGW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--skip", action="append", default=[], choices=["sqlite", "scale", "streams", "soak"])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; load generator, gateway and fake upstream share them")

    upstream_port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    base.update({"AIGW_ADMIN_TOKEN": ADMIN, "AIGW_UPSTREAM_OPENAI": f"http://127.0.0.1:{upstream_port}/v1"})
    upstream = spawn(
        ["-m", "uvicorn", "bench.upstream_app:app", "--port", str(upstream_port), "--log-level", "warning",
         "--no-access-log", "--timeout-keep-alive", "120"], base,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{upstream_port}/")
        if "streams" not in args.skip:
            asyncio.run(held_streams(upstream_port, DIRECT_PATH, args.streams, args.stream_seconds, "direct"))
        if "sqlite" not in args.skip:
            workdir = tempfile.mkdtemp(prefix="aigw-bench-")
            env = {**base, "AIGW_DATABASE_URL": f"sqlite:///{workdir}/bench.db"}
            with gateway("sqlite-1proc", env, workers=1) as gw:
                run_config(gw, upstream_port, args, soak_here=False)
        if "scale" not in args.skip:
            with postgres_database(args.postgres_url) as database_url:
                env = {**base, "AIGW_DATABASE_URL": database_url, "AIGW_REDIS_URL": args.redis_url}
                with gateway("pg+redis-2workers", env, workers=2) as gw:
                    run_config(gw, upstream_port, args, soak_here=True)
    finally:
        stop(upstream)


def run_config(gw: Gateway, upstream_port: int, args: argparse.Namespace, soak_here: bool) -> None:
    total, sizes = tree_rss_mib(gw.process.pid)
    print(f"[{gw.name}] RSS at start {total:.1f} MiB ({len(sizes)} processes)")
    asyncio.run(throughput(gw, upstream_port, args.requests, args.concurrency))
    if "streams" not in args.skip:
        asyncio.run(held_streams(gw.port, GATEWAY_PATH, args.streams, args.stream_seconds, gw.name))
    if soak_here and "soak" not in args.skip:
        asyncio.run(soak(gw, args.soak_seconds, args.soak_concurrency))
    time.sleep(1)
    health = httpx.get(f"http://127.0.0.1:{gw.port}/healthz").json()
    print(f"[{gw.name}] healthz after the run: {json.dumps(health)}")


if __name__ == "__main__":
    main()
