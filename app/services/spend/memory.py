"""Spend budgets in this process: exact within it (admission never awaits, so it is atomic under
the event loop); several workers without Redis each keep their own count."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.services.spend.store import (
    ADMITTED,
    Bucket,
    Verdict,
    admits,
    first_live_slot,
    fixed_window_of,
)


@dataclass(slots=True)
class _State:
    bucket: Bucket
    reserved: int = 0
    leases: dict[str, tuple[float, int]] = field(default_factory=dict)  # id -> (expires, estimate)
    window: int = -1  # fixed: the window `settled` belongs to
    settled: int = 0
    slots: dict[int, int] = field(default_factory=dict)  # sliding: slot number -> amount

    def current(self, bucket: Bucket, now: float) -> int:
        if not bucket.sliding:
            return self.settled if self.window == fixed_window_of(now, bucket.window_s) else 0
        cutoff = first_live_slot(now, bucket.window_s, bucket.slot_s)
        for slot in [slot for slot in self.slots if slot < cutoff]:
            del self.slots[slot]
        return sum(self.slots.values())

    def add(self, bucket: Bucket, now: float, amount: int) -> None:
        if amount <= 0:
            return
        if not bucket.sliding:
            window = fixed_window_of(now, bucket.window_s)
            self.settled = self.settled + amount if self.window == window else amount
            self.window = window
            return
        slot = int(now // bucket.slot_s)
        self.slots[slot] = self.slots.get(slot, 0) + amount

    def expire_leases(self, bucket: Bucket, now: float) -> None:
        for reservation, (expires, estimate) in list(self.leases.items()):
            if expires <= now:  # never settled: its process lost it; count the estimate
                del self.leases[reservation]
                self.reserved -= estimate
                self.add(bucket, now, estimate)

    def wait(self, bucket: Bucket, now: float, settled: int, estimate: int) -> float | None:
        """Seconds until settled spend alone would admit `estimate`; None if it already would."""
        if estimate > bucket.limit or admits(settled, 0, estimate, bucket.limit):
            return None
        if not bucket.sliding:
            return (fixed_window_of(now, bucket.window_s) + 1) * bucket.window_s - now
        remaining = settled
        for slot in sorted(self.slots):
            remaining -= self.slots[slot]
            if admits(remaining, 0, estimate, bucket.limit):
                return (slot + 1) * bucket.slot_s + bucket.window_s - now
        return None

    def empty(self, bucket: Bucket, now: float) -> bool:
        return not self.leases and self.current(bucket, now) == 0


class MemorySpendStore:
    def __init__(self, max_buckets: int = 100_000) -> None:
        self._buckets: dict[str, _State] = {}
        self._max = max_buckets

    async def admit(self, buckets: list[Bucket], reservation: str, estimate: int, lease_s: float) -> Verdict:
        now = time.time()
        states = [self._state(bucket) for bucket in buckets]
        refused: int | None = None
        waits: list[float] = []
        for index, (bucket, state) in enumerate(zip(buckets, states, strict=True)):
            state.expire_leases(bucket, now)
            settled = state.current(bucket, now)
            if not admits(settled, state.reserved, estimate, bucket.limit):
                refused = index if refused is None else refused
                wait = state.wait(bucket, now, settled, estimate)
                if wait is not None:
                    waits.append(wait)
        if refused is not None:
            return Verdict(refused, max(waits) if waits else None)
        if reservation:
            for state in states:
                state.reserved += estimate
                state.leases[reservation] = (now + lease_s, estimate)
        return ADMITTED

    def settle(self, buckets: list[Bucket], reservation: str, estimate: int, cost: int) -> None:
        now = time.time()
        for bucket in buckets:
            state = self._state(bucket)
            if reservation:
                if state.leases.pop(reservation, None) is None:
                    continue  # its lease expired: it was settled at its estimate already
                state.reserved -= estimate
            state.add(bucket, now, cost)

    async def drop(self, prefix: str) -> None:
        for key in [key for key in self._buckets if key.startswith(prefix)]:
            del self._buckets[key]

    async def drain(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def _state(self, bucket: Bucket) -> _State:
        state = self._buckets.get(bucket.key)
        if state is None:
            if len(self._buckets) >= self._max:
                self._sweep()
            state = self._buckets[bucket.key] = _State(bucket)
        return state

    def _sweep(self) -> None:
        """Remove buckets with no reservation and nothing settled in their current window or
        slots (bounded memory)."""
        now = time.time()
        for key, state in list(self._buckets.items()):
            if state.empty(state.bucket, now):
                del self._buckets[key]
