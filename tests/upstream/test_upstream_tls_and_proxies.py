"""TLS verification and the environment's proxies and CA bundle (limits.md §3), on both
transports: certificates are always verified (self-signed and wrong-name certificates fail),
`SSL_CERT_FILE` replaces the CA bundle, `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` send calls
through a forward proxy (absolute-form for http, CONNECT for https) and `NO_PROXY` exempts hosts.
The CA, the certificates and the proxy are the tests' own (tests/support)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.upstream.client import UpstreamClient
from app.upstream.errors import UpstreamUnreachable
from tests.support.forward_proxy import ForwardProxy
from tests.support.hostile_upstream import HOSTILE_OK_JSON, HostileUpstream
from tests.support.tls_certs import CertificateAuthority, make_ca, self_signed, server_context

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_upstream(
    ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileUpstream]:
    issued = ca.issue(tmp_path_factory.mktemp("leaf"), hostnames=["localhost"], ip_addresses=["127.0.0.1"])
    with HostileUpstream(server_context(issued)) as server:
        yield server


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as server:
        yield server


@pytest.fixture(params=["pool", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def client_on(transport: str) -> AsyncIterator[UpstreamClient]:
    """A client made after the test set its environment (it is read once, at start-up)."""
    client = UpstreamClient(Settings(_env_file=None, upstream_transport=transport))  # type: ignore[call-arg]
    try:
        yield client
    finally:
        await client.aclose()


async def ok_from(client: UpstreamClient, url: str) -> tuple[int, bytes]:
    response = await client.send(
        client.build("POST", f"{url}/v1/chat/completions", [("x-hostile", "ok")], b"{}")
    )
    try:
        return response.status_code, await response.aread()
    finally:
        await response.aclose()


async def test_a_certificate_from_an_unknown_ca_is_refused(
    tls_upstream: HostileUpstream, transport: str
) -> None:
    async with client_on(transport) as client:
        with pytest.raises(UpstreamUnreachable):
            await ok_from(client, tls_upstream.url)


async def test_ssl_cert_file_replaces_the_ca_bundle(
    tls_upstream: HostileUpstream, ca: CertificateAuthority, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_path))
    async with client_on(transport) as client:
        assert await ok_from(client, tls_upstream.url) == (200, HOSTILE_OK_JSON)


@pytest.mark.parametrize("kind", ["self-signed", "wrong-name"])
async def test_self_signed_and_wrong_name_certificates_are_refused(
    ca: CertificateAuthority, tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_path))  # our CA is trusted: only the leaf is wrong
    if kind == "self-signed":
        issued = self_signed(tmp_path, hostnames=["localhost"], ip_addresses=["127.0.0.1"])
    else:
        issued = ca.issue(tmp_path, hostnames=["api.example.com"], ip_addresses=[])
    with HostileUpstream(server_context(issued)) as server:
        async with client_on(transport) as client:
            with pytest.raises(UpstreamUnreachable):
                await ok_from(client, server.url)
        assert server.requests == []  # nothing was sent over the unverified connection


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY"])
async def test_http_upstreams_go_through_the_proxy(
    plain_upstream: HostileUpstream,
    proxy: ForwardProxy,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    async with client_on(transport) as client:
        assert await ok_from(client, plain_upstream.url) == (200, HOSTILE_OK_JSON)
    assert proxy.seen == [("POST", f"{plain_upstream.url}/v1/chat/completions")]


async def test_https_upstreams_are_tunnelled_with_connect_and_still_verified(
    tls_upstream: HostileUpstream, ca: CertificateAuthority, proxy: ForwardProxy, transport: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with client_on(transport) as client:  # our CA not trusted yet: the tunnel is no excuse
        with pytest.raises(UpstreamUnreachable):
            await ok_from(client, tls_upstream.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_path))
    async with client_on(transport) as client:
        assert await ok_from(client, tls_upstream.url) == (200, HOSTILE_OK_JSON)
    assert proxy.seen[-1] == ("CONNECT", f"127.0.0.1:{tls_upstream.port}")


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "example.com,127.0.0.1"])
async def test_no_proxy_hosts_are_called_directly(
    plain_upstream: HostileUpstream, proxy: ForwardProxy, transport: str, monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    async with client_on(transport) as client:
        assert await ok_from(client, plain_upstream.url) == (200, HOSTILE_OK_JSON)
    assert proxy.seen == []


async def test_lower_case_proxy_variables_count_too(
    plain_upstream: HostileUpstream, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    async with client_on("pool") as client:
        assert await ok_from(client, plain_upstream.url) == (200, HOSTILE_OK_JSON)
    assert len(proxy.seen) == 1
