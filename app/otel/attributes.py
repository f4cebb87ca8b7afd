"""A log row as span attributes: the GenAI semantic conventions and Cloudflare's names side by side.

Built off the request path, from the values the log writer stores (`LogRecord.derived`, worked
out once for both). Only row fields go in: never a request or response header, so no provider
key, gateway token or `Authorization` value can become an attribute.

They come in two parts: the `common` ones, whose values many spans share (gateway, provider,
model, status, …), as a tuple of values in `COMMON_KEYS` order, which the encoders encode once
per distinct tuple; and the rest (ids, usage, cost, bodies, metadata), encoded per span."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from app.logs.record import LogRecord

AttributeValue = str | bool | int | float | tuple[str, ...]
Attributes = dict[str, AttributeValue]
# The attributes of `common` values, in order; a None value is an attribute left out.
COMMON_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.model.provider",
    "cf.aig.gateway_id",
    "cf.aig.account_id",
    "cf.aig.step",
    "cf.aig.cache_status",
    "cf.aig.request_type",
    "http.response.status_code",
    "server.address",
    "gen_ai.response.model",
    "gen_ai.response.finish_reasons",
    "error.type",
)
Common = tuple[AttributeValue | None, ...]

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


@lru_cache(maxsize=1024)  # a gateway sees few distinct endpoints; the bound is for the rest
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


@lru_cache(maxsize=1024)
def server_address(url: str) -> str | None:
    return urlsplit(url).hostname


@lru_cache(maxsize=1024)
def span_name(operation: str, model: str | None) -> str:
    return f"{operation} {model}" if model else operation


def _response_facts(record: LogRecord) -> tuple[str | None, tuple[str, ...]]:
    """The answering model and finish reasons of a JSON (not streamed) response."""
    body = record.full_body if record.full_body is not None else record.response_head
    if not body or not (record.response_content_type or "").startswith("application/json"):
        return None, ()
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, ()
    if not isinstance(document, dict):
        return None, ()
    model = document.get("model") or document.get("modelVersion")
    reasons: list[str] = []
    for choice in document.get("choices") or document.get("candidates") or ():
        if isinstance(choice, dict):
            reason = choice.get("finish_reason") or choice.get("finishReason")
            if isinstance(reason, str):
                reasons.append(reason)
    if isinstance(document.get("stop_reason"), str):
        reasons.append(document["stop_reason"])
    return (model[:255] if isinstance(model, str) else None), tuple(reasons)


def _text(body: bytes | None) -> str | None:
    return body.decode("utf-8", "replace") if body else None


def span_attributes(record: LogRecord, url: str | None) -> tuple[Common, Attributes]:
    """(common values in `COMMON_KEYS` order, the span's other attributes)."""
    model, cost = record.derived()
    response_model: str | None = None
    reasons: tuple[str, ...] = ()
    if record.success:
        response_model, reasons = _response_facts(record)
    common: Common = (
        operation_name(record.path, record.request_type),
        model,
        provider_name(record.provider),
        record.provider,
        record.gateway_id,
        record.account_id,
        record.step,
        "HIT" if record.cached else "MISS",
        record.request_type,
        record.status_code,
        server_address(url) if url else None,
        response_model,
        reasons or None,
        None if record.success else _error_type(record),
    )
    optional: dict[str, Any] = {
        "cf.aig.event_id": record.event_id,
        "gen_ai.usage.input_tokens": record.tokens_in,
        "gen_ai.usage.output_tokens": record.tokens_out,
        "gen_ai.usage.cost": cost,
    }
    if record.keep_payload:  # the row keeps payloads, cut at the logged-body size
        optional["gen_ai.prompt_json"] = _text(record.request_body[: record.body_limit])
        optional["gen_ai.completion_json"] = _text(record.response_head)
    attributes: Attributes = {"cf.aig.log_id": record.id}
    attributes.update({k: v for k, v in optional.items() if v is not None})
    for key, value in (record.metadata or {}).items():
        attributes[f"cf.aig.metadata.{key}"] = value
    return common, attributes


def _error_type(record: LogRecord) -> str:
    if record.request_type == "realtime":  # a session that did not end with a normal close
        return f"close_{record.close_code}" if record.close_code is not None else "closed"
    if record.status_code is not None:
        return str(record.status_code)
    error = (record.error or "").lower()
    if "timeout" in error or "timed out" in error:
        return "timeout"
    if "cancelled" in error:
        return "cancelled"
    return "upstream_unreachable"
