"""`google-ai-studio/{model}`: OpenAI chat completions ↔ the Gemini API (`generateContent`, and
`streamGenerateContent?alt=sse` whose events are whole `GenerateContentResponse` objects)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.sse import SSEEvent, SSESplitter
from app.providers.compat import openai_format as oa
from app.providers.compat.base import CompatRequestError, NativeCall, StreamTranslator

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_MODEL = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_SIGNED_MODELS = re.compile(r"^gemini-(?:[3-9]|\d\d)")  # replayed function calls need a thoughtSignature
# Google's documented stand-in for a thought signature the client could not keep (OpenAI-format
# tool calls have no place for it).
SKIP_SIGNATURE = "skip_thought_signature_validator"
_CONFIG = {  # OpenAI request field -> generationConfig field
    "temperature": "temperature",
    "top_p": "topP",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
    "n": "candidateCount",
}


def build(model: str, request: dict[str, Any], headers: list[tuple[str, str]]) -> GoogleTranslation:
    model = model.removeprefix("models/")
    if not _MODEL.match(model):
        raise CompatRequestError("Invalid Google AI Studio model name")
    system, contents = _contents(request["messages"], bool(_SIGNED_MODELS.match(model)))
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    for field, native_field in _CONFIG.items():
        if (value := oa.number(request, field)) is not None:
            config[native_field] = value
    if (limit := oa.max_tokens(request)) is not None:
        config["maxOutputTokens"] = limit
    if stop := oa.stop_sequences(request):
        config["stopSequences"] = stop
    config.update(_response_format(request.get("response_format")))
    if config:
        body["generationConfig"] = config
    if declarations := oa.function_tools(request, "parametersJsonSchema"):
        body["tools"] = [{"functionDeclarations": declarations}]
        if (choice := oa.tool_choice(request)) is not None:
            kind, name = choice
            calling: dict[str, Any] = {"mode": {"none": "NONE", "auto": "AUTO"}.get(kind, "ANY")}
            if name:
                calling["allowedFunctionNames"] = [name]
            body["toolConfig"] = {"functionCallingConfig": calling}
    stream = request.get("stream") is True
    action = "streamGenerateContent" if stream else "generateContent"
    api_key = oa.header(headers, "x-goog-api-key") or oa.bearer(headers)
    add = [("x-goog-api-key", api_key)] if api_key else []
    forwarded = oa.native_headers(headers, drop=("authorization",), add=add)
    native = NativeCall(
        "google-ai-studio", f"v1beta/models/{model}:{action}", orjson.dumps(body), forwarded,
        "alt=sse" if stream else "",
    )  # fmt: skip
    return GoogleTranslation(native, model, oa.include_usage(request))


def _response_format(value: Any) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    schema = value.get("json_schema") if isinstance(value, dict) else None
    if kind == "json_schema" and isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
        return {"responseMimeType": "application/json", "responseJsonSchema": schema["schema"]}
    return {}


def _contents(items: list[dict[str, Any]], sign: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents): roles user/model, tool results as functionResponse
    parts of a user turn (named after the call they answer), same-role turns merged. With `sign`,
    the first function call of each assistant message carries the stand-in thought signature."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name
    for message in items:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if text := oa.text_of(content):
                system.append({"text": text})
            continue
        if role == "user":
            parts = [_part(part) for part in oa.parts(content)]
        elif role == "assistant":
            role = "model"
            parts = [{"text": oa.part_text(part)} for part in oa.parts(content)]
            for n, (call_id, name, arguments) in enumerate(oa.tool_calls_of(message)):
                names[call_id] = name
                signature = {"thoughtSignature": SKIP_SIGNATURE} if sign and n == 0 else {}
                parts.append({"functionCall": {"name": name, "args": arguments}, **signature})
        elif role == "tool":
            role = "user"
            called = names.get(str(message.get("tool_call_id"))) or message.get("name")
            if not isinstance(called, str):
                raise CompatRequestError("A tool message's 'tool_call_id' matches no earlier tool call")
            response = _tool_response(oa.text_of(content))
            parts = [{"functionResponse": {"name": called, "response": response}}]
        else:
            raise CompatRequestError(f"Unsupported message role: {str(role)[:40]!r}")
        parts = [p for p in parts if p.get("text", True)]  # no empty text parts
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})
    return system, turns


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        is_base64, media_type, data = oa.image_source(part)
        if is_base64:
            return {"inlineData": {"mimeType": media_type, "data": data}}
        return {"fileData": {"mimeType": media_type, "fileUri": data}}
    return {"text": oa.part_text(part)}


def _tool_response(text: str) -> dict[str, Any]:
    """`functionResponse.response` must be an object: a JSON object result is used as it is."""
    value = oa.loads(text.encode())
    return value if isinstance(value, dict) else {"output": text if value is None else value}


def _candidate(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """(text, tool calls) of a candidate; thought parts are left out."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            call_id = call.get("id") or oa.new_call_id()
            calls.append(oa.tool_call(call_id, str(call.get("name", "")), call.get("args")))
    return "".join(texts), calls


