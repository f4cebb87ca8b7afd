"""The universal request body (protocol.md §2): one step object or an array of them, as sent over
HTTP or inside a WebSocket `universal.create` frame."""

from __future__ import annotations

from typing import Any

import orjson

from app.core.errors import MalformedRequest
from app.pipeline.options import options_from_config, split_headers
from app.pipeline.types import Step

MAX_STEPS = 16


def parse_universal_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedRequest("Request body is not valid JSON") from None


def steps_from_universal(payload: Any) -> list[Step]:
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise MalformedRequest("Expected at least one step")
    if len(items) > MAX_STEPS:
        raise MalformedRequest(f"At most {MAX_STEPS} steps are allowed")
    return [_step(item, index) for index, item in enumerate(items)]


def first_event_id(payload: Any) -> str | None:
    """The event id of a request as written by the client, read without validating the rest (so
    even a malformed request's error can carry it)."""
    items = payload if isinstance(payload, list) else [payload]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("eventId"), str):
            return str(item["eventId"])[:128]
    return None


def _step(item: Any, index: int) -> Step:
    where = f"step {index}"
    if not isinstance(item, dict):
        raise MalformedRequest(f"{where}: expected an object")
    provider = item.get("provider")
    endpoint = item.get("endpoint")
    if not isinstance(provider, str) or not provider:
        raise MalformedRequest(f"{where}: 'provider' must be a non-empty string")
    if not isinstance(endpoint, str):
        raise MalformedRequest(f"{where}: 'endpoint' must be a string")
    headers = item.get("headers")
    headers = {} if headers is None else headers
    if not isinstance(headers, dict) or not all(isinstance(v, str | int | float) for v in headers.values()):
        raise MalformedRequest(f"{where}: 'headers' must be an object of strings")
    config = item.get("config")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise MalformedRequest(f"{where}: 'config' must be an object")
    event_id = item.get("eventId")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= 128):
        raise MalformedRequest(f"{where}: 'eventId' must be a string of 1..128 characters")
    authorization = item.get("authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise MalformedRequest(f"{where}: 'authorization' must be a string")
    if "query" not in item:
        raise MalformedRequest(f"{where}: 'query' is required")

    header_options, forward = split_headers((str(k), str(v)) for k, v in headers.items())
    names = {name.lower() for name, _ in forward}
    if authorization and "authorization" not in names:
        forward.append(("Authorization", authorization))
    if "content-type" not in names:
        forward.append(("Content-Type", "application/json"))
    query = item["query"]
    body = query.encode() if isinstance(query, str) else orjson.dumps(query)
    path, _, query_string = endpoint.lstrip("/").partition("?")
    return Step(
        provider=provider,
        endpoint=path,
        body=body,
        headers=forward,
        query_string=query_string,
        options=options_from_config(config).over(header_options),
        event_id=event_id,
    )
