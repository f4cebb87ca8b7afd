"""What the OpenAPI page says about the gateway paths beyond what FastAPI derives from the routes:
the token scheme, every `cf-aig-*` header with its range, the gateway's error body and codes, the
compat endpoint, and the two WebSocket endpoints (which OpenAPI cannot describe, so they appear
as GET operations whose descriptions carry the frames, with examples).

`add_gateway_docs(schema)` edits a generated schema in place; the management side is in
`app/api/docs.py`."""

from __future__ import annotations

from typing import Any

from app.core.errors import (
    GatewayError,
    GatewayNotFound,
    GatewayTimeout,
    InternalError,
    MalformedRequest,
    NoProviderResponse,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    StreamInterrupted,
    Unauthorized,
    UnknownKeyAlias,
    UnknownProvider,
)
from app.transports.docs import GatewayErrorBody, UniversalStep

GATEWAY_SCHEME = "gatewayToken"
UNIVERSAL = "/v1/{account_id}/{gateway_id}"
PASSTHROUGH = "/v1/{account_id}/{gateway_id}/{provider}/{path}"
COMPAT = "/v1/{account_id}/{gateway_id}/compat/chat/completions"
REALTIME = "/v1/{account_id}/{gateway_id}/{provider}"

_ERROR_REF = {"$ref": "#/components/schemas/GatewayErrorBody"}
_BOOL = {"type": "string", "enum": ["true", "false"]}
# (name, schema, description): every request header the gateway reads (none is forwarded).
HEADERS: list[tuple[str, dict[str, Any], str]] = [
    ("cf-aig-skip-cache", _BOOL, "true: no cache lookup and no store for this request"),
    ("cf-aig-cache-ttl", {"type": "integer", "minimum": 60, "maximum": 2592000},
     "cache this response for that many seconds (turns caching on for this request)"),
    ("cf-aig-cache-key", {"type": "string", "minLength": 1, "maxLength": 256},
     "replaces the computed cache key; with no TTL from anywhere the entry lives 300 s"),
    ("cf-aig-collect-log", _BOOL, "override the gateway's collect_logs for this request"),
    ("cf-aig-collect-log-payload", _BOOL, "false: keep the log row, drop the request and response bodies"),
    ("cf-aig-metadata", {"type": "string", "example": '{"user": "u-42", "team": 7}'},
     "JSON object of up to 5 string, number or boolean values stored on the log row; keys "
     "starting `cf.` are dropped, a nested value makes the header ignored"),
    ("cf-aig-event-id", {"type": "string", "minLength": 1, "maxLength": 128},
     "your id for this request, echoed in cf-aig-event-id and stored on the log row"),
    ("cf-aig-request-timeout", {"type": "integer", "minimum": 1, "maximum": 3600000},
     "ms to the first byte of the provider's answer before the attempt counts as failed "
     "(the last attempt of the last step is not cut)"),
    ("cf-aig-max-attempts", {"type": "integer", "minimum": 1, "maximum": 5},
     "attempts per step in all (1 = no retry); retried on network errors, timeouts, 429 and 5xx"),
    ("cf-aig-retry-delay", {"type": "integer", "minimum": 0, "maximum": 5000}, "ms before a retry"),
    ("cf-aig-backoff", {"type": "string", "enum": ["constant", "linear", "exponential"]},
     "how the retry delay grows"),
    ("cf-aig-custom-cost",
     {"type": "string", "example": '{"per_token_in": 0.000001, "per_token_out": 0.000002}'},
     "USD per token in and out, replacing the price table for this request's log row"),
    ("cf-aig-byok-alias", {"type": "string"}, "which stored provider key to use (default `default`)"),
]  # fmt: skip

# HTTP status → the gateway errors answered with it.
ERRORS: dict[int, list[type[GatewayError]]] = {
    400: [GatewayNotFound, UnknownProvider, MalformedRequest, UnknownKeyAlias],
    401: [Unauthorized],
    413: [PayloadTooLarge],
    429: [RateLimited],
    500: [InternalError],
    502: [NoProviderResponse, StreamInterrupted],
    503: [ServiceUnavailable],
    504: [GatewayTimeout],
}

CHAT_EXAMPLE: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
}

UNIVERSAL_SESSION = """**WebSocket only** (`Upgrade: websocket`; *Try it out* cannot open it).
One connection carries many requests, each run exactly like a `POST` to the same path.

The handshake **always needs a gateway token**, even when the gateway's authentication is off:
`cf-aig-authorization: Bearer <token>`, or from a browser the subprotocol
`cf-aig-authorization.<token>`. Other `cf-aig-*` headers on the handshake are defaults for every
request of the session.

Send one text frame per request:

```json
{"type": "universal.create",
 "request": {"eventId": "q1", "provider": "openai", "endpoint": "chat/completions",
             "headers": {"Authorization": "Bearer sk-your-key"},
             "query": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}}}
```

A result comes back as one frame:

```json
{"type": "universal.created",
 "metadata": {"cacheStatus": "MISS", "eventId": "q1", "logId": "01J…", "step": "0",
              "contentType": "application/json", "status": 200, "requestId": "01J…"},
 "response": {"id": "chatcmpl-…", "choices": [ … ]}}
```

A streamed result (`"stream": true` in `query`) is `universal.created` without `response`, one
`{"type": "universal.stream", "metadata": {"eventId": "q1"}, "response": <chunk>}` per event, then
`universal.done` with the full metadata. Errors arrive as `universal.created` whose `response` is
`{"success": false, "errors": [{"code": 2010, "message": "…"}]}`. `{"type": "universal.cancel",
"eventId": "q1"}` stops a request. Requests may overlap; `eventId` tells their frames apart.
"""

