"""Route `cost` limits (routing.md §3.3) reserve the most the model call after them can cost before
it is sent and settle to what it cost after, as spend limits do (spend-limits.md §4): concurrent
requests admit exactly what fits, a budget is per key value, a route that ends without an answer
gives its reservation back, and two `aigw serve` processes on one Redis share one budget.

The estimate is the client's body in bytes priced as input plus its `max_tokens` priced as output
(app/providers/prices.json), so the tests send exact bytes with httpx and compute it."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from app.providers.cost import prices_of
from tests.conftest import ADMIN_TOKEN
from tests.routing.conftest import END, STORED, USER, model, new_route, start
from tests.support.backends import fresh_postgres
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import error_of
from tests.support.management import SECRET_KEY, Mgmt
from tests.support.processes import ServerProcess, two_replicas

NANO = 1_000_000_000
MAX_TOKENS = 100_000
BODY = orjson.dumps({"model": "dynamic/r", "messages": [USER], "max_tokens": MAX_TOKENS})


STREAM = orjson.dumps({"model": "dynamic/r", "messages": [USER], "max_tokens": MAX_TOKENS, "stream": True})


def estimate_nano(provider: str = "openai", name: str = "gpt-4o-mini", body: bytes = BODY) -> int:
    prices = prices_of(provider, name, None)
    assert prices is not None
    return math.ceil((len(body) * prices[0] + MAX_TOKENS * prices[1]) * NANO)


def budget(limit_nano: float, key: str = "", fallback: str | None = None) -> dict[str, Any]:
    outputs: dict[str, Any] = {"success": {"elementId": "m1"}}
    if fallback is not None:
        outputs["fallback"] = {"elementId": fallback}
    properties = {
        "limitType": "cost",
        "key": key,
        "limit": limit_nano / NANO,
        "window": 600,
        "technique": "fixed",
    }
    return {"id": "budget", "type": "rate", "properties": properties, "outputs": outputs}


def send(
    base_url: str, account: str, gateway: str, token: str, body: bytes = BODY, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/{account}/{gateway}/compat/chat/completions",
        content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}", **headers},
        timeout=20,
    )


def concurrently(count: int, call: Any) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def assert_route_budget_refusal(response: httpx.Response) -> None:
    assert error_of(response, 429, 2045)


def test_concurrent_requests_admit_exactly_what_fits(mgmt: Mgmt, gw: str, token: str) -> None:
    # Five estimates fit, a sixth does not: with every call held upstream, no settlement can make
    # room, so exactly five of twenty get through.
    estimate = estimate_nano()
    new_route(mgmt, gw, [start("budget"), budget(5.5 * estimate), model("m1", "openai", "gpt-4o-mini"), END])
    url = mgmt.server.url
    responses = concurrently(20, lambda _: send(url, mgmt.account, gw, token, **{"x-fake-delay-ms": "1000"}))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15
    for response in responses:
        if response.status_code == 429:
            assert_route_budget_refusal(response)


def test_budget_is_per_key_and_counts_the_real_cost(mgmt: Mgmt, gw: str, token: str) -> None:
    # Exactly one estimate fits: the first call's real cost (> 0) is then in the way of alice's
    # next call, and bob's budget is his own.
    limit = budget(estimate_nano(), key="metadata.user")
    new_route(mgmt, gw, [start("budget"), limit, model("m1", "openai", "gpt-4o-mini"), END])
    alice, bob = ({"cf-aig-metadata": json.dumps({"user": u})} for u in ("alice", "bob"))
    url = mgmt.server.url
    assert send(url, mgmt.account, gw, token, **alice).status_code == 200
    refused = send(url, mgmt.account, gw, token, **alice)
    assert_route_budget_refusal(refused)
    assert refused.headers.get("retry-after")  # settled spend alone blocks: until the next window
    assert send(url, mgmt.account, gw, token, **bob).status_code == 200


def test_a_route_without_an_answer_gives_the_reservation_back(mgmt: Mgmt, gw: str, token: str) -> None:
    new_route(mgmt, gw, [start("budget"), budget(estimate_nano()), model("m1", "openai", "gpt-4o-mini"), END])
    url = mgmt.server.url
    failed = send(url, mgmt.account, gw, token, **{"x-fake-status": "500"})
    assert failed.status_code == 500  # the model's own error, nothing charged
    assert send(url, mgmt.account, gw, token).status_code == 200  # the whole budget was free again


def test_a_stream_settles_when_it_ends(mgmt: Mgmt, gw: str, token: str) -> None:
    # One and a half estimates: the second call fits only once the first one's reservation has
    # been replaced by its (much smaller) real cost, at the end of its stream.
    new_route(
        mgmt,
        gw,
        [
            start("budget"),
            budget(1.5 * estimate_nano(body=STREAM)),
            model("m1", "openai", "gpt-4o-mini"),
            END,
        ],
    )
    url = mgmt.server.url
    streamed = send(url, mgmt.account, gw, token, STREAM)
    assert streamed.status_code == 200 and b"data: [DONE]" in streamed.content
    deadline = time.monotonic() + 5  # the gateway closes the stream a moment after the client has it
    while (answer := send(url, mgmt.account, gw, token, STREAM)).status_code == 429:
        assert time.monotonic() < deadline, "the stream's reservation was never settled"
        time.sleep(0.05)
    assert answer.status_code == 200


def test_over_budget_takes_the_fallback(mgmt: Mgmt, gw: str, token: str, upstream: FakeUpstream) -> None:
    cheap = model("cheap", "openai", "gpt-4o-mini")
    limit = budget(estimate_nano() / 2, fallback="cheap")
    new_route(mgmt, gw, [start("budget"), limit, model("m1", "openai", "gpt-4o"), cheap, END])
    # gpt-4o's estimate does not fit half of gpt-4o-mini's: the request goes to the fallback.
    response = send(mgmt.server.url, mgmt.account, gw, token)
    assert response.status_code == 200, response.text
    assert response.headers["cf-aig-route-element"] == "cheap"


@pytest.fixture(scope="module")
def replicas(
    postgres_url: str, redis_url: str, fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    logs = tmp_path_factory.mktemp("route-budget-replicas")
    with fresh_postgres(postgres_url, prefix="aigw_routes") as url:
        env = {
            "AIGW_DATABASE_URL": url,
            "AIGW_REDIS_URL": redis_url,
            "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "AIGW_SECRET_KEY": SECRET_KEY,
            "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
        }
        with two_replicas(env, logs) as both:
            yield both


def test_two_processes_share_one_route_budget(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    account = "acct" + uuid.uuid4().hex[:10]  # Redis and the database are shared: keep tests apart
    with httpx.Client(base_url=replicas[0].url, timeout=15) as http:
        admin = Mgmt(server=None, http=http, account=account)  # type: ignore[arg-type]
        gw = admin.new_gateway()
        secret = {"provider_slug": "openai", "alias": "default", "secret": f"{STORED}-openai"}
        admin.ok("POST", admin.gw_path(gw, "/provider_configs"), json=secret)
        token = admin.new_token(["run"])
        estimate = estimate_nano()
        new_route(
            admin, gw, [start("budget"), budget(5.5 * estimate), model("m1", "openai", "gpt-4o-mini"), END]
        )
        new_route(admin, gw, [start("m1"), model("m1", "openai", "gpt-4o-mini"), END], name="warm")
    urls = [replica.url for replica in replicas]
    warm = BODY.replace(b"dynamic/r", b"dynamic/warm")
    for url in urls:  # a first request loads the route and connects: none is left to the race
        assert send(url, account, gw, token, warm).status_code == 200
    delay = {"x-fake-delay-ms": "1500"}  # every call is still held when the last one is admitted
    responses = concurrently(20, lambda i: send(urls[i % 2], account, gw, token, **delay))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15
    for response in responses:
        if response.status_code == 429:
            assert_route_budget_refusal(response)
