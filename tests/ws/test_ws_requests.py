"""Requests over the universal WebSocket session (protocol.md §5, §6, §11) with the Python
`websockets` client: result and stream frames for each provider format, concurrent interleaved
streams, server-assigned event ids, arrays of steps as fallback chains, session defaults
overridden per step (cache), and the log rows a connection leaves behind."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ULID_RE, Api, LogDb, anthropic_step, openai_step, workers_ai_step
from tests.support.ws import RESULT_METADATA_KEYS, TEXT, UUID_RE, eid, ws_session, ws_url

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401

# ---- results -----------------------------------------------------------------------------------------


async def test_non_streaming_result(url: str, token: str, log: LogDb, upstream: FakeUpstream) -> None:
    event_id = eid()
    async with ws_session(url, token) as session:
        event = await session.request(openai_step(eventId=event_id, headers={"x-fake-text": TEXT}))
        assert len(event.frames) == 1
        frame = event.created
        metadata = frame["metadata"]
        assert set(metadata) == RESULT_METADATA_KEYS
        assert metadata["eventId"] == event_id
        assert ULID_RE.match(metadata["logId"])
        assert metadata["requestId"] == metadata["logId"]  # one step: the same id, as over HTTP
        assert metadata["step"] == "0"
        assert metadata["cacheStatus"] == "MISS"
        assert metadata["contentType"] == "application/json"
        assert metadata["status"] == 200
        response = frame["response"]
        assert response["object"] == "chat.completion"
        assert response["choices"][0]["message"]["content"] == TEXT
        assert response["usage"] == {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
        # The next frame on the connection belongs to the next request: nothing else came for this one.
        await session.assert_alive()
        assert [f["metadata"]["eventId"] for f in session.order].count(event_id) == 1

    assert upstream.requests[0].path == "/v1/chat/completions"
    assert json.loads(upstream.requests[0].body) == openai_step()["query"]
    (row,) = log.wait_event(event_id)
    assert row["id"] == metadata["logId"]
    assert row["request_type"] == "websocket"
    assert row["status_code"] == 200 and row["success"] == 1
    assert (row["tokens_in"], row["tokens_out"]) == (3, 9)


STREAM_STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "openai": openai_step,  # with stream_options.include_usage
    "workers-ai": workers_ai_step,
    "anthropic": anthropic_step,
}


@pytest.mark.parametrize("provider", list(STREAM_STEPS))
async def test_streaming_result(
    url: str, token: str, log: LogDb, upstream: FakeUpstream, provider: str
) -> None:
    event_id = eid(provider)
    step = STREAM_STEPS[provider]({"x-fake-text": TEXT}, stream=True)
    async with ws_session(url, token) as session:
        event = await session.request({**step, "eventId": event_id})

    event.assert_stream_shape()
    created, done = event.created["metadata"], event.done["metadata"]
    assert set(created) == RESULT_METADATA_KEYS
    assert created["eventId"] == event_id and created["step"] == "0" and created["status"] == 200
    assert created["cacheStatus"] == "MISS"
    assert created["contentType"].startswith("text/event-stream")
    assert done == created
    assert event.text == TEXT
    assert all(isinstance(chunk, dict) for chunk in event.chunks)  # parsed JSON, never [DONE]
    words = len(TEXT.split())
    if provider == "openai":
        assert len(event.chunks) == words + 3  # role, words, stop, usage
        assert event.chunks[-1]["usage"]["completion_tokens"] == words
    elif provider == "workers-ai":
        assert len(event.chunks) == words + 1  # words, usage
    else:
        assert [c["type"] for c in event.chunks[:3]] == ["message_start", "content_block_start", "ping"]
        assert event.chunks[-1] == {"type": "message_stop"}

    (row,) = log.wait_event(event_id)
    assert row["id"] == created["logId"]
    assert row["success"] == 1 and row["request_type"] == "websocket"
    assert row["tokens_out"] == words
    assert upstream.count() == 1


async def test_concurrent_interleaved_streams(url: str, token: str, upstream: FakeUpstream) -> None:
    count = 12
    texts = {eid(f"s{i}"): f"stream {i} says alpha beta gamma delta" for i in range(count)}
    async with ws_session(url, token) as session:
        for event_id, text in texts.items():
            step = openai_step({"x-fake-text": text, "x-fake-chunk-delay-ms": "25"}, stream=True)
            await session.create({**step, "eventId": event_id})
        events = await session.wait(*texts, timeout=20)
    for event in events:
        event.assert_stream_shape()
        assert event.text == texts[event.event_id]
        assert event.done["metadata"]["status"] == 200
    # The streams really overlapped: their frames alternate rather than arriving one event at a time.
    streamed = [f["metadata"]["eventId"] for f in session.order if f["type"] == "universal.stream"]
    switches = sum(1 for a, b in itertools.pairwise(streamed) if a != b)
    assert switches > 3 * count, streamed
    assert len({e.created["metadata"]["logId"] for e in events}) == count
    assert upstream.count() == count


async def test_server_assigns_event_id(url: str, token: str, log: LogDb) -> None:
    async with ws_session(url, token) as session:
        await session.create(openai_step(stream=True))
        first = await session.recv_frame()
        event_id = first["metadata"]["eventId"]
        assert ULID_RE.match(event_id)
        assert event_id == first["metadata"]["logId"]
        (event,) = await session.wait(event_id)
        assert session.anonymous == [] and set(session.events) == {event_id}
    event.assert_stream_shape()  # every frame of the event carries the assigned id
    assert event.done["metadata"]["eventId"] == event_id
    (row,) = log.wait_event(event_id)
    assert row["id"] == event_id


async def test_array_of_steps_is_a_fallback_chain(
    url: str, token: str, log: LogDb, upstream: FakeUpstream
) -> None:
    event_id = eid("fb")
    steps = [
        openai_step({"x-fake-status": "500"}, eventId=event_id),
        workers_ai_step({"x-fake-text": TEXT}),
    ]
    async with ws_session(url, token) as session:
        event = await session.request(steps)
        # The event id may also come from a later step: the first one found is used.
        late = eid("late")
        second = await session.request(
            [openai_step({"x-fake-status": "503"}), {**openai_step(), "eventId": late}]
        )
    metadata = event.created["metadata"]
    assert metadata["step"] == "1" and metadata["status"] == 200 and metadata["eventId"] == event_id
    assert event.response["result"]["response"] == TEXT
    assert second.created["metadata"]["step"] == "1" and second.event_id == late
    assert [r.path for r in upstream.requests][:2] == [
        "/v1/chat/completions",
        f"/client/v4/accounts/{ACCT}/ai/run/@cf/meta/llama-3.1-8b-instruct",
    ]

    rows = log.wait_event(event_id, 2)
    assert [(r["step"], r["status_code"], r["success"]) for r in rows] == [(0, 500, 0), (1, 200, 1)]
    assert rows[1]["id"] == metadata["logId"]
    connection_id = rows[0]["connection_id"]
    assert all(r["request_type"] == "websocket" and r["connection_id"] == connection_id for r in rows)
    assert [r["step"] for r in log.wait_event(late, 2)] == [0, 1]


async def test_session_defaults_and_step_override(
    api: Api, server: GatewayServer, token: str, log: LogDb, upstream: FakeUpstream
) -> None:
    cached_gw = api.new_gateway(cache_ttl=300)
    headers = {"cf-aig-skip-cache": "true"}
    async with ws_session(ws_url(server, cached_gw), token, headers=headers) as session:
        statuses = []
        for _ in range(2):
            event = await session.request(openai_step(eventId=eid("skip")))
            statuses.append(event.created["metadata"]["cacheStatus"])
        assert statuses == ["BYPASS", "BYPASS"]
        assert upstream.count() == 2

        statuses = []
        for _ in range(2):  # the step's own cf-aig-skip-cache overrides the session default
            event = await session.request(openai_step({"cf-aig-skip-cache": "false"}, eventId=eid("use")))
            statuses.append(event.created["metadata"]["cacheStatus"])
            assert event.response["choices"][0]["message"]["content"] == "Hello from fake"
        assert statuses == ["MISS", "HIT"]
        assert upstream.count() == 3
    assert not [name for r in upstream.requests for name in r.headers if name.startswith("cf-")]
    hit = log.wait("gateway_id = ? AND cached = 1", (cached_gw,))
    assert len(hit) == 1 and hit[0]["event_id"] == event.event_id


# ---- logs --------------------------------------------------------------------------------------------


async def test_log_rows_carry_connection_id(url: str, gw: str, token: str, log: LogDb) -> None:
    async with ws_session(url, token) as first:
        await first.request(openai_step(eventId="c1-a"))
        await first.request(openai_step(stream=True, eventId="c1-b"))
    async with ws_session(url, token, user_agent_header="ws-test-agent/1.0") as second:
        await second.request(openai_step(eventId="c2-a"))
    rows = {r["event_id"]: r for r in log.wait_gateway(gw, 3)}
    assert set(rows) == {"c1-a", "c1-b", "c2-a"}
    assert {r["request_type"] for r in rows.values()} == {"websocket"}
    assert UUID_RE.match(rows["c1-a"]["connection_id"])
    assert rows["c1-a"]["connection_id"] == rows["c1-b"]["connection_id"]
    assert rows["c2-a"]["connection_id"] != rows["c1-a"]["connection_id"]
    assert UUID_RE.match(rows["c2-a"]["connection_id"])
    assert rows["c2-a"]["user_agent"] == "ws-test-agent/1.0"
