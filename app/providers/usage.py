"""Token usage and model names read from provider bodies and stream events.

One reader serves every format, because the formats differ only in where they put the numbers:
OpenAI-style `usage.prompt_tokens/completion_tokens`, Anthropic `usage.input_tokens/output_tokens`
(in `message_start.message.usage` and `message_delta.usage` when streaming), Workers AI
`result.usage` (or top-level `usage` in stream events), Google `usageMetadata`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

_IN_KEYS = ("prompt_tokens", "input_tokens", "promptTokenCount")
_OUT_KEYS = ("completion_tokens", "output_tokens", "candidatesTokenCount")


@dataclass(slots=True)
class Usage:
    tokens_in: int | None = None
    tokens_out: int | None = None

    def absorb(self, document: Any) -> None:
        """Take whatever token counts `document` reports; later reports win (Anthropic streams send
        input tokens first and output tokens last)."""
        if isinstance(document, list):  # Google's streamGenerateContent without alt=sse
            for item in document:
                self.absorb(item)
            return
        if not isinstance(document, dict):
            return
        for holder in (document, document.get("result"), document.get("message"), document.get("response")):
            if not isinstance(holder, dict):
                continue
            for key in ("usage", "usageMetadata"):
                block = holder.get(key)
                if isinstance(block, dict):
                    self._take(block)

    def _take(self, block: dict[str, Any]) -> None:
        for key in _IN_KEYS:
            value = block.get(key)
            if (isinstance(value, int) and value > 0) or (value == 0 and self.tokens_in is None):
                self.tokens_in = value
                break
        for key in _OUT_KEYS:
            value = block.get(key)
            if (isinstance(value, int) and value > 0) or (value == 0 and self.tokens_out is None):
                self.tokens_out = value
                break


def loads_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None


def usage_from_body(raw: bytes) -> Usage:
    usage = Usage()
    if b"sage" in raw:  # "usage" or "usageMetadata": skip the parse when neither is there
        usage.absorb(loads_or_none(raw))
    return usage


def model_from_request(body: bytes, endpoint: str, model_in_path: bool) -> str | None:
    if model_in_path:
        return _model_from_path(endpoint)
    if b'"model"' not in body:
        return None
    document = loads_or_none(body)
    model = document.get("model") if isinstance(document, dict) else None
    return model[:255] if isinstance(model, str) else None


def _model_from_path(endpoint: str) -> str | None:
    # Google: `v1beta/models/gemini-1.5-flash:generateContent`; Bedrock: `model/{id}/invoke`.
    for marker in ("models/", "model/"):
        index = endpoint.find(marker)
        if index >= 0:
            tail = endpoint[index + len(marker) :]
            return tail.split(":", 1)[0].split("/", 1)[0][:255] or None
    return endpoint[:255] or None  # Workers AI: the endpoint is the model
