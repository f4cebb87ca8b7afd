"""Per-gateway log storage limit (`log_management`, `STOP_INSERTING` / `DELETE_OLDEST`), enforced
by the batched log writer; gateway deletion removing logs, metadata rows, counter and cached
responses; `cache_invalidate_on_update`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import openai_step
from tests.support.management import BACKENDS, Mgmt, management_server, mgmt_client, query_db, wait_until


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("storage")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


def processed(m: Mgmt) -> int:
    sink = m.server.app.state.log_sink
    return int(sink.written + sink.refused)


def send(m: Mgmt, gw: str, count: int, *, parallel: bool = False) -> list[str]:
    """`count` requests; returns their log ids once the writer has handled every one."""
    before = processed(m)

    def one(i: int) -> str:
        r = m.universal(gw, openai_step(), {"cf-aig-metadata": json.dumps({"i": i})})
        assert r.status_code == 200
        return r.headers["cf-aig-log-id"]

    if parallel:
        with ThreadPoolExecutor(count) as pool:
            ids = list(pool.map(one, range(count)))
    else:
        ids = [one(i) for i in range(count)]
    wait_until(lambda: processed(m) >= before + count, what="the log writer")
    return ids


def stored(m: Mgmt, gw: str) -> list[str]:
    body = m.logs(gw, {"per_page": 50, "order_by_direction": "asc"})
    rows = [r["id"] for r in body["result"]]
    assert body["result_info"]["total_count"] == len(rows)  # the counter agrees with the rows
    return rows


def test_stop_inserting_keeps_the_first_rows(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(log_management=3, log_management_strategy="STOP_INSERTING")
    refused = mgmt.server.app.state.log_sink.refused
    ids = send(mgmt, gw, 5)
    assert stored(mgmt, gw) == ids[:3]
    assert mgmt.server.app.state.log_sink.refused == refused + 2
    mgmt.ok("DELETE", mgmt.gw_path(gw, "/logs"), params={"limit": 1})
    later = send(mgmt, gw, 2)
    assert stored(mgmt, gw) == [*ids[1:3], later[0]]


def test_stop_inserting_within_one_batch(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(log_management=4)  # no strategy: STOP_INSERTING
    send(mgmt, gw, 12, parallel=True)
    assert len(stored(mgmt, gw)) == 4


def test_delete_oldest_keeps_the_newest_rows(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(log_management=3, log_management_strategy="DELETE_OLDEST")
    ids = send(mgmt, gw, 5)
    assert stored(mgmt, gw) == ids[2:]
    more = send(mgmt, gw, 10, parallel=True)
    rows = stored(mgmt, gw)
    assert len(rows) == 3 and set(rows) <= set(more)
    metadata_rows = query_db(
        mgmt.server.settings.database_url,
        "SELECT count(*) FROM log_metadata WHERE gateway_id = :g",
        {"g": gw},
    )
    assert metadata_rows == [(3,)]  # trimmed rows took their metadata with them


def test_lowering_the_limit(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    send(mgmt, gw, 6)
    mgmt.ok("PUT", mgmt.gw_path(gw), json={"log_management": 2, "log_management_strategy": "STOP_INSERTING"})
    send(mgmt, gw, 1)
    assert len(stored(mgmt, gw)) == 6  # over the new limit: nothing more is stored, nothing is lost
    mgmt.ok("PUT", mgmt.gw_path(gw), json={"log_management_strategy": "DELETE_OLDEST"})
    newest = send(mgmt, gw, 1)
    assert stored(mgmt, gw)[-1] == newest[0] and len(stored(mgmt, gw)) == 2
    mgmt.ok("PUT", mgmt.gw_path(gw), json={"log_management": None})
    send(mgmt, gw, 3)
    assert len(stored(mgmt, gw)) == 5


def test_gateway_deletion_removes_everything(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(cache_ttl=300)
    send(mgmt, gw, 3)  # the first is a MISS that fills the cache
    before = processed(mgmt)
    assert mgmt.universal(gw, openai_step()).headers["cf-aig-cache-status"] == "HIT"
    wait_until(lambda: processed(mgmt) > before, what="the log writer")
    deleted = mgmt.ok("DELETE", mgmt.gw_path(gw))["result"]
    assert deleted["id"] == gw
    url = mgmt.server.settings.database_url
    for table in ("logs", "log_metadata", "log_counters"):
        assert query_db(url, f"SELECT count(*) FROM {table} WHERE gateway_id = :g", {"g": gw}) == [(0,)], (
            table
        )
    mgmt.new_gateway(id=gw, cache_ttl=300)
    assert mgmt.universal(gw, openai_step()).headers["cf-aig-cache-status"] == "MISS"  # cache dropped too
    assert len(mgmt.wait_logs(gw, 1)) == 1  # none of the old rows came back


@pytest.mark.parametrize("invalidate", [True, False])
def test_cache_invalidate_on_update(mgmt: Mgmt, invalidate: bool) -> None:
    gw = mgmt.new_gateway(cache_ttl=300, cache_invalidate_on_update=invalidate)
    assert mgmt.universal(gw, openai_step()).headers["cf-aig-cache-status"] == "MISS"
    assert mgmt.universal(gw, openai_step()).headers["cf-aig-cache-status"] == "HIT"
    other = mgmt.new_gateway(cache_ttl=300)
    mgmt.universal(other, openai_step())
    mgmt.ok("PUT", mgmt.gw_path(gw), json={"collect_logs": False})
    after = mgmt.universal(gw, openai_step()).headers["cf-aig-cache-status"]
    assert after == ("MISS" if invalidate else "HIT")
    assert mgmt.universal(other, openai_step()).headers["cf-aig-cache-status"] == "HIT"  # not its cache
