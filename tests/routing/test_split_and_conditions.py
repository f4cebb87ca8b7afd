"""The percentage split's test vector and shares (routing.md §5.5), and condition semantics
(§3.1), on the pure functions the executor runs."""

from __future__ import annotations

from typing import Any

import pytest

from app.routing.conditions import RequestView, compile_condition
from app.routing.split import pick_branch, split_fraction


def test_vector() -> None:
    assert split_fraction("gw", "ab", "split", "k0") == pytest.approx(0.75136763, abs=1e-8)
    assert split_fraction("gw", "ab", "split", "k2") == pytest.approx(0.48559659, abs=1e-8)


def _shares(thresholds: tuple[tuple[float, str], ...], otherwise: str | None) -> dict[str, float]:
    counts: dict[str, int] = {}
    for i in range(1000):
        branch = pick_branch(thresholds, otherwise, split_fraction("gw", "ab", "split", f"k{i}"))
        assert branch is not None
        counts[branch] = counts.get(branch, 0) + 1
    return {name: count / 10 for name, count in counts.items()}


def test_shares_over_1000_keys() -> None:
    assert _shares(((50.0, "a"),), "b")["a"] == pytest.approx(50.4)
    assert _shares(((10.0, "a"), (60.0, "b")), "c") == pytest.approx({"a": 8.8, "b": 51.0, "c": 40.2})
    assert _shares(((100.0, "a"),), None) == {"a": 100.0}


VIEW = RequestView(
    {"plan": "free", "n": 3}, {"x-team": "red", "authorization": "Bearer s"}, {"a": [{"b": 2}]}
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, True),
        ({"metadata.plan": "free"}, True),
        ({"metadata.plan": {"$ne": "free"}}, False),
        ({"metadata.n": {"$gte": 3, "$lt": 4}}, True),
        ({"metadata.n": {"$gt": "2"}}, False),  # a type mismatch is false
        ({"metadata.missing": {"$ne": 1}}, True),
        ({"metadata.missing": {"$exists": False}}, True),
        ({"metadata.missing": {"$in": [1]}}, False),
        ({"headers.x-team": {"$in": ["red", "blue"]}}, True),
        ({"headers.authorization": {"$exists": True}}, False),  # credentials read as absent
        ({"body.a.0.b": 2}, True),
        ({"$not": {"body.a.0.b": 2}}, False),
        ({"$and": [{"metadata.plan": "free"}, {"headers.x-team": "blue"}]}, False),
        ({"metadata.plan": "free", "metadata.n": 3}, True),
    ],
)
def test_conditions(query: dict[str, Any], expected: bool) -> None:
    assert compile_condition(query)(VIEW) is expected


@pytest.mark.parametrize(
    "query", [{"user.x": 1}, {"metadata.x": {"$regex": "a"}}, {"$or": []}, {"body.x": {"$in": 1}}]
)
def test_malformed_conditions_are_refused(query: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        compile_condition(query)
