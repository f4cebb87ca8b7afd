"""The one hierarchy of gateway-originated errors (protocol.md §8).

Each error knows its wire code and HTTP status; `transports/errors.py` turns it into an HTTP
response or a WebSocket frame. Upstream errors are never wrapped in these: they pass through.
"""

from __future__ import annotations


class GatewayError(Exception):
    code: int = 2010
    status: int = 400
    default_message: str = "Bad request"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)


class GatewayNotFound(GatewayError):
    code, status, default_message = 2001, 400, "Gateway not found"


class RateLimited(GatewayError):
    code, status, default_message = 2003, 429, "Rate limit exceeded"


class NoProviderResponse(GatewayError):
    code, status, default_message = 2005, 502, "No response from any provider"


class UnknownProvider(GatewayError):
    code, status, default_message = 2008, 400, "Unknown provider"


class Unauthorized(GatewayError):
    code, status, default_message = 2009, 401, "Unauthorized"


class MalformedRequest(GatewayError):
    code, status, default_message = 2010, 400, "Malformed request"


class PayloadTooLarge(GatewayError):
    code, status, default_message = 2011, 413, "Request body too large"


class UpstreamTimeout(GatewayError):
    code, status, default_message = 2012, 504, "Upstream timed out"


class StreamInterrupted(GatewayError):
    code, status, default_message = 2013, 502, "Upstream stream interrupted"


class ServiceUnavailable(GatewayError):
    """The server cannot take the request now: it is shutting down, or its configuration store is
    unreachable and it has nothing cached to go on."""

    code, status, default_message = 2014, 503, "Service unavailable"


class UnknownKeyAlias(GatewayError):
    code, status, default_message = 2040, 400, "Unknown stored key alias"


def error_body(code: int, message: str) -> dict[str, object]:
    """The public service's error shape (note `error`, singular)."""
    return {"success": False, "result": [], "messages": [], "error": [{"code": code, "message": message}]}
