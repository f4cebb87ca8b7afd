"""Unit tests of the pure pieces of the pipeline: header options, universal bodies, SSE splitting,
usage reading, cost, cache keys, retry delays, provider URLs."""

from __future__ import annotations

import pytest

from app.core.errors import MalformedRequest, UnknownProvider
from app.core.sse import SSESplitter
from app.pipeline.options import parse_options, split_headers
from app.pipeline.retry import RetryPolicy
from app.pipeline.types import Options
from app.pipeline.universal import first_event_id, steps_from_universal
from app.providers.catalog import get_provider
from app.providers.cost import CustomCost, cost_of
from app.providers.usage import model_from_request, usage_from_body
from app.services.cache.key import cache_key
from app.services.cache.memory import MemoryCache
from app.services.cache.store import CachedResponse


def test_options_parse_every_header() -> None:
    options = parse_options(
        [
            ("cf-aig-skip-cache", "true"),
            ("cf-aig-cache-ttl", "120"),
            ("cf-aig-cache-key", "k1"),
            ("cf-aig-collect-log", "false"),
            ("cf-aig-collect-log-payload", "false"),
            ("cf-aig-metadata", '{"a": 1, "b": "x", "cf.hidden": true}'),
            ("cf-aig-event-id", "evt"),
            ("cf-aig-request-timeout", "1500"),
            ("cf-aig-max-attempts", "3"),
            ("cf-aig-retry-delay", "100"),
            ("cf-aig-backoff", "exponential"),
            ("cf-aig-custom-cost", '{"per_token_in": 0.001, "per_token_out": 0.002}'),
            ("cf-aig-byok-alias", "prod"),
            ("cf-aig-unknown", "ignored"),
        ]
    )
    assert options.skip_cache is True and options.cache_ttl == 120 and options.cache_key == "k1"
    assert options.collect_log is False and options.collect_log_payload is False
    assert options.metadata == {"a": 1, "b": "x"}
    assert options.event_id == "evt" and options.request_timeout_ms == 1500
    assert (options.max_attempts, options.retry_delay_ms, options.backoff) == (3, 100, "exponential")
    assert options.custom_cost == CustomCost(0.001, 0.002) and options.byok_alias == "prod"


def test_deprecated_aliases() -> None:
    options = parse_options([("cf-skip-cache", "true"), ("cf-cache-ttl", "600")])
    assert options.skip_cache is True and options.cache_ttl == 600


def test_metadata_keeps_five_entries() -> None:
    options = parse_options([("cf-aig-metadata", '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}')])
    assert options.metadata is not None and list(options.metadata) == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("cf-aig-cache-ttl", "abc"),
        ("cf-aig-cache-ttl", "10"),
        ("cf-aig-max-attempts", "9"),
        ("cf-aig-skip-cache", "maybe"),
        ("cf-aig-metadata", "{not json"),
        ("cf-aig-metadata", "[1, 2]"),
        ("cf-aig-backoff", "random"),
        ("cf-aig-retry-delay", "6000"),
        ("cf-aig-custom-cost", '{"per_token_in": "x"}'),
        ("cf-aig-request-timeout", "-5"),
    ],
)
def test_malformed_header_names_the_header(header: str, value: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        parse_options([(header, value)])
    assert header in caught.value.message and caught.value.code == 2010


def test_nested_metadata_ignores_the_header() -> None:
    assert parse_options([("cf-aig-metadata", '{"a": 1, "nested": {"x": 1}}')]).metadata is None


def test_split_headers_keeps_gateway_headers_out() -> None:
    options, forward = split_headers(
        [("cf-aig-authorization", "Bearer t"), ("Authorization", "Bearer sk"), ("CF-AIG-SKIP-CACHE", "true")]
    )
    assert forward == [("Authorization", "Bearer sk")]
    assert options.authorization == "Bearer t" and options.skip_cache is True


def test_options_layering() -> None:
    step = Options(max_attempts=3)
    request = Options(max_attempts=1, retry_delay_ms=50)
    merged = step.over(request)
    assert merged.max_attempts == 3 and merged.retry_delay_ms == 50


def test_universal_steps() -> None:
    steps = steps_from_universal(
        [
            {
                "provider": "openai",
                "endpoint": "/chat/completions?x=1",
                "headers": {"Authorization": "Bearer a", "cf-aig-max-attempts": "2"},
                "query": {"model": "m"},
                "config": {"requestTimeout": 500},
                "eventId": "e1",
            },
            {
                "provider": "workers-ai",
                "endpoint": "@cf/x",
                "authorization": "Bearer b",
                "query": {"prompt": "p"},
            },
        ]
    )
    first, second = steps
    assert first.endpoint == "chat/completions" and first.query_string == "x=1"
    assert first.options.max_attempts == 2 and first.options.request_timeout_ms == 500
    assert ("Content-Type", "application/json") in first.headers and first.event_id == "e1"
    assert all(not name.lower().startswith("cf-aig") for name, _ in first.headers)
    assert ("Authorization", "Bearer b") in second.headers and second.body == b'{"prompt":"p"}'


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "text",
        {"provider": "openai"},
        {"provider": 1, "endpoint": "x", "query": {}},
        {"provider": "openai", "endpoint": "x", "query": {}, "headers": []},
        {"provider": "openai", "endpoint": "x", "query": {}, "config": {"maxAttempts": 9}},
        {"provider": "openai", "endpoint": "x", "query": {}, "eventId": 5},
    ],
)
def test_universal_rejects_malformed(payload: object) -> None:
    with pytest.raises(MalformedRequest):
        steps_from_universal(payload)


