"""Server settings, read from `AIGW_*` environment variables and an optional `.env` file.

There is no module-level instance: `create_app(settings)` receives one, so tests and several apps
in one process never share configuration by accident.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

UPSTREAM_PREFIX = "AIGW_UPSTREAM_"


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
    # The shared Redis client's pool (app/services/redis_client.py): commands beyond this many
    # connections wait for one, up to the timeout, instead of failing.
    redis_max_connections: int = Field(default=100, ge=1)
    redis_pool_timeout_s: float = Field(default=2.0, gt=0)
    # When Redis is unreachable, admit requests (open) rather than refuse them (closed).
    rate_limit_fail_open: bool = True
    # Spend limits (docs/spend-limits.md): when the budget store is unreachable, admit calls
    # (open) or refuse them with 503 (closed); the output bound of calls whose body sets none.
    spend_limit_fail_open: bool = False
    spend_default_max_output_tokens: int = Field(default=4096, ge=0)
    # The spend store's Redis connection: no reply (or no connection) within this many seconds
    # is the store being down, so the fail-open setting decides.
    spend_redis_timeout_s: float = Field(default=1.0, gt=0)

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
    # DLP on streamed responses: characters of text that must follow an event before it is sent.
    dlp_stream_holdback_chars: int = Field(default=256, ge=256)
    # `pool`: the project's HTTP/1.1 pool as an httpx transport; `httpx`: stock httpx (HTTP/2 too).
    upstream_transport: Literal["pool", "httpx"] = "pool"
    # Keep-alive comments on streams the gateway composes itself, while waiting for the next event.
    sse_ping_s: float = 15.0

    # Logging of bodies: only heads are stored.
    log_body_max_bytes: int = 32 * 1024
    log_batch_size: int = 500
    log_flush_interval_s: float = 0.2
    log_queue_max: int = 100_000

    # OpenTelemetry export (docs/observability.md): spans waiting at most, the longest wait before
    # a batch goes, and one export's deadline (with its retries inside it).
    otel_queue_max: int = 10_000
    otel_flush_interval_s: float = 1.0
    otel_export_timeout_s: float = 10.0

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # After init and the environment, before the rest: the overrides' dict is merged key by
        # key, so `upstream_overrides=` given in code wins for its slugs and adds to the others.
        overrides = UpstreamOverridesSource(settings_cls, dotenv_settings)
        return init_settings, env_settings, overrides, dotenv_settings, file_secret_settings

    def upstream_override(self, slug: str) -> str | None:
        return self.upstream_overrides.get(slug.lower().replace("-", "_"))


class UpstreamOverridesSource(PydanticBaseSettingsSource):
    """`upstream_overrides` from `AIGW_UPSTREAM_<SLUG>` variables, in the environment or in the
    `.env` file (the environment wins). They are not fields, so pydantic-settings would ignore
    them; AIGW_UPSTREAM_TIMEOUT_S and the like are fields and stay out."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._dotenv = dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the one value

    def __call__(self) -> dict[str, Any]:
        own = {f"AIGW_{name.upper()}" for name in self.settings_cls.model_fields}
        found: dict[str, str] = {}
        for variables in (self._dotenv_variables(), os.environ):
            for name, value in variables.items():
                upper = name.upper()
                if upper.startswith(UPSTREAM_PREFIX) and upper not in own and value:
                    found[upper.removeprefix(UPSTREAM_PREFIX).lower()] = value.rstrip("/")
        return {"upstream_overrides": found} if found else {}

    def _dotenv_variables(self) -> Mapping[str, str | None]:
        if not isinstance(self._dotenv, DotEnvSettingsSource) or self._dotenv.env_file is None:
            return {}
        files = self._dotenv.env_file
        paths: Iterable[Path | str] = [files] if isinstance(files, str | Path) else files
        values: dict[str, str | None] = {}
        for path in paths:
            if Path(path).expanduser().is_file():
                values.update(dotenv_values(Path(path).expanduser(), encoding=self._dotenv.env_file_encoding))
        return values
