"""Spend limits enforced by a real gateway (uvicorn on a loopback port) in front of the fake
provider: exact budgets under concurrency, settlement to the real cost on every path, filters and
partitions, Retry-After, cache hits, fallback, and the log rows of refused calls."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.spend.support import chat, limits, refused, rule, total_cost
from tests.support.helpers import ACCT, ADMIN_HEADERS, Api, openai_step


def gw_url(gateway_id: str) -> str:
    return f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{gateway_id}"


def logs(api: Api, gateway_id: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        got = api.http.get(
            gw_url(gateway_id) + "/logs", params={"direction": "asc"}, headers=ADMIN_HEADERS
        ).json()["result"]
        if len(got) >= count or time.monotonic() > deadline:
            return list(got)
        time.sleep(0.05)


def test_twenty_concurrent_calls_against_a_budget_of_five_admit_exactly_five(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(5, id="five")))
    headers = {**total_cost(1.0), "x-fake-delay-ms": "300"}  # all in flight at once
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: chat(module_api.http, gateway_id, headers), range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [429] * 15
    for response in responses:
        if response.status_code == 429:
            assert "rule 'five' (cost limit 5 per 3600s, fixed) for openai gpt-4o-mini" in refused(response)
    # Settled (not only reserved): the budget stays spent after the calls ended.
    refused(chat(module_api.http, gateway_id, total_cost(1.0)))


def test_settles_to_the_real_cost_and_logs_it(module_api: Api) -> None:
    # Per-token price 0.01: the fake reports 3 + 3 tokens, a real cost of 0.06. The estimate
    # (body bytes + max_tokens at 0.01 each) is far higher and is only held while the call runs.
    gateway_id = module_api.new_gateway(**limits(rule(1.3, id="r")))
    price = {"cf-aig-custom-cost": json.dumps({"per_token_in": 0.01, "per_token_out": 0.01})}
    first = chat(module_api.http, gateway_id, price, max_tokens=10)
    assert first.status_code == 200, first.text
    # Estimate of this call is ~1.2; with 0.06 settled it fits, with 1.2 held it would not.
    second = chat(module_api.http, gateway_id, price, max_tokens=10)
    assert second.status_code == 200, second.text
    rows = logs(module_api, gateway_id, 2)
    assert [row["cost"] for row in rows] == [pytest.approx(0.06), pytest.approx(0.06)]


def test_refusal_shape_log_row_and_retry_after(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(0.042, window=60, id="tiny")))
    assert chat(module_api.http, gateway_id, total_cost(0.04)).status_code == 200
    response = chat(module_api.http, gateway_id, total_cost(0.04))
    assert "(cost limit 0.042 per 60s, fixed)" in refused(response)
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60  # the next clock-aligned minute
    assert retry >= 60 - int(time.time()) % 60 - 1
    rows = logs(module_api, gateway_id, 2)
    assert (rows[1]["status_code"], rows[1]["success"], rows[1]["cost"]) == (429, False, 0)
    assert rows[1]["id"] == response.headers["cf-aig-log-id"]


def test_no_retry_after_when_only_reservations_block(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(1, id="held")))
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(chat, module_api.http, gateway_id, {**total_cost(1), "x-fake-delay-ms": "800"})
        time.sleep(0.3)
        blocked = chat(module_api.http, gateway_id, total_cost(0.5))
        assert slow.result().status_code == 200
    refused(blocked)
    assert "retry-after" not in blocked.headers


def test_failed_and_cut_calls_release_their_reservation(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(1, id="r")))
    failed = chat(module_api.http, gateway_id, {**total_cost(1), "x-fake-status": "500"})
    assert failed.status_code == 500
    cut = chat(module_api.http, gateway_id, {**total_cost(1), "x-fake-cut-after": "1"}, stream=True)
    assert cut.status_code == 200  # the stream began, then the upstream dropped it
    # Neither the failure nor the cut stream was charged: the whole budget is still there.
    assert chat(module_api.http, gateway_id, total_cost(1)).status_code == 200
    refused(chat(module_api.http, gateway_id, total_cost(1)))


def test_client_abandoning_a_stream_settles_it(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(1, id="r")))
    headers = {**total_cost(1), "x-fake-chunk-delay-ms": "200", "Authorization": "Bearer sk"}
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a b c d e f g h"}],
        "stream": True,
    }
    with module_api.http.stream(
        "POST", f"/v1/{ACCT}/{gateway_id}/openai/chat/completions", json=body, headers=headers
    ) as r:
        assert r.status_code == 200
        next(r.iter_raw())  # one piece, then the client goes away
    deadline = time.monotonic() + 5
    while True:  # the gateway notices the disconnect at its next write
        rows = logs(module_api, gateway_id, 1)
        if (rows and rows[0]["status_code"] is not None) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # A total cost is charged when the call succeeds; an abandoned stream did not.
    response = chat(module_api.http, gateway_id, total_cost(1))
    assert response.status_code in (200, 429)
    if response.status_code == 429:  # only if the abandoned stream counted as a success
        pytest.fail("abandoned stream kept its reservation or was charged: " + response.text)


def test_filters_and_partitions(module_api: Api) -> None:
    per_user = rule(1, id="per-user", metadata={"user": {"mode": "partition"}})
    gpt4o_only = rule(1, id="gpt4o", model={"mode": "filter", "values": ["openai/gpt-4o"]})
    other_provider = rule(0.001, id="anthropic", provider={"mode": "filter", "values": ["anthropic"]})
    gateway_id = module_api.new_gateway(**limits(per_user, gpt4o_only, other_provider))

    def call(user: str | None, model: str = "gpt-4o-mini") -> httpx.Response:
        headers = total_cost(1)
        if user is not None:
            headers["cf-aig-metadata"] = json.dumps({"user": user})
        return chat(module_api.http, gateway_id, headers, model=model)

    assert call("alice").status_code == 200
    assert "rule 'per-user'" in refused(call("alice"))
    assert call("bob").status_code == 200  # a budget of its own
    assert call(None).status_code == 200  # requests without the key share the `null` budget
    refused(call(None))
    # gpt-4o (matching `openai/gpt-4o`) also charges the gpt4o rule; `carol` still has budget but
    # the all-or-nothing check refuses when any bucket is full.
    assert call("carol", "gpt-4o").status_code == 200
    assert "rule 'gpt4o'" in refused(call("dave", "gpt-4o"))


def test_unknown_price_is_not_checked(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(0.000001, id="r")))
    for _ in range(3):  # no custom cost and a model missing from the price table
        assert chat(module_api.http, gateway_id, model="no-such-model").status_code == 200


def test_cache_hits_are_served_to_a_bucket_over_budget(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(cache_ttl=300, **limits(rule(1, id="r")))
    first = chat(module_api.http, gateway_id, total_cost(1))
    assert first.headers["cf-aig-cache-status"] == "MISS"
    hit = chat(module_api.http, gateway_id, total_cost(1))
    assert (hit.status_code, hit.headers["cf-aig-cache-status"]) == (200, "HIT")
    refused(chat(module_api.http, gateway_id, total_cost(1), messages=[{"role": "user", "content": "new"}]))


def test_universal_fallback_runs_the_next_step_when_one_is_refused(module_api: Api) -> None:
    capped = rule(1, id="mini", model={"mode": "filter", "values": ["gpt-4o-mini"]})
    gateway_id = module_api.new_gateway(**limits(capped))
    assert chat(module_api.http, gateway_id, total_cost(1)).status_code == 200
    steps = [openai_step(total_cost(1)), openai_step(total_cost(1), model="gpt-4o")]
    response = module_api.universal(gateway_id, steps)
    assert response.status_code == 200, response.text
    assert response.headers["cf-aig-step"] == "1"
    only_capped = module_api.universal(gateway_id, [openai_step(total_cost(1))])
    refused(only_capped)


def test_stream_refusal_is_plain_json(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(1, id="r")))
    assert chat(module_api.http, gateway_id, total_cost(1)).status_code == 200
    response = chat(module_api.http, gateway_id, total_cost(1), stream=True)
    refused(response)


def test_rule_changes_keep_or_drop_counters(module_api: Api) -> None:
    gateway_id = module_api.new_gateway(**limits(rule(1, id="keep"), rule(1, id="gone")))
    assert chat(module_api.http, gateway_id, total_cost(1)).status_code == 200
    put = module_api.http.put(gw_url(gateway_id), json=limits(rule(1, id="keep")), headers=ADMIN_HEADERS)
    assert put.status_code == 200
    time.sleep(1.1)  # the config cache's TTL
    refused(chat(module_api.http, gateway_id, total_cost(1)))  # same id: its spend is kept
    put = module_api.http.put(gw_url(gateway_id), json=limits(rule(1, id="gone")), headers=ADMIN_HEADERS)
    time.sleep(1.1)
    # `gone` was deleted by the first PUT, so its counters went with it: it starts afresh.
    assert chat(module_api.http, gateway_id, total_cost(1)).status_code == 200


def test_disabled_limits_do_nothing(module_api: Api) -> None:
    off = {"spend_limits": {"enabled": False, "rules": [rule(0.5, id="r")]}}
    rule_off = limits(rule(0.5, id="r", enabled=False))
    for fields in (off, rule_off):
        gateway_id = module_api.new_gateway(**fields)
        assert chat(module_api.http, gateway_id, total_cost(1)).status_code == 200


def test_the_estimate_bounds_output_by_the_body_else_the_price_table(module_api: Api) -> None:
    # gpt-4o-mini: 6e-7 USD per output token, at most 16384 of them (price table): an estimate of
    # ~0.0098 USD without `max_tokens`, over a 0.005 budget (the 4096 default would fit in it).
    gateway_id = module_api.new_gateway(**limits(rule(0.005, id="r")))
    unbounded = chat(module_api.http, gateway_id)
    assert "rule 'r'" in refused(unbounded)
    assert "retry-after" not in unbounded.headers  # nothing settled: no wait would help
    assert chat(module_api.http, gateway_id, max_tokens=100).status_code == 200
    assert chat(module_api.http, gateway_id, max_completion_tokens=100).status_code == 200
