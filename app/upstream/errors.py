"""The one exception tree of the upstream side (after httpx's `_exceptions.py`). Everything the
upstream clients raise is an `UpstreamError`; what each means for the client is decided once, in
the pipeline (a timeout of the last attempt becomes 2012, any other failure 2005, a body cut after
a stream started 2013).

    UpstreamError                  no usable answer
    ├── UpstreamTimeout            connecting, waiting for a pooled connection, or a read took too long
    ├── UpstreamUnreachable        refused, reset, DNS or TLS failure before the answer started
    │   ├── StaleConnection        a reused keep-alive connection closed before any byte came back
    │   │                          (the client sends once more, on a fresh connection)
    │   └── InvalidUpstreamRequest a URL or header that cannot be sent; nothing was sent
    ├── UpstreamBodyError          the answer started, then its body broke off or could not be decoded
    └── HandshakeRefused           a WebSocket provider answered its handshake with an HTTP error
"""

from __future__ import annotations


class UpstreamError(Exception):
    """No usable answer from the provider."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamUnreachable(UpstreamError):
    pass


class StaleConnection(UpstreamUnreachable):
    pass


class InvalidUpstreamRequest(UpstreamUnreachable):
    pass


class UpstreamBodyError(UpstreamError):
    pass


class HandshakeRefused(UpstreamError):
    def __init__(self, status: int, body: bytes, content_type: str | None) -> None:
        super().__init__(f"handshake refused with status {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
