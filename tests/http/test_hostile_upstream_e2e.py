"""A hostile provider behind a real gateway (limits.md §2-3): what the client gets (502 / 2005, a
stream ended by one 2013 event, the first of two responses), what the log row says (the limit's
setting, never the offending bytes), memory read from /proc, and that the server keeps serving.

The provider is tests/support/hostile_upstream.py; the scenario travels as the `x-hostile`
header, which the pass-through path forwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import upstream_overrides_for
from tests.support.helpers import LogDb, create_gateway, db_path, error_of, sse_events, unique
from tests.support.hostile_upstream import HostileUpstream
from tests.support.memory import MiB, PeakRss

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture(scope="module", params=["pool", "httpx"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, hostile: HostileUpstream
) -> Iterator[GatewayServer]:
    """A gateway on each upstream transport: the project's pool, and stock httpx."""
    from tests.support.helpers import running_gateway

    settings = {
        "upstream_transport": request.param,
        "upstream_overrides": upstream_overrides_for(hostile.url),
        "max_sse_event_bytes": 1 * MiB,
        "upstream_body_deadline_s": 1.5,
    }
    base: Path = tmp_path_factory.mktemp("hostile-e2e")
    with running_gateway(base, hostile.url, **settings) as gateway:
        yield gateway


@pytest.fixture
def gw(server: GatewayServer) -> str:
    gateway_id = unique()
    create_gateway(server.url, "acct", gateway_id)
    return gateway_id


def call(server: GatewayServer, gw: str, scenario: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/acct/{gw}/openai/chat/completions",
        json={**CHAT, "stream": scenario.endswith("sse") or "event" in scenario},
        headers={"Authorization": "Bearer sk-x", "x-hostile": scenario, **headers},
        timeout=30,
    )


def stock_differs(server: GatewayServer, reason: str) -> None:
    if server.settings.upstream_transport == "httpx":
        pytest.xfail(f"stock httpx: {reason}")


def logged_error(server: GatewayServer, gw: str) -> str:
    row = LogDb(db_path(server)).wait_gateway(gw)[0]
    return str(row["error"])


@pytest.mark.parametrize("bomb", ["gzip-bomb", "br-bomb"])
def test_a_bomb_is_a_502_naming_the_limit_in_bounded_memory(
    server: GatewayServer, gw: str, bomb: str
) -> None:
    with PeakRss() as rss:
        answer = call(server, gw, bomb)
    error_of(answer, 502, 2005)
    assert rss.grew_mib < 150, f"resident memory grew {rss.grew_mib:.0f} MiB"
    error = logged_error(server, gw)
    assert "AIGW_MAX_RESPONSE_BYTES exceeded" in error
    assert "000000" not in error  # the log names the limit, never the offending bytes


@pytest.mark.parametrize("scenario", ["sse-huge-event", "gzip-bomb-sse"])
def test_an_endless_event_ends_the_stream_with_one_2013_event(
    server: GatewayServer, gw: str, scenario: str
) -> None:
    with PeakRss() as rss:
        answer = call(server, gw, scenario)
    assert answer.status_code == 200
    assert rss.grew_mib < 150
    events = sse_events(answer.content)
    assert events[-1][0] == "error" and '"code":2013' in events[-1][1], events[-1]
    assert answer.content.count(b"event: error") == 1
    assert "AIGW_MAX_SSE_EVENT_BYTES exceeded" in logged_error(server, gw)


def test_a_dripping_body_is_cut_at_the_body_deadline(server: GatewayServer, gw: str) -> None:
    started = time.monotonic()
    answer = call(server, gw, "drip", **{"x-hostile-arg": "0.1"})
    error_of(answer, 502, 2005)
    assert time.monotonic() - started < 5
    assert "AIGW_UPSTREAM_BODY_DEADLINE_S exceeded" in logged_error(server, gw)


def test_a_header_flood_is_a_502_and_the_server_keeps_answering(server: GatewayServer, gw: str) -> None:
    slowest = 0.0
    done = threading.Event()

    def probe() -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.monotonic()
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            slowest = max(slowest, time.monotonic() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        error_of(call(server, gw, "header-flood-bytes"), 502, 2005)
    finally:
        done.set()
        prober.join()
    assert slowest < 1.0
    stock_differs(server, "h11 refuses the head at 16 KiB in its own words")
    assert "AIGW_MAX_UPSTREAM_HEAD_BYTES exceeded" in logged_error(server, gw)


def test_a_request_the_provider_read_is_not_sent_again(
    server: GatewayServer, gw: str, hostile: HostileUpstream
) -> None:
    hostile.reset()
    error_of(call(server, gw, "reset-after-read"), 502, 2005)
    assert len(hostile.requests) == 1
    hostile.reset()  # retries are what the client asks for, and only those
    error_of(call(server, gw, "reset-after-read", **{"cf-aig-max-attempts": "2"}), 502, 2005)
    assert len(hostile.requests) == 2


def test_the_first_of_two_responses_in_a_packet_is_the_answer(server: GatewayServer, gw: str) -> None:
    stock_differs(server, "h11 keeps the connection and reads the stray 200 as the next answer")
    first = call(server, gw, "204-then-200")
    assert first.status_code == 204 and first.content == b""
    after = call(server, gw, "ok")
    assert after.status_code == 200 and b"chatcmpl" in after.content


def test_trailers_never_reach_the_client(server: GatewayServer, gw: str) -> None:
    answer = call(server, gw, "trailers")
    assert answer.status_code == 200 and answer.content == b'{"ok":true}'
    assert "set-cookie" not in answer.headers and "x-trailer" not in answer.headers


def test_a_101_fails_the_step_with_one_log_line_and_no_traceback(
    server: GatewayServer, gw: str, caplog: pytest.LogCaptureFixture
) -> None:
    error_of(call(server, gw, "info-101"), 502, 2005)
    if server.settings.upstream_transport == "pool":  # h11 refuses it in its own words
        assert "101" in logged_error(server, gw)
    assert not [record for record in caplog.records if record.exc_info]


def test_a_bodies_coding_list_reaches_the_client_decoded(server: GatewayServer, gw: str) -> None:
    scenarios = ["gzip-gzip", "two-encodings", "br", "zstd", "raw-deflate"]
    if server.settings.upstream_transport == "pool":  # h11 accepts no transfer coding but chunked
        scenarios.append("te-gzip-chunked")
    for scenario in scenarios:
        answer = call(server, gw, scenario)
        assert answer.status_code == 200, (scenario, answer.text)
        assert "content-encoding" not in answer.headers
        assert answer.json()["object"] == "chat.completion", scenario
