"""The one exception tree of the upstream side. Transports speak httpx's exceptions; `client.py`
turns them into these, so the pipeline decides once what each means for the client (a timeout of
the last attempt becomes 2012, any other failure 2005, a body cut after a stream started 2013, a
refused destination 2010).

    UpstreamError                  no usable answer
    ├── UpstreamTimeout            connecting, waiting for a free connection (in total or for the
    │                              account), or no byte for AIGW_UPSTREAM_TIMEOUT_S
    ├── UpstreamUnreachable        refused, reset, DNS or TLS failure, or an unacceptable head
    │   │                          (too large, a 101) before the answer started
    │   └── InvalidUpstreamRequest a URL or header that cannot be sent; nothing was sent
    ├── UpstreamBodyError          the answer started, then its body broke off, could not be
    │                              decoded, or passed a limit (the message names the setting)
    ├── DestinationRefused         a tenant-configured host resolved to a non-public address
    └── HandshakeRefused           a WebSocket provider answered its handshake with an HTTP error
"""

from __future__ import annotations


class UpstreamError(Exception):
    """No usable answer from the provider."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamUnreachable(UpstreamError):
    pass


class InvalidUpstreamRequest(UpstreamUnreachable):
    pass


class UpstreamBodyError(UpstreamError):
    pass


class DestinationRefused(UpstreamError):
    pass


class HandshakeRefused(UpstreamError):
    def __init__(self, status: int, body: bytes, content_type: str | None) -> None:
        super().__init__(f"handshake refused with status {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
