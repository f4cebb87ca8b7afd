"""A route version compiled for the walk: elements by id, each with what it needs and where each
output leads. Built once per version when it is loaded, never per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.routing.conditions import Predicate, compile_condition, compile_path


@dataclass(frozen=True, slots=True)
class Start:
    id: str
    next: str


@dataclass(frozen=True, slots=True)
class Conditional:
    id: str
    predicate: Predicate
    if_true: str
    if_false: str


@dataclass(frozen=True, slots=True)
class Percentage:
    id: str
    thresholds: tuple[tuple[float, str], ...]  # (running sum of percentages, target), in key order
    otherwise: str | None


@dataclass(frozen=True, slots=True)
class Limit:
    id: str
    limit_type: Literal["count", "cost"]
    key: tuple[str, ...] | None  # None: one counter for everyone
    limit: float
    window_s: int
    technique: str
    success: str
    fallback: str


@dataclass(frozen=True, slots=True)
class ModelCall:
    id: str
    provider: str
    model: str
    timeout_ms: int
    retries: int
    success: str
    fallback: str


@dataclass(frozen=True, slots=True)
class End:
    id: str


Element = Start | Conditional | Percentage | Limit | ModelCall | End


@dataclass(frozen=True, slots=True)
class RouteGraph:
    route_id: str
    name: str
    version_id: str
    start: str
    elements: dict[str, Element]


def _target(element: dict[str, Any], name: str) -> str:
    return str(element["outputs"][name]["elementId"])


def _compile_element(raw: dict[str, Any]) -> Element:
    kind, element_id = raw["type"], raw["id"]
    props: dict[str, Any] = raw.get("properties") or {}
    if kind == "start":
        return Start(element_id, _target(raw, "next"))
    if kind == "conditional":
        predicate = compile_condition(props.get("conditions") or {})
        return Conditional(element_id, predicate, _target(raw, "true"), _target(raw, "false"))
    if kind == "percentage":
        running, thresholds = 0.0, []
        for key, output in raw["outputs"].items():
            if key != "else":
                running += float(key[:-1])
                thresholds.append((running, str(output["elementId"])))
        otherwise = raw["outputs"].get("else")
        return Percentage(element_id, tuple(thresholds), otherwise and str(otherwise["elementId"]))
    if kind == "rate":
        key = props["key"]
        return Limit(
            element_id, props["limitType"], compile_path(key) if key else None, float(props["limit"]),
            int(props["window"]), props.get("technique", "sliding"),
            _target(raw, "success"), _target(raw, "fallback"),
        )  # fmt: skip
    if kind == "model":
        return ModelCall(
            element_id, props["provider"], props["model"], int(props["timeout"]), int(props["retries"]),
            _target(raw, "success"), _target(raw, "fallback"),
        )  # fmt: skip
    return End(element_id)


def compile_graph(route_id: str, name: str, version_id: str, elements: list[dict[str, Any]]) -> RouteGraph:
    """A version's (already validated, normalised) elements as a walkable graph."""
    compiled = {raw["id"]: _compile_element(raw) for raw in elements}
    start = next(e.id for e in compiled.values() if isinstance(e, Start))
    return RouteGraph(route_id, name, version_id, start, compiled)
