"""The logs of REST traffic, read with the `cloudflare` SDK: `request_type: rest`, ids accepted
as ULIDs or UUIDs everywhere, 404 / 1002 for anything else; and a parity test: one scenario over
the legacy compat endpoint and over the REST surface gives the same log rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import cloudflare
import pytest
from ulid import ULID

from tests.rest.support import PROVIDER_KEY, Rest, new_rest
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_TOKEN, MESSAGES, Api, normalize_fake

CHAT = {"model": "anthropic/claude-3-5-haiku-latest", "messages": MESSAGES, "max_tokens": 32}
SETTINGS = {"cf-aig-metadata": json.dumps({"user": "alice", "n": 2}), "cf-aig-event-id": "evt-1"}


@pytest.fixture
def rest(api: Api, upstream: FakeUpstream) -> Rest:
    return new_rest(api, upstream, authentication=True)


@pytest.fixture
def cf(api: Api) -> Iterator[cloudflare.Cloudflare]:
    client = cloudflare.Cloudflare(api_token=ADMIN_TOKEN, base_url=f"{api.url}/client/v4", max_retries=0)
    yield client
    client.close()


def test_sdk_reads_rest_logs_by_ulid_and_uuid(rest: Rest, cf: cloudflare.Cloudflare) -> None:
    response = rest.post("v1/chat/completions", CHAT, rest.headers(**SETTINGS))
    assert response.status_code == 200, response.text
    log_id = response.headers["cf-aig-log-id"]
    rest.rows()
    [listed] = list(cf.ai_gateway.logs.list(rest.gateway_id, account_id=ACCT))
    assert (
        listed.id == log_id and listed.provider == "anthropic" and listed.model == "claude-3-5-haiku-latest"
    )
    as_uuid = str(ULID.from_str(log_id).to_uuid())
    for form in (log_id, log_id.lower(), as_uuid, as_uuid.upper()):
        one = cf.ai_gateway.logs.get(form, account_id=ACCT, gateway_id=rest.gateway_id)
        assert one.id == log_id and one.to_dict()["request_id"] == response.headers["cf-aig-request-id"]
        body = cf.ai_gateway.logs.request(form, account_id=ACCT, gateway_id=rest.gateway_id)
        assert isinstance(body, dict) and body["model"] == "claude-3-5-haiku-latest"
    edited = cf.ai_gateway.logs.edit(as_uuid, account_id=ACCT, gateway_id=rest.gateway_id, feedback=1)
    assert isinstance(edited, dict) and edited["feedback"] == 1
    by_uuid = cf.ai_gateway.logs.list(
        rest.gateway_id, account_id=ACCT, filters=[{"key": "id", "operator": "eq", "value": [as_uuid]}]
    )
    assert [log.id for log in by_uuid] == [log_id]


@pytest.mark.parametrize(
    "log_id",
    ["not-an-id", str(uuid.uuid4()), str(ULID()), "0" * 27, "01ARZ3NDEKTSV4RRFFQ69G5FA%21", "x" * 300],
)
@pytest.mark.parametrize("suffix", ["", "/request", "/response"])
def test_unknown_ids_are_404_1002(rest: Rest, log_id: str, suffix: str) -> None:
    path = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{rest.gateway_id}/logs/{log_id}{suffix}"
    response = rest.api.http.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 404, response.text
    assert response.json()["errors"][0]["code"] == 1002
    patched = rest.api.http.patch(
        path.removesuffix(suffix), json={"feedback": 1}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert patched.status_code == 404 and patched.json()["errors"][0]["code"] == 1002


# Columns that differ between two runs of one scenario (ids, clocks), or by surface by design.
_VARYING = {"id", "created_at", "duration_ms", "ttfb_ms", "request_type", "gateway_notes", "request_id"}


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in row.items() if k not in _VARYING}
    kept["response_body"] = normalize_fake(kept["response_body"])  # the fake numbers its answers
    return kept


def test_parity_legacy_and_rest_log_rows(api: Api, upstream: FakeUpstream) -> None:
    """The same scenario (a translated stream with usage, a metadata header, an event id, a cache
    hit) over `/compat/chat/completions` and `/ai/v1/chat/completions` logs the same rows."""
    rows: dict[str, list[dict[str, Any]]] = {}
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    for surface in ("legacy", "rest"):
        rest = new_rest(api, upstream, authentication=True, cache_ttl=300)
        headers = {**SETTINGS, "cf-aig-authorization": f"Bearer {rest.token}"}
        for _ in range(2):  # a miss, then a hit
            if surface == "legacy":
                response = api.http.post(
                    f"/v1/{ACCT}/{rest.gateway_id}/compat/chat/completions", json=body,
                    headers={**headers, "Authorization": f"Bearer {PROVIDER_KEY}"},
                )  # fmt: skip
            else:
                response = rest.post("v1/chat/completions", body, {**headers, **rest.headers()})
            assert response.status_code == 200 and b"[DONE]" in response.content, response.text
        rows[surface] = [{**r, "gateway_id": "-"} for r in rest.rows(2)]
    assert [r["request_type"] for r in rows["legacy"]] == ["compat", "compat"]
    assert [r["request_type"] for r in rows["rest"]] == ["rest", "rest"]
    assert [r["cached"] for r in rows["rest"]] == [0, 1]
    for surface_rows in rows.values():  # each row is its own request: its request id is its id
        assert [r["request_id"] for r in surface_rows] == [r["id"] for r in surface_rows]
    for legacy_row, rest_row in zip(rows["legacy"], rows["rest"], strict=True):
        legacy_row, rest_row = _comparable(legacy_row), _comparable(rest_row)
        assert legacy_row == rest_row, {
            k: (v, rest_row[k]) for k, v in legacy_row.items() if rest_row[k] != v
        }
