"""Shared helpers for the universal WebSocket tests (tests/test_ws_*.py). This module holds no test.

A `WsSession` wraps a real `websockets` client connection to a gateway running on a loopback port
and sorts the `universal.*` frames it receives by eventId, so a test can send several requests and
then wait for each one's terminal frame. Nothing of the gateway is mocked.

The fixtures at the end (`api`, `token`, `gw`, `url`, `log`) are shared by the session test modules
(tests/ws/test_ws_handshake.py, test_ws_requests.py, test_ws_errors.py, test_ws_cancel_and_limits.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, Api, LogDb, api_client, db_path, openai_step, unique

SUBPROTOCOL_PREFIX = "cf-aig-authorization."
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RESULT_METADATA_KEYS = {"cacheStatus", "eventId", "logId", "step", "contentType", "status", "requestId"}
TEXT = "The quick brown fox jumps over the lazy dog"


def ws_url(server: GatewayServer | str, gateway_id: str, account: str = ACCT, suffix: str = "") -> str:
    base = server if isinstance(server, str) else server.url
    return base.replace("http://", "ws://", 1) + f"/v1/{account}/{gateway_id}{suffix}"


def is_terminal(frame: dict[str, Any]) -> bool:
    """The last frame of an event: a `universal.created` carrying a response, or a `universal.done`."""
    return frame.get("type") == "universal.done" or (
        frame.get("type") == "universal.created" and "response" in frame
    )


def chunk_text(chunk: Any) -> str:
    """The text piece of one parsed stream chunk in the OpenAI, Anthropic or Workers AI format."""
    if not isinstance(chunk, dict):
        return ""
    if isinstance(chunk.get("choices"), list):
        return "".join((choice.get("delta") or {}).get("content") or "" for choice in chunk["choices"])
    if chunk.get("type") == "content_block_delta":
        return str(chunk["delta"].get("text", ""))
    if isinstance(chunk.get("response"), str):
        return str(chunk["response"])
    return ""


@dataclass
class Event:
    """Every frame received for one eventId, in order."""

    event_id: str
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def terminal(self) -> dict[str, Any] | None:
        return next((f for f in self.frames if is_terminal(f)), None)

    @property
    def created(self) -> dict[str, Any]:
        frame = next((f for f in self.frames if f["type"] == "universal.created"), None)
        assert frame is not None, self.frames
        return frame

    @property
    def done(self) -> dict[str, Any]:
        frame = next((f for f in self.frames if f["type"] == "universal.done"), None)
        assert frame is not None, self.frames
        return frame

    @property
    def chunks(self) -> list[Any]:
        return [f["response"] for f in self.frames if f["type"] == "universal.stream"]

    @property
    def text(self) -> str:
        return "".join(chunk_text(c) for c in self.chunks)

    @property
    def response(self) -> Any:
        return self.created["response"]

    def assert_stream_shape(self) -> None:
        """created (no response) → stream frames (eventId-only metadata) → done, nothing else."""
        types = [f["type"] for f in self.frames]
        assert types[0] == "universal.created" and "response" not in self.frames[0], self.frames[0]
        assert types[-1] == "universal.done", types
        assert set(types[1:-1]) <= {"universal.stream"}, types
        for frame in self.frames[1:-1]:
            assert frame["metadata"] == {"eventId": self.event_id}, frame
            assert frame["response"] != "[DONE]"


class WsSession:
    """One client connection; frames are filed by eventId as they arrive."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: dict[str, Event] = {}
        self.anonymous: list[dict[str, Any]] = []  # frames whose metadata carries no eventId
        self.order: list[dict[str, Any]] = []  # every frame, in arrival order

    async def send(self, frame: Any) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def create(self, request: Any) -> None:
        await self.send({"type": "universal.create", "request": request})

    async def send_together(self, *frames: Any) -> None:
        """Several text frames in a single TCP write, so that the server reads them in one go."""
        async with self.ws.send_context():
            for frame in frames:
                self.ws.protocol.send_text(json.dumps(frame).encode())
            self.ws.transport.write(b"".join(self.ws.protocol.data_to_send()))

    async def cancel(self, event_id: Any) -> None:
        await self.send({"type": "universal.cancel", "eventId": event_id})

    async def recv_frame(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"server sent a binary frame: {raw!r}"
        frame: dict[str, Any] = json.loads(raw)
        assert frame.get("type") in {"universal.created", "universal.stream", "universal.done"}, frame
        self.order.append(frame)
        event_id = frame.get("metadata", {}).get("eventId")
        if event_id is None:
            self.anonymous.append(frame)
        else:
            self.events.setdefault(event_id, Event(event_id)).frames.append(frame)
        return frame

    def event(self, event_id: str) -> Event:
        return self.events.setdefault(event_id, Event(event_id))

    async def wait(self, *event_ids: str, timeout: float = 10.0) -> list[Event]:
        """Read frames until each of `event_ids` has its terminal frame."""
        async with asyncio.timeout(timeout):
            while not all(self.event(e).terminal is not None for e in event_ids):
                await self.recv_frame(timeout)
        return [self.events[e] for e in event_ids]

    async def wait_anonymous(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.anonymous) < count:
                await self.recv_frame(timeout)
        return self.anonymous[:count]

    async def request(self, request: Any, timeout: float = 10.0) -> Event:
        """Send one request (which must carry an eventId) and wait for its terminal frame."""
        steps = request if isinstance(request, list) else [request]
        event_id = next(s["eventId"] for s in steps if "eventId" in s)
        await self.create(request)
        (event,) = await self.wait(event_id, timeout=timeout)
        return event

    async def assert_alive(self) -> None:
        """A good request still gets its answer on this connection."""
        event = await self.request(openai_step(eventId=unique("alive")))
        assert event.created["metadata"]["status"] == 200, event.frames
        assert event.response["choices"][0]["message"]["content"] == "Hello from fake"


@asynccontextmanager
async def ws_session(
    url: str,
    token: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    subprotocol: bool = False,
    subprotocols: list[str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[WsSession]:
    """Connect with the token in the `cf-aig-authorization` header (default) or as a subprotocol
    entry (`subprotocol=True`); `subprotocols` offers entries as they are."""
    all_headers = dict(headers or {})
    if token is not None and subprotocol:
        subprotocols = [*(subprotocols or []), f"{SUBPROTOCOL_PREFIX}{token}"]
    elif token is not None:
        all_headers["cf-aig-authorization"] = f"Bearer {token}"
    async with connect(
        url,
        additional_headers=all_headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        open_timeout=5,
        close_timeout=2,
        max_size=None,
        **kwargs,
    ) as ws:
        yield WsSession(ws)


def error_response(frame: dict[str, Any], code: int) -> str:
    """Assert a gateway error frame (protocol.md §6): exact `response` shape; return the message."""
    assert frame["type"] == "universal.created", frame
    response = frame["response"]
    assert set(response) == {"success", "errors"}, response
    assert response["success"] is False
    assert isinstance(response["errors"], list) and len(response["errors"]) == 1, response
    assert set(response["errors"][0]) == {"code", "message"}, response
    assert response["errors"][0]["code"] == code, response
    message = response["errors"][0]["message"]
    assert isinstance(message, str) and message
    return message


def log_db(server: GatewayServer) -> LogDb:
    return LogDb(db_path(server))


def barrier(api: Api, log: LogDb) -> None:
    """Make one request on a fresh gateway and wait for its log row. The writer stores rows in the
    order they were queued, so once this row is visible any row queued before it is visible too:
    a test can then assert that something was *not* logged without sleeping."""
    gateway_id = api.new_gateway()
    response = api.universal(gateway_id, openai_step())
    assert response.status_code == 200, response.text
    log.wait_gateway(gateway_id)


def eid(prefix: str = "ev") -> str:
    return unique(prefix)


def create_frame(request: Any) -> str:
    """A `universal.create` frame as sent, for any `request`, good or bad."""
    return json.dumps({"type": "universal.create", "request": request})


def good_step(**fields: Any) -> dict[str, Any]:
    return {**openai_step(), **fields}


# ---- fixtures of the session test modules ------------------------------------------------------------
# pytest sees a fixture only in the namespace of the test module (or a conftest), so each session
# module imports these functions. Each is registered under its `name=`, which its own function name
# differs from, so that the import does not shadow the test arguments. The import stands after an
# `# isort: split` (so that it is not merged with the other imports from here) and carries a noqa
# comment for F401, the functions being used by pytest only:
#     from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture


@pytest.fixture(name="api")
def api_fixture(server: GatewayServer, upstream: FakeUpstream) -> Iterator[Api]:
    with api_client(server) as client:
        yield client


@pytest.fixture(name="token", scope="module")
def token_fixture(server: GatewayServer) -> str:
    with api_client(server) as client:
        return str(client.new_token()["value"])


@pytest.fixture(name="gw")
def gw_fixture(api: Api) -> str:
    """A gateway with authentication off: WebSocket sessions still require a token (§5)."""
    return api.new_gateway(authentication=False)


@pytest.fixture(name="url")
def url_fixture(server: GatewayServer, gw: str) -> str:
    return ws_url(server, gw)


@pytest.fixture(name="log")
def log_fixture(server: GatewayServer) -> LogDb:
    return log_db(server)
