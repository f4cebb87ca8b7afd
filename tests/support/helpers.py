"""Shared helpers for the HTTP end-to-end tests (tests/test_http_*.py).

The tests drive a real gateway (uvicorn on a loopback port) with httpx and the openai SDK, against
the real fake provider server of tests/support/fake_upstream.py. Nothing of the gateway is mocked.

To keep the suite fast, most test modules share one gateway process per module (`running_gateway`)
and isolate their tests by giving each one its own gateway id (`Api.new_gateway`), fail-counter key
and log rows (filtered by gateway id or event id).
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.providers.cost import price_table
from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.server_thread import ServerThread

ACCT = "acct"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
MESSAGES = [{"role": "user", "content": "say hello please"}]  # 3 words: the fake counts 3 prompt tokens
FAKE_TEXT = "Hello from fake"  # 3 words: 3 completion tokens


# ---- gateways --------------------------------------------------------------------------------------


def create_gateway(base_url: str, account: str = "acct", gateway_id: str = "gw", **fields: Any) -> None:
    """Create a gateway through the management API with the admin token (in-process gateways and
    server processes alike); the test fails if it is refused."""
    response = httpx.post(
        f"{base_url}/client/v4/accounts/{account}/ai-gateway/gateways",
        json={"id": gateway_id, **fields},
        headers=ADMIN_HEADERS,
    )
    assert response.status_code == 200, response.text


def make_settings(base_dir: Path, upstream_url: str, **overrides: Any) -> Any:
    """Settings as the conftest `gateway_settings` fixture builds them, plus `overrides`."""
    from app.core.settings import Settings

    values: dict[str, Any] = {
        "database_url": f"sqlite:///{base_dir}/aigw.db",
        "admin_token": ADMIN_TOKEN,
        "redis_url": None,
        "log_flush_interval_s": 0.05,
        "upstream_overrides": upstream_overrides_for(upstream_url),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def running_gateway(base_dir: Path, upstream_url: str, **overrides: Any) -> Iterator[GatewayServer]:
    """A migrated gateway on its own SQLite file, for a module-scoped fixture."""
    from app.db.migrate import upgrade
    from app.main import create_app

    settings = make_settings(base_dir, upstream_url, **overrides)
    upgrade(settings.database_url)
    app = create_app(settings)
    server = ServerThread(app, lifespan="on", name="gateway").start()
    try:
        yield GatewayServer(url=server.url, settings=settings, app=app, server=server)
    finally:
        server.stop()


def unreachable_url() -> str:
    """A loopback URL on which nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def unique(prefix: str = "gw") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Api:
    """An httpx client on one gateway server, with shortcuts for what the tests repeat."""

    server: GatewayServer
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def new_gateway(self, account: str = ACCT, **fields: Any) -> str:
        gateway_id = fields.pop("id", None) or unique()
        response = self.http.post(
            f"/client/v4/accounts/{account}/ai-gateway/gateways",
            json={"id": gateway_id, **fields},
            headers=ADMIN_HEADERS,
        )
        assert response.status_code == 200, response.text
        return gateway_id

    def new_token(self, account: str = ACCT, **body: Any) -> dict[str, Any]:
        payload = {"name": "t", "permissions": ["run"], "gateways": ["*"], **body}
        response = self.http.post(
            f"/client/v4/accounts/{account}/tokens", json=payload, headers=ADMIN_HEADERS
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    def universal(
        self, gateway_id: str, steps: Any, headers: dict[str, str] | None = None, account: str = ACCT
    ) -> httpx.Response:
        return self.http.post(f"/v1/{account}/{gateway_id}", json=steps, headers=headers or {})

    def db(self) -> LogDb:
        return LogDb(db_path(self.server))


@contextmanager
def api_client(server: GatewayServer, timeout: float = 10.0) -> Iterator[Api]:
    with httpx.Client(base_url=server.url, timeout=timeout) as http:
        yield Api(server, http)


# ---- universal steps -------------------------------------------------------------------------------


def openai_step(
    headers: dict[str, str] | None = None, *, stream: bool = False, model: str = "gpt-4o-mini", **extra: Any
) -> dict[str, Any]:
    query: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if stream:
        query["stream"] = True
        query["stream_options"] = {"include_usage": True}
    return {
        "provider": "openai",
        "endpoint": "chat/completions",
        "headers": {"Authorization": "Bearer sk-test-openai", **(headers or {})},
        "query": query,
        **extra,
    }


def workers_ai_step(headers: dict[str, str] | None = None, *, stream: bool = False) -> dict[str, Any]:
    query: dict[str, Any] = {"prompt": "tell me a joke"}
    if stream:
        query["stream"] = True
    return {
        "provider": "workers-ai",
        "endpoint": "@cf/meta/llama-3.1-8b-instruct",
        "headers": {"Authorization": "Bearer cf-test-key", **(headers or {})},
        "query": query,
    }


def anthropic_step(headers: dict[str, str] | None = None, *, stream: bool = False) -> dict[str, Any]:
    query: dict[str, Any] = {"model": "claude-3-5-haiku-latest", "max_tokens": 64, "messages": MESSAGES}
    if stream:
        query["stream"] = True
    return {
        "provider": "anthropic",
        "endpoint": "v1/messages",
        "headers": {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01", **(headers or {})},
        "query": query,
    }


def google_step(headers: dict[str, str] | None = None, *, stream: bool = False) -> dict[str, Any]:
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return {
        "provider": "google-ai-studio",
        "endpoint": f"v1beta/models/gemini-2.0-flash:{action}",
        "headers": {"x-goog-api-key": "AIza-test", **(headers or {})},
        "query": {"contents": [{"role": "user", "parts": [{"text": "say hello please"}]}]},
    }


# provider → step builder, for the tests run over every provider format
STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "openai": openai_step,
    "workers-ai": workers_ai_step,
    "anthropic": anthropic_step,
    "google-ai-studio": google_step,
}


def fail_key() -> dict[str, str]:
    """A fail-counter key of its own for `x-fake-fail-times`, so that tests sharing the fake do not
    count each other's requests."""
    return {"x-fake-fail-key": unique("key")}


# ---- responses -------------------------------------------------------------------------------------


def error_of(response: httpx.Response, status: int, code: int) -> str:
    """Assert a gateway error with the public service's exact body shape; return its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"success", "result", "messages", "error"}, body
    assert body["success"] is False
    assert body["result"] == []
    assert body["messages"] == []
    assert isinstance(body["error"], list) and len(body["error"]) == 1, body
    assert set(body["error"][0]) == {"code", "message"}, body
    assert body["error"][0]["code"] == code, body
    message = body["error"][0]["message"]
    assert isinstance(message, str) and message
    return message


def direct(upstream: FakeUpstream, step: dict[str, Any]) -> httpx.Response:
    """The same request as the gateway's last upstream call, sent to the fake directly."""
    rec = upstream.last
    url = f"{upstream.url}{rec.path}" + (f"?{rec.query}" if rec.query else "")
    headers = {"content-type": "application/json", **step["headers"]}
    return httpx.post(url, content=rec.body, headers=headers, timeout=10)


def sse_events(raw: bytes | str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; LF and CRLF line ends."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    events: list[tuple[str | None, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        events.append((name, "\n".join(data)))
    return events


def normalize_fake(raw: bytes) -> bytes:
    """The fake's response with what differs between two identical calls blanked: its per-request
    sequence number in ids and the `created` clock."""
    raw = re.sub(rb"(chatcmpl-fake|msg_fake|fakeResponse|req_fake)\d+", rb"\1N", raw)
    return re.sub(rb'"created":\d+', b'"created":0', raw)


# ---- log rows --------------------------------------------------------------------------------------


def db_path(server: GatewayServer) -> str:
    url = server.settings.database_url
    assert url.startswith("sqlite:///"), url
    return url.removeprefix("sqlite:///")


class LogDb:
    """Read-only access to the gateway's `logs` table (written by its batched background writer)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def rows(self, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        connection = sqlite3.connect(self.path, timeout=5)
        try:
            connection.row_factory = sqlite3.Row
            cursor = connection.execute(f"SELECT * FROM logs WHERE {where} ORDER BY id", params)
            return [dict(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    def wait(
        self, where: str, params: tuple[Any, ...] = (), count: int = 1, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Poll until at least `count` rows match; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(where, params)
            if len(rows) >= count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} log rows where {where} {params}, found {len(rows)}")
            time.sleep(0.02)

    def wait_gateway(self, gateway_id: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        return self.wait("gateway_id = ?", (gateway_id,), count, timeout)

    def wait_event(self, event_id: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        return self.wait("event_id = ?", (event_id,), count, timeout)


def metadata_of(row: dict[str, Any]) -> Any:
    raw = row["metadata"]
    return None if raw is None else json.loads(raw)


def expected_cost(provider: str, model: str, tokens_in: int, tokens_out: int) -> float:
    """The cost a log row should show, from the price table."""
    price_in, price_out = price_table()[provider][model]
    return tokens_in * price_in + tokens_out * price_out
