"""The universal endpoint over real HTTP (protocol.md §2), retries and timeouts: network failures
(2005, retried, falling back), maxAttempts from header, step config and gateway settings, which
statuses are retried, Retry-After (seconds, bounded, HTTP date), backoff delays, the first-byte
request timeout and upstream timeouts (2012)."""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ULID_RE,
    Api,
    anthropic_step,
    api_client,
    error_of,
    fail_key,
    openai_step,
    sse_events,
    unreachable_url,
    workers_ai_step,
)


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


@pytest.fixture
def dead_server(
    gateway_settings: Any, gateway_factory: Callable[..., GatewayServer], upstream: FakeUpstream
) -> GatewayServer:
    """A gateway whose openai and anthropic point at a port nothing listens on (groq still answers)."""
    dead = unreachable_url()
    overrides = {**gateway_settings.upstream_overrides, "openai": f"{dead}/v1", "anthropic": dead}
    return gateway_factory(gateway_settings.model_copy(update={"upstream_overrides": overrides}))


# ---- network errors -------------------------------------------------------------------------------


def test_network_error_on_every_step_is_2005(dead_server: GatewayServer, upstream: FakeUpstream) -> None:
    with api_client(dead_server) as api:
        gw = api.new_gateway()
        r = api.universal(gw, [openai_step(), anthropic_step()])
        error_of(r, 502, 2005)
        assert r.headers["cf-aig-step"] == "1"
        assert ULID_RE.match(r.headers["cf-aig-log-id"])
        r = api.universal(gw, openai_step())
        error_of(r, 502, 2005)
    assert upstream.count() == 0


def test_network_error_then_next_step_answers(dead_server: GatewayServer, upstream: FakeUpstream) -> None:
    groq = openai_step(model="llama-3.1-8b-instant")
    groq["provider"] = "groq"
    with api_client(dead_server) as api:
        r = api.universal(api.new_gateway(), [openai_step(), groq])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert upstream.last.path == "/openai/v1/chat/completions"


def test_network_error_is_retried_then_2005(dead_server: GatewayServer, upstream: FakeUpstream) -> None:
    step = openai_step(config={"maxAttempts": 3, "retryDelay": 100})
    with api_client(dead_server) as api:
        started = time.monotonic()
        r = api.universal(api.new_gateway(), step)
        elapsed = time.monotonic() - started
    error_of(r, 502, 2005)
    assert elapsed >= 0.19  # two retries, 100 ms apart: the network error was retried


# ---- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempts", "status", "hits"), [("3", 200, 3), ("2", 500, 2), ("1", 500, 1)])
def test_max_attempts_header(
    api: Api, gw: str, upstream: FakeUpstream, attempts: str, status: int, hits: int
) -> None:
    step = openai_step({"x-fake-fail-times": "2", **fail_key()})
    r = api.universal(gw, step, headers={"cf-aig-max-attempts": attempts})
    assert r.status_code == status, r.text
    assert upstream.count() == hits


