"""A log row as span attributes: the GenAI semantic conventions and Cloudflare's names side by side.

Built off the request path, from the values the log writer stores (`LogRecord.derived`, worked
out once for both). Only row fields go in: never a request or response header, so no provider
key, gateway token or `Authorization` value can become an attribute."""

from __future__ import annotations

from typing import Any

import orjson

from app.logs.record import LogRecord

Attributes = dict[str, str | bool | int | float | list[str]]

# Semantic-convention names of providers whose slug is not one already (`gen_ai.provider.name`).
_SEMCONV_PROVIDERS = {
    "google-ai-studio": "gcp.gemini",
    "google-vertex-ai": "gcp.vertex_ai",
    "aws-bedrock": "aws.bedrock",
    "azure-openai": "azure.ai.openai",
    "mistral": "mistral_ai",
    "grok": "x_ai",
    "perplexity-ai": "perplexity",
    "workers-ai": "cloudflare.workers_ai",
}
# Endpoint endings → `gen_ai.operation.name`, most specific first.
_OPERATIONS = (
    ("chat/completions", "chat"),
    ("messages", "chat"),
    ("responses", "chat"),
    ("embeddings", "embeddings"),
    ("embed", "embeddings"),
    ("completions", "text_completion"),
    (":generatecontent", "generate_content"),
    (":streamgeneratecontent", "generate_content"),
    (":embedcontent", "embeddings"),
    ("converse", "chat"),
    ("converse-stream", "chat"),
    ("images/generations", "image_generation"),
    ("audio/transcriptions", "transcription"),
    ("audio/speech", "speech"),
)


def operation_name(path: str, request_type: str) -> str:
    if request_type == "realtime":
        return "realtime"
    endpoint = path.split("?", 1)[0].rstrip("/").lower()
    for ending, name in _OPERATIONS:
        if endpoint.endswith(ending):
            return name
    last = endpoint.rsplit("/", 1)[-1]
    return last.split(":")[-1][:64] or "request"


def provider_name(slug: str) -> str:
    return _SEMCONV_PROVIDERS.get(slug, slug)


def span_name(attributes: Attributes) -> str:
    model = attributes.get("gen_ai.request.model")
    operation = str(attributes["gen_ai.operation.name"])
    return f"{operation} {model}" if model else operation


def _response_facts(record: LogRecord) -> tuple[str | None, list[str]]:
    """The answering model and finish reasons of a JSON (not streamed) response."""
    body = record.full_body if record.full_body is not None else record.response_head
    if not body or not (record.response_content_type or "").startswith("application/json"):
        return None, []
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, []
    if not isinstance(document, dict):
        return None, []
    model = document.get("model") or document.get("modelVersion")
    reasons: list[str] = []
    for choice in document.get("choices") or document.get("candidates") or ():
        if isinstance(choice, dict):
            reason = choice.get("finish_reason") or choice.get("finishReason")
            if isinstance(reason, str):
                reasons.append(reason)
    if isinstance(document.get("stop_reason"), str):
        reasons.append(document["stop_reason"])
    return (model[:255] if isinstance(model, str) else None), reasons


def _text(body: bytes | None) -> str | None:
    return body.decode("utf-8", "replace") if body else None


def span_attributes(record: LogRecord, server_address: str | None) -> Attributes:
    model, cost = record.derived()
    attributes: Attributes = {
        "gen_ai.operation.name": operation_name(record.path, record.request_type),
        "gen_ai.provider.name": provider_name(record.provider),
        "gen_ai.model.provider": record.provider,
        "cf.aig.log_id": record.id,
        "cf.aig.gateway_id": record.gateway_id,
        "cf.aig.account_id": record.account_id,
        "cf.aig.step": record.step,
        "cf.aig.cache_status": "HIT" if record.cached else "MISS",
        "cf.aig.request_type": record.request_type,
    }
    optional: dict[str, Any] = {
        "cf.aig.event_id": record.event_id,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": record.tokens_in,
        "gen_ai.usage.output_tokens": record.tokens_out,
        "gen_ai.usage.cost": cost,
        "http.response.status_code": record.status_code,
        "server.address": server_address,
    }
    if record.success:
        model, reasons = _response_facts(record)
        optional["gen_ai.response.model"] = model
        optional["gen_ai.response.finish_reasons"] = reasons or None
    if record.keep_payload:  # the row keeps payloads, cut at the logged-body size
        optional["gen_ai.prompt_json"] = _text(record.request_body[: record.body_limit])
        optional["gen_ai.completion_json"] = _text(record.response_head)
    if not record.success:
        optional["error.type"] = _error_type(record)
    attributes.update({k: v for k, v in optional.items() if v is not None})
    for key, value in (record.metadata or {}).items():
        attributes[f"cf.aig.metadata.{key}"] = value
    return attributes


def _error_type(record: LogRecord) -> str:
    if record.status_code is not None:
        return str(record.status_code)
    error = (record.error or "").lower()
    if "timeout" in error or "timed out" in error:
        return "timeout"
    if "cancelled" in error:
        return "cancelled"
    return "upstream_unreachable"