def test_first_event_id_reads_broken_requests() -> None:
    assert first_event_id([{"eventId": "abc", "provider": 5}]) == "abc"
    assert first_event_id("nothing") is None


def test_sse_splitter_across_chunks() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'event: message_start\r\ndata: {"a"') == []
    events = splitter.feed(b": 1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n")
    assert [(e.event, e.data) for e in events] == [("message_start", b'{"a": 1}'), (None, b"[DONE]")]


def test_usage_every_format() -> None:
    openai = usage_from_body(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}')
    anthropic = usage_from_body(b'{"usage": {"input_tokens": 5, "output_tokens": 6}}')
    workers = usage_from_body(
        b'{"result": {"response": "x", "usage": {"prompt_tokens": 7, "completion_tokens": 8}}}'
    )
    google = usage_from_body(b'{"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 10}}')
    assert [(u.tokens_in, u.tokens_out) for u in (openai, anthropic, workers, google)] == [
        (3, 4), (5, 6), (7, 8), (9, 10)
    ]  # fmt: skip


def test_model_sources() -> None:
    assert model_from_request(b'{"model": "gpt-4o"}', "chat/completions", False) == "gpt-4o"
    assert (
        model_from_request(b"{}", "@cf/meta/llama-3.1-8b-instruct", True) == "@cf/meta/llama-3.1-8b-instruct"
    )
    assert (
        model_from_request(b"{}", "v1beta/models/gemini-2.0-flash:generateContent", True)
        == "gemini-2.0-flash"
    )


def test_cost() -> None:
    assert cost_of("openai", "gpt-4o-mini", 1000, 1000, None) == pytest.approx(
        1000 * 1.5e-07 + 1000 * 6.0e-07
    )
    assert cost_of("openai", "no-such-model", 10, 10, None) is None
    assert cost_of("openai", "no-such-model", 10, 20, CustomCost(0.5, 1.0)) == 25.0


def test_cache_key_scopes() -> None:
    common = {"provider": "openai", "method": "POST", "url": "u", "body": b"{}", "stream": False}
    a = cache_key("acct", "gw", custom_key=None, credentials=["Bearer a"], **common)  # type: ignore[arg-type]
    b = cache_key("acct", "gw", custom_key=None, credentials=["Bearer b"], **common)  # type: ignore[arg-type]
    c = cache_key("acct2", "gw", custom_key=None, credentials=["Bearer a"], **common)  # type: ignore[arg-type]
    assert len({a, b, c}) == 3 and a.startswith("acct/gw/")


async def test_memory_cache_bounds_and_expiry() -> None:
    cache = MemoryCache(max_bytes=1000)
    await cache.set("a", CachedResponse(200, (), b"x" * 600), 60)
    await cache.set("b", CachedResponse(200, (), b"y" * 600), 60)
    assert await cache.get("a") is None and await cache.get("b") is not None
    await cache.set("c", CachedResponse(200, (), b"z"), 0)
    assert await cache.get("c") is None


def test_retry_delays() -> None:
    assert [RetryPolicy(5, 100, "constant").delay_before(n) for n in (1, 2, 3)] == [0.1, 0.1, 0.1]
    assert [RetryPolicy(5, 100, "linear").delay_before(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]
    assert [RetryPolicy(5, 100, "exponential").delay_before(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]


def test_provider_urls() -> None:
    assert get_provider("openai").upstream_url("v1/chat/completions", "a", None) == (
        "https://api.openai.com/v1/chat/completions"
    )
    assert get_provider("workers-ai").upstream_url("@cf/m", "acc", None) == (
        "https://api.cloudflare.com/client/v4/accounts/acc/ai/run/@cf/m"
    )
    assert get_provider("azure-openai").upstream_url("res/dep/chat/completions?api-version=1", "a", None) == (
        "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=1"
    )
    assert get_provider("aws-bedrock").upstream_url(
        "bedrock-runtime/us-east-1/model/x/invoke", "a", None
    ) == ("https://bedrock-runtime.us-east-1.amazonaws.com/model/x/invoke")
    assert (
        get_provider("openai").upstream_url("chat/completions", "a", "http://h/v1")
        == "http://h/v1/chat/completions"
    )
    with pytest.raises(UnknownProvider):
        get_provider("nope")
