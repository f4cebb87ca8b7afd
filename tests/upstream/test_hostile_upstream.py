"""The upstream client against a hostile provider (limits.md §2-3), on both transports: the
project's pool and stock httpx (`AIGW_UPSTREAM_TRANSPORT=httpx`). The server is
tests/support/hostile_upstream.py: raw sockets that flood heads, send decompression bombs,
endless and dripping bodies, framing tricks, resets after reading the request, and 1xx answers.

Where stock httpx (h11/httpcore) behaves otherwise and the gateway cannot correct it from above
the transport, the case is an expected failure with its reason, so the difference stays visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.core.settings import Settings
from app.upstream.client import UpstreamClient, UpstreamResponse
from app.upstream.errors import UpstreamBodyError, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from tests.support.hostile_upstream import HOSTILE_OK_JSON, HostileUpstream
from tests.support.memory import PeakRss

TRANSPORTS = ["pool", "httpx"]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def stock_differs(transport: str, reason: str) -> None:
    if transport == "httpx":
        pytest.xfail(f"stock httpx: {reason}")


@asynccontextmanager
async def client_on(transport: str, **settings: Any) -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(Settings(_env_file=None, upstream_transport=transport, **settings))  # type: ignore[call-arg]
    try:
        yield client
    finally:
        await client.aclose()


async def send(
    client: UpstreamClient, hostile: HostileUpstream, scenario: str, arg: str | None = None
) -> UpstreamResponse:
    headers = [("Content-Type", "application/json"), ("x-hostile", scenario)]
    if arg is not None:
        headers.append(("x-hostile-arg", arg))
    return await client.send(client.build("POST", f"{hostile.url}/v1/chat/completions", headers, b"{}"))


async def read(
    client: UpstreamClient, hostile: HostileUpstream, scenario: str, arg: str | None = None
) -> tuple[int, bytes]:
    response = await send(client, hostile, scenario, arg)
    try:
        return response.status_code, await response.aread()
    finally:
        await response.aclose()


# ---- the response head --------------------------------------------------------------------------


async def test_an_endless_header_line_fails_fast_and_never_stalls_the_loop(
    hostile: HostileUpstream, transport: str
) -> None:
    lag = 0.0

    async def ticker() -> None:
        nonlocal lag
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            lag = max(lag, time.monotonic() - started - 0.01)

    tick = asyncio.create_task(ticker())
    hostile.reset()
    async with client_on(transport) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamUnreachable):
            await send(client, hostile, "header-flood-bytes")
        took = time.monotonic() - started
    tick.cancel()
    assert took < 2.0
    assert lag < 0.5  # other requests (and /healthz) keep being served meanwhile
    # The client stopped reading at the head bound: the server could not push the 256 MiB it had.
    assert hostile.bytes_sent() < 64 * MiB


async def test_a_head_bigger_than_the_setting_is_refused_and_the_message_names_it(
    hostile: HostileUpstream,
) -> None:
    async with client_on("pool", max_upstream_head_bytes=4096) as client:
        with pytest.raises(UpstreamUnreachable, match="AIGW_MAX_UPSTREAM_HEAD_BYTES"):
            await send(client, hostile, "header-flood-bytes", "1")


async def test_a_hundred_thousand_header_fields_are_refused(hostile: HostileUpstream, transport: str) -> None:
    async with client_on(transport) as client:
        with pytest.raises(UpstreamUnreachable):
            await send(client, hostile, "header-flood-count")
        assert await read(client, hostile, "header-flood-count", "200") == (200, b"{}")


async def test_more_than_256_fields_are_refused_even_in_a_small_head(
    hostile: HostileUpstream, transport: str
) -> None:
    stock_differs(transport, "h11 bounds the head by size (16 KiB), not by its number of fields")
    async with client_on(transport) as client:
        with pytest.raises(UpstreamUnreachable, match="256 header fields"):
            await send(client, hostile, "header-flood-count", "300")  # ~4 KiB


# ---- bodies: bombs, endless, drips ----------------------------------------------------------------


@pytest.mark.parametrize("bomb", ["gzip-bomb", "deflate-bomb", "raw-deflate-bomb", "br-bomb", "zstd-bomb"])
async def test_a_decompression_bomb_stops_at_the_body_limit_in_bounded_memory(
    hostile: HostileUpstream, transport: str, bomb: str
) -> None:
    async with client_on(transport) as client:
        with PeakRss() as rss, pytest.raises(UpstreamBodyError, match="AIGW_MAX_RESPONSE_BYTES exceeded"):
            await read(client, hostile, bomb)
    assert rss.grew_mib < 150, f"{bomb}: resident memory grew {rss.grew_mib:.0f} MiB"


async def test_a_bomb_read_as_a_stream_comes_in_small_pieces(
    hostile: HostileUpstream, transport: str
) -> None:
    async with client_on(transport) as client:
        response = await send(client, hostile, "gzip-bomb-sse")
        seen = 0
        with PeakRss() as rss:
            async for piece in response.aiter_bytes():
                assert len(piece) <= 64 * 1024
                seen += len(piece)
                if seen > 64 * MiB:
                    break
        await response.aclose()
    assert rss.grew_mib < 150


@pytest.mark.parametrize("scenario", ["endless-body", "endless-chunked"])
async def test_an_endless_body_stops_at_the_body_limit(
    hostile: HostileUpstream, transport: str, scenario: str
) -> None:
    async with client_on(transport, max_response_bytes=2 * MiB) as client:
        with pytest.raises(UpstreamBodyError, match="AIGW_MAX_RESPONSE_BYTES exceeded"):
            await read(client, hostile, scenario)


async def test_a_dripping_body_is_cut_by_the_body_deadline(hostile: HostileUpstream, transport: str) -> None:
    """A byte every 0.1 s keeps the idle timer from ever firing; the deadline still ends it."""
    async with client_on(transport, upstream_body_deadline_s=1.0) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamBodyError, match="AIGW_UPSTREAM_BODY_DEADLINE_S exceeded"):
            await read(client, hostile, "drip", "0.1")
    assert time.monotonic() - started < 3


async def test_a_silent_upstream_times_out_on_the_idle_limit(
    hostile: HostileUpstream, transport: str
) -> None:
    async with client_on(transport, upstream_timeout_s=0.5) as client:
        with pytest.raises(UpstreamTimeout):
            await send(client, hostile, "slow", "3")


# ---- framing --------------------------------------------------------------------------------------


async def test_a_second_response_in_the_packet_is_never_an_answer(
    hostile: HostileUpstream, transport: str
) -> None:
    stock_differs(transport, "h11 keeps the connection and reads the stray 200 as the next answer")
    async with client_on(transport) as client:
        assert await read(client, hostile, "204-then-200") == (204, b"")
        # Had the connection been kept, the stray `hello` would be this request's answer.
        assert await read(client, hostile, "ok") == (200, HOSTILE_OK_JSON)
        assert await read(client, hostile, "extra-after-body") == (200, b"{}")
        assert await read(client, hostile, "ok") == (200, HOSTILE_OK_JSON)


async def test_trailers_never_become_response_headers(hostile: HostileUpstream, transport: str) -> None:
    async with client_on(transport) as client:
        response = await send(client, hostile, "trailers")
        body = await response.aread()
        await response.aclose()
    assert body == b'{"ok":true}'
    names = {name.lower() for name, _ in response.raw_headers}
    assert b"set-cookie" not in names and b"x-trailer" not in names


@pytest.mark.parametrize("scenario", ["reset-after-read", "close-after-read"])
async def test_a_request_the_server_read_is_sent_once(
    hostile: HostileUpstream, transport: str, scenario: str
) -> None:
    async with client_on(transport) as client:
        assert await read(client, hostile, "ok") == (200, HOSTILE_OK_JSON)  # a pooled connection
        hostile.reset()
        with pytest.raises(UpstreamError):
            await read(client, hostile, scenario)
    assert [request.header("x-hostile") for request in hostile.requests] == [scenario]


@pytest.mark.parametrize("scenario", ["info-101", "info-102"])
async def test_an_unexpected_informational_answer_fails_the_call(
    hostile: HostileUpstream, transport: str, scenario: str, caplog: pytest.LogCaptureFixture
) -> None:
    if scenario == "info-102":
        stock_differs(transport, "httpcore skips every 1xx but 101, as it does 100 and 103")
    async with client_on(transport) as client:
        # h11 refuses the 101 in its own words; our pool names the status.
        expected = scenario.removeprefix("info-") if transport == "pool" else None
        with pytest.raises(UpstreamUnreachable, match=expected):
            await read(client, hostile, scenario)
    assert not [record for record in caplog.records if record.exc_info]  # no stack trace logged


@pytest.mark.parametrize("scenario", ["info-100", "info-103"])
async def test_continue_and_early_hints_are_skipped(
    hostile: HostileUpstream, transport: str, scenario: str
) -> None:
    async with client_on(transport) as client:
        assert await read(client, hostile, scenario) == (200, HOSTILE_OK_JSON)


# ---- content codings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario",
    ["gzip", "gzip-gzip", "two-encodings", "br", "zstd", "deflate", "raw-deflate", "te-gzip-chunked"],
)
async def test_every_coding_and_list_of_codings_is_decoded(
    hostile: HostileUpstream, transport: str, scenario: str
) -> None:
    if scenario == "te-gzip-chunked":
        stock_differs(transport, "h11 accepts no transfer coding but chunked")
    async with client_on(transport) as client:
        assert await read(client, hostile, scenario) == (200, HOSTILE_OK_JSON)


async def test_an_unknown_coding_fails_the_call(hostile: HostileUpstream, transport: str) -> None:
    async with client_on(transport) as client:
        with pytest.raises(UpstreamBodyError, match="snappy"):
            await read(client, hostile, "unknown-encoding")
        assert await read(client, hostile, "ok") == (200, HOSTILE_OK_JSON)  # and the client goes on


# ---- no state carried between requests -------------------------------------------------------------


async def test_cookies_an_upstream_sets_are_never_sent_back(hostile: HostileUpstream, transport: str) -> None:
    async with client_on(transport) as client:
        status, _ = await read(client, hostile, "set-cookie")
        assert status == 200
        hostile.reset()
        await read(client, hostile, "echo-headers")
    (request,) = hostile.requests
    assert request.header("cookie") is None
