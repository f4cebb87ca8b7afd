"""The deterministic percentage split: the same split key always takes the same branch, so an A/B
test can be sticky per user (`cf-aig-routing-key`)."""

from __future__ import annotations

import hashlib

_TWO_64 = float(2**64)


def split_fraction(gateway_id: str, route_name: str, element_id: str, split_key: str) -> float:
    """`u` in [0, 1): the first 8 bytes of SHA-256("{gateway}/{route}:{element}:{key}"), big-endian,
    over 2^64."""
    digest = hashlib.sha256(f"{gateway_id}/{route_name}:{element_id}:{split_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _TWO_64


def pick_branch(thresholds: tuple[tuple[float, str], ...], otherwise: str | None, u: float) -> str | None:
    """The first branch whose running sum of percentages is greater than 100·u, else `otherwise`.
    `thresholds` holds the running sums already added up."""
    point = 100.0 * u
    for running_sum, target in thresholds:
        if running_sum > point:
            return target
    return otherwise
