"""One WebSocket vs. HTTPS: what a persistent universal session saves (issue 3's benchmark).

Starts bench/upstream_app.py and `aigw serve` with TLS (a self-signed certificate made with the
openssl command), then for N sequential small requests compares
  (a) a new HTTPS connection per request, (b) HTTPS keep-alive, (c) one WSS connection;
and with C concurrent in-flight requests: one WSS connection vs. C keep-alive HTTPS connections.
Prints requests/s, p50/p99 latency and the gateway process's CPU time per request for each (the
client libraries differ in cost; the CPU column compares the gateway's own work).

    .venv/bin/python bench/bench_ws.py [--requests 1000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_gateway import ADMIN, ROOT, RawClient, build_request, free_port, pct

STEP = {
    "provider": "openai",
    "endpoint": "chat/completions",
    "headers": {"Authorization": "Bearer sk-bench"},
    "query": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
}


def make_certificate(directory: str) -> tuple[str, str]:
    cert, key = f"{directory}/cert.pem", f"{directory}/key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class TLSRawClient(RawClient):
    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__(port)
        self.context = context

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.context)


class RawWebSocket:
    """A minimal WebSocket client on asyncio streams, as lean as `RawClient` is for HTTP, so that
    (b) and (c) compare the gateway rather than two client libraries of different cost. Frames are
    sent with an all-zero masking key (RFC 6455 allows any key; a zero key makes masking free)."""

    def __init__(self, port: int, context: ssl.SSLContext, token: str) -> None:
        self.port, self.context, self.token = port, context, token
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.context)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET /v1/bench/gw HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"cf-aig-authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))

    def send(self, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        self.writer.write(head + b"\0\0\0\0" + payload)

    async def receive(self) -> bytes:
        """The next text or binary message (pings answered, other control frames skipped)."""
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
            opcode = first & 0x0F
            if opcode in (1, 2):
                return payload
            if opcode == 9:  # ping
                self.writer.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                raise ConnectionError("closed by the server")


def universal_request(port: int, token: str) -> bytes:
    body = json.dumps(STEP).encode()
    return build_request(port, "/v1/bench/gw", body, f"cf-aig-authorization: Bearer {token}\r\n")


async def https_sequential(
    port: int, token: str, context: ssl.SSLContext, n: int, reuse: bool
) -> list[float]:
    raw = universal_request(port, token)
    latencies = []
    client = TLSRawClient(port, context)
    if reuse:
        await client.connect()
    for _ in range(n):
        started = time.perf_counter()
        if not reuse:
            await client.connect()
        status, _ = await client.request(raw)
        if not reuse:
            client.writer.close()
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200, status
    if reuse:
        client.writer.close()
    return latencies


async def https_concurrent(port: int, token: str, context: ssl.SSLContext, n: int, conc: int) -> list[float]:
    raw = universal_request(port, token)
    latencies: list[float] = []
    remaining = iter(range(n))

    async def worker() -> None:
        client = TLSRawClient(port, context)
        await client.connect()
        for _ in remaining:
            started = time.perf_counter()
            status, _ = await client.request(raw)
            latencies.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
        client.writer.close()

    await asyncio.gather(*(worker() for _ in range(conc)))
    return latencies


async def drive_ws(
    send: Callable[[str], Awaitable[None]], receive: Callable[[], Awaitable[str | bytes]], n: int, conc: int
) -> list[float]:
    """n universal.create requests over one WebSocket, `conc` of them in flight; latencies in ms."""
    latencies: list[float] = []
    pending: dict[str, tuple[float, asyncio.Future[None]]] = {}

    async def reader() -> None:
        while True:
            event_id = json.loads(await receive())["metadata"]["eventId"]
            started, done = pending.pop(event_id)
            latencies.append((time.perf_counter() - started) * 1000)
            done.set_result(None)

    reading = asyncio.create_task(reader())
    remaining = iter(range(n))

    async def worker() -> None:
        for index in remaining:
            event_id = f"e{index}"
            done = asyncio.get_running_loop().create_future()
            pending[event_id] = (time.perf_counter(), done)
            await send(json.dumps({"type": "universal.create", "request": {**STEP, "eventId": event_id}}))
            await done

    await asyncio.gather(*(worker() for _ in range(conc)))
    reading.cancel()
    return latencies


async def wss_raw(port: int, token: str, context: ssl.SSLContext, n: int, conc: int) -> list[float]:
    ws = RawWebSocket(port, context, token)
    await ws.connect()

    async def send(text: str) -> None:
        ws.send(text.encode())

    try:
        return await drive_ws(send, ws.receive, n, conc)
    finally:
        ws.writer.close()


async def wss(port: int, token: str, context: ssl.SSLContext, n: int, conc: int) -> list[float]:
    """The same over the `websockets` library's client."""
    url = f"wss://127.0.0.1:{port}/v1/bench/gw"
    async with connect(
        url, ssl=context, additional_headers={"cf-aig-authorization": f"Bearer {token}"}
    ) as ws:
        return await drive_ws(ws.send, ws.recv, n, conc)


