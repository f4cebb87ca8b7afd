"""The provider wire formats the fake upstream speaks: OpenAI chat completions and embeddings,
Anthropic messages, Google AI Studio and Workers AI, as JSON bodies and SSE streams, plus the
recorded-request type and provider-style error bodies."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GOOGLE_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<action>generateContent|streamGenerateContent)$")


# --------------------------------------------------------------------------------------------------
# Recorded requests and the mid-stream cut.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    seq: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    time: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def query_params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)


class ClientGone(Exception):
    """The client disconnected while the fake was waiting; nothing more to send."""


class UpstreamCut(Exception):
    """Raised inside the response to make uvicorn drop the connection mid-body (x-fake-cut-after)."""


class _HideCuts(logging.Filter):
    """uvicorn logs every exception escaping an app; the deliberate cuts are not worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, UpstreamCut)


_uvicorn_error_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _HideCuts) for f in _uvicorn_error_logger.filters):
    _uvicorn_error_logger.addFilter(_HideCuts())


# --------------------------------------------------------------------------------------------------
# Helpers for the provider formats.
# --------------------------------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Split text into stream pieces, one per word, whose concatenation is exactly `text`.

    Each piece is a word with the whitespace that precedes it ("Hello", " from", " fake").
    """
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces


def count_words(value: Any) -> int:
    """Whitespace-separated words in every text of a provider request fragment.

    Understands plain strings, lists, OpenAI/Anthropic content parts (`{"type":"text","text":…}`),
    messages (`{"content": …}`) and Google contents (`{"parts": [{"text": …}]}`).
    """
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return len(value["text"].split())
        if "content" in value:
            return count_words(value["content"])
        if "parts" in value:
            return count_words(value["parts"])
    return 0


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse_data(obj: Any, newline: str = "\n") -> bytes:
    data = obj if isinstance(obj, str) else dumps(obj)
    return f"data: {data}{newline}{newline}".encode()


def sse_event(event: str, obj: Any) -> bytes:
    return f"event: {event}\ndata: {dumps(obj)}\n\n".encode()


_OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}

_ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

_GOOGLE_ERROR_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(style: str, status: int, message: str) -> dict[str, Any]:
    """The JSON error body a provider of that style sends for `status`."""
    if style == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if style == "google":
        gstatus = _GOOGLE_ERROR_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": gstatus}}
    if style == "workers_ai":
        return {
            "result": None,
            "success": False,
            "errors": [{"code": 3000 + status, "message": message}],
            "messages": [],
        }
    kind, code = _OPENAI_ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --------------------------------------------------------------------------------------------------
# Responses.
# --------------------------------------------------------------------------------------------------


@dataclass
class FakeResponse:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    events: list[bytes] | None = None  # a stream: one body chunk per event
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> FakeResponse:
        return cls(status=status, body=dumps(obj).encode())

    @classmethod
    def sse(cls, events: list[bytes]) -> FakeResponse:
        return cls(content_type="text/event-stream", events=events, headers=[("cache-control", "no-cache")])


class BadRequest(Exception):
    pass


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value


def openai_chat(rec: RecordedRequest, body: dict[str, Any], text: str) -> FakeResponse:
    model = body.get("model", "fake-model")
    prompt_tokens = count_words(body.get("messages"))
    completion_tokens = len(text.split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    created = int(time.time())

    def head(obj_type: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-fake{rec.seq}", "object": obj_type, "created": created, "model": model}

    if not body.get("stream"):
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return FakeResponse.json(
            {**head("chat.completion"), "choices": [choice], "usage": usage, "system_fingerprint": "fp_fake"}
        )

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
        obj: dict[str, Any] = {
            **head("chat.completion.chunk"),
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            obj["usage"] = None
        return sse_data(obj)

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [chunk({"content": piece}, None) for piece in split_words(text)]
    events.append(chunk({}, "stop"))
    if include_usage:
        final = {
            **head("chat.completion.chunk"),
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage,
        }
        events.append(sse_data(final))
    events.append(sse_data("[DONE]"))
    return FakeResponse.sse(events)


def openai_embeddings(body: dict[str, Any]) -> FakeResponse:
    inputs = body.get("input", "")
    items = inputs if isinstance(inputs, list) and all(isinstance(i, str) for i in inputs) else [inputs]
    data = [
        {"object": "embedding", "index": i, "embedding": [round(0.001 * (i + 1) * k, 6) for k in range(8)]}
        for i in range(len(items))
    ]
    tokens = count_words(items)
    return FakeResponse.json(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def anthropic_messages(rec: RecordedRequest, body: dict[str, Any], text: str) -> FakeResponse:
    model = body.get("model", "fake-model")
    input_tokens = count_words(body.get("system")) + count_words(body.get("messages"))
    output_tokens = len(text.split())
    msg_id = f"msg_fake{rec.seq}"
    if not body.get("stream"):
        return FakeResponse.json(
            {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            }
        )
    start = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events = [
        sse_event("message_start", {"type": "message_start", "message": start}),
        sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        sse_event("ping", {"type": "ping"}),
    ]
    events += [
        sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
        )
        for piece in split_words(text)
    ]
    events += [
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        sse_event("message_stop", {"type": "message_stop"}),
    ]
    return FakeResponse.sse(events)


def google_generate(rec: RecordedRequest, body: dict[str, Any], text: str) -> FakeResponse:
    match = GOOGLE_PATH.search(rec.path)
    assert match is not None
    model, action = match.group("model"), match.group("action")
    prompt_tokens = count_words(body.get("systemInstruction")) + count_words(body.get("contents"))
    response_id = f"fakeResponse{rec.seq}"

    def candidate(piece: str, finished: bool, completion_tokens: int) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        if finished:
            cand["finishReason"] = "STOP"
        return {
            "candidates": [cand],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            },
            "modelVersion": model,
            "responseId": response_id,
        }

    if action == "generateContent":
        return FakeResponse.json(candidate(text, True, len(text.split())))

    pieces = split_words(text) or [""]
    chunks, so_far = [], 0
    for i, piece in enumerate(pieces):
        so_far += len(piece.split())
        chunks.append(candidate(piece, i == len(pieces) - 1, so_far))
    if "sse" in parse_qs(rec.query).get("alt", []):
        # Google terminates SSE events with CRLF pairs and sends no [DONE].
        return FakeResponse.sse([sse_data(c, "\r\n") for c in chunks])
    # Without alt=sse the stream is one JSON array, sent element by element.
    parts = [("[" if i == 0 else ",\r\n") + json.dumps(c, indent=2) + "\n" for i, c in enumerate(chunks)]
    parts.append("]")
    return FakeResponse(content_type="application/json", events=[p.encode() for p in parts])


def workers_ai_run(body: dict[str, Any], text: str) -> FakeResponse:
    prompt_tokens = count_words(body.get("prompt")) + count_words(body.get("messages"))
    completion_tokens = len(text.split())
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if not body.get("stream"):
        return FakeResponse.json(
            {
                "result": {"response": text, "tool_calls": [], "usage": usage},
                "success": True,
                "errors": [],
                "messages": [],
            }
        )
    events = [sse_data({"response": piece, "p": "abcdefghijklmnop"}) for piece in split_words(text)]
    events.append(sse_data({"response": "", "usage": usage}))
    events.append(sse_data("[DONE]"))
    return FakeResponse.sse(events)
