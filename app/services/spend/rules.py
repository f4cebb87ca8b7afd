"""Spend-limit rules compiled for the request path (spend-limits.md §2): which rules apply to a
call, and the budget bucket each one charges.

Compiled once when a gateway's config is cached, so a request only compares strings; a gateway
without enabled rules compiles to None, and the pipeline then does nothing at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

NANO_PER_USD = 1_000_000_000  # counters are integer nano-USD: sums and comparisons stay exact


def as_text(value: Any) -> str:
    """Metadata and filter values compare as strings: `12345`, `true`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class Dimension:
    partition: bool
    values: frozenset[str]  # a filter's values (empty for a partition)

    def admits(self, candidates: tuple[str, ...]) -> bool:
        return self.partition or any(candidate in self.values for candidate in candidates)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What rules look at: the provider slug, the model names it answers to, its metadata."""

    provider: str
    models: tuple[str, ...]  # as logged, `{provider}/{model}`, the name the client sent
    model_partition: str | None  # `{provider}/{model}`
    metadata: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class SpendRule:
    id: str
    limit: float
    limit_nano: int
    window_s: int
    technique: str
    slot_s: int  # sliding windows are kept in slots of this many seconds
    provider: Dimension | None
    model: Dimension | None
    metadata: tuple[tuple[str, Dimension], ...]

    @property
    def sliding(self) -> bool:
        return self.technique == "sliding"

    def bucket(self, call: CallFacts) -> str | None:
        """The bucket this call charges (rule id, technique, window, partition values), or None
        when a filter does not match it."""
        parts: list[str | None] = []
        if self.provider is not None:
            if not self.provider.admits((call.provider,)):
                return None
            if self.provider.partition:
                parts.append(call.provider)
        if self.model is not None:
            if not self.model.admits(call.models):
                return None
            if self.model.partition:
                parts.append(call.model_partition)
        for key, dimension in self.metadata:
            raw = call.metadata.get(key) if call.metadata is not None else None
            value = None if raw is None else as_text(raw)
            if not dimension.partition and (value is None or value not in dimension.values):
                return None
            if dimension.partition:
                parts.append(value)  # a missing key partitions as `null`: one shared budget
        head = f"{self.id}/{self.technique}/{self.window_s}/"
        return head + orjson.dumps(parts).decode() if parts else head


@dataclass(frozen=True, slots=True)
class SpendPolicy:
    rules: tuple[SpendRule, ...]

    def applicable(self, call: CallFacts) -> list[tuple[SpendRule, str]]:
        found: list[tuple[SpendRule, str]] = []
        for rule in self.rules:
            bucket = rule.bucket(call)
            if bucket is not None:
                found.append((rule, bucket))
        return found


def _dimension(raw: Any) -> Dimension | None:
    if not isinstance(raw, dict):
        return None
    return Dimension(raw.get("mode") == "partition", frozenset(as_text(v) for v in raw.get("values") or ()))


def compile_spend_limits(stored: Any) -> SpendPolicy | None:
    """The stored (already validated) `spend_limits` JSON; None when nothing is enforced."""
    if not isinstance(stored, dict) or stored.get("enabled") is False:
        return None
    rules: list[SpendRule] = []
    for raw in stored.get("rules") or ():
        if raw.get("enabled") is False:
            continue  # neither checked nor counted
        window = int(raw["window"])
        limit = float(raw["limit"])
        metadata = raw.get("metadata") or {}
        rules.append(
            SpendRule(
                id=str(raw["id"]),
                limit=limit,
                limit_nano=round(limit * NANO_PER_USD),
                window_s=window,
                technique=raw.get("technique", "sliding"),
                slot_s=max(1, -(-window // 1000)),
                provider=_dimension(raw.get("provider")),
                model=_dimension(raw.get("model")),
                metadata=tuple(
                    (key, dim) for key, value in metadata.items() if (dim := _dimension(value)) is not None
                ),
            )
        )
    return SpendPolicy(tuple(rules)) if rules else None
