"""`/ai/v1/messages` through the official `anthropic` SDK (`base_url=…/ai`), and `/ai/run` in its
two forms: httpx as curl would send it, and the `cloudflare` SDK's `ai.run` (`%2F` in the path)."""

from __future__ import annotations

from typing import Any

import anthropic
import cloudflare
import pytest

from tests.rest.support import PROVIDER_KEY, Rest, new_rest, sent_credentials
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, FAKE_TEXT, MESSAGES, Api, sse_events

LLAMA = "@cf/meta/llama-3.1-8b-instruct"


@pytest.fixture
def rest(api: Api, upstream: FakeUpstream) -> Rest:
    return new_rest(api, upstream)


def _anthropic(rest: Rest, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=rest.ai, max_retries=0,
        default_headers={"cf-aig-gateway-id": rest.gateway_id, "cf-aig-provider-key": PROVIDER_KEY},
        **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("token_in", ["auth_token", "api_key"])  # Authorization: Bearer, or x-api-key
def test_messages_with_the_anthropic_sdk(rest: Rest, upstream: FakeUpstream, token_in: str) -> None:
    with _anthropic(rest, **{token_in: rest.token}) as client:
        message = client.messages.create(
            model="anthropic/claude-3-5-haiku-latest",
            max_tokens=64,
            messages=MESSAGES,  # type: ignore[arg-type]
        )
    assert message.content[0].type == "text" and message.content[0].text == FAKE_TEXT
    assert upstream.last.path == "/v1/messages"
    assert upstream.last.json()["model"] == "claude-3-5-haiku-latest"
    assert upstream.last.headers["anthropic-version"]  # the SDK's own, forwarded
    assert sent_credentials(upstream) == {"x-api-key": PROVIDER_KEY}
    row = rest.rows()[0]
    assert (row["request_type"], row["provider"], row["model"]) == (
        "rest",
        "anthropic",
        "claude-3-5-haiku-latest",
    )
    assert row["tokens_out"] == 3


def test_messages_stream_with_the_anthropic_sdk(rest: Rest, upstream: FakeUpstream) -> None:
    with _anthropic(rest, api_key=rest.token) as client, client.messages.stream(
        model="anthropic/claude-3-5-haiku-latest", max_tokens=64, messages=MESSAGES,  # type: ignore[arg-type]
        extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024-04-04"},
    ) as stream:  # fmt: skip
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == FAKE_TEXT and final.usage.output_tokens == 3
    assert upstream.last.headers["anthropic-beta"] == "tools-2024-04-04"
    assert rest.rows()[0]["success"]


@pytest.mark.parametrize(("sent", "forwarded"), [(None, "2023-06-01"), ("2099-01-01", "2099-01-01")])
def test_anthropic_version_defaults_when_absent(
    rest: Rest, upstream: FakeUpstream, sent: str | None, forwarded: str
) -> None:
    headers = rest.headers(**({"anthropic-version": sent} if sent else {}))
    body = {"model": "anthropic/claude-3-5-haiku-latest", "max_tokens": 8, "messages": MESSAGES}
    assert rest.post("v1/messages", body, headers).status_code == 200
    assert upstream.last.headers["anthropic-version"] == forwarded


def test_messages_only_for_anthropic(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.post(
        "v1/messages", {"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": MESSAGES}
    )
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 2008
    assert upstream.count() == 0


def test_run_workers_ai_envelope(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.post("run", {"model": LLAMA, "input": {"prompt": "tell me a joke"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["result"]["response"] == FAKE_TEXT
    assert upstream.last.path == f"/client/v4/accounts/{ACCT}/ai/run/{LLAMA}"
    assert upstream.last.json() == {"prompt": "tell me a joke"}
    assert response.headers["cf-aig-provider"] == "workers-ai" and response.headers["cf-aig-model"] == LLAMA
    assert rest.rows()[0]["model"] == LLAMA


def test_run_third_party_is_wrapped_and_streams_unwrapped(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.post(
        "run", {"model": "openai/gpt-4.1", "input": {"messages": MESSAGES, "max_tokens": 64}}
    )
    body = response.json()
    assert (body["success"], body["errors"], body["messages"]) == (True, [], [])
    assert body["result"]["object"] == "chat.completion"
    assert body["result"]["choices"][0]["message"]["content"] == FAKE_TEXT
    assert upstream.last.json()["model"] == "gpt-4.1"
    streamed = rest.post(
        "run", {"model": "anthropic/claude-3-5-haiku-latest", "input": {"messages": MESSAGES, "stream": True}}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = sse_events(streamed.content)
    assert events[-1][1] == "[DONE]" and '"chat.completion.chunk"' in events[0][1]


def test_run_pinned_provider(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.post(
        "run", {"model": "meta/llama-3.3-70b", "provider": "groq", "input": {"messages": MESSAGES}}
    )
    assert response.status_code == 200, response.text
    assert upstream.last.path == "/openai/v1/chat/completions"
    assert upstream.last.json()["model"] == "llama-3.3-70b"
    assert response.headers["cf-aig-provider"] == "groq"


@pytest.mark.parametrize(
    "body", [{"input": {}}, {"model": LLAMA}, {"model": 3, "input": {}}, {"model": LLAMA, "input": "x"}, [1]]
)
def test_run_malformed_is_2010(rest: Rest, upstream: FakeUpstream, body: Any) -> None:
    response = rest.post("run", body)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 2010, response.text
    assert upstream.count() == 0


@pytest.mark.parametrize("path", [f"run/{LLAMA}", "run/%40cf%2Fmeta%2Fllama-3.1-8b-instruct"])
def test_run_model_in_path(rest: Rest, upstream: FakeUpstream, path: str) -> None:
    response = rest.post(path, {"prompt": "tell me a joke", "max_tokens": 8})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["response"] == FAKE_TEXT
    assert upstream.last.path == f"/client/v4/accounts/{ACCT}/ai/run/{LLAMA}"
    assert upstream.last.json() == {"prompt": "tell me a joke", "max_tokens": 8}


def test_run_model_in_path_only_workers_ai(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.post("run/openai/gpt-4o-mini", {"messages": MESSAGES})
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == 7003
    assert upstream.count() == 0


def test_run_with_the_cloudflare_sdk(rest: Rest, upstream: FakeUpstream) -> None:
    client = cloudflare.Cloudflare(
        api_token=rest.token, base_url=f"{rest.api.url}/client/v4", max_retries=0,
        default_headers={"cf-aig-gateway-id": rest.gateway_id, "cf-aig-provider-key": PROVIDER_KEY},
    )  # fmt: skip
    with client:
        result = client.ai.run(LLAMA, account_id=ACCT, prompt="tell me a joke")
    assert isinstance(result, dict) and result["response"] == FAKE_TEXT
    assert upstream.last.path == f"/client/v4/accounts/{ACCT}/ai/run/{LLAMA}"
    assert rest.rows()[0]["request_type"] == "rest"
