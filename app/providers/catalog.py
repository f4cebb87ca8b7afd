"""Every provider of providers.md, declared as data, and the registry lookup."""

from __future__ import annotations

import re

from app.core.errors import UnknownProvider
from app.providers.base import Provider, template_part

_BEARER = ("authorization",)


def _azure(endpoint: str) -> tuple[str, str]:
    (resource, deployment), rest = template_part(endpoint, "azure-openai", 2)
    return f"https://{resource}.openai.azure.com/openai/deployments/{deployment}", rest


def _bedrock(endpoint: str) -> tuple[str, str]:
    (service, region), rest = template_part(endpoint, "aws-bedrock", 2)
    return f"https://{service}.{region}.amazonaws.com", rest


_VERTEX_REGION = re.compile(r"locations/([a-z0-9-]+)/")


def _vertex(endpoint: str) -> tuple[str, str]:
    match = _VERTEX_REGION.search(endpoint)
    region = match.group(1) if match else "us-central1"
    host = "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
    return f"https://{host}", endpoint


PROVIDERS: dict[str, Provider] = {
    p.slug: p
    for p in (
        Provider(
            "workers-ai",
            "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run",
            model_in_path=True,
        ),
        Provider("openai", "https://api.openai.com/v1", strip_v1=True),
        Provider(
            "azure-openai",
            "",
            ("api-key", "authorization"),
            url_builder=_azure,
            template_names=("resource", "deployment"),
        ),
        Provider("anthropic", "https://api.anthropic.com", ("x-api-key", "authorization")),
        Provider(
            "google-ai-studio",
            "https://generativelanguage.googleapis.com",
            ("x-goog-api-key",),
            model_in_path=True,
        ),
        Provider("google-vertex-ai", "", _BEARER, model_in_path=True, url_builder=_vertex),
        Provider(
            "aws-bedrock",
            "",
            ("authorization", "x-amz-security-token"),
            model_in_path=True,
            url_builder=_bedrock,
        ),
        Provider("mistral", "https://api.mistral.ai"),
        Provider("groq", "https://api.groq.com/openai/v1"),
        Provider("cohere", "https://api.cohere.ai", strip_v1=True),
        Provider("perplexity-ai", "https://api.perplexity.ai"),
        Provider("deepseek", "https://api.deepseek.com"),
        Provider("grok", "https://api.x.ai/v1", strip_v1=True),
        Provider("cerebras", "https://api.cerebras.ai/v1"),
        Provider("openrouter", "https://openrouter.ai/api/v1", strip_v1=True),
        Provider("huggingface", "https://api-inference.huggingface.co/models", model_in_path=True),
        Provider("replicate", "https://api.replicate.com/v1"),
        Provider("elevenlabs", "https://api.elevenlabs.io", ("xi-api-key",)),
        Provider("cartesia", "https://api.cartesia.ai", ("x-api-key",), strip_v1=True),
        Provider("fal", "https://fal.run"),
    )
}


def get_provider(slug: str) -> Provider:
    provider = PROVIDERS.get(slug)
    if provider is None:
        raise UnknownProvider(f"Unknown provider: {slug[:64]}")
    return provider
