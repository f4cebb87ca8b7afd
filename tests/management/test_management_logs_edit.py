"""One log (heads, sizes, complete flags), its stored request and response bodies, edits
(feedback, score, metadata) and deletion by filters — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import openai_step
from tests.support.management import BACKENDS, Mgmt, errors_of, management_server, mgmt_client

BODY_LIMIT = 2048


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("logs-edit")
    with (
        management_server(request.param, base, fake_upstream.url, log_body_max_bytes=BODY_LIMIT) as server,
        mgmt_client(server) as client,
    ):
        yield client


def one_log(
    m: Mgmt, gw: str, step: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> str:
    before = len(m.all_logs(gw))
    r = m.universal(gw, step or openai_step(), headers)
    assert r.status_code == 200, r.text
    m.wait_logs(gw, before + 1)
    return r.headers["cf-aig-log-id"]


def test_one_log_with_heads_sizes_and_flags(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    log_id = one_log(mgmt, gw, headers={"cf-aig-metadata": '{"user": "ann"}'})
    log = mgmt.ok("GET", mgmt.gw_path(gw, f"/logs/{log_id}"))["result"]
    assert log["id"] == log_id and json.loads(log["metadata"]) == {"user": "ann"}
    assert json.loads(log["request_head"])["model"] == "gpt-4o-mini"
    assert json.loads(log["response_head"])["object"] == "chat.completion"
    assert log["request_head_complete"] is True and log["response_head_complete"] is True
    assert log["request_size"] == len(log["request_head"].encode())
    assert log["response_size"] == len(log["response_head"].encode())
    assert log["user_agent"].startswith("python-httpx") and log["authentication"] is False
    assert log["error"] is None and log["status_code"] == 200
    assert mgmt.ok("GET", mgmt.gw_path(gw, f"/logs/{log_id.lower()}"))["result"]["id"] == log_id


def test_bodies_as_stored_with_their_content_type(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    log_id = one_log(mgmt, gw)
    request = mgmt.call("GET", mgmt.gw_path(gw, f"/logs/{log_id}/request"))
    assert request.status_code == 200 and request.headers["content-type"] == "application/json"
    assert json.loads(request.content)["messages"][0]["content"] == "say hello please"
    assert request.headers["x-body-complete"] == "true"
    response = mgmt.call("GET", mgmt.gw_path(gw, f"/logs/{log_id}/response"))
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content)["choices"][0]["message"]["content"] == "Hello from fake"

    stream_id = one_log(mgmt, gw, openai_step(stream=True))
    streamed = mgmt.call("GET", mgmt.gw_path(gw, f"/logs/{stream_id}/response"))
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.startswith("data: ") and "[DONE]" in streamed.text


def test_truncated_and_missing_bodies(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    long_text = "word " * 1000  # a 5 kB request body, past the 2 kB log head
    step = openai_step()
    step["query"]["messages"] = [{"role": "user", "content": long_text}]
    log_id = one_log(mgmt, gw, step)
    log = mgmt.ok("GET", mgmt.gw_path(gw, f"/logs/{log_id}"))["result"]
    assert log["request_head_complete"] is False and log["request_size"] > BODY_LIMIT
    assert len(log["request_head"].encode()) <= BODY_LIMIT
    head = mgmt.call("GET", mgmt.gw_path(gw, f"/logs/{log_id}/request"))
    assert head.headers["x-body-complete"] == "false" and len(head.content) == BODY_LIMIT

    bare_id = one_log(mgmt, gw, headers={"cf-aig-collect-log-payload": "false"})
    bare = mgmt.ok("GET", mgmt.gw_path(gw, f"/logs/{bare_id}"))["result"]
    assert bare["request_head"] is None and bare["response_head"] is None and bare["request_size"] > 0
    for which in ("request", "response"):
        assert (
            "no stored" in errors_of(mgmt.call("GET", mgmt.gw_path(gw, f"/logs/{bare_id}/{which}")), 404)[0]
        )
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/logs/01ARZ3NDEKTSV4RRFFQ69G5FAV/response")), 404)


def test_edit_feedback_score_metadata(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    log_id = one_log(mgmt, gw, headers={"cf-aig-metadata": '{"user": "ann"}'})
    path = mgmt.gw_path(gw, f"/logs/{log_id}")
    edited = mgmt.ok("PATCH", path, json={"feedback": -1, "score": 0})["result"]
    assert (edited["feedback"], edited["score"], json.loads(edited["metadata"])) == (-1, 0, {"user": "ann"})
    edited = mgmt.ok(
        "PATCH", path, json={"feedback": 1.0, "metadata": {"user": "bo", "tier": 2, "beta": False}}
    )["result"]
    assert edited["feedback"] == 1 and edited["score"] == 0
    assert json.loads(edited["metadata"]) == {"user": "bo", "tier": 2, "beta": False}
    # The metadata index follows the edit.
    by_value = mgmt.logs(
        gw, {"filters": json.dumps([{"key": "metadata.value", "operator": "eq", "value": ["bo"]}])}
    )
    assert [r["id"] for r in by_value["result"]] == [log_id]
    old = mgmt.logs(
        gw, {"filters": json.dumps([{"key": "metadata.value", "operator": "eq", "value": ["ann"]}])}
    )
    assert old["result"] == []
    beta = mgmt.logs(
        gw, {"filters": json.dumps([{"key": "metadata.value", "operator": "eq", "value": [False]}])}
    )
    assert [r["id"] for r in beta["result"]] == [log_id]
    assert [r["id"] for r in mgmt.logs(gw, {"feedback": "1"})["result"]] == [log_id]
    cleared = mgmt.ok("PATCH", path, json={"feedback": None, "score": None, "metadata": None})["result"]
    assert (cleared["feedback"], cleared["score"], cleared["metadata"]) == (None, None, None)
    assert mgmt.ok("PATCH", path, json={})["result"]["id"] == log_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"feedback": 2}, "feedback"),
        ({"feedback": 0.5}, "feedback"),
        ({"feedback": "yes"}, "feedback"),
        ({"score": 101}, "score"),
        ({"score": -1}, "score"),
        ({"metadata": {"a": {"nested": 1}}}, "metadata.a"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"metadata": {str(i): i for i in range(6)}}, "metadata"),
        ({"other": 1}, "other"),
    ],
)
def test_edit_validation(mgmt: Mgmt, body: dict[str, Any], field: str) -> None:
    gw = mgmt.new_gateway()
    log_id = one_log(mgmt, gw)
    messages = errors_of(mgmt.call("PATCH", mgmt.gw_path(gw, f"/logs/{log_id}"), json=body))
    assert any(m.startswith(f"{field}") for m in messages), messages


def test_edit_unknown_log_is_404(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    errors_of(
        mgmt.call("PATCH", mgmt.gw_path(gw, "/logs/01ARZ3NDEKTSV4RRFFQ69G5FAV"), json={"score": 1}), 404
    )


def _fill(m: Mgmt, gw: str, count: int) -> list[str]:
    for i in range(count):
        r = m.universal(gw, openai_step(), {"cf-aig-metadata": json.dumps({"i": i, "even": i % 2 == 0})})
        assert r.status_code == 200
    return sorted(r["id"] for r in m.wait_logs(gw, count))


def test_delete_by_filters_with_limit_and_order(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    ids = _fill(mgmt, gw, 8)
    path = mgmt.gw_path(gw, "/logs")
    evens = json.dumps([{"key": "metadata.value", "operator": "eq", "value": [True]},
                        {"key": "metadata.key", "operator": "eq", "value": ["even"]}])  # fmt: skip
    assert mgmt.ok("DELETE", path, params={"filters": evens, "limit": 1})["result"] == {"deleted": 1}
    assert ids[0] not in {r["id"] for r in mgmt.all_logs(gw)}  # oldest first by default
    newest = mgmt.ok("DELETE", path, params={"filters": evens, "limit": 1, "order_by_direction": "desc"})
    assert newest["result"]["deleted"] == 1 and ids[6] not in {r["id"] for r in mgmt.all_logs(gw)}
    rest = mgmt.ok("DELETE", path, params={"filters": evens})
    assert rest["result"]["deleted"] == 2
    left = sorted(r["id"] for r in mgmt.all_logs(gw))
    assert left == [ids[i] for i in (1, 3, 5, 7)]
    assert mgmt.logs(gw)["result_info"]["total_count"] == 4  # the counter followed
    assert mgmt.ok("DELETE", path, params={"provider": "anthropic"})["result"]["deleted"] == 0
    assert mgmt.ok("DELETE", path)["result"]["deleted"] == 4
    assert mgmt.logs(gw)["result_info"]["total_count"] == 0
    errors_of(mgmt.call("DELETE", path, params={"limit": 0}))
    errors_of(mgmt.call("DELETE", path, params={"limit": "x"}))


def test_delete_ordered_by_another_column(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    _fill(mgmt, gw, 3)
    slow = one_log(mgmt, gw, openai_step({"x-fake-delay-ms": "300"}))
    path = mgmt.gw_path(gw, "/logs")
    done = mgmt.ok("DELETE", path, params={"order_by": "duration", "order_by_direction": "desc", "limit": 1})
    assert done["result"]["deleted"] == 1
    assert slow not in {r["id"] for r in mgmt.all_logs(gw)}


def test_logs_of_other_gateways_untouched(mgmt: Mgmt) -> None:
    keep, drop = mgmt.new_gateway(), mgmt.new_gateway()
    _fill(mgmt, keep, 2)
    _fill(mgmt, drop, 2)
    mgmt.ok("DELETE", mgmt.gw_path(drop, "/logs"))
    assert len(mgmt.all_logs(keep)) == 2
    assert mgmt.logs(keep)["result_info"]["total_count"] == 2
