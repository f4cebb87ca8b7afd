"""What the pipeline needs to know about a provider: where its API lives and which headers carry
its credential. Providers are data; the few whose host is built from segments of the endpoint
(Azure's resource, Bedrock's region, …) supply a `Template`.

A template segment comes from the client, and the host it builds receives the provider key, so
each one is accepted only if it is a plain label after percent-decoding (`SEGMENT`), and the host
of the URL built must still end with the provider's own suffix (checked on the final URL). With
an operator's override (`AIGW_UPSTREAM_<SLUG>`) the host is the operator's, trusted as it is, and
the segments fill its `{name}` placeholders, under the same segment rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from app.core.errors import MalformedRequest

SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")

# (endpoint) -> (segment values as sent, by name; the endpoint left to send)
SegmentSplit = Callable[[str], tuple[dict[str, str], str]]
# (checked segment values, by name) -> the base URL of the provider's own host
BaseBuilder = Callable[[dict[str, str]], str]


@dataclass(frozen=True, slots=True)
class Template:
    split: SegmentSplit
    build: BaseBuilder
    host_suffix: str  # the built host must end with this (e.g. `.openai.azure.com`)


@dataclass(frozen=True, slots=True)
class Provider:
    slug: str
    base_url: str  # may contain {account_id}
    credential_headers: tuple[str, ...] = ("authorization",)
    strip_v1: bool = False  # accept endpoints with and without a leading "v1/" (providers.md †)
    model_in_path: bool = False  # the model is the endpoint (Workers AI) or in it (Google)
    template: Template | None = None
    # A destination a tenant chose (a custom provider's base URL): the upstream client refuses to
    # connect to loopback, private, link-local, … addresses for it (app/core/addresses.py).
    tenant_destination: bool = False

    def host_segments(self, endpoint: str) -> tuple[dict[str, str], str]:
        """The template segments of an endpoint, percent-decoded and checked (400 / 2010 naming
        the segment), and the rest of the endpoint. No segments for a provider without template."""
        if self.template is None:
            return {}, endpoint
        raw, rest = self.template.split(endpoint.lstrip("/"))
        values = {}
        for name, value in raw.items():
            decoded = unquote(value) if "%" in value else value
            if not SEGMENT.match(decoded):
                raise MalformedRequest(f"{self.slug}: invalid {name} segment")
            values[name] = decoded
        return values, rest

    def upstream_url(
        self, endpoint: str, account_id: str, override: str | None, *, from_parent: bool = False
    ) -> str:
        endpoint = endpoint.lstrip("/")
        template = self.template
        if template is not None:
            values, endpoint = self.host_segments(endpoint)
            base = template.build(values) if override is None else _fill(override, values)
        else:
            base = self.base_url if override is None else override
        if "{account_id}" in base:
            base = base.replace("{account_id}", account_id)
        if from_parent:  # e.g. Workers AI's `…/ai/v1/embeddings` beside its `…/ai/run` base
            base = base.rstrip("/").rsplit("/", 1)[0]
        if self.strip_v1 and base.endswith("/v1") and endpoint.startswith("v1/"):
            endpoint = endpoint[3:]
        url = f"{base}/{endpoint}" if endpoint else base
        if template is not None and override is None:
            _check_host(url, template.host_suffix, self.slug)
        return url


def _fill(base: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        base = base.replace("{" + name + "}", value)
    return base


def _check_host(url: str, suffix: str, slug: str) -> None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    if host is None or not host.endswith(suffix):
        raise MalformedRequest(f"{slug}: the upstream host must end with {suffix}")


def leading_segments(endpoint: str, provider: str, names: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """Split the first path segments off an endpoint (e.g. `{resource}/{deployment}/…`), by name."""
    count = len(names)
    parts = endpoint.split("/", count)
    if len(parts) <= count:
        expected = "/".join("{" + name + "}" for name in names)
        raise MalformedRequest(f"{provider}: endpoint must begin with {expected}/")
    return dict(zip(names, parts[:count], strict=True)), parts[count]
