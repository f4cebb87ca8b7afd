"""The query string of the logs list and delete: the plain parameters (pydantic models, unknown
names refused) and their SQL conditions; the `filters` array is read by app/api/filter_query.py.
Every problem is a 400 naming the field; nothing here can become a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement

from app.api.filter_query import invalid, split_filters
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

# A log's id is made when its step starts and `created_at` right after, so the id's time is at most
# `created_at` (plus clock jitter) and at least `created_at` minus the longest a step can wait to
# start (earlier steps' timeouts and retries). Date ranges also bound the id, a ULID in time
# order, so that listing a range reads the primary index from the range's end, not from the newest.
ID_TIME_MARGIN = timedelta(days=1)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid_time(moment: datetime) -> str:
    ms = max(0, int(moment.timestamp() * 1000))
    return "".join(_CROCKFORD[(ms >> shift) & 31] for shift in range(45, -1, -5))


def id_floor(moment: datetime) -> str:
    """The smallest ULID of that millisecond."""
    return _ulid_time(moment) + "0" * 16


def id_ceiling(moment: datetime) -> str:
    """The largest ULID of that millisecond."""
    return _ulid_time(moment) + "Z" * 16


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


def id_range(params: LogFilterParams) -> list[ColumnElement[bool]]:
    """Conditions on `id` implied by the date range (see ID_TIME_MARGIN): redundant, but they let
    a page ordered by id start at the range's end. Counting is cheaper without them."""
    out: list[ColumnElement[bool]] = []
    if params.start_date is not None:
        out.append(LOGS.c.id >= id_floor(params.start_date - ID_TIME_MARGIN))
    if params.end_date is not None:
        out.append(LOGS.c.id <= id_ceiling(params.end_date + timedelta(minutes=1)))
    return out


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
