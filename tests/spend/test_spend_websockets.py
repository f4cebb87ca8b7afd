"""Spend limits over WebSockets: a universal session gets a `universal.created` error frame with
2045 (and the session lives on); a realtime session is refused at the handshake (429) once its
bucket is at the limit, and what a session cost is settled when it closes."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import GatewayServer
from tests.spend.support import limits, rule, total_cost
from tests.support.helpers import ADMIN_HEADERS, Api, openai_step
from tests.support.ws import error_response, ws_session, ws_url

# isort: split
from tests.support.ws import api_fixture, token_fixture  # noqa: F401
from tests.ws.test_realtime import (  # noqa: F401  (the fake realtime provider and its gateway)
    FakeRealtime,
    log_rows,
    realtime_gateway,
    realtime_upstream,
    run_token,
)
from tests.ws.test_realtime import ws_url as realtime_url


async def test_universal_session_gets_a_2045_frame(server: GatewayServer, api: Api, token: str) -> None:
    capped = rule(1, id="ws", model={"mode": "filter", "values": ["gpt-4o"]})
    gateway_id = api.new_gateway(**limits(capped))
    step = {**openai_step(total_cost(1), model="gpt-4o")}
    async with ws_session(ws_url(server, gateway_id), token) as session:
        first = await session.request({**step, "eventId": "spend-1"})
        assert first.created["metadata"]["status"] == 200
        second = await session.request({**step, "eventId": "spend-2"})
        message = error_response(second.created, 2045)
        assert "rule 'ws'" in message
        assert second.created["metadata"]["status"] == 429
        await session.assert_alive()  # gpt-4o-mini: no rule applies


async def test_realtime_refused_at_the_handshake_once_over(
    realtime_gateway: GatewayServer,  # noqa: F811
    realtime_upstream: FakeRealtime,  # noqa: F811
) -> None:
    # One session reports 17 + 8 tokens of gpt-realtime: 0.000196 USD, over a 0.0001 budget.
    put = httpx.put(
        f"{realtime_gateway.url}/client/v4/accounts/acct/ai-gateway/gateways/gw",
        json=limits(rule(0.0001, id="rt")),
        headers=ADMIN_HEADERS,
    )
    assert put.status_code == 200, put.text
    realtime_gateway.app.state.config_cache.clear()
    headers = {"cf-aig-authorization": f"Bearer {run_token(realtime_gateway)}"}
    async with connect(realtime_url(realtime_gateway), additional_headers=headers) as ws:
        await ws.send("respond")
        for _ in range(2):
            await ws.recv()
    (row,) = log_rows(realtime_gateway, 1)
    assert row["cost"] == pytest.approx(17 * 4e-6 + 8 * 1.6e-5)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(realtime_url(realtime_gateway), additional_headers=headers):
            pass
    assert refused.value.response.status_code == 429
    assert b"2045" in refused.value.response.body
    assert len(realtime_upstream.handshakes) == 1  # the provider was never called
