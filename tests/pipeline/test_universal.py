"""The universal request body (app/pipeline/universal.py)."""

from __future__ import annotations

import pytest

from app.core.errors import MalformedRequest
from app.pipeline.universal import first_event_id, steps_from_universal


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
