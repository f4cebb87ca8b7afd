# ruff: noqa: E501  (the tables of filter cases read best one case per line)
"""Logs API: every `filters` key and operator, and the three encodings of `filters`, on log rows
written by real traffic (the data: `conftest.py`).

The oracle for a filter is the unfiltered list filtered in Python: the SQL and the expectation are
written independently, and some cases also pin exact counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.management.logs.conftest import Predicate, Row, filtered, ids, meta
from tests.support.management import Mgmt, errors_of

# ---- every filter key and operator --------------------------------------------------------------------


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
    ("event_id", "contains", lambda rs: ["evt"], lambda r, rs: "evt" in (r["event_id"] or "").lower()),
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
