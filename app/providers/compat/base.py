"""The OpenAI-compatible endpoint (`compat`): one chat-completions format in and out for every
provider. A `Translation` turns the OpenAI-format step into the provider's native call and the
native response (body or stream) back into OpenAI format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from app.core.errors import GatewayError


class CompatRequestError(GatewayError):
    """A body that is not a valid chat-completions request: answered in OpenAI's error format."""

    code, status, default_message = 2010, 400, "Invalid chat completions request"


class StreamTranslator(Protocol):
    """Native SSE bytes in, OpenAI `chat.completion.chunk` SSE bytes out."""

    def feed(self, chunk: bytes) -> bytes: ...

    def close(self) -> bytes:
        """Whatever ends the OpenAI stream (final chunks, usage, `data: [DONE]`)."""
        ...


@dataclass(slots=True)
class NativeCall:
    provider: str  # native provider slug
    endpoint: str
    body: bytes
    headers: list[tuple[str, str]]
    query_string: str = ""


class Translation(Protocol):
    native: NativeCall

    def response(self, status: int, body: bytes) -> bytes:
        """A native JSON body (success or error) as OpenAI JSON (error object for non-2xx)."""
        ...

    def stream(self) -> StreamTranslator: ...


# prefix -> builder(model, OpenAI request dict, client headers) -> Translation
Builder = Callable[[str, dict[str, Any], list[tuple[str, str]]], Translation]


def openai_error(status: int, message: str, error_type: str = "invalid_request_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": error_type, "param": None, "code": status}})


def parse_request(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(prefix, model, request) from an OpenAI chat-completions body with `model: prefix/model`."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CompatRequestError("Request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise CompatRequestError("Request body must be a JSON object")
    model = request.get("model")
    if not isinstance(model, str) or "/" not in model:
        raise CompatRequestError("'model' must be a string of the form '{provider}/{model}'")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise CompatRequestError("'messages' must be a non-empty array of message objects")
    prefix, _, name = model.partition("/")
    return prefix, name, request
