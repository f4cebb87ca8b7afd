"""Server settings, read from `AIGW_*` environment variables and an optional `.env` file.

There is no module-level instance: `create_app(settings)` receives one, so tests and several apps
in one process never share configuration by accident.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIGW_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite:///./data/aigw.db",
        description="Plain SQLAlchemy URL; sqlite:// and postgresql:// get their async driver added.",
    )
    admin_token: str | None = Field(default=None, description="Server-wide token with every permission.")
    secret_key: str | None = Field(
        default=None,
        description="Encrypts stored provider keys (BYOK) at rest; at least 16 characters. Unset: "
        "provider keys cannot be stored.",
    )
    allow_private_destinations: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "allow_private_destinations",
            "AIGW_ALLOW_PRIVATE_DESTINATIONS",
            "allow_http_custom_providers",
            "AIGW_ALLOW_HTTP_CUSTOM_PROVIDERS",
            "allow_private_custom_providers",
            "AIGW_ALLOW_PRIVATE_CUSTOM_PROVIDERS",
        ),
        description="Development only: let tenant-configured destinations (custom providers, "
        "exporters) use http:// and loopback, private or link-local addresses.",
    )
    redis_url: str | None = None
    # When Redis is unreachable, admit requests (open) rather than refuse them (closed).
    rate_limit_fail_open: bool = True
    # Spend limits (docs/spend-limits.md): when the budget store is unreachable, admit calls
    # (open) or refuse them with 503 (closed); the output bound of calls whose body sets none.
    spend_limit_fail_open: bool = False
    spend_default_max_output_tokens: int = Field(default=4096, ge=0)

    # Request limits.
    max_body_bytes: int = 10 * 1024 * 1024
    # A request head, or a gap in a request body, taking longer than this closes the connection
    # (slow-loris); a head larger than max_request_head_bytes is refused with 431.
    client_read_timeout_s: float = 30.0
    max_request_head_bytes: int = 65536

    # Upstream calls (docs/limits.md). Idle time: no byte for this long ends the call.
    upstream_timeout_s: float = 600.0
    # A buffered (non-stream) response, from the first byte of its head to the last of its body.
    upstream_body_deadline_s: float = 900.0
    connect_timeout_s: float = 10.0
    max_upstream_connections: int = 512
    max_upstream_connections_per_account: int = 128
    # How long an idle upstream connection is kept for reuse: below the 5 s after which uvicorn,
    # Node and httpx's peers close theirs, so a request is rarely written onto a connection the
    # server is closing (and such a request is never replayed: limits.md §3).
    upstream_keepalive_s: float = 4.0
    max_upstream_head_bytes: int = 64 * 1024
    max_response_bytes: int = 32 * 1024 * 1024  # decoded
    max_sse_event_bytes: int = 4 * 1024 * 1024
    # `pool`: the project's HTTP/1.1 pool as an httpx transport; `httpx`: stock httpx (HTTP/2 too).
    upstream_transport: Literal["pool", "httpx"] = "pool"
    # Keep-alive comments on streams the gateway composes itself, while waiting for the next event.
    sse_ping_s: float = 15.0

    # Logging of bodies: only heads are stored.
    log_body_max_bytes: int = 32 * 1024
    log_batch_size: int = 500
    log_flush_interval_s: float = 0.2
    log_queue_max: int = 100_000

    # Cache (in-process default store).
    cache_max_bytes: int = 256 * 1024 * 1024
    cache_max_entry_bytes: int = 8 * 1024 * 1024

    # Universal WebSocket sessions.
    ws_max_frame_bytes: int = 10 * 1024 * 1024
    ws_max_in_flight: int = 64
    ws_idle_timeout_s: float = 300.0
    ws_ping_interval_s: float = 20.0
    ws_compression: bool = False  # permessage-deflate on universal sessions
    shutdown_grace_s: float = 30.0

    # In-process config caches (gateways, tokens, stored keys, custom providers): how long a lookup
    # is trusted. With Redis, writes are also announced over pub/sub (app/services/invalidation.py)
    # and, while that subscription is verified alive, the second TTL applies: a backstop for a
    # writer that reached the database but not Redis, kept at 1 s so even that case stays in 1 s.
    config_cache_ttl_s: float = 0.5
    config_cache_ttl_pubsub_s: float = 1.0

    # Upstream base overrides by provider slug. Filled from `AIGW_UPSTREAM_<SLUG>` variables (slug
    # upper-cased, `-` as `_`), so every provider can be pointed elsewhere without a field each.
    upstream_overrides: dict[str, str] = Field(default_factory=dict)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if not value:
            return None
        if len(value) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -base64 32`)")
        return value

    @model_validator(mode="after")
    def _read_upstream_overrides(self) -> Settings:
        own = {f"AIGW_{field.upper()}" for field in type(self).model_fields}
        for name, value in os.environ.items():
            if name.startswith("AIGW_UPSTREAM_") and name not in own and value:
                key = name.removeprefix("AIGW_UPSTREAM_").lower()
                self.upstream_overrides.setdefault(key, value.rstrip("/"))
        return self

    def upstream_override(self, slug: str) -> str | None:
        return self.upstream_overrides.get(slug.lower().replace("-", "_"))
