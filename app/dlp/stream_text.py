"""The text of one SSE event of a streamed response, by provider shape: OpenAI deltas (content,
tool-call arguments), Anthropic `text_delta` / `input_json_delta`, Google candidates' parts,
Workers AI `response`, OpenAI Responses `delta`; any other event's raw data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from app.dlp.extract import Extracted, Place, from_document


def event_text(data: bytes) -> Extracted | None:
    if not data or data == b"[DONE]":
        return None
    if data[:1] == b"{":
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            extracted = from_document(document, _event_fields)
            return extracted if extracted.places else None
    return Extracted(data.decode("utf-8", "replace"))


def _event_fields(event: dict[str, Any]) -> Iterator[Place]:
    for choice in event.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                yield delta, "content"
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    yield function, "arguments"
        elif isinstance(choice, dict) and isinstance(choice.get("text"), str):
            yield choice, "text"
    delta = event.get("delta")
    if isinstance(delta, dict):
        for key in ("text", "partial_json"):
            if isinstance(delta.get(key), str):
                yield delta, key
    elif isinstance(delta, str):
        yield event, "delta"
    block = event.get("content_block")
    if isinstance(block, dict) and isinstance(block.get("text"), str):
        yield block, "text"
    for candidate in event.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in (content or {}).get("parts") or () if isinstance(content, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part, "text"
    if isinstance(event.get("response"), str):
        yield event, "response"
