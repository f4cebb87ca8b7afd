"""OpenTelemetry traces: one CLIENT span per log row, exported over OTLP/HTTP off the request path
(docs/observability.md)."""
