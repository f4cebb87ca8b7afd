"""The gateway field `spend_limits` as the management API accepts it (spend-limits.md §1).

Validation happens here, once, when a gateway is written: the stored JSON is already normalised
(every rule has its `id`, `enabled` and `technique`), so the request path only compiles it.
Field names are the wire's camelCase (`limitType`), so what is stored is what GET returns.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_RULES = 20
MAX_METADATA_KEYS = 5
MAX_VALUES = 100
MAX_VALUE_CHARS = 256
MAX_WINDOW_S = 31_536_000
RULE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# Metadata values are compared as strings (`12345`, `true`), so numbers and booleans are accepted.
FilterValue = Annotated[str | StrictInt | StrictBool | float, Field(union_mode="left_to_right")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimension(_Strict):
    """`{"mode": "filter", "values": [...]}` or `{"mode": "partition"}`."""

    mode: Literal["filter", "partition"]
    values: list[FilterValue] | None = None

    @field_validator("values")
    @classmethod
    def _bounded(cls, values: list[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        if len(values) > MAX_VALUES:
            raise ValueError(f"at most {MAX_VALUES} values")
        if any(len(str(value)) > MAX_VALUE_CHARS for value in values):
            raise ValueError(f"each value at most {MAX_VALUE_CHARS} characters")
        return values

    @model_validator(mode="after")
    def _values_for_filter(self) -> Dimension:
        if self.mode == "filter" and not self.values:
            raise PydanticCustomError(
                "values_required", "required (non-empty) with mode filter", {"at": "values"}
            )
        if self.mode == "partition":
            self.values = None  # a partition splits by value; listed values would mean nothing
        return self


class SpendRule(_Strict):
    id: str | None = None
    enabled: StrictBool = True
    limit: float
    limitType: Literal["cost"]
    window: StrictInt
    technique: Literal["fixed", "sliding"] = "sliding"
    provider: Dimension | None = None
    model: Dimension | None = None
    metadata: dict[str, Dimension] | None = None

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str | None) -> str | None:
        if value is not None and not RULE_ID.match(value):
            raise ValueError("must match ^[A-Za-z0-9_.:-]{1,64}$")
        return value

    @field_validator("limit")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be > 0")
        return value

    @field_validator("window")
    @classmethod
    def _window_range(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be ≥ 1")
        if value > MAX_WINDOW_S:
            raise ValueError(f"must be ≤ {MAX_WINDOW_S}")
        return value

    @field_validator("metadata")
    @classmethod
    def _few_keys(cls, value: dict[str, Dimension] | None) -> dict[str, Dimension] | None:
        if value is not None and len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        if value is not None and any(not key or len(key) > MAX_VALUE_CHARS for key in value):
            raise ValueError(f"keys must be 1..{MAX_VALUE_CHARS} characters")
        return value


class SpendLimits(_Strict):
    enabled: StrictBool = True
    rules: list[SpendRule] = Field(default_factory=list, max_length=MAX_RULES)

    @model_validator(mode="after")
    def _unique_ids(self) -> SpendLimits:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id is None:
                continue
            if rule.id in seen:
                # Reported on the later entry: `at` deepens the location the API prints.
                raise PydanticCustomError(
                    "duplicate_id", f"duplicate id {rule.id!r}", {"at": f"rules.{index}.id"}
                )
            seen.add(rule.id)
        for rule in self.rules:  # ids the server assigns: 8 lowercase hex, unique in the gateway
            while rule.id is None:
                candidate = secrets.token_hex(4)
                if candidate not in seen:
                    rule.id = candidate
                    seen.add(candidate)
        return self

    def stored(self) -> dict[str, Any]:
        """The normalised JSON kept in the gateway row and returned by GET."""
        return self.model_dump(mode="json", exclude_none=True)
