"""The budget store's contract (spend-limits.md §4), kept by the in-process store (`memory.py`)
and the Redis one (`redis.py`, one Lua call per admission and per settlement).

Amounts are integer nano-USD. Each bucket holds its settled spend (per fixed window, or per slot
of a sliding window) and its reservations: calls admitted and not yet settled, each with a lease
after which it is settled at its estimate (its process died).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SpendStoreUnavailable(Exception):
    """The store could not answer (Redis down): the fail-open setting decides."""


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str  # `{account}/{gateway}/{rule id}/{technique}/{window}/{partition values}`
    limit: int
    window_s: int
    slot_s: int
    sliding: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    refused: int | None  # index of the first bucket that refused, None when admitted
    retry_after_s: float | None  # until settled spend alone would admit; None if reservations block


ADMITTED = Verdict(None, None)


def fixed_window_of(now: float, window_s: int) -> int:
    return int(now // window_s)


def first_live_slot(now: float, window_s: int, slot_s: int) -> int:
    """An amount settled in slot k counts while `now < (k + 1) * slot + window`: never less than
    the window after it settled, at most one slot more."""
    return int((now - window_s) // slot_s)


def admits(settled: int, reserved: int, estimate: int, limit: int) -> bool:
    held = settled + reserved
    return held < limit and held + estimate <= limit


class SpendStore(Protocol):
    async def admit(self, buckets: list[Bucket], reservation: str, estimate: int, lease_s: float) -> Verdict:
        """All or nothing: reserve `estimate` in every bucket, or in none and say which refused.
        `estimate` 0 with an empty `reservation` only checks (a realtime handshake)."""
        ...

    def settle(self, buckets: list[Bucket], reservation: str, estimate: int, cost: int) -> None:
        """Release the reservation (at most once: a lease that expired was settled already) and
        count `cost`; never waits (the Redis store sends it in the background)."""
        ...

    async def drop(self, prefix: str) -> None:
        """Forget every bucket whose key starts with `prefix` (a rule or a gateway deleted)."""
        ...

    async def drain(self) -> None:
        """Wait for the settlements still being sent (shutdown)."""
        ...

    async def aclose(self) -> None:
        """Drain, then close the store's connection (shutdown)."""
        ...
