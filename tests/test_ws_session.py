"""The universal WebSocket session (protocol.md §5, §6, §11) over a real socket with the Python
`websockets` client: handshake auth (header and subprotocol), result and stream frames, concurrent
interleaved streams, fallback, session defaults, cancel, every kind of bad frame, the configured
limits, mid-stream cuts, and the log rows a connection leaves behind."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import GatewayServer
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ACCT,
    ADMIN_HEADERS,
    ULID_RE,
    Api,
    LogDb,
    anthropic_step,
    api_client,
    openai_step,
    unique,
    workers_ai_step,
)
from tests.test_ws_support import (
    RESULT_METADATA_KEYS,
    SUBPROTOCOL_PREFIX,
    UUID_RE,
    barrier,
    error_response,
    log_db,
    ws_session,
    ws_url,
)

TEXT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture
def api(server: GatewayServer, upstream: FakeUpstream) -> Iterator[Api]:
    with api_client(server) as client:
        yield client


@pytest.fixture(scope="module")
def token(server: GatewayServer) -> str:
    with api_client(server) as client:
        return str(client.new_token()["value"])


@pytest.fixture
def gw(api: Api) -> str:
    """A gateway with authentication off: WebSocket sessions still require a token (§5)."""
    return api.new_gateway(authentication=False)


@pytest.fixture
def url(server: GatewayServer, gw: str) -> str:
    return ws_url(server, gw)


@pytest.fixture
def log(server: GatewayServer) -> LogDb:
    return log_db(server)


def eid(prefix: str = "ev") -> str:
    return unique(prefix)


# ---- handshake ---------------------------------------------------------------------------------------


async def test_handshake_with_header_token(url: str, token: str, upstream: FakeUpstream) -> None:
    async with ws_session(url, token) as session:
        assert session.ws.subprotocol is None
        await session.assert_alive()
    # The gateway token is never forwarded upstream (and neither is any other cf-aig-* header).
    assert not [name for name in upstream.last.headers if name.startswith("cf-aig")]
    assert upstream.last.headers["authorization"] == "Bearer sk-test-openai"


async def test_handshake_with_subprotocol_token(url: str, token: str, upstream: FakeUpstream) -> None:
    entry = f"{SUBPROTOCOL_PREFIX}{token}"
    async with ws_session(url, token, subprotocol=True) as session:
        assert session.ws.subprotocol == entry
        await session.assert_alive()
    # Offered next to another subprotocol, the token entry is still the one selected.
    async with ws_session(url, subprotocols=["chat.v1", entry]) as session:
        assert session.ws.subprotocol == entry
        await session.assert_alive()
    assert not [name for name in upstream.last.headers if name.startswith("cf-aig")]


async def test_handshake_on_trailing_slash_path(server: GatewayServer, gw: str, token: str) -> None:
    async with ws_session(ws_url(server, gw, suffix="/"), token) as session:
        await session.assert_alive()


async def _assert_refused(url: str, status: int, code: int, **kwargs: Any) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_session(url, **kwargs):
            pass
    response = refused.value.response
    assert response.status_code == status
    body = json.loads(bytes(response.body or b""))
    assert body["success"] is False
    assert body["error"][0]["code"] == code, body


REFUSED_TOKENS: dict[str, Callable[[Api, str], dict[str, Any]]] = {
    "missing": lambda api, gw: {},
    "empty-header": lambda api, gw: {"headers": {"cf-aig-authorization": ""}},
    "garbage": lambda api, gw: {"headers": {"cf-aig-authorization": "Bearer nonsense"}},
    "wrong-secret": lambda api, gw: {"token": api.new_token()["value"][:-4] + "AAAA"},
    "other-account": lambda api, gw: {"token": api.new_token(account="someone-else")["value"]},
    "other-gateway": lambda api, gw: {"token": api.new_token(gateways=["not-this-one"])["value"]},
    "no-run-permission": lambda api, gw: {"token": api.new_token(permissions=["read"])["value"]},
    "subprotocol-garbage": lambda api, gw: {"subprotocols": [f"{SUBPROTOCOL_PREFIX}nonsense"]},
    "subprotocol-empty": lambda api, gw: {"subprotocols": [SUBPROTOCOL_PREFIX]},
}


@pytest.mark.parametrize("case", list(REFUSED_TOKENS))
async def test_handshake_refused_with_401(
    api: Api, gw: str, url: str, log: LogDb, upstream: FakeUpstream, case: str
) -> None:
    await _assert_refused(url, 401, 2009, **REFUSED_TOKENS[case](api, gw))
    # The gateway itself needs no token over HTTP: only the WebSocket session insists on one.
    assert api.universal(gw, openai_step()).status_code == 200
    barrier(api, log)
    assert len(log.rows("gateway_id = ?", (gw,))) == 1  # the HTTP request's row, nothing else
    assert upstream.count() == 2  # the HTTP request and the barrier


async def test_revoked_token_refused(api: Api, url: str, gw: str, log: LogDb) -> None:
    created = api.new_token()
    async with ws_session(url, created["value"]) as session:
        await session.assert_alive()
    revoked = api.http.delete(
        f"/client/v4/accounts/{ACCT}/tokens/{created['id']}",
        headers=ADMIN_HEADERS,
    )
    assert revoked.status_code == 200, revoked.text
    await _assert_refused(url, 401, 2009, token=created["value"])
    await _assert_refused(url, 401, 2009, token=created["value"], subprotocol=True)
    barrier(api, log)
    assert len(log.rows("gateway_id = ?", (gw,))) == 1  # only the request made before the revocation


async def test_handshake_refusals_other_than_auth(server: GatewayServer, token: str) -> None:
    # Unknown gateway (not `default`): 2001, after the token was accepted.
    await _assert_refused(ws_url(server, unique("missing")), 400, 2001, token=token)
    # A malformed cf-aig-* session default is refused at the handshake (2010).
    gateway_id = unique()
    with api_client(server) as client:
        client.new_gateway(id=gateway_id)
    await _assert_refused(
        ws_url(server, gateway_id), 400, 2010, token=token, headers={"cf-aig-cache-ttl": "abc"}
    )


@pytest.mark.parametrize("subprotocol", [False, True], ids=["header", "subprotocol"])
async def test_gateway_with_authentication_on(
    api: Api, server: GatewayServer, token: str, log: LogDb, subprotocol: bool
) -> None:
    gateway_id = api.new_gateway(authentication=True)
    async with ws_session(ws_url(server, gateway_id), token, subprotocol=subprotocol) as session:
        await session.assert_alive()  # the session's token authenticates each of its requests
    (row,) = log.wait_gateway(gateway_id)
    assert row["authenticated"] == 1


async def test_default_gateway_created_by_first_session(api: Api, server: GatewayServer, log: LogDb) -> None:
    account = unique("acct")
    url = ws_url(server, "default", account=account)
    await _assert_refused(url, 401, 2009)
    listed = api.http.get(
        f"/client/v4/accounts/{account}/ai-gateway/gateways",
        headers=ADMIN_HEADERS,
    )
    assert listed.json()["result"] == []  # the refused handshake created nothing
    token = str(api.new_token(account=account)["value"])
    async with ws_session(url, token) as session:
        await session.assert_alive()
    (row,) = log.wait("account_id = ? AND gateway_id = 'default'", (account,))
    assert row["request_type"] == "websocket"


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


async def test_cancel_slow_stream(url: str, token: str, log: LogDb) -> None:
    event_id = eid("cancel")
    text = " ".join(f"w{i}" for i in range(40))
    step = openai_step({"x-fake-chunk-delay-ms": "100", "x-fake-text": text}, stream=True, eventId=event_id)
    loop = asyncio.get_running_loop()
    async with ws_session(url, token) as session:
        await session.create(step)
        while len(session.event(event_id).chunks) < 2:
            await session.recv_frame()
        started = loop.time()
        await session.cancel(event_id)
        (event,) = await session.wait(event_id, timeout=5)
        assert loop.time() - started < 2  # the stream would have run for 4 s more
        done = event.done["metadata"]
        assert done["cancelled"] is True
        assert done["eventId"] == event_id
        assert done["logId"] == event.created["metadata"]["logId"]
        assert 0 < len(event.text) < len(text)
        await session.assert_alive()
    (row,) = log.wait_event(event_id)
    assert row["success"] == 0
    assert row["request_type"] == "websocket"
    assert row["error"]


async def test_cancel_of_unknown_event_id(url: str, token: str) -> None:
    async with ws_session(url, token) as session:
        await session.cancel("never-sent")
        (event,) = await session.wait("never-sent")
        assert event.created["metadata"]["eventId"] == "never-sent"
        assert event.created["metadata"]["status"] == 400
        error_response(event.created, 2010)
        await session.send({"type": "universal.cancel"})  # no eventId at all
        (frame,) = await session.wait_anonymous()
        error_response(frame, 2010)
        await session.assert_alive()


async def test_cancel_right_after_create(url: str, token: str, upstream: FakeUpstream) -> None:
    step = openai_step({"x-fake-chunk-delay-ms": "100"}, stream=True, eventId="bb")
    async with ws_session(url, token) as session:
        await session.send_together(
            {"type": "universal.create", "request": step}, {"type": "universal.cancel", "eventId": "bb"}
        )
        (event,) = await session.wait("bb", timeout=1)
        assert event.terminal is not None and event.terminal["metadata"]["cancelled"] is True
        await session.assert_alive()


async def test_cancel_before_first_byte_is_logged(
    api: Api, url: str, gw: str, token: str, log: LogDb, upstream: FakeUpstream
) -> None:
    event_id = eid("pre")
    async with ws_session(url, token) as session:
        await session.create(openai_step({"x-fake-delay-ms": "3000"}, eventId=event_id))
        async with asyncio.timeout(5):
            while upstream.count() < 1:  # the step was attempted: the provider has the request
                await asyncio.sleep(0.01)
        await session.cancel(event_id)
        (event,) = await session.wait(event_id, timeout=2)
        assert event.done["metadata"] == {"eventId": event_id, "cancelled": True}
    barrier(api, log)
    (row,) = log.rows("gateway_id = ?", (gw,))
    assert row["event_id"] == event_id
    assert row["success"] == 0 and row["request_type"] == "websocket"


async def test_event_id_from_session_default_is_the_one_that_cancels(url: str, token: str) -> None:
    headers = {"cf-aig-event-id": "session-event"}
    async with ws_session(url, token, headers=headers) as session:
        await session.create(openai_step({"x-fake-chunk-delay-ms": "100"}, stream=True))
        created = await session.recv_frame()
        shown = created["metadata"]["eventId"]
        assert shown == "session-event"
        await session.cancel(shown)
        (event,) = await session.wait(shown, timeout=3)
        assert event.done["metadata"].get("cancelled") is True, event.frames


# ---- bad frames --------------------------------------------------------------------------------------


def _create(request: Any) -> str:
    return json.dumps({"type": "universal.create", "request": request})


def _good(**fields: Any) -> dict[str, Any]:
    return {**openai_step(), **fields}


# name → (frame as sent, expected error code, eventId expected in the error's metadata)
BAD_FRAMES: dict[str, tuple[str | bytes, int, str | None]] = {
    "not-json": ("{nope", 2010, None),
    "empty-text": ("", 2010, None),
    "json-array": (json.dumps([{"type": "universal.create", "request": _good()}]), 2010, None),
    "json-number": ("42", 2010, None),
    "json-string": ('"universal.create"', 2010, None),
    "unknown-type": (
        json.dumps({"type": "universal.nope", "request": _good(eventId="bf-type")}),
        2010,
        "bf-type",
    ),
    "missing-type": (json.dumps({"request": _good(eventId="bf-notype")}), 2010, "bf-notype"),
    "missing-request": (json.dumps({"type": "universal.create"}), 2010, None),
    "null-request": (_create(None), 2010, None),
    "string-request": (_create("hello"), 2010, None),
    "empty-array-request": (_create([]), 2010, None),
    "provider-not-string": (_create(_good(eventId="bf-prov", provider=5)), 2010, "bf-prov"),
    "endpoint-not-string": (_create(_good(eventId="bf-endp", endpoint=["x"])), 2010, "bf-endp"),
    "headers-not-object": (_create(_good(eventId="bf-head", headers=["a"])), 2010, "bf-head"),
    "query-missing": (
        _create({"eventId": "bf-query", "provider": "openai", "endpoint": "x"}),
        2010,
        "bf-query",
    ),
    "config-out-of-range": (_create(_good(eventId="bf-conf", config={"maxAttempts": 9})), 2010, "bf-conf"),
    "bad-cf-aig-header": (
        _create(_good(eventId="bf-ttl", headers={"cf-aig-cache-ttl": "abc"})),
        2010,
        "bf-ttl",
    ),
    "event-id-not-string": (_create(_good(eventId=5)), 2010, None),
    "bad-second-step": (_create([_good(eventId="bf-arr"), {"provider": "openai"}]), 2010, "bf-arr"),
    "unknown-provider": (
        _create(_good(eventId="bf-unknown", provider="no-such-provider")),
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
        await session.send(_create(_good(eventId="bin-1")).encode())
        (event,) = await session.wait("bin-1")
        error_response(event.created, 2010)
        await session.assert_alive()
    assert upstream.count() == 1


# ---- limits ------------------------------------------------------------------------------------------


@pytest.fixture
def limited(
    gateway_settings: Any, gateway_factory: Callable[..., GatewayServer], request: pytest.FixtureRequest
) -> tuple[str, str]:
    """(ws url, token) of a gateway started with the settings given by indirect parametrization."""
    server = gateway_factory(gateway_settings.model_copy(update=request.param))
    with api_client(server) as client:
        return ws_url(server, client.new_gateway()), str(client.new_token()["value"])


@pytest.mark.parametrize("limited", [{"ws_max_frame_bytes": 2000}], indirect=True)
async def test_oversized_frame(limited: tuple[str, str], upstream: FakeUpstream) -> None:
    url, token = limited
    big = _create(
        _good(eventId="big", query={"model": "m", "messages": [{"role": "user", "content": "x" * 2500}]})
    )
    fits = _good(eventId="fits", query={"model": "m", "messages": [{"role": "user", "content": "y" * 1500}]})
    assert len(big) > 2000 and len(_create(fits)) < 2000
    async with ws_session(url, token) as session:
        await session.send(big)
        (error,) = await session.wait_anonymous()  # the frame is refused unread: no eventId
        assert error["metadata"] == {"status": 413}
        error_response(error, 2011)
        await session.send(big.encode())  # a binary frame is measured the same way
        assert error_response((await session.wait_anonymous(2))[1], 2011)
        event = await session.request(fits)
        assert event.created["metadata"]["status"] == 200
        await session.assert_alive()
    assert upstream.count() == 2


@pytest.mark.parametrize("limited", [{"ws_max_in_flight": 2}], indirect=True)
async def test_in_flight_limit(limited: tuple[str, str], upstream: FakeUpstream) -> None:
    url, token = limited
    slow = {"x-fake-chunk-delay-ms": "100", "x-fake-text": "one two three four five"}
    async with ws_session(url, token) as session:
        await session.create(openai_step(slow, stream=True, eventId="in-1"))
        await session.create(openai_step(slow, stream=True, eventId="in-2"))
        await session.create(openai_step(eventId="in-3"))
        (refused,) = await session.wait("in-3")
        assert refused.created["metadata"] == {"eventId": "in-3", "status": 429}
        error_response(refused.created, 2003)
        first, second = await session.wait("in-1", "in-2")
        assert first.text == second.text == "one two three four five"
        assert session.events["in-1"].done["metadata"]["status"] == 200
        await session.assert_alive()  # the slots are free again
    assert upstream.count() == 3


@pytest.mark.parametrize("limited", [{"ws_idle_timeout_s": 0.3}], indirect=True)
async def test_idle_connection_is_closed(limited: tuple[str, str]) -> None:
    url, token = limited
    async with ws_session(url, token) as session:
        await asyncio.wait_for(session.ws.wait_closed(), 3)
        assert session.ws.close_code == 1000


@pytest.mark.parametrize("limited", [{"ws_idle_timeout_s": 0.3}], indirect=True)
async def test_idle_timeout_after_a_request(limited: tuple[str, str]) -> None:
    url, token = limited
    async with ws_session(url, token) as session:
        await session.assert_alive()
        await asyncio.wait_for(session.ws.wait_closed(), 1)
        assert session.ws.close_code == 1000


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
        await session.send(_create(_good(eventId="bad-prov", provider="nope")))
        (unknown,) = await session.wait("bad-prov")
        await session.assert_alive()
    frame = event.created
    assert frame["metadata"] == {
        "eventId": "dead",
        "status": 502,
        "logId": frame["metadata"]["logId"],
        "step": "1",
    }
    error_response(frame, 2005)
    rows = log.wait_event("dead", 2)
    assert rows[1]["id"] == frame["metadata"]["logId"]
    assert [(r["step"], r["success"]) for r in rows] == [(0, 0), (1, 0)]
    assert rows[1]["error"]
    assert unknown.created["metadata"] == {"eventId": "bad-prov", "status": 400}
    assert "nope" in error_response(unknown.created, 2008)


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
