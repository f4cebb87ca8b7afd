"""Request logs written by real HTTP traffic (protocol.md §11, §3 log headers): one row per step
attempted, ids and event ids, the metadata header, log and payload switches, body heads, and
credentials never stored. What the rows read from bodies and streams (model, tokens, cost) is in
test_http_log_usage.py."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    MESSAGES,
    ULID_RE,
    Api,
    anthropic_step,
    api_client,
    expected_cost,
    google_step,
    metadata_of,
    openai_step,
    running_gateway,
    unique,
    workers_ai_step,
)

BODY_LIMIT = 64


@pytest.fixture(scope="module")
def small_server(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[GatewayServer]:
    """A gateway that keeps only the first BODY_LIMIT bytes of bodies in its logs."""
    base = tmp_path_factory.mktemp("logs-small")
    with running_gateway(base, fake_upstream.url, log_body_max_bytes=BODY_LIMIT) as gateway:
        yield gateway


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


def marker_request(api: Api, gw: str) -> str:
    """A logged request sent after one that must not be logged: once its row is written, the
    earlier request's row would have been written too (one writer, in order)."""
    r = api.universal(gw, openai_step(), headers={"cf-aig-event-id": unique("marker")})
    assert r.status_code == 200
    api.db().wait_event(r.headers["cf-aig-event-id"])
    return r.headers["cf-aig-event-id"]


# ---- rows, ids and event ids -------------------------------------------------------------------------


def test_one_row_per_step_with_a_shared_event_id(api: Api, gw: str, upstream: FakeUpstream) -> None:
    steps = [openai_step({"x-fake-status": "500"}), anthropic_step({"x-fake-status": "429"}), google_step()]
    r = api.universal(gw, steps)
    assert r.status_code == 200
    rows = api.db().wait_gateway(gw, 3)
    assert len(rows) == 3
    assert [row["step"] for row in rows] == [0, 1, 2]  # ORDER BY id is time order
    assert [row["provider"] for row in rows] == ["openai", "anthropic", "google-ai-studio"]
    assert [row["status_code"] for row in rows] == [500, 429, 200]
    assert [row["success"] for row in rows] == [0, 0, 1]
    assert all(ULID_RE.match(row["id"]) for row in rows)
    assert len({row["id"] for row in rows}) == 3
    assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)
    assert len({row["event_id"] for row in rows}) == 1
    assert r.headers["cf-aig-log-id"] == rows[2]["id"]  # the answering step's row
    assert r.headers["cf-aig-event-id"] == rows[0]["event_id"]
    assert all(row["request_type"] == "universal" for row in rows)
    assert all(row["account_id"] == ACCT for row in rows)


