"""Two bugs of one cause (transports that each decided for themselves), fixed in the pipeline and
`transports/encode.py`, tested over both transports:
- an internal error (a bug) is 500 / code 2015 over HTTP and over WebSocket alike, and the server
  and the connection keep working;
- a client that goes away during a non-streaming call stops the upstream call: over HTTP (a
  disconnect) as over WebSocket (the socket closed), the log row says so at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.logs.record import LogRecord
from app.pipeline.run import Pipeline
from app.services.ratelimit import MemoryRateLimiter
from tests.conftest import GatewayServer
from tests.support.helpers import Api, LogDb, error_of, openai_step
from tests.support.ws import eid, error_response, ws_session

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401


class BrokenSink:
    """A log sink with a bug: every record it is given raises."""

    def put(self, record: LogRecord) -> None:
        raise RuntimeError("a bug in the log sink")


@pytest.fixture
def broken_pipeline(server: GatewayServer) -> Iterator[None]:
    """The server's pipeline, rebuilt around a sink that raises, for the length of one test."""
    state = server.app.state
    working = state.pipeline
    state.pipeline = Pipeline(
        state.settings, state.http_client, state.config_cache, state.account_providers, state.cache,
        MemoryRateLimiter(), BrokenSink(), state.metrics,
    )  # fmt: skip
    try:
        yield
    finally:
        state.pipeline = working


def test_an_internal_error_over_http_is_500_with_code_2015(api: Api, gw: str, broken_pipeline: None) -> None:
    response = api.universal(gw, openai_step())
    assert error_of(response, 500, 2015) == "Internal error"
    assert api.universal(gw, openai_step()).status_code == 500  # the server keeps answering


async def test_an_internal_error_over_websocket_is_500_with_code_2015(
    url: str, token: str, broken_pipeline: None
) -> None:
    event_id = eid("bug")
    async with ws_session(url, token) as session:
        await session.create(openai_step(eventId=event_id))
        (event,) = await session.wait(event_id)
        assert event.created["metadata"]["status"] == 500
        assert error_response(event.created, 2015) == "Internal error"
        await session.cancel("not-in-flight")  # the connection keeps working: the next frame is answered
        (answer,) = await session.wait("not-in-flight")
        error_response(answer.created, 2010)


def _cancelled_row(log: LogDb, event_id: str) -> dict[str, Any]:
    # Without the fix the upstream call runs its 3 s and the row (a success) comes after them.
    (row,) = log.wait_event(event_id, timeout=2)
    assert row["success"] == 0 and row["status_code"] is None
    assert row["error"] == "cancelled before the response"
    assert row["duration_ms"] < 2000
    return row


def test_an_http_client_that_disconnects_stops_the_upstream_call(
    server: GatewayServer, gw: str, log: LogDb, upstream: Any
) -> None:
    event_id = eid("gone-http")
    step = openai_step({"x-fake-delay-ms": "3000"}, eventId=event_id)
    with httpx.Client(timeout=0.5) as client, pytest.raises(httpx.ReadTimeout):
        client.post(f"{server.url}/v1/acct/{gw}", json=step)
    row = _cancelled_row(log, event_id)
    assert row["request_type"] == "universal" and upstream.count() == 1


async def test_a_websocket_client_that_goes_away_stops_the_upstream_call(
    url: str, token: str, log: LogDb, upstream: Any
) -> None:
    event_id = eid("gone-ws")
    async with ws_session(url, token) as session:
        await session.create(openai_step({"x-fake-delay-ms": "3000"}, eventId=event_id))
        async with asyncio.timeout(5):
            while upstream.count() < 1:  # the provider has the request
                await asyncio.sleep(0.01)
    row = _cancelled_row(log, event_id)
    assert row["request_type"] == "websocket"
