"""Gateway-originated errors over real HTTP (protocol.md §8): the exact body of every code a client
can meet, malformed bodies and headers (2010), oversized bodies (2011), the server staying usable
after each bad request; and the service pages: /docs, /redoc, /openapi.json, /healthz, Server-Timing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    MESSAGES,
    Api,
    anthropic_step,
    error_of,
    openai_step,
    running_gateway,
    sse_events,
    unique,
)

MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """A gateway with a small body limit and a short absolute upstream limit."""
    base = tmp_path_factory.mktemp("errors")
    with running_gateway(base, fake_upstream.url, max_body_bytes=MAX_BODY, upstream_timeout_s=0.5) as gateway:
        yield gateway


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


def assert_still_serving(api: Api, gw: str) -> None:
    """After a refused request, the same connection and server still answer a good one."""
    r = api.universal(gw, openai_step())
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"


def chat(api: Api, gw: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    return api.http.post(f"/v1/{ACCT}/{gw}/openai/chat/completions", headers=headers or {}, **kwargs)


# ---- every code's exact shape ------------------------------------------------------------------------

# name → (request, expected status, expected code)
Scenario = Callable[[Api, str], httpx.Response]
SCENARIOS: dict[str, tuple[Scenario, int, int]] = {
    "2001-unknown-gateway": (lambda api, gw: api.universal(unique("nope"), openai_step()), 400, 2001),
    "2005-no-response": (
        lambda api, gw: api.universal(gw, openai_step({"x-fake-cut-after": "3"})),
        502,
        2005,
    ),
    "2008-unknown-provider": (
        lambda api, gw: api.universal(gw, {"provider": "acme", "endpoint": "x", "query": {}}),
        400,
        2008,
    ),
    "2008-unknown-provider-path": (
        lambda api, gw: api.http.post(f"/v1/{ACCT}/{gw}/acme/x", json={}),
        400,
        2008,
    ),
    "2009-unauthorized": (
        lambda api, gw: api.universal(api.new_gateway(authentication=True), openai_step()),
        401,
        2009,
    ),
    "2010-malformed": (lambda api, gw: api.http.post(f"/v1/{ACCT}/{gw}", content=b"{oops"), 400, 2010),
    "2011-too-large": (
        lambda api, gw: api.http.post(f"/v1/{ACCT}/{gw}", content=b"x" * (MAX_BODY + 1)),
        413,
        2011,
    ),
    "2012-timeout": (lambda api, gw: api.universal(gw, openai_step({"x-fake-delay-ms": "1500"})), 504, 2012),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_error_body_shape(api: Api, gw: str, upstream: FakeUpstream, name: str) -> None:
    scenario, status, code = SCENARIOS[name]
    error_of(scenario(api, gw), status, code)
    assert_still_serving(api, gw)


def test_stream_interrupted_error_event_shape(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step({"x-fake-cut-after": "1"}, stream=True))
    assert r.status_code == 200
    name, data = sse_events(r.content)[-1]
    assert name == "error"
    payload = json.loads(data)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"code", "message"}
    assert payload["error"]["code"] == 2013


def test_rate_limit_is_2003_with_retry_after(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(rate_limiting_limit=2, rate_limiting_interval=60, rate_limiting_technique="sliding")
    assert [api.universal(gw, openai_step()).status_code for _ in range(2)] == [200, 200]
    event = unique("limited")
    r = api.universal(gw, [openai_step(), anthropic_step()], headers={"cf-aig-event-id": event})
    error_of(r, 429, 2003)
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert upstream.count() == 2  # no fallback tried
    row = api.db().wait_event(event)[0]  # the rejected request is logged
    assert row["status_code"] == 429
    assert row["success"] == 0
    assert_still_serving(api, api.new_gateway())


def test_unknown_byok_alias_is_2040(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(authentication=True)
    token = str(api.new_token()["value"])
    step = openai_step()
    del step["headers"]["Authorization"]
    r = api.universal(gw, step, headers={"cf-aig-authorization": token, "cf-aig-byok-alias": "no-such-alias"})
    error_of(r, 400, 2040)


# ---- malformed requests (2010) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[1,", b"\xff\xfe", b'{"provider": "openai"', b"null ]"],
    ids=["empty", "garbage", "truncated-array", "binary", "truncated-object", "trailing"],
)
def test_body_not_json_is_2010(api: Api, gw: str, upstream: FakeUpstream, body: bytes) -> None:
    r = api.http.post(f"/v1/{ACCT}/{gw}", content=body, headers={"content-type": "application/json"})
    error_of(r, 400, 2010)
    assert upstream.count() == 0
    assert_still_serving(api, gw)


WRONG_BODIES: dict[str, Any] = {
    "number": 42,
    "string": "openai",
    "null": None,
    "empty-array": [],
    "array-of-non-objects": [1, 2],
    "provider-missing": {"endpoint": "chat/completions", "query": {}},
    "provider-number": {"provider": 5, "endpoint": "chat/completions", "query": {}},
    "provider-empty": {"provider": "", "endpoint": "chat/completions", "query": {}},
    "endpoint-missing": {"provider": "openai", "query": {}},
    "endpoint-null": {"provider": "openai", "endpoint": None, "query": {}},
    "query-missing": {"provider": "openai", "endpoint": "chat/completions"},
    "headers-list": {**openai_step(), "headers": ["Authorization: x"]},
    "headers-nested": {**openai_step(), "headers": {"Authorization": {"a": 1}}},
    "config-string": {**openai_step(), "config": "fast"},
    "config-max-attempts-9": {**openai_step(), "config": {"maxAttempts": 9}},
    "config-max-attempts-0": {**openai_step(), "config": {"maxAttempts": 0}},
    "config-timeout-string": {**openai_step(), "config": {"requestTimeout": "abc"}},
    "config-timeout-float": {**openai_step(), "config": {"requestTimeout": 1.5}},
    "config-retry-delay-6000": {**openai_step(), "config": {"retryDelay": 6000}},
    "config-backoff-unknown": {**openai_step(), "config": {"backoff": "fibonacci"}},
    "config-bool": {**openai_step(), "config": {"maxAttempts": True}},
    "event-id-number": {**openai_step(), "eventId": 7},
    "event-id-too-long": {**openai_step(), "eventId": "e" * 129},
    "authorization-number": {**openai_step(), "authorization": 12},
    "second-step-bad": [openai_step(), {"provider": "openai"}],
    "too-many-steps": [openai_step()] * 17,
}


@pytest.mark.parametrize("name", list(WRONG_BODIES))
def test_wrong_field_types_are_2010(api: Api, gw: str, upstream: FakeUpstream, name: str) -> None:
    r = api.universal(gw, WRONG_BODIES[name])
    message = error_of(r, 400, 2010)
    if name.startswith("config-") and name != "config-string":
        assert "config." in message
    assert upstream.count() == 0
    assert_still_serving(api, gw)


BAD_HEADERS: list[tuple[str, str]] = [
    ("cf-aig-cache-ttl", "abc"),
    ("cf-aig-cache-ttl", "10"),
    ("cf-aig-cache-ttl", "99999999"),
    ("cf-cache-ttl", "abc"),
    ("cf-aig-max-attempts", "9"),
    ("cf-aig-max-attempts", "0"),
    ("cf-aig-max-attempts", "two"),
    ("cf-aig-retry-delay", "6000"),
    ("cf-aig-retry-delay", "-1"),
    ("cf-aig-backoff", "random"),
    ("cf-aig-request-timeout", "soon"),
    ("cf-aig-skip-cache", "maybe"),
    ("cf-skip-cache", "yes please"),
    ("cf-aig-collect-log", "sometimes"),
    ("cf-aig-collect-log-payload", "nah"),
    ("cf-aig-metadata", "{not json"),
    ("cf-aig-metadata", "[1, 2]"),
    ("cf-aig-metadata", '"a string"'),
    ("cf-aig-custom-cost", "cheap"),
    ("cf-aig-custom-cost", '{"per_token_in": 1}'),
    ("cf-aig-custom-cost", '{"per_token_in": -1, "per_token_out": 1}'),
    ("cf-aig-event-id", "e" * 129),
    ("cf-aig-cache-key", "k" * 257),
]


@pytest.mark.parametrize("universal", [True, False], ids=["universal", "provider"])
@pytest.mark.parametrize(("header", "value"), BAD_HEADERS)
def test_bad_cf_aig_header_is_2010_naming_it(
    api: Api, gw: str, upstream: FakeUpstream, header: str, value: str, universal: bool
) -> None:
    headers = {header: value}
    r = api.universal(gw, openai_step(), headers=headers) if universal else chat(api, gw, headers, json={})
    assert header in error_of(r, 400, 2010)
    assert upstream.count() == 0
    assert_still_serving(api, gw)


def test_bad_cf_aig_header_inside_a_step_is_2010(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step({"cf-aig-max-attempts": "9"}))
    assert "cf-aig-max-attempts" in error_of(r, 400, 2010)
    assert upstream.count() == 0


def test_unknown_cf_aig_headers_are_ignored(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.universal(gw, openai_step(), headers={"cf-aig-something-new": "???", "cf-aig-x": ""})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/bad.account/gw",
        "/v1/acct/bad.gateway",
        f"/v1/{'a' * 65}/gw",
        "/v1/acct/bad.gateway/openai/chat/completions",
    ],
)
def test_bad_ids_are_2010(api: Api, upstream: FakeUpstream, path: str) -> None:
    error_of(api.http.post(path, json=openai_step()), 400, 2010)
    assert upstream.count() == 0


# ---- oversized bodies (2011) ----------------------------------------------------------------------------


def chunked(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
@pytest.mark.parametrize("universal", [True, False], ids=["universal", "provider"])
def test_oversized_body_is_413(
    api: Api, gw: str, upstream: FakeUpstream, transfer: str, universal: bool
) -> None:
    step = openai_step()
    step["query"]["messages"] = [{"role": "user", "content": "x" * MAX_BODY}]
    data = json.dumps(step if universal else step["query"]).encode()
    assert len(data) > MAX_BODY
    content: bytes | Iterator[bytes] = data if transfer == "content-length" else chunked(data)
    path = f"/v1/{ACCT}/{gw}" if universal else f"/v1/{ACCT}/{gw}/openai/chat/completions"
    r = api.http.post(path, content=content, headers={"content-type": "application/json"})
    if transfer == "chunked":
        assert r.request.headers["transfer-encoding"] == "chunked"
    else:
        assert r.request.headers["content-length"] == str(len(data))
    error_of(r, 413, 2011)
    assert upstream.count() == 0
    assert_still_serving(api, gw)


def test_body_at_the_limit_is_accepted(api: Api, gw: str, upstream: FakeUpstream) -> None:
    data = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    data = data[:-1] + b" " * (MAX_BODY - len(data)) + b"}"
    assert len(data) == MAX_BODY
    r = chat(api, gw, {"content-type": "application/json"}, content=chunked(data))
    assert r.status_code == 200, r.text
    assert upstream.last.body == data


def test_lying_content_length_is_refused_before_reading(api: Api, gw: str, upstream: FakeUpstream) -> None:
    """A declared length over the limit is refused at once, whatever follows."""
    with httpx.Client(base_url=api.url, timeout=5) as client:
        request = client.build_request(
            "POST", f"/v1/{ACCT}/{gw}", content=b"x" * (MAX_BODY + 10), headers={"content-type": "text/plain"}
        )
        error_of(client.send(request), 413, 2011)


# ---- service pages ---------------------------------------------------------------------------------------

FOREIGN = ("cdn", "googleapis", "unpkg", "jsdelivr", "cloudflare.com", "fonts.")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets(api: Api, upstream: FakeUpstream, page: str) -> None:
    r = api.http.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text.lower()
    for host in FOREIGN:
        assert host not in html, host
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, r.text
    for asset in assets:
        got = api.http.get(asset)
        assert got.status_code == 200, asset
        assert len(got.content) > 100, asset
    assert "/openapi.json" in r.text


def test_openapi_documents_the_universal_endpoint(api: Api, upstream: FakeUpstream) -> None:
    r = api.http.get("/openapi.json")
    assert r.status_code == 200, r.text
    schema = r.json()
    operation = schema["paths"]["/v1/{account_id}/{gateway_id}"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema
    step = schema["components"]["schemas"]["UniversalStep"]
    assert {"provider", "endpoint", "query"} <= set(step["properties"])
    assert any(path.startswith("/v1/{account_id}/{gateway_id}/{provider}") for path in schema["paths"])


def test_healthz(api: Api, upstream: FakeUpstream) -> None:
    r = api.http.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


# Signed numbers: a negative gateway time (total minus upstream gone wrong) must show, not fail to match.
SERVER_TIMING = re.compile(r"^gateway;dur=(-?\d+(\.\d+)?), upstream;dur=(-?\d+(\.\d+)?)$")


def test_server_timing_header(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(cache_ttl=300)
    responses = {
        "universal": api.universal(gw, openai_step({"x-fake-delay-ms": "100"})),
        "provider": chat(api, gw, {"x-fake-delay-ms": "50"}, json={"model": "gpt-4o", "messages": MESSAGES}),
        "stream": api.universal(gw, openai_step(stream=True)),
        "hit": api.universal(gw, openai_step()),
    }
    assert responses["hit"].headers["cf-aig-cache-status"] == "HIT"
    timings: dict[str, tuple[float, float]] = {}
    for name, r in responses.items():
        assert r.status_code == 200
        match = SERVER_TIMING.match(r.headers["server-timing"])
        assert match, (name, r.headers["server-timing"])
        timings[name] = (float(match.group(1)), float(match.group(3)))
    assert timings["universal"][1] >= 100
    assert timings["provider"][1] >= 50
    assert timings["hit"][1] == 0
    assert all(0 <= gateway < 1000 for gateway, _ in timings.values()), timings
