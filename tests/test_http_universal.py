"""The universal endpoint over real HTTP (protocol.md §2): single steps for every provider format,
streams relayed byte for byte, fallback chains, retries with backoff and Retry-After, the
first-byte timeout, network failures (2005), upstream timeouts (2012) and mid-stream cuts (2013)."""

from __future__ import annotations

import email.utils
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import GatewayServer
from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ACCT,
    ULID_RE,
    Api,
    anthropic_step,
    api_client,
    error_of,
    google_step,
    normalize_fake,
    openai_step,
    sse_events,
    unique,
    unreachable_url,
    workers_ai_step,
)

STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "openai": openai_step,
    "workers-ai": workers_ai_step,
    "anthropic": anthropic_step,
    "google-ai-studio": google_step,
}
UPSTREAM_PATHS = {
    "openai": "/v1/chat/completions",
    "workers-ai": f"/client/v4/accounts/{ACCT}/ai/run/@cf/meta/llama-3.1-8b-instruct",
    "anthropic": "/v1/messages",
    "google-ai-studio": "/v1beta/models/gemini-2.0-flash:generateContent",
}


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


def direct(upstream: FakeUpstream, step: dict[str, Any]) -> httpx.Response:
    """The same request as the gateway's last upstream call, sent to the fake directly."""
    rec = upstream.last
    url = f"{upstream.url}{rec.path}" + (f"?{rec.query}" if rec.query else "")
    headers = {"content-type": "application/json", **step["headers"]}
    return httpx.post(url, content=rec.body, headers=headers, timeout=10)


def fail_key() -> dict[str, str]:
    return {"x-fake-fail-key": unique("key")}


# ---- single step ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", list(STEPS))
def test_single_step_non_stream(api: Api, gw: str, upstream: FakeUpstream, provider: str) -> None:
    step = STEPS[provider]()
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cf-aig-step"] == "0"
    assert ULID_RE.match(r.headers["cf-aig-log-id"])
    assert r.headers["cf-aig-cache-status"] == "MISS"
    assert r.headers["x-fake-seq"] == "1"  # upstream headers come back

    assert upstream.count() == 1
    rec = upstream.last
    assert rec.method == "POST"
    assert rec.path == UPSTREAM_PATHS[provider]
    assert json.loads(rec.body) == step["query"]
    for name, value in step["headers"].items():
        assert rec.headers[name.lower()] == value
    assert rec.headers["content-type"] == "application/json"

    expected = direct(upstream, step)
    assert normalize_fake(r.content) == normalize_fake(expected.content)
    assert "Hello from fake" in r.text


@pytest.mark.parametrize("provider", list(STEPS))
def test_single_step_stream_relayed_byte_for_byte(
    api: Api, gw: str, upstream: FakeUpstream, provider: str
) -> None:
    step = STEPS[provider](stream=True)
    with api.http.stream("POST", f"/v1/{ACCT}/{gw}", json=step) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cf-aig-step"] == "0"
        raw = b"".join(r.iter_raw())
    expected = direct(upstream, step)
    assert expected.headers["content-type"].startswith("text/event-stream")
    assert normalize_fake(raw) == normalize_fake(expected.content)
    if provider == "workers-ai":  # nothing request-specific in these events: exactly the same bytes
        assert raw == expected.content
    events = sse_events(raw)
    assert len(events) >= 3
    assert all(name != "error" for name, _ in events)
    if provider in ("openai", "workers-ai"):
        assert events[-1] == (None, "[DONE]")


