"""Spend limits shared by two `aigw serve` processes on one PostgreSQL and one Redis (two
replicas): twenty concurrent calls spread over both, against a budget that fits five, admit
exactly five; and a gateway whose Redis is down refuses (503 / 2014) or notes it (fail open)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.spend.support import chat, limits, refused, rule, total_cost
from tests.support.backends import fresh_postgres
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import create_gateway, error_of, make_settings
from tests.support.management import wait_until
from tests.support.processes import ServerProcess, two_replicas


@pytest.fixture(scope="module")
def replicas(
    postgres_url: str, redis_url: str, fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("spend-replicas")
    with fresh_postgres(postgres_url, prefix="aigw_spend") as url:
        env = {
            "AIGW_DATABASE_URL": url,
            "AIGW_REDIS_URL": redis_url,
            "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
            "AIGW_LOG_FLUSH_INTERVAL_S": "0.05",
        }
        with two_replicas(env, logs) as both:
            yield both


def test_two_processes_admit_exactly_the_budget(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    account = "acct" + uuid.uuid4().hex[:10]  # Redis and the database are shared: keep tests apart
    create_gateway(replicas[0].url, account, **limits(rule(5, id="five")))
    clients = [httpx.Client(base_url=r.url, timeout=20) for r in replicas]
    headers = {**total_cost(1.0), "x-fake-delay-ms": "400"}
    try:
        with ThreadPoolExecutor(20) as pool:
            responses = list(
                pool.map(lambda i: chat(clients[i % 2], "gw", headers, account=account), range(20))
            )
        assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15
        for response in responses:
            if response.status_code == 429:
                refused(response)
        for client in clients:  # settled in Redis: both replicas see the budget spent
            refused(chat(client, "gw", total_cost(1.0), account=account))
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_down(
    tmp_path: Path,
    fake_upstream: FakeUpstream,
    gateway_factory: Callable[..., GatewayServer],
    fail_open: bool,
) -> None:
    settings = make_settings(
        tmp_path, fake_upstream.url, redis_url="redis://127.0.0.1:1/0", spend_limit_fail_open=fail_open
    )
    server = gateway_factory(settings)
    create_gateway(server.url, "acct", **limits(rule(5, id="r")))
    with httpx.Client(base_url=server.url, timeout=20) as client:
        response = chat(client, "gw", total_cost(1.0))
        if fail_open:
            assert response.status_code == 200, response.text
            logs = "/client/v4/accounts/acct/ai-gateway/gateways/gw/logs"
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            wait_until(lambda: bool(client.get(logs, headers=admin).json()["result"]), what="log row")
            row_id = client.get(logs, headers=admin).json()["result"][0]["id"]
            notes = client.get(f"{logs}/{row_id}", headers=admin).json()["result"]["gateway_notes"]
            assert "spend limiter unavailable" in notes
        else:
            error_of(response, 503, 2014)
        assert client.get("/healthz").status_code == 200
