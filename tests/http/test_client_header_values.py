"""Header values given by a client (universal step `headers`, pass-through and compat request
headers, WebSocket `universal.create` steps) with a control character or outside Latin-1, and
header names that are not HTTP tokens, are refused with 400 / 2010 naming the header, before any
upstream call (never retried as if the network failed, never a 502)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import GatewayServer, ServerThread
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    MESSAGES,
    Api,
    create_gateway,
    error_of,
    make_settings,
    openai_step,
    unique,
)
from tests.support.ws import eid, error_response, ws_session

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401

# Values that must be refused. uvicorn refuses CR / LF in a request's own headers, and its httptools
# parser (the server's) every control character but HTAB; its h11 parser lets the others through,
# so the pass-through cases run on a gateway served with h11 too.
UNIVERSAL_BAD = ["a\x01b", "a\x7fb", "a\x00b", "a\rb", "a\nb", "a\r\nX-Injected: 1", "\x1b[31m", "a\u20acb"]
PASSTHROUGH_BAD = ["a\x01b", "a\x7fb", "a\x1fb", "\x08"]
GOOD = ["plain", "tab\there", "caf\u00e9", " spaced out ", ""]


@pytest.fixture(scope="module")
def h11_server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[str]:
    """The URL of a gateway served by uvicorn's h11 protocol, which accepts control characters."""
    from app.db.migrate import upgrade
    from app.main import create_app

    settings = make_settings(tmp_path_factory.mktemp("h11"), fake_upstream.url)
    upgrade(settings.database_url)
    server = ServerThread(create_app(settings), lifespan="on", name="gateway-h11", http="h11").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def h11_gw(h11_server: str, upstream: FakeUpstream) -> tuple[str, str]:
    """(server URL, a new gateway id) on the h11 gateway."""
    gateway_id = unique()
    create_gateway(h11_server, ACCT, gateway_id)
    return h11_server, gateway_id


def send_raw(base_url: str, target: str, headers: list[tuple[str, str]], body: Any) -> tuple[int, Any]:
    """A request whose header values go out as given (httpx / h11 would refuse them first)."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    raw = json.dumps(body).encode()
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in [("Content-Type", "application/json"), *headers]:
            conn.putheader(name.encode("latin-1"), value.encode("latin-1"))
        conn.putheader("Content-Length", str(len(raw)))
        conn.endheaders(raw)
        response = conn.getresponse()
        answer = response.read()
        return response.status, json.loads(answer) if answer.startswith(b"{") else answer
    finally:
        conn.close()


def code_of(body: Any) -> int:
    return int(body["error"][0]["code"])


@pytest.mark.parametrize("value", UNIVERSAL_BAD)
def test_universal_bad_value_is_2010(api: Api, gw: str, upstream: FakeUpstream, value: str) -> None:
    r = api.universal(gw, openai_step({"X-Foo": value, "x-fake-fail-times": "0"}))
    assert error_of(r, 400, 2010) == "Header 'X-Foo' has an invalid value"
    assert upstream.requests == []


@pytest.mark.parametrize("name", ["X Foo", "X-Foo:", "X-Foo\r\nX-Bar", "", "(x)", "caf\u00e9"])
def test_universal_bad_name_is_2010(api: Api, gw: str, upstream: FakeUpstream, name: str) -> None:
    r = api.universal(gw, openai_step({name: "v"}))
    assert "not a valid HTTP token" in error_of(r, 400, 2010)
    assert upstream.requests == []


def test_universal_bad_authorization_field_is_2010(api: Api, gw: str, upstream: FakeUpstream) -> None:
    step = {**openai_step(), "headers": {}, "authorization": "Bearer sk\x01x"}
    assert "Authorization" in error_of(api.universal(gw, step), 400, 2010)
    assert upstream.requests == []


def test_universal_bad_value_in_a_later_step(api: Api, gw: str, upstream: FakeUpstream) -> None:
    steps = [openai_step({"x-fake-status": "500"}), openai_step({"X-Later": "v\x7f"})]
    assert "X-Later" in error_of(api.universal(gw, steps), 400, 2010)
    assert upstream.requests == []  # refused before the first step ran


@pytest.mark.parametrize("value", GOOD)
def test_universal_good_values_pass(api: Api, gw: str, upstream: FakeUpstream, value: str) -> None:
    r = api.universal(gw, openai_step({"X-Foo": value}))
    assert r.status_code == 200, r.text
    assert upstream.last.headers["x-foo"] == value.strip()


@pytest.mark.parametrize("value", PASSTHROUGH_BAD)
def test_passthrough_bad_value_is_2010(h11_gw: tuple[str, str], upstream: FakeUpstream, value: str) -> None:
    base, gw = h11_gw
    headers = [("Authorization", "Bearer sk-test"), ("X-Foo", value)]
    status, body = send_raw(base, f"/v1/{ACCT}/{gw}/openai/chat/completions", headers, {"model": "m"})
    assert (status, code_of(body)) == (400, 2010), body
    assert body["error"][0]["message"] == "Header 'x-foo' has an invalid value"  # as the server read it
    assert upstream.requests == []


def test_passthrough_good_values_pass(h11_gw: tuple[str, str], upstream: FakeUpstream) -> None:
    base, gw = h11_gw
    headers = [("Authorization", "Bearer sk-test"), ("X-Foo", "caf\u00e9\tok")]
    status, body = send_raw(base, f"/v1/{ACCT}/{gw}/openai/chat/completions", headers, {"model": "m"})
    assert status == 200, body
    assert upstream.last.headers["x-foo"] == "caf\u00e9\tok"


@pytest.mark.parametrize("value", PASSTHROUGH_BAD)
def test_compat_bad_value_is_2010(h11_gw: tuple[str, str], upstream: FakeUpstream, value: str) -> None:
    base, gw = h11_gw
    headers = [("Authorization", "Bearer sk-test"), ("X-Foo", value)]
    body = {"model": "openai/gpt-4o-mini", "messages": MESSAGES}
    status, answer = send_raw(base, f"/v1/{ACCT}/{gw}/compat/chat/completions", headers, body)
    assert (status, code_of(answer)) == (400, 2010), answer
    assert answer["error"][0]["message"] == "Header 'x-foo' has an invalid value"
    assert upstream.requests == []


@pytest.mark.parametrize("value", PASSTHROUGH_BAD)
def test_passthrough_bad_value_on_the_default_server(
    server: GatewayServer, gw: str, upstream: FakeUpstream, value: str
) -> None:
    headers = [("Authorization", "Bearer sk-test"), ("X-Foo", value)]
    status, _ = send_raw(server.url, f"/v1/{ACCT}/{gw}/openai/chat/completions", headers, {"model": "m"})
    assert status == 400  # the server's parser refuses it first
    assert upstream.requests == []


@pytest.mark.parametrize("value", ["a\x01b", "a\r\nX-Injected: 1", "a\x7f"])
async def test_websocket_bad_value_is_a_2010_frame(
    url: str, token: str, upstream: FakeUpstream, value: str
) -> None:
    event_id = eid("hdr")
    async with ws_session(url, token) as session:
        event = await session.request(openai_step({"X-Foo": value}, eventId=event_id))
        assert event.created["metadata"] == {"eventId": event_id, "status": 400}
        assert error_response(event.created, 2010) == "Header 'X-Foo' has an invalid value"
        assert upstream.requests == []
        await session.assert_alive()
    assert upstream.count() == 1