def line(label: str, latencies: list[float], seconds: float, cpu_s: float) -> str:
    return (
        f"{label:44s} {len(latencies) / seconds:7.0f} req/s  p50 {pct(latencies, 0.5):6.2f} ms"
        f"  p99 {pct(latencies, 0.99):6.2f} ms  gateway CPU {cpu_s / len(latencies) * 1000:.3f} ms/req"
    )


async def timed(coro: object) -> tuple[list[float], float]:
    started = time.perf_counter()
    latencies = await coro  # type: ignore[misc]
    return latencies, time.perf_counter() - started


async def report(proc: psutil.Process, port: int, token: str, n: int, conc: int, rounds: int) -> None:
    """Each variant runs `rounds` times, interleaved with the others, and is reported over all its
    runs: this machine's speed drifts (other load, the log database growing) and a variant run
    once, first or last, would carry that drift."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    await https_sequential(port, token, context, 200, True)  # warm up
    await wss_raw(port, token, context, 200, 8)
    variants: list[tuple[str, Callable[[], Awaitable[list[float]]]]] = [
        ("(a) new HTTPS connection per request", lambda: https_sequential(port, token, context, n, False)),
        ("(b) HTTPS keep-alive, sequential", lambda: https_sequential(port, token, context, n, True)),
        ("(c) one WSS connection, sequential", lambda: wss_raw(port, token, context, n, 1)),
        ("(c) the same with the websockets library", lambda: wss(port, token, context, n, 1)),
        (
            f"{conc} keep-alive HTTPS connections, concurrent",
            lambda: https_concurrent(port, token, context, n * 2, conc),
        ),
        (f"one WSS connection, {conc} in flight", lambda: wss_raw(port, token, context, n * 2, conc)),
        ("the same with the websockets library", lambda: wss(port, token, context, n * 2, conc)),
    ]
    totals: dict[str, tuple[list[float], float, float]] = {label: ([], 0.0, 0.0) for label, _ in variants}
    for _ in range(rounds):
        for label, run in variants:
            before = sum(proc.cpu_times()[:2])
            latencies, seconds = await timed(run())
            cpu = sum(proc.cpu_times()[:2]) - before
            kept, total_s, total_cpu = totals[label]
            totals[label] = (kept + latencies, total_s + seconds, total_cpu + cpu)
    for label, (latencies, seconds, cpu) in totals.items():
        print(line(label, latencies, seconds, cpu))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="aigw-bench-ws-")
    cert, key = make_certificate(workdir)
    upstream_port, gateway_port = free_port(), free_port()
    env = {
        **os.environ,
        "AIGW_DATABASE_URL": f"sqlite:///{workdir}/bench.db",
        "AIGW_ADMIN_TOKEN": ADMIN,
        "AIGW_UPSTREAM_OPENAI": f"http://127.0.0.1:{upstream_port}/v1",
    }
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.upstream_app:app", "--port", str(upstream_port),
         "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(gateway_port), "--ssl-certfile", cert,
         "--ssl-keyfile", key], cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        base = f"https://127.0.0.1:{gateway_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", verify=False)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        httpx.post(
            f"{base}/client/v4/accounts/bench/ai-gateway/gateways",
            json={"id": "gw"},
            headers=admin,
            verify=False,
        )
        created = httpx.post(
            f"{base}/client/v4/accounts/bench/tokens",
            json={"name": "bench", "permissions": ["run"], "gateways": ["*"]},
            headers=admin,
            verify=False,
        )
        token = created.json()["result"]["value"]
        asyncio.run(
            report(
                psutil.Process(gateway.pid), gateway_port, token, args.requests, args.concurrency, args.rounds
            )
        )
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
