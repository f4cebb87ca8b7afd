"""GET /metrics: Prometheus text with request, cache, latency, queue and socket series."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, GatewayServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}" if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_count_requests_hits_and_latency(gateway: GatewayServer, upstream: Any) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    httpx.post(
        f"{gateway.url}/client/v4/accounts/acct/ai-gateway/gateways",
        json={"id": "gw", "cache_ttl": 60},
        headers=headers,
    )
    url = f"{gateway.url}/v1/acct/gw/openai/chat/completions"
    for _ in range(3):
        httpx.post(url, json=CHAT)
    httpx.post(url, json={**CHAT, "model": "other"}, headers={"x-fake-status": "500"})
    response = httpx.get(f"{gateway.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "aigw_requests_total", gateway="acct/gw", provider="openai", status="200") == 3
    assert metric(text, "aigw_requests_total", gateway="acct/gw", provider="openai", status="500") == 1
    assert metric(text, "aigw_cache_hits_total", gateway="acct/gw") == 2
    assert metric(text, "aigw_upstream_latency_seconds_count", provider="openai") == 2
    assert metric(text, "aigw_gateway_added_latency_seconds_count") == 4
    assert metric(text, "aigw_in_flight_requests") == 0
    assert metric(text, "aigw_open_websockets") == 0
    assert metric(text, "aigw_logs_dropped") == 0
    assert "aigw_log_queue_depth" in text
