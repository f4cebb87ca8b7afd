"""The universal endpoint over real HTTP (protocol.md §2), steps and fallback: a single step for
every provider format (request and answer as the provider sends them), string queries, the legacy
`authorization` field, cf-aig-* step headers taken as settings, unknown providers, fallback chains
and non-streamed bodies cut before their end (2005, also with a non-latin-1 eventId)."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    STEPS,
    ULID_RE,
    Api,
    anthropic_step,
    direct,
    error_of,
    fail_key,
    google_step,
    normalize_fake,
    openai_step,
    workers_ai_step,
)

UPSTREAM_PATHS = {
    "openai": "/v1/chat/completions",
    "workers-ai": f"/client/v4/accounts/{ACCT}/ai/run/@cf/meta/llama-3.1-8b-instruct",
    "anthropic": "/v1/messages",
    "google-ai-studio": "/v1beta/models/gemini-2.0-flash:generateContent",
}


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


# ---- single step ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(STEPS))
def test_single_step_non_stream(api: Api, gw: str, upstream: FakeUpstream, provider: str) -> None:
    step = STEPS[provider]()
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cf-aig-step"] == "0"
    assert ULID_RE.match(r.headers["cf-aig-log-id"])
    assert r.headers["cf-aig-cache-status"] == "MISS"
    assert r.headers["x-fake-seq"] == "1"  # upstream headers come back

    assert upstream.count() == 1
    rec = upstream.last
    assert rec.method == "POST"
    assert rec.path == UPSTREAM_PATHS[provider]
    assert json.loads(rec.body) == step["query"]
    for name, value in step["headers"].items():
        assert rec.headers[name.lower()] == value
    assert rec.headers["content-type"] == "application/json"

    expected = direct(upstream, step)
    assert normalize_fake(r.content) == normalize_fake(expected.content)
    assert "Hello from fake" in r.text


def test_trailing_slash_and_string_query(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step()
    step["query"] = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    r = api.http.post(f"/v1/{ACCT}/{gw}/", json=step)
    assert r.status_code == 200, r.text
    assert upstream.last.body == step["query"].encode()  # a string query is sent as it is


def test_legacy_authorization_field(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step()
    del step["headers"]["Authorization"]
    step["authorization"] = "Bearer sk-legacy"
    assert api.universal(gw, step).status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-legacy"

    step = openai_step({"Authorization": "Bearer sk-from-headers"}, authorization="Bearer sk-legacy")
    assert api.universal(gw, step).status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-from-headers"  # headers win


@pytest.mark.parametrize("name", ["cf-aig-max-attempts", "CF-AIG-Max-Attempts"])
def test_step_cf_aig_headers_are_settings_not_forwarded(
    api: Api, gw: str, upstream: FakeUpstream, name: str
) -> None:
    step = openai_step({"x-fake-fail-times": "2", **fail_key(), name: "3"})
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    assert upstream.count() == 3
    for rec in upstream.requests:
        assert not [name for name in rec.headers if name.startswith("cf-aig")]


def test_unknown_provider_in_any_step_calls_nothing(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, [openai_step(), {"provider": "nope", "endpoint": "x", "query": {}}])
    assert "nope" in error_of(r, 400, 2008)
    assert upstream.count() == 0


# ---- fallback ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["500", "400", "401"])
def test_fallback_to_next_step_when_first_fails(
    api: Api, gw: str, upstream: FakeUpstream, status: str
) -> None:
    r = api.universal(gw, [openai_step({"x-fake-status": status}), anthropic_step()])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert r.json()["type"] == "message"
    assert [rec.path for rec in upstream.requests] == ["/v1/chat/completions", "/v1/messages"]


def test_first_step_ok_second_never_called(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, [openai_step(), anthropic_step(), workers_ai_step()])
    assert r.status_code == 200
    assert r.headers["cf-aig-step"] == "0"
    assert r.json()["object"] == "chat.completion"
    assert upstream.count() == 1
    assert upstream.count("/v1/messages") == 0


def test_three_steps_answered_by_the_third(api: Api, gw: str, upstream: FakeUpstream) -> None:
    steps = [openai_step({"x-fake-status": "503"}), anthropic_step({"x-fake-status": "529"}), google_step()]
    r = api.universal(gw, steps)
    assert r.status_code == 200
    assert r.headers["cf-aig-step"] == "2"
    assert "candidates" in r.json()
    assert upstream.count() == 3


def test_all_steps_fail_last_error_returned_as_is(api: Api, gw: str, upstream: FakeUpstream) -> None:
    last = anthropic_step({"x-fake-status": "429"})
    r = api.universal(gw, [openai_step({"x-fake-status": "500"}), last])
    assert r.status_code == 429
    assert r.headers["cf-aig-step"] == "1"
    assert r.headers["x-fake-seq"] == "2"
    assert r.json()["type"] == "error"  # Anthropic's own error shape, not rewrapped
    expected = direct(upstream, last)
    assert expected.status_code == 429
    assert r.content == expected.content


def test_non_stream_body_cut_falls_back(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, [openai_step({"x-fake-cut-after": "10"}), anthropic_step()])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert upstream.count() == 2


def test_non_stream_body_cut_on_last_step_is_2005(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step({"x-fake-cut-after": "10"}))
    error_of(r, 502, 2005)


def test_non_latin1_event_id_on_a_gateway_error(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step({"x-fake-cut-after": "10"}, eventId="évènement-😀")
    r = api.universal(gw, step)
    error_of(r, 502, 2005)
