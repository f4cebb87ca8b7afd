"""The OpenAI SDK's realtime client pointed at the gateway: `client.realtime.connect()` appends
`/realtime` to the base URL, so the gateway serves `…/openai/realtime` as the same session as
Cloudflare's `…/openai?model=`. Refused handshakes on any `/v1` path carry the error body."""

from __future__ import annotations

import json

import openai
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.conftest import GatewayServer
from tests.ws import test_realtime
from tests.ws.test_realtime import ACCOUNT, FakeRealtime, log_rows, run_token

# The realtime module's fixtures (a fake realtime upstream, a gateway pointed at it).
realtime_upstream = test_realtime.realtime_upstream
realtime_gateway = test_realtime.realtime_gateway


def _ws_base(gateway: GatewayServer) -> str:
    return gateway.url.replace("http://", "ws://")


async def test_openai_sdk_realtime_connect(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    token = run_token(realtime_gateway)
    client = openai.AsyncOpenAI(
        api_key="sk-provider",
        base_url=f"{realtime_gateway.url}/v1/{ACCOUNT}/gw/openai",
        default_headers={"cf-aig-authorization": f"Bearer {token}"},
    )
    async with client.realtime.connect(model="gpt-realtime") as connection:
        await connection.send({"type": "response.create"})  # the fake echoes every frame
        event = await connection.recv()
        assert event.type == "response.create"
    handshake = realtime_upstream.handshakes[0]
    assert handshake["path"] == "/v1/realtime?model=gpt-realtime"
    assert handshake["headers"]["authorization"] == "Bearer sk-provider"
    assert "cf-aig-authorization" not in handshake["headers"]
    (row,) = log_rows(realtime_gateway, 1)
    assert row["provider"] == "openai" and row["model"] == "gpt-realtime"


async def _refusal(url: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(url, additional_headers=headers):
            pass
    response = refused.value.response
    return response.status_code, json.loads(bytes(response.body or b""))


async def test_unknown_suffix_is_refused_with_a_message(
    realtime_gateway: GatewayServer, realtime_upstream: FakeRealtime
) -> None:
    token = run_token(realtime_gateway)
    url = f"{_ws_base(realtime_gateway)}/v1/{ACCOUNT}/gw/openai/chat/completions"
    status, body = await _refusal(url, {"cf-aig-authorization": token})
    assert status == 400
    (error,) = body["error"]  # type: ignore[misc]
    assert error["code"] == 2010 and "/openai/realtime" in error["message"]
    assert realtime_upstream.handshakes == []


async def test_any_other_v1_websocket_path_gets_the_error_body(realtime_gateway: GatewayServer) -> None:
    status, body = await _refusal(f"{_ws_base(realtime_gateway)}/v1/{ACCOUNT}", {})
    assert status == 400
    (error,) = body["error"]  # type: ignore[misc]
    assert error["code"] == 2010 and "/v1/{account}/{gateway}" in error["message"]


async def test_session_refusal_names_the_token_header(realtime_gateway: GatewayServer) -> None:
    """The provider key in `Authorization` is not the gateway token: the 401 says which header is."""
    url = f"{_ws_base(realtime_gateway)}/v1/{ACCOUNT}/gw/openai/realtime?model=m"
    status, body = await _refusal(url, {"Authorization": "Bearer sk-provider"})
    assert status == 401
    (error,) = body["error"]  # type: ignore[misc]
    assert error["code"] == 2009
    assert "cf-aig-authorization" in error["message"] and "always" in error["message"]
