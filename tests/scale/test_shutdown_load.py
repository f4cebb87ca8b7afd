"""Graceful shutdown under load (issue 5, item 4), against a real `aigw serve` process: sustained
concurrent HTTP streams (each about a second long) and plain requests, SIGTERM in the middle.
Every response the client received has its log row, none was cut (streams end with [DONE]), and
the process exits 0. (The WebSocket variant is tests/ws/test_ws_shutdown.py.)"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import ServerProcess

CLIENTS = 32
LOAD_BEFORE_SIGTERM_S = 2.0
STREAM = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "say hello please"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}
PLAIN = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello please"}]}


@dataclass
class Tally:
    completed: dict[str, str] = field(default_factory=dict)  # log id -> "stream" | "plain"
    cut: list[str] = field(default_factory=list)  # responses started but not finished
    not_served: int = 0  # refused or closed before any response: never received, fine
    statuses: list[int] = field(default_factory=list)
    finished_at: dict[str, float] = field(default_factory=dict)

    def complete(self, log_id: str, kind: str) -> None:
        self.completed[log_id] = kind
        self.finished_at[log_id] = time.monotonic()


async def one_client(url: str, index: int, tally: Tally, stop: asyncio.Event) -> None:
    path = f"{url}/v1/acct/gw/openai/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        round_ = 0
        while not stop.is_set():
            streamed = (index + round_) % 3 != 0
            round_ += 1
            try:
                if streamed:
                    await stream_once(client, path, tally)
                else:
                    await plain_once(client, path, tally)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if getattr(exc, "response_started", False):
                    raise
                tally.not_served += 1
                if isinstance(exc, httpx.ConnectError):
                    return  # the server no longer listens
                await asyncio.sleep(0.05)


async def stream_once(client: httpx.AsyncClient, path: str, tally: Tally) -> None:
    headers = {"x-fake-chunk-delay-ms": "120"}  # ~7 events: about a second per stream
    async with client.stream("POST", path, json=STREAM, headers=headers) as response:
        log_id = response.headers.get("cf-aig-log-id", "?")
        tally.statuses.append(response.status_code)
        body = b""
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
        except httpx.HTTPError:
            tally.cut.append(f"stream {log_id}: {body[-80:]!r}")
            return
    if response.status_code == 200 and body.rstrip().endswith(b"data: [DONE]"):
        tally.complete(log_id, "stream")
    else:
        tally.cut.append(f"stream {log_id} status {response.status_code}: {body[-80:]!r}")


async def plain_once(client: httpx.AsyncClient, path: str, tally: Tally) -> None:
    response = await client.post(path, json=PLAIN, headers={"x-fake-delay-ms": "100"})
    tally.statuses.append(response.status_code)
    if response.status_code == 200 and response.json()["object"] == "chat.completion":
        tally.complete(response.headers["cf-aig-log-id"], "plain")
    else:
        tally.cut.append(f"plain status {response.status_code}: {response.text[:80]}")


async def load_then_sigterm(server: ServerProcess) -> tuple[Tally, float]:
    tally, stop = Tally(), asyncio.Event()
    clients = [asyncio.create_task(one_client(server.url, i, tally, stop)) for i in range(CLIENTS)]
    await asyncio.sleep(LOAD_BEFORE_SIGTERM_S)
    assert server.proc is not None
    signalled = time.monotonic()
    server.proc.terminate()  # SIGTERM
    await asyncio.sleep(1.0)  # clients keep sending while the server drains
    stop.set()
    await asyncio.wait_for(asyncio.gather(*clients), 30)
    return tally, signalled


def test_sigterm_under_load_loses_no_response_and_no_log_row(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    database = tmp_path / "aigw.db"
    env = {
        "AIGW_DATABASE_URL": f"sqlite:///{database}",
        "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
        "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
    }
    with ServerProcess(env, log_path=tmp_path / "server.log") as server:
        created = httpx.post(
            f"{server.url}/client/v4/accounts/acct/ai-gateway/gateways",
            json={"id": "gw"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert created.status_code == 200, created.text
        tally, signalled = asyncio.run(load_then_sigterm(server))
        assert server.proc is not None
        code = server.proc.wait(40)
        exited_after = time.monotonic() - signalled
        output = server.output()

    assert code == 0, output
    assert exited_after < 10, f"exit took {exited_after:.1f} s"
    assert tally.cut == [], tally.cut
    assert set(tally.statuses) == {200}
    streams = sum(kind == "stream" for kind in tally.completed.values())
    assert streams >= CLIENTS // 2 and len(tally.completed) > streams, (streams, len(tally.completed))
    drained = [i for i, at in tally.finished_at.items() if at > signalled and tally.completed[i] == "stream"]
    assert len(drained) >= CLIENTS // 3, "streams in flight at SIGTERM should finish after it"
    with sqlite3.connect(database) as db:
        logged = {row[0]: row[1:] for row in db.execute("SELECT id, status_code, success FROM logs")}
    missing = set(tally.completed) - set(logged)
    assert not missing, f"{len(missing)} of {len(tally.completed)} completed responses have no log row"
    assert all(logged[log_id] == (200, 1) for log_id in tally.completed)