def test_retries_of_one_step_share_its_row(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step({"x-fake-fail-times": "2", "x-fake-fail-key": unique("k")}, config={"maxAttempts": 3})
    r = api.universal(gw, step)
    assert r.status_code == 200
    rows = api.db().wait_gateway(gw)
    assert len(rows) == 1
    assert rows[0]["attempts"] == 3
    assert rows[0]["success"] == 1
    assert rows[0]["id"] == r.headers["cf-aig-log-id"]


def test_failed_attempts_logged_with_their_error(api: Api, gw: str, upstream: FakeUpstream) -> None:
    slow = openai_step({"x-fake-delay-ms": "1000"}, config={"requestTimeout": 100})
    cut = anthropic_step({"x-fake-cut-after": "5"})
    r = api.universal(gw, [slow, cut, google_step()])
    assert r.status_code == 200
    timed_out, body_cut, answered = api.db().wait_gateway(gw, 3)
    assert timed_out["success"] == 0
    assert timed_out["status_code"] is None
    assert "time" in timed_out["error"]
    assert body_cut["success"] == 0
    assert body_cut["error"]
    assert answered["success"] == 1
    assert answered["error"] is None


def test_gateway_error_headers_point_at_the_last_step_row(api: Api, gw: str, upstream: FakeUpstream) -> None:
    steps = [openai_step({"x-fake-status": "500"}), anthropic_step({"x-fake-cut-after": "5"})]
    r = api.universal(gw, steps)
    assert r.status_code == 502
    first, last = api.db().wait_gateway(gw, 2)
    assert r.headers["cf-aig-log-id"] == last["id"]
    assert r.headers["cf-aig-event-id"] == first["event_id"] == last["event_id"]
    assert r.headers["cf-aig-step"] == "1"
    assert (first["status_code"], last["success"]) == (500, 0)


def test_stream_abandoned_by_the_client_logged_as_failed(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step({"x-fake-chunk-delay-ms": "100"}, stream=True)
    with api.http.stream("POST", f"/v1/{ACCT}/{gw}", json=step) as r:
        assert r.status_code == 200
        log_id = r.headers["cf-aig-log-id"]
        next(r.iter_raw())
    row = api.db().wait("id = ?", (log_id,))[0]
    assert row["success"] == 0
    assert row["status_code"] == 200
    assert "client" in row["error"]
    assert 0 < row["response_size"] < 600


@pytest.mark.parametrize("universal", [False, True])
def test_event_id_header_echoed_and_stored(
    api: Api, gw: str, upstream: FakeUpstream, universal: bool
) -> None:
    event = unique("evt")
    headers = {"cf-aig-event-id": event, "Authorization": "Bearer sk-x"}
    if universal:
        r = api.universal(gw, [openai_step({"x-fake-status": "500"}), anthropic_step()], headers=headers)
    else:
        r = api.http.post(
            f"/v1/{ACCT}/{gw}/openai/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers=headers,
        )
    assert r.status_code == 200
    assert r.headers["cf-aig-event-id"] == event
    rows = api.db().wait_event(event, 2 if universal else 1)
    assert {row["id"] for row in rows} >= {r.headers["cf-aig-log-id"]}
    assert all(row["gateway_id"] == gw for row in rows)


def test_step_event_id_echoed_and_stored(api: Api, gw: str, upstream: FakeUpstream) -> None:
    event = unique("step-evt")
    r = api.universal(gw, openai_step(eventId=event))
    assert r.headers["cf-aig-event-id"] == event
    assert api.db().wait_event(event)[0]["id"] == r.headers["cf-aig-log-id"]


def test_event_id_defaults_to_the_log_id(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.http.post(
        f"/v1/{ACCT}/{gw}/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
    )
    assert r.headers["cf-aig-event-id"] == r.headers["cf-aig-log-id"]
    row = api.db().wait_gateway(gw)[0]
    assert row["event_id"] == row["id"] == r.headers["cf-aig-log-id"]
    assert row["request_type"] == "provider"


# ---- metadata ----------------------------------------------------------------------------------------


def test_metadata_stored_five_entries_and_no_cf_keys(api: Api, gw: str, upstream: FakeUpstream) -> None:
    metadata = {"cf.reserved": "x", "a": "one", "b": 2, "c": True, "d": 1.5, "e": "five", "f": "six"}
    r = api.universal(gw, openai_step(), headers={"cf-aig-metadata": json.dumps(metadata)})
    assert r.status_code == 200
    row = api.db().wait_gateway(gw)[0]
    stored = metadata_of(row)
    assert stored == {"a": "one", "b": 2, "c": True, "d": 1.5, "e": "five"}


def test_metadata_on_every_step_row(api: Api, gw: str, upstream: FakeUpstream) -> None:
    headers = {"cf-aig-metadata": '{"user": "u-1"}'}
    api.universal(gw, [openai_step({"x-fake-status": "500"}), anthropic_step()], headers=headers)
    rows = api.db().wait_gateway(gw, 2)
    assert [metadata_of(row) for row in rows] == [{"user": "u-1"}] * 2


def test_no_metadata_is_null(api: Api, gw: str, upstream: FakeUpstream) -> None:
    api.universal(gw, openai_step())
    assert metadata_of(api.db().wait_gateway(gw)[0]) is None


def test_metadata_with_nested_values_is_ignored(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step(), headers={"cf-aig-metadata": '{"a": {"nested": 1}, "b": "x"}'})
    assert r.status_code == 200, r.text
    assert metadata_of(api.db().wait_gateway(gw)[0]) is None


# ---- what is logged ----------------------------------------------------------------------------------


def test_collect_log_false_writes_no_row(api: Api, gw: str, upstream: FakeUpstream) -> None:
    event = unique("unlogged")
    r = api.universal(gw, openai_step(), headers={"cf-aig-collect-log": "false", "cf-aig-event-id": event})
    assert r.status_code == 200
    assert r.headers["cf-aig-event-id"] == event
    marker_request(api, gw)
    assert api.db().rows("event_id = ?", (event,)) == []


def test_gateway_collect_logs_off_and_header_override(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(collect_logs=False)
    off, on = unique("off"), unique("on")
    api.universal(gw, openai_step(), headers={"cf-aig-event-id": off})
    api.universal(gw, openai_step(), headers={"cf-aig-event-id": on, "cf-aig-collect-log": "true"})
    rows = api.db().wait_event(on)
    assert len(rows) == 1
    assert api.db().rows("event_id = ?", (off,)) == []


def test_collect_log_payload_false_keeps_row_without_bodies(
    api: Api, gw: str, upstream: FakeUpstream
) -> None:
    r = api.universal(gw, openai_step(stream=True), headers={"cf-aig-collect-log-payload": "false"})
    assert r.status_code == 200
    r2 = api.http.post(
        f"/v1/{ACCT}/{gw}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"cf-aig-collect-log-payload": "false"},
    )
    assert r2.status_code == 200
    rows = api.db().wait_gateway(gw, 2)
    for row, response in zip(rows, (r, r2), strict=True):
        assert row["request_body"] is None
        assert row["response_body"] is None
        assert row["success"] == 1
        assert row["model"] == "gpt-4o-mini"
        assert row["request_size"] > 0
        assert row["response_size"] == len(response.content)
    assert (rows[0]["tokens_in"], rows[0]["tokens_out"]) == (3, 3)  # streams are scanned as they pass


def test_collect_log_payload_false_keeps_tokens_and_cost(api: Api, gw: str, upstream: FakeUpstream) -> None:
    api.universal(gw, openai_step(), headers={"cf-aig-collect-log-payload": "false"})
    row = api.db().wait_gateway(gw)[0]
    assert (row["tokens_in"], row["tokens_out"]) == (3, 3)
    assert row["cost"] == pytest.approx(expected_cost("openai", "gpt-4o-mini", 3, 3))


def test_body_heads_truncated_with_complete_flags(
    small_server: GatewayServer, upstream: FakeUpstream
) -> None:
    with api_client(small_server) as api:
        gw = api.new_gateway()
        big = api.universal(gw, openai_step())  # request and response both over BODY_LIMIT
        assert big.status_code == 200
        small = api.http.get(f"/v1/{ACCT}/{gw}/openai/binary", headers={"x-fake-bytes": "10"})
        assert small.status_code == 200
        stream = api.universal(gw, workers_ai_step(stream=True))
        assert stream.status_code == 200
        rows = {row["id"]: row for row in api.db().wait_gateway(gw, 3)}

    row = rows[big.headers["cf-aig-log-id"]]
    sent = upstream.requests[0].body
    assert len(sent) > BODY_LIMIT and len(big.content) > BODY_LIMIT
    assert bytes(row["request_body"]) == sent[:BODY_LIMIT]
    assert row["request_body_complete"] == 0
    assert row["request_size"] == len(sent)
    assert bytes(row["response_body"]) == big.content[:BODY_LIMIT]
    assert row["response_body_complete"] == 0
    assert row["response_size"] == len(big.content)

    row = rows[small.headers["cf-aig-log-id"]]
    assert bytes(row["request_body"]) == b""
    assert row["request_body_complete"] == 1
    assert bytes(row["response_body"]) == small.content
    assert row["response_body_complete"] == 1

    row = rows[stream.headers["cf-aig-log-id"]]
    assert bytes(row["response_body"]) == stream.content[:BODY_LIMIT]
    assert row["response_body_complete"] == 0
    assert (row["tokens_in"], row["tokens_out"]) == (4, 3)  # usage read from the whole stream


def test_tokens_of_a_body_larger_than_the_log_head(
    small_server: GatewayServer, upstream: FakeUpstream
) -> None:
    with api_client(small_server) as api:
        gw = api.new_gateway()
        r = api.universal(gw, openai_step())
        assert len(r.content) > BODY_LIMIT
        row = api.db().wait_gateway(gw)[0]
    assert (row["tokens_in"], row["tokens_out"]) == (3, 3)


def test_credentials_and_tokens_never_logged(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(authentication=True)
    gateway_token = str(api.new_token()["value"])
    secrets = {
        "openai": "sk-live-SECRET-openai-0123456789",
        "legacy": "sk-live-SECRET-legacy-0123456789",
        "anthropic": "sk-ant-SECRET-anthropic-0123456789",
        "google": "AIza-SECRET-google-header-0123456789",
        "google_query": "AIza-SECRET-google-query-0123456789",
        "workers": "cf-SECRET-workers-0123456789",
        "gateway": gateway_token,
        "admin": ADMIN_TOKEN,
    }
    auth = {"cf-aig-authorization": f"Bearer {gateway_token}"}
    legacy = openai_step()
    del legacy["headers"]["Authorization"]
    legacy["authorization"] = f"Bearer {secrets['legacy']}"
    steps = [
        openai_step({"Authorization": f"Bearer {secrets['openai']}", "x-fake-status": "401"}),
        anthropic_step({"x-api-key": secrets["anthropic"], "x-fake-status": "500"}),
        legacy,
    ]
    assert api.universal(gw, steps, headers=auth).status_code == 200
    google = google_step({"x-goog-api-key": secrets["google"]}, stream=True)
    assert api.universal(gw, google, headers=auth).status_code == 200
    r = api.http.post(
        f"/v1/{ACCT}/{gw}/google-ai-studio/v1beta/models/gemini-2.0-flash:generateContent"
        f"?key={secrets['google_query']}",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers=auth,
    )
    assert r.status_code == 200
    r = api.http.post(
        f"/v1/{ACCT}/{gw}/workers-ai/@cf/meta/llama-3.1-8b-instruct",
        json={"prompt": "hi"},
        headers={
            "Authorization": f"Bearer {secrets['workers']}",
            "cf-aig-authorization": f"Bearer {ADMIN_TOKEN}",
        },
    )
    assert r.status_code == 200
    with httpx.Client(base_url=api.url) as client:  # refused requests are not rows, but check anyway
        client.post(
            f"/v1/{ACCT}/{gw}", json=openai_step(), headers={"cf-aig-authorization": "Bearer bad-token"}
        )

    rows = api.db().wait_gateway(gw, 6)
    dump = "\n".join(
        repr(bytes(value)) + bytes(value).decode("latin-1") if isinstance(value, bytes) else repr(value)
        for row in api.db().rows()
        for value in row.values()
    )
    assert "gemini-2.0-flash" in dump and len(rows) == 6
    for name, secret in secrets.items():
        assert secret not in dump, name
    token_secret = gateway_token.rsplit("_", 1)[1]
    assert token_secret not in dump
    assert "bad-token" not in dump


def test_no_rows_dropped(api: Api, server: GatewayServer) -> None:
    assert server.app.state.log_sink.dropped == 0
