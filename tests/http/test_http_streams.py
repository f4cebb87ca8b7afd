"""The universal endpoint over real HTTP (protocol.md §2), streams: a single streamed step for every
provider format relayed byte for byte, and streams cut after they started: one error event (2013),
no fallback, a log row, and the server still answering afterwards."""

from __future__ import annotations

import orjson
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    STEPS,
    Api,
    anthropic_step,
    direct,
    normalize_fake,
    openai_step,
    sse_events,
)


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


# ---- streams relayed ---------------------------------------------------------------------------------


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
