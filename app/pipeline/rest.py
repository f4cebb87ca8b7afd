"""The REST surface's calls (`/client/v4/accounts/{acct}/ai/…`) as pipeline steps, and the shape
of their answers. Chat completions are compat steps (the same translation as
`/compat/chat/completions`); `/ai/run` with an `@cf/` model, Responses, Messages and embeddings
are native steps passed through. After the run, a provider's 401 / 403 becomes 2009, and
`/ai/run`'s third-party answers are wrapped in the v4 envelope.

Dynamic routes (`dynamic/{route}`) are a hook: `DynamicRoutes.steps` turns one into its steps once
the routing service exists; until then the name is an unknown route (2008).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from app.core.errors import ErrorContext, MalformedRequest, UnknownProvider
from app.core.rest_errors import ModelNotFound, ProviderCredentialRejected
from app.pipeline.rest_models import (
    DYNAMIC_PREFIX,
    WORKERS_AI,
    ModelTarget,
    is_workers_ai_model,
    resolve_model,
)
from app.pipeline.types import GatewayRequest, GatewayResult, Step
from app.providers.compat.openai_like import OPENAI_LIKE

RestKind = Literal["run", "run_model", "chat", "responses", "messages", "embeddings"]
HeaderPairs = list[tuple[str, str]]

ANTHROPIC_VERSION = "2023-06-01"
_JSON = ("content-type", "application/json")
_V4_OK_HEAD = b'{"success":true,"errors":[],"messages":[],"result":'


@dataclass(frozen=True, slots=True)
class RestPlan:
    """What the answer of a REST call needs to know: who serves it, and whether `/ai/run` wraps it."""

    target: ModelTarget
    wrap_in_envelope: bool = False


@dataclass(slots=True)
class RestRequest(GatewayRequest):
    plan: RestPlan | None = None


# The hook for dynamic routes: (route name, OpenAI-format request, client headers) → its steps.
DynamicSteps = Callable[[str, dict[str, Any], HeaderPairs], list[Step]]


def routed_steps(name: str, request: dict[str, Any], headers: HeaderPairs) -> list[Step]:
    """A dynamic route runs as a compat chat step naming it: `Pipeline.run` hands such a step to
    the route executor (`routing.py`), exactly as on the compat endpoint."""
    body = orjson.dumps({**request, "model": DYNAMIC_PREFIX + name})
    return [Step("compat", "chat/completions", body, headers)]


def _object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("Request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise MalformedRequest("Request body must be a JSON object")
    return parsed


def _model_of(request: dict[str, Any]) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise MalformedRequest("'model' must be a non-empty string")
    return model


def _with_model(request: dict[str, Any], body: bytes, model: str) -> bytes:
    """The body with `model` replaced (as it came when it already says so: nothing re-serialised)."""
    if request.get("model") == model:
        return body
    return orjson.dumps({**request, "model": model})


def _compat_step(request: dict[str, Any], body: bytes, target: ModelTarget, headers: HeaderPairs) -> Step:
    return Step("compat", "chat/completions", _with_model(request, body, target.compat_model), headers)


def _not_here(target: ModelTarget, endpoint: str) -> UnknownProvider:
    return UnknownProvider(f"Model {target.provider}/{target.model} is not available on {endpoint}")


class RestCalls:
    """Builds the steps of each REST endpoint. `dynamic` is the dynamic-route hook."""

    def __init__(self, dynamic: DynamicSteps = routed_steps) -> None:
        self._dynamic = dynamic

    def steps(
        self, kind: RestKind, body: bytes, headers: HeaderPairs, path_model: str | None = None
    ) -> tuple[list[Step], RestPlan]:
        match kind:
            case "chat":
                return self._chat(body, headers)
            case "run":
                return self._run(body, headers)
            case "run_model":
                assert path_model is not None
                return self._run_model(path_model, body, headers)
            case "responses":
                return self._responses(body, headers)
            case "messages":
                return self._messages(body, headers)
            case "embeddings":
                return self._embeddings(body, headers)

    def _chat(self, body: bytes, headers: HeaderPairs) -> tuple[list[Step], RestPlan]:
        request = _object(body)
        name = _model_of(request)
        if name.startswith(DYNAMIC_PREFIX):
            route = name[len(DYNAMIC_PREFIX) :]
            return self._dynamic(route, request, headers), RestPlan(ModelTarget("dynamic", route))
        target = resolve_model(name)
        return [_compat_step(request, body, target, headers)], RestPlan(target)

    def _run(self, body: bytes, headers: HeaderPairs) -> tuple[list[Step], RestPlan]:
        envelope = _object(body)
        name, model_input, pinned = envelope.get("model"), envelope.get("input"), envelope.get("provider")
        if not isinstance(name, str) or not name or not isinstance(model_input, dict):
            raise MalformedRequest("/ai/run takes {'model': string, 'input': object}")
        if pinned is not None and (not isinstance(pinned, str) or not pinned):
            raise MalformedRequest("'provider' must be a provider slug")
        if name.startswith(DYNAMIC_PREFIX) and pinned is None:
            route = name[len(DYNAMIC_PREFIX) :]
            steps = self._dynamic(route, model_input, headers)
            return steps, RestPlan(ModelTarget("dynamic", route), wrap_in_envelope=True)
        target = resolve_model(name, pinned)
        if target.provider == WORKERS_AI and is_workers_ai_model(target.model):
            json_headers = [*(h for h in headers if h[0].lower() != "content-type"), _JSON]
            return [Step(WORKERS_AI, target.model, orjson.dumps(model_input), json_headers)], RestPlan(target)
        chat = {**model_input, "model": target.compat_model}
        step = Step("compat", "chat/completions", orjson.dumps(chat), headers)
        return [step], RestPlan(target, wrap_in_envelope=True)

    @staticmethod
    def _run_model(name: str, body: bytes, headers: HeaderPairs) -> tuple[list[Step], RestPlan]:
        if not is_workers_ai_model(name):
            raise ModelNotFound(f"Model not found: {name[:200]}")
        target = ModelTarget(WORKERS_AI, name)
        return [Step(WORKERS_AI, name, body, headers)], RestPlan(target)

    @staticmethod
    def _responses(body: bytes, headers: HeaderPairs) -> tuple[list[Step], RestPlan]:
        request = _object(body)
        target = resolve_model(_model_of(request))
        upstream_body = _with_model(request, body, target.model)
        if target.provider == "openai":
            return [Step("openai", "responses", upstream_body, headers)], RestPlan(target)
        if target.provider == WORKERS_AI:
            step = Step(WORKERS_AI, "v1/responses", upstream_body, headers, from_base_parent=True)
            return [step], RestPlan(target)
        raise _not_here(target, "/ai/v1/responses")

    @staticmethod
    def _messages(body: bytes, headers: HeaderPairs) -> tuple[list[Step], RestPlan]:
        request = _object(body)
        target = resolve_model(_model_of(request))
        if target.provider != "anthropic":
            raise _not_here(target, "/ai/v1/messages")
        if not any(name.lower() == "anthropic-version" for name, _ in headers):
            headers = [*headers, ("anthropic-version", ANTHROPIC_VERSION)]
        step = Step("anthropic", "v1/messages", _with_model(request, body, target.model), headers)
        return [step], RestPlan(target)

    @staticmethod
    def _embeddings(body: bytes, headers: HeaderPairs) -> tuple[list[Step], RestPlan]:
        request = _object(body)
        target = resolve_model(_model_of(request))
        upstream_body = _with_model(request, body, target.model)
        if target.provider == WORKERS_AI:
            step = Step(WORKERS_AI, "v1/embeddings", upstream_body, headers, from_base_parent=True)
            return [step], RestPlan(target)
        endpoint = _embeddings_endpoint(target.provider)
        if endpoint is None:
            raise _not_here(target, "/ai/v1/embeddings")
        return [Step(target.provider, endpoint, upstream_body, headers)], RestPlan(target)


def _embeddings_endpoint(slug: str) -> str | None:
    """OpenAI-compatible providers answer embeddings beside their chat completions."""
    if slug.startswith("custom-"):
        return "embeddings"
    for native, chat_endpoint in OPENAI_LIKE.values():
        if native == slug:
            return chat_endpoint.removesuffix("chat/completions") + "embeddings"
    return None


def shape_rest_result(plan: RestPlan, result: GatewayResult) -> GatewayResult:
    """The answer as the REST surface gives it: 2009 for a rejected credential, `/ai/run`'s
    envelope around a third-party body, and who answered in `cf-aig-provider` / `cf-aig-model`."""
    meta = result.meta
    if result.status in (401, 403):
        raise ProviderCredentialRejected(context=ErrorContext(meta.log_id, meta.event_id, meta.step))
    if plan.wrap_in_envelope and result.stream is None and 200 <= result.status < 300:
        result.body = _V4_OK_HEAD + (result.body or b"null") + b"}"
    target = plan.target
    result.headers = [*result.headers, ("cf-aig-provider", target.provider), ("cf-aig-model", target.model)]
    return result
