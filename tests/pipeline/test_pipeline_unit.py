"""`Pipeline` on its own, with in-memory collaborators (gateways, providers, log sink, metrics,
cache, limiter) and the real upstream client against the fake provider server: no HTTP or
WebSocket transport, no database."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.auth.tokens import new_token
from app.core.errors import GatewayTimeout, RateLimited, Unauthorized
from app.core.metrics import Observed
from app.core.settings import Settings
from app.logs.record import LogRecord
from app.pipeline.run import Pipeline
from app.pipeline.types import GatewayRequest, Options, Step
from app.providers.base import Provider
from app.providers.catalog import get_provider
from app.services.cache.memory import MemoryCache
from app.services.config import GatewayConfig, TokenRecord
from app.services.ratelimit import MemoryRateLimiter
from app.upstream.client import UpstreamClient

ACCOUNT = "acct"


def gateway_config(gateway_id: str = "gw", **fields: Any) -> GatewayConfig:
    base = GatewayConfig(
        account_id=ACCOUNT, id=gateway_id, authentication=False, collect_logs=True, cache_ttl=0,
        rate_limiting_limit=0, rate_limiting_interval=0, rate_limiting_technique="fixed",
        retry_max_attempts=None, retry_delay=None, retry_backoff=None, log_management=None,
        log_management_strategy=None,
    )  # fmt: skip
    return dataclasses.replace(base, **fields)


class InMemoryGateways:
    def __init__(self, *gateways: GatewayConfig) -> None:
        self.gateways = {(g.account_id, g.id): g for g in gateways}
        self.tokens: dict[str, TokenRecord] = {}

    async def gateway(self, account_id: str, gateway_id: str) -> GatewayConfig | None:
        return self.gateways.get((account_id, gateway_id))

    async def ensure_default_gateway(self, account_id: str) -> GatewayConfig:
        return self.gateways.setdefault(
            (account_id, "default"), gateway_config("default", authentication=True)
        )

    async def token(self, token_id: str) -> TokenRecord | None:
        return self.tokens.get(token_id)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def add_run_token(self) -> str:
        token_id, value, token_hash = new_token()
        self.tokens[token_id] = TokenRecord(
            token_id, ACCOUNT, token_hash, frozenset({"run"}), frozenset({"*"}), None, False
        )
        return value


class CatalogProviders:
    def __init__(self, stored: dict[str, tuple[str, str]] | None = None) -> None:
        self.stored = stored or {}

    async def provider(self, account_id: str, slug: str) -> Provider:
        return get_provider(slug)

    async def stored_credential(
        self, account_id: str, gateway_id: str, provider: Provider, alias: str | None
    ) -> tuple[str, str] | None:
        return self.stored.get(provider.slug)


class ListSink:
    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def put(self, record: LogRecord) -> None:
        self.records.append(record)


class CountingMetrics:
    def __init__(self) -> None:
        self.observed: list[Observed] = []
        self.latencies: list[float] = []

    def observe(self, record: Observed) -> None:
        self.observed.append(record)

    def observe_gateway_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)


@dataclasses.dataclass
class Harness:
    pipeline: Pipeline
    gateways: InMemoryGateways
    providers: CatalogProviders
    sink: ListSink
    metrics: CountingMetrics


@pytest.fixture
async def harness(upstream: Any) -> AsyncIterator[Harness]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=None,
        upstream_overrides={"openai": f"{upstream.url}/v1", "groq": "http://127.0.0.1:9/openai/v1"},
        connect_timeout_s=1,
        upstream_timeout_s=1.5,  # the absolute limit that still cuts the last, uncut attempt
    )
    client = UpstreamClient(settings)
    gateways = InMemoryGateways(gateway_config())
    providers, sink, metrics = CatalogProviders(), ListSink(), CountingMetrics()
    pipeline = Pipeline(
        settings, client, gateways, providers, MemoryCache(1 << 20), MemoryRateLimiter(), sink, metrics
    )
    yield Harness(pipeline, gateways, providers, sink, metrics)
    await client.aclose()


def chat_step(
    provider: str = "openai", *, stream: bool = False, headers: dict[str, str] | None = None
) -> Step:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    pairs = [
        ("content-type", "application/json"),
        *(headers if headers is not None else {"authorization": "Bearer sk-test"}).items(),
    ]
    return Step(provider=provider, endpoint="chat/completions", body=orjson.dumps(body), headers=pairs)


def request(*steps: Step, gateway_id: str = "gw", **fields: Any) -> GatewayRequest:
    return GatewayRequest(ACCOUNT, gateway_id, "universal", list(steps), **fields)


async def test_a_body_is_answered_logged_and_observed(harness: Harness) -> None:
    result = await harness.pipeline.run(request(chat_step()))
    assert result.status == 200 and result.stream is None
    assert orjson.loads(result.body or b"")["choices"][0]["message"]["content"]
    assert result.meta.cache_status == "MISS" and result.meta.step == 0
    (record,) = harness.sink.records
    assert record.id == result.meta.log_id == result.meta.event_id
    assert record.success and record.status_code == 200 and record.gateway_notes is None
    assert harness.metrics.observed == [record] and len(harness.metrics.latencies) == 1


async def test_a_failed_step_falls_back_to_the_next(harness: Harness) -> None:
    result = await harness.pipeline.run(request(chat_step("groq"), chat_step()))
    assert result.status == 200 and result.meta.step == 1
    first, second = harness.sink.records
    assert (first.provider, first.success, first.step) == ("groq", False, 0)
    assert first.error is not None and first.error.startswith("upstream unreachable")
    assert (second.provider, second.success, second.step) == ("openai", True, 1)
    assert first.event_id == second.event_id == result.meta.event_id


async def test_the_second_identical_request_is_a_cache_hit(harness: Harness) -> None:
    harness.gateways.gateways[(ACCOUNT, "gw")] = gateway_config(cache_ttl=60)
    first = await harness.pipeline.run(request(chat_step()))
    second = await harness.pipeline.run(request(chat_step()))
    assert (first.meta.cache_status, second.meta.cache_status) == ("MISS", "HIT")
    assert second.body == first.body
    assert [r.cached for r in harness.sink.records] == [False, True]


async def test_a_stream_is_logged_once_it_ends(harness: Harness) -> None:
    result = await harness.pipeline.run(request(chat_step(stream=True)))
    assert result.stream is not None and harness.sink.records == []  # not finished yet
    body = b"".join([chunk async for chunk in result.stream])
    await result.stream.aclose()
    assert b"data: [DONE]" in body
    (record,) = harness.sink.records
    assert record.success and record.usage_known and record.tokens_out


async def test_the_rate_limit_refuses_with_context_and_logs(harness: Harness) -> None:
    harness.gateways.gateways[(ACCOUNT, "gw")] = gateway_config(
        rate_limiting_limit=1, rate_limiting_interval=60
    )
    await harness.pipeline.run(request(chat_step()))
    with pytest.raises(RateLimited) as refused:
        await harness.pipeline.run(request(chat_step()))
    error = refused.value
    assert error.retry_after_s is not None and 0 < error.retry_after_s <= 60
    assert error.context is not None and error.context.step == 0
    refused_record = harness.sink.records[-1]
    assert refused_record.id == error.context.log_id and refused_record.status_code == 429


async def test_an_authenticated_gateway_needs_a_run_token_and_gets_the_stored_key(
    harness: Harness, upstream: Any
) -> None:
    harness.gateways.gateways[(ACCOUNT, "gw")] = gateway_config(authentication=True)
    harness.providers.stored["openai"] = ("authorization", "Bearer sk-stored")
    with pytest.raises(Unauthorized):
        await harness.pipeline.run(request(chat_step(headers={})))
    token = harness.gateways.add_run_token()
    result = await harness.pipeline.run(request(chat_step(headers={}), options=Options(authorization=token)))
    assert result.status == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-stored"


async def test_a_timeout_on_the_last_step_is_2012_with_its_ids(harness: Harness) -> None:
    step = chat_step(headers={"authorization": "Bearer sk-test", "x-fake-delay-ms": "2000"})
    step.options = Options(request_timeout_ms=100, max_attempts=2)
    two_steps = request(dataclasses.replace(step), step)
    with pytest.raises(GatewayTimeout) as timed_out:
        await harness.pipeline.run(two_steps)
    context = timed_out.value.context
    assert context is not None and context.step == 1
    assert [r.error for r in harness.sink.records] == ["upstream timed out before the first byte"] * 2
    assert harness.sink.records[1].id == context.log_id
