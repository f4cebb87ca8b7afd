"""Model names of the REST surface → the provider that serves them and its own model id.

`author/model` (`openai/gpt-4.1`, `google/gemini-3-flash`, `xai/grok-3`) maps the author to a
provider; `@cf/…` and `@hf/…` are Workers AI models, kept whole; the compat prefixes
(`workers-ai/@cf/…`, `groq/…`, `custom-{slug}/…`, …) are accepted as they are. `dynamic/{route}`
names a dynamic route: `DYNAMIC_PREFIX`, resolved by the caller's hook (`rest.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.rest_errors import ModelNotFound
from app.providers.compat.openai_like import OPENAI_LIKE
from app.providers.compat.registry import TRANSLATED
from app.providers.cost import price_table

DYNAMIC_PREFIX = "dynamic/"
WORKERS_AI = "workers-ai"

# REST author → provider slug (where they differ, the slug is the compat prefix's provider).
AUTHORS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google-ai-studio",
    "xai": "grok",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity-ai",
}
# Provider slug → its compat prefix, where the two differ.
_COMPAT_PREFIX = {slug: prefix for prefix, (slug, _) in OPENAI_LIKE.items() if slug != prefix}
# Compat prefix → provider slug: the prefixes a REST client may also use as they are.
_PREFIXES: dict[str, str] = {
    **{prefix: slug for prefix, (slug, _) in OPENAI_LIKE.items()},
    **{prefix: prefix for prefix in TRANSLATED},
    "google-vertex-ai": "google-vertex-ai",
}


@dataclass(frozen=True, slots=True)
class ModelTarget:
    provider: str  # provider slug (`custom-{slug}` for a custom provider)
    model: str  # the model id the provider itself knows (`gpt-4.1`, `@cf/meta/…` whole)

    @property
    def compat_model(self) -> str:
        """The name the compat translation takes: `{prefix}/{model}`."""
        return f"{_COMPAT_PREFIX.get(self.provider, self.provider)}/{self.model}"


def is_workers_ai_model(name: str) -> bool:
    return name.startswith(("@cf/", "@hf/"))


def resolve_model(name: str, pinned_provider: str | None = None) -> ModelTarget:
    """The provider and upstream model of a REST model name (404 / 7003 when neither its author
    nor its prefix is known). `pinned_provider` (`/ai/run`'s `provider`) overrides the author."""
    if pinned_provider is not None:
        if pinned_provider == WORKERS_AI and is_workers_ai_model(name):
            return ModelTarget(WORKERS_AI, name)
        _, slash, rest = name.partition("/")
        return ModelTarget(pinned_provider, rest if slash else name)
    if is_workers_ai_model(name):
        return ModelTarget(WORKERS_AI, name)
    author, slash, model = name.partition("/")
    if not slash or not model:
        raise ModelNotFound(f"Model not found: {name[:200]}")
    slug = AUTHORS.get(author) or _PREFIXES.get(author)
    if slug is None and author.startswith("custom-") and len(author) > len("custom-"):
        slug = author
    if slug is None:
        raise ModelNotFound(f"Model not found: {name[:200]}")
    return ModelTarget(slug, model)


# Provider slug → the REST author its models are named under (the compat prefix otherwise).
_AUTHOR_OF = {slug: author for author, slug in AUTHORS.items()}


def rest_name(provider: str, model: str) -> str:
    if provider == WORKERS_AI and is_workers_ai_model(model):
        return model
    author = _AUTHOR_OF.get(provider) or _COMPAT_PREFIX.get(provider, provider)
    return f"{author}/{model}"


def model_list() -> list[dict[str, object]]:
    """`GET /ai/v1/models`: the price table's models under their REST names."""
    return [
        {"id": rest_name(provider, model), "object": "model", "created": 0, "owned_by": provider}
        for provider, models in price_table().items()
        for model in models
    ]
