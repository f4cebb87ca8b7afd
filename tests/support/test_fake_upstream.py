"""The fake provider server behaves like the real providers, and its x-fake-* controls work."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.fake_providers import count_words, split_words
from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.server_thread import ServerThread

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello please"}]


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url, timeout=5) as c:
        yield c


def sse_events(raw: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; accepts LF and CRLF line ends."""
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        events.append((name, "\n".join(data)))
    return events


# ---- helpers ---------------------------------------------------------------------------------------


def test_split_words_and_count_words() -> None:
    assert split_words("Hello from fake") == ["Hello", " from", " fake"]
    assert "".join(split_words("  a  b\n c ")) == "  a  b\n c "
    assert split_words("") == []
    assert count_words(MESSAGES) == 5
    assert (
        count_words([{"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "image"}]}]) == 2
    )
    assert count_words([{"role": "user", "parts": [{"text": "x y z"}]}]) == 3


def test_upstream_overrides_cover_providers() -> None:
    overrides = upstream_overrides_for("http://h:1/")
    assert overrides["openai"] == "http://h:1/v1"
    assert overrides["workers_ai"] == "http://h:1/client/v4/accounts/{account_id}/ai/run"
    assert overrides["groq"] == "http://h:1/openai/v1"
    assert overrides["anthropic"] == overrides["google_ai_studio"] == overrides["deepseek"] == "http://h:1"
    assert all("-" not in key and key == key.lower() for key in overrides)


# ---- OpenAI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/openai/v1/chat/completions", "/chat/completions"])
def test_openai_chat(client: httpx.Client, upstream: FakeUpstream, path: str) -> None:
    r = client.post(
        path, json={"model": "gpt-4o-mini", "messages": MESSAGES}, headers={"Authorization": "Bearer k"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello from fake",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}

    rec = upstream.last
    assert (rec.method, rec.path, rec.query) == ("POST", path, "")
    assert rec.headers["authorization"] == "Bearer k"
    assert rec.json()["model"] == "gpt-4o-mini"


def test_openai_chat_stream_with_usage(client: httpx.Client) -> None:
    body = {"model": "m1", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    r = client.post("/v1/chat/completions", json=body, headers={"x-fake-text": "one two three"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    events = sse_events(r.text)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"m1"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "one two three"
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) == 3
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert all(c["usage"] is None for c in chunks[:-1])


def test_openai_chat_stream_without_usage(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True})
    events = sse_events(r.text)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from fake"


def test_openai_sdk_parses_the_fake(upstream: FakeUpstream) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url=upstream.url + "/v1", api_key="sk-test", max_retries=0)
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from fake"
    assert completion.usage is not None and completion.usage.total_tokens == 8
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == "Hello from fake"
    assert usage is not None and usage.completion_tokens == 3
    sdk.close()


def test_models_embeddings_echo_binary(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"

    emb = client.post("/v1/embeddings", json={"model": "e", "input": ["a b", "c"]}).json()
    assert [d["index"] for d in emb["data"]] == [0, 1]
    assert emb["usage"] == {"prompt_tokens": 3, "total_tokens": 3}

    echo = client.put("/anything/here?x=1&y=2", content=b"raw body", headers={"X-Custom": "V"})
    assert echo.status_code == 200
    e = echo.json()
    assert (e["method"], e["path"], e["query"], e["body"]) == ("PUT", "/anything/here", "x=1&y=2", "raw body")
    assert e["headers"]["x-custom"] == "V"

    binary = client.post("/binary", headers={"x-fake-bytes": "300000"})
    assert binary.headers["content-type"] == "application/octet-stream"
    assert len(binary.content) == 300000
    assert binary.content[:3] == b"\x00\x01\x02"


# ---- Workers AI ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/client/v4/accounts/acct1/ai/run/@cf/meta/llama-3.1-8b-instruct",
        "/ai/run/@cf/meta/llama-3.1-8b-instruct",
    ],
)
def test_workers_ai(client: httpx.Client, path: str) -> None:
    body = client.post(path, json={"messages": MESSAGES}).json()
    assert body == {
        "result": {
            "response": "Hello from fake",
            "tool_calls": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        },
        "success": True,
        "errors": [],
        "messages": [],
    }
    assert client.post(path, json={"prompt": "a b"}).json()["result"]["usage"]["prompt_tokens"] == 2


def test_workers_ai_stream(client: httpx.Client) -> None:
    r = client.post("/ai/run/@cf/meta/llama-3.1-8b-instruct", json={"prompt": "hi", "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert "".join(c["response"] for c in chunks) == "Hello from fake"
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    assert all("usage" not in c for c in chunks[:-1])


# ---- Anthropic -------------------------------------------------------------------------------------


def test_anthropic_messages(client: httpx.Client, upstream: FakeUpstream) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    req = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "system": "be brief",
        "messages": MESSAGES[1:],
    }
    body = client.post("/v1/messages", json=req, headers=headers).json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["model"] == "claude-3-5-haiku-latest"
    assert body["content"] == [{"type": "text", "text": "Hello from fake"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 3}
    assert upstream.last.headers["anthropic-version"] == "2023-06-01"
    count = client.post("/v1/messages/count_tokens", json=req).json()
    assert count == {"input_tokens": 5}


def test_anthropic_messages_stream(client: httpx.Client) -> None:
    req = {"model": "claude-x", "max_tokens": 100, "messages": MESSAGES[1:], "stream": True}
    r = client.post("/v1/messages", json=req)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    datas = [json.loads(data) for _, data in events]
    for name, data in zip(events, datas, strict=True):
        assert name[0] == data["type"]
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert datas[0]["message"]["usage"]["input_tokens"] == 3
    assert datas[0]["message"]["model"] == "claude-x"
    deltas = [d["delta"] for d in datas if d["type"] == "content_block_delta"]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == "Hello from fake"
    assert datas[-2]["usage"] == {"output_tokens": 3}
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"


# ---- Google AI Studio ------------------------------------------------------------------------------

GOOGLE_BODY = {
    "systemInstruction": {"parts": [{"text": "be brief"}]},
    "contents": [{"role": "user", "parts": [{"text": "hi there you"}]}],
}


def test_google_generate_content(client: httpx.Client) -> None:
    r = client.post("/v1beta/models/gemini-2.0-flash:generateContent", json=GOOGLE_BODY)
    body = r.json()
    cand = body["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "Hello from fake"}], "role": "model"}
    assert cand["finishReason"] == "STOP"
    assert body["usageMetadata"] == {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}
    assert body["modelVersion"] == "gemini-2.0-flash"


def test_google_stream_sse(client: httpx.Client, upstream: FakeUpstream) -> None:
    r = client.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", json=GOOGLE_BODY)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert upstream.last.query_params == {"alt": ["sse"]}
    events = sse_events(r.text)
    assert "[DONE]" not in r.text
    chunks = [json.loads(data) for _, data in events]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "Hello from fake"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 3,
        "totalTokenCount": 8,
    }


def test_google_stream_json_array(client: httpx.Client) -> None:
    r = client.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent", json=GOOGLE_BODY)
    chunks = r.json()
    assert isinstance(chunks, list) and len(chunks) == 3
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 8


# ---- controls --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "check"),
    [
        ("/v1/chat/completions", 429, lambda b: b["error"]["code"] == "rate_limit_exceeded"),
        ("/v1/chat/completions", 400, lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/chat/completions", 503, lambda b: b["error"]["type"] == "server_error"),
        ("/v1/messages", 529, lambda b: b["type"] == "error" and b["error"]["type"] == "overloaded_error"),
        ("/v1beta/models/g:generateContent", 429, lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED"),
        ("/ai/run/@cf/x", 500, lambda b: b["success"] is False and b["errors"][0]["message"]),
        ("/other", 500, lambda b: b["error"]["message"]),
    ],
)
def test_status_error_bodies(client: httpx.Client, path: str, status: int, check: Any) -> None:
    r = client.post(path, json={"stream": True}, headers={"x-fake-status": str(status)})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert "retry-after" not in r.headers
    assert check(r.json())


def test_retry_after_and_error_style(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={},
        headers={"x-fake-status": "429", "x-fake-retry-after": "2", "x-fake-error-style": "anthropic"},
    )
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_fail_times_per_key(client: httpx.Client, upstream: FakeUpstream) -> None:
    a = {"x-fake-fail-times": "2", "x-fake-fail-key": "a"}
    b = {"x-fake-fail-times": "1", "x-fake-fail-key": "b", "x-fake-status": "429"}
    assert client.post("/v1/chat/completions", json={}, headers=a).status_code == 500
    assert client.post("/v1/chat/completions", json={}, headers=b).status_code == 429
    assert client.post("/v1/chat/completions", json={}, headers=a).status_code == 500
    assert client.post("/v1/chat/completions", json={}, headers=b).status_code == 200
    assert client.post("/v1/chat/completions", json={}, headers=a).status_code == 200
    assert client.post("/v1/chat/completions", json={}, headers=a).status_code == 200
    assert upstream.count() == 6
    assert upstream.count("/chat/completions") == 6
    assert upstream.count("/v1/messages") == 0
    upstream.reset()
    assert upstream.count() == 0
    assert client.post("/v1/chat/completions", json={}, headers=a).status_code == 500


def test_seq_header(client: httpx.Client, upstream: FakeUpstream) -> None:
    first = client.post("/v1/chat/completions", json={})
    second = client.get("/x")
    assert (first.headers["x-fake-seq"], second.headers["x-fake-seq"]) == ("1", "2")
    assert [r.seq for r in upstream.requests] == [1, 2]


def test_delay_before_headers(client: httpx.Client) -> None:
    t0 = time.monotonic()
    r = client.post("/v1/chat/completions", json={}, headers={"x-fake-delay-ms": "150"})
    assert r.status_code == 200
    assert time.monotonic() - t0 >= 0.15
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json={}, headers={"x-fake-delay-ms": "400"}, timeout=0.1)


def test_chunk_delay(client: httpx.Client) -> None:
    body = {"stream": True}
    headers = {"x-fake-chunk-delay-ms": "40"}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        arrivals = []
        for _ in r.iter_lines():
            arrivals.append(time.monotonic())
    # 6 events (role, 3 words, finish, [DONE]) → 5 gaps of 40 ms
    assert arrivals[-1] - arrivals[0] >= 0.18


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"stream": True}),
        ("/v1/messages", {"stream": True}),
        ("/ai/run/@cf/m", {"stream": True}),
        ("/v1beta/models/g:streamGenerateContent?alt=sse", {}),
    ],
)
def test_cut_after_is_a_protocol_error(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    received: list[str] = []
    with (
        client.stream("POST", path, json=body, headers={"x-fake-cut-after": "2"}) as r,
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
    ):
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                received.append(line)
    assert len(received) == 2
    assert not any("[DONE]" in line or "message_stop" in line for line in received)


def test_cut_after_zero_and_non_stream(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json={"stream": True}, headers={"x-fake-cut-after": "0"})
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json={}, headers={"x-fake-cut-after": "10"})
    # The server is still fine afterwards.
    assert client.post("/v1/chat/completions", json={}).status_code == 200


def test_bad_json_is_a_provider_400(client: httpx.Client) -> None:
    r = client.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["type"] == "error"


def test_server_thread_reports_startup_failure() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "boom at startup"})

    with pytest.raises(RuntimeError, match="boom at startup"):
        ServerThread(app).start()


def test_server_thread_serves_any_app() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with ServerThread(app) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/").status_code == 204
