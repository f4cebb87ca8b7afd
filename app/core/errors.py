"""The one hierarchy of gateway-originated errors (protocol.md §8 of the spec; `docs/errors.md`).

Each error knows its wire code and HTTP status, and may carry an `ErrorContext`: which log row,
event and fallback step it belongs to, so a client can find the request in the logs. What a client
receives (an HTTP response, a WebSocket frame, the last event of a stream) is made in one place,
`app/transports/encode.py`. Errors of providers are never wrapped in these: they pass through.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """The request an error belongs to, once the pipeline has given it ids."""

    log_id: str
    event_id: str
    step: int


class GatewayError(Exception):
    code: int = 2010
    status: int = 400
    default_message: str = "Bad request"

    def __init__(self, message: str | None = None, *, context: ErrorContext | None = None) -> None:
        self.message = message or self.default_message
        self.context = context
        super().__init__(self.message)


class GatewayNotFound(GatewayError):
    code, status, default_message = 2001, 400, "Gateway not found"


class RateLimited(GatewayError):
    code, status, default_message = 2003, 429, "Rate limit exceeded"

    def __init__(
        self,
        message: str | None = None,
        *,
        context: ErrorContext | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, context=context)
        self.retry_after_s = retry_after_s  # sent as `Retry-After` (whole seconds, at least 1)


class SpendLimitExceeded(RateLimited):
    """A spend-limit rule's budget would be exceeded (spend-limits.md §5); `Retry-After` when the
    settled spend alone blocks."""

    code, status, default_message = 2045, 429, "Spend limit exceeded"


class NoProviderResponse(GatewayError):
    code, status, default_message = 2005, 502, "No response from any provider"


class UpstreamRefused(GatewayError):
    """A realtime provider refused the WebSocket handshake: its own status and body go back to the
    client as they are, like any provider answer."""

    code = 2005

    def __init__(self, status: int, body: bytes, content_type: str | None) -> None:
        super().__init__("Upstream refused the WebSocket handshake")
        self.status = status
        self.body = body
        self.content_type = content_type


class UnknownProvider(GatewayError):
    code, status, default_message = 2008, 400, "Unknown provider"


class Unauthorized(GatewayError):
    code, status, default_message = 2009, 401, "Unauthorized"


class MalformedRequest(GatewayError):
    code, status, default_message = 2010, 400, "Malformed request"


class PayloadTooLarge(GatewayError):
    code, status, default_message = 2011, 413, "Request body too large"


class GatewayTimeout(GatewayError):
    """Every attempt of the last step timed out (the upstream side's `UpstreamTimeout`)."""

    code, status, default_message = 2012, 504, "Upstream timed out"


class StreamInterrupted(GatewayError):
    code, status, default_message = 2013, 502, "Upstream stream interrupted"


class ServiceUnavailable(GatewayError):
    """The server cannot take the request now: it is shutting down, or its configuration store is
    unreachable and it has nothing cached to go on."""

    code, status, default_message = 2014, 503, "Service unavailable"


class InternalError(GatewayError):
    """A bug on our side: answered (never a dropped connection), logged with its traceback."""

    code, status, default_message = 2015, 500, "Internal error"


class UnknownKeyAlias(GatewayError):
    code, status, default_message = 2040, 400, "Unknown stored key alias"


class DlpBlocked(GatewayError):
    """A DLP policy blocked the request or its response; the findings go with it (`cf-aig-dlp`)."""

    def __init__(self, dlp_header: str | None, *, context: ErrorContext | None = None) -> None:
        super().__init__(context=context)
        self.dlp_header = dlp_header


class RequestBlockedByDlp(DlpBlocked):
    code, status, default_message = 2029, 400, "Request content blocked due to DLP policy violations"


class ResponseBlockedByDlp(DlpBlocked):
    code, status, default_message = 2030, 400, "Response content blocked due to DLP policy violations"
