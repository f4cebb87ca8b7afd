"""Parse `cf-aig-*` settings (protocol.md §3) from headers of any origin: an HTTP request, a
universal step's `headers` object, or a WebSocket handshake. One function for all of them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from app.core.errors import MalformedRequest
from app.pipeline.types import EMPTY_OPTIONS, Options
from app.providers.cost import CustomCost

BACKOFFS = frozenset({"constant", "linear", "exponential"})
MAX_METADATA_ENTRIES = 5

# Header name → Options field. Deprecated aliases map to the same field.
_HEADER_FIELDS = {
    "cf-aig-authorization": "authorization",
    "cf-aig-skip-cache": "skip_cache",
    "cf-skip-cache": "skip_cache",
    "cf-aig-cache-ttl": "cache_ttl",
    "cf-cache-ttl": "cache_ttl",
    "cf-aig-cache-key": "cache_key",
    "cf-aig-collect-log": "collect_log",
    "cf-aig-collect-log-payload": "collect_log_payload",
    "cf-aig-metadata": "metadata",
    "cf-aig-event-id": "event_id",
    "cf-aig-request-timeout": "request_timeout_ms",
    "cf-aig-max-attempts": "max_attempts",
    "cf-aig-retry-delay": "retry_delay_ms",
    "cf-aig-backoff": "backoff",
    "cf-aig-custom-cost": "custom_cost",
    "cf-aig-byok-alias": "byok_alias",
    "cf-aig-routing-key": "routing_key",
    "cf-aig-provider-key": "provider_key",
}


def is_gateway_header(name: str) -> bool:
    """Headers that are settings for the gateway and are never forwarded upstream."""
    return name.startswith("cf-aig-") or name in ("cf-skip-cache", "cf-cache-ttl")


def _bad(header: str, why: str) -> MalformedRequest:
    return MalformedRequest(f"Invalid value for header {header}: {why}")


def _bool(header: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise _bad(header, "expected true or false")


def _int(header: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(header, "expected an integer") from None
    if not low <= number <= high:
        raise _bad(header, f"expected {low}..{high}")
    return number


def _metadata(header: str, value: str) -> dict[str, str | int | float | bool] | None:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _bad(header, "expected a JSON object") from None
    if not isinstance(parsed, dict):
        raise _bad(header, "expected a JSON object")
    kept: dict[str, str | int | float | bool] = {}
    for key, item in parsed.items():
        if isinstance(item, dict | list) or item is None:
            return None  # documented: a nested value makes the whole header ignored
        if key.startswith("cf.") or len(kept) >= MAX_METADATA_ENTRIES:
            continue  # documented: reserved keys and entries past five are dropped
        kept[key] = item
    return kept


def _custom_cost(header: str, value: str) -> CustomCost:
    try:
        parsed = orjson.loads(value)
        if isinstance(parsed, dict) and "total_cost" in parsed:  # USD for the whole call
            cost = CustomCost(total_cost=float(parsed["total_cost"]))
        else:
            cost = CustomCost(float(parsed["per_token_in"]), float(parsed["per_token_out"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise _bad(header, 'expected {"per_token_in": n, "per_token_out": n} or {"total_cost": n}') from None
    values = (cost.per_token_in, cost.per_token_out, cost.total_cost or 0.0)
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise _bad(header, "costs must be finite and not negative")
    return cost


def _convert(header: str, field_name: str, value: str) -> Any:
    match field_name:
        case "skip_cache" | "collect_log" | "collect_log_payload":
            return _bool(header, value)
        case "cache_ttl":
            return _int(header, value, 60, 2_592_000)
        case "request_timeout_ms":
            return _int(header, value, 1, 3_600_000)
        case "max_attempts":
            return _int(header, value, 1, 5)
        case "retry_delay_ms":
            return _int(header, value, 0, 5000)
        case "backoff":
            if value.strip().lower() not in BACKOFFS:
                raise _bad(header, "expected constant, linear or exponential")
            return value.strip().lower()
        case "metadata":
            return _metadata(header, value)
        case "custom_cost":
            return _custom_cost(header, value)
        case "cache_key" | "routing_key":
            if not value or len(value) > 256:
                raise _bad(header, "expected 1..256 characters")
            return value
        case "event_id":
            if not value or len(value) > 128:
                raise _bad(header, "expected 1..128 characters")
            return value
        case _:
            return value


def parse_options(headers: Iterable[tuple[str, str]]) -> Options:
    """Options from (lower-case name, value) pairs; unknown `cf-aig-*` names are ignored and a
    malformed value raises MalformedRequest (2010) naming the header."""
    values: dict[str, Any] = {}
    for name, value in headers:
        field_name = _HEADER_FIELDS.get(name)
        if field_name is not None:
            values[field_name] = _convert(name, field_name, value)
    return Options(**values) if values else EMPTY_OPTIONS


def split_headers(headers: Iterable[tuple[str, str]]) -> tuple[Options, list[tuple[str, str]]]:
    """Split (name, value) pairs into gateway options and headers to forward upstream."""
    settings: list[tuple[str, str]] = []
    forward: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if is_gateway_header(lowered):
            settings.append((lowered, value))
        else:
            forward.append((name, value))
    return parse_options(settings), forward


def options_from_config(config: Mapping[str, Any]) -> Options:
    """A universal step's `config` object (camelCase keys) as Options."""
    mapping = {
        "requestTimeout": ("cf-aig-request-timeout", "request_timeout_ms"),
        "maxAttempts": ("cf-aig-max-attempts", "max_attempts"),
        "retryDelay": ("cf-aig-retry-delay", "retry_delay_ms"),
        "backoff": ("cf-aig-backoff", "backoff"),
    }
    values: dict[str, Any] = {}
    for key, item in config.items():
        if key not in mapping:
            continue
        header, field_name = mapping[key]
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise MalformedRequest(f"Invalid value for config.{key}")
        try:
            values[field_name] = _convert(header, field_name, str(item))
        except MalformedRequest:
            raise MalformedRequest(f"Invalid value for config.{key}") from None
    return Options(**values) if values else EMPTY_OPTIONS
