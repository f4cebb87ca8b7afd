"""Golden tests of the Anthropic compat translation (app/providers/compat/anthropic.py), from the
Messages API documentation's request, response and event-stream shapes."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tests.support.compat import (
    CLAUDE,
    CONVERSATION,
    PNG,
    SCHEMA,
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

# ==== Anthropic =====================================================================================


def test_anthropic_request_mapping() -> None:
    t = make(CLAUDE, CONVERSATION, temperature=0.2, top_p=0.9, stop="END", max_tokens=300, user="u-1")
    assert (t.native.provider, t.native.endpoint, t.native.query_string) == ("anthropic", "v1/messages", "")
    assert native(t) == {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {"role": "assistant", "content": "Un chat."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_abc",
                        "name": "get_weather",
                        "input": {"location": "Paris, FR"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_abc",
                        "content": '{"temperature": 21, "unit": "C"}',
                    },
                    {"type": "text", "text": "Merci"},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
    }


def test_anthropic_defaults_single_system_and_max_completion_tokens() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    body = native(make(CLAUDE, messages))
    assert body == {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert native(make(CLAUDE, max_completion_tokens=77, max_tokens=5))["max_tokens"] == 77
    assert native(make(CLAUDE, stream=True, stop=["a", "b"]))["stop_sequences"] == ["a", "b"]
    assert native(make(CLAUDE, stream=True))["stream"] is True


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_anthropic_tools_and_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    fields: dict[str, Any] = {"tools": [WEATHER_TOOL]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    body = native(make(CLAUDE, **fields))
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": SCHEMA,
        }
    ]
    assert body.get("tool_choice") == expected


def test_anthropic_credentials() -> None:
    headers = [("Authorization", "Bearer sk-ant-1"), ("X-Trace", "t"), ("Content-Type", "application/json")]
    forwarded = make(CLAUDE, headers=headers).native.headers
    names = [name.lower() for name, _ in forwarded]
    assert "authorization" not in names
    assert ("x-api-key", "sk-ant-1") in forwarded
    assert ("anthropic-version", "2023-06-01") in forwarded
    assert ("X-Trace", "t") in forwarded
    assert names.count("content-type") == 1
    # A client-supplied x-api-key and anthropic-version win; Authorization is still never forwarded.
    own = [("authorization", "Bearer other"), ("x-api-key", "sk-own"), ("anthropic-version", "2024-01-01")]
    forwarded = make(CLAUDE, headers=own).native.headers
    assert [
        (n, v) for n, v in forwarded if n.lower() in ("x-api-key", "anthropic-version", "authorization")
    ] == [
        ("x-api-key", "sk-own"),
        ("anthropic-version", "2024-01-01"),
    ]


ANTHROPIC_TOOL_RESPONSE = {  # the Messages API documentation's tool use example
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-sonnet-20241022",
    "content": [
        {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 89},
}


def test_anthropic_response_text_and_usage() -> None:
    native_body = {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [{"type": "text", "text": "Hi! My name is Claude."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_read_input_tokens": 5},
    }
    out = completion(make(CLAUDE), native_body)
    assert out["id"] == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert out["object"] == "chat.completion"
    assert isinstance(out["created"], int)
    assert out["model"] == "claude-3-5-sonnet-20241022"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"] == {
        "prompt_tokens": 2100,
        "completion_tokens": 503,
        "total_tokens": 2603,
        "prompt_tokens_details": {"cached_tokens": 5},
    }


def test_anthropic_response_tool_use() -> None:
    out = completion(make(CLAUDE, tools=[WEATHER_TOOL]), ANTHROPIC_TOOL_RESPONSE)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the current weather in San Francisco for you."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"San Francisco, CA"}'},
        }
    ]
    assert out["usage"] == {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}
    only_tool = {**ANTHROPIC_TOOL_RESPONSE, "content": ANTHROPIC_TOOL_RESPONSE["content"][1:]}  # type: ignore[index]
    assert completion(make(CLAUDE), only_tool)["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")],
)
def test_anthropic_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    body = {**ANTHROPIC_TOOL_RESPONSE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert completion(make(CLAUDE), body)["choices"][0]["finish_reason"] == finish_reason


def test_anthropic_error() -> None:
    body = {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded"},
    }
    out = make(CLAUDE).response(429, orjson.dumps(body))
    assert_openai_error(out, "Number of requests has exceeded", "rate_limit_error", 429)
    assert_openai_error(
        make(CLAUDE).response(502, b"<html>bad gateway</html>"),
        "<html>bad gateway</html>",
        "server_error",
        502,
    )


def _start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _text(index: int, text: str) -> tuple[str, dict[str, Any]]:
    return _delta(index, {"type": "text_delta", "text": text})


def _json(index: int, partial: str) -> tuple[str, dict[str, Any]]:
    return _delta(index, {"type": "input_json_delta", "partial_json": partial})


def _stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def _message_start(message_id: str, model: str, usage: dict[str, int]) -> tuple[str, dict[str, Any]]:
    message: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage,
    }  # fmt: skip
    return "message_start", {"type": "message_start", "message": message}


def _message_delta(stop_reason: str, output_tokens: int) -> tuple[str, dict[str, Any]]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return "message_delta", {
        "type": "message_delta",
        "delta": delta,
        "usage": {"output_tokens": output_tokens},
    }


MESSAGE_STOP = ("message_stop", {"type": "message_stop"})

# The streaming documentation's "streaming request with tool use", plus a second tool call.
ANTHROPIC_TOOL_STREAM = sse(
    _message_start(
        "msg_014p7gG3wDgGV9EUtLvnow3U", "claude-3-haiku-20240307", {"input_tokens": 472, "output_tokens": 2}
    ),
    _start(0, {"type": "text", "text": ""}),
    ("ping", {"type": "ping"}),
    _text(0, "Okay"),
    _text(0, ", let's check"),
    _text(0, " the weather ☀️"),
    _stop(0),
    _start(
        1, {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}
    ),
    _json(1, ""),
    _json(1, '{"location":'),
    _json(1, ' "San Fra'),
    _json(1, 'ncisco, CA"}'),
    _stop(1),
    _start(2, {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}),
    _json(2, "{}"),
    _stop(2),
    _message_delta("tool_use", 89),
    MESSAGE_STOP,
)


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_anthropic_stream_text_and_tool_calls(size: int) -> None:
    t = make(CLAUDE, stream=True, stream_options={"include_usage": True})
    chunks, _ = run_stream(t, ANTHROPIC_TOOL_STREAM, size)
    assert chunks[0]["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert chunks[0]["model"] == "claude-3-haiku-20240307"
    assert text_of(chunks) == "Okay, let's check the weather ☀️"
    assert tool_calls_of(chunks) == [
        {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA"}',
        },
        {"id": "toolu_02", "name": "get_time", "arguments": "{}"},
    ]
    first_tool_delta = next(c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    assert first_tool_delta["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}
    ]  # fmt: skip
    assert finish_reasons(chunks) == ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}


def test_anthropic_stream_without_include_usage_has_no_usage_chunk() -> None:
    raw = sse(
        _message_start("msg_1", "m", {"input_tokens": 3}),
        _text(0, "Hi"),
        _message_delta("max_tokens", 1),
        MESSAGE_STOP,
    )
    chunks, _ = run_stream(make(CLAUDE, stream=True), raw, 5)
    assert text_of(chunks) == "Hi"
    assert finish_reasons(chunks) == ["length"]
    assert all("usage" not in c for c in chunks)


def test_anthropic_stream_error_event() -> None:
    raw = sse(
        _message_start("msg_1", "m", {}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    stream = make(CLAUDE, stream=True).stream()
    out = stream.feed(raw) + stream.close()
    events = [e for e in out.decode().split("\n\n") if e]
    assert json.loads(events[-1][6:]) == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": 529}
    }
