"""Cost from the price table in `prices.json` (USD per token), kept as data so it is easy to update."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import orjson


@dataclass(frozen=True, slots=True)
class CustomCost:
    """A client's own price (`cf-aig-custom-cost`) instead of the table's: USD per token, or a
    `total_cost` in USD for the whole call."""

    per_token_in: float = 0.0
    per_token_out: float = 0.0
    total_cost: float | None = None


@cache
def price_table() -> dict[str, dict[str, tuple[float, float]]]:
    raw = orjson.loads(resources.files("app.providers").joinpath("prices.json").read_bytes())
    return {
        provider: {model: (float(p[0]), float(p[1])) for model, p in models.items()}
        for provider, models in raw["prices"].items()
    }


@cache
def output_bounds() -> dict[tuple[str, str], int]:
    """(provider, model) -> the most output tokens one call can return, where the table says."""
    raw = orjson.loads(resources.files("app.providers").joinpath("prices.json").read_bytes())
    return {
        (provider, model): int(p[2])
        for provider, models in raw["prices"].items()
        for model, p in models.items()
        if len(p) > 2
    }


def cost_of(
    provider: str, model: str | None, tokens_in: int | None, tokens_out: int | None, custom: CustomCost | None
) -> float | None:
    """None (not 0) when the model's price is unknown or no usage was reported."""
    if custom is not None and custom.total_cost is not None:
        return custom.total_cost
    if tokens_in is None and tokens_out is None:
        return None
    if custom is not None:
        prices = (custom.per_token_in, custom.per_token_out)
    else:
        found = price_table().get(provider, {}).get(model or "")
        if found is None:
            return None
        prices = found
    return (tokens_in or 0) * prices[0] + (tokens_out or 0) * prices[1]


def prices_of(provider: str, model: str | None, custom: CustomCost | None) -> tuple[float, float] | None:
    """USD per (input, output) token; None when unknown (a `total_cost` is no price per token)."""
    if custom is not None:
        return None if custom.total_cost is not None else (custom.per_token_in, custom.per_token_out)
    return price_table().get(provider, {}).get(model or "")
