"""Two `aigw serve` processes sharing PostgreSQL and Redis, as two replicas behind a load balancer
(issue 5): a response cached through one is a HIT through the other, a rate limit of N admits
exactly N across both under concurrent load, and a token revoked through one is refused by the
other within a second. And `aigw serve --workers 2` runs with Redis set, sharing one limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.backends import LogReader, fresh_postgres
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import create_gateway
from tests.support.processes import ServerProcess, two_replicas

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello please"}]}


@pytest.fixture(scope="module")
def shared_env(postgres_url: str, redis_url: str, fake_upstream: FakeUpstream) -> Iterator[dict[str, str]]:
    with fresh_postgres(postgres_url, prefix="aigw_replicas") as url:
        yield {
            "AIGW_DATABASE_URL": url,
            "AIGW_REDIS_URL": redis_url,
            "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
            "AIGW_LOG_FLUSH_INTERVAL_S": "0.05",
        }


@pytest.fixture(scope="module")
def replicas(
    shared_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with two_replicas(shared_env, tmp_path_factory.mktemp("replicas")) as both:
        yield both


def new_account() -> str:
    return "acct" + uuid.uuid4().hex[:10]  # Redis and the database are shared: keep tests apart


def test_response_cached_through_one_is_a_hit_through_the_other(
    replicas: tuple[ServerProcess, ServerProcess], fake_upstream: FakeUpstream, shared_env: dict[str, str]
) -> None:
    first, second = replicas
    account = new_account()
    create_gateway(first.url, account, cache_ttl=300)
    body = {**CHAT, "messages": [{"role": "user", "content": f"cache {account}"}]}
    path = f"/v1/{account}/gw/openai/chat/completions"
    miss = httpx.post(first.url + path, json=body)
    hit = httpx.post(second.url + path, json=body)
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert (miss.headers["cf-aig-cache-status"], hit.headers["cf-aig-cache-status"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    assert sum(account in r.text for r in fake_upstream.requests) == 1
    rows = LogReader(shared_env["AIGW_DATABASE_URL"]).wait(
        "account_id = :a", {"a": account}, count=2
    )  # both replicas' writers landed in the one database
    assert [bool(r["cached"]) for r in rows] == [False, True]


async def _hammer(servers: list[ServerProcess], path: str, total: int) -> list[int]:
    async with httpx.AsyncClient(timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post(servers[i % len(servers)].url + path, json=CHAT) for i in range(total))
        )
    return [r.status_code for r in responses]


@pytest.mark.parametrize("technique", ["fixed", "sliding"])
def test_rate_limit_admits_exactly_n_across_both(
    replicas: tuple[ServerProcess, ServerProcess], technique: str
) -> None:
    first, second = replicas
    account = new_account()
    create_gateway(
        first.url,
        account,
        rate_limiting_limit=7,
        rate_limiting_interval=3600,
        rate_limiting_technique=technique,
    )
    statuses = asyncio.run(_hammer([first, second], f"/v1/{account}/gw/openai/chat/completions", 30))
    assert statuses.count(200) == 7 and statuses.count(429) == 23, statuses


def test_token_revoked_through_one_is_refused_by_the_other_within_a_second(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = replicas
    account = new_account()
    create_gateway(first.url, account, authentication=True)
    created = httpx.post(
        f"{first.url}/client/v4/accounts/{account}/tokens",
        json={"name": "run", "permissions": ["run"]},
        headers=ADMIN,
    )
    assert created.status_code == 200, created.text
    token = created.json()["result"]
    path = f"/v1/{account}/gw/openai/chat/completions"
    auth = {"cf-aig-authorization": f"Bearer {token['value']}"}
    with httpx.Client(timeout=5) as client:
        assert client.post(second.url + path, json=CHAT, headers=auth).status_code == 200  # cached there
        revoked = client.delete(
            f"{first.url}/client/v4/accounts/{account}/tokens/{token['id']}", headers=ADMIN
        )
        assert revoked.status_code == 200, revoked.text
        started = time.monotonic()
        while (status := client.post(second.url + path, json=CHAT, headers=auth).status_code) == 200:
            assert time.monotonic() - started < 3, "the revoked token is still accepted"
            time.sleep(0.02)
        elapsed = time.monotonic() - started
    assert status == 401
    assert elapsed <= 1.2, f"revocation took {elapsed:.2f} s to reach the other replica"


def test_two_workers_start_with_redis_and_share_one_limit(shared_env: dict[str, str], tmp_path: Path) -> None:
    with ServerProcess(shared_env, "--workers", "2", log_path=tmp_path / "workers.log") as server:
        account = new_account()
        create_gateway(server.url, account, rate_limiting_limit=5, rate_limiting_interval=3600)
        path = f"{server.url}/v1/{account}/gw/openai/chat/completions"

        def one(_: int) -> int:  # a new connection each: the kernel spreads them over both workers
            with httpx.Client(timeout=10) as client:
                return client.post(path, json=CHAT).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(24)))
        assert statuses.count(200) == 5 and statuses.count(429) == 19, statuses
        assert server.terminate() == 0, server.output()
