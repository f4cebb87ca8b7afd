"""The fake's OpenAI Responses API (`POST …/responses`): OpenAI's and Workers AI's shape, a body or
a stream of typed events (`response.created`, `response.output_text.delta`, `response.completed`)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support.fake_providers import FakeResponse, RecordedRequest, count_words, split_words


def _sse(event: str, obj: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **obj})}\n\n".encode()


def openai_responses(rec: RecordedRequest, body: dict[str, Any], text: str) -> FakeResponse:
    input_tokens = count_words(body.get("input")) + count_words(body.get("instructions"))
    output_tokens = len(text.split())
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    message = {
        "type": "message", "id": f"msg_fake{rec.seq}", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }  # fmt: skip
    response: dict[str, Any] = {
        "id": f"resp_fake{rec.seq}", "object": "response", "created_at": int(time.time()),
        "status": "completed", "model": body.get("model", "fake-model"), "output": [message],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": usage,
    }  # fmt: skip
    if not body.get("stream"):
        return FakeResponse.json(response)
    events = [
        _sse("response.created", {"response": {**response, "status": "in_progress", "output": []}}),
        _sse("response.output_item.added", {"output_index": 0, "item": {**message, "content": []}}),
        _sse("response.content_part.added", {
            "item_id": message["id"], "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        }),
    ]  # fmt: skip
    events += [
        _sse("response.output_text.delta", {"item_id": message["id"], "output_index": 0, "content_index": 0,
                                            "delta": piece})
        for piece in split_words(text)
    ]  # fmt: skip
    events.append(_sse("response.completed", {"response": response}))
    return FakeResponse.sse(events)
