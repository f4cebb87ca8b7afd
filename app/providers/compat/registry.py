"""Which translation serves a `{prefix}/{model}`: OpenAI-compatible providers pass through, the
others are translated both ways by their own module."""

from __future__ import annotations

from app.core.errors import UnknownProvider
from app.providers.compat import anthropic, google, openai_like, workers_ai
from app.providers.compat.base import Builder, Translation, parse_request

# Translated providers: prefix -> builder. Each module owns its request/response/stream mapping.
TRANSLATED: dict[str, Builder] = {
    "anthropic": anthropic.build,
    "google-ai-studio": google.build,
    "workers-ai": workers_ai.build,
}


def translate(body: bytes, headers: list[tuple[str, str]]) -> Translation:
    prefix, model, request = parse_request(body)
    if prefix in openai_like.OPENAI_LIKE:
        slug, endpoint = openai_like.OPENAI_LIKE[prefix]
        return openai_like.build(slug, endpoint, model, request, headers)
    if prefix.startswith("custom-"):  # custom providers speak OpenAI; the pipeline resolves the slug
        return openai_like.build(prefix, "chat/completions", model, request, headers)
    builder = TRANSLATED.get(prefix)
    if builder is None:
        raise UnknownProvider(f"Unknown compat model prefix: {prefix[:64]}")
    return builder(model, request, headers)
