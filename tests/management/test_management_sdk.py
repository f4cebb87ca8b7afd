"""The official `cloudflare` Python SDK, pointed at a running gateway, drives the management API:
gateways, logs (of real traffic through the fake upstream), stored keys, custom providers, URLs.

Where the SDK's shapes and management-api.md differ, the SDK wins (noted in app/api/*):
- logs `DELETE` answers `result: {"deleted": n}`; the SDK reads only the envelope's `success`;
- the SDK sends `filters` dotted and repeated, which httpx regroups by name (app/api/filter_query.py);
- the list also takes the SDK's `direction`, `meta_info`, `min_/max_total_tokens`, `model_type`,
  `request_content_type` and `response_content_type`;
- one log carries `request_head` / `response_head` (+ `_complete`), the SDK's names for the body heads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cloudflare
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, anthropic_step, openai_step, unique
from tests.support.management import BACKENDS, Mgmt, management_server, mgmt_client, wait_until


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("sdk")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


@pytest.fixture
def cf(mgmt: Mgmt) -> Iterator[cloudflare.Cloudflare]:
    token = mgmt.new_token(["read", "edit"])
    client = cloudflare.Cloudflare(api_token=token, base_url=f"{mgmt.server.url}/client/v4", max_retries=0)
    yield client
    client.close()


def test_gateway_lifecycle(cf: cloudflare.Cloudflare) -> None:
    gw = unique()
    created = cf.ai_gateway.create(
        account_id=ACCT, id=gw, cache_invalidate_on_update=False, cache_ttl=0, collect_logs=True,
        rate_limiting_interval=0, rate_limiting_limit=0, log_management=1000,
        log_management_strategy="STOP_INSERTING",
    )  # fmt: skip
    assert created.id == gw and created.collect_logs is True and created.log_management == 1000
    assert gw in [g.id for g in cf.ai_gateway.list(account_id=ACCT)]
    assert [g.id for g in cf.ai_gateway.list(account_id=ACCT, search=gw)] == [gw]
    updated = cf.ai_gateway.update(
        gw, account_id=ACCT, cache_invalidate_on_update=True, cache_ttl=120, collect_logs=True,
        rate_limiting_interval=60, rate_limiting_limit=100, rate_limiting_technique="sliding",
        retry_max_attempts=3, retry_delay=100, retry_backoff="exponential",
    )  # fmt: skip
    assert (updated.cache_ttl, updated.cache_invalidate_on_update, updated.retry_max_attempts) == (
        120,
        True,
        3,
    )
    got = cf.ai_gateway.get(gw, account_id=ACCT)
    assert got.rate_limiting_technique == "sliding" and got.retry_backoff == "exponential"
    assert got.modified_at >= got.created_at
    assert cf.ai_gateway.urls.get("openai", account_id=ACCT, gateway_id=gw).endswith(
        f"/v1/{ACCT}/{gw}/openai"
    )
    deleted = cf.ai_gateway.delete(gw, account_id=ACCT)
    assert deleted.id == gw
    with pytest.raises(cloudflare.NotFoundError):
        cf.ai_gateway.get(gw, account_id=ACCT)


def test_logs_list_get_edit_delete(cf: cloudflare.Cloudflare, mgmt: Mgmt, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway()
    for user in ("alice", "bob", "alice"):
        r = mgmt.universal(gw, openai_step(), {"cf-aig-metadata": json.dumps({"user": user})})
        assert r.status_code == 200
    assert mgmt.universal(gw, anthropic_step()).status_code == 200
    assert mgmt.universal(gw, openai_step({"x-fake-status": "500"})).status_code == 500

    def all_logs() -> list[object]:
        return list(cf.ai_gateway.logs.list(gw, account_id=ACCT))

    wait_until(lambda: len(all_logs()) == 5, what="5 log rows")

    page = cf.ai_gateway.logs.list(gw, account_id=ACCT, per_page=2)
    assert len(page.result) == 2 and page.result_info is not None and page.result_info.per_page == 2
    assert len(list(page)) == 5  # auto-pagination walks pages 1..3 and stops at the empty page 4

    openai_ok = list(
        cf.ai_gateway.logs.list(
            gw, account_id=ACCT,
            filters=[{"key": "provider", "operator": "eq", "value": ["openai"]},
                     {"key": "success", "operator": "eq", "value": [True]}],
        )
    )  # fmt: skip
    assert len(openai_ok) == 3 and all(log.provider == "openai" and log.success for log in openai_ok)
    alice = list(
        cf.ai_gateway.logs.list(
            gw, account_id=ACCT, filters=[{"key": "metadata.value", "operator": "eq", "value": ["alice"]}]
        )
    )
    assert len(alice) == 2 and all(json.loads(log.metadata or "{}") == {"user": "alice"} for log in alice)
    not_openai = list(
        cf.ai_gateway.logs.list(
            gw, account_id=ACCT, filters=[{"key": "provider", "operator": "neq", "value": ["openai", "groq"]}]
        )
    )
    assert [log.provider for log in not_openai] == ["anthropic"]
    failed = list(cf.ai_gateway.logs.list(gw, account_id=ACCT, success=False, order_by="created_at"))
    assert len(failed) == 1 and failed[0].status_code == 500
    oldest_first = list(cf.ai_gateway.logs.list(gw, account_id=ACCT, order_by_direction="asc"))
    assert [log.id for log in oldest_first] == sorted(log.id for log in oldest_first)

    one = cf.ai_gateway.logs.get(alice[0].id, account_id=ACCT, gateway_id=gw)
    assert one.id == alice[0].id and one.request_head and one.response_head
    assert one.request_head_complete and one.response_head_complete
    assert one.request_size == len(one.request_head.encode())
    assert one.duration >= 0 and one.model == "gpt-4o-mini" and one.tokens_in == 3
    request_body = cf.ai_gateway.logs.request(one.id, account_id=ACCT, gateway_id=gw)
    assert isinstance(request_body, dict) and request_body["model"] == "gpt-4o-mini"
    response_body = cf.ai_gateway.logs.response(one.id, account_id=ACCT, gateway_id=gw)
    assert isinstance(response_body, dict) and response_body["object"] == "chat.completion"

    edited = cf.ai_gateway.logs.edit(
        one.id, account_id=ACCT, gateway_id=gw, feedback=1, score=90, metadata={"user": "alice", "vip": True}
    )
    assert isinstance(edited, dict) and edited["feedback"] == 1 and edited["score"] == 90
    liked = list(cf.ai_gateway.logs.list(gw, account_id=ACCT, feedback=1))
    assert [log.id for log in liked] == [one.id]
    vip = list(
        cf.ai_gateway.logs.list(
            gw, account_id=ACCT, filters=[{"key": "metadata.key", "operator": "eq", "value": ["vip"]}]
        )
    )
    assert [log.id for log in vip] == [one.id]

    deleted = cf.ai_gateway.logs.delete(
        gw, account_id=ACCT, filters=[{"key": "provider", "operator": "eq", "value": ["openai"]}],
        limit=2, order_by="created_at", order_by_direction="asc",
    )  # fmt: skip
    assert deleted.success is True
    remaining = {log.id for log in all_logs()}
    assert len(remaining) == 3 and oldest_first[0].id not in remaining and oldest_first[1].id not in remaining
    cf.ai_gateway.logs.delete(gw, account_id=ACCT)
    assert all_logs() == []
    with pytest.raises(cloudflare.NotFoundError):
        cf.ai_gateway.logs.get(one.id, account_id=ACCT, gateway_id=gw)


def test_bad_filter_raises_bad_request(cf: cloudflare.Cloudflare, mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    with pytest.raises(cloudflare.BadRequestError) as raised:
        cf.ai_gateway.logs.list(
            gw, account_id=ACCT, filters=[{"key": "nope", "operator": "eq", "value": ["x"]}]
        )  # type: ignore[typeddict-item]
    assert "filters.0.key" in str(raised.value)


def test_provider_configs_and_custom_providers(cf: cloudflare.Cloudflare, mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    created = cf.ai_gateway.provider_configs.create(
        gw, account_id=ACCT, alias="default", default_config=True, provider_slug="openai",
        secret="sk-test-0123456789abcdef",
    )  # fmt: skip
    assert created.secret_preview == "sk-t...cdef" and created.gateway_id == gw
    assert "0123456789" not in created.model_dump_json()
    listed = list(cf.ai_gateway.provider_configs.list(gw, account_id=ACCT))
    assert [c.id for c in listed] == [created.id] and listed[0].secret_id == created.id

    slug = unique("cp")
    custom = cf.ai_gateway.custom_providers.create(
        account_id=ACCT, name="My upstream", slug=slug, base_url="https://llm.example.com/v1"
    )
    assert custom.slug == slug and custom.base_url == "https://llm.example.com/v1"
    assert cf.ai_gateway.custom_providers.get(custom.id, account_id=ACCT).name == "My upstream"
    assert custom.id in [p.id for p in cf.ai_gateway.custom_providers.list(account_id=ACCT)]
    assert cf.ai_gateway.custom_providers.delete(custom.id, account_id=ACCT).id == custom.id
    with pytest.raises(cloudflare.NotFoundError):
        cf.ai_gateway.custom_providers.get(custom.id, account_id=ACCT)


def test_read_only_token_cannot_write(mgmt: Mgmt) -> None:
    token = mgmt.new_token(["read"])
    with cloudflare.Cloudflare(api_token=token, base_url=f"{mgmt.server.url}/client/v4", max_retries=0) as cf:
        gw = mgmt.new_gateway()
        assert cf.ai_gateway.get(gw, account_id=ACCT).id == gw
        with pytest.raises(cloudflare.PermissionDeniedError):
            cf.ai_gateway.logs.delete(gw, account_id=ACCT)
        with pytest.raises(cloudflare.PermissionDeniedError):
            cf.ai_gateway.delete(gw, account_id=ACCT)
