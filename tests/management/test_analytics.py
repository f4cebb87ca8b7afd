# ruff: noqa: E501  (the rows with their hand-computed values read best one per line)
"""Analytics over rows with known values, checked against numbers computed by hand — totals, hourly
buckets, groups by provider / model / metadata key, interpolated p50/p95 — on SQLite (window
functions) and PostgreSQL (percentile_cont)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import openai_step
from tests.support.log_rows import insert, row
from tests.support.management import BACKENDS, Mgmt, errors_of, management_server, mgmt_client

T0 = datetime(2030, 1, 1, tzinfo=UTC)
RANGE = {"start_date": "2030-01-01T00:00:00Z", "end_date": "2030-01-01T03:00:00Z", "interval": "hour"}


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("analytics")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute, second=second)


@pytest.fixture(scope="module")
def gw(mgmt: Mgmt) -> str:
    gateway_id = mgmt.new_gateway()
    other = mgmt.new_gateway()
    insert(
        mgmt,
        [
            row(gateway_id, at(0, 5), duration_ms=100, tokens_in=10, tokens_out=20, cost=0.5, metadata={"user": "a"}),
            row(gateway_id, at(0, 10), success=False, duration_ms=300, metadata={"user": "b"}),
            row(gateway_id, at(0, 59, 59), provider="anthropic", model="claude", cached=True, duration_ms=50,
                tokens_in=5, tokens_out=5, cost=0.0, metadata={"user": "a"}),
            row(gateway_id, at(1, 30), model="gpt-4o-mini", duration_ms=200, tokens_in=1, tokens_out=2, cost=0.25),
            row(gateway_id, at(3, 0), duration_ms=9999),  # the end is exclusive
            row(gateway_id, datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC), duration_ms=9999),  # before the start
            row(other, at(0, 30), duration_ms=9999),  # another gateway
        ],
    )  # fmt: skip
    return gateway_id


def analytics(m: Mgmt, gw: str, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = m.ok("GET", m.gw_path(gw, "/analytics"), params={**RANGE, **params})["result"]
    return result


def stats(requests: int, errors: int, cached: int, tokens_in: int, tokens_out: int, cost: float,
          p50: float | None, p95: float | None) -> dict[str, Any]:  # fmt: skip
    return {
        "requests": requests, "errors": errors, "cached": cached,
        "cache_hit_ratio": round(cached / requests, 6) if requests else 0.0,
        "tokens_in": tokens_in, "tokens_out": tokens_out, "cost": cost,
        "duration_p50": p50, "duration_p95": p95,
    }  # fmt: skip


def test_totals_and_buckets(mgmt: Mgmt, gw: str) -> None:
    result = analytics(mgmt, gw)
    assert (result["start_date"], result["end_date"], result["interval"]) == (
        "2030-01-01T00:00:00Z", "2030-01-01T03:00:00Z", "hour",
    )  # fmt: skip
    # durations 50, 100, 200, 300: p50 at rank 1.5 → 150; p95 at rank 2.85 → 200 + 0.85 * 100
    assert result["totals"] == stats(4, 1, 1, 16, 27, 0.75, 150.0, 285.0)
    assert [b["start"] for b in result["buckets"]] == [
        "2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z", "2030-01-01T02:00:00Z",
    ]  # fmt: skip
    # hour 0: durations 50, 100, 300 → p50 100, p95 at rank 1.9 → 100 + 0.9 * 200
    assert {k: v for k, v in result["buckets"][0].items() if k != "start"} == stats(
        3, 1, 1, 15, 25, 0.5, 100.0, 280.0
    )
    assert {k: v for k, v in result["buckets"][1].items() if k != "start"} == stats(
        1, 0, 0, 1, 2, 0.25, 200.0, 200.0
    )
    assert {k: v for k, v in result["buckets"][2].items() if k != "start"} == stats(
        0, 0, 0, 0, 0, 0.0, None, None
    )
    assert "groups" not in result


def test_group_by_provider(mgmt: Mgmt, gw: str) -> None:
    result = analytics(mgmt, gw, group_by="provider")
    assert result["totals"]["requests"] == 4
    openai, anthropic = result["groups"]
    assert openai["key"] == "openai" and anthropic["key"] == "anthropic"
    # openai durations 100, 200, 300: p95 at rank 1.9 → 290
    assert {k: v for k, v in openai.items() if k not in ("key", "buckets")} == stats(
        3, 1, 0, 11, 22, 0.75, 200.0, 290.0
    )
    assert {k: v for k, v in anthropic.items() if k not in ("key", "buckets")} == stats(
        1, 0, 1, 5, 5, 0.0, 50.0, 50.0
    )
    # openai in hour 0: durations 100, 300 → p50 200, p95 100 + 0.95 * 200 = 290
    assert [(b["requests"], b["duration_p50"], b["duration_p95"]) for b in openai["buckets"]] == [
        (2, 200.0, 290.0), (1, 200.0, 200.0), (0, None, None),
    ]  # fmt: skip
    assert result["groups_truncated"] is False


def test_group_by_model_and_metadata(mgmt: Mgmt, gw: str) -> None:
    models = analytics(mgmt, gw, group_by="model")["groups"]
    assert [(g["key"], g["requests"]) for g in models] == [("gpt-4o", 2), ("claude", 1), ("gpt-4o-mini", 1)]
    users = analytics(mgmt, gw, group_by="metadata.user")["groups"]
    assert [(g["key"], g["requests"], g["cost"]) for g in users] == [
        ("a", 2, 0.5),
        (None, 1, 0.25),
        ("b", 1, 0.0),
    ]
    assert users[0]["duration_p50"] == 75.0 and users[0]["cache_hit_ratio"] == 0.5
    assert analytics(mgmt, gw, group_by="metadata.nobody")["groups"][0]["key"] is None


def test_day_interval_and_default_range(mgmt: Mgmt, gw: str) -> None:
    day = analytics(mgmt, gw, interval="day", end_date="2030-01-03T00:00:00Z")
    assert [b["requests"] for b in day["buckets"]] == [5, 0]  # the row at 03:00 is inside this range
    live = mgmt.new_gateway()
    for _ in range(2):
        assert mgmt.universal(live, openai_step()).status_code == 200
    mgmt.wait_logs(live, 2)
    recent = mgmt.ok("GET", mgmt.gw_path(live, "/analytics"))["result"]
    assert recent["interval"] == "hour" and len(recent["buckets"]) in (24, 25)
    assert recent["totals"]["requests"] == 2 and recent["totals"]["tokens_in"] == 6
    assert recent["totals"]["duration_p50"] is not None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"group_by": "user"}, "group_by"),
        ({"group_by": "metadata."}, "group_by"),
        ({"start_date": "soon"}, "start_date"),
        ({"end_date": "2029-01-01T00:00:00Z"}, "end_date"),
        ({"interval": "minute", "end_date": "2030-02-01T00:00:00Z"}, "interval"),
        ({"extra": "x"}, None),
    ],
)
def test_validation(mgmt: Mgmt, gw: str, params: dict[str, Any], field: str | None) -> None:
    response = mgmt.call("GET", mgmt.gw_path(gw, "/analytics"), params={**RANGE, **params})
    if field is None:
        assert response.status_code == 200  # unknown parameters are ignored here, as on other GETs
        return
    messages = errors_of(response)
    assert any(m.startswith(f"{field}:") for m in messages), messages


def test_permissions_and_unknown_gateway(mgmt: Mgmt, gw: str) -> None:
    errors_of(mgmt.call("GET", mgmt.gw_path("no-such-gateway", "/analytics")), 404)
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/analytics"), token=mgmt.new_token(["run"])), 403)
    errors_of(
        mgmt.call("GET", mgmt.gw_path(gw, "/analytics"), token=mgmt.new_token(["read"], ["other"])), 403
    )
    assert (
        mgmt.call("GET", mgmt.gw_path(gw, "/analytics"), token=mgmt.new_token(["read"], [gw])).status_code
        == 200
    )
