"""`workers-ai/@cf/…`: OpenAI chat completions ↔ the Workers AI run API (`POST …/ai/run/{model}`
with `{"messages": […]}`; answers `{"result": {"response", "tool_calls", "usage"}}`, streams
`data: {"response": "…"}` events ending with a usage event and `data: [DONE]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.sse import SSEEvent, SSESplitter
from app.providers.compat import openai_format as oa
from app.providers.compat.base import CompatRequestError, NativeCall, StreamTranslator

_MODEL = re.compile(r"^@?[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+){0,4}$")
_PASSED = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")


def build(model: str, request: dict[str, Any], headers: list[tuple[str, str]]) -> WorkersAITranslation:
    if not _MODEL.match(model):
        raise CompatRequestError("Invalid Workers AI model name (e.g. @cf/meta/llama-3.1-8b-instruct)")
    oa.single_choice(request, "workers-ai")
    body: dict[str, Any] = {"messages": _messages(request["messages"])}
    if (limit := oa.max_tokens(request)) is not None:
        body["max_tokens"] = limit
    for key in _PASSED:
        if (value := oa.number(request, key)) is not None:
            body[key] = value
    if tools := oa.function_tools(request):
        body["tools"] = [{"type": "function", "function": tool} for tool in tools]
    if isinstance(request.get("response_format"), dict) and request["response_format"].get("type") != "text":
        body["response_format"] = request["response_format"]
    if request.get("stream") is True:
        body["stream"] = True
    native = NativeCall("workers-ai", model, orjson.dumps(body), oa.native_headers(headers))
    return WorkersAITranslation(native, model, oa.include_usage(request))


def _messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name
    for message in items:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": oa.text_of(content)})
        elif role == "user":
            parts = oa.parts(content)
            text_only = all(part.get("type") == "text" for part in parts)
            out.append({"role": "user", "content": oa.text_of(parts) if text_only else parts})
        elif role == "assistant":
            mapped: dict[str, Any] = {"role": "assistant", "content": oa.text_of(content)}
            calls = oa.tool_calls_of(message)
            if calls:
                mapped["tool_calls"] = [oa.tool_call(call_id, name, args) for call_id, name, args in calls]
                names.update({call_id: name for call_id, name, _ in calls})
            out.append(mapped)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise CompatRequestError("Tool messages need a 'tool_call_id'")
            mapped = {"role": "tool", "content": oa.text_of(content), "tool_call_id": call_id}
            if call_id in names:
                mapped["name"] = names[call_id]
            out.append(mapped)
        else:
            raise CompatRequestError(f"Unsupported message role: {str(role)[:40]!r}")
    return out


def _tool_call(call: Any) -> dict[str, Any] | None:
    """A tool call in either Workers AI shape: {name, arguments} or OpenAI's {id, function}."""
    if not isinstance(call, dict):
        return None
    function: Any = call.get("function") if isinstance(call.get("function"), dict) else call
    name = function.get("name")
    if not isinstance(name, str):
        return None
    return oa.tool_call(call.get("id") or oa.new_call_id(), name, function.get("arguments"))


def _text(response: Any) -> str:
    if response is None or isinstance(response, str):
        return response or ""
    return orjson.dumps(response).decode()  # JSON mode answers an object


def _usage(block: Any) -> dict[str, Any]:
    return oa.usage(oa.count(block, "prompt_tokens"), oa.count(block, "completion_tokens"))


def _error(status: int, document: Any, raw: bytes) -> bytes:
    errors = document.get("errors") if isinstance(document, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    message = first.get("message") or (document.get("error") if isinstance(document, dict) else None)
    return oa.error(status, message, None, raw)


@dataclass(slots=True)
class WorkersAITranslation:
    native: NativeCall
    model: str
    include_usage: bool

    def response(self, status: int, body: bytes) -> bytes:
        document = oa.loads(body)
        if not 200 <= status < 300 or not isinstance(document, dict) or document.get("success") is False:
            return _error(status if status >= 400 else 502, document, body)
        result: Any = document.get("result") if isinstance(document.get("result"), dict) else document
        if isinstance(result.get("choices"), list):  # models whose run API already answers OpenAI format
            return orjson.dumps({**result, "usage": _usage(result.get("usage"))})
        calls = [c for c in map(_tool_call, result.get("tool_calls") or []) if c is not None]
        finish = "tool_calls" if calls else "stop"
        choice = oa.message_choice(0, _text(result.get("response")), calls, finish)
        return oa.completion(oa.new_id(), self.model, [choice], _usage(result.get("usage")))

    def stream(self) -> StreamTranslator:
        return WorkersAIStream(self.model, self.include_usage)


class WorkersAIStream:
    """`{"response": "…"}` events become content deltas, `tool_calls` whole tool calls; the usage
    event is kept for the end. OpenAI-style chunks (newer models) are rebuilt the same way."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._splitter = SSESplitter()
        self._out = oa.ChunkWriter(model, include_usage)
        self._tools = 0
        self._finish: str | None = None
        self._usage: Any = None

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._splitter.feed(chunk))

    def close(self) -> bytes:
        out = b"".join(self._event(event) for event in self._splitter.close())
        finish = "tool_calls" if self._tools else self._finish or "stop"
        return out + self._out.finish({0: finish}, _usage(self._usage))

    def _event(self, event: SSEEvent) -> bytes:
        document = oa.loads(event.data)  # `[DONE]` is no JSON: ignored, close() writes ours
        if not isinstance(document, dict) or self._out.done:
            return b""
        if isinstance(document.get("usage"), dict):
            self._usage = document["usage"]
        choices = document.get("choices")
        if isinstance(choices, list):
            choice = choices[0] if choices and isinstance(choices[0], dict) else {}
            self._finish = choice.get("finish_reason") or self._finish
            delta = oa.obj(choice.get("delta"))
            text, calls = delta.get("content"), delta.get("tool_calls") or []
            out = self._out.text(text if isinstance(text, str) else "")
            for call in calls:  # already OpenAI deltas: relayed with our indices kept in step
                if isinstance(call, dict):
                    self._tools = max(self._tools, int(call.get("index") or 0) + 1)
                    out += self._out.delta({"tool_calls": [call]})
            return out
        out = self._out.text(_text(document.get("response")))
        for call in filter(None, map(_tool_call, document.get("tool_calls") or [])):
            function = call["function"]
            out += self._out.tool_call(self._tools, call["id"], function["name"], function["arguments"])
            self._tools += 1
        return out
