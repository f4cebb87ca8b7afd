"""DLP in dynamic routes (dlp.md §4): the client's request is scanned once, before the walk — a
BLOCK ends the route with 2029 before any element (nothing reaches a provider, one `dynamic/…`
row with the findings); a FLAG sends `cf-aig-dlp` and every element's stored request is redacted;
a response BLOCK is final (2030), its `fallback` is not taken. Driven with the openai SDK over
the compat endpoint; the fake provider proves what was called."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.dlp.test_dlp_gateway import POLICIES, SECRET  # keys block, e-mail addresses flag
from tests.routing.conftest import END, model, new_route, start
from tests.support.fake_upstream import FakeUpstream
from tests.support.management import Mgmt

EMAIL = "jane.doe@example.com"
# m1 answers; when it fails, m2 would.
FALLBACK_ROUTE = [
    start("m1"),
    model("m1", "openai", "gpt-4o-mini", fallback="m2"),
    model("m2", "openai", "gpt-4o"),
    END,
]


@pytest.fixture
def dlp_gw(mgmt: Mgmt, gw: str) -> str:
    mgmt.ok("PUT", mgmt.gw_path(gw), json={"dlp": POLICIES})
    new_route(mgmt, gw, FALLBACK_ROUTE)
    return gw


def ask(sdk: openai.OpenAI, text: str, **headers: str) -> Any:
    return sdk.chat.completions.with_raw_response.create(
        model="dynamic/r", messages=[{"role": "user", "content": text}], extra_headers=headers
    )


def test_a_blocked_prompt_ends_the_route_before_any_element(
    mgmt: Mgmt, dlp_gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(sdk, f"my key is {SECRET}")
    assert json.loads(caught.value.response.headers["cf-aig-dlp"])["action"] == "BLOCK"
    assert "2029" in caught.value.response.text
    assert upstream.count() == 0
    (row,) = mgmt.wait_logs(dlp_gw, 1)
    assert (row["model"], row["provider"], row["success"]) == ("dynamic/r", "unknown", False)
    assert row["dlp_action"] == "BLOCK"
    assert SECRET not in json.dumps(row)


def test_a_flagged_prompt_is_answered_with_the_header_and_stored_redacted(
    mgmt: Mgmt, dlp_gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    raw = ask(sdk, f"write to {EMAIL}")
    assert raw.parse().choices[0].message.content == "Hello from fake"
    assert json.loads(raw.headers["cf-aig-dlp"])["action"] == "FLAG"
    assert EMAIL in upstream.requests[0].body.decode()  # a FLAG does not change what is sent
    (row,) = mgmt.wait_logs(dlp_gw, 1)
    assert row["model"] == "gpt-4o-mini" and row["dlp_action"] == "FLAG"
    stored = mgmt.call("GET", mgmt.gw_path(dlp_gw, f"/logs/{row['id']}/request")).text
    assert EMAIL not in stored and "[REDACTED:" in stored


def test_a_blocked_answer_is_final_its_fallback_is_not_taken(
    mgmt: Mgmt, dlp_gw: str, sdk: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(sdk, "say something", **{"x-fake-text": f"here: {SECRET}"})
    assert "2030" in caught.value.response.text and SECRET not in caught.value.response.text
    assert [json.loads(r.body)["model"] for r in upstream.requests] == ["gpt-4o-mini"]  # not m2


def test_a_streamed_answer_is_held_back_and_blocked_without_any_of_the_secret(
    mgmt: Mgmt, dlp_gw: str, token: str, upstream: FakeUpstream
) -> None:
    body = {"model": "dynamic/r", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    headers = {"Authorization": f"Bearer {token}", "x-fake-text": f"the key {SECRET} ok"}
    response = mgmt.http.post(
        f"/v1/{mgmt.account}/{dlp_gw}/compat/chat/completions", json=body, headers=headers
    )
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    said = "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", []))
    assert "sk-proj" not in said and SECRET[-6:] not in said  # no piece of it went out
    assert "2030" in response.text
    assert len(upstream.requests) == 1  # final: no fallback
