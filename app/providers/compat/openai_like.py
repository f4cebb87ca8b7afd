"""Providers that already speak OpenAI chat completions: strip the prefix, pass everything else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.providers.compat.base import NativeCall, StreamTranslator

# compat prefix -> (native slug, chat completions endpoint below that provider's base)
OPENAI_LIKE: dict[str, tuple[str, str]] = {
    "openai": ("openai", "chat/completions"),
    "groq": ("groq", "chat/completions"),
    "mistral": ("mistral", "v1/chat/completions"),
    "cohere": ("cohere", "compatibility/v1/chat/completions"),  # Cohere's OpenAI-compatible API
    "deepseek": ("deepseek", "chat/completions"),
    "perplexity": ("perplexity-ai", "chat/completions"),
    "grok": ("grok", "chat/completions"),
    "cerebras": ("cerebras", "chat/completions"),
    "openrouter": ("openrouter", "chat/completions"),
}


class PassThroughStream:
    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def close(self) -> bytes:
        return b""


@dataclass(slots=True)
class OpenAILike:
    native: NativeCall

    def response(self, status: int, body: bytes) -> bytes:
        return body

    def stream(self) -> StreamTranslator:
        return PassThroughStream()


def build(
    slug: str, endpoint: str, model: str, request: dict[str, Any], headers: list[tuple[str, str]]
) -> OpenAILike:
    body = orjson.dumps({**request, "model": model})
    return OpenAILike(NativeCall(slug, endpoint, body, headers))
