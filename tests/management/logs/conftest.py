"""The logs API's test data, shared by the list and filter tests: a management server per backend
(SQLite, PostgreSQL) with known traffic written through the fake upstream, and small helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, anthropic_step, google_step, openai_step, workers_ai_step
from tests.support.management import BACKENDS, Mgmt, management_server, mgmt_client

Row = dict[str, Any]
Predicate = Callable[[Row, list[Row]], bool]  # (row, all rows) -> whether the row should be in the answer


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
