"""Analytics over whole hours read the hourly summary (`log_hourly`) and the partial hours at a
range's edges read the rows; minute buckets always read the rows. So the same range asked by
hour and by minute must give the same totals and groups, before and after deletions — on SQLite
and PostgreSQL. Durations here are exact under the summary's rounding (below 100 ms, or two
significant digits), except in the test of the rounding itself."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.log_rows import insert, row
from tests.support.management import BACKENDS, Mgmt, management_server, mgmt_client

T0 = datetime(2030, 2, 1, tzinfo=UTC)
ALIGNED = {"start_date": "2030-02-01T00:00:00Z", "end_date": "2030-02-01T06:00:00Z"}
UNALIGNED = {"start_date": "2030-02-01T00:17:30.250Z", "end_date": "2030-02-01T05:42:10Z"}


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("analytics-summary")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


def random_rows(gw: str, count: int, seed: int) -> list[dict[str, Any]]:
    rand = random.Random(seed)
    rows = []
    for _ in range(count):
        duration = rand.choice(
            [None, rand.randint(0, 99), rand.randint(10, 99) * 10, rand.randint(10, 99) * 100]
        )
        rows.append(
            row(
                gw,
                T0 + timedelta(seconds=rand.uniform(0, 6 * 3600)),
                provider=rand.choice(["openai", "anthropic", "groq"]),
                model=rand.choice(["a", "b", None]),
                success=rand.random() > 0.2,
                cached=rand.random() < 0.3,
                duration_ms=duration,
                tokens_in=rand.choice([None, rand.randint(0, 500)]),
                tokens_out=rand.randint(0, 90),
                cost=rand.choice([None, rand.randint(0, 40) * 0.25]),
            )
        )
    return rows


def analytics(m: Mgmt, gw: str, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = m.ok("GET", m.gw_path(gw, "/analytics"), params=params)["result"]
    return result


def by_hour_and_by_minute(m: Mgmt, gw: str, span: dict[str, str], group_by: str | None = None) -> None:
    extra = {"group_by": group_by} if group_by else {}
    hourly = analytics(m, gw, **span, interval="hour", **extra)
    minutely = analytics(m, gw, **span, interval="minute", **extra)
    assert hourly["totals"] == minutely["totals"]
    if group_by:
        strip = [{k: v for k, v in g.items() if k != "buckets"} for g in hourly["groups"]]
        assert strip == [{k: v for k, v in g.items() if k != "buckets"} for g in minutely["groups"]]
    for bucket in hourly["buckets"]:  # each hour's requests are its minutes' requests
        hour = bucket["start"][:13]
        minutes = [b for b in minutely["buckets"] if b["start"][:13] == hour]
        assert bucket["requests"] == sum(b["requests"] for b in minutes), hour
        assert bucket["tokens_in"] == sum(b["tokens_in"] for b in minutes), hour


@pytest.fixture(scope="module")
def rows_gw(mgmt: Mgmt) -> tuple[str, list[dict[str, Any]]]:
    gw = mgmt.new_gateway()
    rows = random_rows(gw, 600, seed=3)
    insert(mgmt, rows[:300])
    insert(mgmt, rows[300:])  # two batches: the summary adds up across them
    return gw, rows


@pytest.mark.parametrize("span", [ALIGNED, UNALIGNED], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("group_by", [None, "provider", "model"])
def test_hours_from_the_summary_equal_the_rows(
    mgmt: Mgmt, rows_gw: tuple[str, list[dict[str, Any]]], span: dict[str, str], group_by: str | None
) -> None:
    gw, rows = rows_gw
    by_hour_and_by_minute(mgmt, gw, span, group_by)
    start = datetime.fromisoformat(span["start_date"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(span["end_date"].replace("Z", "+00:00"))
    inside = [r for r in rows if start <= r["created_at"] < end]
    totals = analytics(mgmt, gw, **span, interval="hour")["totals"]
    assert totals["requests"] == len(inside) > 0
    assert totals["errors"] == sum(not r["success"] for r in inside)
    assert totals["tokens_out"] == sum(r["tokens_out"] for r in inside)


def test_deletions_leave_the_summary_equal_to_the_rows(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    insert(mgmt, random_rows(gw, 200, seed=5))
    assert mgmt.ok("DELETE", mgmt.gw_path(gw, "/logs"), params={"limit": 37})["result"]["deleted"] == 37
    assert analytics(mgmt, gw, **ALIGNED, interval="hour")["totals"]["requests"] == 163
    by_hour_and_by_minute(mgmt, gw, ALIGNED, "provider")
    assert mgmt.ok("DELETE", mgmt.gw_path(gw, "/logs"))["result"]["deleted"] == 163
    assert analytics(mgmt, gw, **ALIGNED, interval="hour")["totals"]["requests"] == 0


def test_storage_limit_trims_the_summary_too(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(log_management=5, log_management_strategy="DELETE_OLDEST")
    insert(mgmt, random_rows(gw, 12, seed=8))
    by_hour_and_by_minute(mgmt, gw, ALIGNED, "model")
    assert analytics(mgmt, gw, **ALIGNED, interval="day")["totals"]["requests"] == 5


def test_a_deleted_gateway_leaves_no_summary_behind(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    insert(mgmt, random_rows(gw, 20, seed=9))
    mgmt.ok("DELETE", mgmt.gw_path(gw))
    mgmt.new_gateway(id=gw)
    assert analytics(mgmt, gw, **ALIGNED, interval="hour")["totals"]["requests"] == 0


def test_summarised_durations_have_two_significant_digits(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    insert(
        mgmt,
        [
            row(gw, T0 + timedelta(minutes=10), duration_ms=1234),
            row(gw, T0 + timedelta(minutes=20), duration_ms=87),
        ],
    )
    hourly = analytics(mgmt, gw, **ALIGNED, interval="hour")["totals"]
    minutely = analytics(mgmt, gw, **ALIGNED, interval="minute")["totals"]
    assert (hourly["duration_p50"], minutely["duration_p50"]) == (643.5, 660.5)  # (87+1200)/2, (87+1234)/2
    edge = analytics(
        mgmt, gw, start_date="2030-02-01T00:05:00Z", end_date="2030-02-01T01:00:00Z", interval="hour"
    )
    assert edge["totals"]["duration_p50"] == 660.5  # a partial hour reads the rows: exact


def test_a_range_ending_now_counts_the_current_hour(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    now = datetime.now(UTC)
    insert(mgmt, [row(gw, now), row(gw, now + timedelta(milliseconds=1))])  # not older than the gateway
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    result = analytics(
        mgmt,
        gw,
        start_date=(hour_start - timedelta(hours=3)).isoformat(),
        end_date=(now + timedelta(seconds=5)).isoformat(),
    )
    assert result["totals"]["requests"] == 2 and result["buckets"][-1]["requests"] == 2
