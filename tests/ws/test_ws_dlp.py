"""DLP on the universal WebSocket session (dlp.md §4, §6): a blocked prompt is a `universal.created`
error frame with 2029 and never reaches the provider, a response blocked mid-stream ends with
`universal.done` carrying 2030 (the text that held the match is never sent), one blocked before
anything went out is the 2030 error frame; the session keeps serving after each."""

from __future__ import annotations

from typing import Any

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import Api, LogDb, openai_step
from tests.support.ws import eid, error_response, ws_session, ws_url

# isort: split
# The session fixtures (api, token, gw, url, log), registered under those names:
from tests.conftest import GatewayServer
from tests.support.ws import api_fixture, gw_fixture, log_fixture, token_fixture, url_fixture  # noqa: F401

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz12"
DLP = {
    "enabled": True,
    "policies": [
        {"id": "block-secrets", "enabled": True, "action": "BLOCK", "check": ["REQUEST", "RESPONSE"],
         "profiles": ["api_keys"]},
        {"id": "flag-pii", "enabled": True, "action": "FLAG", "check": ["REQUEST"], "profiles": ["email"]},
    ],
}  # fmt: skip
PADDING = "pad " * 100  # 400 characters: more than the hold-back, so these go out before the secret


def _dlp_url(api: Api, server: GatewayServer) -> str:
    return ws_url(server, api.new_gateway(authentication=False, dlp=DLP))


def _prompt(text: str, **fields: Any) -> dict[str, Any]:
    step = openai_step(**fields)
    step["query"]["messages"] = [{"role": "user", "content": text}]
    return step


async def test_a_blocked_prompt_is_the_2029_frame_and_the_session_lives(
    api: Api, server: GatewayServer, token: str, log: LogDb, upstream: FakeUpstream
) -> None:
    url = _dlp_url(api, server)
    event_id = eid("dlp-req")
    async with ws_session(url, token) as session:
        event = await session.request(_prompt(f"my key is {SECRET}", eventId=event_id))
        assert len(event.frames) == 1
        message = error_response(event.created, 2029)
        assert message == "Request content blocked due to DLP policy violations"
        assert event.created["metadata"]["status"] == 400 and event.created["metadata"]["logId"]
        assert upstream.count() == 0  # never reached the provider
        flagged = await session.request(_prompt("write to bob@example.com", eventId=eid("dlp-flag")))
        assert flagged.created["metadata"]["status"] == 200, flagged.frames
        await session.assert_alive()
    assert upstream.count() == 2
    (row,) = log.wait_event(event_id)
    assert row["status_code"] == 400 and row["success"] == 0 and row["dlp_action"] == "BLOCK"
    assert SECRET.encode() not in row["request_body"]


async def test_a_response_blocked_mid_stream_ends_with_2030(
    api: Api, server: GatewayServer, token: str, log: LogDb
) -> None:
    url = _dlp_url(api, server)
    event_id = eid("dlp-stream")
    step = openai_step({"x-fake-text": f"{PADDING}the key is {SECRET} done"}, stream=True, eventId=event_id)
    async with ws_session(url, token) as session:
        event = await session.request(step)
        await session.assert_alive()
    event.assert_stream_shape()
    assert event.text and PADDING.startswith(event.text)  # some padding went out, no part of the key
    assert "sk-" not in event.text and "the key" not in event.text
    done = event.done["metadata"]
    assert done["success"] is False and done["eventId"] == event_id
    assert done["error"] == {"code": 2030, "message": "Response content blocked due to DLP policy violations"}
    assert done["logId"] == event.created["metadata"]["logId"]
    (row,) = log.wait_event(event_id)
    assert row["success"] == 0 and row["dlp_action"] == "BLOCK" and "2030" in (row["error"] or "")


async def test_a_response_blocked_before_anything_was_sent_is_the_2030_frame(
    api: Api, server: GatewayServer, token: str
) -> None:
    url = _dlp_url(api, server)
    event_id = eid("dlp-early")
    step = openai_step({"x-fake-text": f"the key is {SECRET} done"}, stream=True, eventId=event_id)
    async with ws_session(url, token) as session:
        event = await session.request(step)
        assert len(event.frames) == 1
        error_response(event.created, 2030)
        body = await session.request(
            openai_step({"x-fake-text": f"the key is {SECRET}"}, eventId=eid("dlp-body"))
        )
        error_response(body.created, 2030)
        await session.assert_alive()
