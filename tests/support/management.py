"""Shared pieces of the management API tests (logs, stored keys, custom providers, analytics).

Every module here runs on SQLite and, when AIGW_TEST_POSTGRES_URL is set, on PostgreSQL too: the
`backend_url` helper turns the parametrised backend into a fresh database URL (PostgreSQL: a new
database on the test server, dropped afterwards, as tests/db/test_migrations.py does).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import GatewayServer
from tests.support.helpers import ACCT, ADMIN_HEADERS, running_gateway, unique

SECRET_KEY = "test-server-secret-key-0123456789"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres"),
]


def _admin_sql(server_url: str, sql: str) -> None:
    from app.db.session import async_url

    async def go() -> None:
        engine = create_async_engine(
            async_url(server_url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            async with engine.connect() as connection:
                await connection.execute(text(sql))
        finally:
            await engine.dispose()

    _run_in_thread(go)


def _run_in_thread(factory: Callable[[], Any]) -> Any:
    """`asyncio.run` in a thread of its own, so that async tests can call it too."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


@contextmanager
def backend_url(backend: str, base_dir: Path) -> Iterator[str]:
    """A fresh, empty database of that backend (skips PostgreSQL without AIGW_TEST_POSTGRES_URL)."""
    if backend == "sqlite":
        yield f"sqlite:///{base_dir}/aigw.db"
        return
    server = os.environ.get("AIGW_TEST_POSTGRES_URL")
    if not server:
        pytest.skip("AIGW_TEST_POSTGRES_URL not set: set it to run PostgreSQL tests")
    name = f"aigw_mgmt_{uuid.uuid4().hex[:12]}"
    _admin_sql(server, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def management_server(
    backend: str, base_dir: Path, upstream_url: str, **overrides: Any
) -> Iterator[GatewayServer]:
    settings: dict[str, Any] = {"secret_key": SECRET_KEY, "allow_http_custom_providers": True, **overrides}
    with (
        backend_url(backend, base_dir) as url,
        running_gateway(base_dir, upstream_url, database_url=url, **settings) as server,
    ):
        yield server


@dataclass
class Mgmt:
    """httpx on one server, with the management paths and waits the tests repeat."""

    server: GatewayServer
    http: httpx.Client
    account: str = ACCT

    def gw_path(self, gateway_id: str, rest: str = "") -> str:
        return f"/client/v4/accounts/{self.account}/ai-gateway/gateways/{gateway_id}{rest}"

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else dict(ADMIN_HEADERS)
        response = self.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 500, (response.status_code, response.text)
        return response

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["errors"] == [], body
        return body

    def new_gateway(self, **fields: Any) -> str:
        gateway_id = fields.pop("id", None) or unique()
        path = f"/client/v4/accounts/{self.account}/ai-gateway/gateways"
        self.ok("POST", path, json={"id": gateway_id, **fields})
        return gateway_id

    def new_token(self, permissions: list[str], gateways: list[str] | None = None) -> str:
        body = {"name": "t", "permissions": permissions, "gateways": gateways or ["*"]}
        return str(
            self.ok("POST", f"/client/v4/accounts/{self.account}/tokens", json=body)["result"]["value"]
        )

    def logs(self, gateway_id: str, params: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = self.ok("GET", self.gw_path(gateway_id, "/logs"), params=params)
        return body

    def all_logs(self, gateway_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.logs(gateway_id, {"per_page": 50, "page": page})
            rows.extend(body["result"])
            if len(body["result"]) < 50:
                return rows
            page += 1

    def wait_logs(self, gateway_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll the list until `count` rows are there (the writer is batched)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.all_logs(gateway_id)
            if len(rows) >= count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} logs in {gateway_id}, found {len(rows)}")
            time.sleep(0.05)

    def universal(self, gateway_id: str, steps: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(f"/v1/{self.account}/{gateway_id}", json=steps, headers=headers or {})


@contextmanager
def mgmt_client(server: GatewayServer) -> Iterator[Mgmt]:
    with httpx.Client(base_url=server.url, timeout=15.0) as http:
        yield Mgmt(server, http)


def v4_errors(response: httpx.Response, status: int) -> list[dict[str, Any]]:
    """The v4 errors of a failed management call, asserting its status and envelope."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == [], body
    assert all(set(e) == {"code", "message"} for e in body["errors"]), body
    return list(body["errors"])


def errors_of(response: httpx.Response, status: int = 400) -> list[str]:
    """The v4 error messages of a failed management call (asserting its status and envelope)."""
    return [e["message"] for e in v4_errors(response, status)]


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def query_db(database_url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement on the server's database (SQLite or PostgreSQL), committed."""
    from app.db.session import async_url

    async def go() -> list[tuple[Any, ...]]:
        engine = create_async_engine(async_url(database_url), poolclass=pool.NullPool)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(sql), params or {})
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    result: list[tuple[Any, ...]] = _run_in_thread(go)
    return result
