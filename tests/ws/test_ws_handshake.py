"""The universal WebSocket handshake (protocol.md §5) over a real socket with the Python `websockets`
client: the token in the `cf-aig-authorization` header or as a subprotocol entry, every way a
token is refused (401 / 2009, and nothing logged), revoked tokens, unknown gateways and malformed
session defaults refused at connect, gateways with authentication on, and the `default` gateway
created by the first session."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, Api, LogDb, api_client, openai_step, unique
from tests.support.ws import SUBPROTOCOL_PREFIX, barrier, ws_session, ws_url

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401

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
