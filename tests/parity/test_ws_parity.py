"""HTTP and WebSocket run one pipeline (protocol.md §6): the same universal request sent as an HTTP
POST and as a `universal.create` frame must make the same upstream calls, give the same result and
leave equivalent log rows.

Each scenario runs against twin gateways: two servers with separate databases and caches but the
same account and gateway ids, one driven over HTTP and one over a WebSocket. Request-level
`cf-aig-*` headers go on the HTTP request and on the WebSocket handshake (session defaults).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.support.fake_providers import RecordedRequest
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    anthropic_step,
    api_client,
    normalize_fake,
    openai_step,
    running_gateway,
    sse_events,
    unique,
    workers_ai_step,
)
from tests.support.ws import barrier, chunk_text, is_terminal, log_db, ws_session, ws_url

TEXT = "parity is the same answer twice"

# Log columns that may differ between the two transports (or between any two runs).
UNCOMPARED_COLUMNS = {
    "id",
    "request_id",  # the id of the request's first row: differs like `id`
    "created_at",
    "event_id",
    "connection_id",
    "request_type",
    "duration_ms",
    "ttfb_ms",
    "user_agent",
}
# Upstream request headers set per connection by the HTTP client, not by the request.
UNCOMPARED_UPSTREAM_HEADERS = {"host"}


@dataclass(frozen=True)
class Scenario:
    request: Any  # one step object or an array of steps, sent as it is over both transports
    rows: int  # log rows expected (over each transport)
    headers: dict[str, str] = field(default_factory=dict)  # request-level cf-aig-* headers
    repeat: int = 1  # times the request is sent, one after the other


SCENARIOS: dict[str, Scenario] = {
    "plain": Scenario(
        openai_step({"x-fake-text": TEXT}),
        rows=1,
        headers={"cf-aig-metadata": '{"team": "parity", "n": 1}', "cf-aig-event-id": "parity-plain"},
    ),
    "stream": Scenario(openai_step({"x-fake-text": TEXT}, stream=True), rows=1),
    "stream-anthropic": Scenario(anthropic_step({"x-fake-text": TEXT}, stream=True), rows=1),
    "fallback-array": Scenario(
        [openai_step({"x-fake-status": "500"}), workers_ai_step({"x-fake-text": TEXT})], rows=2
    ),
    "cache-hit": Scenario(openai_step(), rows=2, headers={"cf-aig-cache-ttl": "300"}, repeat=2),
    "stream-cache-hit": Scenario(
        openai_step(stream=True), rows=2, headers={"cf-aig-cache-ttl": "300"}, repeat=2
    ),
    "upstream-400": Scenario(openai_step({"x-fake-status": "400"}), rows=1),
    "unknown-provider": Scenario({**openai_step(), "provider": "no-such-provider"}, rows=0),
    "malformed-step": Scenario({**openai_step(), "endpoint": 5}, rows=0),
    "malformed-header": Scenario(openai_step({"cf-aig-max-attempts": "9"}), rows=0),
}


@dataclass
class Outcome:
    """What a client learns from one request, in a transport-neutral form."""

    status: int
    step: str | None
    cache_status: str | None
    content_type: str | None
    body: Any = None  # parsed JSON (fake ids and clocks blanked), or ("gateway error", code, message)
    chunks: list[Any] | None = None  # parsed stream events, [DONE] excluded
    text: str | None = None  # the stream's text reassembled
    event_id: str | None = None  # the echoed event id, when the request set one (cf-aig-event-id)


def _blank(value: Any) -> Any:
    """Parsed JSON with the fake's per-request sequence numbers and clock blanked."""
    return json.loads(normalize_fake(json.dumps(value, separators=(",", ":")).encode()))


def _parse(data: str) -> Any:
    try:
        return _blank(json.loads(data))
    except ValueError:
        return data


def _stream_outcome(outcome: Outcome, chunks: list[Any]) -> Outcome:
    outcome.chunks = [_blank(c) for c in chunks]
    outcome.text = "".join(chunk_text(c) for c in chunks)
    return outcome


async def run_http(http: httpx.AsyncClient, gateway_id: str, token: str, scenario: Scenario) -> list[Outcome]:
    headers = {**scenario.headers, "cf-aig-authorization": f"Bearer {token}"}
    outcomes = []
    for _ in range(scenario.repeat):
        r = await http.post(f"/v1/{ACCT}/{gateway_id}", json=scenario.request, headers=headers)
        content_type = r.headers.get("content-type")
        outcome = Outcome(
            r.status_code, r.headers.get("cf-aig-step"), r.headers.get("cf-aig-cache-status"), None
        )
        if "cf-aig-event-id" in scenario.headers:
            outcome.event_id = r.headers["cf-aig-event-id"]
        if content_type and content_type.startswith("text/event-stream"):
            outcome.content_type = content_type
            events = [data for _name, data in sse_events(r.content) if data != "[DONE]"]
            outcome = _stream_outcome(outcome, [_parse(d) for d in events])
        else:
            body = r.json()
            if "cf-aig-log-id" not in r.headers and isinstance(body.get("error"), list):
                # A gateway error (§8 shape, `error` singular) before any step ran.
                assert body["success"] is False
                outcome.body = ("gateway error", body["error"][0]["code"], body["error"][0]["message"])
            else:
                outcome.content_type = content_type
                outcome.body = _blank(body)
        outcomes.append(outcome)
    return outcomes


