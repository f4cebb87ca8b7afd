"""Realtime WebSocket sessions (the provider pass-through) get one span per session's log row,
parented by the handshake's `traceparent` or `cf-aig-otel-*` headers, and the handshake's answer
names it in its own `traceparent`. The provider is a small `websockets` echo server on loopback;
the spans are read from the fake OTLP collector."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tests.conftest import GatewayServer
from tests.otel.conftest import CLIENT, PARENT_SPAN, PARENT_TRACE, SECRET_KEY, exporter
from tests.support.fake_otlp import FakeCollector, attributes_of
from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.helpers import ACCT, api_client, running_gateway


async def _provider(ws: ServerConnection) -> None:
    """Echoes frames; `close:N` closes with code N."""
    async for frame in ws:
        if isinstance(frame, str) and frame.startswith("close:"):
            await ws.close(int(frame.split(":")[1]), "bye")
            return
        await ws.send(frame)


@pytest.fixture
async def provider_port() -> AsyncIterator[int]:
    async with serve(_provider, "127.0.0.1", 0) as server:
        yield next(iter(server.sockets)).getsockname()[1]


@pytest.fixture
def gateway(tmp_path: Path, fake_upstream: FakeUpstream, provider_port: int) -> Iterator[GatewayServer]:
    overrides = {
        **upstream_overrides_for(fake_upstream.url),
        "realtime_openai": f"ws://127.0.0.1:{provider_port}/v1/realtime",
    }
    with running_gateway(
        tmp_path, fake_upstream.url, secret_key=SECRET_KEY, upstream_overrides=overrides,
        allow_private_destinations=True, otel_flush_interval_s=0.05,
    ) as server:  # fmt: skip
        yield server


def _session_url(gateway: GatewayServer, gateway_id: str) -> str:
    return gateway.url.replace("http://", "ws://") + f"/v1/{ACCT}/{gateway_id}/openai?model=gpt-realtime"


async def _spans_of(collector: FakeCollector, gateway_id: str, count: int) -> list[dict[str, Any]]:
    """Awaited, not slept: the provider runs on this loop, and the gateway closes its socket
    (a close handshake) before the session's row and span end."""
    deadline = time.monotonic() + 8
    while True:
        spans = [s for s, _ in collector.spans() if attributes_of(s).get("cf.aig.gateway_id") == gateway_id]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.05)


async def test_a_session_has_one_span_parented_by_its_handshake(
    gateway: GatewayServer, collector: FakeCollector
) -> None:
    with api_client(gateway) as api:
        token = api.new_token(permissions=["run"])["value"]
        gateway_id = api.new_gateway(otel=[exporter(collector)])
    headers = {
        "cf-aig-authorization": f"Bearer {token}",
        "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01",
        "tracestate": "vendor=rt",
    }
    async with connect(_session_url(gateway, gateway_id), additional_headers=headers) as ws:
        assert ws.response is not None
        returned = ws.response.headers["traceparent"]
        await ws.send("hello")
        assert await ws.recv() == "hello"

    (span,) = await _spans_of(collector, gateway_id, 1)
    assert returned == f"00-{PARENT_TRACE}-{span['spanId']}-01"
    assert span["traceId"] == PARENT_TRACE and span["parentSpanId"] == PARENT_SPAN
    assert span.get("traceState") == "vendor=rt"
    assert span["kind"] == CLIENT and span["name"] == "realtime gpt-realtime"
    assert span["status"].get("code", 0) == 0  # a normal close is no error
    assert int(span["endTimeUnixNano"]) > int(span["startTimeUnixNano"]) > 0
    attributes = attributes_of(span)
    assert attributes["cf.aig.request_type"] == "realtime"
    assert attributes["gen_ai.operation.name"] == "realtime"
    assert attributes["gen_ai.request.model"] == "gpt-realtime"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["http.response.status_code"] == 101
    assert re.fullmatch(r"[0-9A-Z]{26}", attributes["cf.aig.log_id"])
    assert token not in repr(span)


async def test_cloudflare_headers_parent_a_session_and_an_abnormal_close_is_an_error(
    gateway: GatewayServer, collector: FakeCollector
) -> None:
    with api_client(gateway) as api:
        token = api.new_token(permissions=["run"])["value"]
        gateway_id = api.new_gateway(otel=[exporter(collector, "protobuf")])
    headers = {
        "cf-aig-authorization": f"Bearer {token}",
        "cf-aig-otel-trace-id": PARENT_TRACE,
        "cf-aig-otel-parent-span-id": PARENT_SPAN,
    }
    async with connect(_session_url(gateway, gateway_id), additional_headers=headers) as ws:
        await ws.send("close:4001")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()

    (span,) = await _spans_of(collector, gateway_id, 1)
    assert span["traceId"] == PARENT_TRACE and span["parentSpanId"] == PARENT_SPAN
    assert span["status"]["code"] == 2  # ERROR
    assert attributes_of(span)["error.type"] == "close_4001"


async def test_no_exporter_no_span_and_no_traceparent(
    gateway: GatewayServer, collector: FakeCollector
) -> None:
    with api_client(gateway) as api:
        token = api.new_token(permissions=["run"])["value"]
        gateway_id = api.new_gateway()
    headers = {
        "cf-aig-authorization": f"Bearer {token}",
        "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01",
    }
    async with connect(_session_url(gateway, gateway_id), additional_headers=headers) as ws:
        assert ws.response is not None and "traceparent" not in ws.response.headers
        await ws.send("hello")
        assert await ws.recv() == "hello"
    await asyncio.sleep(0.3)
    assert await _spans_of(collector, gateway_id, 0) == []