REALTIME_SESSION = """**WebSocket only** (`Upgrade: websocket`). A WebSocket to the provider's
realtime API, relayed frame for frame both ways; the close code is passed on and one log row
records the session.

`openai` is at `…/openai?model=gpt-realtime` (Cloudflare's form) and at `…/openai/realtime?model=…`
(what the OpenAI SDK's `client.realtime.connect()` asks for when its `base_url` is
`http://HOST/v1/{account}/{gateway}/openai`). Also `google`, `cartesia` and `elevenlabs`.

The handshake always needs a gateway token (`cf-aig-authorization: Bearer <token>` or the
subprotocol `cf-aig-authorization.<token>`); the provider's own key travels as usual
(`Authorization: Bearer sk-…`, or a provider subprotocol such as `openai-insecure-api-key.<key>`).
A refused handshake is answered with an HTTP status and the gateway's error body.
"""


def _header_parameters() -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "header", "required": False, "schema": schema, "description": text}
        for name, schema, text in HEADERS
    ]


def _error_responses() -> dict[str, Any]:
    ref = _ERROR_REF
    responses: dict[str, Any] = {}
    for status, errors in ERRORS.items():
        codes = "; ".join(f"{error.code} {error.default_message.lower()}" for error in errors)
        first = errors[0]
        example = {"success": False, "result": [], "messages": [],
                   "error": [{"code": first.code, "message": first.default_message}]}  # fmt: skip
        responses[str(status)] = {
            "description": f"The gateway's own error ({codes}). A provider's error passes through as it is.",
            "content": {"application/json": {"schema": ref, "example": example}},
        }
    return responses


def _response_headers() -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"description": description, "schema": {"type": "string"}}

    return {
        "cf-aig-log-id": text("ULID of the log row of the step that answered"),
        "cf-aig-event-id": text("your cf-aig-event-id, else the log id"),
        "cf-aig-cache-status": text("HIT, MISS or BYPASS"),
        "cf-aig-step": text("0-based index of the step that answered (universal endpoint)"),
    }


def _websocket_operation(summary: str, description: str, operation_id: str) -> dict[str, Any]:
    return {
        "tags": ["websocket"],
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "security": [{GATEWAY_SCHEME: []}],
        "responses": {
            "101": {"description": "Switching Protocols: the session is open"},
            "401": {"description": "No valid gateway token (2009)",
                    "content": {"application/json": {"schema": _ERROR_REF}}},
        },
    }  # fmt: skip


def _path_parameters(names: list[str]) -> list[dict[str, Any]]:
    examples = {"account_id": "acct", "gateway_id": "gw", "provider": "openai", "path": "chat/completions"}
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "example": examples[name],
        }
        for name in names
    ]


def _compat_operation(template: dict[str, Any]) -> dict[str, Any]:
    return {
        **template,
        "summary": "OpenAI-compatible chat completions (any provider)",
        "description": "OpenAI's chat-completions format for every provider: `model` is "
        "`{provider}/{model}` (`openai/…`, `anthropic/…`, `google-ai-studio/…`, `workers-ai/@cf/…`, "
        "`groq/…`, …). `Authorization: Bearer` carries the provider's key (or a stored key is used). "
        "Native formats are translated both ways, streams included.",
        "operationId": "compat_chat_completions",
        "parameters": [*_path_parameters(["account_id", "gateway_id"]), *_header_parameters()],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["model", "messages"]}, "example": CHAT_EXAMPLE}}},
    }  # fmt: skip


def add_gateway_docs(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    for model in (UniversalStep, GatewayErrorBody):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.setdefault("schemas", {}).update(
            {**model_schema.pop("$defs", {}), model.__name__: model_schema}
        )
    components.setdefault("securitySchemes", {})[GATEWAY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": "cf-aig-authorization",
        "description": "A gateway token with the run permission, as `Bearer <token>`. Needed on "
        "gateways with authentication on, and on every WebSocket session.",
    }
    paths = schema.setdefault("paths", {})
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for operation in operations.values():
            # Optional: gateways with authentication off need no token over HTTP.
            operation["security"] = [{GATEWAY_SCHEME: []}, {}]
            parameters = [p for p in operation.get("parameters", []) if p.get("in") != "header"]
            for parameter in parameters:
                parameter.setdefault("example", _path_parameters([parameter["name"]])[0]["example"])
            operation["parameters"] = parameters + _header_parameters()
            operation.setdefault("responses", {}).pop("422", None)  # the gateway never answers 422
            operation["responses"].setdefault("200", {"description": "The provider's answer"})
            operation["responses"]["200"]["headers"] = _response_headers()
            operation["responses"].update(_error_responses())
    passthrough = paths.get(PASSTHROUGH, {}).get("post")
    if passthrough is not None:
        example = {**CHAT_EXAMPLE, "model": "gpt-4o-mini"}
        passthrough["requestBody"] = {
            "description": "The provider's own request body, forwarded as it is.",
            "content": {"application/json": {"schema": {}, "example": example}},
        }
    universal_post = paths.get(UNIVERSAL, {}).get("post")
    if universal_post is not None:
        paths[COMPAT] = {"post": _compat_operation(universal_post)}
    session = _websocket_operation("Universal WebSocket session", UNIVERSAL_SESSION, "universal_session")
    session["parameters"] = _path_parameters(["account_id", "gateway_id"])
    paths.setdefault(UNIVERSAL, {})["get"] = session
    realtime = _websocket_operation(
        "Realtime WebSocket (provider pass-through)", REALTIME_SESSION, "realtime"
    )
    realtime["parameters"] = _path_parameters(["account_id", "gateway_id", "provider"])
    paths.setdefault(REALTIME, {})["get"] = realtime
