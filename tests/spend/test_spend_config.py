"""The gateway field `spend_limits` through the management API: the official `cloudflare` SDK
writes and reads it, the server fills in ids and defaults, and every malformed input gets its
400 / 1001 entry naming the field, while the server keeps serving."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import cloudflare
import pytest

from tests.spend.support import rule
from tests.support.helpers import ACCT, ADMIN_HEADERS, Api, unique
from tests.support.management import errors_of

GATEWAYS = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways"


@pytest.fixture
def cf(module_api: Api) -> Iterator[cloudflare.Cloudflare]:
    client = cloudflare.Cloudflare(
        api_token=ADMIN_HEADERS["Authorization"].removeprefix("Bearer "),
        base_url=f"{module_api.url}/client/v4",
        max_retries=0,
    )
    yield client
    client.close()


def test_the_sdk_writes_and_reads_spend_limits(cf: cloudflare.Cloudflare) -> None:
    gateway_id = unique()
    common: dict[str, Any] = dict(
        cache_invalidate_on_update=False, cache_ttl=0, collect_logs=True,
        rate_limiting_interval=0, rate_limiting_limit=0,
    )  # fmt: skip
    created = cf.ai_gateway.create(
        account_id=ACCT, id=gateway_id, **common,
        spend_limits={"rules": [{"limit": 5, "limit_type": "cost", "window": 86400}]},
    )  # fmt: skip
    assert created.spend_limits is not None
    first = created.spend_limits.rules[0]  # type: ignore[index]
    assert re.fullmatch(r"[0-9a-f]{8}", first.id or ""), first
    assert (first.enabled, first.technique, first.limit) == (True, "sliding", 5)
    assert created.spend_limits.enabled is True

    updated = cf.ai_gateway.update(
        gateway_id, account_id=ACCT, **common,
        spend_limits={"enabled": True, "rules": [
            {"id": "per-user", "limit_type": "cost", "limit": 5, "window": 86400, "technique": "fixed",
             "metadata": {"user_id": {"mode": "partition"}}},
            {"id": "gpt-cap", "limit_type": "cost", "limit": 50, "window": 604800,
             "model": {"mode": "filter", "values": ["openai/gpt-4o"]}},
        ]},
    )  # fmt: skip
    rules = updated.spend_limits.rules  # type: ignore[union-attr]
    assert [r.id for r in rules] == ["per-user", "gpt-cap"]  # type: ignore[union-attr]
    read = cf.ai_gateway.get(gateway_id, account_id=ACCT)
    assert read.spend_limits is not None and updated.spend_limits is not None
    assert read.spend_limits.model_dump() == updated.spend_limits.model_dump()
    listed = [g for g in cf.ai_gateway.list(account_id=ACCT, search=gateway_id)]
    assert listed[0].spend_limits is not None
    assert listed[0].spend_limits.model_dump() == updated.spend_limits.model_dump()

    cleared = cf.ai_gateway.update(gateway_id, account_id=ACCT, **common, spend_limits=None)
    assert cleared.spend_limits is None


def test_the_stored_form_is_what_get_returns(module_api: Api) -> None:
    body = {"id": unique(), "spend_limits": {"rules": [rule(0.5, id="a", technique="sliding")]}}
    created = module_api.http.post(GATEWAYS, json=body, headers=ADMIN_HEADERS).json()["result"]
    assert created["spend_limits"] == {
        "enabled": True,
        "rules": [{"id": "a", "enabled": True, "limit": 0.5, "limitType": "cost", "window": 3600,
                   "technique": "sliding"}],
    }  # fmt: skip
    partition = {"rules": [rule(1, provider={"mode": "partition"}, model={"mode": "partition"})]}
    accepted = module_api.http.put(
        f"{GATEWAYS}/{body['id']}", json={"spend_limits": partition}, headers=ADMIN_HEADERS
    )
    assert accepted.status_code == 200, accepted.text  # ours: partition on provider and model too


def _many_values(n: int) -> dict[str, Any]:
    return {"mode": "filter", "values": [f"v{i}" for i in range(n)]}


BAD_INPUTS: list[tuple[Any, str]] = [
    ({"rules": [rule(1)] * 21}, "spend_limits.rules: List should have at most 20 items"),
    ({"rules": [rule(1, id="a"), rule(1, id="a")]}, "spend_limits.rules.1.id: duplicate id 'a'"),
    ({"rules": [rule(1, id="bad id!")]}, "spend_limits.rules.0.id: must match"),
    ({"rules": [{**rule(1), "limitType": "count"}]}, "spend_limits.rules.0.limitType:"),
    ({"rules": [rule(0)]}, "spend_limits.rules.0.limit: must be > 0"),
    ({"rules": [rule(-3)]}, "spend_limits.rules.0.limit: must be > 0"),
    ({"rules": [rule(1, window=0)]}, "spend_limits.rules.0.window: must be ≥ 1"),
    ({"rules": [rule(1, window=31_536_001)]}, "spend_limits.rules.0.window: must be ≤ 31536000"),
    ({"rules": [rule(1, window=1.5)]}, "spend_limits.rules.0.window:"),
    ({"rules": [rule(1, technique="weighted")]}, "spend_limits.rules.0.technique:"),
    ({"rules": [rule(1, model={"mode": "split"})]}, "spend_limits.rules.0.model.mode:"),
    ({"rules": [rule(1, model={"mode": "filter"})]}, "spend_limits.rules.0.model.values: required"),
    ({"rules": [rule(1, provider={"mode": "filter", "values": []})]},
     "spend_limits.rules.0.provider.values: required"),
    ({"rules": [rule(1, model=_many_values(101))]}, "spend_limits.rules.0.model.values: at most 100"),
    ({"rules": [rule(1, metadata={f"k{i}": {"mode": "partition"} for i in range(6)})]},
     "spend_limits.rules.0.metadata: at most 5 keys"),
    ({"rules": [{"limitType": "cost", "window": 60}]}, "spend_limits.rules.0.limit: Field required"),
    ({"rules": [{**rule(1), "extra": 1}]}, "spend_limits.rules.0.extra:"),
    ({"rules": "all"}, "spend_limits.rules:"),
    ("yes", "spend_limits:"),
]  # fmt: skip


@pytest.mark.parametrize(("spend_limits", "expected"), BAD_INPUTS)
def test_malformed_spend_limits_get_1001(module_api: Api, spend_limits: Any, expected: str) -> None:
    for method, url, extra in (
        ("POST", GATEWAYS, {"id": unique()}),
        ("PUT", f"{GATEWAYS}/{module_api.new_gateway()}", {}),
    ):
        response = module_api.http.request(
            method, url, json={**extra, "spend_limits": spend_limits}, headers=ADMIN_HEADERS
        )
        messages = errors_of(response, 400)
        assert any(m.startswith(expected) for m in messages), (expected, messages)
    assert module_api.http.get("/healthz").status_code == 200
