# ruff: noqa: E501  (the tables of filter cases read best one case per line)
"""Logs API: every filter key and operator, the plain filter parameters, the three `filters`
encodings, ordering, pagination edges, one log, stored bodies, edits and deletion — on log rows
written by real traffic through the fake upstream, on SQLite and PostgreSQL.

The oracle for a filter is the unfiltered list filtered in Python: the SQL and the expectation are
written independently, and some cases also pin exact counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, anthropic_step, google_step, openai_step, workers_ai_step
from tests.support.management import BACKENDS, Mgmt, errors_of, management_server, mgmt_client

Row = dict[str, Any]


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("logs")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


def _traffic(m: Mgmt, gw: str) -> int:
    """Known traffic: 13 log rows with varied providers, outcomes, metadata and shapes."""

    def meta(**values: Any) -> dict[str, str]:
        return {"cf-aig-metadata": json.dumps(values)}

    calls = [
        (openai_step(), meta(user="alice", team="red")),
        (openai_step(model="gpt-4o"), meta(user="bob")),
        (anthropic_step(), meta(user="alice")),
        (openai_step({"x-fake-status": "500"}), meta(user="carol")),
        (workers_ai_step(), {}),
        (openai_step(), {**meta(user="dave", n=7), "cf-aig-cache-ttl": "60"}),
        (openai_step(), {**meta(user="dave", n=7), "cf-aig-cache-ttl": "60"}),  # cached
        (google_step(), meta(flag=True)),
        (openai_step(stream=True), {}),
        (openai_step(), {"cf-aig-custom-cost": json.dumps({"per_token_in": 1, "per_token_out": 2})}),
        (openai_step(), {"cf-aig-event-id": "evt-123"}),
        (anthropic_step({"x-fake-status": "429"}), meta(user="erin")),
    ]
    for step, headers in calls:
        response = m.universal(gw, step, headers)
        assert response.status_code in (200, 429, 500), response.text
    passthrough = m.http.post(
        f"/v1/{ACCT}/{gw}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-x"},
    )
    assert passthrough.status_code == 200
    return len(calls) + 1


@pytest.fixture(scope="module")
def dataset(mgmt: Mgmt) -> tuple[str, list[Row]]:
    """A read-only gateway with the known traffic, and all its rows (list shape, newest first)."""
    gw = mgmt.new_gateway()
    count = _traffic(mgmt, gw)
    rows = mgmt.wait_logs(gw, count)
    assert len(rows) == count
    return gw, rows


def ids(rows: list[Row]) -> list[str]:
    return [row["id"] for row in rows]


def meta(row: Row) -> dict[str, Any]:
    return json.loads(row["metadata"]) if row["metadata"] else {}


def filtered(m: Mgmt, gw: str, filters: list[dict[str, Any]], **params: Any) -> list[Row]:
    body = m.logs(gw, {"filters": json.dumps(filters), "per_page": 50, **params})
    assert body["result_info"]["total_count"] == len(body["result"])
    return list(body["result"])


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


# ---- every filter key and operator --------------------------------------------------------------------

Predicate = Callable[[Row, list[Row]], bool]


def _nth(rows: list[Row], n: int) -> Row:
    return sorted(rows, key=lambda r: r["id"])[n]


CASES: list[tuple[str, str, Callable[[list[Row]], list[Any]], Predicate]] = [
    ("id", "eq", lambda rs: [_nth(rs, 2)["id"]], lambda r, rs: r["id"] == _nth(rs, 2)["id"]),
    ("id", "neq", lambda rs: [_nth(rs, 2)["id"]], lambda r, rs: r["id"] != _nth(rs, 2)["id"]),
    ("id", "contains", lambda rs: [_nth(rs, 4)["id"][-6:].lower()], lambda r, rs: r["id"] == _nth(rs, 4)["id"]),
    ("id", "lt", lambda rs: [_nth(rs, 3)["id"]], lambda r, rs: r["id"] < _nth(rs, 3)["id"]),
    ("id", "gt", lambda rs: [_nth(rs, 3)["id"]], lambda r, rs: r["id"] > _nth(rs, 3)["id"]),
    ("created_at", "lt", lambda rs: [_nth(rs, 5)["created_at"]], lambda r, rs: r["created_at"] < _nth(rs, 5)["created_at"]),
    ("created_at", "gt", lambda rs: [_nth(rs, 5)["created_at"]], lambda r, rs: r["created_at"] > _nth(rs, 5)["created_at"]),
    ("created_at", "eq", lambda rs: [_nth(rs, 5)["created_at"]], lambda r, rs: r["created_at"] == _nth(rs, 5)["created_at"]),
    ("request_content_type", "eq", lambda rs: ["application/json"], lambda r, rs: r["request_content_type"] == "application/json"),
    ("request_content_type", "contains", lambda rs: ["JSON"], lambda r, rs: "json" in (r["request_content_type"] or "")),
    ("response_content_type", "contains", lambda rs: ["event-stream"], lambda r, rs: "event-stream" in (r["response_content_type"] or "")),
    ("response_content_type", "neq", lambda rs: ["application/json"], lambda r, rs: r["response_content_type"] != "application/json"),
    ("request_type", "eq", lambda rs: ["provider"], lambda r, rs: r["request_type"] == "provider"),
    ("request_type", "neq", lambda rs: ["universal"], lambda r, rs: r["request_type"] != "universal"),
    ("success", "eq", lambda rs: [False], lambda r, rs: not r["success"]),
    ("success", "neq", lambda rs: [False], lambda r, rs: r["success"]),
    ("success", "eq", lambda rs: [True, False], lambda r, rs: True),
    ("cached", "eq", lambda rs: [True], lambda r, rs: r["cached"]),
    ("cached", "neq", lambda rs: [True], lambda r, rs: not r["cached"]),
    ("provider", "eq", lambda rs: ["anthropic", "workers-ai"], lambda r, rs: r["provider"] in ("anthropic", "workers-ai")),
    ("provider", "neq", lambda rs: ["openai"], lambda r, rs: r["provider"] != "openai"),
    ("provider", "contains", lambda rs: ["AI"], lambda r, rs: "ai" in r["provider"]),
    ("model", "eq", lambda rs: ["gpt-4o"], lambda r, rs: r["model"] == "gpt-4o"),
    ("model", "contains", lambda rs: ["gpt", "claude"], lambda r, rs: "gpt" in r["model"] or "claude" in r["model"]),
    ("model", "neq", lambda rs: ["gpt-4o-mini"], lambda r, rs: r["model"] != "gpt-4o-mini"),
    ("model_type", "eq", lambda rs: ["chat"], lambda r, rs: False),
    ("model_type", "neq", lambda rs: ["chat"], lambda r, rs: True),
    ("cost", "gt", lambda rs: [1], lambda r, rs: (r["cost"] or 0) > 1),
    ("cost", "lt", lambda rs: [0.001], lambda r, rs: r["cost"] is not None and r["cost"] < 0.001),
    ("cost", "eq", lambda rs: [0], lambda r, rs: r["cost"] == 0),
    ("cost", "neq", lambda rs: [0], lambda r, rs: r["cost"] != 0),
    ("tokens", "gt", lambda rs: [5], lambda r, rs: (r["tokens_in"] or 0) + (r["tokens_out"] or 0) > 5),
    ("tokens_in", "eq", lambda rs: [3], lambda r, rs: r["tokens_in"] == 3),
    ("tokens_out", "lt", lambda rs: [4], lambda r, rs: r["tokens_out"] is not None and r["tokens_out"] < 4),
    ("tokens_out", "neq", lambda rs: [3], lambda r, rs: r["tokens_out"] != 3),
    ("duration", "gt", lambda rs: [-1], lambda r, rs: True),
    ("duration", "lt", lambda rs: [0], lambda r, rs: False),
    ("feedback", "eq", lambda rs: [1], lambda r, rs: False),
    ("feedback", "neq", lambda rs: [1], lambda r, rs: True),
    ("event_id", "eq", lambda rs: ["evt-123"], lambda r, rs: r["event_id"] == "evt-123"),
    ("event_id", "contains", lambda rs: ["evt"], lambda r, rs: "evt" in (r["event_id"] or "")),
    ("metadata.key", "eq", lambda rs: ["team"], lambda r, rs: "team" in meta(r)),
    ("metadata.key", "neq", lambda rs: ["user"], lambda r, rs: "user" not in meta(r)),
    ("metadata.key", "contains", lambda rs: ["fla"], lambda r, rs: "flag" in meta(r)),
    ("metadata.value", "eq", lambda rs: ["alice", "bob"], lambda r, rs: meta(r).get("user") in ("alice", "bob")),
    ("metadata.value", "eq", lambda rs: [7], lambda r, rs: meta(r).get("n") == 7),
    ("metadata.value", "eq", lambda rs: [True], lambda r, rs: meta(r).get("flag") is True),
    ("metadata.value", "neq", lambda rs: ["alice"], lambda r, rs: meta(r).get("user") != "alice"),
    ("metadata.value", "contains", lambda rs: ["AR"], lambda r, rs: "ar" in str(meta(r).get("user", ""))),
    ("authentication", "eq", lambda rs: [False], lambda r, rs: True),
    ("wholesale", "eq", lambda rs: [True], lambda r, rs: False),
    ("wholesale", "neq", lambda rs: [True], lambda r, rs: True),
    ("compatibilityMode", "eq", lambda rs: [False], lambda r, rs: True),
    ("dlp_action", "eq", lambda rs: ["BLOCK"], lambda r, rs: False),
    ("user_agent", "contains", lambda rs: ["python-httpx"], lambda r, rs: True),
    ("user_agent", "neq", lambda rs: ["python-httpx"], lambda r, rs: True),
    ("status_code", "eq", lambda rs: [500, 429], lambda r, rs: r["status_code"] in (500, 429)),
    ("status_code", "gt", lambda rs: [200], lambda r, rs: (r["status_code"] or 0) > 200),
    ("step", "eq", lambda rs: [0], lambda r, rs: r["step"] == 0),
    ("path", "contains", lambda rs: ["messages"], lambda r, rs: "messages" in r["path"]),
    ("score", "eq", lambda rs: [None], lambda r, rs: True),
    ("custom_cost", "eq", lambda rs: [True], lambda r, rs: r["custom_cost"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "operator", "values", "predicate"),
    CASES,
    ids=[f"{key}-{op}-{i}" for i, (key, op, _, _) in enumerate(CASES)],
)
def test_filter(
    mgmt: Mgmt,
    dataset: tuple[str, list[Row]],
    key: str,
    operator: str,
    values: Callable[[list[Row]], list[Any]],
    predicate: Predicate,
) -> None:
    gw, rows = dataset
    got = filtered(mgmt, gw, [{"key": key, "operator": operator, "value": values(rows)}])
    assert ids(got) == ids([r for r in rows if predicate(r, rows)])


def test_every_sdk_filter_key_is_covered() -> None:
    from typing import get_args, get_type_hints

    from cloudflare.types.ai_gateway.log_list_params import Filter

    key_type = get_type_hints(Filter)["key"]  # Literal[...] (Required[] is stripped)
    sdk_keys = set(get_args(key_type))
    assert "metadata.value" in sdk_keys
    assert sdk_keys <= {key for key, _, _, _ in CASES}
    assert {op for _, op, _, _ in CASES} == {"eq", "neq", "contains", "lt", "gt"}


def test_metadata_key_and_value_pair(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    pair = [
        {"key": "metadata.key", "operator": "eq", "value": ["user"]},
        {"key": "metadata.value", "operator": "eq", "value": ["alice"]},
    ]
    got = filtered(mgmt, gw, pair)
    assert len(got) == 2 and ids(got) == ids([r for r in rows if meta(r).get("user") == "alice"])
    wrong_key = [{**pair[0], "value": ["team"]}, pair[1]]
    assert filtered(mgmt, gw, wrong_key) == []


def test_filters_are_anded(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    got = filtered(
        mgmt,
        gw,
        [
            {"key": "provider", "operator": "eq", "value": ["openai"]},
            {"key": "success", "operator": "eq", "value": [True]},
            {"key": "metadata.value", "operator": "eq", "value": ["dave"]},
        ],
    )
    assert len(got) == 2
    assert ids(got) == ids(
        [r for r in rows if r["provider"] == "openai" and r["success"] and meta(r).get("user") == "dave"]
    )


def test_the_encodings_agree(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    gw, rows = dataset
    filters = [
        {"key": "provider", "operator": "eq", "value": ["openai", "anthropic"]},
        {"key": "success", "operator": "eq", "value": [True]},
    ]
    expected = ids([r for r in rows if r["provider"] in ("openai", "anthropic") and r["success"]])
    as_json = mgmt.logs(gw, {"filters": json.dumps(filters), "per_page": 50})
    bracket = mgmt.logs(
        gw,
        [
            ("filters[0][key]", "provider"), ("filters[0][operator]", "eq"),
            ("filters[0][value][0]", "openai"), ("filters[0][value][1]", "anthropic"),
            ("filters[1][key]", "success"), ("filters[1][operator]", "eq"), ("filters[1][value][]", "true"),
            ("per_page", "50"),
        ],
    )  # fmt: skip
    dotted_indices = mgmt.logs(
        gw,
        [
            ("filters.0.key", "provider"), ("filters.0.operator", "eq"), ("filters.0.value", "openai"),
            ("filters.0.value", "anthropic"), ("filters.1.key", "success"), ("filters.1.operator", "eq"),
            ("filters.1.value", "true"), ("per_page", "50"),
        ],
    )  # fmt: skip
    # Unindexed and interleaved, exactly as written (httpx would regroup repeated names: raw URL).
    raw = (
        "filters.key=provider&filters.operator=eq&filters.value=openai&filters.value=anthropic"
        "&filters.key=success&filters.operator=eq&filters.value=true&per_page=50"
    )
    interleaved = mgmt.ok("GET", mgmt.gw_path(gw, "/logs") + "?" + raw)
    for body in (as_json, bracket, dotted_indices, interleaved):
        assert ids(body["result"]) == expected


def test_sdk_wire_form(mgmt: Mgmt, dataset: tuple[str, list[Row]]) -> None:
    """What the cloudflare SDK puts on the wire: names grouped (all keys, all operators, all values)."""
    gw, rows = dataset
    grouped = [
        ("filters.key", "provider"), ("filters.key", "success"),
        ("filters.operator", "eq"), ("filters.operator", "eq"),
        ("filters.value", "openai"), ("filters.value", "true"), ("per_page", "50"),
    ]  # fmt: skip
    expected = ids([r for r in rows if r["provider"] == "openai" and r["success"]])
    assert ids(mgmt.logs(gw, grouped)["result"]) == expected
    one_filter = [("filters.key", "provider"), ("filters.operator", "neq"), ("filters.value", "openai"),
                  ("filters.value", "anthropic"), ("per_page", "50")]  # fmt: skip
    assert ids(mgmt.logs(gw, one_filter)["result"]) == ids(
        [r for r in rows if r["provider"] not in ("openai", "anthropic")]
    )
    ambiguous = [
        *grouped[:4],
        ("filters.value", "openai"),
        ("filters.value", "anthropic"),
        ("filters.value", "true"),
    ]
    messages = errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/logs"), params=ambiguous))
    assert messages[0].startswith("filters.value:") and "JSON" in messages[0]


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
