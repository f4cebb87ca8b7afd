"""DLP on the compat and REST chat-completions surfaces: the response is checked as the client
receives it, translated to OpenAI format (dlp.md §3), streamed or not, and the provider's body the
log keeps is redacted.

Two upstreams: the fake provider (an Anthropic answer carrying a secret), and a small one of this
module whose answers split a secret between two text fields of the provider's format. The
translation joins those fields into the one message the client reads, so only a check of the
translated answer finds the secret there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dlp.test_dlp_gateway import POLICIES, SECRET
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, Api, api_client, openai_step, running_gateway, sse_events
from tests.support.server_thread import Receive, Scope, Send, ServerThread

CLAUDE = "anthropic/claude-3-5-haiku-latest"
GEMINI = "google-ai-studio/gemini-2.0-flash"
FLAG_ONLY = {
    "enabled": True,
    "policies": [{**POLICIES["policies"][0], "action": "FLAG"}, POLICIES["policies"][1]],
}
# SECRET cut so that neither piece is a key by itself (`sk-proj-` wants 20 more characters).
HEAD, TAIL = SECRET[:18], SECRET[18:]
PAD = "padding words " * 30  # over the 256 characters of the hold-back: sent before the secret


# ---- an upstream whose answers split text between fields ---------------------------------------


async def _sse(send: Send, events: list[bytes]) -> None:
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for event in events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _event(data: Any, name: str | None = None) -> bytes:
    return (f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n"


def _anthropic(pieces: list[str], stream: bool) -> bytes | list[bytes]:
    usage = {"input_tokens": 3, "output_tokens": 5}
    if not stream:
        content = [{"type": "text", "text": piece} for piece in pieces]  # one text block a piece
        answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                  "content": content, "stop_reason": "end_turn", "usage": usage}  # fmt: skip
        return json.dumps(answer).encode()
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": [],
               "usage": usage}  # fmt: skip
    events = [_event({"type": "message_start", "message": message}, "message_start")]
    for piece in pieces:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(_event(delta, "content_block_delta"))
    events.append(_event({"type": "message_stop"}, "message_stop"))
    return events


def _google(events: list[list[str]]) -> list[bytes]:
    """One SSE event per list, its strings the text parts of one candidate."""
    contents = [{"role": "model", "parts": [{"text": text} for text in parts]} for parts in events]
    return [_event({"candidates": [{"index": 0, "content": content}]}) for content in contents]


async def split_fields_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """Anthropic `v1/messages` answers the text blocks of `x-pieces` (a JSON list); Google's
    stream answers the events of `x-events` (a JSON list of lists of text parts)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    path: str = scope["path"]
    if path.endswith("/v1/messages"):
        answer = _anthropic(json.loads(headers["x-pieces"]), bool(json.loads(body).get("stream")))
        if isinstance(answer, list):
            await _sse(send, answer)
            return
        json_type = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": json_type})
        await send({"type": "http.response.body", "body": answer})
        return
    assert path.endswith(":streamGenerateContent"), path
    await _sse(send, _google(json.loads(headers["x-events"])))


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Api]:
    with (
        running_gateway(tmp_path_factory.mktemp("dlp-compat"), fake_upstream.url) as server,
        api_client(server) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def split_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    upstream = ServerThread(split_fields_upstream, name="split-fields-upstream").start()
    try:
        with (
            running_gateway(tmp_path_factory.mktemp("dlp-compat-split"), upstream.url) as server,
            api_client(server) as client,
        ):
            yield client
    finally:
        upstream.stop()


def _compat(
    api: Api, gateway: str, model: str, headers: dict[str, str], *, stream: bool = False, rest: bool = False
) -> Any:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "go"}]}
    if stream:
        body["stream"] = True
    sent = {"Authorization": "Bearer sk-test", **headers}
    if not rest:
        return api.http.post(f"/v1/{ACCT}/{gateway}/compat/chat/completions", json=body, headers=sent)
    token = api.new_token(gateways=[gateway])["value"]
    rest_headers = {**headers, "Authorization": f"Bearer {token}", "cf-aig-gateway-id": gateway,
                    "cf-aig-provider-key": "sk-test"}  # fmt: skip
    path = f"/client/v4/accounts/{ACCT}/ai/v1/chat/completions"
    return api.http.post(path, json=body, headers=rest_headers)


def _finding(response: Any) -> tuple[str, str, list[str]]:
    header = json.loads(response.headers["cf-aig-dlp"])
    finding = header["findings"][-1]
    return header["action"], finding["check"], finding["profile"]["entry_ids"]


def _chunks_text(body: str) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for name, data in sse_events(body)
        if name is None and data != "[DONE]"
        for choice in json.loads(data)["choices"]
    )