async def run_ws(url: str, token: str, scenario: Scenario) -> list[Outcome]:
    outcomes = []
    async with ws_session(url, token, headers=scenario.headers) as session:
        for _ in range(scenario.repeat):
            await session.create(scenario.request)
            first = await session.recv_frame()
            frames = [first]
            while not is_terminal(frames[-1]):
                frames.append(await session.recv_frame())
            metadata = first["metadata"]
            outcome = Outcome(metadata["status"], metadata.get("step"), metadata.get("cacheStatus"), None)
            if "cf-aig-event-id" in scenario.headers:
                outcome.event_id = metadata["eventId"]
            response = first.get("response")
            if "response" not in first:
                outcome.content_type = metadata["contentType"]
                assert frames[-1]["type"] == "universal.done"
                chunks = [f["response"] for f in frames if f["type"] == "universal.stream"]
                outcome = _stream_outcome(outcome, chunks)
            elif "logId" not in metadata and isinstance(response, dict) and "errors" in response:
                # A gateway error (§6 shape, `errors` plural) before any step ran.
                assert response["success"] is False
                outcome.body = (
                    "gateway error",
                    response["errors"][0]["code"],
                    response["errors"][0]["message"],
                )
            else:
                outcome.content_type = metadata["contentType"]
                outcome.body = _blank(response)
            outcomes.append(outcome)
    return outcomes


def upstream_calls(requests: list[RecordedRequest]) -> list[tuple[Any, ...]]:
    return [
        (
            r.method,
            r.path,
            r.query,
            r.body,
            {k: v for k, v in r.headers.items() if k not in UNCOMPARED_UPSTREAM_HEADERS},
        )
        for r in requests
    ]


def comparable_rows(server: GatewayServer, gateway_id: str) -> list[dict[str, Any]]:
    log = log_db(server)
    with api_client(server) as api:
        barrier(api, log)  # every row of the scenario is stored by now
    rows = log.rows("gateway_id = ?", (gateway_id,))
    for row in rows:
        for name in UNCOMPARED_COLUMNS:
            del row[name]
        if row["response_body"] is not None:
            row["response_body"] = normalize_fake(row["response_body"])
    return rows


@pytest.fixture(scope="module")
def twins(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    with (
        running_gateway(tmp_path_factory.mktemp("parity-http"), fake_upstream.url) as over_http,
        running_gateway(tmp_path_factory.mktemp("parity-ws"), fake_upstream.url) as over_ws,
    ):
        yield over_http, over_ws


def _setup(server: GatewayServer, gateway_id: str) -> str:
    """The gateway (authentication on, so both transports authenticate) and a run token."""
    with api_client(server) as api:
        api.new_gateway(id=gateway_id, authentication=True)
        return str(api.new_token()["value"])


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_http_and_websocket_agree(
    twins: tuple[GatewayServer, GatewayServer], upstream: FakeUpstream, name: str
) -> None:
    scenario = SCENARIOS[name]
    over_http, over_ws = twins
    gateway_id = unique("parity")
    http_token, ws_token = _setup(over_http, gateway_id), _setup(over_ws, gateway_id)

    upstream.reset()
    async with httpx.AsyncClient(base_url=over_http.url, timeout=10) as http:
        http_outcomes = await run_http(http, gateway_id, http_token, scenario)
    http_calls = upstream_calls(upstream.requests)
    upstream.reset()
    ws_outcomes = await run_ws(ws_url(over_ws, gateway_id), ws_token, scenario)
    ws_calls = upstream_calls(upstream.requests)

    assert ws_calls == http_calls
    assert ws_outcomes == http_outcomes
    http_rows, ws_rows = comparable_rows(over_http, gateway_id), comparable_rows(over_ws, gateway_id)
    assert len(http_rows) == scenario.rows
    assert ws_rows == http_rows

    # The table is meant to cover what it says: check each scenario did what its name promises.
    last = http_outcomes[-1]
    expected_status = {"upstream-400": 400, "unknown-provider": 400, "malformed-step": 400}
    assert last.status == expected_status.get(name, 400 if name == "malformed-header" else 200)
    if name.startswith("stream"):
        assert last.chunks and last.text == (TEXT if name != "stream-cache-hit" else "Hello from fake")
    if name.endswith("cache-hit"):
        assert [o.cache_status for o in http_outcomes] == ["MISS", "HIT"]
        assert len(http_calls) == 1
    if name == "fallback-array":
        assert last.step == "1" and len(http_calls) == 2
    if name in ("unknown-provider", "malformed-step", "malformed-header"):
        assert last.body[1] == (2008 if name == "unknown-provider" else 2010)
        assert http_calls == []
    if name == "plain":
        assert json.loads(http_rows[0]["metadata"]) == {"team": "parity", "n": 1}
        assert last.event_id == "parity-plain"
