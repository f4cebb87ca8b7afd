"""The query string of the logs list and delete: plain parameters and the `filters` array.

`filters` is accepted in every form clients send:
- JSON in one parameter: `filters=[{"key":"provider","operator":"eq","value":["openai"]}]`;
- brackets with indices: `filters[0][key]=provider&filters[0][operator]=eq&filters[0][value][0]=openai`
  (also `filters[0][value][]=…`, `filters[0][value]=…` repeated, and dots: `filters.0.key=…`);
- what the official `cloudflare` Python SDK sends (dotted names, arrays repeated, no indices):
  `filters.key=provider&filters.operator=eq&filters.value=openai&filters.value=anthropic&filters.key=…`.
  A new filter starts when `key` or `operator` comes again, so each filter's values must follow its
  key and operator — as they do when the SDK is given `{"key", "operator", "value"}` dicts.

Unknown parameters, unknown filter keys or operators and values of the wrong type are 400s naming
the field; nothing here can become a 500.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement

from app.db.fields import as_utc
from app.db.log_filters import (
    FILTER_KEYS,
    TOTAL_TOKENS,
    FilterError,
    LogFilter,
    conditions,
    search_condition,
    validate,
)
from app.db.log_store import LOGS, GatewayKey

MAX_FILTERS = 50
_INDEXED = re.compile(r"^filters[.\[](\d+)\]?[.\[]?(\w+)\]?(.*)$")
_SEQUENTIAL = re.compile(r"^filters(?:\[\])?[.\[](key|operator|value)\]?(.*)$")

ListOrder = Literal[
    "created_at", "provider", "model", "model_type", "success", "cached", "cost", "duration",
    "tokens_in", "tokens_out", "total_tokens", "feedback", "score", "status_code",
]  # fmt: skip
Direction = Literal["asc", "desc"]


class LogFilterParams(BaseModel):
    """Plain filter parameters, shared by list and delete (names as in the public API and SDK)."""

    model_config = ConfigDict(extra="forbid")

    start_date: datetime | None = None
    end_date: datetime | None = None
    search: str | None = Field(default=None, min_length=1, max_length=256)
    cached: bool | None = None
    success: bool | None = None
    provider: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=255)
    model_type: str | None = Field(default=None, max_length=64)
    request_content_type: str | None = Field(default=None, max_length=255)
    response_content_type: str | None = Field(default=None, max_length=255)
    feedback: int | None = None
    min_cost: float | None = Field(default=None, ge=0)
    max_cost: float | None = Field(default=None, ge=0)
    min_duration: float | None = Field(default=None, ge=0)
    max_duration: float | None = Field(default=None, ge=0)
    min_tokens_in: float | None = Field(default=None, ge=0)
    max_tokens_in: float | None = Field(default=None, ge=0)
    min_tokens_out: float | None = Field(default=None, ge=0)
    max_tokens_out: float | None = Field(default=None, ge=0)
    min_total_tokens: float | None = Field(default=None, ge=0)
    max_total_tokens: float | None = Field(default=None, ge=0)
    meta_info: bool | None = None  # accepted for the SDK; totals are always returned

    @field_validator("feedback")
    @classmethod
    def _feedback(cls, value: int | None) -> int | None:
        if value is not None and value not in (-1, 0, 1):
            raise ValueError("must be -1, 0 or 1")
        return value

    @field_validator("start_date", "end_date")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None


class LogListParams(LogFilterParams):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=50)
    order_by: ListOrder = "created_at"
    order_by_direction: Direction | None = None
    direction: Direction | None = None  # the SDK's other name for it

    @property
    def descending(self) -> bool:
        return (self.order_by_direction or self.direction or "desc") == "desc"


class LogDeleteParams(LogFilterParams):
    limit: int | None = Field(default=None, ge=1, le=100_000_000)
    order_by: ListOrder = "created_at"
    order_by_direction: Direction | None = None
    direction: Direction | None = None

    @property
    def descending(self) -> bool:
        """Deleting with a limit takes the oldest first unless told otherwise."""
        return (self.order_by_direction or self.direction or "asc") == "desc"


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


def split_filters(items: Sequence[tuple[str, str]]) -> tuple[dict[str, str], list[LogFilter]]:
    """Separate the `filters` array (any form) from the plain parameters, which must be unique."""
    plain: dict[str, str] = {}
    json_items: list[dict[str, Any]] = []
    indexed: dict[int, dict[str, Any]] = {}
    sequential: list[dict[str, Any]] = []
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
            if not sequential or not _add_part(sequential[-1], match.group(1), value):
                sequential.append({})
                _add_part(sequential[-1], match.group(1), value)
        elif name.startswith("filters"):
            raise invalid([("filters", f"unexpected parameter {name!r}")])
        elif name in plain:
            raise invalid([(name, "given more than once")])
        else:
            plain[name] = value
    assembled = [*json_items, *(indexed[i] for i in sorted(indexed)), *sequential]
    if len(assembled) > MAX_FILTERS:
        raise invalid([("filters", f"at most {MAX_FILTERS} filters")])
    return plain, [_as_filter(item, f"filters.{i}") for i, item in enumerate(assembled)]


def parse(items: Sequence[tuple[str, str]], model: type[LogFilterParams]) -> tuple[Any, list[LogFilter]]:
    """The validated parameters and filters; a 400 listing every bad field otherwise."""
    plain, raw_filters = split_filters(items)
    errors: list[tuple[str, str]] = []
    params: Any = None
    try:
        params = model.model_validate(plain)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            errors.append(
                (field, "unknown parameter" if error["type"] == "extra_forbidden" else error["msg"])
            )
    if params is not None and params.start_date and params.end_date and params.start_date > params.end_date:
        errors.append(("end_date", "must not be before start_date"))
    filters: list[LogFilter] = []
    for raw in raw_filters:
        try:
            filters.append(validate(raw))
        except FilterError as exc:
            errors.append((exc.field, exc.message))
    if errors:
        raise invalid(errors)
    return params, filters


_RANGES: dict[str, Any] = {
    "cost": LOGS.c.cost,
    "duration": LOGS.c.duration_ms,
    "tokens_in": LOGS.c.tokens_in,
    "tokens_out": LOGS.c.tokens_out,
    "total_tokens": TOTAL_TOKENS,
}
_EQUALS: dict[str, Any] = {
    "cached": LOGS.c.cached,
    "success": LOGS.c.success,
    "provider": LOGS.c.provider,
    "model": LOGS.c.model,
    "request_content_type": LOGS.c.request_content_type,
    "response_content_type": LOGS.c.response_content_type,
    "feedback": LOGS.c.feedback,
}


def where_clause(
    key: GatewayKey, params: LogFilterParams, filters: Sequence[LogFilter]
) -> list[ColumnElement[bool]]:
    """Every condition of the plain parameters and the filters (the gateway scope excluded)."""
    out: list[ColumnElement[bool]] = []
    if params.start_date is not None:
        out.append(LOGS.c.created_at >= params.start_date)
    if params.end_date is not None:
        out.append(LOGS.c.created_at <= params.end_date)
    for name, column in _EQUALS.items():
        value = getattr(params, name)
        if value is not None:
            out.append(column == value)
    if params.model_type is not None:
        out.append(LOGS.c.id.is_(None))  # no model types are recorded: nothing matches
    for name, column in _RANGES.items():
        low, high = getattr(params, f"min_{name}"), getattr(params, f"max_{name}")
        if low is not None:
            out.append(column >= low)
        if high is not None:
            out.append(column <= high)
    if params.search is not None:
        out.append(search_condition(key[0], key[1], params.search))
    out.extend(conditions(key[0], key[1], filters))
    return out


_FILTERS_DOC = (
    "Array of {key, operator (eq|neq|contains|lt|gt), value: [..]}: JSON in this one parameter, or "
    "bracketed (filters[0][key]=…), or dotted and repeated as the cloudflare SDK sends it "
    "(filters.key=…&filters.operator=…&filters.value=…). Keys: " + ", ".join(FILTER_KEYS) + "."
)


def openapi_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of `model` for the OpenAPI document (the route parses them itself)."""
    properties = model.model_json_schema()["properties"]
    parameters = [{"name": name, "in": "query", "schema": schema} for name, schema in properties.items()]
    parameters.append(
        {"name": "filters", "in": "query", "description": _FILTERS_DOC, "schema": {"type": "string"}}
    )
    return parameters
