"""Dynamic routes in the cases the traffic tests leave out (routing.md §5): a `dynamic/…` model in a
WebSocket `universal.create` compat step, a streamed completion, and a model element's timeout
moving on to its fallback. Cost limits are in test_route_budgets.py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import openai
import pytest

from tests.routing.conftest import END, USER, model, models_called, new_route, simple, start
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import unique
from tests.support.management import Mgmt
from tests.support.ws import ws_session, ws_url


def test_websocket_compat_step_runs_a_route(mgmt: Mgmt, gw: str, token: str, upstream: FakeUpstream) -> None:
    new_route(mgmt, gw, simple())
    event_id = unique("route")
    step = {
        "provider": "compat",
        "endpoint": "chat/completions",
        "headers": {},
        "query": {"model": "dynamic/r", "messages": [USER]},
        "eventId": event_id,
    }

    async def run() -> Any:
        async with ws_session(ws_url(mgmt.server.url, gw), token) as session:
            return await session.request(step)

    event = asyncio.run(run())
    assert event.created["metadata"]["status"] == 200, event.frames
    assert event.response["choices"][0]["message"]["content"] == "Hello from fake"
    assert models_called(upstream) == ["gpt-4o-mini"]
    (row,) = mgmt.wait_logs(gw, 1)
    assert (row["provider"], row["model"]) == ("openai", "gpt-4o-mini")


def test_streamed_completion_through_a_route(
    mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    new_route(mgmt, gw, simple())
    with sdk.chat.completions.with_streaming_response.create(
        model="dynamic/r", messages=[USER], stream=True
    ) as raw:
        assert raw.headers["cf-aig-route-element"] == "m1"
        assert raw.headers["content-type"].startswith("text/event-stream")
        text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    assert text == "Hello from fake"
    assert json.loads(upstream.requests[0].body)["stream"] is True
    (row,) = mgmt.wait_logs(gw, 1)
    assert row["success"] is True and row["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_timeout_moves_on_to_the_fallback(
    mgmt: Mgmt, gw: str, sdk: openai.OpenAI, upstream: FakeUpstream, stream: bool
) -> None:
    elements = [
        start("m1"),
        model("m1", "openai", "gpt-4o-mini", fallback="m2", timeout=300),
        model("m2", "anthropic", "claude-3-5-haiku-latest"),
        END,
    ]
    new_route(mgmt, gw, elements)
    slow = {"x-fake-delay-ms": "1500"}  # past m1's 300 ms, inside m2's 30 s
    started = time.monotonic()
    if stream:
        with sdk.chat.completions.with_streaming_response.create(
            model="dynamic/r", messages=[USER], stream=True, extra_headers=slow
        ) as raw:
            element = raw.headers["cf-aig-route-element"]
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        raw = sdk.chat.completions.with_raw_response.create(
            model="dynamic/r", messages=[USER], extra_headers=slow
        )
        element, text = raw.headers["cf-aig-route-element"], raw.parse().choices[0].message.content
    assert (element, text) == ("m2", "Hello from fake")
    assert time.monotonic() - started < 5  # m1 was given up at its timeout, not its answer
    assert models_called(upstream) == ["gpt-4o-mini", "claude-3-5-haiku-latest"]
    rows = sorted(mgmt.wait_logs(gw, 2), key=lambda r: r["step"])
    assert [(r["model"], r["success"]) for r in rows] == [
        ("gpt-4o-mini", False),
        ("claude-3-5-haiku-latest", True),
    ]
    assert rows[0]["status_code"] is None  # no upstream answer, as for any timed-out step
