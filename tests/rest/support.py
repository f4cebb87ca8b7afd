"""What the REST-surface tests share: a gateway with a `run` token, and the paths of
`/client/v4/accounts/{acct}/ai/…` on a running gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, Api

PROVIDER_KEY = "sk-provider-secret-123"


@dataclass
class Rest:
    """One gateway of its own on the module's server, and a `run` token for it."""

    api: Api
    gateway_id: str
    token: str
    upstream: FakeUpstream

    @property
    def base(self) -> str:
        """What the `openai` SDK takes as `base_url`."""
        return f"{self.api.url}/client/v4/accounts/{ACCT}/ai/v1"

    @property
    def ai(self) -> str:
        """What the `anthropic` SDK takes as `base_url`."""
        return f"{self.api.url}/client/v4/accounts/{ACCT}/ai"

    def headers(self, **extra: str) -> dict[str, str]:
        """The token, the gateway and the provider key (the usual REST call)."""
        return {
            "Authorization": f"Bearer {self.token}",
            "cf-aig-gateway-id": self.gateway_id,
            "cf-aig-provider-key": PROVIDER_KEY,
            **extra,
        }

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        sent = self.headers() if headers is None else headers
        return self.api.http.post(f"/client/v4/accounts/{ACCT}/ai/{path}", json=body, headers=sent)

    def rows(self, count: int = 1) -> list[dict[str, Any]]:
        return self.api.db().wait_gateway(self.gateway_id, count)


def new_rest(api: Api, upstream: FakeUpstream, **gateway_fields: Any) -> Rest:
    gateway_id = api.new_gateway(**gateway_fields)
    token = api.new_token(gateways=[gateway_id])["value"]
    return Rest(api, gateway_id, token, upstream)


def v4_error(response: httpx.Response, status: int, code: int) -> str:
    """Assert a gateway error in the v4 envelope; return its message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == [], body
    assert [e["code"] for e in body["errors"]] == [code], body
    assert response.headers.get("cf-aig-request-id"), response.headers
    message: str = body["errors"][0]["message"]
    return message


def sent_credentials(upstream: FakeUpstream) -> dict[str, str]:
    """The credential-looking headers of the last request the provider received."""
    names = ("authorization", "x-api-key", "x-goog-api-key", "cf-aig-authorization", "cf-aig-provider-key")
    return {k: v for k, v in upstream.last.headers.items() if k.lower() in names}
