"""Tenant-configured destinations (custom providers) reach public addresses only (limits.md §1).

The check runs on the address actually connected to: the host is resolved once, here, and the
request is sent to that address (with the original `Host` header and TLS server name), so a DNS
answer cannot change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import socket

import httpx

from app.core.addresses import is_refused_address, literal_address
from app.upstream.errors import DestinationRefused


async def pinned_to_public_address(request: httpx.Request) -> httpx.Request:
    """The request, sent to its host's first resolved address; DestinationRefused if that
    address is loopback, private, link-local or otherwise not public."""
    url = request.url
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    address = literal_address(host)
    if address is None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
        if not infos:
            raise httpx.ConnectError(f"cannot resolve {host}", request=request)
        address = literal_address(str(infos[0][4][0]))
    if address is None or is_refused_address(address):
        raise DestinationRefused(f"the host {host[:255]} is not a public address ({address})")
    extensions = {**request.extensions, "sni_hostname": host}
    # The `Host` header httpx made from the original URL stays, so the server sees its own name.
    return httpx.Request(
        request.method, url.copy_with(host=str(address)), headers=request.headers, stream=request.stream,
        extensions=extensions,
    )  # fmt: skip
