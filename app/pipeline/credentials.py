"""A provider credential the client sent in `cf-aig-provider-key`, as the header that provider
reads it from (`Authorization: Bearer …`, `x-api-key`, `x-goog-api-key`, …): the same placement
as a stored key, so it is never forwarded under its own name."""

from __future__ import annotations

from app.providers.base import Provider
from app.services.account_providers import credential_header


def provider_key_header(provider: Provider, key: str | None) -> tuple[str, str] | None:
    if not key or not key.strip():
        return None
    return credential_header(provider, key.strip())
