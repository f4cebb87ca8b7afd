"""Exporter secrets at rest: header values and `authorization` are stored encrypted with the server
key (as provider keys are), still sent to the collector, and rows written before that (plain
values) keep working and are sealed on their next write."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.otel.conftest import EXPORTER_SECRET, exporter
from tests.support.fake_otlp import FakeCollector
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, Api, api_client, openai_step, running_gateway

HEADER_SECRET = "hdr-secret-7731"


def _raw_otel(api: Api, gateway: str) -> str:
    """The gateway row's `otel` column as the database holds it."""
    path = api.server.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT otel FROM gateways WHERE account_id = ? AND id = ?", (ACCT, gateway)
        ).fetchone()
    assert row is not None
    return str(row[0])


def _write_raw_otel(api: Api, gateway: str, otel: list[dict[str, Any]]) -> None:
    path = api.server.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE gateways SET otel = ? WHERE account_id = ? AND id = ?", (json.dumps(otel), ACCT, gateway)
        )


def _export_headers(api: Api, collector: FakeCollector, gateway: str) -> dict[str, str]:
    response = api.universal(gateway, openai_step())
    assert response.status_code == 200, response.text
    collector.wait_for_span(response.headers["cf-aig-log-id"])
    return next(e for e in collector.exports_for(response.headers["cf-aig-log-id"])).headers


def test_secrets_are_encrypted_in_the_row_and_still_sent(api: Api, collector: FakeCollector) -> None:
    sent = exporter(collector, authorization=EXPORTER_SECRET)
    sent["headers"]["x-api-key"] = HEADER_SECRET
    gateway = api.new_gateway(otel=[sent])

    raw = _raw_otel(api, gateway)
    assert "otel-collector-secret" not in raw and HEADER_SECRET not in raw and "blue" not in raw
    assert "x-api-key" in raw and "sealed" in raw  # names stay readable, values do not

    headers = _export_headers(api, collector, gateway)
    assert headers["authorization"] == EXPORTER_SECRET
    assert headers["x-api-key"] == HEADER_SECRET and headers["x-team"] == "blue"

    shown = api.http.get(f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{gateway}", headers=ADMIN_HEADERS)
    exporters = shown.json()["result"]["otel"]
    assert exporters[0]["headers"] == {"x-team": "blue", "x-api-key": HEADER_SECRET}
    assert exporters[0]["authorization"] == "Bea…-42"


def test_a_row_with_plain_values_still_exports_and_is_sealed_on_its_next_write(
    api: Api, collector: FakeCollector
) -> None:
    gateway = api.new_gateway()  # not used yet, so nothing of it is cached
    legacy = exporter(collector, authorization=EXPORTER_SECRET)  # as rows were stored before
    _write_raw_otel(api, gateway, [legacy])

    headers = _export_headers(api, collector, gateway)
    assert headers["authorization"] == EXPORTER_SECRET and headers["x-team"] == "blue"

    url = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{gateway}"
    shown = api.http.get(url, headers=ADMIN_HEADERS).json()["result"]
    assert shown["otel"][0]["authorization"] == "Bea…-42"
    put = api.http.put(url, json={"otel": shown["otel"]}, headers=ADMIN_HEADERS)  # the preview back
    assert put.status_code == 200, put.text
    raw = _raw_otel(api, gateway)
    assert "otel-collector-secret" not in raw and "blue" not in raw
    assert _export_headers(api, collector, gateway)["authorization"] == EXPORTER_SECRET


def test_without_a_server_key_exporter_secrets_are_refused(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    base = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways"
    plain = {"url": "https://collector.example.com/v1/traces"}
    with running_gateway(tmp_path, fake_upstream.url, secret_key=None) as server, api_client(server) as api:
        for otel in (
            {**plain, "authorization": "Bearer x-1234567"},
            {**plain, "headers": {"x-api-key": "k"}},
        ):
            response = api.http.post(base, json={"id": "g", "otel": [otel]}, headers=ADMIN_HEADERS)
            assert response.status_code == 400, response.text
            error = response.json()["errors"][0]
            assert error["code"] == 1001 and "AIGW_SECRET_KEY" in error["message"]
        created = api.http.post(base, json={"id": "g", "otel": [plain]}, headers=ADMIN_HEADERS)
        assert created.status_code == 200, created.text  # an exporter without secrets needs no key
        updated = api.http.put(
            f"{base}/g",
            json={"otel": [{**plain, "authorization": "Bearer y-1234567"}]},
            headers=ADMIN_HEADERS,
        )
        assert updated.status_code == 400 and "AIGW_SECRET_KEY" in updated.json()["errors"][0]["message"]


def test_a_value_sealed_for_another_gateway_does_not_open_and_the_rest_keeps_working(
    api: Api, collector: FakeCollector
) -> None:
    """Values are bound to their gateway: copied into another row they do not decrypt. That
    exporter is left out (logged) — sending without its credential would only be refused — while
    the gateway's other exporters export and the gateway keeps serving."""
    source = api.new_gateway(otel=[exporter(collector, authorization=EXPORTER_SECRET)])
    target = api.new_gateway(otel=[exporter(collector)])
    plain = {**exporter(collector), "headers": {"x-team": "green"}}
    _write_raw_otel(api, target, [*json.loads(_raw_otel(api, source)), plain])
    time.sleep(1.1)  # past the config cache's TTL (no Redis here to announce a raw write)
    response = api.universal(target, openai_step())
    assert response.status_code == 200, response.text
    log_id = response.headers["cf-aig-log-id"]
    collector.wait_for_span(log_id)
    time.sleep(0.5)  # a second export, if there were one, would have arrived by now
    exports = list(collector.exports_for(log_id))
    assert [e.headers.get("x-team") for e in exports] == ["green"]
    assert all("authorization" not in {n.lower() for n in e.headers} for e in exports)
