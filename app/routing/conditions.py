"""Route conditions: a MongoDB-like query over the request's metadata, headers and JSON body
(routing.md §3.1), checked on write and compiled into one predicate per element.

Paths: `metadata.<key>`, `headers.<name>` (lower-case; credentials always read as absent),
`body.<dotted.path>` (numeric segments index arrays). Operators: `$eq $ne $gt $gte $lt $lte $in $nin
$exists`; a bare value is `$eq`; several paths are ANDed; top-level `$and`, `$or`, `$not` combine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ROOTS = ("metadata", "headers", "body")
# Never readable by a condition or a limit key: they are secrets, not routing facts.
HIDDEN_HEADERS = frozenset({"authorization", "cf-aig-authorization", "x-api-key"})
_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class RequestView:
    """What conditions and limit keys read from a request."""

    metadata: Mapping[str, Any]
    headers: Mapping[str, str]  # lower-case names
    body: Any  # the parsed JSON body

    def lookup(self, path: tuple[str, ...]) -> Any:
        """The value at a compiled path, or MISSING."""
        root, rest = path[0], path[1:]
        if root == "metadata":
            return self.metadata.get(rest[0], MISSING) if rest else MISSING
        if root == "headers":
            name = rest[0] if rest else ""
            return MISSING if name in HIDDEN_HEADERS else self.headers.get(name, MISSING)
        value = self.body
        for part in rest:
            if isinstance(value, dict):
                value = value.get(part, MISSING)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return MISSING
            if value is MISSING:
                return MISSING
        return value


Predicate = Callable[[RequestView], bool]


def compile_path(text: str) -> tuple[str, ...]:
    """A dotted path as its parts; ValueError names what is wrong."""
    parts = tuple(text.split("."))
    if parts[0] not in ROOTS:
        raise ValueError(f"unknown path root {parts[0][:40]!r} (expected metadata, headers or body)")
    if len(parts) < 2 or not all(parts[1:]):
        raise ValueError(f"path {text[:80]!r} names no field")
    if parts[0] == "headers":
        return ("headers", ".".join(parts[1:]).lower())
    if parts[0] == "metadata":
        return ("metadata", ".".join(parts[1:]))
    return parts


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_kind(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (type(a) is type(b))


def _equal(a: Any, b: Any) -> bool:
    return _same_kind(a, b) and a == b


def _ordered(op: str, a: Any, b: Any) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False  # a type mismatch is false
    if op == "$gt":
        return bool(a > b)
    if op == "$gte":
        return bool(a >= b)
    if op == "$lt":
        return bool(a < b)
    return bool(a <= b)


def _operator(op: str, operand: Any) -> Callable[[Any], bool]:
    if op == "$eq":
        return lambda v: v is not MISSING and _equal(v, operand)
    if op == "$ne":
        return lambda v: v is MISSING or not _equal(v, operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return lambda v: v is not MISSING and _ordered(op, v, operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise ValueError(f"{op} takes an array")
        if op == "$in":
            return lambda v: v is not MISSING and any(_equal(v, item) for item in operand)
        return lambda v: v is MISSING or not any(_equal(v, item) for item in operand)
    if not isinstance(operand, bool):
        raise ValueError("$exists takes true or false")
    return lambda v: (v is not MISSING) is operand


def _field(path_text: str, spec: Any) -> Predicate:
    path = compile_path(path_text)
    if isinstance(spec, dict) and spec and all(isinstance(k, str) and k.startswith("$") for k in spec):
        unknown = [k for k in spec if k not in _OPERATORS]
        if unknown:
            raise ValueError(f"unknown operator {unknown[0][:20]!r}")
        tests = [_operator(op, operand) for op, operand in spec.items()]
    else:
        tests = [_operator("$eq", spec)]

    def check(view: RequestView) -> bool:
        value = view.lookup(path)
        return all(test(value) for test in tests)

    return check


def _always(_view: RequestView) -> bool:
    return True


def _all_of(parts: list[Predicate]) -> Predicate:
    return lambda view: all(part(view) for part in parts)


def _any_of(parts: list[Predicate]) -> Predicate:
    return lambda view: any(part(view) for part in parts)


def _none_of(parts: list[Predicate]) -> Predicate:
    return lambda view: not any(part(view) for part in parts)


def compile_condition(query: Any) -> Predicate:
    """The predicate of a condition object; ValueError (with a message for the 1001 entry) when it
    is malformed."""
    if not isinstance(query, dict):
        raise ValueError("a condition must be an object")
    checks: list[Predicate] = []
    for key, spec in query.items():
        if key in ("$and", "$or"):
            if not isinstance(spec, list) or not spec:
                raise ValueError(f"{key} takes a non-empty array of conditions")
            parts = [compile_condition(item) for item in spec]
            checks.append(_all_of(parts) if key == "$and" else _any_of(parts))
        elif key == "$not":
            checks.append(_none_of([compile_condition(spec)]))
        elif key.startswith("$"):
            raise ValueError(f"unknown operator {key[:20]!r}")
        else:
            checks.append(_field(key, spec))
    if not checks:
        return _always  # `{}` is true
    return checks[0] if len(checks) == 1 else _all_of(checks)
