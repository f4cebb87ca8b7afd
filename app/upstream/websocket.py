"""The WebSocket client for realtime providers (`websockets`' asyncio client): one connection per
realtime session, no compression, no User-Agent of ours. Like every provider call it honours the
environment (limits.md §3): `HTTPS_PROXY` & co. (websockets reads them itself, CONNECT through
the proxy) and the CA bundle of `environment.py`. Failures are the upstream tree's (`errors.py`):
a refused handshake keeps the provider's status and body."""

from __future__ import annotations

import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from app.upstream.errors import HandshakeRefused, UpstreamTimeout, UpstreamUnreachable


async def open_websocket(
    url: str,
    headers: list[tuple[str, str]],
    subprotocols: list[str],
    *,
    open_timeout_s: float,
    max_frame_bytes: int,
    tls: ssl.SSLContext,
) -> ClientConnection:
    """`tls`: the context of `environment.ssl_context()`, made once by the caller."""
    try:
        return await connect(
            url,
            additional_headers=headers,
            subprotocols=subprotocols or None,  # type: ignore[arg-type]
            open_timeout=open_timeout_s,
            max_size=max_frame_bytes,
            compression=None,
            ssl=tls if url.startswith("wss:") else None,
            proxy=True,  # the environment's proxy for this URL, if any
            user_agent_header=None,
        )
    except InvalidStatus as refused:
        response = refused.response
        raise HandshakeRefused(
            response.status_code, bytes(response.body or b""), response.headers.get("content-type")
        ) from None
    except TimeoutError:
        raise UpstreamTimeout("did not answer the handshake in time") from None
    except (OSError, InvalidHandshake) as exc:
        raise UpstreamUnreachable(type(exc).__name__) from None
