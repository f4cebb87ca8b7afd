"""Graceful shutdown of a real server process with open WebSocket sessions (app/server/graceful.py, §6).

`python -m app.cli serve` runs in its own process against the fake provider. SIGTERM arrives while
five slow streams are in flight on one connection: the server must stop accepting connections and
requests, let every stream finish, close the socket with 1001, flush the log and exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, LogDb, openai_step
from tests.support.ws import Event, error_response, ws_session, ws_url

REPO = Path(__file__).resolve().parents[2]
WORDS = "one two three four five six seven eight nine ten"
STREAMS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class ServerProcess:
    def __init__(self, tmp_path: Path, upstream_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "shutdown.db"
        self.output = tmp_path / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
        env.update(
            AIGW_DATABASE_URL=f"sqlite:///{self.db}",
            AIGW_ADMIN_TOKEN=ADMIN_TOKEN,
            AIGW_UPSTREAM_OPENAI=f"{upstream_url}/v1",
            AIGW_SHUTDOWN_GRACE_S="10",
            AIGW_LOG_FLUSH_INTERVAL_S="0.05",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        )
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                cwd=tmp_path,  # no developer .env is read from here
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready within {timeout} s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@dataclass
class Drained:
    """What one SIGTERM-during-streams run of the server produced."""

    events: list[Event]  # the five streams
    refused: Event  # the request sent after the server stopped listening
    close_code: int | None
    drain_s: float  # SIGTERM → socket closed
    returncode: int
    rows: list[dict[str, Any]]
    upstream_calls: int
    output: str


async def _scenario(process: ServerProcess, token: str) -> tuple[list[Event], Event, int | None, float]:
    slow = openai_step({"x-fake-chunk-delay-ms": "100", "x-fake-text": WORDS}, stream=True)
    event_ids = [f"drain-{i}" for i in range(STREAMS)]
    loop = asyncio.get_running_loop()
    async with ws_session(ws_url(process.url, "drain"), token) as session:
        for event_id in event_ids:
            await session.create({**slow, "eventId": event_id})
        while not all(session.event(e).chunks for e in event_ids):  # every stream has started
            await session.recv_frame()

        process.process.send_signal(signal.SIGTERM)
        signalled = loop.time()
        # The listening socket closes first; from then on new requests are refused too.
        while await asyncio.to_thread(accepts_connections, process.port):
            assert loop.time() - signalled < 5, "the server kept listening after SIGTERM"
            await asyncio.sleep(0.02)
        await session.create({**openai_step(), "eventId": "too-late"})

        *events, refused = await session.wait(*event_ids, "too-late", timeout=15)
        await asyncio.wait_for(session.ws.wait_closed(), 15)
        return events, refused, session.ws.close_code, loop.time() - signalled


@pytest.fixture(scope="module")
def drained(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Drained:
    fake_upstream.reset()
    process = ServerProcess(tmp_path_factory.mktemp("shutdown"), fake_upstream.url)
    try:
        process.wait_ready()
        with httpx.Client(base_url=process.url, headers=ADMIN_HEADERS, timeout=10) as admin:
            created = admin.post(f"/client/v4/accounts/{ACCT}/ai-gateway/gateways", json={"id": "drain"})
            assert created.status_code == 200, created.text
            minted = admin.post(
                f"/client/v4/accounts/{ACCT}/tokens", json={"name": "t", "permissions": ["run"]}
            )
            assert minted.status_code == 200, minted.text
        events, refused, close_code, drain_s = asyncio.run(
            _scenario(process, minted.json()["result"]["value"])
        )
        upstream_calls = fake_upstream.count()
        try:
            returncode = process.process.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit after draining:\n{process.log_text()}") from None
        rows = LogDb(str(process.db)).rows("gateway_id = ?", ("drain",))
        return Drained(
            events, refused, close_code, drain_s, returncode, rows, upstream_calls, process.log_text()
        )
    finally:
        process.stop()


def test_in_flight_streams_finish_after_sigterm(drained: Drained) -> None:
    assert len(drained.events) == STREAMS
    for event in drained.events:
        event.assert_stream_shape()
        done = event.done["metadata"]
        assert "success" not in done and "cancelled" not in done, done  # ended normally, not cut
        assert done["status"] == 200
        assert event.text == WORDS
    assert drained.upstream_calls == STREAMS


def test_requests_refused_while_draining(drained: Drained) -> None:
    assert drained.refused.created["metadata"] == {"eventId": "too-late", "status": 503}
    error_response(drained.refused.created, 2014)


def test_socket_closed_with_1001_after_the_streams(drained: Drained) -> None:
    assert drained.close_code == 1001
    assert drained.drain_s < 8  # closed once the streams ended, not at the end of the 10 s grace


def test_every_request_logged_before_exit(drained: Drained) -> None:
    assert sorted(r["event_id"] for r in drained.rows) == [f"drain-{i}" for i in range(STREAMS)]
    assert all(r["success"] == 1 and r["request_type"] == "websocket" for r in drained.rows)
    assert len({r["connection_id"] for r in drained.rows}) == 1


def test_process_exits_0(drained: Drained) -> None:
    assert drained.returncode == 0, drained.output
