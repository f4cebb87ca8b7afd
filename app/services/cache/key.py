"""The cache key of a request (protocol.md §9 of the spec; `docs/caching.md`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def cache_key(
    account_id: str,
    gateway_id: str,
    *,
    custom_key: str | None,
    provider: str,
    method: str,
    url: str,
    body: bytes,
    credentials: Iterable[str],
    stream: bool,
) -> str:
    """`{account}/{gateway}/` + SHA-256 of what identifies the response. The scope prefix keeps
    tenants apart and lets one gateway's entries be dropped at once."""
    digest = hashlib.sha256()
    if custom_key is not None:
        digest.update(b"custom\0" + custom_key.encode())
    else:
        credential_digest = hashlib.sha256("\0".join(credentials).encode()).digest()
        for part in (provider.encode(), method.encode(), url.encode(), credential_digest):
            digest.update(part + b"\0")
        digest.update(body)
    digest.update(b"\0stream" if stream else b"\0json")
    return f"{account_id}/{gateway_id}/{digest.hexdigest()}"