def _finish(reason: Any, has_calls: bool) -> str:
    if has_calls and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH_REASONS.get(str(reason), "stop")


def _usage(block: Any) -> dict[str, Any]:
    prompt = oa.count(block, "promptTokenCount") + oa.count(block, "toolUsePromptTokenCount")
    thoughts = oa.count(block, "thoughtsTokenCount")
    completion = oa.count(block, "candidatesTokenCount") + thoughts
    return oa.usage(prompt, completion, cached=oa.count(block, "cachedContentTokenCount"), reasoning=thoughts)


def _document(raw: bytes) -> Any:
    document = oa.loads(raw)
    return document[0] if isinstance(document, list) and document else document  # errors may be [{…}]


def _error(status: int, document: Any, raw: bytes) -> bytes:
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        kind = {"RESOURCE_EXHAUSTED": "rate_limit_error"}.get(str(error.get("status")))
        return oa.error(status, error.get("message"), kind, raw)
    return oa.error(status, None, None, raw)


@dataclass(slots=True)
class GoogleTranslation:
    native: NativeCall
    model: str
    include_usage: bool

    def response(self, status: int, body: bytes) -> bytes:
        document = _document(body)
        if not 200 <= status < 300 or not isinstance(document, dict) or "error" in document:
            return _error(status if status >= 400 else 502, document, body)
        choices = []
        for position, candidate in enumerate(oa.objects(document.get("candidates"))):
            text, calls = _candidate(candidate)
            finish = _finish(candidate.get("finishReason"), bool(calls))
            choices.append(oa.message_choice(candidate.get("index", position), text, calls, finish))
        if not choices:  # the prompt itself was blocked
            blocked = oa.obj(document.get("promptFeedback")).get("blockReason")
            choices.append(oa.message_choice(0, "", [], "content_filter" if blocked else "stop"))
        response_id = document.get("responseId") or oa.new_id()
        model = document.get("modelVersion") or self.model
        return oa.completion(response_id, model, choices, _usage(document.get("usageMetadata")))

    def stream(self) -> StreamTranslator:
        return GoogleStream(self.model, self.include_usage)


class GoogleStream:
    """Each event is a partial response: its text parts become content deltas, its functionCall
    parts whole tool calls; the last finishReason and usageMetadata end the stream."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self._splitter = SSESplitter()
        self._out = oa.ChunkWriter(model, include_usage)
        self._tools: dict[int, int] = {}  # choice index -> number of tool calls so far
        self._finish: dict[int, str] = {}
        self._usage: Any = None

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._splitter.feed(chunk))

    def close(self) -> bytes:
        out = b"".join(self._event(event) for event in self._splitter.close())
        reasons = {index: "stop" for index in self._tools} | self._finish
        return out + self._out.finish(reasons or {0: "stop"}, _usage(self._usage))

    def _event(self, event: SSEEvent) -> bytes:
        document = _document(event.data)
        if not isinstance(document, dict) or self._out.done:
            return b""
        error = document.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return self._out.error(code if isinstance(code, int) else 500, error.get("message"))
        self._out.adopt(document.get("responseId"), document.get("modelVersion"))
        if isinstance(document.get("usageMetadata"), dict):
            self._usage = document["usageMetadata"]
        out = b""
        for position, candidate in enumerate(oa.objects(document.get("candidates"))):
            index = candidate.get("index", position)
            text, calls = _candidate(candidate)
            out += self._out.text(text, index)
            seen = self._tools.setdefault(index, 0)
            for tool, call in enumerate(calls, seen):
                function = call["function"]
                out += self._out.tool_call(tool, call["id"], function["name"], function["arguments"], index)
            self._tools[index] = seen + len(calls)
            if candidate.get("finishReason"):
                self._finish[index] = _finish(candidate["finishReason"], self._tools[index] > 0)
        if not document.get("candidates") and oa.obj(document.get("promptFeedback")).get("blockReason"):
            self._finish[0] = "content_filter"
        return out
