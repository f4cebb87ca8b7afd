"""One step's upstream call: attempts, backoff, `Retry-After`, and the first-byte timeout
(protocol.md §2). Returns the response with its headers read and its body not yet consumed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from app.upstream.client import UpstreamClient, UpstreamResponse
from app.upstream.errors import (
    DestinationRefused,
    InvalidUpstreamRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)

MAX_RETRY_AFTER_MS = 5000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 1
    delay_ms: int = 0
    backoff: str = "constant"
    first_byte_timeout_s: float | None = None  # None: only the server's absolute limit applies
    final_attempt_uncut: bool = False  # the last attempt of the last step has no first-byte limit

    def delay_before(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 = the second attempt)."""
        if self.backoff == "linear":
            return self.delay_ms * retry / 1000
        if self.backoff == "exponential":
            return self.delay_ms * 2 ** (retry - 1) / 1000
        return self.delay_ms / 1000


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after_s(response: UpstreamResponse) -> float:
    if response.status_code not in (429, 503):
        return 0.0
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:  # RFC 9110 also allows an HTTP date
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return 0.0
    return max(0.0, min(seconds * 1000, MAX_RETRY_AFTER_MS)) / 1000


async def _send(client: UpstreamClient, request: httpx.Request, timeout_s: float | None) -> UpstreamResponse:
    if timeout_s is None:
        return await client.send(request)
    async with asyncio.timeout(timeout_s):
        return await client.send(request)


async def send_with_retries(
    client: UpstreamClient, request: httpx.Request, policy: RetryPolicy
) -> tuple[UpstreamResponse, int]:
    """(response, attempts used). Retries network errors, timeouts, 429 and 5xx (only as many
    attempts as the client asked for: a request that reached the network is never resent on its
    own); the last response is returned whatever its status. When no attempt answered, raises the
    last attempt's failure: `UpstreamTimeout` (before the first byte) or `UpstreamUnreachable`;
    a request that cannot be sent at all raises at once."""
    failure: UpstreamError | None = None
    for attempt in range(1, policy.max_attempts + 1):
        pause = 0.0
        try:
            uncut = policy.final_attempt_uncut and attempt == policy.max_attempts
            response = await _send(client, request, None if uncut else policy.first_byte_timeout_s)
        except (TimeoutError, UpstreamTimeout) as exc:
            failure = UpstreamTimeout(f"upstream timed out before the first byte{_detail(exc)}")
        except (InvalidUpstreamRequest, DestinationRefused):
            raise  # the request itself is at fault: no attempt would go differently
        except UpstreamError as exc:
            failure = UpstreamUnreachable(f"upstream unreachable: {exc}")
        else:
            if attempt == policy.max_attempts or not is_retryable(response.status_code):
                return response, attempt
            pause = _retry_after_s(response)
            await response.aclose()
            failure = None
        if attempt < policy.max_attempts:
            await asyncio.sleep(max(policy.delay_before(attempt), pause))
    assert failure is not None
    raise failure


def _detail(exc: BaseException) -> str:
    """A limit's name, when a limit was what timed out (e.g. the account's connection bound)."""
    message = str(exc)
    return f" ({message})" if message.startswith("AIGW_") else ""
