"""Provider-native pass-through paths over real HTTP (protocol.md §1, providers.md): what reaches the
provider (method, path, query, body bytes, headers minus cf-aig-*) and what comes back (status,
headers, body or stream, binary bodies), and the official openai SDK pointed at the gateway."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from app.core.settings import Settings
from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.helpers import (
    ACCT,
    MESSAGES,
    ULID_RE,
    Api,
    api_client,
    error_of,
    normalize_fake,
    sse_events,
)


@pytest.fixture
def gw(api: Api) -> str:
    return api.new_gateway()


CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}

# (provider path below /v1/{acct}/{gw}/, body, upstream path at the fake)
ROUTES: list[tuple[str, dict[str, Any], str]] = [
    ("openai/chat/completions", CHAT, "/v1/chat/completions"),
    ("openai/v1/chat/completions", CHAT, "/v1/chat/completions"),
    (
        "workers-ai/@cf/meta/llama-3.1-8b-instruct",
        {"prompt": "hi there"},
        f"/client/v4/accounts/{ACCT}/ai/run/@cf/meta/llama-3.1-8b-instruct",
    ),
    (
        "anthropic/v1/messages",
        {"model": "claude-3-5-haiku-latest", "max_tokens": 10, "messages": MESSAGES},
        "/v1/messages",
    ),
    (
        "google-ai-studio/v1beta/models/gemini-2.0-flash:generateContent",
        {"contents": [{"parts": [{"text": "hi"}]}]},
        "/v1beta/models/gemini-2.0-flash:generateContent",
    ),
    ("groq/chat/completions", {**CHAT, "model": "llama-3.1-8b-instant"}, "/openai/v1/chat/completions"),
    ("mistral/v1/chat/completions", {**CHAT, "model": "mistral-small-latest"}, "/v1/chat/completions"),
]


@pytest.mark.parametrize(("path", "body", "upstream_path"), ROUTES, ids=[r[0] for r in ROUTES])
def test_provider_paths(
    api: Api, gw: str, upstream: FakeUpstream, path: str, body: dict[str, Any], upstream_path: str
) -> None:
    raw = json.dumps(body).encode()
    headers = {"Authorization": "Bearer sk-provider", "Content-Type": "application/json"}
    r = api.http.post(f"/v1/{ACCT}/{gw}/{path}", content=raw, headers=headers)
    assert r.status_code == 200, r.text
    assert upstream.count() == 1
    rec = upstream.last
    assert rec.path == upstream_path
    assert rec.body == raw
    assert rec.headers["authorization"] == "Bearer sk-provider"
    assert ULID_RE.match(r.headers["cf-aig-log-id"])
    assert "cf-aig-step" not in r.headers  # only the universal endpoint has steps
    direct = httpx.post(f"{upstream.url}{upstream_path}", content=raw, headers=headers)
    assert normalize_fake(r.content) == normalize_fake(direct.content)


def test_method_query_body_and_headers_forwarded(api: Api, gw: str, upstream: FakeUpstream) -> None:
    body = b"\x00\x01binary \xff body, not JSON"
    query = "b=2&a=1&a=%20x%2By&empty=&flag"
    headers = {
        "Authorization": "Bearer sk-provider",
        "Content-Type": "application/octet-stream",
        "X-Custom-Thing": "kept",
        "OpenAI-Beta": "assistants=v2",
        "cf-aig-authorization": "Bearer gateway-token-should-not-leak",
        "cf-aig-metadata": '{"user": "u1"}',
        "cf-aig-cache-ttl": "600",
        "cf-aig-skip-cache": "true",
        "cf-aig-unknown-setting": "whatever",
        "cf-skip-cache": "true",
    }
    r = api.http.request(
        "PUT", f"/v1/{ACCT}/{gw}/openai/some/echo/path?{query}", content=body, headers=headers
    )
    assert r.status_code == 200, r.text
    rec = upstream.last
    assert rec.method == "PUT"
    assert rec.path == "/v1/some/echo/path"
    assert rec.query == query
    assert rec.body == body
    assert rec.headers["authorization"] == "Bearer sk-provider"
    assert rec.headers["content-type"] == "application/octet-stream"
    assert rec.headers["x-custom-thing"] == "kept"
    assert rec.headers["openai-beta"] == "assistants=v2"
    assert rec.headers["content-length"] == str(len(body))
    assert rec.headers["host"] == upstream.url.removeprefix("http://")
    assert not [name for name in rec.headers if name.startswith("cf-aig") or name == "cf-skip-cache"]
    assert "gateway-token-should-not-leak" not in json.dumps(rec.headers)
    echoed = r.json()  # the fake's echo handler reports what it received
    assert echoed["method"] == "PUT"
    assert echoed["query"] == query


def test_upstream_cookies_never_reach_another_request(
    gateway_settings: Settings, gateway_factory: Callable[[Settings], GatewayServer], upstream: FakeUpstream
) -> None:
    """The upstream client keeps no cookie jar: a provider's Set-Cookie to one tenant's request
    goes back to that client only, never into a later request (of any tenant) to that provider.
    The provider is addressed by a host name: cookie jars refuse cookies from bare IP addresses."""
    by_name = upstream.url.replace("127.0.0.1", "localhost")
    settings = gateway_settings.model_copy(update={"upstream_overrides": upstream_overrides_for(by_name)})
    with api_client(gateway_factory(settings)) as api:
        first, second = api.new_gateway(), api.new_gateway()
        answer = api.http.get(
            f"/v1/{ACCT}/{first}/openai/cookies/echo",
            headers={"x-fake-set-cookie": "tenant=a-secret; Path=/"},
        )
        assert answer.status_code == 200
        assert answer.headers["set-cookie"] == "tenant=a-secret; Path=/"  # relayed to its own client
        assert upstream.last.headers["host"].startswith("localhost:")
        for gateway in (second, first):
            api.http.cookies.clear()  # the test's own client must not send it back either
            assert api.http.get(f"/v1/{ACCT}/{gateway}/openai/cookies/echo").status_code == 200
            assert "cookie" not in upstream.last.headers


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", "POST"])
def test_methods(api: Api, gw: str, upstream: FakeUpstream, method: str) -> None:
    r = api.http.request(method, f"/v1/{ACCT}/{gw}/openai/files/file-123?x=1")
    assert r.status_code == 200, r.text
    assert upstream.last.method == method
    assert upstream.last.path == "/v1/files/file-123"
    assert upstream.last.query == "x=1"


def test_head_request(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.http.head(f"/v1/{ACCT}/{gw}/openai/files/file-1", headers={"x-fake-status": "404"})
    assert r.status_code == 404
    assert r.content == b""
    assert upstream.last.method == "HEAD"


def test_get_models(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.http.get(f"/v1/{ACCT}/{gw}/openai/models", headers={"Authorization": "Bearer sk-x"})
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]][:2] == ["gpt-4o-mini", "gpt-4o"]
    assert upstream.last.method == "GET"


def test_response_status_headers_and_body_passed_back(api: Api, gw: str, upstream: FakeUpstream) -> None:
    headers = {"Authorization": "Bearer sk-x", "x-fake-status": "404", "x-fake-retry-after": "7"}
    r = api.http.post(f"/v1/{ACCT}/{gw}/openai/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 404
    assert r.headers["retry-after"] == "7"
    assert r.headers["x-request-id"] == "req_fake1"
    assert r.headers["x-fake-seq"] == "1"
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "model_not_found"  # the provider's own error, not rewrapped
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=CHAT, headers=headers)
    assert r.content == direct.content
    assert int(r.headers["content-length"]) == len(r.content)


@pytest.mark.parametrize("size", [0, 1, 100_000, 1_000_003])
def test_binary_response_byte_exact(api: Api, gw: str, upstream: FakeUpstream, size: int) -> None:
    r = api.http.get(
        f"/v1/{ACCT}/{gw}/elevenlabs/v1/text-to-speech/binary", headers={"x-fake-bytes": str(size)}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == bytes(i % 256 for i in range(size))
    assert upstream.last.path == "/v1/text-to-speech/binary"


def test_sse_stream_passthrough(api: Api, gw: str, upstream: FakeUpstream) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with api.http.stream("POST", f"/v1/{ACCT}/{gw}/openai/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        raw = b"".join(r.iter_raw())
    direct = httpx.post(f"{upstream.url}/v1/chat/completions", json=body)
    assert normalize_fake(raw) == normalize_fake(direct.content)
    assert sse_events(raw)[-1] == (None, "[DONE]")


def test_google_json_array_stream_passthrough(api: Api, gw: str, upstream: FakeUpstream) -> None:
    """Without alt=sse, Google streams one JSON array; it comes back whole and unchanged."""
    path = "v1beta/models/gemini-2.0-flash:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    r = api.http.post(f"/v1/{ACCT}/{gw}/google-ai-studio/{path}", json=body, headers={"x-fake-text": "a b c"})
    assert r.status_code == 200
    direct = httpx.post(f"{upstream.url}/{path}", json=body, headers={"x-fake-text": "a b c"})
    assert normalize_fake(r.content) == normalize_fake(direct.content)
    assert len(r.json()) == 3


def test_unknown_provider_is_2008(api: Api, gw: str, upstream: FakeUpstream) -> None:
    r = api.http.post(f"/v1/{ACCT}/{gw}/not-a-provider/chat/completions", json=CHAT)
    assert "not-a-provider" in error_of(r, 400, 2008)
    r = api.http.post(f"/v1/{ACCT}/{gw}/Bad_Slug!/chat/completions", json=CHAT)
    assert r.status_code == 400
    assert upstream.count() == 0


# ---- the official openai SDK -------------------------------------------------------------------------


SDK_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "say hello please"}]


@pytest.fixture
def sdk(api: Api, gw: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{api.url}/v1/{ACCT}/{gw}/openai", api_key="sk-test", max_retries=0)
    yield client
    client.close()


def test_openai_sdk_chat(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=SDK_MESSAGES)
    assert completion.choices[0].message.content == "Hello from fake"
    assert completion.usage is not None and completion.usage.prompt_tokens == 3
    assert upstream.last.headers["authorization"] == "Bearer sk-test"
    assert upstream.last.path == "/v1/chat/completions"


def test_openai_sdk_stream(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=SDK_MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-text": "one two three four"},
    )
    pieces: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == "one two three four"
    assert usage is not None and usage.completion_tokens == 4


def test_openai_sdk_raw_response_headers_and_errors(sdk: openai.OpenAI, upstream: FakeUpstream) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=SDK_MESSAGES,
        extra_headers={"cf-aig-event-id": "sdk-event"},
    )
    assert raw.headers["cf-aig-event-id"] == "sdk-event"
    assert ULID_RE.match(raw.headers["cf-aig-log-id"])
    assert raw.parse().choices[0].message.content == "Hello from fake"
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=SDK_MESSAGES,
            extra_headers={"x-fake-status": "429"},
        )
    assert caught.value.status_code == 429


def test_openai_sdk_embeddings_and_models(sdk: openai.OpenAI) -> None:
    embedding = sdk.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert len(embedding.data) == 2
    assert [m.id for m in sdk.models.list()][:1] == ["gpt-4o-mini"]
