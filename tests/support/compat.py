"""Shared pieces of the compat translator golden tests: model prefixes, a conversation that
exercises every mapping, and helpers that run a translation and validate its output with the
official `openai` SDK's models."""

from __future__ import annotations

import json
from typing import Any

import orjson
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.providers.compat.base import Translation
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
