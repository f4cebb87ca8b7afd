"""Shared pieces of the spend-limit tests: rules, calls through a gateway, the refusal's shape."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.helpers import ACCT, MESSAGES, error_of

CHAT_PATH = "openai/chat/completions"


def rule(limit: float, window: int = 3600, technique: str = "fixed", **extra: Any) -> dict[str, Any]:
    return {"limitType": "cost", "limit": limit, "window": window, "technique": technique, **extra}


def limits(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"spend_limits": {"rules": list(rules)}}


def total_cost(usd: float) -> dict[str, str]:
    """A per-call price: the estimate and the real cost are both `usd`, so budgets are exact."""
    return {"cf-aig-custom-cost": json.dumps({"total_cost": usd})}


def chat(
    client: httpx.Client,
    gateway_id: str,
    headers: dict[str, str] | None = None,
    account: str = ACCT,
    **body: Any,
) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": MESSAGES, **body}
    return client.post(
        f"/v1/{account}/{gateway_id}/{CHAT_PATH}",
        json=payload,
        headers={"Authorization": "Bearer sk-test", **(headers or {})},
    )


def refused(response: httpx.Response) -> str:
    """Assert the 2045 refusal (gateway error shape, ids); return its message."""
    message = error_of(response, 429, 2045)
    assert response.headers["cf-aig-log-id"] and response.headers["cf-aig-event-id"]
    assert message.startswith("Spend limit exceeded: rule '"), message
    return message
