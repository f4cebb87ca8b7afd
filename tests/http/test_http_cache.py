"""The response cache over real HTTP (protocol.md §9): MISS then HIT, skip-cache, per-request TTL,
custom keys, credential separation, streamed responses, what is never stored, coalescing of
identical concurrent misses, and how hits are logged."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    MESSAGES,
    Api,
    openai_step,
    sse_events,
    workers_ai_step,
)


@pytest.fixture
def cached_gw(api: Api) -> str:
    return api.new_gateway(cache_ttl=300)


@pytest.fixture
def plain_gw(api: Api) -> str:
    return api.new_gateway()


def chat_path(gw: str) -> str:
    return f"/v1/{ACCT}/{gw}/openai/chat/completions"


CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
KEY = {"Authorization": "Bearer sk-user-a"}


def test_miss_then_hit(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    first = api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    second = api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    assert first.status_code == second.status_code == 200
    assert first.headers["cf-aig-cache-status"] == "MISS"
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert second.headers["x-fake-seq"] == "1"  # the stored upstream headers come back too
    assert second.headers["cf-aig-log-id"] != first.headers["cf-aig-log-id"]
    assert upstream.count() == 1


def test_universal_miss_then_hit(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    first = api.universal(cached_gw, openai_step())
    second = api.universal(cached_gw, openai_step())
    assert (first.headers["cf-aig-cache-status"], second.headers["cf-aig-cache-status"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert second.headers["cf-aig-step"] == "0"
    assert upstream.count() == 1


def test_different_body_or_path_misses(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    other = api.http.post(chat_path(cached_gw), json={**CHAT, "model": "gpt-4o"}, headers=KEY)
    assert other.headers["cf-aig-cache-status"] == "MISS"
    other_query = api.http.post(chat_path(cached_gw) + "?v=2", json=CHAT, headers=KEY)
    assert other_query.headers["cf-aig-cache-status"] == "MISS"
    assert upstream.count() == 3


@pytest.mark.parametrize("header", ["cf-aig-skip-cache", "cf-skip-cache"])
def test_skip_cache_bypasses(api: Api, cached_gw: str, upstream: FakeUpstream, header: str) -> None:
    api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    r = api.http.post(chat_path(cached_gw), json=CHAT, headers={**KEY, header: "true"})
    assert r.headers["cf-aig-cache-status"] == "BYPASS"
    assert upstream.count() == 2
    assert r.headers["x-fake-seq"] == "2"
    # a bypassed request stores nothing either
    fresh = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fresh"}]}
    api.http.post(chat_path(cached_gw), json=fresh, headers={**KEY, header: "true"})
    r = api.http.post(chat_path(cached_gw), json=fresh, headers=KEY)
    assert r.headers["cf-aig-cache-status"] == "MISS"


def test_gateway_without_cache_always_misses(api: Api, plain_gw: str, upstream: FakeUpstream) -> None:
    for _ in range(2):
        r = api.http.post(chat_path(plain_gw), json=CHAT, headers=KEY)
        assert r.headers["cf-aig-cache-status"] == "MISS"
    assert upstream.count() == 2


@pytest.mark.parametrize("header", ["cf-aig-cache-ttl", "cf-cache-ttl"])
def test_cache_ttl_header_turns_caching_on(
    api: Api, plain_gw: str, upstream: FakeUpstream, header: str
) -> None:
    headers = {**KEY, header: "120"}
    first = api.http.post(chat_path(plain_gw), json=CHAT, headers=headers)
    second = api.http.post(chat_path(plain_gw), json=CHAT, headers=headers)
    assert (first.headers["cf-aig-cache-status"], second.headers["cf-aig-cache-status"]) == ("MISS", "HIT")
    assert upstream.count() == 1


def test_cache_key_shares_one_entry_across_bodies(api: Api, plain_gw: str, upstream: FakeUpstream) -> None:
    headers = {**KEY, "cf-aig-cache-key": "my-shared-key"}
    first = api.http.post(chat_path(plain_gw), json=CHAT, headers=headers)
    other_body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "something else"}]}
    second = api.http.post(chat_path(plain_gw), json=other_body, headers={**headers, "x-fake-text": "other"})
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.content == first.content
    assert upstream.count() == 1
    # another key is another entry
    third = api.http.post(chat_path(plain_gw), json=CHAT, headers={**KEY, "cf-aig-cache-key": "other-key"})
    assert third.headers["cf-aig-cache-status"] == "MISS"


def test_cache_entries_are_per_gateway(api: Api, upstream: FakeUpstream) -> None:
    one, two = api.new_gateway(cache_ttl=300), api.new_gateway(cache_ttl=300)
    headers = {**KEY, "cf-aig-cache-key": "same-key"}
    api.http.post(chat_path(one), json=CHAT, headers=headers)
    r = api.http.post(chat_path(two), json=CHAT, headers=headers)
    assert r.headers["cf-aig-cache-status"] == "MISS"
    assert upstream.count() == 2


@pytest.mark.parametrize(
    ("path", "first", "second"),
    [
        ("openai/chat/completions", {"Authorization": "Bearer sk-a"}, {"Authorization": "Bearer sk-b"}),
        ("anthropic/v1/messages", {"x-api-key": "sk-ant-a"}, {"x-api-key": "sk-ant-b"}),
        (
            "google-ai-studio/v1beta/models/gemini-2.0-flash:generateContent",
            {"x-goog-api-key": "AIza-a"},
            {"x-goog-api-key": "AIza-b"},
        ),
    ],
)
def test_different_credentials_do_not_share(
    api: Api, cached_gw: str, upstream: FakeUpstream, path: str, first: dict[str, str], second: dict[str, str]
) -> None:
    url = f"/v1/{ACCT}/{cached_gw}/{path}"
    body = {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": MESSAGES}
    if "google" in path:
        body = {"contents": [{"parts": [{"text": "hi"}]}]}
    a = api.http.post(url, json=body, headers={**first, "x-fake-text": "for user a"})
    b = api.http.post(url, json=body, headers={**second, "x-fake-text": "for user b"})
    assert a.headers["cf-aig-cache-status"] == b.headers["cf-aig-cache-status"] == "MISS"
    assert "for user b" in b.text
    again = api.http.post(url, json=body, headers=first)
    assert again.headers["cf-aig-cache-status"] == "HIT"
    assert "for user a" in again.text
    assert upstream.count() == 2


def test_universal_credentials_do_not_share(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    a = api.universal(cached_gw, openai_step({"Authorization": "Bearer sk-a"}))
    b = api.universal(cached_gw, openai_step({"Authorization": "Bearer sk-b"}))
    legacy = openai_step()
    del legacy["headers"]["Authorization"]
    legacy["authorization"] = "Bearer sk-c"
    c = api.universal(cached_gw, legacy)
    assert [r.headers["cf-aig-cache-status"] for r in (a, b, c)] == ["MISS", "MISS", "MISS"]
    assert upstream.count() == 3


@pytest.mark.parametrize("universal", [False, True])
def test_stream_cached_after_clean_end_and_replayed(
    api: Api, cached_gw: str, upstream: FakeUpstream, universal: bool
) -> None:
    def call() -> httpx.Response:
        if universal:
            return api.universal(cached_gw, workers_ai_step(stream=True))
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        return api.http.post(chat_path(cached_gw), json=body, headers=KEY)

    first = call()
    second = call()
    assert first.headers["cf-aig-cache-status"] == "MISS"
    assert second.headers["cf-aig-cache-status"] == "HIT"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.content == first.content
    assert sse_events(second.content)[-1] == (None, "[DONE]")
    assert upstream.count() == 1


def test_stream_and_non_stream_do_not_share(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    headers = {**KEY, "cf-aig-cache-key": "one-key"}
    api.http.post(chat_path(cached_gw), json=CHAT, headers=headers)
    r = api.http.post(chat_path(cached_gw), json={**CHAT, "stream": True}, headers=headers)
    assert r.headers["cf-aig-cache-status"] == "MISS"
    assert r.headers["content-type"].startswith("text/event-stream")
    assert upstream.count() == 2


def test_interrupted_stream_not_cached(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    body = {**CHAT, "stream": True}
    cut = api.http.post(chat_path(cached_gw), json=body, headers={**KEY, "x-fake-cut-after": "2"})
    assert b"event: error" in cut.content
    r = api.http.post(chat_path(cached_gw), json=body, headers=KEY)
    assert r.headers["cf-aig-cache-status"] == "MISS"
    assert b"event: error" not in r.content
    assert upstream.count() == 2
    r = api.http.post(chat_path(cached_gw), json=body, headers=KEY)
    assert r.headers["cf-aig-cache-status"] == "HIT"


def test_stream_abandoned_by_client_not_cached(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    body = {**CHAT, "stream": True}
    headers = {**KEY, "x-fake-chunk-delay-ms": "100"}
    with api.http.stream("POST", chat_path(cached_gw), json=body, headers=headers) as r:
        next(r.iter_raw())  # first event only, then hang up
    r = api.http.post(chat_path(cached_gw), json=body, headers=KEY)
    assert r.headers["cf-aig-cache-status"] == "MISS"
    assert upstream.count() == 2


@pytest.mark.parametrize("status", ["400", "429", "500"])
def test_non_2xx_not_cached(api: Api, cached_gw: str, upstream: FakeUpstream, status: str) -> None:
    for _ in range(2):
        r = api.http.post(chat_path(cached_gw), json=CHAT, headers={**KEY, "x-fake-status": status})
        assert r.status_code == int(status)
        assert r.headers["cf-aig-cache-status"] == "MISS"
    assert upstream.count() == 2
    ok = api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    assert ok.status_code == 200
    assert ok.headers["cf-aig-cache-status"] == "MISS"


async def test_concurrent_identical_misses_make_one_upstream_call(
    api: Api, cached_gw: str, upstream: FakeUpstream
) -> None:
    headers = {**KEY, "x-fake-delay-ms": "300"}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post(chat_path(cached_gw), json=CHAT, headers=headers) for _ in range(10))
        )
    assert [r.status_code for r in responses] == [200] * 10
    assert len({r.content for r in responses}) == 1
    assert upstream.count() == 1
    statuses = sorted(r.headers["cf-aig-cache-status"] for r in responses)
    assert statuses.count("MISS") == 1


async def test_concurrent_identical_stream_misses_make_one_upstream_call(
    api: Api, cached_gw: str, upstream: FakeUpstream
) -> None:
    headers = {**KEY, "x-fake-delay-ms": "200", "x-fake-chunk-delay-ms": "20"}
    body = {**CHAT, "stream": True}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post(chat_path(cached_gw), json=body, headers=headers) for _ in range(5))
        )
    assert len({r.content for r in responses}) == 1
    assert sse_events(responses[0].content)[-1] == (None, "[DONE]")
    assert upstream.count() == 1


async def test_concurrent_misses_after_a_failed_leader_each_get_an_answer(
    api: Api, cached_gw: str, upstream: FakeUpstream
) -> None:
    """When the one upstream call fails (non-2xx), nothing is stored and waiters are not stuck."""
    headers = {**KEY, "x-fake-delay-ms": "200", "x-fake-status": "500"}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post(chat_path(cached_gw), json=CHAT, headers=headers) for _ in range(4))
        )
    assert [r.status_code for r in responses] == [500] * 4


def test_cache_hit_logged_cached_with_cost_zero(api: Api, cached_gw: str, upstream: FakeUpstream) -> None:
    first = api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    second = api.http.post(chat_path(cached_gw), json=CHAT, headers=KEY)
    assert second.headers["cf-aig-cache-status"] == "HIT"
    rows = api.db().wait_gateway(cached_gw, 2)
    by_id = {row["id"]: row for row in rows}
    miss, hit = by_id[first.headers["cf-aig-log-id"]], by_id[second.headers["cf-aig-log-id"]]
    assert miss["cached"] == 0
    assert miss["cost"] is not None and miss["cost"] > 0
    assert hit["cached"] == 1
    assert hit["cost"] == 0
    assert hit["success"] == 1
    assert hit["status_code"] == 200
    assert hit["provider"] == "openai"
    assert hit["model"] == "gpt-4o-mini"
    assert hit["response_size"] == len(second.content)
    assert json.loads(hit["response_body"]) == second.json()
