"""The tracer of a server: the OTEL_* exporter (if any) and the settings' bounds."""

from __future__ import annotations

from collections.abc import Mapping

from app.core.settings import Settings
from app.otel.environment import server_exporter, service_name
from app.otel.sender import OtlpSender
from app.otel.tracer import Tracer
from app.upstream.client import UpstreamClient


def build_tracer(settings: Settings, client: UpstreamClient, environ: Mapping[str, str]) -> Tracer:
    sender = OtlpSender(
        client, allow_private=settings.allow_private_destinations, timeout_s=settings.otel_export_timeout_s
    )
    return Tracer(
        sender,
        server_exporter(environ),
        service_name(environ),
        queue_max=settings.otel_queue_max,
        flush_interval_s=settings.otel_flush_interval_s,
    )
