"""What the process environment says about reaching providers (limits.md §3): `HTTPS_PROXY`,
`HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), read the way httpx reads them, and the CA
bundle (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else certifi's). Certificates are always verified."""

from __future__ import annotations

import ssl

import httpx

# httpx reads these for a client that builds its own transport, and not for one given a transport
# (ours); its reader and URL patterns are used as they are rather than copied here.
from httpx._utils import URLPattern, get_environment_proxies

from app.upstream.limits import UpstreamLimits

Mount = tuple[URLPattern, httpx.AsyncBaseTransport | None]  # None: no proxy, the direct transport


def ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=True, trust_env=True)


def proxy_mounts(context: ssl.SSLContext, limits: UpstreamLimits) -> list[Mount]:
    """The proxied origins, most specific pattern first; empty when no proxy is configured."""
    mounts: list[Mount] = []
    for pattern, proxy_url in get_environment_proxies().items():
        transport = (
            None
            if proxy_url is None
            else httpx.AsyncHTTPTransport(
                proxy=httpx.Proxy(proxy_url),
                verify=context,
                limits=httpx.Limits(max_connections=limits.connections),
                retries=0,
            )
        )
        mounts.append((URLPattern(pattern), transport))
    mounts.sort(key=lambda mount: mount[0])
    return mounts
