"""What an upstream answer may cost (limits.md §2), read once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.settings import Settings


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    head_bytes: int = 64 * 1024  # AIGW_MAX_UPSTREAM_HEAD_BYTES (and at most 256 fields, fixed)
    response_bytes: int = 32 * 1024 * 1024  # AIGW_MAX_RESPONSE_BYTES, decoded
    sse_event_bytes: int = 4 * 1024 * 1024  # AIGW_MAX_SSE_EVENT_BYTES
    idle_timeout_s: float = 600.0  # AIGW_UPSTREAM_TIMEOUT_S: no byte for this long
    body_deadline_s: float = 900.0  # AIGW_UPSTREAM_BODY_DEADLINE_S: head's first byte to body's last
    connect_timeout_s: float = 10.0  # AIGW_CONNECT_TIMEOUT_S, also the wait for a free connection
    connections: int = 512  # AIGW_MAX_UPSTREAM_CONNECTIONS
    connections_per_account: int = 128  # AIGW_MAX_UPSTREAM_CONNECTIONS_PER_ACCOUNT
    keepalive_s: float = 4.0  # AIGW_UPSTREAM_KEEPALIVE_S: idle connections kept this long

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamLimits:
        return cls(
            head_bytes=settings.max_upstream_head_bytes,
            response_bytes=settings.max_response_bytes,
            sse_event_bytes=settings.max_sse_event_bytes,
            idle_timeout_s=settings.upstream_timeout_s,
            body_deadline_s=settings.upstream_body_deadline_s,
            connect_timeout_s=settings.connect_timeout_s,
            connections=settings.max_upstream_connections,
            connections_per_account=settings.max_upstream_connections_per_account,
            keepalive_s=settings.upstream_keepalive_s,
        )
