"""Shared pieces of the translated compat providers (Anthropic, Google AI Studio, Workers AI):
reading an OpenAI chat-completions request, and writing OpenAI `chat.completion` bodies,
`chat.completion.chunk` SSE streams and error objects."""

from __future__ import annotations

import mimetypes
import time
import uuid
from typing import Any

import orjson

from app.providers.compat.base import CompatRequestError, openai_error

JSON = dict[str, Any]
HeaderPairs = list[tuple[str, str]]

# ---- request: headers ------------------------------------------------------------------------------

# Headers that describe the client's OpenAI-format request rather than the native call.
_NOT_NATIVE = frozenset({"content-type", "content-length", "accept", "host"})


def header(headers: HeaderPairs, name: str) -> str | None:
    name = name.lower()
    return next((value for key, value in headers if key.lower() == name), None)


def bearer(headers: HeaderPairs) -> str | None:
    """The token of an `Authorization: Bearer …` header."""
    scheme, _, token = (header(headers, "authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def native_headers(
    headers: HeaderPairs, drop: tuple[str, ...] = (), add: HeaderPairs | None = None
) -> HeaderPairs:
    """The client's headers for the native call: without `drop`, plus those of `add` the client did
    not send itself, and a JSON content type."""
    dropped = _NOT_NATIVE | {name.lower() for name in drop}
    kept = [(key, value) for key, value in headers if key.lower() not in dropped]
    present = {key.lower() for key, _ in kept}
    kept += [(key, value) for key, value in add or [] if key.lower() not in present]
    kept.append(("content-type", "application/json"))
    return kept


# ---- request: body ---------------------------------------------------------------------------------


def parts(content: Any) -> list[JSON]:
    """A message's content as OpenAI content parts (a string is one text part; empty is none)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return content
    raise CompatRequestError("Message 'content' must be a string or an array of content parts")


def part_text(part: JSON) -> str:
    text = part.get("text")
    if part.get("type") != "text" or not isinstance(text, str):
        raise CompatRequestError(f"Unsupported content part here: {str(part.get('type'))[:40]!r}")
    return text


def text_of(content: Any) -> str:
    """The text of a content that may only hold text (system, developer and tool messages)."""
    return "".join(part_text(part) for part in parts(content))


def image_source(part: JSON) -> tuple[bool, str, str]:
    """(is_base64, media type, base64 data or URL) of an `image_url` content part."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith("data:"):
        meta, comma, data = url[5:].partition(",")
        media_type, *params = meta.split(";")
        if comma and media_type and "base64" in params:
            return True, media_type, data
        raise CompatRequestError("Image data URLs must be of the form data:{media type};base64,{data}")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return False, mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg", url
    raise CompatRequestError("'image_url.url' must be an http(s) URL or a base64 data URL")


def parse_arguments(raw: Any) -> JSON:
    """The arguments of an assistant tool call (a JSON object encoded as a string) as an object."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise CompatRequestError("Tool call 'function.arguments' must be a JSON object")
    return value


def tool_calls_of(message: JSON) -> list[tuple[str, str, JSON]]:
    """(id, function name, arguments) of an assistant message's `tool_calls`."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise CompatRequestError("'tool_calls' must be an array")
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise CompatRequestError("Each tool call needs 'function.name'")
        call_id = call.get("id") if isinstance(call.get("id"), str) else new_call_id()
        out.append((call_id, function["name"], parse_arguments(function.get("arguments"))))
    return out


def function_tools(request: JSON, schema_key: str = "parameters") -> list[JSON]:
    """The request's tools as [{name, description?, <schema_key>: parameters schema}]."""
    tools = request.get("tools") or []
    if not isinstance(tools, list):
        raise CompatRequestError("'tools' must be an array")
    out = []
    for tool in tools:
        ok = isinstance(tool, dict) and tool.get("type", "function") == "function"
        function = tool.get("function") if ok else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise CompatRequestError("Each tool must be {'type': 'function', 'function': {'name': …}}")
        spec: JSON = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            spec["description"] = function["description"]
        spec[schema_key] = function.get("parameters") or {"type": "object", "properties": {}}
        out.append(spec)
    return out


def tool_choice(request: JSON) -> tuple[str, str | None] | None:
    """('none' | 'auto' | 'required' | 'function', function name), or None when not set."""
    choice = request.get("tool_choice")
    if choice is None:
        return None
    if choice in ("none", "auto", "required"):
        return choice, None
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return "function", function["name"]
    raise CompatRequestError("'tool_choice' must be none, auto, required or a named function")


def number(request: JSON, key: str) -> float | int | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CompatRequestError(f"'{key}' must be a number")
    return value


def max_tokens(request: JSON) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CompatRequestError(f"'{key}' must be a positive integer")
            return value
    return None


def stop_sequences(request: JSON) -> list[str] | None:
    stop = request.get("stop")
    if stop is None or isinstance(stop, str):
        return None if stop is None else [stop]
    if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        return stop or None
    raise CompatRequestError("'stop' must be a string or an array of strings")


def include_usage(request: JSON) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def single_choice(request: JSON, provider: str) -> None:
    if request.get("n") not in (None, 1):
        raise CompatRequestError(f"'n' other than 1 is not supported for {provider}")


# ---- response --------------------------------------------------------------------------------------


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def tool_call(call_id: str, name: str, arguments: Any) -> JSON:
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def message_choice(index: int, text: str, tool_calls: list[JSON], finish_reason: str) -> JSON:
    message: JSON = {"role": "assistant", "content": text if text or not tool_calls else None}
    message["refusal"] = None
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> JSON:
    out: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def count(block: Any, key: str) -> int:
    value = block.get(key) if isinstance(block, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def completion(response_id: str, model: str, choices: list[JSON], usage_block: JSON) -> bytes:
    return orjson.dumps(
        {
            "id": response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": usage_block,
        }
    )


def obj(value: Any) -> JSON:
    """`value` if it is a JSON object, else an empty one (for reading provider documents)."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> list[JSON]:
    """The JSON objects of `value` if it is an array, else none."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "unprocessable_entity_error",
    429: "rate_limit_error",
}


def error(status: int, message: Any, error_type: Any = None, raw: bytes = b"") -> bytes:
    """An upstream error as OpenAI's error object; without a message, the start of the raw body."""
    if not isinstance(message, str) or not message:
        message = raw[:500].decode("utf-8", "replace").strip() or f"Upstream error (HTTP {status})"
    if not isinstance(error_type, str) or not error_type:
        error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return openai_error(status, message, error_type)


# ---- response: streams -----------------------------------------------------------------------------


class ChunkWriter:
    """Writes one OpenAI `chat.completion.chunk` stream: a role chunk before each choice's first
    delta, the deltas, then finish chunks, the usage chunk (when asked for) and `[DONE]`."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = new_id()
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self.done = False
        self._started: set[int] = set()

    def adopt(self, response_id: Any, model: Any) -> None:
        """Take the native response id and model, if nothing was written yet."""
        if not self._started:
            self.id = response_id if isinstance(response_id, str) and response_id else self.id
            self.model = model if isinstance(model, str) and model else self.model

    def _chunk(self, choices: list[JSON], usage_block: JSON | None = None) -> bytes:
        chunk: JSON = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage_block is not None:
            chunk["usage"] = usage_block
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _choice(self, index: int, delta: JSON, finish_reason: str | None = None) -> bytes:
        return self._chunk(
            [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        )

    def start(self, index: int = 0) -> bytes:
        if index in self._started or self.done:
            return b""
        self._started.add(index)
        return self._choice(index, {"role": "assistant", "content": ""})

    def delta(self, delta: JSON, index: int = 0) -> bytes:
        return b"" if self.done else self.start(index) + self._choice(index, delta)

    def text(self, text: str, index: int = 0) -> bytes:
        return self.delta({"content": text}, index) if text else self.start(index)

    def tool_call(
        self, tool_index: int, call_id: str, name: str, arguments: str = "", index: int = 0
    ) -> bytes:
        call = {"index": tool_index, **tool_call(call_id, name, arguments)}
        return self.delta({"tool_calls": [call]}, index)

    def tool_arguments(self, tool_index: int, arguments: str, index: int = 0) -> bytes:
        return self.delta(
            {"tool_calls": [{"index": tool_index, "function": {"arguments": arguments}}]}, index
        )

    def finish(self, reasons: dict[int, str], usage_block: JSON) -> bytes:
        """Ends the stream (once): a finish chunk per choice, the usage chunk, `[DONE]`."""
        if self.done:
            return b""
        out = b"".join(self.start(i) + self._choice(i, {}, reason) for i, reason in sorted(reasons.items()))
        self.done = True
        if self.include_usage:
            out += self._chunk([], usage_block)
        return out + b"data: [DONE]\n\n"

    def error(self, status: int, message: Any, error_type: Any = None) -> bytes:
        """An error event inside the stream (as OpenAI sends it); nothing is written after it."""
        if self.done:
            return b""
        self.done = True
        return b"data: " + error(status, message, error_type) + b"\n\n"
