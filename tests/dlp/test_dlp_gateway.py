"""DLP through a running gateway: configured with the management API, requests blocked (2029)
before the cache and the provider, responses blocked (2030) or flagged, `cf-aig-dlp`, stored
bodies redacted, and a stream whose secret arrives split across many tiny events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, api_client, openai_step, running_gateway, sse_events
from tests.support.server_thread import Receive, Scope, Send, ServerThread

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz12"
GATEWAYS = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways"
POLICIES = {
    "enabled": True,
    "policies": [
        {"id": "block-secrets", "enabled": True, "action": "BLOCK", "check": ["REQUEST", "RESPONSE"],
         "profiles": ["api_keys"]},
        {"id": "flag-pii", "enabled": True, "action": "FLAG", "check": ["REQUEST", "RESPONSE"],
         "profiles": ["email"]},
    ],
}  # fmt: skip


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def split_secret_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """An OpenAI-style stream whose text carries SECRET (or not: `x-clean`) two characters per event."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    names = {name for name, _ in scope["headers"]}
    lead = "" if b"x-first" in names else "Here it is: "
    text = lead + ("no secret at all" if b"x-clean" in names else SECRET) + " -- done. " + "pad " * 100
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    for piece in _chunks(text, 2):
        event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
        await send(
            {
                "type": "http.response.body",
                "body": f"data: {json.dumps(event)}\n\n".encode(),
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Any]:
    with (
        running_gateway(tmp_path_factory.mktemp("dlp"), fake_upstream.url) as server,
        api_client(server) as client,
    ):
        yield client


def _gateway(api: Any, dlp: dict[str, Any], **fields: Any) -> str:
    return str(api.new_gateway(dlp=dlp, **fields))


def _user(text: str, **step: Any) -> dict[str, Any]:
    base = openai_step(**step)
    base["query"]["messages"] = [{"role": "user", "content": text}]
    return base


def test_a_blocked_prompt_never_reaches_the_provider_and_is_logged_redacted(
    api: Any, upstream: FakeUpstream
) -> None:
    gateway = _gateway(api, POLICIES, cache_ttl=60)
    seen = upstream.request_count() if hasattr(upstream, "request_count") else None
    response = api.universal(gateway, _user(f"my key is {SECRET}"))
    assert response.status_code == 400
    assert response.json()["error"] == [
        {"code": 2029, "message": "Request content blocked due to DLP policy violations"}
    ]
    header = json.loads(response.headers["cf-aig-dlp"])
    assert header == {
        "findings": [{"profile": {"context": {}, "entry_ids": ["api_keys.openai"], "profile_id": "api_keys"},
                      "policy_ids": ["block-secrets"], "check": "REQUEST"}],
        "action": "BLOCK",
    }  # fmt: skip
    assert SECRET not in response.headers["cf-aig-dlp"]
    if seen is not None:
        assert upstream.request_count() == seen
    row = api.db().wait_gateway(gateway)[0]
    assert row["status_code"] == 400 and not row["success"] and row["dlp_action"] == "BLOCK"
    assert SECRET.encode() not in row["request_body"]
    assert b"[REDACTED:api_keys.openai]" in row["request_body"]
    log = api.http.get(f"{GATEWAYS}/{gateway}/logs/{row['id']}", headers=ADMIN_HEADERS).json()["result"]
    assert log["dlp_action"] == "BLOCK"
    assert log["dlp"]["findings"][0]["counts"] == {"api_keys.openai": 1}


def test_a_flagged_prompt_goes_through_with_the_header(api: Any) -> None:
    gateway = _gateway(api, POLICIES)
    response = api.universal(gateway, _user("mail me at bob@example.com"))
    assert response.status_code == 200, response.text
    header = json.loads(response.headers["cf-aig-dlp"])
    assert header["action"] == "FLAG"
    assert header["findings"][0]["profile"]["entry_ids"] == ["email.address"]
    row = api.db().wait_gateway(gateway)[0]
    assert row["dlp_action"] == "FLAG" and b"bob@example.com" not in row["request_body"]


def test_clean_traffic_has_no_header(api: Any) -> None:
    gateway = _gateway(api, POLICIES)
    response = api.universal(gateway, _user("hello there"))
    assert response.status_code == 200 and "cf-aig-dlp" not in response.headers


def test_a_blocked_response_is_2030_and_not_cached(api: Any) -> None:
    gateway = _gateway(api, POLICIES, cache_ttl=60)
    step = _user("say it", headers={"x-fake-text": f"the key is {SECRET}"})
    for _ in range(2):
        response = api.universal(gateway, step)
        assert response.status_code == 400
        assert response.json()["error"][0]["code"] == 2030
        assert response.headers.get("cf-aig-cache-status") is None
        assert json.loads(response.headers["cf-aig-dlp"])["findings"][0]["check"] == "RESPONSE"


def test_the_gateway_field_round_trips_in_both_shapes(api: Any) -> None:
    simple = {"enabled": True, "action": "FLAG", "profiles": ["email", "phone"]}
    gateway = _gateway(api, simple)
    got = api.http.get(f"{GATEWAYS}/{gateway}", headers=ADMIN_HEADERS).json()["result"]
    assert got["dlp"] == simple
    put = api.http.put(f"{GATEWAYS}/{gateway}", json={"dlp": POLICIES}, headers=ADMIN_HEADERS)
    assert put.status_code == 200 and put.json()["result"]["dlp"] == POLICIES
    off = api.http.put(f"{GATEWAYS}/{gateway}", json={"dlp": None}, headers=ADMIN_HEADERS)
    assert off.json()["result"]["dlp"] is None


BAD = [
    ({"enabled": True, "action": "FLAG", "profiles": ["x"]}, "dlp.profiles.0: unknown profile 'x'"),
    ({"enabled": True, "action": "FLAG", "profiles": []}, "dlp.profiles:"),
    ({"enabled": True, "action": "MAYBE", "profiles": ["email"]}, "dlp.action:"),
    ({"enabled": True, "policies": [{**POLICIES["policies"][0], "check": []}]}, "dlp.policies.0.check:"),
    ({"enabled": True, "policies": [{**POLICIES["policies"][0], "check": ["REQUEST", "REQUEST"]}]},
     "dlp.policies.0.check:"),
    ({"enabled": True, "policies": [{**POLICIES["policies"][0], "id": ""}]}, "dlp.policies.0.id:"),
    ({"enabled": True, "policies": [POLICIES["policies"][0]] * 2}, "dlp: policy ids must be distinct"),
    ({"enabled": True, "policies": [{**POLICIES["policies"][0], "id": str(i)} for i in range(21)]},
     "dlp.policies:"),
    ({"enabled": True, "policies": [{**POLICIES["policies"][0], "profiles": ["4e2c-uuid"]}]},
     "dlp.policies.0.profiles.0: unknown profile '4e2c-uuid'"),
    ({"enabled": True}, "dlp: "),
    ("yes", "dlp"),
]  # fmt: skip


@pytest.mark.parametrize(("dlp", "message"), BAD, ids=[m for _, m in BAD])
def test_malformed_dlp_is_1001_with_its_field(api: Any, dlp: Any, message: str) -> None:
    response = api.http.post(GATEWAYS, json={"id": "bad-dlp", "dlp": dlp}, headers=ADMIN_HEADERS)
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert all(e["code"] == 1001 for e in errors)
    assert any(e["message"].startswith(message) for e in errors), errors
    assert api.http.get("/health").status_code < 500  # the server keeps serving


@pytest.fixture(scope="module")
def split_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    upstream = ServerThread(split_secret_upstream, name="split-upstream").start()
    try:
        with (
            running_gateway(tmp_path_factory.mktemp("dlp-split"), upstream.url) as server,
            api_client(server) as client,
        ):
            yield client
    finally:
        upstream.stop()


def _stream(api: Any, gateway: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.universal(gateway, _user("go", stream=True, headers=headers))


def _text_of(body: str) -> str:
    return "".join(
        json.loads(data)["choices"][0]["delta"]["content"]
        for name, data in sse_events(body)
        if data != "[DONE]" and name is None
    )


def test_a_secret_split_across_many_events_never_reaches_the_client(split_server: Any) -> None:
    gateway = _gateway(split_server, POLICIES)
    response = _stream(split_server, gateway)
    assert response.status_code == 200
    events = sse_events(response.text)
    # The events before the secret went out; the one holding its first characters never did.
    assert _text_of(response.text) == "Here it is: "
    assert events[-1] == (
        "error",
        '{"error":{"code":2030,"message":"Response content blocked due to DLP policy violations"}}',
    )
    assert "[DONE]" not in response.text and "sk" not in _text_of(response.text)
    row = split_server.db().wait_gateway(gateway)[0]
    assert row["status_code"] == 200 and not row["success"] and row["error"].startswith("2030")
    assert (
        b"[REDACTED:api_keys.openai]" not in row["response_body"]
        or SECRET.encode() not in row["response_body"]
    )
    assert b"sk" not in row["response_body"].replace(b"[REDACTED", b"")


def test_a_secret_before_anything_was_sent_is_the_plain_2030_answer(split_server: Any) -> None:
    gateway = _gateway(split_server, POLICIES)
    response = _stream(split_server, gateway, {"x-first": "1"})
    assert response.status_code == 400
    assert response.json()["error"][0]["code"] == 2030
    assert json.loads(response.headers["cf-aig-dlp"])["action"] == "BLOCK"


def test_flagged_streams_arrive_whole_and_clean_ones_unmarked(split_server: Any) -> None:
    gateway = _gateway(split_server, POLICIES)
    flag_only = {"enabled": True, "policies": [{**POLICIES["policies"][0], "action": "FLAG"}]}
    flagged = _gateway(split_server, flag_only)
    flagged_response = _stream(split_server, flagged)
    text = _text_of(flagged_response.text)
    assert SECRET in text  # FLAG: the stream is relayed whole, in order
    clean = _stream(split_server, gateway, {"x-clean": "1"})
    assert clean.status_code == 200 and "cf-aig-dlp" not in clean.headers
    row = split_server.db().wait_gateway(flagged)[0]
    assert SECRET.encode() not in row["response_body"] and row["dlp_action"] == "FLAG"