def test_trailing_slash_and_string_query(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step()
    step["query"] = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    r = api.http.post(f"/v1/{ACCT}/{gw}/", json=step)
    assert r.status_code == 200, r.text
    assert upstream.last.body == step["query"].encode()  # a string query is sent as it is


def test_legacy_authorization_field(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step()
    del step["headers"]["Authorization"]
    step["authorization"] = "Bearer sk-legacy"
    assert api.universal(gw, step).status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-legacy"

    step = openai_step({"Authorization": "Bearer sk-from-headers"}, authorization="Bearer sk-legacy")
    assert api.universal(gw, step).status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-from-headers"  # headers win


@pytest.mark.parametrize("name", ["cf-aig-max-attempts", "CF-AIG-Max-Attempts"])
def test_step_cf_aig_headers_are_settings_not_forwarded(
    api: Api, gw: str, upstream: FakeUpstream, name: str
) -> None:
    step = openai_step({"x-fake-fail-times": "2", **fail_key(), name: "3"})
    r = api.universal(gw, step)
    assert r.status_code == 200, r.text
    assert upstream.count() == 3
    for rec in upstream.requests:
        assert not [name for name in rec.headers if name.startswith("cf-aig")]


def test_unknown_provider_in_any_step_calls_nothing(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, [openai_step(), {"provider": "nope", "endpoint": "x", "query": {}}])
    assert "nope" in error_of(r, 400, 2008)
    assert upstream.count() == 0


# ---- fallback ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["500", "400", "401"])
def test_fallback_to_next_step_when_first_fails(
    api: Api, gw: str, upstream: FakeUpstream, status: str
) -> None:
    r = api.universal(gw, [openai_step({"x-fake-status": status}), anthropic_step()])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert r.json()["type"] == "message"
    assert [rec.path for rec in upstream.requests] == ["/v1/chat/completions", "/v1/messages"]


def test_first_step_ok_second_never_called(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, [openai_step(), anthropic_step(), workers_ai_step()])
    assert r.status_code == 200
    assert r.headers["cf-aig-step"] == "0"
    assert r.json()["object"] == "chat.completion"
    assert upstream.count() == 1
    assert upstream.count("/v1/messages") == 0


def test_three_steps_answered_by_the_third(api: Api, gw: str, upstream: FakeUpstream) -> None:
    steps = [openai_step({"x-fake-status": "503"}), anthropic_step({"x-fake-status": "529"}), google_step()]
    r = api.universal(gw, steps)
    assert r.status_code == 200
    assert r.headers["cf-aig-step"] == "2"
    assert "candidates" in r.json()
    assert upstream.count() == 3


def test_all_steps_fail_last_error_returned_as_is(api: Api, gw: str, upstream: FakeUpstream) -> None:
    last = anthropic_step({"x-fake-status": "429"})
    r = api.universal(gw, [openai_step({"x-fake-status": "500"}), last])
    assert r.status_code == 429
    assert r.headers["cf-aig-step"] == "1"
    assert r.headers["x-fake-seq"] == "2"
    assert r.json()["type"] == "error"  # Anthropic's own error shape, not rewrapped
    expected = direct(upstream, last)
    assert expected.status_code == 429
    assert r.content == expected.content


def test_non_stream_body_cut_falls_back(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, [openai_step({"x-fake-cut-after": "10"}), anthropic_step()])
    assert r.status_code == 200, r.text
    assert r.headers["cf-aig-step"] == "1"
    assert upstream.count() == 2


def test_non_stream_body_cut_on_last_step_is_2005(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step({"x-fake-cut-after": "10"}))
    error_of(r, 502, 2005)


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


# ---- streams cut after they started -------------------------------------------------------------------


def assert_cut_stream(raw: bytes, data_events_before: int) -> None:
    events = sse_events(raw)
    errors = [data for name, data in events if name == "error"]
    assert len(errors) == 1, events
    assert events[-1][0] == "error"
    assert orjson.loads(errors[0])["error"]["code"] == 2013
    assert isinstance(orjson.loads(errors[0])["error"]["message"], str)
    assert b"[DONE]" not in raw
    assert len(events) - 1 == data_events_before


@pytest.mark.parametrize("provider", ["openai", "workers-ai", "anthropic"])
def test_mid_stream_cut_ends_with_one_error_event(
    api: Api, gw: str, upstream: FakeUpstream, provider: str
) -> None:
    step = STEPS[provider]({"x-fake-cut-after": "2"}, stream=True)
    with api.http.stream("POST", f"/v1/{ACCT}/{gw}", json=step) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    assert_cut_stream(raw, 2)
    rows = api.db().wait_gateway(gw)
    assert len(rows) == 1
    assert rows[0]["success"] == 0
    assert rows[0]["error"]


def test_mid_stream_cut_does_not_fall_back(api: Api, gw: str, upstream: FakeUpstream) -> None:
    cut = openai_step({"x-fake-cut-after": "3"}, stream=True)
    r = api.universal(gw, [cut, anthropic_step()])
    assert r.status_code == 200
    assert r.headers["cf-aig-step"] == "0"
    assert_cut_stream(r.content, 3)
    assert upstream.count() == 1  # no second response after the first byte


def test_server_still_answers_after_a_cut_stream(api: Api, gw: str, upstream: FakeUpstream) -> None:
    api.universal(gw, openai_step({"x-fake-cut-after": "1"}, stream=True))
    r = api.universal(gw, openai_step(stream=True))
    assert r.status_code == 200
    assert sse_events(r.content)[-1] == (None, "[DONE]")


def test_non_latin1_event_id_on_a_gateway_error(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = openai_step({"x-fake-cut-after": "10"}, eventId="évènement-😀")
    r = api.universal(gw, step)
    error_of(r, 502, 2005)
