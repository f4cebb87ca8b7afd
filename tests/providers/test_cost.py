"""Cost from the price table and from a custom cost (app/providers/cost.py)."""

from __future__ import annotations

import pytest

from app.providers.cost import CustomCost, cost_of


def test_cost() -> None:
    assert cost_of("openai", "gpt-4o-mini", 1000, 1000, None) == pytest.approx(
        1000 * 1.5e-07 + 1000 * 6.0e-07
    )
    assert cost_of("openai", "no-such-model", 10, 10, None) is None
    assert cost_of("openai", "no-such-model", 10, 20, CustomCost(0.5, 1.0)) == 25.0
