"""A 2009 names the header the gateway token goes in: a token sent as `Authorization` (the
provider's header) is the usual newcomer's mistake."""

from __future__ import annotations

import httpx

from tests.conftest import GatewayServer
from tests.support.helpers import create_gateway


def test_a_token_in_authorization_gets_told_the_header(server: GatewayServer) -> None:
    create_gateway(server.url, gateway_id="auth-hint", authentication=True)
    response = httpx.post(
        f"{server.url}/v1/acct/auth-hint/openai/chat/completions",
        headers={"Authorization": "Bearer aigw_something"},
        json={"model": "m", "messages": []},
    )
    assert response.status_code == 401
    (error,) = response.json()["error"]
    assert error["code"] == 2009
    assert error["message"].startswith("Unauthorized: no gateway token")
    assert "cf-aig-authorization: Bearer <token>" in error["message"]


def test_a_wrong_token_is_said_to_be_invalid(server: GatewayServer) -> None:
    create_gateway(server.url, gateway_id="auth-hint-2", authentication=True)
    response = httpx.post(
        f"{server.url}/v1/acct/auth-hint-2/openai/chat/completions",
        headers={"cf-aig-authorization": "Bearer aigw_x_y"},
        json={"model": "m", "messages": []},
    )
    assert response.status_code == 401
    assert "not valid for this gateway" in response.json()["error"][0]["message"]
