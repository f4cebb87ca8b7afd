"""Golden tests of the compat translators (app/providers/compat/{anthropic,google,workers_ai}.py):
OpenAI chat-completions requests → each provider's native request, and the providers' documented
response bodies and event streams → OpenAI `chat.completion` / `chat.completion.chunk`.

Streams are fed in odd-sized pieces (7 bytes by default) so events are split at arbitrary points;
every output object is validated with the official `openai` SDK's models."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.errors import UnknownProvider
from app.providers.compat.base import CompatRequestError, Translation
from app.providers.compat.registry import translate

CLAUDE = "anthropic/claude-3-5-sonnet-20241022"
GEMINI = "google-ai-studio/gemini-2.0-flash"
LLAMA = "workers-ai/@cf/meta/llama-3.1-8b-instruct"

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string", "description": "The city and state"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}
SCHEMA = WEATHER_TOOL["function"]["parameters"]  # type: ignore[index]

# One conversation exercising everything: system + developer prompts, an image by data URL and by
# http URL, two consecutive user turns, an assistant tool call and its result, then a user turn.
CONVERSATION: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ],
    },
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
    {"role": "assistant", "content": "Un chat."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location": "Paris, FR"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_abc", "content": '{"temperature": 21, "unit": "C"}'},
    {"role": "user", "content": "Merci"},
]


def make(
    model: str, messages: list[dict[str, Any]] | None = None, headers: Any = None, **fields: Any
) -> Translation:
    body = {"model": model, "messages": messages or [{"role": "user", "content": "Hello"}], **fields}
    return translate(
        orjson.dumps(body), headers if headers is not None else [("Authorization", "Bearer sk-1")]
    )


def native(translation: Translation) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(translation.native.body)
    return body


def completion(translation: Translation, native_body: Any, status: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(translation.response(status, orjson.dumps(native_body)))
    if 200 <= status < 300:
        ChatCompletion.model_validate(out)
    return out


def run_stream(translation: Translation, raw: bytes, size: int = 7) -> tuple[list[dict[str, Any]], bytes]:
    """Feed `raw` in `size`-byte pieces; (the chunk objects, the whole output)."""
    stream = translation.stream()
    out = b"".join(stream.feed(raw[i : i + size]) for i in range(0, len(raw), size)) + stream.close()
    assert out.endswith(b"data: [DONE]\n\n"), out[-200:]
    events = [block for block in out.decode().split("\n\n") if block]
    assert all(event.startswith("data: ") for event in events), events
    chunks = [json.loads(event[6:]) for event in events[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk"
    assert len({c["id"] for c in chunks}) == 1, "one id for the whole stream"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    return chunks, out


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def tool_calls_of(chunks: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Tool calls assembled from their deltas, as a client does."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for delta in choice["delta"].get("tool_calls") or []:
                call = calls.setdefault(delta["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.get("id") or ""
                call["name"] += (delta.get("function") or {}).get("name") or ""
                call["arguments"] += (delta.get("function") or {}).get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def finish_reasons(chunks: list[dict[str, Any]]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]


def sse(*events: tuple[str | None, Any], newline: str = "\n") -> bytes:
    """SSE bytes of (event name or None, data object or raw string) pairs."""
    out = ""
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out += (f"event: {name}{newline}" if name else "") + f"data: {payload}{newline}{newline}"
    return out.encode()


def assert_openai_error(body: bytes, message: str, error_type: str, code: int) -> None:
    assert orjson.loads(body) == {
        "error": {"message": message, "type": error_type, "param": None, "code": code}
    }


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


# ==== Google AI Studio ==============================================================================


def test_google_request_mapping() -> None:
    t = make(
        GEMINI, CONVERSATION, temperature=0.5, top_p=0.8, max_tokens=256, stop=["END"], seed=7,
        tools=[WEATHER_TOOL], tool_choice="required",
    )  # fmt: skip
    assert t.native.provider == "google-ai-studio"
    assert t.native.endpoint == "v1beta/models/gemini-2.0-flash:generateContent"
    assert t.native.query_string == ""
    assert native(t) == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in this image?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
                ],
            },
            {"role": "model", "parts": [{"text": "Un chat."}]},
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris, FR"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"temperature": 21, "unit": "C"},
                        }
                    },
                    {"text": "Merci"},
                ],
            },
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.8,
            "seed": 7,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Get the current weather in a given location",
                        "parametersJsonSchema": SCHEMA,
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }


def test_google_stream_endpoint_credentials_and_options() -> None:
    headers = [("authorization", "Bearer AIza-1"), ("x-custom", "1")]
    named = {"type": "function", "function": {"name": "get_weather"}}
    t = make(
        GEMINI, headers=headers, stream=True, response_format={"type": "json_object"},
        tools=[WEATHER_TOOL], tool_choice=named,
    )  # fmt: skip
    assert (t.native.endpoint, t.native.query_string) == (
        "v1beta/models/gemini-2.0-flash:streamGenerateContent",
        "alt=sse",
    )
    assert t.native.headers == [
        ("x-custom", "1"),
        ("x-goog-api-key", "AIza-1"),
        ("content-type", "application/json"),
    ]
    body = native(t)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]
    assert "systemInstruction" not in body
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert native(make(GEMINI, tools=[WEATHER_TOOL], tool_choice="none"))["toolConfig"] == {
        "functionCallingConfig": {"mode": "NONE"}
    }
    assert "generationConfig" not in native(make(GEMINI))


def test_google_plain_text_tool_result_is_wrapped() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Time?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "now", "arguments": ""}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
    ]
    contents = native(make(GEMINI, messages))["contents"]
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "now", "args": {}}}]}
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "now", "response": {"output": "noon"}}}],
    }


def test_google_gemini_3_replayed_function_calls_carry_the_stand_in_signature() -> None:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "now", "arguments": "{}"}} for i in (1, 2)
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
    ]
    parts = native(make("google-ai-studio/gemini-3-pro-preview", messages))["contents"][1]["parts"]
    assert parts == [
        {"functionCall": {"name": "now", "args": {}}, "thoughtSignature": "skip_thought_signature_validator"},
        {"functionCall": {"name": "now", "args": {}}},  # parallel calls: only the first is signed
    ]
    older = native(make(GEMINI, messages))["contents"][1]["parts"]
    assert all("thoughtSignature" not in part for part in older)


GEMINI_TEXT_RESPONSE = {  # the generateContent documentation's response shape
    "candidates": [
        {
            "content": {"parts": [{"text": "Once upon a time, in a land far away..."}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}],
        }
    ],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20},
    "modelVersion": "gemini-2.0-flash",
    "responseId": "mSbOaNq3LYmK_uMPg7WuyQk",
}


def test_google_response_text_and_usage() -> None:
    out = completion(make(GEMINI), GEMINI_TEXT_RESPONSE)
    assert out["id"] == "mSbOaNq3LYmK_uMPg7WuyQk"
    assert out["model"] == "gemini-2.0-flash"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Once upon a time, in a land far away...",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"] == {"prompt_tokens": 8, "completion_tokens": 12, "total_tokens": 20}


def test_google_response_function_call_and_thoughts() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking about it", "thought": True},
                        {"functionCall": {"name": "get_weather", "args": {"location": "Boston, MA"}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 30,
            "candidatesTokenCount": 10,
            "thoughtsTokenCount": 5,
            "totalTokenCount": 45,
        },
    }
    out = completion(make(GEMINI), body)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"location":"Boston, MA"}'}
    assert out["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 15,
        "total_tokens": 45,
        "completion_tokens_details": {"reasoning_tokens": 5},
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_google_finish_reasons(reason: str, finish: str) -> None:
    candidate = GEMINI_TEXT_RESPONSE["candidates"][0]  # type: ignore[index]
    body = {**GEMINI_TEXT_RESPONSE, "candidates": [{**candidate, "finishReason": reason}]}
    assert completion(make(GEMINI), body)["choices"][0]["finish_reason"] == finish


def test_google_error() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
        }
    }
    out = make(GEMINI).response(400, orjson.dumps(body))
    assert_openai_error(out, "API key not valid. Please pass a valid API key.", "invalid_request_error", 400)
    quota = [
        {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}
    ]
    assert_openai_error(
        make(GEMINI).response(429, orjson.dumps(quota)),
        "Resource has been exhausted",
        "rate_limit_error",
        429,
    )


def _gemini_event(
    parts: list[dict[str, Any]], finish: str | None, prompt: int, candidates: int
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.0-flash",
        "responseId": "r-1",
    }


# streamGenerateContent?alt=sse: each event a whole GenerateContentResponse, CRLF-terminated.
GEMINI_TEXT_STREAM = sse(
    (None, _gemini_event([{"text": "The quick"}], None, 8, 2)),
    (None, _gemini_event([{"text": " brown fox jumps"}], None, 8, 5)),
    (None, _gemini_event([{"text": " over the lazy dog ✓"}], "STOP", 8, 10)),
    newline="\r\n",
)


@pytest.mark.parametrize("size", [1, 7, 13, 100_000])
def test_google_stream_text(size: int) -> None:
    chunks, _ = run_stream(
        make(GEMINI, stream=True, stream_options={"include_usage": True}), GEMINI_TEXT_STREAM, size
    )
    assert text_of(chunks) == "The quick brown fox jumps over the lazy dog ✓"
    assert chunks[0]["id"] == "r-1"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 8, "completion_tokens": 10, "total_tokens": 18}


def test_google_stream_function_calls() -> None:
    raw = sse(
        (None, _gemini_event([{"text": "Checking."}], None, 20, 2)),
        (None, _gemini_event([
            {"functionCall": {"name": "get_weather", "args": {"location": "Boston"}}},
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}},
        ], "STOP", 20, 12)),
        newline="\r\n",
    )  # fmt: skip
    chunks, _ = run_stream(make(GEMINI, stream=True), raw)
    assert text_of(chunks) == "Checking."
    calls = tool_calls_of(chunks)
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("get_weather", '{"location":"Boston"}'),
        ("get_weather", '{"location":"Paris"}'),
    ]
    assert all(c["id"].startswith("call_") for c in calls) and calls[0]["id"] != calls[1]["id"]
    assert finish_reasons(chunks) == ["tool_calls"]
    assert all("usage" not in c for c in chunks)


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


# ==== robustness ===================================================================================

ODD_DOCUMENTS = [
    b"not json",
    b"[1, 2]",
    b'{"type": "message_start", "message": "oops"}',
    b'{"type": "content_block_start", "index": 0, "content_block": [1]}',
    b'{"type": "content_block_start", "index": 5, "content_block": {"type": "tool_use", "name": 1}}',
    b'{"type": "content_block_delta", "index": 5, "delta": {"type": "input_json_delta", "partial_json": 1}}',
    b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 1}}',
    b'{"type": "message_delta", "delta": null, "usage": {"output_tokens": "many"}}',
    b'{"candidates": [1, {"content": "x"}, {"content": {"parts": [null, {"functionCall": {"args": 5}}]}}]}',
    b'{"candidates": "none", "usageMetadata": [], "promptFeedback": 3}',
    b'{"response": {"json": true}, "tool_calls": [null, {"name": 3}, {"function": "f"}], "usage": 1}',
    b'{"choices": [{"delta": {"content": 5, "tool_calls": [1]}}]}',
    b'{"choices": "x", "usage": {"prompt_tokens": 2}}',
]


@pytest.mark.parametrize("model", [CLAUDE, GEMINI, LLAMA])
def test_streams_survive_odd_documents(model: str) -> None:
    raw = sse(*((None, doc.decode()) for doc in ODD_DOCUMENTS), ("message_start", "{"))
    chunks, _ = run_stream(
        make(model, stream=True, stream_options={"include_usage": True}), raw + b"data: {", 3
    )
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


@pytest.mark.parametrize("model", [CLAUDE, GEMINI, LLAMA])
@pytest.mark.parametrize("document", ODD_DOCUMENTS)
def test_responses_survive_odd_documents(model: str, document: bytes) -> None:
    out = orjson.loads(make(model).response(200, document))
    assert "choices" in out or "error" in out


# ==== invalid requests ==============================================================================

BAD_ARGUMENTS = {"name": "f", "arguments": "{oops"}


def _image_message(role: str, url: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "image_url", "image_url": {"url": url}}]}


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (CLAUDE, {"messages": [_image_message("user", "ftp://x/y.png")]}),
        (CLAUDE, {"messages": [_image_message("user", "data:image/png,abc")]}),
        (CLAUDE, {"n": 2}),
        (CLAUDE, {"max_tokens": 0}),
        (CLAUDE, {"stop": 5}),
        (CLAUDE, {"tools": [{"type": "code_interpreter"}]}),
        (
            CLAUDE,
            {"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": BAD_ARGUMENTS}]}]},
        ),
        (CLAUDE, {"messages": [{"role": "tool", "content": "x"}]}),
        (CLAUDE, {"messages": [{"role": "wizard", "content": "x"}]}),
        (GEMINI, {"messages": [{"role": "tool", "tool_call_id": "unknown", "content": "x"}]}),
        (GEMINI, {"messages": [_image_message("system", "https://x/y.png")]}),
        ("google-ai-studio/../../v1/files", {}),
        (LLAMA, {"temperature": "hot"}),
        ("workers-ai/@cf/x?y=1", {}),
    ],
)
def test_invalid_requests_are_compat_errors(model: str, fields: dict[str, Any]) -> None:
    with pytest.raises(CompatRequestError):
        make(model, **fields)


def test_unknown_prefix_is_unknown_provider() -> None:
    with pytest.raises(UnknownProvider):
        make("nope/model")
