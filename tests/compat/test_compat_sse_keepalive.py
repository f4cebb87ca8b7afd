"""Keep-alive pings on the streams the gateway composes (compat translations), end to end: a real
gateway with a tiny `sse_ping_s` against the fake provider, slowed by `x-fake-chunk-delay-ms`.
The official `openai` SDK still parses such a stream; a client that goes away mid-stream stops the
upstream call at once and the log row says so; a composed stream in flight when the server starts
shutting down runs to its end; and streams relayed from a provider (pass-through, or a compat
provider that already speaks OpenAI) stay byte for byte what the provider sent, with no ping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionUserMessageParam
from sse_starlette.sse import AppStatus

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    ADMIN_HEADERS,
    LogDb,
    db_path,
    direct,
    normalize_fake,
    running_gateway,
    sse_events,
    unique,
)

GATEWAY = "gw"
CLAUDE = "anthropic/claude-3-5-haiku-latest"
USER: ChatCompletionUserMessageParam = {"role": "user", "content": "say hello please"}
TEXT = "one two three four five"  # the fake sends one event per word
COMPAT = f"/v1/{ACCT}/{GATEWAY}/compat/chat/completions"


def _gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_url: str, **settings: Any
) -> Iterator[GatewayServer]:
    with running_gateway(tmp_path_factory.mktemp("sse"), upstream_url, **settings) as gateway:
        response = httpx.post(
            f"{gateway.url}/client/v4/accounts/{ACCT}/ai-gateway/gateways",
            json={"id": GATEWAY},
            headers=ADMIN_HEADERS,
        )
        assert response.status_code == 200, response.text
        yield gateway


@pytest.fixture(scope="module")
def pinging(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """A gateway that pings every 50 ms."""
    yield from _gateway(tmp_path_factory, fake_upstream.url, sse_ping_s=0.05)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """A gateway with the default ping interval (15 s): no ping, so no write, during a test."""
    yield from _gateway(tmp_path_factory, fake_upstream.url)


def _compat_body(model: str = CLAUDE) -> dict[str, Any]:
    return {"model": model, "messages": [USER], "stream": True}


def _headers(delay_ms: int, **extra: str) -> dict[str, str]:
    return {
        "Authorization": "Bearer sk-test",
        "x-fake-text": TEXT,
        "x-fake-chunk-delay-ms": str(delay_ms),
        **extra,
    }


def _without_pings(raw: bytes) -> tuple[bytes, int]:
    """The stream with its comment blocks removed, and how many there were."""
    blocks = raw.split(b"\n\n")
    kept = [block for block in blocks if not block.startswith(b": ping - ")]
    return b"\n\n".join(kept), len(blocks) - len(kept)


# ---- composed streams: pings ---------------------------------------------------------------------------


def test_a_slow_composed_stream_carries_pings_between_whole_events(
    pinging: GatewayServer, upstream: FakeUpstream
) -> None:
    with httpx.stream(
        "POST", pinging.url + COMPAT, json=_compat_body(), headers=_headers(120), timeout=10
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cf-aig-log-id"] and r.headers["cf-aig-cache-status"] == "MISS"
        assert r.headers["server-timing"].startswith("gateway;dur=")
        assert r.headers["cache-control"] == "no-cache"  # the provider's, as before
        assert "x-accel-buffering" not in r.headers
        raw = b"".join(r.iter_raw())
    events, pings = _without_pings(raw)
    assert pings >= 5  # 9 gaps of 120 ms, pings every 50 ms
    assert events.endswith(b"data: [DONE]\n\n")
    assert _text_of(events) == TEXT
    assert b": ping" not in events


def test_the_openai_sdk_parses_a_composed_stream_with_pings(
    pinging: GatewayServer, upstream: FakeUpstream
) -> None:
    with openai.OpenAI(
        base_url=f"{pinging.url}/v1/{ACCT}/{GATEWAY}/compat", api_key="sk-test", max_retries=0
    ) as sdk:
        stream = sdk.chat.completions.create(
            model=CLAUDE,
            messages=[USER],
            stream=True,
            extra_headers=_headers(120),
        )
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_composed_stream_cut_by_the_provider_ends_with_one_error_event(
    pinging: GatewayServer, upstream: FakeUpstream
) -> None:
    headers = _headers(120, **{"x-fake-cut-after": "4"})
    with httpx.stream("POST", pinging.url + COMPAT, json=_compat_body(), headers=headers, timeout=10) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    events, pings = _without_pings(raw)
    assert pings >= 3
    parsed = sse_events(events)
    assert [name for name, _ in parsed].count("error") == 1 and parsed[-1][0] == "error"
    assert orjson.loads(parsed[-1][1])["error"]["code"] == 2013
    assert b"[DONE]" not in raw


# ---- composed streams: the client goes away, the server shuts down ---------------------------------------


@pytest.mark.parametrize("gateway", ["pinging", "quiet"])
def test_a_client_gone_mid_stream_stops_the_upstream_call(
    gateway: str, request: pytest.FixtureRequest, upstream: FakeUpstream
) -> None:
    server: GatewayServer = request.getfixturevalue(gateway)
    event_id = unique("gone")
    # 3 s between events: without the cancel, the upstream call would run 12 s more.
    headers = _headers(3000, **{"cf-aig-event-id": event_id})
    with httpx.stream("POST", server.url + COMPAT, json=_compat_body(), headers=headers, timeout=10) as r:
        assert r.status_code == 200
        first = next(r.iter_raw())
        assert first.startswith(b"data: ")  # the role chunk: the stream has begun
        gone = time.monotonic()
    (row,) = LogDb(db_path(server)).wait_event(event_id, timeout=2)
    assert time.monotonic() - gone < 2
    assert row["success"] == 0 and row["status_code"] == 200
    assert row["error"] == "client closed the stream before it ended"
    assert row["duration_ms"] < 2500
    assert upstream.count() == 1


def test_a_composed_stream_in_flight_at_shutdown_runs_to_its_end(
    pinging: GatewayServer, upstream: FakeUpstream
) -> None:
    """sse-starlette cuts its streams when uvicorn starts to exit unless told otherwise; ours drain
    (within the server's grace) as relayed streams do. Its process-wide exit flag stands in for a
    SIGTERM here, and is put back at once."""
    with httpx.stream(
        "POST", pinging.url + COMPAT, json=_compat_body(), headers=_headers(150), timeout=10
    ) as r:
        chunks = r.iter_raw()
        raw = next(chunks)
        AppStatus.should_exit = True
        try:
            raw += b"".join(chunks)
        finally:
            AppStatus.should_exit = False
    events, _ = _without_pings(raw)
    assert events.endswith(b"data: [DONE]\n\n")
    assert _text_of(events) == TEXT


def _text_of(events: bytes) -> str:
    chunks = [orjson.loads(data) for _, data in sse_events(events) if data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# ---- relayed streams: no pings, byte for byte ------------------------------------------------------------


def test_a_provider_pass_through_stream_is_byte_identical_without_pings(
    pinging: GatewayServer, upstream: FakeUpstream
) -> None:
    step_headers = {"Authorization": "Bearer cf-test-key", "x-fake-chunk-delay-ms": "100"}
    path = f"/v1/{ACCT}/{GATEWAY}/workers-ai/@cf/meta/llama-3.1-8b-instruct"
    body = {"prompt": TEXT, "stream": True}
    with httpx.stream("POST", pinging.url + path, json=body, headers=step_headers, timeout=10) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    expected = direct(upstream, {"headers": step_headers})
    assert raw == expected.content  # nothing request-specific in Workers AI events
    assert b": ping" not in raw


def test_a_compat_stream_already_in_openai_format_is_relayed_without_pings(
    pinging: GatewayServer, upstream: FakeUpstream
) -> None:
    headers = _headers(100)
    with httpx.stream(
        "POST", pinging.url + COMPAT, json=_compat_body("openai/gpt-4o-mini"), headers=headers
    ) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    assert b": ping" not in raw
    assert normalize_fake(raw) == normalize_fake(direct(upstream, {"headers": headers}).content)
