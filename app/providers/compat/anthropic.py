"""`anthropic/{model}`: OpenAI chat completions ↔ the Anthropic Messages API (`POST v1/messages`),
streaming included (Anthropic's named events → `chat.completion.chunk`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.core.sse import SSEEvent, SSESplitter
from app.providers.compat import openai_format as oa
from app.providers.compat.base import CompatRequestError, NativeCall, StreamTranslator

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def build(model: str, request: dict[str, Any], headers: list[tuple[str, str]]) -> AnthropicTranslation:
    oa.single_choice(request, "anthropic")
    system, messages = _messages(request["messages"])
    body: dict[str, Any] = {"model": model, "max_tokens": oa.max_tokens(request) or DEFAULT_MAX_TOKENS}
    if system is not None:
        body["system"] = system
    body["messages"] = messages
    for key in ("temperature", "top_p"):
        if (value := oa.number(request, key)) is not None:
            body[key] = value
    if stop := oa.stop_sequences(request):
        body["stop_sequences"] = stop
    if tools := oa.function_tools(request, "input_schema"):
        body["tools"] = tools
        if choice := _tool_choice(request):
            body["tool_choice"] = choice
    if isinstance(request.get("user"), str):
        body["metadata"] = {"user_id": request["user"]}
    if request.get("stream") is True:
        body["stream"] = True
    api_key = oa.header(headers, "x-api-key") or oa.bearer(headers)
    add = [("anthropic-version", ANTHROPIC_VERSION), *([("x-api-key", api_key)] if api_key else [])]
    forwarded = oa.native_headers(headers, drop=("authorization",), add=add)
    native = NativeCall("anthropic", "v1/messages", orjson.dumps(body), forwarded)
    return AnthropicTranslation(native, model, oa.include_usage(request))


def _tool_choice(request: dict[str, Any]) -> dict[str, Any] | None:
    choice = oa.tool_choice(request)
    mapped: dict[str, Any] | None = None
    if choice is not None:
        kind, name = choice
        types = {"none": "none", "auto": "auto", "required": "any", "function": "tool"}
        mapped = {"type": types[kind], **({"name": name} if name else {})}
    if request.get("parallel_tool_calls") is False and (mapped is None or mapped["type"] != "none"):
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    return mapped


def _messages(items: list[dict[str, Any]]) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(system, messages): system/developer messages lifted out, tool results moved into user turns,
    consecutive turns of the same role merged (Anthropic requires alternation)."""
    system: list[str] = []
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in items:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := oa.text_of(content):
                system.append(text)
            continue
        if role == "user":
            blocks = [_block(part) for part in oa.parts(content)]
        elif role == "assistant":
            blocks = [{"type": "text", "text": oa.part_text(part)} for part in oa.parts(content)]
            blocks += [
                {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
                for call_id, name, arguments in oa.tool_calls_of(message)
            ]
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise CompatRequestError("Tool messages need a 'tool_call_id'")
            blocks = [{"type": "tool_result", "tool_use_id": call_id, "content": oa.text_of(content)}]
            role = "user"
        else:
            raise CompatRequestError(f"Unsupported message role: {str(role)[:40]!r}")
        blocks = [b for b in blocks if b["type"] != "text" or b["text"]]  # no empty text blocks
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((str(role), blocks))
    messages = [
        {
            "role": role,
            "content": blocks[0]["text"] if len(blocks) == 1 and blocks[0]["type"] == "text" else blocks,
        }
        for role, blocks in turns
    ]
    if not system:
        return None, messages
    return (system[0] if len(system) == 1 else [{"type": "text", "text": t} for t in system]), messages


def _block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        is_base64, media_type, data = oa.image_source(part)
        if is_base64:
            return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
        return {"type": "image", "source": {"type": "url", "url": data}}
    return {"type": "text", "text": oa.part_text(part)}


def _usage(block: Any) -> dict[str, Any]:
    cached = oa.count(block, "cache_read_input_tokens")
    prompt = oa.count(block, "input_tokens") + oa.count(block, "cache_creation_input_tokens") + cached
    return oa.usage(prompt, oa.count(block, "output_tokens"), cached=cached)


def openai_error_from_anthropic(status: int, body: bytes) -> bytes:
    document = oa.loads(body)
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return oa.error(status, error.get("message"), error.get("type"), body)
    return oa.error(status, None, None, body)


@dataclass(slots=True)
class AnthropicTranslation:
    native: NativeCall
    model: str
    include_usage: bool

    def response(self, status: int, body: bytes) -> bytes:
        document = oa.loads(body)
        if not 200 <= status < 300 or not isinstance(document, dict):
            return openai_error_from_anthropic(status, body)
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in oa.objects(document.get("content")):
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_use":
                call_id = block.get("id") or oa.new_call_id()
                calls.append(oa.tool_call(call_id, str(block.get("name", "")), block.get("input")))
        finish = FINISH_REASONS.get(str(document.get("stop_reason")), "stop")
        choice = oa.message_choice(0, "".join(texts), calls, finish)
        response_id = document.get("id") or oa.new_id()
        model = document.get("model") or self.model
        return oa.completion(response_id, model, [choice], _usage(document.get("usage")))

    def stream(self) -> StreamTranslator:
        return AnthropicStream(self.model, self.include_usage)


class AnthropicStream:
    """message_start → role chunk; text_delta → content; tool_use block start → tool call with id
    and name; input_json_delta → its arguments; message_delta → finish reason and output tokens."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._splitter = SSESplitter()
        self._out = oa.ChunkWriter(model, include_usage)
        self._tools: dict[Any, int] = {}  # content block index -> tool call index
        self._finish = "stop"
        self._usage: dict[str, int] = {}

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._splitter.feed(chunk))

    def close(self) -> bytes:
        out = b"".join(self._event(event) for event in self._splitter.close())
        return out + self._out.finish({0: self._finish}, _usage(self._usage))

    def _absorb(self, block: Any) -> None:
        if isinstance(block, dict):
            for key, value in block.items():  # later reports win, but a 0 never hides a count
                if isinstance(value, int) and (value > 0 or key not in self._usage):
                    self._usage[key] = value

    def _event(self, event: SSEEvent) -> bytes:
        document = oa.loads(event.data)
        if not isinstance(document, dict) or self._out.done:
            return b""
        kind = document.get("type") or event.event
        if kind == "message_start":
            message = oa.obj(document.get("message"))
            self._out.adopt(message.get("id"), message.get("model"))
            self._absorb(message.get("usage"))
            return self._out.start()
        if kind == "content_block_start":
            block = oa.obj(document.get("content_block"))
            if block.get("type") == "tool_use":
                index = self._tools[document.get("index")] = len(self._tools)
                call_id = block.get("id") or oa.new_call_id()
                return self._out.tool_call(index, call_id, str(block.get("name", "")))
            return self._out.text(block.get("text") or "") if block.get("type") == "text" else b""
        if kind == "content_block_delta":
            delta = oa.obj(document.get("delta"))
            if delta.get("type") == "text_delta":
                return self._out.text(str(delta.get("text") or ""))
            tool = self._tools.get(document.get("index"))
            partial = delta.get("partial_json")
            if (
                delta.get("type") == "input_json_delta"
                and isinstance(partial, str)
                and partial
                and tool is not None
            ):
                return self._out.tool_arguments(tool, partial)
            return b""
        if kind == "message_delta":
            reason = oa.obj(document.get("delta")).get("stop_reason")
            self._finish = FINISH_REASONS.get(str(reason), self._finish)
            self._absorb(document.get("usage"))
            return b""
        if kind == "message_stop":
            return self._out.finish({0: self._finish}, _usage(self._usage))
        if kind == "error":
            error = oa.obj(document.get("error"))
            status = 529 if error.get("type") == "overloaded_error" else 500
            return self._out.error(status, error.get("message"), error.get("type"))
        return b""
