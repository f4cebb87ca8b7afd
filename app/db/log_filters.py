"""Log filters as SQL: the filter keys of the public API (and a few of ours), their types and
operators, values checked and converted, and the conditions built on the `logs` table.

A `filters` entry is `{key, operator, value: [..]}`. Several values mean "any of them" (`eq`,
`contains`) or "none of them" (`neq`); `lt` and `gt` take exactly one value. Entries are ANDed.
`metadata.key` / `metadata.value` match the log's metadata entries (table `log_metadata`); when an
array holds both a `metadata.key` `eq` entry and `metadata.value` entries, the value entries are
about those keys (`{"key": "user", "value": "alice"}` as one pair), as the dashboard's metadata
filter means them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, false, func, not_, null, or_, select

from app.core.ids import canonical_log_id
from app.db.fields import as_utc
from app.db.log_store import LOGS, METADATA, metadata_text


class Kind(Enum):
    TEXT = "text"
    ID = "id"
    BOOL = "boolean"
    NUMBER = "number"
    INTEGER = "integer"
    DATE = "date"


_OPERATORS: dict[Kind, frozenset[str]] = {
    Kind.TEXT: frozenset({"eq", "neq", "contains"}),
    Kind.ID: frozenset({"eq", "neq", "contains", "lt", "gt"}),
    Kind.BOOL: frozenset({"eq", "neq"}),
    Kind.NUMBER: frozenset({"eq", "neq", "lt", "gt"}),
    Kind.INTEGER: frozenset({"eq", "neq", "lt", "gt"}),
    Kind.DATE: frozenset({"eq", "neq", "lt", "gt"}),
}
METADATA_KEYS = ("metadata.key", "metadata.value")
_NULL_TEXT = cast(null(), String)

TOTAL_TOKENS = func.coalesce(LOGS.c.tokens_in, 0) + func.coalesce(LOGS.c.tokens_out, 0)

# Filter key → (SQL expression, kind). The keys are the public API's; `model_type`
# and `wholesale` have no counterpart here and match as null / false.
FIELDS: dict[str, tuple[Any, Kind]] = {
    "id": (LOGS.c.id, Kind.ID),
    "created_at": (LOGS.c.created_at, Kind.DATE),
    "request_content_type": (LOGS.c.request_content_type, Kind.TEXT),
    "response_content_type": (LOGS.c.response_content_type, Kind.TEXT),
    "request_type": (LOGS.c.request_type, Kind.TEXT),
    "success": (LOGS.c.success, Kind.BOOL),
    "cached": (LOGS.c.cached, Kind.BOOL),
    "provider": (LOGS.c.provider, Kind.TEXT),
    "model": (LOGS.c.model, Kind.TEXT),
    "model_type": (_NULL_TEXT, Kind.TEXT),
    "cost": (LOGS.c.cost, Kind.NUMBER),
    "tokens": (TOTAL_TOKENS, Kind.NUMBER),
    "tokens_in": (LOGS.c.tokens_in, Kind.NUMBER),
    "tokens_out": (LOGS.c.tokens_out, Kind.NUMBER),
    "duration": (LOGS.c.duration_ms, Kind.NUMBER),
    "feedback": (LOGS.c.feedback, Kind.INTEGER),
    "score": (LOGS.c.score, Kind.INTEGER),
    "status_code": (LOGS.c.status_code, Kind.INTEGER),
    "step": (LOGS.c.step, Kind.INTEGER),
    "event_id": (LOGS.c.event_id, Kind.TEXT),
    "path": (LOGS.c.path, Kind.TEXT),
    "user_agent": (LOGS.c.user_agent, Kind.TEXT),
    "authentication": (LOGS.c.authenticated, Kind.BOOL),
    "custom_cost": (LOGS.c.custom_cost, Kind.BOOL),
    "compatibilityMode": (LOGS.c.request_type == "compat", Kind.BOOL),
    "wholesale": (false(), Kind.BOOL),
    "dlp_action": (LOGS.c.dlp_action, Kind.TEXT),
}
FILTER_KEYS = (*FIELDS, *METADATA_KEYS)


class FilterError(ValueError):
    """A bad filter; `field` names it (`filters.0.operator`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class LogFilter:
    key: str
    operator: str
    values: tuple[Any, ...]
    where: str = "filters"  # for error messages: `filters.0`


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValueError("expected true or false")


def parse_number(value: Any, integer: bool = False) -> float | int:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    if integer:
        if not number.is_integer():
            raise ValueError("expected an integer")
        return int(number)
    return number


def parse_date(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time")
    try:
        return as_utc(datetime.fromisoformat(value.strip().replace(" ", "T", 1)))
    except ValueError:
        raise ValueError("expected an ISO 8601 date-time") from None


def _convert(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    match kind:
        case Kind.BOOL:
            return parse_bool(value)
        case Kind.NUMBER:
            return parse_number(value)
        case Kind.INTEGER:
            return parse_number(value, integer=True)
        case Kind.DATE:
            return parse_date(value)
        case Kind.ID if isinstance(value, str):
            return canonical_log_id(value) or value  # a UUID or lower-case ULID names the same row
        case _:
            if isinstance(value, dict | list):
                raise ValueError("expected a string")
            return metadata_text(value) if not isinstance(value, str) else value


def validate(raw: LogFilter) -> LogFilter:
    """The filter with its values converted to its key's type; FilterError names what is wrong."""
    if raw.key not in FIELDS and raw.key not in METADATA_KEYS:
        raise FilterError(f"{raw.where}.key", f"unknown filter key {raw.key!r}")
    kind = FIELDS[raw.key][1] if raw.key in FIELDS else Kind.TEXT
    allowed = _OPERATORS[kind]
    if raw.operator not in allowed:
        raise FilterError(
            f"{raw.where}.operator",
            f"operator {raw.operator!r} not allowed for {raw.key!r} (use {', '.join(sorted(allowed))})",
        )
    if not raw.values:
        raise FilterError(f"{raw.where}.value", "at least one value is required")
    if len(raw.values) > 100:
        raise FilterError(f"{raw.where}.value", "at most 100 values")
    if raw.operator in ("lt", "gt") and len(raw.values) != 1:
        raise FilterError(f"{raw.where}.value", f"{raw.operator} takes exactly one value")
    values = []
    for index, value in enumerate(raw.values):
        try:
            converted = _convert(kind, value)
        except ValueError as exc:
            raise FilterError(f"{raw.where}.value.{index}", str(exc)) from None
        if converted is None and (kind is Kind.BOOL or raw.operator in ("lt", "gt", "contains")):
            raise FilterError(f"{raw.where}.value.{index}", f"null is not allowed with {raw.operator}")
        values.append(converted)
    return LogFilter(raw.key, raw.operator, tuple(values), raw.where)


def _bool_condition(expr: ColumnElement[Any], operator: str, values: Sequence[bool]) -> ColumnElement[bool]:
    wanted = set(values)
    if operator == "neq":
        wanted = {True, False} - wanted
    if wanted == {True, False}:
        return and_(expr.is_not(None))
    if not wanted:
        return and_(false())
    return and_(expr) if True in wanted else not_(expr)


def field_condition(expr: ColumnElement[Any], kind: Kind, f: LogFilter) -> ColumnElement[bool]:
    if kind is Kind.BOOL:
        return _bool_condition(expr, f.operator, f.values)
    present = [v for v in f.values if v is not None]
    has_null = len(present) < len(f.values)
    match f.operator:
        case "lt":
            return and_(expr < f.values[0])
        case "gt":
            return and_(expr > f.values[0])
        case "contains":
            return or_(*(expr.icontains(v, autoescape=True) for v in present))
        case "eq":
            parts = [expr.in_(present)] if present else []
            return or_(*parts, expr.is_(None)) if has_null else or_(*parts)
        case _:  # neq
            if not present:
                return and_(expr.is_not(None))
            if has_null:
                return and_(expr.not_in(present))
            return or_(expr.not_in(present), expr.is_(None))


def _metadata_ids(
    account_id: str, gateway_id: str, column: Any, f: LogFilter, keys: Sequence[str] = ()
) -> Any:
    """Ids of the gateway's logs with a metadata entry matching `f` (and one of `keys`)."""
    query = select(METADATA.c.log_id).where(
        METADATA.c.account_id == account_id, METADATA.c.gateway_id == gateway_id
    )
    if f.operator == "contains":
        query = query.where(or_(*(column.icontains(v, autoescape=True) for v in f.values)))
    else:
        query = query.where(column.in_(list(f.values)))
    if keys:
        query = query.where(METADATA.c.key.in_(list(keys)))
    return query


def _metadata_condition(
    account_id: str, gateway_id: str, f: LogFilter, keys: Sequence[str] = ()
) -> ColumnElement[bool]:
    column = METADATA.c.key if f.key == "metadata.key" else METADATA.c.value
    positive = f if f.operator != "neq" else LogFilter(f.key, "eq", f.values, f.where)
    ids = _metadata_ids(account_id, gateway_id, column, positive, keys)
    return LOGS.c.id.not_in(ids) if f.operator == "neq" else LOGS.c.id.in_(ids)


def conditions(account_id: str, gateway_id: str, filters: Sequence[LogFilter]) -> list[ColumnElement[bool]]:
    """SQL conditions for validated filters (see `validate`)."""
    pair_keys = [str(v) for f in filters if f.key == "metadata.key" and f.operator == "eq" for v in f.values]
    has_values = any(f.key == "metadata.value" for f in filters)
    out: list[ColumnElement[bool]] = []
    for f in filters:
        if f.key == "metadata.value":
            out.append(_metadata_condition(account_id, gateway_id, f, pair_keys))
        elif f.key == "metadata.key":
            if not (has_values and f.operator == "eq"):  # else implied by the paired value filters
                out.append(_metadata_condition(account_id, gateway_id, f))
        else:
            expr, kind = FIELDS[f.key]
            out.append(field_condition(expr, kind, f))
    return out


def search_condition(account_id: str, gateway_id: str, text: str) -> ColumnElement[bool]:
    """Free text: the id or event id, provider, model, path, or any metadata value."""
    in_metadata = select(METADATA.c.log_id).where(
        METADATA.c.account_id == account_id,
        METADATA.c.gateway_id == gateway_id,
        METADATA.c.value.icontains(text, autoescape=True),
    )
    return or_(
        LOGS.c.id == text,
        LOGS.c.event_id == text,
        LOGS.c.provider.icontains(text, autoescape=True),
        LOGS.c.model.icontains(text, autoescape=True),
        LOGS.c.path.icontains(text, autoescape=True),
        LOGS.c.id.in_(in_metadata),
    )
