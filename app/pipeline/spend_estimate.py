"""What spend limits know of a call before it is sent (spend-limits.md §2, §4): the model it
names, the facts rules match on, and the most it can cost.

Read only for gateways with spend limits; everything comes from one parse of the request body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.pipeline.step import StepRun
from app.providers.cost import output_bounds, prices_of
from app.providers.usage import loads_or_none, model_from_request
from app.services.spend.rules import NANO_PER_USD, CallFacts

_OUTPUT_BOUNDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class CallEstimate:
    facts: CallFacts
    model: str | None
    estimate: int  # nano-USD, rounded up: never below what the call may cost


def output_bound(document: Any) -> int | None:
    if not isinstance(document, dict):
        return None
    for key in _OUTPUT_BOUNDS:
        value = document.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    config = document.get("generationConfig")
    if isinstance(config, dict):
        value = config.get("maxOutputTokens")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _is_embedding(endpoint: str) -> bool:
    lowered = endpoint.lower()
    return "embed" in lowered  # `embeddings`, `:embedContent`, `:batchEmbedContents`


def estimate_call(run: StepRun, default_max_output: int) -> CallEstimate | None:
    """None when the call's price is unknown: such a call is neither checked nor counted."""
    step, provider = run.step, run.provider.slug
    model = model_from_request(step.body, step.endpoint, run.provider.model_in_path)
    custom = run.options.custom_cost
    models = (model, f"{provider}/{model}") if model else ()
    facts = CallFacts(provider, models, f"{provider}/{model}" if model else None, run.options.metadata)
    if custom is not None and custom.total_cost is not None:
        return CallEstimate(facts, model, math.ceil(custom.total_cost * NANO_PER_USD))
    prices = prices_of(provider, model, custom)
    if prices is None:
        return None
    out_max = 0
    if not _is_embedding(step.endpoint):
        bound = output_bound(loads_or_none(step.body)) if step.body else None
        if bound is None:
            bound = output_bounds().get((provider, model or ""), default_max_output)
        out_max = bound
    # The body's byte length bounds its text tokens; cache-token discounts are ignored.
    usd = len(step.body) * prices[0] + out_max * prices[1]
    return CallEstimate(facts, model, math.ceil(usd * NANO_PER_USD))
