"""Errors on the universal WebSocket session (protocol.md §6): every kind of bad frame (an error
frame, and the connection lives on), a duplicate in-flight eventId, upstream error statuses passed
on as results, gateway error frames with their log id, and streams cut mid-way (2013)."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import LogDb, openai_step, workers_ai_step
from tests.support.ws import (
    RESULT_METADATA_KEYS,
    TEXT,
    create_frame,
    eid,
    error_response,
    good_step,
    ws_session,
)

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401

# ---- bad frames --------------------------------------------------------------------------------------


# name → (frame as sent, expected error code, eventId expected in the error's metadata)
BAD_FRAMES: dict[str, tuple[str | bytes, int, str | None]] = {
    "not-json": ("{nope", 2010, None),
    "empty-text": ("", 2010, None),
    "json-array": (json.dumps([{"type": "universal.create", "request": good_step()}]), 2010, None),
    "json-number": ("42", 2010, None),
    "json-string": ('"universal.create"', 2010, None),
    "unknown-type": (
        json.dumps({"type": "universal.nope", "request": good_step(eventId="bf-type")}),
        2010,
        "bf-type",
    ),
    "missing-type": (json.dumps({"request": good_step(eventId="bf-notype")}), 2010, "bf-notype"),
    "missing-request": (json.dumps({"type": "universal.create"}), 2010, None),
    "null-request": (create_frame(None), 2010, None),
    "string-request": (create_frame("hello"), 2010, None),
    "empty-array-request": (create_frame([]), 2010, None),
    "provider-not-string": (create_frame(good_step(eventId="bf-prov", provider=5)), 2010, "bf-prov"),
    "endpoint-not-string": (create_frame(good_step(eventId="bf-endp", endpoint=["x"])), 2010, "bf-endp"),
    "headers-not-object": (create_frame(good_step(eventId="bf-head", headers=["a"])), 2010, "bf-head"),
    "query-missing": (
        create_frame({"eventId": "bf-query", "provider": "openai", "endpoint": "x"}),
        2010,
        "bf-query",
    ),
    "config-out-of-range": (
        create_frame(good_step(eventId="bf-conf", config={"maxAttempts": 9})),
        2010,
        "bf-conf",
    ),
    "bad-cf-aig-header": (
        create_frame(good_step(eventId="bf-ttl", headers={"cf-aig-cache-ttl": "abc"})),
        2010,
        "bf-ttl",
    ),
    "event-id-not-string": (create_frame(good_step(eventId=5)), 2010, None),
    "bad-second-step": (create_frame([good_step(eventId="bf-arr"), {"provider": "openai"}]), 2010, "bf-arr"),
    "unknown-provider": (
        create_frame(good_step(eventId="bf-unknown", provider="no-such-provider")),
        2008,
        "bf-unknown",
    ),
    "binary-garbage": (b"\x00\xff\xfe", 2010, None),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
async def test_bad_frame_gets_error_frame_and_connection_lives(
    url: str, token: str, upstream: FakeUpstream, case: str
) -> None:
    frame, code, event_id = BAD_FRAMES[case]
    async with ws_session(url, token) as session:
        for _ in range(2):  # twice: the connection keeps answering errors too
            await session.send(frame)
            if event_id is None:
                error = (await session.wait_anonymous(1))[0]
                session.anonymous.clear()
            else:
                (event,) = await session.wait(event_id)
                error = event.created
                del session.events[event_id]
            assert error["metadata"] == {"status": 400, **({"eventId": event_id} if event_id else {})}
            error_response(error, code)
            await session.assert_alive()
        assert upstream.count() == 2  # only the good requests reached a provider


async def test_binary_frame_with_a_valid_request_is_refused(
    url: str, token: str, upstream: FakeUpstream
) -> None:
    async with ws_session(url, token) as session:
        await session.send(create_frame(good_step(eventId="bin-1")).encode())
        (event,) = await session.wait("bin-1")
        error_response(event.created, 2010)
        await session.assert_alive()
    assert upstream.count() == 1


# ---- refused requests --------------------------------------------------------------------------------


async def test_duplicate_in_flight_event_id_refused(url: str, token: str, upstream: FakeUpstream) -> None:
    event_id = eid("dup")
    slow = openai_step({"x-fake-chunk-delay-ms": "60", "x-fake-text": TEXT}, stream=True, eventId=event_id)
    async with ws_session(url, token) as session:
        await session.create(slow)
        first = await session.recv_frame()
        assert first["type"] == "universal.created" and "response" not in first
        await session.create(openai_step(eventId=event_id))
        refusals = []
        while (frame := await session.recv_frame())["type"] != "universal.done":
            if frame["type"] == "universal.created":  # the refusal, amid the first request's stream
                refusals.append(frame)
        assert len(refusals) == 1
        assert refusals[0]["metadata"] == {"eventId": event_id, "status": 400}
        assert "in flight" in error_response(refusals[0], 2010)
        assert frame["metadata"]["eventId"] == event_id and frame["metadata"]["status"] == 200
        assert session.events[event_id].text == TEXT  # the first request ran to its end
        assert upstream.count() == 1
        # Once finished, the id may be used again.
        del session.events[event_id]
        again = await session.request(openai_step(eventId=event_id))
        assert again.created["metadata"]["status"] == 200


# ---- failures ----------------------------------------------------------------------------------------


async def test_mid_stream_cut(url: str, token: str, log: LogDb) -> None:
    event_id = eid("cut")
    step = openai_step({"x-fake-cut-after": "3", "x-fake-text": TEXT}, stream=True, eventId=event_id)
    async with ws_session(url, token) as session:
        event = await session.request(step)
        await session.assert_alive()
    event.assert_stream_shape()
    assert len(event.chunks) == 3
    done = event.done["metadata"]
    assert done["success"] is False
    assert done["error"]["code"] == 2013 and done["error"]["message"]
    assert done["eventId"] == event_id and done["logId"] == event.created["metadata"]["logId"]
    (row,) = log.wait_event(event_id)
    assert row["success"] == 0 and row["error"]


async def test_upstream_error_status_is_a_result(url: str, token: str) -> None:
    async with ws_session(url, token) as session:
        event = await session.request(openai_step({"x-fake-status": "429"}, eventId="up-429"))
    metadata = event.created["metadata"]
    assert set(metadata) == RESULT_METADATA_KEYS and metadata["status"] == 429 and metadata["step"] == "0"
    assert event.response["error"]["code"] == "rate_limit_exceeded"  # the provider's body, not rewrapped


async def test_gateway_error_frame_carries_log_id(url: str, token: str, log: LogDb) -> None:
    # Step 0 answers 500, step 1's body is cut before its end: no provider answered (2005).
    steps = [workers_ai_step({"x-fake-status": "500"}), openai_step({"x-fake-cut-after": "10"})]
    async with ws_session(url, token) as session:
        event = await session.request([{**steps[0], "eventId": "dead"}, steps[1]])
        await session.send(create_frame(good_step(eventId="bad-prov", provider="nope")))
        (unknown,) = await session.wait("bad-prov")
        await session.assert_alive()
    frame = event.created
    assert frame["metadata"] == {
        "eventId": "dead",
        "status": 502,
        "logId": frame["metadata"]["logId"],
        "step": "1",
        "requestId": frame["metadata"]["requestId"],
    }
    error_response(frame, 2005)
    rows = log.wait_event("dead", 2)
    assert rows[1]["id"] == frame["metadata"]["logId"]
    assert rows[0]["id"] == frame["metadata"]["requestId"]  # the request's first row, as over HTTP
    assert [(r["step"], r["success"]) for r in rows] == [(0, 0), (1, 0)]
    assert rows[1]["error"]
    assert unknown.created["metadata"] == {"eventId": "bad-prov", "status": 400}
    assert "nope" in error_response(unknown.created, 2008)
