"""Traffic through `dynamic/…` models (routing.md §5): the `openai` SDK on the compat endpoint, a
universal compat step, and the fake provider proving which model each element called. Covers
fallback, conditions, the sticky percentage split, count limits, pinned versions, the response
headers, the log rows, and the refusals (no token, unknown route)."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest

from app.routing.split import split_fraction
from tests.routing.conftest import END, STORED, USER, model, models_called, new_route, simple, start
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT
from tests.support.management import Mgmt


def test_openai_sdk_through_a_route_with_headers_and_logs(
    mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    route = new_route(mgmt, gw, simple())
    raw = sdk.chat.completions.with_raw_response.create(model="dynamic/r", messages=[USER])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from fake"
    assert raw.headers["cf-aig-model"] == "gpt-4o-mini" and raw.headers["cf-aig-provider"] == "openai"
    assert raw.headers["cf-aig-route-version"] == route["version"]["version_id"]
    assert raw.headers["cf-aig-route-element"] == "m1"
    (call,) = upstream.requests
    assert json.loads(call.body)["model"] == "gpt-4o-mini"
    assert call.headers["authorization"] == f"Bearer {STORED}-openai"  # the stored key, not the token
    (row,) = mgmt.wait_logs(gw, 1)
    assert (row["provider"], row["model"], row["request_type"], row["step"]) == (
        "openai",
        "gpt-4o-mini",
        "compat",
        0,
    )
    detail = mgmt.ok("GET", mgmt.gw_path(gw, f"/logs/{row['id']}"))["result"]
    assert detail["route_id"] == route["id"] and detail["route_name"] == "r"
    assert detail["route_version_id"] == route["version"]["version_id"] and detail["route_element_id"] == "m1"


def test_fallback_to_the_next_model_and_one_row_per_element(
    mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    elements = [
        start("m1"),
        model("m1", "openai", "gpt-4o-mini", fallback="m2", retries=1),
        model("m2", "anthropic", "claude-3-5-haiku-latest"),
        END,
    ]
    new_route(mgmt, gw, elements)
    fail = {"x-fake-fail-times": "2", "x-fake-fail-key": uuid.uuid4().hex}  # both attempts of m1
    raw = sdk.chat.completions.with_raw_response.create(
        model="dynamic/r", messages=[USER], extra_headers=fail
    )
    assert raw.parse().choices[0].message.content == "Hello from fake"
    assert (
        raw.headers["cf-aig-model"] == "claude-3-5-haiku-latest"
        and raw.headers["cf-aig-route-element"] == "m2"
    )
    assert models_called(upstream) == ["gpt-4o-mini", "gpt-4o-mini", "claude-3-5-haiku-latest"]
    rows = sorted(mgmt.wait_logs(gw, 2), key=lambda r: r["step"])
    assert [(r["provider"], r["success"], r["attempts"], r["step"]) for r in rows] == [
        ("openai", False, 2, 0),
        ("anthropic", True, 1, 1),
    ]
    assert rows[0]["event_id"] == rows[1]["event_id"]


def test_route_without_success_returns_the_last_upstream_error(
    mgmt: Mgmt, gw: str, token: str, upstream: FakeUpstream
) -> None:
    new_route(mgmt, gw, [start("m1"), model("m1", "openai", "gpt-4o-mini", fallback="end"), END])
    response = httpx.post(
        f"{mgmt.server.url}/v1/{ACCT}/{gw}/compat/chat/completions",
        json={"model": "dynamic/r", "messages": [USER]},
        headers={"Authorization": f"Bearer {token}", "x-fake-status": "429"},
    )
    assert response.status_code == 429 and "error" in response.json()
    rows = mgmt.wait_logs(gw, 2)
    ended = next(r for r in rows if r["provider"] == "unknown")
    assert ended["model"] == "dynamic/r" and ended["success"] is False and ended["cost"] == 0
    assert ended["status_code"] == 429


def test_conditions_pick_the_model(mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    conditional = {
        "id": "plan",
        "type": "conditional",
        "properties": {
            "conditions": {"$or": [{"metadata.plan": {"$eq": "free"}}, {"body.temperature": {"$gt": 1}}]}
        },
        "outputs": {"true": {"elementId": "cheap"}, "false": {"elementId": "big"}},
    }
    new_route(
        mgmt,
        gw,
        [
            start("plan"),
            conditional,
            model("cheap", "openai", "gpt-4o-mini"),
            model("big", "openai", "gpt-4o"),
            END,
        ],
    )
    free = {"cf-aig-metadata": json.dumps({"plan": "free"})}
    sdk.chat.completions.create(model="dynamic/r", messages=[USER], extra_headers=free)
    sdk.chat.completions.create(model="dynamic/r", messages=[USER])
    sdk.chat.completions.create(model="dynamic/r", messages=[USER], temperature=1.5)
    assert models_called(upstream) == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]


def test_percentage_split_is_sticky_per_routing_key(
    mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    split = {
        "id": "split",
        "type": "percentage",
        "outputs": {"50%": {"elementId": "a"}, "else": {"elementId": "b"}},
    }
    new_route(
        mgmt,
        gw,
        [start("split"), split, model("a", "openai", "gpt-4o-mini"), model("b", "openai", "gpt-4o"), END],
        "ab",
    )
    expected = []
    for key in ("k0", "k2", "k0", "user-7"):
        u = split_fraction(gw, "ab", "split", key)
        expected.append("gpt-4o-mini" if 100 * u < 50 else "gpt-4o")
        sdk.chat.completions.create(
            model="dynamic/ab", messages=[USER], extra_headers={"cf-aig-routing-key": key}
        )
    assert models_called(upstream) == expected
    assert expected[0] == expected[2]


def test_count_limit_per_key_then_429(mgmt: Mgmt, gw: str, sdk: openai.OpenAI) -> None:
    rate = {
        "id": "rl",
        "type": "rate",
        "properties": {
            "limitType": "count",
            "key": "metadata.user",
            "limit": 1,
            "window": 60,
            "technique": "fixed",
        },
        "outputs": {"success": {"elementId": "m1"}},
    }
    new_route(mgmt, gw, [start("rl"), rate, model("m1", "openai", "gpt-4o-mini"), END])
    alice, bob = ({"cf-aig-metadata": json.dumps({"user": u})} for u in ("alice", "bob"))
    sdk.chat.completions.create(model="dynamic/r", messages=[USER], extra_headers=alice)
    sdk.chat.completions.create(model="dynamic/r", messages=[USER], extra_headers=bob)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model="dynamic/r", messages=[USER], extra_headers=alice)
    assert refused.value.response.json()["error"][0]["code"] == 2003


def test_refusals_no_token_unknown_route_and_the_server_keeps_serving(
    mgmt: Mgmt, gw: str, token: str
) -> None:
    new_route(mgmt, gw, simple())
    url = f"{mgmt.server.url}/v1/{ACCT}/{gw}/compat/chat/completions"
    no_token = httpx.post(url, json={"model": "dynamic/r", "messages": [USER]})
    assert no_token.status_code == 401 and no_token.json()["error"][0]["code"] == 2009
    auth = {"Authorization": f"Bearer {token}"}
    unknown = httpx.post(url, json={"model": "dynamic/nope", "messages": [USER]}, headers=auth)
    assert unknown.status_code == 400 and unknown.json()["error"][0] == {
        "code": 2008,
        "message": "Dynamic route not found: nope",
    }
    for bad in (
        {"model": "dynamic/r"},
        {"model": "dynamic/r", "messages": "hi"},
        {"model": "dynamic/r@x", "messages": [USER]},
    ):
        assert httpx.post(url, json=bad, headers=auth).status_code == 400
    assert httpx.post(url, json={"model": "dynamic/r", "messages": [USER]}, headers=auth).status_code == 200


def test_pinned_version_and_deployment_reach_traffic(
    mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    route = new_route(mgmt, gw, simple())
    path = mgmt.gw_path(gw, f"/routes/{route['id']}")
    v2 = mgmt.ok("POST", f"{path}/versions", json={"elements": simple("openai", "gpt-4o")})["result"][
        "version_id"
    ]
    sdk.chat.completions.create(model="dynamic/r", messages=[USER])
    sdk.chat.completions.create(model=f"dynamic/r@{v2}", messages=[USER])
    mgmt.ok("POST", f"{path}/deployments", json={"version_id": v2})
    sdk.chat.completions.create(model="dynamic/r", messages=[USER])  # same process: evicted at once
    assert models_called(upstream) == ["gpt-4o-mini", "gpt-4o", "gpt-4o"]


def test_universal_compat_step_uses_cf_aig_authorization(
    mgmt: Mgmt, gw: str, token: str, upstream: FakeUpstream
) -> None:
    new_route(mgmt, gw, simple())
    step = {
        "provider": "compat",
        "endpoint": "chat/completions",
        "headers": {"Authorization": "Bearer sk-client"},
        "query": {"model": "dynamic/r", "messages": [USER]},
    }
    response = mgmt.universal(gw, step, {"cf-aig-authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.headers["cf-aig-route-element"] == "m1"
    (call,) = upstream.requests
    assert call.headers["authorization"] == f"Bearer {STORED}-openai"
    assert mgmt.universal(gw, step).status_code == 401


def test_the_rest_surface_runs_dynamic_routes(
    mgmt: Mgmt, gw: str, token: str, upstream: FakeUpstream
) -> None:
    """`/client/v4/accounts/{acct}/ai/v1/chat/completions` with `dynamic/…`, through the openai SDK."""
    new_route(mgmt, gw, simple())
    client = openai.OpenAI(
        base_url=f"{mgmt.server.url}/client/v4/accounts/{ACCT}/ai/v1",
        api_key=token,
        default_headers={"cf-aig-gateway-id": gw},
        max_retries=0,
        timeout=10,
    )
    try:
        raw = client.chat.completions.with_raw_response.create(model="dynamic/r", messages=[USER])
        listed = {m.id: m.owned_by for m in client.models.list()}
    finally:
        client.close()
    assert listed["dynamic/r"] == "dynamic" and "openai/gpt-4o-mini" in listed  # deployed routes listed too
    assert raw.parse().choices[0].message.content == "Hello from fake"
    assert raw.headers["cf-aig-route-element"] == "m1"
    assert [json.loads(request.body)["model"] for request in upstream.requests] == ["gpt-4o-mini"]
