"""Realtime (WebSocket-to-WebSocket) upstreams of providers.md. Adding one is one entry here."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import UnknownProvider


@dataclass(frozen=True, slots=True)
class RealtimeProvider:
    slug: str
    url: str
    forwarded_headers: tuple[str, ...]  # client headers that carry the provider credential/version
    forwarded_subprotocol_prefixes: tuple[str, ...] = ()  # e.g. `openai-insecure-api-key.<key>`
    credential_header: str = "authorization"
    # Path suffixes the provider's own SDK appends to its base URL, accepted after `/{provider}`
    # as the same session: OpenAI's `client.realtime.connect()` asks for `…/openai/realtime`.
    sdk_paths: tuple[str, ...] = ()

    def accepts_path(self, suffix: str) -> bool:
        return suffix.strip("/") in self.sdk_paths


REALTIME_PROVIDERS: dict[str, RealtimeProvider] = {
    p.slug: p
    for p in (
        RealtimeProvider(
            "openai",
            "wss://api.openai.com/v1/realtime",
            ("authorization", "openai-beta", "openai-organization", "openai-project"),
            (
                "realtime",
                "openai-insecure-api-key.",
                "openai-beta.",
                "openai-organization.",
                "openai-project.",
            ),
            sdk_paths=("realtime",),
        ),
        RealtimeProvider(
            "google",
            "wss://generativelanguage.googleapis.com/ws/"
            "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
            ("x-goog-api-key",),
            credential_header="x-goog-api-key",
        ),
        RealtimeProvider(
            "cartesia", "wss://api.cartesia.ai/tts/websocket", ("x-api-key", "cartesia-version")
        ),
        RealtimeProvider(
            "elevenlabs",
            "wss://api.elevenlabs.io/v1/convai/conversation",
            ("xi-api-key",),
            ("xi-api-key.",),
            credential_header="xi-api-key",
        ),
    )
}


def get_realtime_provider(slug: str) -> RealtimeProvider:
    provider = REALTIME_PROVIDERS.get(slug)
    if provider is None:
        raise UnknownProvider(f"No realtime upstream for provider: {slug[:64]}")
    return provider