def _assert_blocked_mid_stream(body: str) -> None:
    events = sse_events(body)
    assert events[-1] == (
        "error",
        '{"error":{"code":2030,"message":"Response content blocked due to DLP policy violations"}}',
    )
    assert "[DONE]" not in body
    sent = _chunks_text(body)
    assert sent.startswith("padding") and "sk-" not in sent and HEAD[3:] not in sent


def _stored_response(api: Api, gateway: str) -> bytes:
    row = api.db().wait_gateway(gateway)[0]
    body: bytes = row["response_body"]
    return body


# ---- the fake provider: an Anthropic answer carrying a secret ------------------------------------


@pytest.mark.parametrize("rest", [False, True], ids=["compat", "rest"])
def test_an_anthropic_answer_with_a_secret_is_2030(api: Api, rest: bool) -> None:
    gateway = api.new_gateway(dlp=POLICIES)
    response = _compat(api, gateway, CLAUDE, {"x-fake-text": f"the key is {SECRET}"}, rest=rest)
    assert response.status_code == 400, response.text
    codes = [e["code"] for e in response.json().get("errors") or response.json().get("error")]
    assert codes == [2030]
    assert _finding(response) == ("BLOCK", "RESPONSE", ["api_keys.openai"])
    stored = _stored_response(api, gateway)
    assert SECRET.encode() not in stored and b"[REDACTED:api_keys.openai]" in stored


def test_a_flagged_anthropic_answer_reaches_the_client_whole_and_is_stored_redacted(api: Api) -> None:
    gateway = api.new_gateway(dlp=FLAG_ONLY)
    response = _compat(api, gateway, CLAUDE, {"x-fake-text": f"the key is {SECRET}"})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == f"the key is {SECRET}"
    assert _finding(response) == ("FLAG", "RESPONSE", ["api_keys.openai"])
    stored = _stored_response(api, gateway)
    assert SECRET.encode() not in stored and b"[REDACTED:api_keys.openai]" in stored


def test_an_anthropic_stream_with_a_secret_ends_with_2030_and_nothing_of_it(api: Api) -> None:
    gateway = api.new_gateway(dlp=POLICIES)
    response = _compat(api, gateway, CLAUDE, {"x-fake-text": f"{PAD}{SECRET} and more"}, stream=True)
    assert response.status_code == 200
    _assert_blocked_mid_stream(response.text)
    row = api.db().wait_gateway(gateway)[0]
    assert not row["success"] and row["error"].startswith("2030")
    assert SECRET.encode() not in row["response_body"]


def test_an_anthropic_stream_blocked_before_anything_went_out_is_the_plain_2030(api: Api) -> None:
    gateway = api.new_gateway(dlp=POLICIES)
    response = _compat(api, gateway, CLAUDE, {"x-fake-text": f"the key is {SECRET}"}, stream=True)
    assert response.status_code == 400
    assert _finding(response) == ("BLOCK", "RESPONSE", ["api_keys.openai"])


def test_a_flagged_anthropic_stream_arrives_whole(api: Api) -> None:
    gateway = api.new_gateway(dlp=FLAG_ONLY)
    response = _compat(api, gateway, CLAUDE, {"x-fake-text": f"the key is {SECRET} ok"}, stream=True)
    assert response.status_code == 200
    assert _finding(response) == ("FLAG", "RESPONSE", ["api_keys.openai"])
    assert _chunks_text(response.text) == f"the key is {SECRET} ok"
    assert sse_events(response.text)[-1] == (None, "[DONE]")
    stored = _stored_response(api, gateway)
    assert SECRET.encode() not in stored and b"[REDACTED:api_keys.openai]" in stored


# ---- a secret only the translated answer holds ---------------------------------------------------


@pytest.mark.parametrize("rest", [False, True], ids=["compat", "rest"])
def test_a_secret_split_between_two_text_blocks_is_found_in_the_message_the_client_reads(
    split_api: Api, rest: bool
) -> None:
    gateway = split_api.new_gateway(dlp=POLICIES)
    pieces = json.dumps([f"the key is {HEAD}", TAIL])
    response = _compat(split_api, gateway, CLAUDE, {"x-pieces": pieces}, rest=rest)
    assert response.status_code == 400, response.text
    assert _finding(response) == ("BLOCK", "RESPONSE", ["api_keys.openai"])


def test_a_flagged_split_secret_leaves_no_piece_in_the_stored_body(split_api: Api) -> None:
    gateway = split_api.new_gateway(dlp=FLAG_ONLY)
    pieces = json.dumps([f"the key is {HEAD}", TAIL, "mail bob@example.com"])
    response = _compat(split_api, gateway, CLAUDE, {"x-pieces": pieces})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == f"the key is {SECRET}mail bob@example.com"
    stored = _stored_response(split_api, gateway)
    assert HEAD.encode() not in stored and TAIL.encode() not in stored and b"bob@" not in stored
    assert json.loads(stored)["content"][0]["text"].startswith("[REDACTED:")


