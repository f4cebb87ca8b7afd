"""The gateway field `dlp` in both of the SDK's shapes, validated (one error per bad field), and
compiled once per configuration into what the request path runs: the enabled policies and one
detector per phase over the union of their profiles.

    simple:   {"enabled", "action", "profiles"}   -> one policy `default` checking both phases
    policies: {"enabled", "policies": [{"id", "enabled", "action", "check", "profiles"}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, Field, model_validator

from app.dlp.detector import ProfileSetDetector, detector_for
from app.dlp.profiles import PROFILES

Action = Literal["BLOCK", "FLAG"]
Check = Literal["REQUEST", "RESPONSE"]
MAX_POLICIES = 20


def _known_profile(value: str) -> str:
    if value not in PROFILES:
        raise ValueError(f"unknown profile {value!r}")
    return value


ProfileId = Annotated[str, AfterValidator(_known_profile)]


def _distinct_checks(value: list[Check]) -> list[Check]:
    if len(set(value)) != len(value):
        raise ValueError("holds a check twice")
    return value


class DlpPolicyIn(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    enabled: bool
    action: Action
    check: Annotated[list[Check], Field(min_length=1), AfterValidator(_distinct_checks)]
    profiles: list[ProfileId] = Field(min_length=1)


class DlpIn(BaseModel):
    """Either shape: `policies`, or `action` with `profiles` (the simple one)."""

    enabled: bool
    action: Action | None = None
    profiles: list[ProfileId] | None = Field(default=None, min_length=1)
    policies: list[DlpPolicyIn] | None = Field(default=None, max_length=MAX_POLICIES)

    @model_validator(mode="after")
    def _one_shape(self) -> DlpIn:
        if self.policies is not None:
            if self.action is not None or self.profiles is not None:
                raise ValueError("give either `policies` or `action` with `profiles`, not both")
            ids = [policy.id for policy in self.policies]
            if len(set(ids)) != len(ids):
                raise ValueError("policy ids must be distinct")
        elif self.action is None or self.profiles is None:
            raise ValueError("needs `policies`, or both `action` and `profiles`")
        return self

    def stored(self) -> dict[str, Any]:
        """The shape that was written (what GET returns)."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    action: Action
    checks: frozenset[str]
    profiles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledDlp:
    policies: tuple[Policy, ...]  # enabled ones, in configuration order
    request: ProfileSetDetector | None  # None: no policy checks that phase
    response: ProfileSetDetector | None

    def detector(self, check: Check) -> ProfileSetDetector | None:
        return self.request if check == "REQUEST" else self.response


def compile_dlp(stored: dict[str, Any] | None) -> CompiledDlp | None:
    """What the request path runs for a stored `dlp` field, or None when DLP is off."""
    if not stored or not stored.get("enabled"):
        return None
    return _compiled(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=1024)
def _compiled(key: bytes) -> CompiledDlp | None:
    config = DlpIn.model_validate_json(key)
    if config.policies is None:
        assert config.action is not None and config.profiles is not None
        policies = [
            Policy("default", config.action, frozenset(("REQUEST", "RESPONSE")), tuple(config.profiles))
        ]
    else:
        policies = [
            Policy(p.id, p.action, frozenset(p.check), tuple(p.profiles))
            for p in config.policies
            if p.enabled
        ]
    if not policies:
        return None

    def detector(check: str) -> ProfileSetDetector | None:
        profiles = frozenset(pid for p in policies if check in p.checks for pid in p.profiles)
        return detector_for(profiles) if profiles else None

    return CompiledDlp(tuple(policies), detector("REQUEST"), detector("RESPONSE"))
