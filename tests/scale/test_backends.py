"""The same behaviour suite on SQLite, on PostgreSQL, and on PostgreSQL with Redis (issue 5:
"parametrised", "with and without Redis"): plain, streamed, fallback, cached and authenticated
requests through a real gateway, with the log rows read back through SQL on each backend; and the
log writer's bulk insert (one statement per batch).

PostgreSQL runs when AIGW_TEST_POSTGRES_URL is set (Redis: AIGW_TEST_REDIS_URL): a fresh database
per backend, migrated."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.db.migrate import upgrade
from app.main import create_app
from tests.conftest import GatewayServer
from tests.support.backends import LogReader, fresh_postgres
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ADMIN_HEADERS, error_of, make_settings, openai_step, sse_events
from tests.support.server_thread import ServerThread

GPT_4O_MINI = (1.5e-07, 6.0e-07)  # app/providers/prices.json


@dataclass
class Backend:
    name: str
    server: GatewayServer
    logs: LogReader
    upstream: FakeUpstream

    def new_gateway(self, **fields: Any) -> str:
        gateway_id = f"gw-{uuid.uuid4().hex[:10]}"
        response = httpx.post(
            f"{self.server.url}/client/v4/accounts/acct/ai-gateway/gateways",
            json={"id": gateway_id, **fields},
            headers=ADMIN_HEADERS,
        )
        assert response.status_code == 200, response.text
        return gateway_id

    def rows(self, gateway_id: str, count: int) -> list[dict[str, Any]]:
        return self.logs.wait("gateway_id = :g", {"g": gateway_id}, count)


@contextmanager
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database of the backend under test: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite')}/aigw.db"
        return
    postgres_url: str = request.getfixturevalue("postgres_url")  # skips when unset
    with fresh_postgres(postgres_url, prefix="aigw_suite") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "postgresql+redis"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Backend]:
    """The gateway on SQLite, on PostgreSQL, and on PostgreSQL with Redis (shared cache and rate
    limits; gateway ids are unique per test, so the shared Redis never mixes tests up)."""
    redis_url = request.getfixturevalue("redis_url") if request.param.endswith("+redis") else None
    with database_url(request, tmp_path_factory) as url:
        upgrade(url)
        settings = make_settings(
            tmp_path_factory.mktemp("gw"), fake_upstream.url, database_url=url, redis_url=redis_url
        )
        app = create_app(settings)
        with ServerThread(app, lifespan="on", name=f"gateway-{request.param}") as server:
            gateway = GatewayServer(url=server.url, settings=settings, app=app, server=server)
            yield Backend(request.param, gateway, LogReader(url), fake_upstream)


def post(backend: Backend, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{backend.server.url}{path}", json=body, headers=headers or {}, timeout=10)


def metadata(row: dict[str, Any]) -> Any:
    value = row["metadata"]
    return json.loads(value) if isinstance(value, str) else value


def as_bytes(value: Any) -> bytes:
    return bytes(value) if value is not None else b""


def test_plain_request_row(backend: Backend) -> None:
    gw = backend.new_gateway()
    headers = {"cf-aig-metadata": '{"user":"u1","n":7,"ok":true}', "User-Agent": "suite/1"}
    response = post(backend, f"/v1/acct/{gw}", openai_step(), headers)
    assert response.status_code == 200 and response.headers["cf-aig-cache-status"] == "MISS"
    [row] = backend.rows(gw, 1)
    assert row["id"] == response.headers["cf-aig-log-id"]
    assert (row["account_id"], row["provider"], row["model"]) == ("acct", "openai", "gpt-4o-mini")
    assert (row["request_type"], row["path"], row["status_code"]) == ("universal", "chat/completions", 200)
    assert bool(row["success"]) and not bool(row["cached"]) and row["attempts"] == 1
    assert (row["tokens_in"], row["tokens_out"]) == (3, 3)
    assert row["cost"] == pytest.approx(3 * GPT_4O_MINI[0] + 3 * GPT_4O_MINI[1])
    assert metadata(row) == {"user": "u1", "n": 7, "ok": True}
    assert json.loads(as_bytes(row["request_body"]))["model"] == "gpt-4o-mini"
    assert as_bytes(row["response_body"]) == response.content
    assert row["response_size"] == len(response.content) and bool(row["response_body_complete"])
    assert row["user_agent"] == "suite/1" and row["response_content_type"].startswith("application/json")
    assert row["duration_ms"] is not None and row["ttfb_ms"] is not None


def test_streamed_request_row(backend: Backend) -> None:
    gw = backend.new_gateway()
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "say hello please"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = post(backend, f"/v1/acct/{gw}/openai/chat/completions", body)
    assert response.status_code == 200
    assert sse_events(response.content)[-1] == (None, "[DONE]")
    [row] = backend.rows(gw, 1)
    assert row["request_type"] == "provider" and row["response_content_type"].startswith("text/event-stream")
    assert bool(row["success"]) and (row["tokens_in"], row["tokens_out"]) == (3, 3)
    assert row["cost"] == pytest.approx(3 * GPT_4O_MINI[0] + 3 * GPT_4O_MINI[1])
    assert as_bytes(row["response_body"]) == response.content


def test_fallback_rows_share_the_event(backend: Backend) -> None:
    gw = backend.new_gateway()
    steps = [openai_step({"x-fake-status": "500"}), openai_step(model="gpt-4o")]
    response = post(backend, f"/v1/acct/{gw}", steps, {"cf-aig-event-id": "evt-fallback"})
    assert response.status_code == 200 and response.headers["cf-aig-step"] == "1"
    first, second = backend.rows(gw, 2)
    assert (first["step"], first["status_code"], bool(first["success"])) == (0, 500, False)
    assert (second["step"], second["status_code"], bool(second["success"])) == (1, 200, True)
    assert first["event_id"] == second["event_id"] == "evt-fallback"
    assert second["model"] == "gpt-4o" and second["id"] == response.headers["cf-aig-log-id"]
    assert first["cost"] is None and second["cost"] > 0


def test_cache_hit_row(backend: Backend) -> None:
    gw = backend.new_gateway(cache_ttl=300)
    marker = uuid.uuid4().hex
    step = openai_step()
    step["query"]["messages"] = [{"role": "user", "content": f"cache me {marker}"}]
    miss = post(backend, f"/v1/acct/{gw}", step)
    hit = post(backend, f"/v1/acct/{gw}", step)
    assert (miss.headers["cf-aig-cache-status"], hit.headers["cf-aig-cache-status"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    assert sum(marker in r.text for r in backend.upstream.requests) == 1
    miss_row, hit_row = backend.rows(gw, 2)
    assert not bool(miss_row["cached"]) and miss_row["cost"] > 0
    assert bool(hit_row["cached"]) and hit_row["cost"] == 0 and hit_row["attempts"] == 1
    assert hit_row["status_code"] == 200 and as_bytes(hit_row["response_body"]) == miss.content


def test_authentication_and_custom_cost(backend: Backend) -> None:
    gw = backend.new_gateway(authentication=True)
    error_of(post(backend, f"/v1/acct/{gw}", openai_step()), 401, 2009)
    created = httpx.post(
        f"{backend.server.url}/client/v4/accounts/acct/tokens",
        json={"name": "run", "permissions": ["run"], "gateways": [gw]},
        headers=ADMIN_HEADERS,
    )
    assert created.status_code == 200, created.text
    headers = {
        "cf-aig-authorization": f"Bearer {created.json()['result']['value']}",
        "cf-aig-custom-cost": '{"per_token_in": 0.5, "per_token_out": 2}',
    }
    response = post(backend, f"/v1/acct/{gw}", openai_step(), headers)
    assert response.status_code == 200
    rows = backend.rows(gw, 1)
    assert [r["status_code"] for r in rows] == [200]  # a refused request reaches no provider
    assert bool(rows[0]["authenticated"]) and bool(rows[0]["custom_cost"])
    assert rows[0]["cost"] == pytest.approx(3 * 0.5 + 3 * 2)


def test_log_writer_inserts_each_batch_in_one_statement(backend: Backend) -> None:
    """30 concurrent requests: the writer stores them in a few batches, each with one executemany
    (or one multi-row INSERT) on the logs table, never a statement per row."""
    gw = backend.new_gateway()
    inserts: list[tuple[bool, int]] = []
    lock = threading.Lock()

    def record(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, executemany: bool
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO LOGS "):
            rows = len(parameters) if executemany else 1
            with lock:
                inserts.append((executemany, rows))

    engine = backend.server.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with ThreadPoolExecutor(30) as pool:
            statuses = list(pool.map(lambda _: post(backend, f"/v1/acct/{gw}", openai_step()).status_code,
                                     range(30)))  # fmt: skip
        assert statuses == [200] * 30
        backend.rows(gw, 30)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sum(rows for _, rows in inserts) >= 30
    assert len(inserts) <= 6, inserts
    assert all(executemany for executemany, rows in inserts if rows > 1), inserts
    print(backend.name, "log inserts (executemany, rows):", inserts)
