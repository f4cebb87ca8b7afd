"""Configuration changes reach every process over Redis pub/sub (issue 5, app/services/invalidation.py).

Two `aigw serve` processes share PostgreSQL and Redis with both config TTLs at 30 s, so the cache
never expires during a test: a change written through one process (management API or CLI) that the
other sees within a second can only have come over pub/sub. The subscriber itself is tested against
the real Redis: a killed connection is re-established and clears the caches (messages sent
meanwhile are lost), an unreachable Redis leaves the short TTL in force, and a management write
succeeds with Redis down.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from redis import asyncio as redis_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.settings import Settings
from app.db import gateways
from app.db.migrate import upgrade_async
from app.db.session import create_engine, session_factory
from app.services.config import ConfigCache, TTLCache
from app.services.invalidation import CHANNEL, Change, ConfigInvalidation, ConfigTTL
from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.support.backends import fresh_postgres
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import make_settings, unreachable_url
from tests.support.processes import REPO, ServerProcess, two_replicas

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LONG_TTL = "30"  # far beyond any wait below: only pub/sub can explain a change seen in time
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello please"}]}


# ---- two replicas ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_env(postgres_url: str, redis_url: str, fake_upstream: FakeUpstream) -> Iterator[dict[str, str]]:
    with fresh_postgres(postgres_url, prefix="aigw_invalidation") as url:
        yield {
            "AIGW_DATABASE_URL": url,
            "AIGW_REDIS_URL": redis_url,
            "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "AIGW_SECRET_KEY": "invalidation-test-secret-key",
            "AIGW_ALLOW_HTTP_CUSTOM_PROVIDERS": "true",
            "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
            "AIGW_CONFIG_CACHE_TTL_S": LONG_TTL,
            "AIGW_CONFIG_CACHE_TTL_PUBSUB_S": LONG_TTL,
        }


def _live(server: ServerProcess) -> bool:
    metrics = httpx.get(f"{server.url}/metrics", timeout=2).text
    return "aigw_config_invalidation_live 1.0" in metrics


@pytest.fixture(scope="module")
def replicas(
    shared_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with two_replicas(shared_env, tmp_path_factory.mktemp("invalidation")) as (first, second):
        deadline = time.monotonic() + 10
        while not (_live(first) and _live(second)):  # both subscribed before any test starts
            assert time.monotonic() < deadline, "the invalidation subscribers never came up"
            time.sleep(0.05)
        yield first, second


def new_account() -> str:
    return "acct" + uuid.uuid4().hex[:10]  # Redis and the database are shared: keep tests apart


def manage(
    server: ServerProcess, method: str, path: str, json: Mapping[str, object] | None = None
) -> dict[str, object]:
    response = httpx.request(method, f"{server.url}/client/v4/accounts/{path}", headers=ADMIN, json=json)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()["result"]
    return result


def mint_run_token(server: ServerProcess, account: str) -> tuple[str, str]:
    token = manage(server, "POST", f"{account}/tokens", json={"name": "run", "permissions": ["run"]})
    return str(token["id"]), str(token["value"])


def within_a_second(condition: Callable[[], bool], what: str) -> float:
    """Poll until `condition` holds; fail unless it did within one second. Returns the time taken."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < 3, f"{what}: not seen after 3 s"
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"{what}: took {elapsed:.2f} s"
    return elapsed


def chat(server: ServerProcess, account: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/{account}/gw/openai/chat/completions", json=CHAT, headers=headers or {}, timeout=5
    )


def test_token_revoked_through_one_is_refused_by_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = replicas
    account = new_account()
    manage(first, "POST", f"{account}/ai-gateway/gateways", json={"id": "gw", "authentication": True})
    token_id, value = mint_run_token(first, account)
    auth = {"cf-aig-authorization": f"Bearer {value}"}
    assert chat(second, account, auth).status_code == 200  # now cached there, for 30 s
    manage(first, "DELETE", f"{account}/tokens/{token_id}")
    within_a_second(lambda: chat(second, account, auth).status_code == 401, "revocation")


def test_token_revoked_with_the_cli_is_refused_by_a_server(
    replicas: tuple[ServerProcess, ServerProcess], shared_env: dict[str, str]
) -> None:
    _, second = replicas
    account = new_account()
    manage(second, "POST", f"{account}/ai-gateway/gateways", json={"id": "gw", "authentication": True})
    token_id, value = mint_run_token(second, account)
    auth = {"cf-aig-authorization": f"Bearer {value}"}
    assert chat(second, account, auth).status_code == 200
    revoke = subprocess.run(
        [sys.executable, "-m", "app.cli", "tokens", "revoke", "--account", account, "--id", token_id],
        cwd=REPO,
        env=ServerProcess(shared_env).env,
        capture_output=True,
        timeout=60,
    )
    assert revoke.returncode == 0, revoke.stderr
    within_a_second(lambda: chat(second, account, auth).status_code == 401, "CLI revocation")


