"""Cancel and limits on the universal WebSocket session (protocol.md §5, §11): `universal.cancel`
of slow streams, of unknown ids, right after the create, before the first byte (still logged) and by
a session-default eventId; and the configured limits: frame size (2011), requests in flight (2003)
and the idle timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import Api, LogDb, api_client, openai_step
from tests.support.ws import barrier, create_frame, eid, error_response, good_step, ws_session, ws_url

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401

# ---- cancel ------------------------------------------------------------------------------------------


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
    big = create_frame(
        good_step(eventId="big", query={"model": "m", "messages": [{"role": "user", "content": "x" * 2500}]})
    )
    fits = good_step(
        eventId="fits", query={"model": "m", "messages": [{"role": "user", "content": "y" * 1500}]}
    )
    assert len(big) > 2000 and len(create_frame(fits)) < 2000
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
