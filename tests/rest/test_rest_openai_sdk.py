"""The official `openai` SDK with `base_url=…/client/v4/accounts/{acct}/ai/v1` against a gateway
and the fake provider: chat (every translated provider, streamed with usage), embeddings,
Responses and the model list."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.rest.support import PROVIDER_KEY, Rest, new_rest, sent_credentials
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import FAKE_TEXT, MESSAGES, ULID_RE, Api

# REST model name → (provider slug, upstream model, path the fake must see, credential header)
CHAT_MODELS = {
    "openai/gpt-4o-mini": ("openai", "gpt-4o-mini", "/v1/chat/completions", "authorization"),
    "anthropic/claude-3-5-haiku-latest": (
        "anthropic", "claude-3-5-haiku-latest", "/v1/messages", "x-api-key",
    ),
    "google/gemini-2.0-flash": (
        "google-ai-studio", "gemini-2.0-flash", "/v1beta/models/gemini-2.0-flash:generateContent",
        "x-goog-api-key",
    ),
    "@cf/meta/llama-3.1-8b-instruct": (
        "workers-ai", "@cf/meta/llama-3.1-8b-instruct",
        "/client/v4/accounts/acct/ai/run/@cf/meta/llama-3.1-8b-instruct", "authorization",
    ),
    "xai/grok-3": ("grok", "grok-3", "/v1/chat/completions", "authorization"),
}  # fmt: skip


@pytest.fixture
def rest(api: Api, upstream: FakeUpstream) -> Rest:
    return new_rest(api, upstream)


@pytest.fixture
def client(rest: Rest) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(
        api_key=rest.token, base_url=rest.base, max_retries=0,
        default_headers={"cf-aig-gateway-id": rest.gateway_id, "cf-aig-provider-key": PROVIDER_KEY},
    )  # fmt: skip
    yield sdk
    sdk.close()


@pytest.mark.parametrize("model", list(CHAT_MODELS))
def test_chat_completions_for_every_provider(
    client: openai.OpenAI, rest: Rest, upstream: FakeUpstream, model: str
) -> None:
    slug, upstream_model, path, credential = CHAT_MODELS[model]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].message.content == FAKE_TEXT
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert raw.headers["cf-aig-provider"] == slug and raw.headers["cf-aig-model"] == upstream_model
    assert ULID_RE.match(raw.headers["cf-aig-request-id"])
    assert raw.headers["cf-aig-request-id"] == raw.headers["cf-aig-log-id"]
    assert upstream.last.path.startswith(path.split(":")[0])
    sent = sent_credentials(upstream)
    # The provider key in the provider's own header; the gateway token never reached it.
    assert PROVIDER_KEY in sent[credential] and list(sent) == [credential], sent
    assert rest.token not in str(upstream.last.headers)
    row = rest.rows()[0]
    assert (row["request_type"], row["provider"], row["model"], row["status_code"]) == (
        "rest", slug, upstream_model, 200,
    )  # fmt: skip
    assert PROVIDER_KEY not in str(row) and rest.token not in str(row)


@pytest.mark.parametrize(
    "model", ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "google/gemini-2.0-flash"]
)
def test_stream_with_include_usage(client: openai.OpenAI, rest: Rest, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True},  # type: ignore[arg-type]
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FAKE_TEXT
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 3
    row = rest.rows()[0]
    assert row["request_type"] == "rest" and row["success"] and row["tokens_out"] == 3


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("openai/text-embedding-3-small", "/v1/embeddings"),
        ("@cf/baai/bge-small-en-v1.5", "/client/v4/accounts/acct/ai/v1/embeddings"),
    ],
)
def test_embeddings(client: openai.OpenAI, upstream: FakeUpstream, rest: Rest, model: str, path: str) -> None:
    result = client.embeddings.create(model=model, input=["one", "two"])
    assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) == 8
    assert upstream.last.path == path
    assert upstream.last.json()["model"] == model.removeprefix("openai/")
    assert rest.rows()[0]["request_type"] == "rest"


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("openai/gpt-4o-mini", "/v1/responses"),
        ("@cf/openai/gpt-oss-20b", "/client/v4/accounts/acct/ai/v1/responses"),
    ],
)
def test_responses(client: openai.OpenAI, upstream: FakeUpstream, model: str, path: str) -> None:
    response = client.responses.create(model=model, input="say hello please", instructions="be brief")
    assert response.output_text == FAKE_TEXT
    assert upstream.last.path == path
    assert upstream.last.json()["model"] == model.removeprefix("openai/")
    with client.responses.stream(model=model, input="say hello please") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == FAKE_TEXT and final.output_text == FAKE_TEXT


def test_responses_refused_for_a_provider_without_them(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic/claude-3-5-haiku-latest", input="hi")
    assert caught.value.body is not None
    assert caught.value.response.json()["errors"][0]["code"] == 2008
    assert upstream.count() == 0


def test_model_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"} <= ids
    assert any(i.startswith("@cf/") for i in ids)