def test_gateway_authentication_switched_on_then_deleted_through_one(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = replicas
    account = new_account()
    manage(first, "POST", f"{account}/ai-gateway/gateways", json={"id": "gw"})
    assert chat(second, account).status_code == 200  # authentication off, cached there
    manage(first, "PUT", f"{account}/ai-gateway/gateways/gw", json={"authentication": True})
    within_a_second(lambda: chat(second, account).status_code == 401, "authentication switched on")

    _, value = mint_run_token(first, account)
    auth = {"cf-aig-authorization": f"Bearer {value}"}
    assert chat(second, account, auth).status_code == 200
    manage(first, "DELETE", f"{account}/ai-gateway/gateways/gw")

    def gone() -> bool:
        response = chat(second, account, auth)
        return response.status_code == 400 and response.json()["error"][0]["code"] == 2001

    within_a_second(gone, "gateway deleted")


def test_stored_key_rotated_through_one_is_injected_by_the_other(
    replicas: tuple[ServerProcess, ServerProcess], fake_upstream: FakeUpstream
) -> None:
    first, second = replicas
    account = new_account()
    manage(first, "POST", f"{account}/ai-gateway/gateways", json={"id": "gw", "authentication": True})
    _, value = mint_run_token(first, account)
    stored = manage(
        first,
        "POST",
        f"{account}/ai-gateway/gateways/gw/provider_configs",
        json={"provider_slug": "openai", "alias": "default", "secret": "sk-first-key-0001"},
    )

    def key_sent_upstream() -> str:
        marker = uuid.uuid4().hex
        body = {**CHAT, "messages": [{"role": "user", "content": marker}]}
        response = httpx.post(
            f"{second.url}/v1/{account}/gw/openai/chat/completions",
            json=body,
            headers={"cf-aig-authorization": f"Bearer {value}"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        [seen] = [r for r in fake_upstream.requests if marker in r.text]
        return seen.headers.get("authorization", "")

    assert key_sent_upstream() == "Bearer sk-first-key-0001"  # cached there
    config_path = f"{account}/ai-gateway/gateways/gw/provider_configs/{stored['id']}"
    manage(first, "PUT", config_path, json={"secret": "sk-second-key-0002"})
    within_a_second(lambda: key_sent_upstream() == "Bearer sk-second-key-0002", "key rotation")


def test_custom_provider_created_through_one_is_routed_by_the_other(
    replicas: tuple[ServerProcess, ServerProcess], fake_upstream: FakeUpstream
) -> None:
    first, second = replicas
    account = new_account()
    manage(first, "POST", f"{account}/ai-gateway/gateways", json={"id": "gw"})
    path = f"{second.url}/v1/{account}/gw/custom-fake/chat/completions"
    assert httpx.post(path, json=CHAT).status_code != 200  # none yet: the empty set is cached there
    body = {"name": "fake", "slug": "fake", "base_url": f"{fake_upstream.url}/v1"}
    manage(first, "POST", f"{account}/ai-gateway/custom-providers", json=body)
    within_a_second(lambda: httpx.post(path, json=CHAT).status_code == 200, "custom provider created")


# ---- the subscriber against the real Redis -----------------------------------------------------------


Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    """A migrated SQLite file holding gateway acct/gw (authentication off)."""
    url = f"sqlite:///{tmp_path}/aigw.db"
    await upgrade_async(url)
    engine = create_engine(url)
    factory = session_factory(engine)
    async with factory() as session:
        await gateways.create_gateway(session, "acct", gateways.GatewayCreate(id="gw"))
    yield factory
    await engine.dispose()


async def _set_authentication_unannounced(sessions: Sessions, on: bool) -> None:
    """A change no message announces (as from a writer that could not reach Redis)."""
    async with sessions() as session:
        statement = text("UPDATE gateways SET authentication = :on WHERE account_id = 'acct' AND id = 'gw'")
        await session.execute(statement, {"on": on})
        await session.commit()


async def _authentication(directory: ConfigCache) -> bool:
    gateway = await directory.gateway("acct", "gw")
    assert gateway is not None
    return gateway.authentication


async def _within_a_second(directory: ConfigCache, expected: bool, what: str) -> None:
    started = time.monotonic()
    while await _authentication(directory) != expected:
        assert time.monotonic() - started < 3, f"{what}: not seen after 3 s"
        await asyncio.sleep(0.02)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"{what}: took {elapsed:.2f} s"


async def _until_live(ttl: ConfigTTL) -> None:
    deadline = time.monotonic() + 5
    while not ttl.live:
        assert time.monotonic() < deadline, "the subscriber never heard Redis"
        await asyncio.sleep(0.02)


async def _kill_connection(admin: redis_asyncio.Redis, client_name: str | None) -> None:
    """Kill one subscriber's connection by id (other test runs may share this Redis server)."""
    listing = (await admin.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).decode()
    ids = [
        field.removeprefix("id=")
        for line in listing.splitlines()
        if f" name={client_name} " in line
        for field in line.split()
        if field.startswith("id=")
    ]
    assert len(ids) == 1, listing
    assert await admin.execute_command("CLIENT", "KILL", "ID", ids[0]) == 1


async def test_a_reconnect_clears_the_cache_and_resubscribes(sessions: Sessions, redis_url: str) -> None:
    ttl = ConfigTTL(float(LONG_TTL), float(LONG_TTL))  # nothing expires by itself during the test
    directory = ConfigCache(sessions, ttl)
    invalidation = ConfigInvalidation(redis_url, ttl, directory)
    admin = redis_asyncio.from_url(redis_url)
    invalidation.start()
    try:
        await _until_live(ttl)
        assert await _authentication(directory) is False  # cached now
        await _set_authentication_unannounced(sessions, True)
        await asyncio.sleep(0.3)
        assert await _authentication(directory) is False  # the cache holds: nothing was announced

        await _kill_connection(admin, invalidation.client_name)
        await _within_a_second(directory, True, "change missed while disconnected")

        # Subscribed again: an announced change is evicted at once.
        await _until_live(ttl)
        await _set_authentication_unannounced(sessions, False)
        writer = ConfigInvalidation(redis_url, ConfigTTL(0.5, 0.5), None)
        try:
            await writer.changed(Change("gateway", "acct", "gw"))
        finally:
            await writer.stop()
        await _within_a_second(directory, False, "change announced after the reconnect")

        # A message it cannot read might have named anything: everything is dropped.
        await _set_authentication_unannounced(sessions, True)
        await admin.publish(CHANNEL, b"not json")
        await _within_a_second(directory, True, "unreadable message")
    finally:
        await invalidation.stop()
        await admin.aclose()


async def test_without_a_live_subscription_the_short_ttl_applies(sessions: Sessions) -> None:
    ttl = ConfigTTL(0.3, float(LONG_TTL))
    directory = ConfigCache(sessions, ttl)
    invalidation = ConfigInvalidation(unreachable_url().replace("http://", "redis://"), ttl, directory)
    invalidation.start()
    try:
        await asyncio.sleep(0.5)  # a few failed connection attempts
        assert not ttl.live and ttl() == 0.3
        assert await _authentication(directory) is False
        await _set_authentication_unannounced(sessions, True)
        await _within_a_second(directory, True, "change with Redis unreachable")
    finally:
        await invalidation.stop()


async def test_a_load_under_way_when_its_entry_is_evicted_is_not_cached() -> None:
    """The row it read may predate the change: with a long TTL it would be served for that long."""
    cache: TTLCache[str, str] = TTLCache(float(LONG_TTL))
    release = asyncio.Event()

    async def read_before_the_change() -> str:
        await release.wait()
        return "old"

    async def read_after_the_change() -> str:
        return "new"

    asked_before = asyncio.create_task(cache.get("key", read_before_the_change))
    await asyncio.sleep(0.01)  # its load is under way
    cache.invalidate("key")
    release.set()
    assert await asked_before == "old"  # the caller that asked before the change gets what was read
    assert await cache.get("key", read_after_the_change) == "new"


def test_a_management_write_succeeds_with_redis_down(
    tmp_path: Path,
    fake_upstream: FakeUpstream,
    gateway_factory: Callable[[Settings], GatewayServer],
) -> None:
    """Revoking a token through a process whose Redis is down still succeeds and, in that process,
    takes effect at once (with a 30 s TTL: only the local eviction explains it)."""
    dead = unreachable_url().replace("http://", "redis://")
    settings = make_settings(
        tmp_path, fake_upstream.url, redis_url=dead, config_cache_ttl_s=30, config_cache_ttl_pubsub_s=30
    )
    server = gateway_factory(settings)
    accounts = f"{server.url}/client/v4/accounts/acct"
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{accounts}/tokens", json={"permissions": ["read"]}, headers=ADMIN)
        assert created.status_code == 200, created.text
        token = created.json()["result"]
        mine = {"Authorization": f"Bearer {token['value']}"}
        assert client.get(f"{accounts}/ai-gateway/gateways", headers=mine).status_code == 200  # cached
        started = time.monotonic()
        revoked = client.delete(f"{accounts}/tokens/{token['id']}", headers=ADMIN)
        assert revoked.status_code == 200, revoked.text
        assert time.monotonic() - started < 3  # the failed publish is bounded
        assert client.get(f"{accounts}/ai-gateway/gateways", headers=mine).status_code == 401
