"""The `filters` array of the logs list and delete, accepted in every form clients send it:
- JSON in one parameter: `filters=[{"key":"provider","operator":"eq","value":["openai"]}]`;
- brackets with indices: `filters[0][key]=provider&filters[0][operator]=eq&filters[0][value][0]=openai`
  (also `filters[0][value][]=…`, `filters[0][value]=…` repeated, and dots: `filters.0.key=…`);
- what the official `cloudflare` Python SDK sends (dotted names, arrays repeated, no indices), which
  httpx puts on the wire grouped by name: `filters.key=provider&filters.key=success&
  filters.operator=eq&filters.operator=eq&filters.value=openai&filters.value=true`. That form keeps
  the i-th key with the i-th operator but loses which values go with which filter: values are
  matched one per filter (or all to a single filter), anything else is a 400 (see
  `_unindexed_filters`). The same names written interleaved (`filters.key=…&filters.operator=…&
  filters.value=…&filters.key=…`) are grouped in the order given.

Malformed parts are 400s naming the field (`filters.0.key`); filter keys, operators and values are
checked by app/db/log_filters.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError

from app.db.log_filters import LogFilter

MAX_FILTERS = 50
_INDEXED = re.compile(r"^filters[.\[](\d+)\]?[.\[]?(\w+)\]?(.*)$")
_SEQUENTIAL = re.compile(r"^filters(?:\[\])?[.\[](key|operator|value)\]?(.*)$")


def invalid(errors: Sequence[tuple[str, str]]) -> RequestValidationError:
    """A 400 in the v4 envelope with one entry per field (rendered by app.api.envelope)."""
    return RequestValidationError(
        [
            {"loc": ("query", *field.split(".")), "msg": message, "type": "value_error"}
            for field, message in errors
        ]
    )


def _json_filters(raw: str) -> list[dict[str, Any]]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid([("filters", "not valid JSON")]) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(item, dict) for item in items):
        raise invalid([("filters", "expected an array of {key, operator, value} objects")])
    return items


def _as_filter(item: dict[str, Any], where: str) -> LogFilter:
    unknown = set(item) - {"key", "operator", "value"}
    if unknown:
        raise invalid([(f"{where}.{sorted(unknown)[0]}", "unknown field (use key, operator, value)")])
    key, operator, value = item.get("key"), item.get("operator"), item.get("value")
    if not isinstance(key, str):
        raise invalid([(f"{where}.key", "required")])
    if not isinstance(operator, str):
        raise invalid([(f"{where}.operator", "required")])
    values = value if isinstance(value, list) else [] if "value" not in item else [value]
    return LogFilter(key, operator, tuple(values), where)


def _add_part(target: dict[str, Any], name: str, value: str) -> bool:
    """Put one key/operator/value part on a filter being assembled; False if it is already set."""
    if name == "value":
        target.setdefault("value", []).append(value)
        return True
    if name in target:
        return False
    target[name] = value
    return True


def _interleaved(parts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """key/operator/value parts in filter order: a new filter starts when key or operator repeats."""
    out: list[dict[str, Any]] = []
    for name, value in parts:
        if not out or not _add_part(out[-1], name, value):
            out.append({})
            _add_part(out[-1], name, value)
    return out


def _unindexed_filters(parts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Filters sent without indices. In the order a client wrote them (each name's occurrences
    interleaved), parts are grouped as they come. The cloudflare SDK's requests arrive grouped by
    name instead (httpx collects repeated names together: all `filters.key`, then all
    `filters.operator`, then all `filters.value`), which keeps the i-th key with the i-th operator
    but not which values belong to which filter; values are then matched one per filter, or all to
    the only filter, and anything else is refused as ambiguous."""
    if not parts:
        return []
    names = [name for name, _ in parts]
    runs = [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]
    if len(runs) != len(set(runs)):
        return _interleaved(parts)
    keys = [v for n, v in parts if n == "key"]
    operators = [v for n, v in parts if n == "operator"]
    values = [v for n, v in parts if n == "value"]
    if len(keys) != len(operators):
        raise invalid([("filters", f"{len(keys)} filters.key but {len(operators)} filters.operator")])
    if len(keys) == 1:
        return [{"key": keys[0], "operator": operators[0], "value": values}]
    if len(values) != len(keys):
        raise invalid(
            [
                (
                    "filters.value",
                    f"{len(keys)} filters and {len(values)} values: in this form (the cloudflare SDK's) "
                    "which value belongs to which filter is lost; give each filter one value, or send "
                    "filters as JSON",
                )
            ]
        )
    return [{"key": k, "operator": o, "value": [v]} for k, o, v in zip(keys, operators, values, strict=True)]


def split_filters(items: Sequence[tuple[str, str]]) -> tuple[dict[str, str], list[LogFilter]]:
    """Separate the `filters` array (any form) from the plain parameters, which must be unique."""
    plain: dict[str, str] = {}
    json_items: list[dict[str, Any]] = []
    indexed: dict[int, dict[str, Any]] = {}
    unindexed: list[tuple[str, str]] = []
    for name, value in items:
        if name == "filters":
            json_items.extend(_json_filters(value))
        elif match := _INDEXED.match(name):
            index, part = int(match.group(1)), match.group(2)
            if index >= MAX_FILTERS or part not in ("key", "operator", "value"):
                raise invalid([(f"filters.{index}", f"unexpected parameter {name!r}")])
            if not _add_part(indexed.setdefault(index, {}), part, value):
                raise invalid([(f"filters.{index}.{part}", "given more than once")])
        elif match := _SEQUENTIAL.match(name):
            unindexed.append((match.group(1), value))
        elif name.startswith("filters"):
            raise invalid([("filters", f"unexpected parameter {name!r}")])
        elif name in plain:
            raise invalid([(name, "given more than once")])
        else:
            plain[name] = value
    assembled = [*json_items, *(indexed[i] for i in sorted(indexed)), *_unindexed_filters(unindexed)]
    if len(assembled) > MAX_FILTERS:
        raise invalid([("filters", f"at most {MAX_FILTERS} filters")])
    return plain, [_as_filter(item, f"filters.{i}") for i, item in enumerate(assembled)]
