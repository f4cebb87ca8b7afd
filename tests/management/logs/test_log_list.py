# ruff: noqa: E501  (the tables of filter cases read best one case per line)
"""Logs API: the list's shape and defaults, plain filter parameters, ordering, pagination edges and
bad queries, on log rows written by real traffic (the data: `conftest.py`), on SQLite and
PostgreSQL. The `filters` keys, operators and encodings are in test_log_filters.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.management.logs.conftest import Predicate, Row, ids, meta
from tests.support.management import Mgmt, errors_of

# ---- shape and defaults ------------------------------------------------------------------------------


def test_list_shape_newest_first(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    body = mgmt.logs(gw)
    assert body["result_info"] == {"page": 1, "per_page": 20, "count": len(rows), "total_count": len(rows)}
    assert ids(body["result"]) == sorted(ids(rows), reverse=True)
    row = body["result"][-1]  # the first request
    for name in (
        "id", "created_at", "provider", "model", "path", "success", "cached", "status_code", "step",
        "duration", "tokens_in", "tokens_out", "cost", "custom_cost", "metadata", "request_content_type",
        "response_content_type", "event_id", "request_type",
    ):  # fmt: skip
        assert name in row, name
    assert "duration_ms" not in row and "request_body" not in row
    assert json.loads(row["metadata"]) == {"user": "alice", "team": "red"}
    assert row["created_at"].endswith("Z")
    assert (row["provider"], row["model"], row["tokens_in"], row["tokens_out"]) == (
        "openai",
        "gpt-4o-mini",
        3,
        3,
    )
    assert isinstance(row["duration"], int)


def test_known_counts(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    _, rows = dataset
    assert sum(not r["success"] for r in rows) == 2
    assert sum(r["cached"] for r in rows) == 1
    assert {r["provider"] for r in rows} == {"openai", "anthropic", "workers-ai", "google-ai-studio"}
    assert sum(r["request_type"] == "provider" for r in rows) == 1
    assert sum(r["custom_cost"] for r in rows) == 1
    assert sum((r["response_content_type"] or "").startswith("text/event-stream") for r in rows) == 1


# ---- plain parameters ---------------------------------------------------------------------------------

PLAIN: list[tuple[dict[str, Any], Predicate]] = [
    ({"cached": "true"}, lambda r, rs: r["cached"]),
    ({"success": "false"}, lambda r, rs: not r["success"]),
    ({"provider": "anthropic"}, lambda r, rs: r["provider"] == "anthropic"),
    ({"model": "gpt-4o"}, lambda r, rs: r["model"] == "gpt-4o"),
    ({"model_type": "chat"}, lambda r, rs: False),
    ({"request_content_type": "application/json"}, lambda r, rs: r["request_content_type"] == "application/json"),
    ({"response_content_type": "application/json"}, lambda r, rs: r["response_content_type"] == "application/json"),
    ({"feedback": "1"}, lambda r, rs: False),
    ({"min_cost": "1"}, lambda r, rs: (r["cost"] or 0) >= 1),
    ({"max_cost": "0"}, lambda r, rs: r["cost"] is not None and r["cost"] <= 0),
    ({"min_duration": "0", "max_duration": "100000"}, lambda r, rs: True),
    ({"min_tokens_in": "3", "max_tokens_in": "3"}, lambda r, rs: r["tokens_in"] == 3),
    ({"min_tokens_out": "4"}, lambda r, rs: (r["tokens_out"] or 0) >= 4),
    ({"max_tokens_out": "2"}, lambda r, rs: r["tokens_out"] is not None and r["tokens_out"] <= 2),
    ({"min_total_tokens": "6", "max_total_tokens": "6"}, lambda r, rs: (r["tokens_in"] or 0) + (r["tokens_out"] or 0) == 6),
    ({"search": "carol"}, lambda r, rs: meta(r).get("user") == "carol"),
    ({"search": "claude"}, lambda r, rs: "claude" in r["model"]),
    ({"search": "evt-123"}, lambda r, rs: r["event_id"] == "evt-123"),
    ({"meta_info": "true"}, lambda r, rs: True),
]  # fmt: skip


@pytest.mark.parametrize(("params", "predicate"), PLAIN, ids=[",".join(p) for p, _ in PLAIN])
def test_plain_parameter(
    mgmt: Mgmt, dataset: tuple[str, list[Row]], params: dict[str, Any], predicate: Predicate
) -> None:
    gw, rows = dataset
    body = mgmt.logs(gw, {**params, "per_page": 50})
    assert ids(body["result"]) == ids([r for r in rows if predicate(r, rows)])
    assert body["result_info"]["total_count"] == len(body["result"])


def test_date_range(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    ordered = sorted(rows, key=lambda r: r["id"])
    start, end = ordered[3]["created_at"], ordered[8]["created_at"]
    body = mgmt.logs(gw, {"start_date": start, "end_date": end, "per_page": 50})
    assert ids(body["result"]) == ids(ordered[3:9])[::-1]
    offset = mgmt.logs(gw, {"start_date": start.replace("Z", "+02:00")})  # the same instant minus 2 h
    assert offset["result_info"]["total_count"] == len(rows)


# ---- ordering and pagination --------------------------------------------------------------------------

ORDERS = {
    "created_at": lambda r: r["created_at"], "provider": lambda r: r["provider"], "model": lambda r: r["model"],
    "success": lambda r: r["success"], "cached": lambda r: r["cached"], "cost": lambda r: r["cost"],
    "duration": lambda r: r["duration"], "tokens_in": lambda r: r["tokens_in"],
    "tokens_out": lambda r: r["tokens_out"], "status_code": lambda r: r["status_code"],
}  # fmt: skip


@pytest.mark.parametrize("order_by", sorted(ORDERS))
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_order_by(mgmt: Mgmt, dataset: tuple[str, list[Row]], order_by: str, direction: str) -> None:
    """Sorted by the column, nulls last, ties by id in the same direction."""
    gw, rows = dataset
    body = mgmt.logs(gw, {"order_by": order_by, "order_by_direction": direction, "per_page": 50})
    value = ORDERS[order_by]
    present = sorted((r for r in rows if value(r) is not None), key=lambda r: (value(r), r["id"]))
    if direction == "desc":
        present.reverse()
    expected = present + sorted(
        (r for r in rows if value(r) is None), key=lambda r: r["id"], reverse=direction == "desc"
    )
    assert ids(body["result"]) == ids(expected)


def test_sdk_direction_parameter(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    assert ids(mgmt.logs(gw, {"direction": "asc", "per_page": 50})["result"]) == sorted(ids(rows))


def test_pagination_edges(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    seen: list[str] = []
    for page in range(1, len(rows) + 1):
        body = mgmt.logs(gw, {"per_page": 1, "page": page})
        assert body["result_info"] == {"page": page, "per_page": 1, "count": 1, "total_count": len(rows)}
        seen.extend(ids(body["result"]))
    assert seen == sorted(ids(rows), reverse=True)
    past = mgmt.logs(gw, {"per_page": 5, "page": 100})
    assert past["result"] == [] and past["result_info"]["count"] == 0
    assert past["result_info"]["total_count"] == len(rows)
    last = mgmt.logs(gw, {"per_page": 5, "page": 3})
    assert len(last["result"]) == len(rows) - 10
    assert mgmt.logs(gw, {"per_page": 50})["result_info"]["per_page"] == 50


BAD_QUERIES: list[tuple[list[tuple[str, str]], str]] = [
    ([("per_page", "51")], "per_page"),
    ([("per_page", "0")], "per_page"),
    ([("page", "0")], "page"),
    ([("page", "x")], "page"),
    ([("order_by", "nope")], "order_by"),
    ([("order_by_direction", "up")], "order_by_direction"),
    ([("start_date", "yesterday")], "start_date"),
    ([("start_date", "2030-01-02T00:00:00Z"), ("end_date", "2030-01-01T00:00:00Z")], "end_date"),
    ([("success", "maybe")], "success"),
    ([("feedback", "2")], "feedback"),
    ([("min_cost", "-1")], "min_cost"),
    ([("min_cost", "abc")], "min_cost"),
    ([("unknown_param", "1")], "unknown_param"),
    ([("provider", "a"), ("provider", "b")], "provider"),
    ([("filters", "not json")], "filters"),
    ([("filters", '[{"key": "provider", "operator": "eq", "value": ["x"], "extra": 1}]')], "filters.0.extra"),
    ([("filters", '[{"key": "nope", "operator": "eq", "value": ["x"]}]')], "filters.0.key"),
    ([("filters", '[{"key": "provider", "operator": "like", "value": ["x"]}]')], "filters.0.operator"),
    ([("filters", '[{"key": "provider", "operator": "lt", "value": ["x"]}]')], "filters.0.operator"),
    ([("filters", '[{"key": "success", "operator": "contains", "value": ["x"]}]')], "filters.0.operator"),
    ([("filters", '[{"key": "provider", "operator": "eq", "value": []}]')], "filters.0.value"),
    ([("filters", '[{"key": "provider", "operator": "eq"}]')], "filters.0.value"),
    ([("filters", '[{"operator": "eq", "value": ["x"]}]')], "filters.0.key"),
    ([("filters", '[{"key": "cost", "operator": "gt", "value": ["cheap"]}]')], "filters.0.value.0"),
    ([("filters", '[{"key": "cost", "operator": "gt", "value": [1, 2]}]')], "filters.0.value"),
    ([("filters", '[{"key": "success", "operator": "eq", "value": ["maybe"]}]')], "filters.0.value.0"),
    ([("filters", '[{"key": "created_at", "operator": "gt", "value": ["soon"]}]')], "filters.0.value.0"),
    ([("filters", '[{"key": "feedback", "operator": "eq", "value": [0.5]}]')], "filters.0.value.0"),
    ([("filters", '[{"key": "cost", "operator": "gt", "value": [null]}]')], "filters.0.value.0"),
    ([("filters", '[{"key": "model", "operator": "eq", "value": [{"a": 1}]}]')], "filters.0.value.0"),
    ([("filters", '"provider"')], "filters"),
    ([("filters[0][key]", "provider"), ("filters[0][key]", "model")], "filters.0.key"),
    ([("filters[0][nope]", "x")], "filters.0"),
    ([("filters[99][key]", "x")], "filters.99"),
    ([("filtersX", "x")], "filters"),
    (
        [("filters.key", "provider"), ("filters.operator", "between"), ("filters.value", "x")],
        "filters.0.operator",
    ),
    ([("filters.key", "provider"), ("filters.key", "model"), ("filters.operator", "eq")], "filters"),
]


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES, ids=[f for _, f in BAD_QUERIES])
def test_bad_query_is_400_naming_the_field(
    mgmt: Mgmt, dataset: tuple[str, list[Row]], query: list[tuple[str, str]], field: str
) -> None:
    gw, _ = dataset
    for method in ("GET", "DELETE"):
        if method == "DELETE" and query[0][0] in ("per_page", "page"):
            continue
        messages = errors_of(mgmt.call(method, mgmt.gw_path(gw, "/logs"), params=query))
        assert any(m.startswith(f"{field}:") for m in messages), messages
    assert len(mgmt.all_logs(gw)) == len(dataset[1])  # no bad DELETE deleted anything


def test_several_bad_fields_reported_together(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, _ = dataset
    query = {"per_page": "500", "filters": '[{"key": "nope", "operator": "eq", "value": ["x"]}]', "foo": "1"}
    messages = errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/logs"), params=query))
    assert {m.split(":")[0] for m in messages} == {"per_page", "filters.0.key", "foo"}


def test_unknown_gateway_and_bad_ids(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    errors_of(mgmt.call("GET", mgmt.gw_path("no-such-gateway", "/logs")), 404)
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/logs/01ARZ3NDEKTSV4RRFFQ69G5FAV")), 404)
    # Neither a ULID nor a UUID: it names no log (404, like an unknown id), never a 400.
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/logs/not-a-ulid")), 404)
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/logs/not-a-ulid/request")), 404)
    other = mgmt.new_gateway()
    errors_of(mgmt.call("GET", mgmt.gw_path(other, f"/logs/{rows[0]['id']}")), 404)  # another gateway's log
