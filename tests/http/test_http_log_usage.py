"""What request log rows read from bodies and streams of real HTTP traffic: the model (from the
body or the path), token usage of every provider format, JSON and streamed, and the cost from the
price table or a `cf-aig-custom-cost` header."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    MESSAGES,
    Api,
    anthropic_step,
    expected_cost,
    google_step,
    openai_step,
    workers_ai_step,
)


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


# ---- model, tokens, cost -----------------------------------------------------------------------------

# name → (step factory, provider, model, tokens_in, tokens_out)
USAGE_CASES: dict[str, tuple[Callable[..., dict[str, Any]], str, str, int, int]] = {
    "openai": (openai_step, "openai", "gpt-4o-mini", 3, 3),
    "anthropic": (anthropic_step, "anthropic", "claude-3-5-haiku-latest", 3, 3),
    "workers-ai": (workers_ai_step, "workers-ai", "@cf/meta/llama-3.1-8b-instruct", 4, 3),
    "google": (google_step, "google-ai-studio", "gemini-2.0-flash", 3, 3),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_model_tokens_and_cost(api: Api, gw: str, upstream: FakeUpstream, case: str, stream: bool) -> None:
    factory, provider, model, tokens_in, tokens_out = USAGE_CASES[case]
    step = factory(stream=stream)
    r = api.universal(gw, step, headers={"User-Agent": "log-test/1.0"})
    assert r.status_code == 200
    row = api.db().wait_gateway(gw)[0]
    assert row["id"] == r.headers["cf-aig-log-id"]
    assert row["provider"] == provider
    assert row["model"] == model
    assert row["path"] == step["endpoint"].partition("?")[0]
    assert row["status_code"] == 200
    assert row["success"] == 1
    assert row["cached"] == 0
    assert row["attempts"] == 1
    assert (row["tokens_in"], row["tokens_out"]) == (tokens_in, tokens_out)
    assert row["cost"] == pytest.approx(expected_cost(provider, model, tokens_in, tokens_out))
    assert row["custom_cost"] == 0
    assert row["request_content_type"] == "application/json"
    expected_type = "text/event-stream" if stream else "application/json"
    assert row["response_content_type"].startswith(expected_type)
    assert row["request_size"] == len(upstream.last.body)
    assert row["response_size"] == len(r.content)
    assert bytes(row["request_body"]) == upstream.last.body
    assert bytes(row["response_body"]) == r.content
    assert row["request_body_complete"] == row["response_body_complete"] == 1
    assert row["duration_ms"] is not None and row["duration_ms"] >= 0
    assert row["ttfb_ms"] is not None and 0 <= row["ttfb_ms"] <= row["duration_ms"]
    assert row["user_agent"] == "log-test/1.0"
    assert row["error"] is None


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_passthrough_model_from_path_and_body(
    api: Api, gw: str, upstream: FakeUpstream, stream: bool
) -> None:
    suffix = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"parts": [{"text": "one two three four five"}]}]}
    r = api.http.post(f"/v1/{ACCT}/{gw}/google-ai-studio/v1beta/models/gemini-2.5-pro:{suffix}", json=body)
    assert r.status_code == 200
    r = api.http.post(
        f"/v1/{ACCT}/{gw}/workers-ai/@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        json={"messages": MESSAGES, "stream": stream},
    )
    assert r.status_code == 200
    google, workers = api.db().wait_gateway(gw, 2)
    assert google["model"] == "gemini-2.5-pro"
    assert (google["tokens_in"], google["tokens_out"]) == (5, 3)
    assert google["cost"] == pytest.approx(expected_cost("google-ai-studio", "gemini-2.5-pro", 5, 3))
    assert google["path"] == f"v1beta/models/gemini-2.5-pro:{suffix.partition('?')[0]}"
    assert workers["model"] == "@cf/meta/llama-3.3-70b-instruct-fp8-fast"
    assert (workers["tokens_in"], workers["tokens_out"]) == (3, 3)


def test_google_json_array_stream_usage(api: Api, gw: str, upstream: FakeUpstream) -> None:
    body = {"contents": [{"parts": [{"text": "one two three"}]}]}
    path = "v1beta/models/gemini-2.0-flash:streamGenerateContent"
    r = api.http.post(f"/v1/{ACCT}/{gw}/google-ai-studio/{path}", json=body)
    assert r.status_code == 200
    row = api.db().wait_gateway(gw)[0]
    assert (row["tokens_in"], row["tokens_out"]) == (3, 3)


def test_unknown_model_cost_is_null_not_zero(api: Api, gw: str, upstream: FakeUpstream) -> None:
    api.universal(gw, openai_step(model="my-private-finetune"))
    row = api.db().wait_gateway(gw)[0]
    assert row["model"] == "my-private-finetune"
    assert (row["tokens_in"], row["tokens_out"]) == (3, 3)
    assert row["cost"] is None


def test_custom_cost_header(api: Api, gw: str, upstream: FakeUpstream) -> None:
    cost = json.dumps({"per_token_in": 0.5, "per_token_out": 2})
    api.universal(gw, openai_step(model="my-private-finetune"), headers={"cf-aig-custom-cost": cost})
    row = api.db().wait_gateway(gw)[0]
    assert row["custom_cost"] == 1
    assert row["cost"] == pytest.approx(3 * 0.5 + 3 * 2)
