"""Where a custom provider may point: its base URL must be https, and a host written as a literal
loopback, private, link-local, unspecified or multicast address (IPv4-mapped forms and the loose
IPv4 spellings resolvers accept included) is refused at creation and update (400 / 1001 on
`base_url`), unless `AIGW_ALLOW_PRIVATE_DESTINATIONS`. Host names are accepted: the connection
check on the resolved address belongs to the upstream client, which knows a custom provider by
`Provider.tenant_destination`."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from app.core.addresses import is_refused_address, literal_address
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, unique
from tests.support.management import SECRET_KEY, Mgmt, management_server, mgmt_client, v4_errors

PATH = f"/client/v4/accounts/{ACCT}/ai-gateway/custom-providers"

REFUSED_URLS = [
    "http://llm.example.com/v1",
    "https://127.0.0.1/v1",
    "https://127.8.9.10",
    "https://127.1",
    "https://2130706433",
    "https://0x7f.0.0.1",
    "https://0177.0.0.1:8443",
    "https://[::1]/v1",
    "https://10.0.0.1/v1",
    "https://172.16.5.4",
    "https://192.168.1.1:8443/v1",
    "https://[fc00::1]",
    "https://[fd12:3456::1]",
    "https://169.254.169.254/latest",
    "https://[fe80::1]",
    "https://0.0.0.0",
    "https://[::]",
    "https://224.0.0.1",
    "https://[ff02::1]",
    "https://[::ffff:10.0.0.1]",
    "https://[::ffff:127.0.0.1]",
    "https://[::ffff:169.254.169.254]",
    "https://[64:ff9b::a00:1]",
    "https://100.100.100.200",
    "https://240.0.0.1",
    "https://127.0.0.1./v1",
]
ACCEPTED_URLS = [
    "https://localhost/v1",
    "https://llm.example.com/v1",
    "https://model-server",
    "https://8.8.8.8/v1",
    "https://[2606:4700::1111]/v1",
    "https://[::ffff:8.8.8.8]",
]


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Mgmt]:
    """A management server without the development setting."""
    base: Path = tmp_path_factory.mktemp("strict")
    with (
        management_server("sqlite", base, fake_upstream.url, allow_http_custom_providers=False) as server,
        mgmt_client(server) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("lenient")
    with (
        management_server("sqlite", base, fake_upstream.url) as server,
        mgmt_client(server) as client,
    ):
        yield client


def body(base_url: str) -> dict[str, Any]:
    return {"name": "n", "slug": unique("cp"), "base_url": base_url}


def refused_on_base_url(response: Any) -> str:
    errors = v4_errors(response, 400)
    assert [e["code"] for e in errors] == [1001], errors
    message = str(errors[0]["message"])
    assert message.startswith("base_url:"), message
    return message


@pytest.mark.parametrize("base_url", REFUSED_URLS)
def test_refused_at_creation(strict: Mgmt, base_url: str) -> None:
    refused_on_base_url(strict.call("POST", PATH, json=body(base_url)))


@pytest.mark.parametrize("base_url", ACCEPTED_URLS)
def test_names_and_public_addresses_are_accepted(strict: Mgmt, base_url: str) -> None:
    created = strict.ok("POST", PATH, json=body(base_url))["result"]
    assert created["base_url"] == base_url


@pytest.mark.parametrize("base_url", ["https://10.0.0.1", "https://[::ffff:127.0.0.1]", "http://h.example"])
def test_refused_at_update(strict: Mgmt, base_url: str) -> None:
    created = strict.ok("POST", PATH, json=body("https://llm.example.com"))["result"]
    refused_on_base_url(strict.call("PUT", f"{PATH}/{created['id']}", json={"base_url": base_url}))
    assert strict.ok("GET", f"{PATH}/{created['id']}")["result"]["base_url"] == "https://llm.example.com"


@pytest.mark.parametrize("base_url", ["http://10.0.0.1:8000/v1", "https://127.0.0.1", "http://model-server"])
def test_the_setting_allows_private_and_http(lenient: Mgmt, base_url: str) -> None:
    created = lenient.ok("POST", PATH, json=body("https://llm.example.com"))["result"]
    assert lenient.ok("PUT", f"{PATH}/{created['id']}", json={"base_url": base_url})["result"][
        "base_url"
    ] == (base_url)
    assert lenient.ok("POST", PATH, json=body(base_url))["result"]["base_url"] == base_url


async def test_custom_providers_are_tenant_destinations(strict: Mgmt) -> None:
    from app.auth.secretbox import SecretBox
    from app.db.session import create_engine, session_factory
    from app.services.account_providers import AccountProviders

    created = strict.ok("POST", PATH, json=body("https://llm.example.com/v1"))["result"]
    engine = create_engine(strict.server.settings.database_url)
    try:
        providers = AccountProviders(session_factory(engine), 5.0, SecretBox(SECRET_KEY))
        custom = await providers.provider(ACCT, f"custom-{created['slug']}")
        assert custom.tenant_destination is True
        assert custom.base_url == "https://llm.example.com/v1"
        assert (await providers.provider(ACCT, "openai")).tenant_destination is False
    finally:
        await engine.dispose()


# ---- the address table -----------------------------------------------------------------------------

REFUSED_ADDRESSES = [
    "127.0.0.1", "127.255.255.254", "::1",  # loopback
    "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "fc00::1", "fdff::1",  # private
    "169.254.0.1", "169.254.169.254", "fe80::1", "febf::1",  # link-local
    "0.0.0.0", "::",  # unspecified
    "224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1",  # multicast
    "240.0.0.1", "255.255.255.255",  # reserved
    "100.64.0.1", "100.100.100.200", "192.0.2.1", "198.18.0.1", "fec0::1",  # other non-global
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",  # IPv4-mapped
    "::ffff:224.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "::127.0.0.1",  # NAT64, 6to4, compatible
]  # fmt: skip
ALLOWED_ADDRESSES = ["8.8.8.8", "1.1.1.1", "104.16.0.1", "2606:4700::1111", "2001:4860:4860::8888",
                     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]  # fmt: skip


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_refused_addresses(address: str) -> None:
    assert is_refused_address(ip_address(address)) is True


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_allowed_addresses(address: str) -> None:
    assert is_refused_address(ip_address(address)) is False


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("localhost", None),
        ("llm.example.com", None),
        ("1e100.net", None),
        ("08.0.0.1", None),
        ("1.2.3.256", None),
        ("4294967296", None),
        ("", None),
    ],
)
def test_literal_address(host: str, address: str | None) -> None:
    found = literal_address(host)
    assert found == (None if address is None else ip_address(address))


# ---- the check on the address connected to ------------------------------------------------------


def test_a_name_that_resolves_to_a_private_address_is_refused_when_connecting(strict: Mgmt) -> None:
    """`localhost` passes creation (it is a name); the gateway resolves it, finds loopback, and
    refuses with 400 / 2010 naming the host, without ever connecting (limits.md §1)."""
    import socket

    import httpx

    from tests.support.helpers import ADMIN_HEADERS

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        created = strict.ok("POST", PATH, json=body(f"https://localhost:{port}/v1"))["result"]
        gateway_id = unique()
        url = strict.server.url
        answer = httpx.post(
            f"{url}/client/v4/accounts/{ACCT}/ai-gateway/gateways",
            json={"id": gateway_id},
            headers=ADMIN_HEADERS,
        )
        assert answer.status_code == 200, answer.text
        answer = httpx.post(
            f"{url}/v1/{ACCT}/{gateway_id}/custom-{created['slug']}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer sk-tenant"},
        )
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"][0]
        assert error["code"] == 2010 and "localhost" in error["message"], error
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
