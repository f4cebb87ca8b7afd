"""`cf-aig-*` settings from headers of any origin (app/pipeline/options.py)."""

from __future__ import annotations

import pytest

from app.core.errors import MalformedRequest
from app.pipeline.options import parse_options, split_headers
from app.pipeline.types import Options
from app.providers.cost import CustomCost


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
