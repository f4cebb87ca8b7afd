"""Tenant isolation of upstream connections (limits.md §4): an account at its connection bound
waits for its own calls, then gets 504 / 2012, and another account's requests go on as if
nothing happened. Over a real gateway and the fake provider on loopback."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import create_gateway, error_of, openai_step, running_gateway

SLOW_MS = 3000


def test_an_account_at_its_bound_does_not_slow_another_account(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    settings = {
        "max_upstream_connections": 8,
        "max_upstream_connections_per_account": 4,
        "connect_timeout_s": 1.5,  # also how long an account at its bound waits
    }
    with running_gateway(tmp_path, upstream.url, **settings) as gateway:
        create_gateway(gateway.url, "acct-a", "gw")
        create_gateway(gateway.url, "acct-b", "gw")
        slow = openai_step({"x-fake-delay-ms": str(SLOW_MS)})
        with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=gateway.url, timeout=15) as client:
            tenant_a = [pool.submit(client.post, "/v1/acct-a/gw", json=slow) for _ in range(8)]
            time.sleep(0.5)  # account A now holds its four connections, and four calls wait
            took: list[float] = []
            for _ in range(5):
                started = time.monotonic()
                answer = client.post("/v1/acct-b/gw", json=openai_step())
                took.append(time.monotonic() - started)
                assert answer.status_code == 200, answer.text
            a_answers = [future.result() for future in tenant_a]
    # Without the per-account bound, A's eight calls take the whole pool and B waits ~3 s.
    assert statistics.median(took) < 1.0, took
    statuses = sorted(answer.status_code for answer in a_answers)
    assert statuses == [200] * 4 + [504] * 4, statuses
    refused = next(answer for answer in a_answers if answer.status_code == 504)
    assert "timed out" in error_of(refused, 504, 2012).lower()
