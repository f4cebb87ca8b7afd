"""Hostile input (issue 5, item 6): slow-loris clients, oversized request heads, and tenant
isolation of the cache and the logs.

The connection-level tests run against a real `aigw serve` process, because what protects (or does
not protect) a connection is the uvicorn configuration the CLI builds, not the app."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.support.backends import LogReader
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ADMIN_HEADERS, create_gateway, error_of, openai_step
from tests.support.processes import ServerProcess

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello please"}]}
# The read timeout the server applies to a request head or body that stops arriving.
CLIENT_READ_TIMEOUT_S = 1


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("hostile")
    env = {
        "AIGW_DATABASE_URL": f"sqlite:///{base}/aigw.db",
        "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
        "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
        "AIGW_CLIENT_READ_TIMEOUT_S": str(CLIENT_READ_TIMEOUT_S),
    }
    with ServerProcess(env, log_path=base / "server.log") as server:
        create_gateway(server.url)
        yield server


def connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return sock


SLOW_HEAD = b"POST /v1/acct/gw/openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: applic"
SLOW_BODY = (
    b"POST /v1/acct/gw/openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"model": "gpt'
)


def slow_loris(stack: ExitStack, server: ServerProcess, count: int) -> list[socket.socket]:
    """`count` connections: a third idle, a third stuck in the head, a third stuck in the body."""
    sockets = []
    for index in range(count):
        sock = stack.enter_context(closing(connect(server)))
        if index % 3 == 1:
            sock.sendall(SLOW_HEAD)
        elif index % 3 == 2:
            sock.sendall(SLOW_BODY)
        sockets.append(sock)
    return sockets


def is_closed_by_server(sock: socket.socket, wait_s: float) -> bool:
    sock.settimeout(wait_s)
    try:
        while data := sock.recv(65536):
            if b"HTTP/1.1 4" in data:  # a 408/400 answer counts too
                return True
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_slow_loris_connections_do_not_block_other_clients(served: ServerProcess) -> None:
    with ExitStack() as stack:
        sockets = slow_loris(stack, served, 150)
        for sock in sockets[1::3]:
            sock.sendall(b"t")  # dripping: one more byte of head now and then

        def one(_: int) -> float:
            started = time.monotonic()
            with httpx.Client(timeout=5) as client:
                response = client.post(f"{served.url}/v1/acct/gw/openai/chat/completions", json=CHAT)
            assert response.status_code == 200
            return time.monotonic() - started

        with ThreadPoolExecutor(8) as pool:
            latencies = list(pool.map(one, range(40)))
        assert max(latencies) < 1.0, max(latencies)
        assert httpx.get(f"{served.url}/healthz").status_code == 200


def test_slow_loris_connections_are_timed_out(served: ServerProcess) -> None:
    with ExitStack() as stack:
        idle, head, body = slow_loris(stack, served, 3)
        deadline = CLIENT_READ_TIMEOUT_S + 2
        assert is_closed_by_server(idle, deadline), "an idle new connection is never closed"
        assert is_closed_by_server(head, 1), "a head that stops arriving is never timed out"
        assert is_closed_by_server(body, 1), "a body that stops arriving is never timed out"


def raw_request(server: ServerProcess, head: bytes) -> bytes:
    """Send a request head; what the server answers (b"" if it just closed)."""
    with closing(connect(server)) as sock:
        try:
            sock.sendall(head)
        except OSError:
            return b""  # refused while sending: closed, not served
        sock.settimeout(10)
        received = b""
        try:
            while b"\r\n\r\n" not in received and (data := sock.recv(65536)):
                received += data
        except OSError:
            pass
        return received


def status_of(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


HEADS: dict[str, bytes] = {
    "1 MB header": b"X-Big: " + b"a" * 1_000_000 + b"\r\n",
    "20k headers": b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)),
    "1 MB url": b"",
}


def big_head(kind: str, path: str = "/v1/acct/gw/openai/chat/completions") -> bytes:
    """A request with a huge head: a POST with a small JSON body, or a GET of /healthz."""
    method, body = ("GET", b"") if path == "/healthz" else ("POST", b"{}")
    if kind == "1 MB url":
        path += "?q=" + "a" * 1_000_000
    start = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    start += f"Content-Length: {len(body)}\r\n"
    return start.encode() + HEADS[kind] + b"\r\n" + body


@pytest.mark.parametrize("kind", list(HEADS))
def test_huge_request_heads_never_get_a_500_or_a_hang(served: ServerProcess, kind: str) -> None:
    status = status_of(raw_request(served, big_head(kind)))
    assert status is None or status < 500, status
    assert httpx.get(f"{served.url}/healthz").status_code == 200


@pytest.mark.parametrize("kind", ["1 MB header", "20k headers"])
def test_oversized_request_heads_are_refused_with_4xx(served: ServerProcess, kind: str) -> None:
    answer = raw_request(served, big_head(kind, "/healthz"))
    status = status_of(answer)
    assert status is not None and 400 <= status < 500, answer[:200]


# ---- tenant isolation --------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def isolated(
    request: pytest.FixtureRequest, gateway_settings: Any, gateway_factory: Callable[..., GatewayServer]
) -> GatewayServer:
    settings = gateway_settings
    if request.param == "redis":
        settings = settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    return gateway_factory(settings)


def make_gateway(server: GatewayServer, account: str, gateway_id: str, **fields: Any) -> None:
    create_gateway(server.url, account, gateway_id, **{"cache_ttl": 300, **fields})


def test_cache_never_answers_across_accounts_or_gateways(
    isolated: GatewayServer, upstream: FakeUpstream
) -> None:
    first, second = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    for account in (first, second):
        make_gateway(isolated, account, "gw")
        make_gateway(isolated, account, "gw2")
    step = openai_step()
    step["query"]["messages"] = [{"role": "user", "content": f"same body {first}"}]
    keyed = {"cf-aig-cache-key": f"shared-{first}"}

    def status(account: str, gateway_id: str, headers: dict[str, str] | None = None) -> str:
        response = httpx.post(f"{isolated.url}/v1/{account}/{gateway_id}", json=step, headers=headers or {})
        assert response.status_code == 200, response.text
        return response.headers["cf-aig-cache-status"]

    assert [status(first, "gw"), status(first, "gw")] == ["MISS", "HIT"]
    assert status(second, "gw") == "MISS"  # same body, other account
    assert status(first, "gw2") == "MISS"  # same body, same account, other gateway
    assert [status(first, "gw", keyed), status(second, "gw", keyed)] == ["MISS", "MISS"]
    assert upstream.count() == 5
    rows = LogReader(isolated.settings.database_url).wait(
        "account_id IN (:a, :b)", {"a": first, "b": second}, count=6
    )
    assert [(r["account_id"], r["gateway_id"], bool(r["cached"])) for r in rows] == [
        (first, "gw", False),
        (first, "gw", True),
        (second, "gw", False),
        (first, "gw2", False),
        (first, "gw", False),
        (second, "gw", False),
    ]


def test_logs_and_tokens_are_scoped_to_their_account(gateway: GatewayServer) -> None:
    first, second = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    tokens = {}
    for account in (first, second):
        make_gateway(gateway, account, "gw", cache_ttl=0, authentication=True)
        created = httpx.post(
            f"{gateway.url}/client/v4/accounts/{account}/tokens",
            json={"name": "t", "permissions": ["run", "read"]},
            headers=ADMIN_HEADERS,
        )
        assert created.status_code == 200, created.text
        tokens[account] = f"Bearer {created.json()['result']['value']}"
    own = httpx.post(
        f"{gateway.url}/v1/{first}/gw", json=openai_step(), headers={"cf-aig-authorization": tokens[first]}
    )
    assert own.status_code == 200
    log_id = own.headers["cf-aig-log-id"]
    # The other account's valid token opens nothing of this account: not its gateway, not its logs.
    error_of(
        httpx.post(f"{gateway.url}/v1/{first}/gw", json=openai_step(),
                   headers={"cf-aig-authorization": tokens[second]}),
        401, 2009,
    )  # fmt: skip
    [row] = LogReader(gateway.settings.database_url).wait("id = :id", {"id": log_id})
    assert (row["account_id"], row["gateway_id"]) == (first, "gw")
    foreign = httpx.get(
        f"{gateway.url}/client/v4/accounts/{first}/ai-gateway/gateways/gw/logs/{log_id}",
        headers={"Authorization": tokens[second]},
    )
    assert foreign.status_code in (401, 403), foreign.text
    via_own_gateway = httpx.get(
        f"{gateway.url}/client/v4/accounts/{second}/ai-gateway/gateways/gw/logs/{log_id}",
        headers={"Authorization": tokens[second]},
    )
    assert via_own_gateway.status_code == 404, via_own_gateway.text
    assert log_id not in via_own_gateway.text or "not found" in via_own_gateway.text


def test_analytics_over_centuries_is_refused_at_once(gateway: GatewayServer) -> None:
    """Found by the schemathesis fuzzer: a minute interval over a range of centuries made the
    server list every bucket before counting them (hundreds of millions), hanging it."""
    make_gateway(gateway, "acct", "gw")
    started = time.monotonic()
    response = httpx.get(
        f"{gateway.url}/client/v4/accounts/acct/ai-gateway/gateways/gw/analytics",
        params={"interval": "minute", "start_date": "0986-12-07T00:00:00Z"},
        headers=ADMIN_HEADERS,
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert time.monotonic() - started < 2
