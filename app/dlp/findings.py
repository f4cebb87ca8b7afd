"""What DLP found in one request: one finding per (profile, check) with the entries that matched
and the policies that named that profile for that check, the overall action, and their wire forms
(the `cf-aig-dlp` header, the log's `dlp` column with counts). Never any matched text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.dlp.config import Check, CompiledDlp
from app.dlp.detector import Match
from app.dlp.profiles import ENTRY_PROFILE


@dataclass(slots=True)
class Finding:
    profile_id: str
    check: Check
    policy_ids: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # entry id -> matches, in first-seen order

    def public(self) -> dict[str, Any]:
        return {
            "profile": {"context": {}, "entry_ids": list(self.counts), "profile_id": self.profile_id},
            "policy_ids": self.policy_ids,
            "check": self.check,
        }


class Findings:
    __slots__ = ("_config", "action", "items")

    def __init__(self, config: CompiledDlp) -> None:
        self._config = config
        self.items: list[Finding] = []
        self.action: str | None = None  # "FLAG" or "BLOCK" once anything was found

    def add(self, check: Check, matches: list[Match]) -> bool:
        """Record a phase's matches; True when they make the request BLOCK."""
        blocked = False
        for match in matches:
            profile_id = ENTRY_PROFILE[match.entry_id]
            finding = self._finding(profile_id, check)
            finding.counts[match.entry_id] = finding.counts.get(match.entry_id, 0) + 1
        for policy in self._config.policies:
            if check in policy.checks and any(
                f.check == check and f.profile_id in policy.profiles for f in self.items
            ):
                blocked = blocked or policy.action == "BLOCK"
        if self.items:
            self.action = "BLOCK" if blocked or self.action == "BLOCK" else "FLAG"
        return blocked

    def _finding(self, profile_id: str, check: Check) -> Finding:
        for finding in self.items:
            if finding.profile_id == profile_id and finding.check == check:
                return finding
        policies = [p.id for p in self._config.policies if check in p.checks and profile_id in p.profiles]
        finding = Finding(profile_id, check, policies)
        self.items.append(finding)
        self.items.sort(key=lambda f: f.check != "REQUEST")  # REQUEST findings first (stable)
        return finding

    def has(self, check: Check) -> bool:
        return any(f.check == check for f in self.items)

    def header(self) -> str | None:
        """The `cf-aig-dlp` value, or None when nothing was found."""
        if not self.items:
            return None
        body = {"findings": [f.public() for f in self.items], "action": self.action}
        return orjson.dumps(body).decode()

    def log_json(self) -> dict[str, Any] | None:
        if not self.items:
            return None
        findings = [{**f.public(), "counts": dict(f.counts)} for f in self.items]
        return {"findings": findings, "action": self.action}
