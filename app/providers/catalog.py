"""Every provider of providers.md, declared as data, and the registry lookup."""

from __future__ import annotations

import re

from app.core.errors import UnknownProvider
from app.providers.base import Provider, Template, leading_segments

_BEARER = ("authorization",)
_AZURE_NAMES = ("resource", "deployment")
_BEDROCK_NAMES = ("service", "region")
# The first `locations/{region}` of a Vertex path (`v1/projects/{project}/locations/{region}/…`).
_VERTEX_REGION = re.compile(r"(?:^|/)locations/([^/]*)")

AZURE = Template(
    split=lambda endpoint: leading_segments(endpoint, "azure-openai", _AZURE_NAMES),
    build=lambda v: f"https://{v['resource']}.openai.azure.com/openai/deployments/{v['deployment']}",
    host_suffix=".openai.azure.com",
)
BEDROCK = Template(
    split=lambda endpoint: leading_segments(endpoint, "aws-bedrock", _BEDROCK_NAMES),
    build=lambda v: f"https://{v['service']}.{v['region']}.amazonaws.com",
    host_suffix=".amazonaws.com",
)


def _vertex_region(endpoint: str) -> tuple[dict[str, str], str]:
    match = _VERTEX_REGION.search(endpoint)
    return {"region": match.group(1) if match else "us-central1"}, endpoint


def _vertex_base(values: dict[str, str]) -> str:
    region = values["region"]
    host = "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
    return f"https://{host}"


VERTEX = Template(split=_vertex_region, build=_vertex_base, host_suffix="aiplatform.googleapis.com")

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
            template=AZURE,
        ),
        Provider("anthropic", "https://api.anthropic.com", ("x-api-key", "authorization")),
        Provider(
            "google-ai-studio",
            "https://generativelanguage.googleapis.com",
            ("x-goog-api-key",),
            model_in_path=True,
        ),
        Provider("google-vertex-ai", "", _BEARER, model_in_path=True, template=VERTEX),
        Provider(
            "aws-bedrock",
            "",
            ("authorization", "x-amz-security-token"),
            model_in_path=True,
            template=BEDROCK,
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
