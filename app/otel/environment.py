"""The server-wide exporter, from the standard OpenTelemetry environment variables (set by the
operator, so any address is allowed): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
OTEL_EXPORTER_OTLP_ENDPOINT (+ `/v1/traces`), OTEL_EXPORTER_OTLP[_TRACES]_HEADERS,
OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (`http/protobuf`, the default, or `http/json`),
OTEL_SERVICE_NAME, and OTEL_SDK_DISABLED / OTEL_TRACES_EXPORTER=none to turn it off."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry.util.re import parse_env_headers

from app.db.otel_exporters import ContentType, ExporterConfig

logger = logging.getLogger("aigw.otel")
DEFAULT_SERVICE_NAME = "aigw"


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def server_exporter(environ: Mapping[str, str]) -> ExporterConfig | None:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    url = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if url is None:
        base = _first(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
        if base is None:
            return None
        url = f"{base.rstrip('/')}/v1/traces"
    protocol = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol not in (None, "http/protobuf", "http/json"):
        logger.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; using http/protobuf", protocol)
    headers = parse_env_headers(
        _first(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS") or "",
        liberal=True,
    )
    content_type: ContentType = "json" if protocol == "http/json" else "protobuf"
    return ExporterConfig(url, tuple(headers.items()), content_type, tenant=False)


def service_name(environ: Mapping[str, str]) -> str:
    return _first(environ, "OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
