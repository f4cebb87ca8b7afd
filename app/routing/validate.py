"""Whole-graph validation of a version's `elements` (routing.md §4): every problem is reported,
each as one 1001 entry with its `path` (`["body", "elements", i, …]`). What passes is returned
normalised to the SDK's spellings (`rate`, `conditions`, `window`, a filled-in `fallback`)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from app.providers.compat import openai_like
from app.providers.compat.registry import TRANSLATED
from app.routing.conditions import compile_condition, compile_path

MAX_ELEMENTS = 100
ELEMENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ROUTE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PERCENT_KEY = re.compile(r"^\d{1,3}(\.\d{1,2})?%$")
# Required outputs of each type; `None` for percentage (its keys are checked on their own).
REQUIRED: dict[str, tuple[str, ...]] = {
    "start": ("next",),
    "conditional": ("true", "false"),
    "rate": ("success",),
    "model": ("success",),
    "end": (),
}
OPTIONAL: dict[str, tuple[str, ...]] = {"rate": ("fallback",), "model": ("fallback",)}
TYPES = frozenset({*REQUIRED, "percentage"})


@dataclass(frozen=True, slots=True)
class Problem:
    path: tuple[str | int, ...]
    why: str

    @property
    def message(self) -> str:
        return f"{'.'.join(str(p) for p in self.path[1:])}: {self.why}"


def is_compat_provider(slug: str) -> bool:
    return slug in openai_like.OPENAI_LIKE or slug in TRANSLATED or slug.startswith("custom-")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integral(value: Any) -> bool:
    return _number(value) and float(value).is_integer()


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, path: tuple[str | int, ...], why: str) -> None:
        self.problems.append(Problem(("body", "elements", *path), why))

    def element(self, i: int, raw: dict[str, Any]) -> None:
        kind = raw.get("type")
        if kind == "rate_limit":
            kind = raw["type"] = "rate"
        if kind not in TYPES:
            self.bad((i, "type"), f"unknown element type {str(kind)[:40]!r}")
            return
        props = raw.get("properties")
        if props is None:
            props = raw["properties"] = {}
        if not isinstance(props, dict):
            self.bad((i, "properties"), "must be an object")
            return
        if kind == "conditional":
            self.conditional(i, props)
        elif kind == "rate":
            self.rate(i, props)
        elif kind == "model":
            self.model(i, props)
        elif not props:  # start, end, percentage: nothing to configure, so none is sent back
            del raw["properties"]
        self.outputs(i, kind, raw)

    def conditional(self, i: int, props: dict[str, Any]) -> None:
        if "condition" in props and "conditions" not in props:
            props["conditions"] = props.pop("condition")
        conditions = props.setdefault("conditions", {})
        try:
            compile_condition(conditions)
        except ValueError as exc:
            self.bad((i, "properties", "conditions"), str(exc))

    def rate(self, i: int, props: dict[str, Any]) -> None:
        if "interval" in props and "window" not in props:
            props["window"] = props.pop("interval")
        where = (i, "properties")
        if props.get("limitType") not in ("count", "cost"):
            self.bad((*where, "limitType"), "must be 'count' or 'cost'")
        key = props.get("key")
        if not isinstance(key, str):
            self.bad((*where, "key"), "must be a string (a path such as metadata.user_id, or '')")
        elif key:
            try:
                compile_path(key)
            except ValueError as exc:
                self.bad((*where, "key"), str(exc))
        if not _number(props.get("limit")) or props["limit"] <= 0:
            self.bad((*where, "limit"), "must be a number greater than 0")
        if not _integral(props.get("window")) or props["window"] < 1:
            self.bad((*where, "window"), "must be a whole number of seconds, at least 1")
        else:
            props["window"] = int(props["window"])
        technique = props.setdefault("technique", "sliding")
        if technique not in ("fixed", "sliding"):
            self.bad((*where, "technique"), "must be 'fixed' or 'sliding'")

    def model(self, i: int, props: dict[str, Any]) -> None:
        where = (i, "properties")
        provider = props.get("provider")
        if not isinstance(provider, str) or not is_compat_provider(provider):
            self.bad((*where, "provider"), f"unknown provider {str(provider)[:64]!r}")
        model = props.get("model")
        if not isinstance(model, str) or not 0 < len(model) <= 255 or not model.isprintable():
            self.bad((*where, "model"), "must be a string of 1..255 printable characters")
        timeout: Any = props.get("timeout")
        if not _integral(timeout) or not 1 <= timeout <= 600_000:
            self.bad((*where, "timeout"), "must be a whole number of milliseconds, 1..600000")
        else:
            props["timeout"] = int(timeout)
        retries = props.get("retries", 0)
        if not _integral(retries) or not 0 <= retries <= 4:
            self.bad((*where, "retries"), "must be a whole number, 0..4")
        else:
            props["retries"] = int(retries)

    def outputs(self, i: int, kind: str, raw: dict[str, Any]) -> None:
        outputs = raw.get("outputs")
        if outputs is None and kind == "end":
            outputs = raw["outputs"] = {}
        if not isinstance(outputs, dict):
            self.bad((i, "outputs"), "must be an object")
            raw["outputs"] = {}
            return
        for name, output in outputs.items():
            if not isinstance(output, dict) or not isinstance(output.get("elementId"), str):
                self.bad((i, "outputs", name), 'must be {"elementId": "<id>"}')
        if kind == "percentage":
            self.percentages(i, outputs)
            return
        allowed = REQUIRED[kind] + OPTIONAL.get(kind, ())
        for name in REQUIRED[kind]:
            if name not in outputs:
                self.bad((i, "outputs", name), "required output missing")
        for name in outputs:
            if name not in allowed:
                why = "an end element has no outputs" if kind == "end" else f"unknown output {name[:40]!r}"
                self.bad((i, "outputs", name), why)

    def percentages(self, i: int, outputs: dict[str, Any]) -> None:
        keys = [k for k in outputs if k != "else"]
        total = 0.0
        for key in keys:
            if not PERCENT_KEY.match(key):
                self.bad((i, "outputs", key), "a percentage key looks like '25%' or '12.5%'")
            else:
                total += float(key[:-1])
        if not 1 <= len(keys) <= 5:
            self.bad((i, "outputs"), "between 1 and 5 percentage outputs are allowed")
        if total > 100.0 + 1e-9:
            self.bad((i, "outputs"), f"percentages sum to {total:g}, more than 100")
        elif total < 100.0 - 1e-9 and "else" not in outputs:
            self.bad((i, "outputs"), f"percentages sum to {total:g}: an 'else' output is required")


def _ids(checker: _Checker, elements: list[Any]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, raw in enumerate(elements):
        if not isinstance(raw, dict):
            checker.bad((i,), "must be an object")
            continue
        element_id = raw.get("id")
        if not isinstance(element_id, str) or not ELEMENT_ID.match(element_id):
            checker.bad((i, "id"), "must match ^[A-Za-z0-9_.:-]{1,64}$")
        elif element_id in index:
            checker.bad((i, "id"), f"duplicate element id {element_id!r}")
        else:
            index[element_id] = i
    return index


def _edges(checker: _Checker, elements: list[Any], index: dict[str, int]) -> dict[str, list[str]]:
    """Each element's valid targets; unknown targets, and edges into start, are problems."""
    edges: dict[str, list[str]] = {}
    for i, raw in enumerate(elements):
        if not isinstance(raw, dict) or index.get(raw.get("id", "")) != i:
            continue
        targets = edges[raw["id"]] = []
        for name, output in (raw.get("outputs") or {}).items():
            target = output.get("elementId") if isinstance(output, dict) else None
            if not isinstance(target, str):
                continue
            where = (i, "outputs", name, "elementId")
            if target not in index:
                checker.bad(where, f"unknown element {target[:64]!r}")
            elif elements[index[target]].get("type") == "start":
                checker.bad(where, "no output may point to the start element")
            else:
                targets.append(target)
                model_success = raw.get("type") == "model" and name == "success"
                if model_success and elements[index[target]].get("type") != "end":
                    checker.bad(where, "success of a model element must point to an end element")
    return edges


