"""Retry delays of each backoff (app/pipeline/retry.py)."""

from __future__ import annotations

from app.pipeline.retry import RetryPolicy


def test_retry_delays() -> None:
    assert [RetryPolicy(5, 100, "constant").delay_before(n) for n in (1, 2, 3)] == [0.1, 0.1, 0.1]
    assert [RetryPolicy(5, 100, "linear").delay_before(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]
    assert [RetryPolicy(5, 100, "exponential").delay_before(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