def test_a_stream_event_whose_parts_join_into_a_secret_is_held_back_and_blocked(split_api: Api) -> None:
    gateway = split_api.new_gateway(dlp=POLICIES)
    events = json.dumps([[PAD], [PAD], [f"the key is {HEAD}", TAIL], [" and the rest"]])
    response = _compat(split_api, gateway, GEMINI, {"x-events": events}, stream=True)
    assert response.status_code == 200
    _assert_blocked_mid_stream(response.text)


def test_a_flagged_split_stream_is_relayed_whole_and_logged_without_the_secret(split_api: Api) -> None:
    gateway = split_api.new_gateway(dlp=FLAG_ONLY)
    events = json.dumps([["hello "], [f"the key is {HEAD}", TAIL], [" and the rest"]])
    response = _compat(split_api, gateway, GEMINI, {"x-events": events}, stream=True)
    assert response.status_code == 200
    assert _finding(response) == ("FLAG", "RESPONSE", ["api_keys.openai"])
    assert _chunks_text(response.text) == f"hello the key is {SECRET} and the rest"
    stored = _stored_response(split_api, gateway)
    parts = [
        [part["text"] for part in json.loads(data)["candidates"][0]["content"]["parts"]]
        for _, data in sse_events(stored)
    ]
    # The provider's event that held the secret: no character of it kept (its text is not the
    # client's, so the match has no place in it); the others as they came.
    assert parts == [["hello "], ["[REDACTED:api_keys.openai]"] * 2, [" and the rest"]]


# ---- cache hits: no response check, and the stored body of the hit redacted as the miss's was ----


@pytest.fixture(scope="module")
def redis_api(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream, redis_url: str
) -> Iterator[Api]:
    """The cache in Redis (entries are apart by gateway id: nothing is flushed)."""
    with (
        running_gateway(
            tmp_path_factory.mktemp("dlp-redis"), fake_upstream.url, redis_url=redis_url
        ) as server,
        api_client(server) as client,
    ):
        yield client


@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
@pytest.mark.parametrize("model", ["native", CLAUDE], ids=["native", "compat"])
@pytest.mark.parametrize("backend", ["api", "redis_api"], ids=["memory", "redis"])
def test_the_hit_of_a_flagged_answer_stores_it_redacted(
    request: pytest.FixtureRequest, backend: str, model: str, stream: bool
) -> None:
    api: Api = request.getfixturevalue(backend)
    gateway = api.new_gateway(dlp=FLAG_ONLY, cache_ttl=60)
    text = {"x-fake-text": f"the key is {SECRET} {gateway}"}
    if model == "native":
        step = openai_step(text, stream=stream)
        responses = [api.universal(gateway, step) for _ in range(2)]
    else:
        responses = [_compat(api, gateway, model, text, stream=stream) for _ in range(2)]
    miss, hit = responses
    assert (miss.headers["cf-aig-cache-status"], hit.headers["cf-aig-cache-status"]) == ("MISS", "HIT")
    assert SECRET in hit.text  # FLAG: the client gets the answer, from the cache too
    assert "cf-aig-dlp" in miss.headers and "cf-aig-dlp" not in hit.headers  # no check on hits
    rows = api.db().wait_gateway(gateway, 2)
    assert sorted(row["cached"] for row in rows) == [False, True]
    for row in rows:
        assert SECRET.encode() not in row["response_body"], row["cached"]
        assert b"[REDACTED:api_keys.openai]" in row["response_body"]
    hit_row = next(row for row in rows if row["cached"])
    miss_row = next(row for row in rows if not row["cached"])
    assert hit_row["response_size"] == miss_row["response_size"]


def test_a_hit_keeps_the_redacted_stream_even_when_the_miss_kept_no_payload(api: Api) -> None:
    gateway = api.new_gateway(dlp=FLAG_ONLY, cache_ttl=60)
    step = openai_step({"x-fake-text": f"the key is {SECRET} {gateway}"}, stream=True)
    miss = api.universal(gateway, step, headers={"cf-aig-collect-log-payload": "false"})
    hit = api.universal(gateway, step)
    assert (miss.headers["cf-aig-cache-status"], hit.headers["cf-aig-cache-status"]) == ("MISS", "HIT")
    rows = {row["cached"]: row for row in api.db().wait_gateway(gateway, 2)}
    assert rows[False]["response_body"] is None
    stored = rows[True]["response_body"]
    assert b"[REDACTED:api_keys.openai]" in stored and SECRET.encode() not in stored
    assert gateway.encode() in stored  # the rest of the answer, as the miss would have stored it
