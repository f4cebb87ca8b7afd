"""The OpenAI-compatible endpoint end to end for the translated providers (Anthropic, Google AI
Studio, Workers AI): the official `openai` SDK against a real gateway, which calls the fake
provider server in its native format. Asserts the native request the fake received, the OpenAI
answer the SDK parsed (plain, streaming, errors), the log rows, cache hits and fallback chains.

The fake answers text only (it never produces tool calls), so for tools these tests check the
native request; tool-call answers are covered by tests/compat/test_compat_translators.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from tests.conftest import GatewayServer
from tests.support.fake_providers import RecordedRequest
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, LogDb, db_path, running_gateway, sse_events

GATEWAY = "gw"
# 2 words: the fake counts 2 prompt tokens; 3 more for the user message.
SYSTEM: ChatCompletionSystemMessageParam = {"role": "system", "content": "Be brief."}
USER: ChatCompletionUserMessageParam = {"role": "user", "content": "say hello please"}
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass(frozen=True)
class Case:
    model: str
    slug: str
    path: str
    stream_path: str
    stream_query: str = ""


WORKERS_PATH = f"/client/v4/accounts/{ACCT}/ai/run/@cf/meta/llama-3.1-8b-instruct"
CASES = {
    "anthropic": Case("anthropic/claude-3-5-haiku-latest", "anthropic", "/v1/messages", "/v1/messages"),
    "google-ai-studio": Case(
        "google-ai-studio/gemini-2.0-flash",
        "google-ai-studio",
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        "alt=sse",
    ),
    "workers-ai": Case("workers-ai/@cf/meta/llama-3.1-8b-instruct", "workers-ai", WORKERS_PATH, WORKERS_PATH),
}
PREFIXES = list(CASES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("compat"), fake_upstream.url) as gateway:
        response = httpx.post(
            f"{gateway.url}/client/v4/accounts/{ACCT}/ai-gateway/gateways",
            json={"id": GATEWAY},
            headers=ADMIN_HEADERS,
        )
        assert response.status_code == 200, response.text
        yield gateway


@pytest.fixture
def client(server: GatewayServer, upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{server.url}/v1/{ACCT}/{GATEWAY}/compat", api_key="sk-test", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


@pytest.fixture
def logs(server: GatewayServer) -> LogDb:
    return LogDb(db_path(server))


def unique_text() -> str:
    """A fake answer of 5 words, unique per call (keeps cache keys of tests apart)."""
    return f"The quick brown fox {uuid.uuid4().hex[:8]}"


def assert_native(case: Case, rec: RecordedRequest, *, stream: bool = False) -> dict[str, Any]:
    """The native request: path, query, credentials; returns its body."""
    assert rec.method == "POST"
    assert rec.path == (case.stream_path if stream else case.path)
    assert rec.query == (case.stream_query if stream else "")
    assert rec.headers["content-type"] == "application/json"
    if case.slug == "anthropic":
        assert rec.headers["x-api-key"] == "sk-test"
        assert rec.headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in rec.headers
    elif case.slug == "google-ai-studio":
        assert rec.headers["x-goog-api-key"] == "sk-test"
        assert "authorization" not in rec.headers
    else:
        assert rec.headers["authorization"] == "Bearer sk-test"
    body: dict[str, Any] = rec.json()
    return body


EXPECTED_PLAIN_BODIES: dict[str, dict[str, Any]] = {
    "anthropic": {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "say hello please"}],
        "temperature": 0.5,
    },
    "google-ai-studio": {
        "contents": [{"role": "user", "parts": [{"text": "say hello please"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 50},
    },
    "workers-ai": {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "say hello please"},
        ],
        "max_tokens": 50,
        "temperature": 0.5,
    },
}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_plain_completion(prefix: str, client: openai.OpenAI, upstream: FakeUpstream, logs: LogDb) -> None:
    case = CASES[prefix]
    raw = client.chat.completions.with_raw_response.create(
        model=case.model, messages=[SYSTEM, USER], max_tokens=50, temperature=0.5
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello from fake"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (5, 3)
    assert completion.usage.total_tokens == 8

    [rec] = upstream.requests
    assert assert_native(case, rec) == EXPECTED_PLAIN_BODIES[prefix]

    [row] = logs.wait("id = ?", (raw.headers["cf-aig-log-id"],))
    assert row["provider"] == case.slug
    assert (row["tokens_in"], row["tokens_out"]) == (5, 3)
    assert row["status_code"] == 200 and row["success"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_streaming_with_usage(
    prefix: str, client: openai.OpenAI, upstream: FakeUpstream, logs: LogDb
) -> None:
    case = CASES[prefix]
    text = unique_text()
    raw = client.chat.completions.with_raw_response.create(
        model=case.model,
        messages=[USER],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-text": text},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 5)
    assert chunks[-1].usage.total_tokens == 8

    [rec] = upstream.requests
    body = assert_native(case, rec, stream=True)
    if prefix == "google-ai-studio":
        assert "stream" not in body
    else:
        assert body["stream"] is True

    [row] = logs.wait("id = ?", (raw.headers["cf-aig-log-id"],))
    assert row["provider"] == case.slug
    assert (row["tokens_in"], row["tokens_out"]) == (3, 5)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_stream_wire_format_ends_with_done(
    prefix: str, server: GatewayServer, upstream: FakeUpstream
) -> None:
    response = httpx.post(
        f"{server.url}/v1/{ACCT}/{GATEWAY}/compat/chat/completions",
        json={"model": CASES[prefix].model, "messages": [USER], "stream": True},
        headers={"Authorization": "Bearer sk-test"},
    )
    assert response.status_code == 200
    events = sse_events(response.content)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["choices"] for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from fake"
    assert all("usage" not in chunk for chunk in chunks)  # not asked for with stream_options


EXPECTED_TOOLS: dict[str, tuple[str, Any, Any]] = {  # (body key, tools, tool choice)
    "anthropic": (
        "tool_choice",
        [{
            "name": "get_weather", "description": "Weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }],
        {"type": "tool", "name": "get_weather"},
    ),
    "google-ai-studio": (
        "toolConfig",
        [{"functionDeclarations": [{
            "name": "get_weather", "description": "Weather in a city",
            "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
        }]}],
        {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    ),
    "workers-ai": ("tool_choice", [WEATHER_TOOL], None),
}  # fmt: skip


@pytest.mark.parametrize("prefix", PREFIXES)
def test_tools_reach_the_provider_in_its_format(
    prefix: str, client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    case = CASES[prefix]
    messages: Any = [
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'},
    ]
    completion = client.chat.completions.create(
        model=case.model,
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert completion.choices[0].message.content == "Hello from fake"
    body = assert_native(case, upstream.last)
    choice_key, tools, choice = EXPECTED_TOOLS[prefix]
    assert body["tools"] == tools
    assert body.get(choice_key) == choice
    if prefix == "anthropic":
        assert body["messages"][1:] == [
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 3}'}
            ]},
        ]  # fmt: skip
    elif prefix == "google-ai-studio":
        assert body["contents"][1:] == [
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 3}}}],
            },
        ]
    else:
        assert body["messages"][2] == {
            "role": "tool", "content": '{"temp": 3}', "tool_call_id": "call_1", "name": "get_weather"
        }  # fmt: skip


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("status", "error_class"), [(429, openai.RateLimitError), (400, openai.BadRequestError)]
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_error_in_openai_format(
    prefix: str,
    status: int,
    error_class: type[openai.APIStatusError],
    stream: bool,
    client: openai.OpenAI,
    upstream: FakeUpstream,
) -> None:
    case = CASES[prefix]
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model=case.model, messages=[USER], stream=stream, extra_headers={"x-fake-status": str(status)}
        )
    error = caught.value
    assert isinstance(error, error_class)
    assert error.status_code == status
    assert error.response.headers["content-type"].startswith("application/json")
    assert error.body == {
        "message": f"fake upstream error {status}",
        "type": "rate_limit_error" if status == 429 else "invalid_request_error",
        "param": None,
        "code": status,
    }
    assert_native(case, upstream.last, stream=stream)


def test_anthropic_client_x_api_key_is_kept(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(
        model=CASES["anthropic"].model, messages=[USER], extra_headers={"x-api-key": "sk-ant-own"}
    )
    assert upstream.last.headers["x-api-key"] == "sk-ant-own"
    assert "authorization" not in upstream.last.headers


def test_invalid_request_is_an_openai_error_and_reaches_no_provider(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=CASES["anthropic"].model, messages=[USER], n=2)
    assert caught.value.body is not None and "'n'" in caught.value.body["message"]  # type: ignore[index]
    assert upstream.count() == 0


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("stream", [False, True])
def test_cache_hits_are_translated(
    prefix: str, stream: bool, client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    case = CASES[prefix]
    text = unique_text()
    headers = {"x-fake-text": text, "cf-aig-cache-ttl": "60"}
    answers: list[str | None] = []
    for expected_status in ("MISS", "HIT"):
        raw = client.chat.completions.with_raw_response.create(
            model=case.model,
            messages=[{"role": "user", "content": text}],
            stream=stream,
            extra_headers=headers,
        )
        assert raw.headers["cf-aig-cache-status"] == expected_status
        parsed = raw.parse()
        if isinstance(parsed, ChatCompletion):
            answers.append(parsed.choices[0].message.content)
        else:
            chunks: list[ChatCompletionChunk] = list(parsed)
            answers.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert answers == [text, text]
    assert upstream.count() == 1


def _universal(server: GatewayServer, steps: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/{ACCT}/{GATEWAY}", json=steps, timeout=10)


def _compat_step(model: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "provider": "compat",
        "endpoint": "chat/completions",
        "headers": {"Authorization": "Bearer k", **(headers or {})},
        "query": {"model": model, "messages": [USER]},
    }


def test_universal_fallback_from_translated_to_openai(
    server: GatewayServer, upstream: FakeUpstream, logs: LogDb
) -> None:
    failing = _compat_step("anthropic/claude-3-5-haiku-latest", {"x-fake-status": "500"})
    response = _universal(server, [failing, _compat_step("openai/gpt-4o-mini")])
    assert response.status_code == 200, response.text
    assert response.headers["cf-aig-step"] == "1"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"]["content"] == "Hello from fake"
    first, second = upstream.requests
    assert (first.path, first.headers["x-api-key"], "authorization" in first.headers) == (
        "/v1/messages",
        "k",
        False,
    )
    assert (second.path, second.headers["authorization"]) == ("/v1/chat/completions", "Bearer k")
    rows = logs.wait("event_id = ?", (response.headers["cf-aig-event-id"],), count=2)
    assert [(r["step"], r["provider"], r["status_code"]) for r in rows] == [
        (0, "anthropic", 500),
        (1, "openai", 200),
    ]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_universal_fallback_to_translated(prefix: str, server: GatewayServer, upstream: FakeUpstream) -> None:
    failing = _compat_step("openai/gpt-4o-mini", {"x-fake-status": "503"})
    response = _universal(server, [failing, _compat_step(CASES[prefix].model)])
    assert response.status_code == 200, response.text
    assert response.headers["cf-aig-step"] == "1"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello from fake"
    assert body["usage"]["completion_tokens"] == 3
    assert upstream.last.path == CASES[prefix].path


def test_universal_last_step_error_is_openai_format(server: GatewayServer, upstream: FakeUpstream) -> None:
    response = _universal(server, [_compat_step(CASES["google-ai-studio"].model, {"x-fake-status": "404"})])
    assert response.status_code == 404
    assert response.headers["cf-aig-step"] == "0"
    assert response.json() == {
        "error": {"message": "fake upstream error 404", "type": "not_found_error", "param": None, "code": 404}
    }