def _walk(
    checker: _Checker, start: str, edges: dict[str, list[str]], index: dict[str, int], starts: set[str]
) -> None:
    """Cycles and unreachable elements, by one depth-first walk from start."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in edges.get(node, ()):
            if state.get(target) == 1:
                loop = [*path[path.index(target) :], target]
                checker.bad((index[node],), f"cycle: {' → '.join(loop)}")
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    visit(start)
    for element_id, i in index.items():
        if element_id not in state and element_id not in starts:  # an extra start has its own entry
            checker.bad((i,), f"unreachable element {element_id!r}")


def _fill_fallbacks(elements: list[dict[str, Any]]) -> None:
    """An absent `fallback` of a model or rate element becomes the end that its success points to
    (or, for a rate element, the first end): the SDK needs the field."""
    by_id = {e["id"]: e for e in elements}
    first_end = next(e["id"] for e in elements if e["type"] == "end")
    for element in elements:
        outputs = element["outputs"]
        if element["type"] in ("model", "rate") and "fallback" not in outputs:
            success = by_id[outputs["success"]["elementId"]]
            target = success["id"] if success["type"] == "end" else first_end
            outputs["fallback"] = {"elementId": target}


def validate_elements(elements: Any) -> tuple[list[dict[str, Any]], list[Problem]]:
    """(normalised copy, problems); the copy is meaningful only when there are no problems."""
    checker = _Checker()
    if not isinstance(elements, list) or not elements:
        checker.bad((), "must be a non-empty array of elements")
        return [], checker.problems
    if len(elements) > MAX_ELEMENTS:
        checker.bad((), f"at most {MAX_ELEMENTS} elements are allowed")
        return [], checker.problems
    elements = copy.deepcopy(elements)
    index = _ids(checker, elements)
    for i, raw in enumerate(elements):
        if isinstance(raw, dict):
            checker.element(i, raw)
    starts = [i for i, raw in enumerate(elements) if isinstance(raw, dict) and raw.get("type") == "start"]
    if not starts:
        checker.bad((), "missing start element")
    for i in starts[1:]:
        checker.bad((i,), "more than one start element")
    if not any(isinstance(raw, dict) and raw.get("type") == "end" for raw in elements):
        checker.bad((), "missing end element")
    edges = _edges(checker, elements, index)
    start_id = elements[starts[0]].get("id") if starts else None
    if isinstance(start_id, str) and start_id in index:
        extra = {elements[i].get("id") for i in starts[1:]}
        _walk(checker, start_id, edges, index, {e for e in extra if isinstance(e, str)})
    if not checker.problems:
        _fill_fallbacks(elements)
    return elements, checker.problems
