"""Management writes read their body as JSON whatever the Content-Type says: `curl -d` sends
`application/x-www-form-urlencoded`, and the README's first command must work as written."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.support.helpers import ADMIN_HEADERS

GATEWAYS = "/client/v4/accounts/acct/ai-gateway/gateways"


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain; charset=utf-8", "application/octet-stream"],
)
def test_a_json_body_is_read_whatever_its_content_type(
    server: GatewayServer, content_type: str | None
) -> None:
    gateway_id = f"ct-{abs(hash(content_type)) % 10**8}"
    headers = {**ADMIN_HEADERS, **({"Content-Type": content_type} if content_type else {})}
    body = f'{{"id": "{gateway_id}", "cache_ttl": 300}}'
    response = httpx.post(server.url + GATEWAYS, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["result"]["cache_ttl"] == 300
    update = httpx.put(f"{server.url}{GATEWAYS}/{gateway_id}", content='{"cache_ttl": 60}', headers=headers)
    assert update.status_code == 200, update.text
    assert update.json()["result"]["cache_ttl"] == 60


def test_a_form_body_is_refused_as_not_json(server: GatewayServer) -> None:
    response = httpx.post(server.url + GATEWAYS, data={"id": "form"}, headers=ADMIN_HEADERS)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"code": 1001, "message": "body: not valid JSON"}]


def test_curl_without_a_content_type(server: GatewayServer) -> None:
    """What the README does: curl's default form content type."""
    auth = f"Authorization: {ADMIN_HEADERS['Authorization']}"
    done = subprocess.run(
        ["curl", "-sS", "-X", "POST", server.url + GATEWAYS, "-H", auth,
         "-d", '{"id": "from-curl", "cache_ttl": 300}'],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert '"success":true' in done.stdout.replace(" ", ""), done.stdout


def test_the_authentication_error_names_the_header(server: GatewayServer) -> None:
    response = httpx.get(server.url + GATEWAYS, headers={"cf-aig-authorization": "Bearer x"})
    assert response.status_code == 401
    message = response.json()["errors"][0]["message"]
    assert "Authorization: Bearer" in message and "cf-aig-authorization" in message
