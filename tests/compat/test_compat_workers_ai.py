"""Golden tests of the Workers AI compat translation (app/providers/compat/workers_ai.py), run API
requests, responses and SSE events."""

from __future__ import annotations

import orjson
import pytest

from tests.support.compat import (
    CONVERSATION,
    LLAMA,
    WEATHER_TOOL,
    assert_openai_error,
    completion,
    finish_reasons,
    make,
    native,
    run_stream,
    sse,
    text_of,
    tool_calls_of,
)

# ==== Workers AI ====================================================================================


def test_workers_ai_request_mapping() -> None:
    t = make(
        LLAMA,
        CONVERSATION,
        temperature=0.3,
        max_tokens=128,
        top_p=0.5,
        seed=3,
        stream=True,
        tools=[WEATHER_TOOL],
    )
    assert (t.native.provider, t.native.endpoint, t.native.query_string) == (
        "workers-ai",
        "@cf/meta/llama-3.1-8b-instruct",
        "",
    )
    assert native(t) == {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": CONVERSATION[2]["content"]},
            {"role": "user", "content": CONVERSATION[3]["content"]},
            {"role": "assistant", "content": "Un chat."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Paris, FR"}'},
                    }
                ],
            },
            {
                "role": "tool",
                "content": '{"temperature": 21, "unit": "C"}',
                "tool_call_id": "call_abc",
                "name": "get_weather",
            },
            {"role": "user", "content": "Merci"},
        ],
        "max_tokens": 128,
        "temperature": 0.3,
        "top_p": 0.5,
        "seed": 3,
        "tools": [WEATHER_TOOL],
        "stream": True,
    }
    # Text-only content parts are flattened; the Cloudflare API token stays in Authorization.
    t = make(
        LLAMA, [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    )
    assert native(t)["messages"] == [{"role": "user", "content": "ab"}]
    assert t.native.headers == [("Authorization", "Bearer sk-1"), ("content-type", "application/json")]


def test_workers_ai_response_text_and_usage() -> None:
    body = {
        "result": {
            "response": "Hello! How can I help?",
            "tool_calls": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
        },
        "success": True,
        "errors": [],
        "messages": [],
    }
    out = completion(make(LLAMA), body)
    assert out["model"] == "@cf/meta/llama-3.1-8b-instruct"
    assert out["id"].startswith("chatcmpl-")
    assert out["choices"][0]["message"]["content"] == "Hello! How can I help?"
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def test_workers_ai_response_tool_calls_both_shapes() -> None:
    legacy = {
        "result": {
            "response": None,
            "tool_calls": [{"name": "get_weather", "arguments": {"location": "Austin"}}],
        },
        "success": True,
    }
    out = completion(make(LLAMA), legacy)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"location":"Austin"}',
    }
    assert out["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    function = {"name": "get_weather", "arguments": '{"location":"Oslo"}'}
    call = {"id": "chatcmpl-tool-1", "type": "function", "function": function}
    openai_style = {"result": {"response": "", "tool_calls": [call]}, "success": True}
    assert completion(make(LLAMA), openai_style)["choices"][0]["message"]["tool_calls"] == [call]
    assert call == {
        "id": "chatcmpl-tool-1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'},
    }


def test_workers_ai_error() -> None:
    body = {
        "result": None,
        "success": False,
        "errors": [{"code": 5006, "message": "AiError: Bad input"}],
        "messages": [],
    }
    assert_openai_error(
        make(LLAMA).response(400, orjson.dumps(body)), "AiError: Bad input", "invalid_request_error", 400
    )


@pytest.mark.parametrize("size", [1, 7, 100_000])
def test_workers_ai_stream(size: int) -> None:
    raw = sse(
        (None, {"response": "Hel", "p": "abcdefghijklm"}),
        (None, {"response": "lo wor", "p": "abcdefghij"}),
        (None, {"response": "ld ☀", "p": "abc"}),
        (None, {"response": "", "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}),
        (None, "[DONE]"),
    )
    chunks, out = run_stream(make(LLAMA, stream=True, stream_options={"include_usage": True}), raw, size)
    assert text_of(chunks) == "Hello world ☀"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    assert out.count(b"[DONE]") == 1


def test_workers_ai_stream_tool_calls() -> None:
    raw = sse(
        (
            None,
            {"response": "", "tool_calls": [{"name": "get_weather", "arguments": {"location": "Austin"}}]},
        ),
        (None, {"response": "", "usage": {"prompt_tokens": 40, "completion_tokens": 15, "total_tokens": 55}}),
        (None, "[DONE]"),
    )
    chunks, _ = run_stream(make(LLAMA, stream=True), raw)
    [call] = tool_calls_of(chunks)
    assert (call["name"], call["arguments"]) == ("get_weather", '{"location":"Austin"}')
    assert finish_reasons(chunks) == ["tool_calls"]
