"""Golden tests of the Google AI Studio compat translation (app/providers/compat/google.py), from
the generateContent documentation's request, response and SSE shapes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support.compat import (
    CONVERSATION,
    GEMINI,
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
