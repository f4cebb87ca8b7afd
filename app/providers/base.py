"""What the pipeline needs to know about a provider: where its API lives and which headers carry
its credential. Providers are data; the few whose URL depends on the endpoint supply a function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.core.errors import UnknownProvider

# (endpoint) -> (base URL, endpoint rest) for providers whose host depends on the endpoint.
UrlBuilder = Callable[[str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Provider:
    slug: str
    base_url: str  # may contain {account_id}
    credential_headers: tuple[str, ...] = ("authorization",)
    strip_v1: bool = False  # accept endpoints with and without a leading "v1/" (providers.md †)
    model_in_path: bool = False  # the model is the endpoint (Workers AI) or in it (Google)
    url_builder: UrlBuilder | None = None
    # Leading endpoint segments that name parts of the host (Azure `{resource}/{deployment}/…`); an
    # override base may use them as placeholders.
    template_names: tuple[str, ...] = ()

    def upstream_url(self, endpoint: str, account_id: str, override: str | None) -> str:
        endpoint = endpoint.lstrip("/")
        if override is not None:
            base = override
            if self.template_names:
                values, endpoint = template_part(endpoint, self.slug, len(self.template_names))
                for name, value in zip(self.template_names, values, strict=True):
                    base = base.replace("{" + name + "}", value)
        elif self.url_builder is not None:
            base, endpoint = self.url_builder(endpoint)
        else:
            base = self.base_url
        if "{account_id}" in base:
            base = base.replace("{account_id}", account_id)
        if self.strip_v1 and base.endswith("/v1") and endpoint.startswith("v1/"):
            endpoint = endpoint[3:]
        return f"{base}/{endpoint}" if endpoint else base


def template_part(endpoint: str, provider: str, count: int) -> tuple[list[str], str]:
    """Split the first `count` path segments off an endpoint (e.g. `{resource}/{deployment}/…`)."""
    parts = endpoint.split("/", count)
    if len(parts) <= count or not all(parts[:count]):
        raise UnknownProvider(f"{provider}: endpoint must begin with {count} path segments")
    return parts[:count], parts[count]
