"""A gateway whose Redis misbehaves (fake_redis.py: no reply, a reply cut in the middle, garbage):
calls checked by a spend limit or by a route's cost limit fail closed with 503 / 2014 within the
store's timeout (AIGW_SPEND_REDIS_TIMEOUT_S), or pass when failing open, and are admitted again
as soon as Redis answers (the store connects again by itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.routing.conftest import END, STORED, model, new_route, start
from tests.routing.test_route_budgets import budget, estimate_nano, send
from tests.spend.fake_redis import FakeRedis
from tests.spend.support import chat, limits, rule, total_cost
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import create_gateway, error_of, make_settings
from tests.support.management import management_server, mgmt_client

TIMEOUT_S = 0.3


@pytest.fixture
def fake() -> Iterator[FakeRedis]:
    server = FakeRedis().start()
    yield server
    server.stop()


@pytest.mark.parametrize("fault", ["slow", "cut", "garbage"])
def test_spend_limits_fail_closed_then_recover(
    tmp_path: Path,
    fake_upstream: FakeUpstream,
    gateway_factory: Callable[..., GatewayServer],
    fake: FakeRedis,
    fault: str,
) -> None:
    settings = make_settings(
        tmp_path, fake_upstream.url, redis_url=fake.redis_url, spend_redis_timeout_s=TIMEOUT_S
    )
    server = gateway_factory(settings)
    create_gateway(server.url, "acct", **limits(rule(5, id="r")))
    with httpx.Client(base_url=server.url, timeout=20) as client:
        assert chat(client, "gw", total_cost(1.0)).status_code == 200  # the fake admits
        fake.mode = fault
        started = time.monotonic()
        error_of(chat(client, "gw", total_cost(1.0)), 503, 2014)
        assert time.monotonic() - started < TIMEOUT_S + 2
        fake.mode = "ok"
        assert chat(client, "gw", total_cost(1.0)).status_code == 200
    assert fake.connections >= 2  # the broken connection was replaced


def test_spend_limits_fail_open_past_a_silent_redis(
    tmp_path: Path,
    fake_upstream: FakeUpstream,
    gateway_factory: Callable[..., GatewayServer],
    fake: FakeRedis,
) -> None:
    settings = make_settings(
        tmp_path, fake_upstream.url, redis_url=fake.redis_url, spend_redis_timeout_s=TIMEOUT_S,
        spend_limit_fail_open=True,
    )  # fmt: skip
    server = gateway_factory(settings)
    create_gateway(server.url, "acct", **limits(rule(5, id="r")))
    fake.mode = "slow"
    with httpx.Client(base_url=server.url, timeout=20) as client:
        assert chat(client, "gw", total_cost(1.0)).status_code == 200


def test_route_cost_limits_fail_closed_then_recover(
    tmp_path: Path, fake_upstream: FakeUpstream, fake: FakeRedis
) -> None:
    overrides = {"redis_url": fake.redis_url, "spend_redis_timeout_s": TIMEOUT_S}
    with (
        management_server("sqlite", tmp_path, fake_upstream.url, **overrides) as server,
        mgmt_client(server) as mgmt,
    ):
        gw = mgmt.new_gateway()
        secret = {"provider_slug": "openai", "alias": "default", "secret": f"{STORED}-openai"}
        mgmt.ok("POST", mgmt.gw_path(gw, "/provider_configs"), json=secret)
        token = mgmt.new_token(["run"])
        limit = budget(10 * estimate_nano())
        new_route(mgmt, gw, [start("budget"), limit, model("m1", "openai", "gpt-4o-mini"), END])
        assert send(server.url, mgmt.account, gw, token).status_code == 200
        fake.mode = "slow"
        error_of(send(server.url, mgmt.account, gw, token), 503, 2014)
        fake.mode = "ok"
        assert send(server.url, mgmt.account, gw, token).status_code == 200
