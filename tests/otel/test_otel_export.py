"""OpenTelemetry export end to end: a real gateway, the fake provider, and a fake OTLP collector of
our own (tests/support/fake_otlp.py). Spans are read as the collector received them."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.otel.conftest import CLIENT, EXPORTER_SECRET, PARENT_SPAN, PARENT_TRACE, exporter
from tests.support.fake_otlp import FakeCollector, attributes_of
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    ADMIN_HEADERS,
    Api,
    api_client,
    openai_step,
    running_gateway,
    unreachable_url,
)
from tests.support.ws import ws_session, ws_url


def test_json_span_with_genai_attributes_parented_by_traceparent(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway(otel=[exporter(collector, authorization=EXPORTER_SECRET)])
    headers = {
        "traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01",
        "tracestate": "vendor=abc",
        "cf-aig-metadata": '{"team": "search", "tier": 2}',
    }
    response = api.universal(gateway, openai_step(), headers=headers)
    assert response.status_code == 200, response.text
    log_id = response.headers["cf-aig-log-id"]
    returned = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01", response.headers["traceparent"])
    assert returned is not None and returned.group(1) == PARENT_TRACE and returned.group(2) != PARENT_SPAN

    span, resource = collector.wait_for_span(log_id)
    assert span["traceId"] == PARENT_TRACE
    assert span["parentSpanId"] == PARENT_SPAN
    assert span["spanId"] == returned.group(2)
    assert span["kind"] == CLIENT
    assert span["name"] == "chat gpt-4o-mini"
    assert span.get("traceState") == "vendor=abc"
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"]) > 0
    assert resource["service.name"] == "aigw"
    attributes = attributes_of(span)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.model.provider"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.usage.cost"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["cf.aig.gateway_id"] == gateway
    assert attributes["cf.aig.account_id"] == ACCT
    assert attributes["cf.aig.event_id"] == response.headers["cf-aig-event-id"]
    assert attributes["cf.aig.step"] == 0
    assert attributes["cf.aig.cache_status"] == "MISS"
    assert attributes["cf.aig.request_type"] == "universal"
    assert attributes["cf.aig.metadata.team"] == "search"
    assert attributes["cf.aig.metadata.tier"] == 2
    assert attributes["http.response.status_code"] == 200
    assert attributes["server.address"] == "127.0.0.1"
    assert "say hello please" in attributes["gen_ai.prompt_json"]
    assert "Hello from fake" in attributes["gen_ai.completion_json"]

    export = next(e for e in collector.exports_for(log_id))
    assert export.path == "/v1/traces"
    assert export.content_type == "application/json"
    assert export.headers["authorization"] == EXPORTER_SECRET
    assert export.headers["x-team"] == "blue"


def test_protobuf_span_parented_by_cloudflare_headers(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway(otel=[exporter(collector, "protobuf")])
    headers = {"cf-aig-otel-trace-id": PARENT_TRACE, "cf-aig-otel-parent-span-id": PARENT_SPAN}
    response = api.http.post(
        f"/v1/{ACCT}/{gateway}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-test-openai", **headers},
    )
    assert response.status_code == 200, response.text
    span, _ = collector.wait_for_span(response.headers["cf-aig-log-id"])
    assert span["traceId"] == PARENT_TRACE and span["parentSpanId"] == PARENT_SPAN
    assert response.headers["traceparent"] == f"00-{PARENT_TRACE}-{span['spanId']}-01"
    assert attributes_of(span)["cf.aig.request_type"] == "provider"
    export = next(e for e in collector.exports_for(response.headers["cf-aig-log-id"]))
    assert export.content_type == "application/x-protobuf"


def test_new_trace_without_parent_and_a_failed_step_is_an_error(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway(otel=[exporter(collector)])
    response = api.universal(gateway, openai_step({"x-fake-status": "500"}))
    assert response.status_code == 500
    span, _ = collector.wait_for_span(response.headers["cf-aig-log-id"])
    assert "parentSpanId" not in span or not span["parentSpanId"]
    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and span["traceId"] != PARENT_TRACE
    assert span["status"]["code"] == 2  # ERROR
    assert attributes_of(span)["error.type"] == "500"


def test_one_span_per_step_of_a_fallback(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway(otel=[exporter(collector)])
    steps = [openai_step({"x-fake-status": "503"}), openai_step(model="gpt-4o")]
    response = api.universal(gateway, steps)
    assert response.status_code == 200 and response.headers["cf-aig-step"] == "1"
    second, _ = collector.wait_for_span(response.headers["cf-aig-log-id"])
    assert attributes_of(second)["cf.aig.step"] == 1
    assert response.headers["traceparent"].split("-")[2] == second["spanId"]  # the answering step's
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        spans = [s for s, _ in collector.spans() if attributes_of(s).get("cf.aig.gateway_id") == gateway]
        if len(spans) == 2:
            break
        time.sleep(0.05)
    assert sorted(attributes_of(s)["cf.aig.step"] for s in spans) == [0, 1]
    assert len({s["traceId"] for s in spans}) == 1


def test_payloads_only_when_the_log_keeps_them_and_no_secret_anywhere(
    api: Api, collector: FakeCollector
) -> None:
    token = api.new_token(permissions=["run"])["value"]
    gateway = api.new_gateway(authentication=True, otel=[exporter(collector, authorization=EXPORTER_SECRET)])
    step = openai_step({"Authorization": "Bearer sk-secret-provider-key"})
    response = api.universal(
        gateway,
        step,
        headers={"cf-aig-authorization": f"Bearer {token}", "cf-aig-collect-log-payload": "false"},
    )
    assert response.status_code == 200, response.text
    span, _ = collector.wait_for_span(response.headers["cf-aig-log-id"])
    attributes = attributes_of(span)
    assert "gen_ai.prompt_json" not in attributes and "gen_ai.completion_json" not in attributes
    text = repr(span)
    for secret in ("sk-secret-provider-key", token, EXPORTER_SECRET, "otel-collector-secret"):
        assert secret not in text


def test_payload_cut_at_the_logged_body_size(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway(otel=[exporter(collector)])
    limit = api.server.settings.log_body_max_bytes
    step = openai_step()
    step["query"]["messages"] = [{"role": "user", "content": "x" * (limit * 2)}]
    response = api.universal(gateway, step)
    assert response.status_code == 200
    span, _ = collector.wait_for_span(response.headers["cf-aig-log-id"])
    assert len(attributes_of(span)["gen_ai.prompt_json"].encode()) == limit


def test_no_exporter_no_span_and_no_traceparent(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway()
    response = api.universal(
        gateway, openai_step(), headers={"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
    )
    assert response.status_code == 200
    assert "traceparent" not in response.headers
    time.sleep(0.5)
    assert collector.exports_for(response.headers["cf-aig-log-id"]) == []


def test_authorization_is_write_only_and_a_preview_sent_back_keeps_it(
    api: Api, collector: FakeCollector
) -> None:
    gateway = api.new_gateway(otel=[exporter(collector, authorization=EXPORTER_SECRET)])
    url = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{gateway}"
    shown = api.http.get(url, headers=ADMIN_HEADERS).json()["result"]
    assert shown["otel"][0]["authorization"] == "Bea…-42"
    assert EXPORTER_SECRET not in api.http.get(url, headers=ADMIN_HEADERS).text
    # A client that PUTs back what it read must not replace the secret with its preview.
    put = api.http.put(url, json={"otel": shown["otel"], "collect_logs": True}, headers=ADMIN_HEADERS)
    assert put.status_code == 200, put.text
    time.sleep(1.2)  # the config cache's TTL
    response = api.universal(gateway, openai_step())
    collector.wait_for_span(response.headers["cf-aig-log-id"])
    export = next(e for e in collector.exports_for(response.headers["cf-aig-log-id"]))
    assert export.headers["authorization"] == EXPORTER_SECRET


@pytest.mark.parametrize(
    ("otel", "field"),
    [
        ([{"url": "ftp://collector.example/v1/traces"}], "otel.0.url"),
        ([{"url": "https://c.example/v1/traces", "content_type": "xml"}], "otel.0.content_type"),
        ([{"url": "https://c.example/v1/traces", "headers": {"bad name": "x"}}], "otel.0.headers"),
    ],
)
def test_bad_exporters_are_refused(api: Api, otel: list[dict[str, Any]], field: str) -> None:
    response = api.http.post(
        f"/client/v4/accounts/{ACCT}/ai-gateway/gateways",
        json={"id": "bad-otel", "otel": otel},
        headers=ADMIN_HEADERS,
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == 1001 and error["message"].startswith(f"{field}: ")


def test_collector_down_drops_and_counts_without_slowing_requests(api: Api) -> None:
    gateway = api.new_gateway(otel=[{"url": f"{unreachable_url()}/v1/traces", "content_type": "protobuf"}])
    before = _dropped(api)
    started = time.monotonic()
    for _ in range(5):
        assert api.universal(gateway, openai_step()).status_code == 200
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _dropped(api) < before + 5:
        time.sleep(0.1)
    assert _dropped(api) >= before + 5


def test_collector_refusing_counts_drops(api: Api, collector: FakeCollector) -> None:
    gateway = api.new_gateway(otel=[exporter(collector)])
    before = _dropped(api)
    collector.status = 400  # not retryable: dropped at once
    try:
        assert api.universal(gateway, openai_step()).status_code == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _dropped(api) < before + 1:
            time.sleep(0.05)
    finally:
        collector.status = 200
    assert _dropped(api) >= before + 1


def _dropped(api: Api) -> float:
    text = httpx.get(f"{api.url}/metrics").text
    match = re.search(r"^aigw_otel_spans_dropped_total (\S+)$", text, re.MULTILINE)
    assert match is not None, "aigw_otel_spans_dropped_total missing from /metrics"
    return float(match.group(1))


def test_server_wide_exporter_from_otel_environment(
    tmp_path: Path, fake_upstream: FakeUpstream, collector: FakeCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)  # type: ignore[attr-defined]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-operator=ops%20team")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "aigw-test")
    # Loopback is fine for the operator's endpoint: the destination rules are for tenants.
    with (
        running_gateway(tmp_path, fake_upstream.url, otel_flush_interval_s=0.05) as gateway,
        api_client(gateway) as api,
    ):
        created = api.new_gateway()
        response = api.universal(created, openai_step())
        assert response.status_code == 200
        span, resource = collector.wait_for_span(response.headers["cf-aig-log-id"])
    assert resource["service.name"] == "aigw-test"
    assert response.headers["traceparent"].split("-")[2] == span["spanId"]
    export = next(e for e in collector.exports_for(response.headers["cf-aig-log-id"]))
    assert export.content_type == "application/x-protobuf"
    assert export.headers["x-operator"] == "ops team"


def test_tenant_exporter_urls_obey_the_destination_rules(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    with running_gateway(tmp_path, fake_upstream.url) as gateway, api_client(gateway) as api:
        base = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways"
        for url in (
            "http://collector.example.com/v1/traces",
            "https://127.0.0.1/v1/traces",
            "https://[::1]/x",
        ):
            response = api.http.post(base, json={"id": "g", "otel": [{"url": url}]}, headers=ADMIN_HEADERS)
            assert response.status_code == 400, url
            error = response.json()["errors"][0]
            assert error["code"] == 1001 and error["message"].startswith("otel.0.url: ")
        ok = api.http.post(
            base,
            json={"id": "g", "otel": [{"url": "https://collector.example.com/v1/traces"}]},
            headers=ADMIN_HEADERS,
        )
        assert ok.status_code == 200, ok.text
        updated = api.http.put(
            f"{base}/g", json={"otel": [{"url": "https://10.0.0.1/v1/traces"}]}, headers=ADMIN_HEADERS
        )
        assert updated.status_code == 400
        assert updated.json()["errors"][0]["message"].startswith("otel.0.url: ")


async def test_a_websocket_step_is_parented_by_the_handshake_unless_it_names_its_own(
    api: Api, collector: FakeCollector
) -> None:
    token = api.new_token(permissions=["run"])["value"]
    gateway = api.new_gateway(otel=[exporter(collector)])
    own_trace = "0af7651916cd43dd8448eb211c80319c"
    handshake = {"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
    async with ws_session(ws_url(api.server, gateway), token, headers=handshake) as session:
        first = await session.request(openai_step(eventId="from-handshake"))
        own = {"traceparent": f"00-{own_trace}-{PARENT_SPAN}-01"}
        second = await session.request(openai_step(own, eventId="own-parent"))
    spans = {}
    for event in (first, second):
        log_id = event.created["metadata"]["logId"]
        spans[event.event_id], _ = await asyncio.to_thread(collector.wait_for_span, log_id)
    assert spans["from-handshake"]["traceId"] == PARENT_TRACE
    assert spans["from-handshake"]["parentSpanId"] == PARENT_SPAN
    assert spans["own-parent"]["traceId"] == own_trace
    assert attributes_of(spans["own-parent"])["cf.aig.request_type"] == "websocket"
