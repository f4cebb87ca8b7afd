"""Realtime WebSocket-to-WebSocket pass-through (protocol.md §7) against a fake realtime upstream:
a real `websockets` server on loopback that records handshakes, echoes frames, emits
`response.done` with usage, and closes with a code on demand."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tests.conftest import ADMIN_TOKEN, GatewayServer

ACCOUNT = "acct"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class FakeRealtime:
    """Runs in its own thread and event loop, like the HTTP fake."""

    def __init__(self) -> None:
        self.handshakes: list[dict[str, Any]] = []
        self.received: list[str | bytes] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = self._loop.create_future()

        def select(connection: ServerConnection, offered: Any) -> Any:
            return "realtime" if "realtime" in offered else None

        async with serve(self._handler, "127.0.0.1", 0, select_subprotocol=select) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        self.handshakes.append(
            {
                "path": request.path,
                "headers": {k.lower(): v for k, v in request.headers.raw_items()},
                "subprotocol": ws.subprotocol,
            }
        )
        async for frame in ws:
            self.received.append(frame)
            if frame == "respond":
                for tokens in ((10, 5), (7, 3)):
                    usage = {
                        "input_tokens": tokens[0],
                        "output_tokens": tokens[1],
                        "total_tokens": sum(tokens),
                    }
                    await ws.send(json.dumps({"type": "response.done", "response": {"usage": usage}}))
            elif isinstance(frame, str) and frame.startswith("close:"):
                await ws.close(int(frame.split(":")[1]), "bye")
                return
            else:
                await ws.send(frame)  # echo, text or binary

    def start(self) -> FakeRealtime:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(5)


@pytest.fixture
def realtime_upstream() -> Iterator[FakeRealtime]:
    fake = FakeRealtime().start()
    yield fake
    fake.stop()


@pytest.fixture
def realtime_gateway(
    gateway_settings: Any, gateway_factory: Callable[..., GatewayServer], realtime_upstream: FakeRealtime
) -> GatewayServer:
    overrides = {**gateway_settings.upstream_overrides}
    overrides["realtime_openai"] = f"ws://127.0.0.1:{realtime_upstream.port}/v1/realtime"
    gateway = gateway_factory(gateway_settings.model_copy(update={"upstream_overrides": overrides}))
    httpx.post(
        f"{gateway.url}/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways", json={"id": "gw"}, headers=ADMIN
    )
    return gateway


def run_token(gateway: GatewayServer) -> str:
    response = httpx.post(
        f"{gateway.url}/client/v4/accounts/{ACCOUNT}/tokens",
        json={"name": "rt", "permissions": ["run"], "gateways": ["*"]},
        headers=ADMIN,
    )
    return str(response.json()["result"]["value"])


def ws_url(gateway: GatewayServer, query: str = "model=gpt-realtime") -> str:
    return gateway.url.replace("http://", "ws://") + f"/v1/{ACCOUNT}/gw/openai?{query}"


def log_rows(gateway: GatewayServer, count: int, timeout: float = 5.0) -> list[sqlite3.Row]:
    path = gateway.settings.database_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM logs WHERE request_type = 'realtime' ORDER BY id").fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


async def test_relays_text_and_binary_and_logs_usage(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    token = run_token(realtime_gateway)
    headers = {
        "cf-aig-authorization": f"Bearer {token}",
        "Authorization": "Bearer sk-provider",
        "OpenAI-Beta": "x",
    }
    async with connect(ws_url(realtime_gateway), additional_headers=headers) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01binary\xff")
        assert await ws.recv() == b"\x00\x01binary\xff"
        await ws.send("respond")
        done = [json.loads(await ws.recv()) for _ in range(2)]
        assert [d["type"] for d in done] == ["response.done", "response.done"]
    handshake = realtime_upstream.handshakes[0]
    assert handshake["path"] == "/v1/realtime?model=gpt-realtime"
    assert handshake["headers"]["authorization"] == "Bearer sk-provider"
    assert handshake["headers"]["openai-beta"] == "x"
    assert "cf-aig-authorization" not in handshake["headers"]
    assert token not in json.dumps(handshake)

    (row,) = log_rows(realtime_gateway, 1)
    assert row["provider"] == "openai" and row["model"] == "gpt-realtime"
    assert (row["tokens_in"], row["tokens_out"]) == (17, 8)
    assert (row["frames_in"], row["frames_out"]) == (3, 4)
    assert row["request_size"] == len("hello") + len(b"\x00\x01binary\xff") + len("respond")
    assert row["close_code"] == 1000 and row["success"] == 1 and row["duration_ms"] is not None
    assert token not in json.dumps(dict(row), default=str) and "sk-provider" not in json.dumps(
        dict(row), default=str
    )


async def test_upstream_close_code_reaches_client(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    token = run_token(realtime_gateway)
    async with connect(ws_url(realtime_gateway), additional_headers={"cf-aig-authorization": token}) as ws:
        await ws.send("close:4001")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001
    (row,) = log_rows(realtime_gateway, 1)
    assert row["close_code"] == 4001 and row["success"] == 0


async def test_client_close_code_reaches_upstream(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    token = run_token(realtime_gateway)
    ws = await connect(ws_url(realtime_gateway), additional_headers={"cf-aig-authorization": token})
    await ws.send("ping-me")
    assert await ws.recv() == "ping-me"
    await ws.close(4002)
    (row,) = log_rows(realtime_gateway, 1)
    assert row["close_code"] == 4002


async def test_browser_style_subprotocols(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    token = run_token(realtime_gateway)
    offered = [f"cf-aig-authorization.{token}", "realtime", "openai-insecure-api-key.sk-browser"]
    async with connect(ws_url(realtime_gateway), subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"
        await ws.send("x")
        assert await ws.recv() == "x"
    handshake = realtime_upstream.handshakes[0]
    protocols = handshake["headers"]["sec-websocket-protocol"]
    assert "openai-insecure-api-key.sk-browser" in protocols and token not in protocols


@pytest.mark.parametrize("token", [None, "aigw_bogus", "Bearer nope"])
async def test_refused_without_valid_token(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime, token: str | None
) -> None:
    headers = {"cf-aig-authorization": token} if token else {}
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(ws_url(realtime_gateway), additional_headers=headers):
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(bytes(refused.value.response.body or b""))["error"][0]["code"] == 2009
    assert realtime_upstream.handshakes == []


async def test_unknown_realtime_provider(realtime_gateway: GatewayServer) -> None:
    token = run_token(realtime_gateway)
    url = realtime_gateway.url.replace("http://", "ws://") + f"/v1/{ACCOUNT}/gw/no-such-provider"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(url, additional_headers={"cf-aig-authorization": token}):
            pass
    assert refused.value.response.status_code == 400
    assert json.loads(bytes(refused.value.response.body or b""))["error"][0]["code"] == 2008


async def test_a_session_logs_through_the_pipeline_recorder(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    """Realtime rows follow `cf-aig-collect-log` like every other request, and reach /metrics."""
    token = run_token(realtime_gateway)
    quiet = {"cf-aig-authorization": token, "cf-aig-collect-log": "false"}
    async with connect(ws_url(realtime_gateway), additional_headers=quiet) as ws:
        await ws.send("not logged")
        assert await ws.recv() == "not logged"
    async with connect(ws_url(realtime_gateway), additional_headers={"cf-aig-authorization": token}) as ws:
        await ws.send("logged")
        assert await ws.recv() == "logged"
    rows = log_rows(realtime_gateway, 1)
    time.sleep(0.3)  # a row of the first session, if it were written, has arrived by now
    rows = log_rows(realtime_gateway, 2, timeout=0)
    assert [row["request_size"] for row in rows] == [len("logged")]
    metrics = httpx.get(f"{realtime_gateway.url}/metrics").text
    series = f'aigw_requests_total{{gateway="{ACCOUNT}/gw",provider="openai",status="101"}} 2.0'
    assert series in metrics


@pytest.fixture
def proxied_gateway(
    gateway_settings: Any, gateway_factory: Callable[..., GatewayServer], realtime_upstream: FakeRealtime
) -> GatewayServer:
    """A gateway whose realtime upstream is named `localhost`, so a proxy can tell it apart from
    the test's own connections to 127.0.0.1."""
    overrides = {**gateway_settings.upstream_overrides}
    overrides["realtime_openai"] = f"ws://localhost:{realtime_upstream.port}/v1/realtime"
    gateway = gateway_factory(gateway_settings.model_copy(update={"upstream_overrides": overrides}))
    httpx.post(
        f"{gateway.url}/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways", json={"id": "gw"}, headers=ADMIN
    )
    return gateway


async def test_realtime_upstreams_go_through_the_environments_proxy(
    proxied_gateway: GatewayServer, realtime_upstream: FakeRealtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """limits.md §3: proxies apply to every provider call, realtime sessions included (CONNECT)."""
    from tests.support.forward_proxy import ForwardProxy

    token = run_token(proxied_gateway)
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the test's own connection to the gateway
        headers = {"cf-aig-authorization": f"Bearer {token}", "Authorization": "Bearer sk-provider"}
        async with connect(ws_url(proxied_gateway), additional_headers=headers) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
        assert proxy.seen == [("CONNECT", f"localhost:{realtime_upstream.port}")]