def test_max_attempts_step_config_wins_over_header(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step({"x-fake-fail-times": "3", **fail_key()}, config={"maxAttempts": 4})
    r = api.universal(gw, step, headers={"cf-aig-max-attempts": "1"})
    assert r.status_code == 200, r.text
    assert upstream.count() == 4


def test_gateway_retry_setting_applies(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(retry_max_attempts=3, retry_delay=0)
    r = api.universal(gw, openai_step({"x-fake-fail-times": "2", **fail_key()}))
    assert r.status_code == 200, r.text
    assert upstream.count() == 3


def test_no_retry_by_default(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step({"x-fake-fail-times": "1", **fail_key()}))
    assert r.status_code == 500
    assert upstream.count() == 1


@pytest.mark.parametrize("status", ["400", "401", "404", "422"])
def test_no_retry_on_other_4xx(api: Api, gw: str, upstream: FakeUpstream, status: str) -> None:
    r = api.universal(gw, openai_step({"x-fake-status": status}), headers={"cf-aig-max-attempts": "4"})
    assert r.status_code == int(status)
    assert upstream.count() == 1


@pytest.mark.parametrize("status", ["429", "502", "503"])
def test_retry_on_429_and_5xx(api: Api, gw: str, upstream: FakeUpstream, status: str) -> None:
    step = openai_step({"x-fake-status": status, "x-fake-fail-times": "1", **fail_key()})
    r = api.universal(gw, step, headers={"cf-aig-max-attempts": "2"})
    assert r.status_code == 200, r.text
    assert upstream.count() == 2


def test_retry_after_is_honoured(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step(
        {"x-fake-status": "429", "x-fake-retry-after": "1", "x-fake-fail-times": "1", **fail_key()},
        config={"maxAttempts": 2, "retryDelay": 0},
    )
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    first, second = upstream.requests
    assert second.time - first.time >= 0.95


def test_retry_after_is_bounded_to_five_seconds(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step(
        {"x-fake-status": "429", "x-fake-retry-after": "3600", "x-fake-fail-times": "1", **fail_key()},
        config={"maxAttempts": 2, "retryDelay": 0},
    )
    started = time.monotonic()
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    first, second = upstream.requests
    gap, elapsed = second.time - first.time, time.monotonic() - started
    assert 4.9 <= gap < 6.5, gap
    assert elapsed < 8, elapsed


def test_retry_after_http_date_is_honoured(api: Api, gw: str, upstream: FakeUpstream) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1 to 2 s ahead (1 s resolution)
    step = openai_step(
        {"x-fake-status": "503", "x-fake-retry-after": when, "x-fake-fail-times": "1", **fail_key()},
        config={"maxAttempts": 2, "retryDelay": 0},
    )
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    first, second = upstream.requests
    assert second.time - first.time >= 0.9


@pytest.mark.parametrize(
    ("backoff", "minimum_gaps"),
    [("exponential", [0.05, 0.1, 0.2]), ("linear", [0.05, 0.1, 0.15]), ("constant", [0.05, 0.05, 0.05])],
)
def test_backoff_delays(
    api: Api, gw: str, upstream: FakeUpstream, backoff: str, minimum_gaps: list[float]
) -> None:
    step = openai_step({"x-fake-fail-times": "3", **fail_key()})
    started = time.monotonic()
    r = api.universal(
        gw,
        step,
        headers={"cf-aig-max-attempts": "4", "cf-aig-retry-delay": "50", "cf-aig-backoff": backoff},
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    times = [rec.time for rec in upstream.requests]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, minimum in zip(gaps, minimum_gaps, strict=True):
        assert gap >= minimum * 0.95, (backoff, gaps)
    assert elapsed >= sum(minimum_gaps) * 0.95
    assert elapsed < sum(minimum_gaps) + 2.0


def test_exponential_backoff_from_step_config(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step(
        {"x-fake-fail-times": "2", **fail_key()},
        config={"maxAttempts": 3, "retryDelay": 100, "backoff": "exponential"},
    )
    started = time.monotonic()
    r = api.universal(gw, step)
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.29  # 100 ms, then 200 ms
    assert upstream.count() == 3


# ---- first-byte timeout -----------------------------------------------------------------------------


def test_request_timeout_on_non_last_step_falls_back(api: Api, gw: str, upstream: FakeUpstream) -> None:
    slow = openai_step({"x-fake-delay-ms": "2000"}, config={"requestTimeout": 150})
    started = time.monotonic()
    r = api.universal(gw, [slow, anthropic_step()])
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert elapsed < 1.5
    assert upstream.count() == 2


def test_request_timeout_header_applies_to_steps(api: Api, gw: str, upstream: FakeUpstream) -> None:
    slow = openai_step({"x-fake-delay-ms": "2000"})
    started = time.monotonic()
    r = api.universal(gw, [slow, anthropic_step()], headers={"cf-aig-request-timeout": "150"})
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert time.monotonic() - started < 1.5


def test_request_timeout_does_not_cut_the_final_attempt_of_the_final_step(
    api: Api, gw: str, upstream: FakeUpstream
) -> None:
    step = openai_step({"x-fake-delay-ms": "300"}, config={"requestTimeout": 100})
    started = time.monotonic()
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    assert time.monotonic() - started >= 0.29
    assert upstream.count() == 1


def test_request_timeout_cuts_earlier_attempts_of_the_final_step(
    api: Api, gw: str, upstream: FakeUpstream
) -> None:
    step = openai_step({"x-fake-delay-ms": "300"}, config={"requestTimeout": 100, "maxAttempts": 2})
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    assert upstream.count() == 2  # the first attempt was cut at 100 ms and retried; the last was not
    assert r.headers["x-fake-seq"] == "2"


def test_request_timeout_does_not_cut_a_started_stream(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = workers_ai_step({"x-fake-chunk-delay-ms": "120"}, stream=True)
    step["config"] = {"requestTimeout": 60}
    r = api.universal(gw, [step, anthropic_step()])
    assert r.status_code == 200
    assert r.headers["cf-aig-step"] == "0"
    events = sse_events(r.content)
    assert len(events) == 5
    assert events[-1] == (None, "[DONE]")
    assert upstream.count() == 1


def test_every_attempt_timing_out_is_2012(
    gateway_settings: Any, gateway_factory: Callable[..., GatewayServer], upstream: FakeUpstream
) -> None:
    """The final attempt is bounded only by the server's absolute upstream limit; when that runs
    out too, the answer is 504 / 2012."""
    server = gateway_factory(gateway_settings.model_copy(update={"upstream_timeout_s": 0.3}))
    with api_client(server) as api:
        gw = api.new_gateway()
        started = time.monotonic()
        r = api.universal(gw, openai_step({"x-fake-delay-ms": "2000"}))
        error_of(r, 504, 2012)
        assert time.monotonic() - started < 1.5
        first = openai_step({"x-fake-delay-ms": "2000"}, config={"requestTimeout": 100})
        r = api.universal(gw, [first, anthropic_step({"x-fake-delay-ms": "2000"})])
        error_of(r, 504, 2012)
        assert r.headers["cf-aig-step"] == "1"
        r = api.universal(gw, anthropic_step())  # the server is still fine
        assert r.status_code == 200
